//! An IMAP account's run. Per folder:
//!
//! 1. SELECT; check UIDVALIDITY against the ledger (a change stops the
//!    folder, nothing destructive happens, unless `--resync`).
//! 2. New mail: UIDs above the last one seen (one UID SEARCH, skipped when
//!    UIDNEXT says there is nothing new), minus those already in the ledger;
//!    their sizes, flags and dates (UID FETCH, in chunks).
//! 3. Bodies with BODY.PEEK[] (reading does not mark mail seen), many per
//!    command in batches bounded by bytes, several commands pipelined; each
//!    body streams into the destination as it arrives, so memory stays
//!    bounded whatever the message size (`fetcher.rs`).
//! 4. The destination commits each batch (durable and recorded); then the
//!    ledger learns the flags and the folder's last UID; only then, with
//!    `--delete` or `--move-to`, the server is changed, for exactly the
//!    committed UIDs.
//! 5. Flags in step both ways with a Maildir (`flagsync.rs`: a pure plan
//!    from what both sides say, then the changes in a crash-safe order).
//!
//! `folders.rs` chooses the folders, `local.rs` looks at the Maildir
//! (scans, stamps), `report.rs` says what `--dry-run` would do.

mod fetcher;
mod flagsync;
mod folders;
mod local;
mod report;

use std::collections::HashMap;
use std::path::PathBuf;

use super::{LedgerSoon, Summary};
use crate::config::Account;
use crate::deliver;
use crate::error::{Error, Kind, Result, data};
use crate::imap::{Meta, Selected, Session, names};
use crate::ledger::{self, FolderState, Ledger};
use crate::report::progress::Progress;
use crate::report::{Action, Ui};
use crate::sanitize::escape;
use crate::secret::Secret;
use crate::types::Destination;
use fetcher::{Downloaded, Fetcher};
pub(crate) use folders::choose_folders;

/// Up to this many new UIDs, their metadata is fetched by range, without
/// a UID SEARCH first.
const FEW_NEW: u32 = 5000;

/// The ledger key of a message: UIDVALIDITY, UID and folder (last, as it
/// may hold any character).
pub fn key(uid_validity: u32, uid: u32, folder: &str) -> String {
    format!("i:{uid_validity}:{uid}:{folder}")
}

/// The parts of a key made by [`key`].
pub fn parse_key(k: &str) -> Option<(u32, u32, &str)> {
    let rest = k.strip_prefix("i:")?;
    let (uv, rest) = rest.split_once(':')?;
    let (uid, folder) = rest.split_once(':')?;
    Some((uv.parse().ok()?, uid.parse().ok()?, folder))
}

/// Fetch one IMAP account; the ledger is locked, and loaded and recovered
/// while the session connects and lists.
pub fn run(
    acct: &Account,
    ui: &Ui,
    ledger: &mut LedgerSoon<'_>,
    password: Secret,
) -> Result<Summary> {
    let mut session = Session::open(&acct.endpoint(), &acct.login(&password), ui)?;
    drop(password);
    let folders = choose_folders(acct, &mut session)?;
    let mut run = AccountRun {
        acct,
        ui,
        ledger: ledger.get()?,
        session: &mut session,
        summary: Summary::default(),
        progress: Progress::new(ui, &acct.name),
    };
    let mut failures: Vec<Error> = Vec::new();
    for (name, delim) in &folders {
        if crate::signals::stop_requested() {
            break;
        }
        match run.sync_folder(name, *delim) {
            Ok(()) => {}
            Err(e) if folder_only(&e) => {
                failures.push(e.context(format!("folder {}", escape(name))));
            }
            Err(e) => return Err(e),
        }
    }
    // The progress bar stays up until the account's run ends.
    let AccountRun {
        ledger,
        summary,
        progress: _progress,
        ..
    } = run;
    session.logout();
    if !acct.read_only() {
        ledger.commit()?;
        ledger.maybe_compact(|_| true)?;
    }
    match failures.len() {
        0 => summary.rejected_error().map(|()| summary),
        1 => Err(failures.pop().expect("one")),
        n => {
            for e in &failures {
                ui.error(&acct.name, &e.message());
            }
            let code = crate::error::combine(
                &failures
                    .iter()
                    .map(|e| e.kind.exit_code())
                    .collect::<Vec<_>>(),
            );
            let kind = failures
                .iter()
                .map(|e| e.kind)
                .find(|k| k.exit_code() == code)
                .unwrap_or(Kind::Temporary);
            Err(Error::new(kind, format!("{n} folders failed (see above)")))
        }
    }
}

