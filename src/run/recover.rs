//! Recovery: what a run that was stopped half-way through a delivery
//! left, settled before anything else happens to the account.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::config::Account;
use crate::deliver::{maildir, mbox, unix_now};
use crate::error::Result;
use crate::ledger::{Entry, Ledger, Target};
use crate::report::Ui;

/// Settle deliveries that a crashed run left half-done, whatever
/// the destination is now: a Maildir intent whose file is in `new/` or
/// `cur/` was delivered; an mbox intent whose bytes are in the mbox, whole
/// and ours, was delivered (a torn one is cut off); anything else was not,
/// and will be fetched again.
pub(super) fn recover(ledger: &mut Ledger, acct: &Account, ui: &Ui) -> Result<()> {
    let name = acct.name.as_str();
    let intents = ledger.pending_intents().to_vec();
    if intents.is_empty() {
        return Ok(());
    }
    let now = unix_now();
    let (mut found, mut missing) = (0, 0);
    let mut synced: HashSet<PathBuf> = HashSet::new();
    let mut mbox_intents: Vec<(String, PathBuf, u64, u64, u32)> = Vec::new();
    for i in intents {
        match i.target {
            Target::Maildir { dir, name: file } => match maildir::find_in(&dir, &file) {
                Some(path) => {
                    if synced.insert(dir.clone()) {
                        crate::durable::sync_dir(&dir.join("new"))?;
                        crate::durable::sync_dir(&dir.join("cur"))?;
                    }
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    ledger.delivered(
                        &i.key,
                        Entry {
                            name: file,
                            size,
                            time: now,
                            flags: String::new(),
                        },
                    );
                    found += 1;
                }
                None => {
                    ledger.aborted(&i.key);
                    missing += 1;
                }
            },
            Target::Mbox {
                path,
                offset,
                len,
                crc,
            } => mbox_intents.push((i.key, path, offset, len, crc)),
        }
    }
    let mut warn = |msg: String| ui.warn(name, &msg);
    for (key, delivered) in mbox::recover(&mbox_intents, acct.timeout, &mut warn)? {
        match delivered {
            Some(entry) => {
                ledger.delivered(&key, entry);
                found += 1;
            }
            None => {
                ledger.aborted(&key);
                missing += 1;
            }
        }
    }
    ledger.commit()?;
    ui.info(
        name,
        &format!(
            "finished an interrupted run: {found} message(s) were delivered, \
             {missing} will be fetched again"
        ),
    );
    Ok(())
}