/// A folder's own problem (UIDVALIDITY, a SELECT or a command the server
/// refused, a failed delivery): reported, and the other folders go on.
fn folder_only(e: &Error) -> bool {
    matches!(
        e.kind,
        Kind::Data | Kind::LocalIo | Kind::CantCreate | Kind::Usage | Kind::Unavailable
    )
}

/// What the folders of one account's run share.
struct AccountRun<'a, 'c, 's> {
    acct: &'a Account,
    ui: &'a Ui,
    ledger: &'a mut Ledger,
    session: &'c mut Session<'s>,
    summary: Summary,
    progress: Progress,
}

/// A folder, selected, with what the ledger and the Maildir said of it
/// when the run came to it.
struct Opened<'f> {
    /// The server's name (modified UTF-7).
    name: &'f str,
    /// The name decoded, for people.
    shown: String,
    sel: Selected,
    /// The ledger's state of the folder, if it was synced before.
    known: Option<FolderState>,
    /// Synced before under another UIDVALIDITY, and `--resync` says go on.
    resyncing: bool,
    /// The highest UID fetched under this UIDVALIDITY.
    last: u32,
    /// The metadata of UIDs `last+1` to `last+FEW_NEW`, asked for with the
    /// SELECT, when `last` turned out right for the folder's UIDVALIDITY.
    prefetched: Option<Vec<Meta>>,
    /// With a Maildir: the folder's Maildir++ subdirectory (None for INBOX,
    /// the Maildir itself) and its path.
    subdir: Option<String>,
    dir: Option<PathBuf>,
    /// The Maildir folder's stamp before we touch it (see
    /// `FolderState::local_stamp`), and `cur/`'s alone.
    stamp_at_start: u64,
    cur_at_start: Option<u64>,
}

impl Opened<'_> {
    fn uv(&self) -> u32 {
        self.sel.uid_validity
    }

    /// The ledger's state if it is of this UIDVALIDITY.
    fn same_uv(&self) -> Option<&FolderState> {
        self.known.as_ref().filter(|s| s.uid_validity == self.uv())
    }
}

impl AccountRun<'_, '_, '_> {
    fn sync_folder(&mut self, folder: &str, delim: Option<char>) -> Result<()> {
        let mut f = self.open(folder, delim)?;
        let prefetched = f.prefetched.take();
        // --resync: what we already have from this folder, by content.
        let (resync, stale_keys) = if f.resyncing {
            let Some(dir) = &f.dir else {
                return Err(crate::error::usage(
                    "--resync can only match messages in a Maildir destination",
                ));
            };
            let (index, stale) = local::resync_index(self.ledger, folder, f.uv(), dir)?;
            (Some(index), stale)
        } else {
            (None, Vec::new())
        };
        let mut metas = self.new_mail(&f, prefetched)?;
        let held_back = self.hold_back(&f, &mut metas);
        if self.acct.read_only() {
            return self.look(&f, &metas);
        }
        self.progress
            .add(metas.len() as u64, metas.iter().map(|m| m.size).sum());
        let Downloaded {
            committed,
            mut failures,
            failed_uids,
            rematched,
        } = self.download(&f, &metas, resync)?;
        if f.resyncing {
            // Messages already here get their new UIDs; the old entries go.
            let now = deliver::unix_now();
            for (uid, name, size, fl) in rematched {
                self.ledger.delivered(
                    &key(f.uv(), uid, folder),
                    ledger::Entry {
                        name,
                        size,
                        time: now,
                        flags: fl,
                    },
                );
            }
            for k in &stale_keys {
                self.ledger.removed(k);
            }
            self.ledger.commit()?;
        }
        let st = self.advance(&f, &metas, &failed_uids, &held_back);
        self.delete_or_move(&f)?;
        self.sync_flags(&f, st, !committed.is_empty())?;
        self.ledger.commit()?;
        match failures.pop() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// SELECT (EXAMINE when looking only) and check UIDVALIDITY; note the
    /// local folder as it is before we touch it.
    fn open<'f>(&mut self, folder: &'f str, delim: Option<char>) -> Result<Opened<'f>> {
        let known = self.ledger.folder(folder).cloned();
        // The new mail's metadata goes with the SELECT, for the UIDs above
        // the last one the ledger knows, before UIDVALIDITY says whether
        // that is still the folder's numbering; used only if it is. Not
        // with --search, which asks by its own criteria.
        let after = known.as_ref().map_or(0, |s| s.last_uid);
        let prefetch = self.acct.imap.search.is_none().then_some((after, FEW_NEW));
        let (sel, prefetched) =
            self.session
                .select_ahead(folder, self.acct.read_only(), prefetch)?;
        let uv = sel.uid_validity;
        if let Some(st) = &known
            && st.uid_validity != uv
            && !self.acct.imap.resync
        {
            return Err(data(format!(
                "UIDVALIDITY changed (was {}, now {uv}): the server renumbered this folder, so \
                 fetch cannot tell which messages it already has; nothing was changed. Run with \
                 --resync to fetch it again without duplicating what is already here",
                st.uid_validity
            )));
        }
        let resyncing = known.as_ref().is_some_and(|s| s.uid_validity != uv);
        let last = known
            .as_ref()
            .filter(|s| s.uid_validity == uv)
            .map_or(0, |s| s.last_uid);
        let (subdir, dir) = match &self.acct.dest {
            Destination::Maildir(root) => {
                let subdir = names::maildir_folder(folder, delim);
                let dir = match &subdir {
                    Some(s) => root.join(s),
                    None => root.clone(),
                };
                (subdir, Some(dir))
            }
            _ => (None, None),
        };
        let stamp_at_start = dir.as_deref().map_or(0, local::stamp);
        // cur/ alone, for the stamp after a run that delivers (see
        // `sync_flags`).
        let cur_at_start = dir.as_ref().and_then(|d| local::mtime_ns(&d.join("cur")));
        // From a folder renumbered since (UIDVALIDITY changed: an error
        // above, or --resync), nothing of it is used.
        let prefetched = prefetched.filter(|_| !resyncing && after == last);
        Ok(Opened {
            name: folder,
            shown: names::decode_mutf7(folder).unwrap_or_else(|_| folder.to_string()),
            sel,
            known,
            resyncing,
            last,
            prefetched,
            subdir,
            dir,
            stamp_at_start,
            cur_at_start,
        })
    }

    /// New mail: nothing when UIDNEXT says so; after a few new messages,
    /// their metadata as prefetched with the SELECT, or in one round trip
    /// (UID FETCH last+1:*); otherwise (a
    /// first sync, --search, --resync) a UID SEARCH, then the metadata in
    /// chunks. Never a message the ledger holds (unless `--all`).
    fn new_mail(&mut self, f: &Opened, prefetched: Option<Vec<Meta>>) -> Result<Vec<Meta>> {
        let (acct, ledger) = (self.acct, &*self.ledger);
        // Delivered, or refused for good by the mail server: not fetched.
        let have = |u: u32| {
            let k = key(f.uv(), u, f.name);
            !acct.all
                && (ledger.contains(&k)
                    || (!acct.retries_rejected() && ledger.rejection(&k).is_some()))
        };
        let few_new = f
            .sel
            .uid_next
            .and_then(|n| n.checked_sub(f.last))
            .filter(|&n| n <= FEW_NEW);
        let search = acct.imap.search.as_deref();
        let mut metas = match (search, few_new) {
            _ if f.resyncing => {
                let c = self.session.new_uids(0, search)?;
                let wanted: Vec<u32> = c.into_iter().filter(|&u| !have(u)).collect();
                self.session.meta(&wanted)?
            }
            (None, _)
                if f.sel
                    .uid_next
                    .is_some_and(|n| n <= f.last.saturating_add(1)) =>
            {
                Vec::new()
            }
            // UIDNEXT says every new UID is in the range prefetched.
            (None, Some(_)) if prefetched.is_some() => prefetched.unwrap_or_default(),
            (None, Some(n)) => self.session.meta_after(f.last, n)?,
            (criteria, _) => {
                let after = if criteria.is_some() { 0 } else { f.last };
                let c = self.session.new_uids(after, criteria)?;
                let wanted: Vec<u32> = c.into_iter().filter(|&u| !have(u)).collect();
                self.session.meta(&wanted)?
            }
        };
        metas.retain(|m| !have(m.uid));
        Ok(metas)
    }

    /// Take out of `metas` what stays on the server this time: messages
    /// too large for `--max-size` (reported), and those past `--limit`.
    /// Returns the lowest UIDs held back, below which the folder's last
    /// UID stays so that they are looked at again.
    fn hold_back(&mut self, f: &Opened, metas: &mut Vec<Meta>) -> Vec<u32> {
        let mut held_back: Vec<u32> = Vec::new();
        let (acct, ui) = (self.acct, self.ui);
        if let Some(max) = acct.max_size {
            metas.retain(|m| {
                if m.size <= max {
                    return true;
                }
                ui.warn(
                    &acct.name,
                    &format!(
                        "{} UID {} ({} bytes) is larger than --max-size {max}; left on the server",
                        escape(&f.shown),
                        m.uid,
                        m.size
                    ),
                );
                ui.message(
                    &acct.name,
                    Some(&f.shown),
                    Some(&m.uid.to_string()),
                    m.size,
                    None,
                    Action::Skipped,
                );
                held_back.push(m.uid);
                false
            });
        }
        if let Some(n) = acct.limit {
            let room = n.saturating_sub(self.summary.fetched);
            if metas.len() > room {
                held_back.push(metas[room].uid);
                metas.truncate(room);
            }
        }
        held_back
    }

    /// `--check` and `--dry-run`: count, and (dry run) say what a run would
    /// do, changing nothing.
    fn look(&mut self, f: &Opened, metas: &[Meta]) -> Result<()> {
        self.summary.available += metas.len();
        self.summary.available_bytes += metas.iter().map(|m| m.size).sum::<u64>();
        if !self.acct.dry_run() {
            return Ok(());
        }
        // As in a real run: flags are synced in a Maildir, in keep mode,
        // for a folder synced before under the same UIDVALIDITY.
        let flag_plan = match (&f.dir, f.same_uv()) {
            (Some(dir), Some(st)) if !self.acct.deletes() && !f.resyncing => {
                let st = st.clone();
                self.plan_flags(f, &st, dir)?
            }
            _ => flagsync::FlagPlan::default(),
        };
        self.report_dry_run(f, metas, &flag_plan);
        Ok(())
    }

    /// Download `metas` into the folder's destination and commit them.
    fn download(
        &mut self,
        f: &Opened,
        metas: &[Meta],
        resync: Option<HashMap<[u8; 32], (String, u64)>>,
    ) -> Result<Downloaded> {
        let id = self.acct.ledger_id();
        let mut dest = deliver::open(
            &self.acct.dest,
            &self.acct.deliver_options(),
            self.ledger.dir(),
            &ledger::account_tag(&id),
            f.subdir.as_deref(),
        )?;
        dest.clean_up()?;
        let mut fetcher = Fetcher::new(
            self.acct,
            self.ui,
            f,
            dest.as_mut(),
            resync,
            &mut self.progress,
        );
        let r = fetcher.fetch_all(self.session, self.ledger, metas, &mut self.summary);
        let done = fetcher.finish();
        r?;
        Ok(done)
    }

    /// The ledger now holds the committed messages. The folder's last UID
    /// moves up to just below the first message a destination refused or
    /// that was held back (it is tried again next time); messages that
    /// vanished count as settled. Returns the folder's new state.
    fn advance(
        &mut self,
        f: &Opened,
        metas: &[Meta],
        failed_uids: &[u32],
        held_back: &[u32],
    ) -> FolderState {
        let listed_max = metas.iter().map(|m| m.uid).max().unwrap_or(0);
        let new_last = match failed_uids.iter().chain(held_back).min() {
            None => listed_max.max(f.last),
            Some(&u) => f.last.max(u.saturating_sub(1)),
        };
        let mut st = f
            .same_uv()
            .cloned()
            .filter(|_| !f.resyncing)
            .unwrap_or(FolderState {
                uid_validity: f.uv(),
                last_uid: 0,
                mod_seq: 0,
                local_stamp: 0,
            });
        st.last_uid = new_last.max(st.last_uid);
        self.ledger.set_folder(f.name, st.clone());
        st
    }

    /// Only now may the server change, and only for committed messages:
    /// those of this run and those an interrupted earlier run committed
    /// but did not get to delete. In this mode the ledger holds exactly
    /// those (an entry goes once its message is expunged or moved).
    fn delete_or_move(&mut self, f: &Opened) -> Result<()> {
        if !self.acct.deletes() {
            return Ok(());
        }
        let pending: Vec<(u32, String)> = self
            .ledger
            .entries()
            .filter_map(|(k, _)| match parse_key(k) {
                Some((v, uid, name)) if v == f.uv() && name == f.name => Some((uid, k.clone())),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.ledger.commit()?;
        let uids: Vec<u32> = pending.iter().map(|(u, _)| *u).collect();
        if let Some(target) = &self.acct.imap.move_to {
            self.session.move_to(&uids, &names::encode_mutf7(target))?;
        } else {
            self.session.store(&uids, "+FLAGS.SILENT", "(\\Deleted)")?;
            self.session.uid_expunge(&uids)?;
        }
        for (_, k) in &pending {
            self.ledger.removed(k);
        }
        self.summary.deleted += uids.len();
        Ok(())
    }

    /// Flags in step both ways (a Maildir in keep mode), then the folder's
    /// new state with the local stamp the next run may trust. `delivered`:
    /// this run put messages into the folder.
    fn sync_flags(&mut self, f: &Opened, mut st: FolderState, delivered: bool) -> Result<()> {
        let Some(dir) = &f.dir else { return Ok(()) };
        if self.acct.deletes() {
            return Ok(());
        }
        // A folder seen for the first time was just fetched with its
        // current flags: nothing to sync yet.
        let first_time = f.known.is_none() || f.resyncing;
        let (changed, touched) = if first_time {
            (0, false)
        } else {
            let plan = self.plan_flags(f, &st, dir)?;
            self.apply_flags(f.name, dir, plan)?
        };
        self.summary.flags_synced += changed;
        if let Some(m) = f.sel.highest_mod_seq {
            st.mod_seq = m;
        }
        // Trust the stamp taken at the start if we changed nothing
        // ourselves: a mail reader's rename during this run then still
        // shows as a change next time. After delivering into new/ only,
        // with cur/ as it was at the start (neither we nor a mail reader
        // renamed anything there), take the stamp now: a mail reader
        // changes a message's flags by moving it into or within cur/,
        // which would show; all it can do unseen in new/ is delete a file,
        // which matters only with --sync-deletes. Without this, every run
        // after one that delivered rescanned the whole folder.
        st.local_stamp = if first_time || touched {
            0
        } else if !delivered {
            f.stamp_at_start
        } else if !self.acct.imap.sync_deletes
            && f.cur_at_start.is_some()
            && local::mtime_ns(&dir.join("cur")) == f.cur_at_start
        {
            local::stamp(dir)
        } else {
            0
        };
        self.ledger.set_folder(f.name, st);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = key(7, 42, "Lists/a:b");
        assert_eq!(parse_key(&k), Some((7, 42, "Lists/a:b")));
        assert_eq!(parse_key("u:abc"), None);
    }
}
