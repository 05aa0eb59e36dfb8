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
//!    bounded whatever the message size.
//! 4. The destination commits each batch (durable and recorded); then the
//!    ledger learns the flags and the folder's last UID; only then, with
//!    `--delete` or `--move-to`, the server is changed, for exactly the
//!    committed UIDs.
//! 5. Flags in step both ways with a Maildir (see [`sync_flags`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{Batches, LedgerSoon, Summary, batch_messages};
use crate::config::Account;
use crate::deliver::{self, CrlfToLf, Deliver, MessageInfo, Outcome};
use crate::error::{Error, Kind, Result, data};
use crate::imap::fetch::Event;
use crate::imap::flags::{self, Flags};
use crate::imap::names;
use crate::imap::{Meta, Selected, Session};
use crate::ledger::{self, FolderState, Ledger};
use crate::progress::Progress;
use crate::sanitize::escape;
use crate::secret::Secret;
use crate::types::Destination;
use crate::ui::Ui;

/// Bodies fetched in one command add up to at most this (a larger
/// message goes alone).
const FETCH_BYTES: u64 = 4 << 20;
/// Up to this many new UIDs, their metadata is fetched by range, without
/// a UID SEARCH first.
const FEW_NEW: u32 = 5000;
/// At most this many bodies in one command.
const FETCH_MESSAGES: usize = 200;
/// FETCH commands on their way at once, asking for at most this many bytes
/// between them (the replies wait in the socket buffers; memory stays as
/// bounded as with one command).
const PIPELINE: usize = 8;
const PIPELINE_BYTES: u64 = 16 << 20;

/// The FETCH commands for `metas`, in groups bounded by count and bytes; a
/// message larger than `FETCH_BYTES` goes alone. Whole bodies always: the
/// reader streams them at bounded memory, and a server may answer
/// pipelined commands in any order (Dovecot runs them in parallel), which
/// whole bodies, each one response named by its UID, make harmless.
fn plan_requests(metas: &[Meta]) -> std::collections::VecDeque<Req> {
    let mut out = std::collections::VecDeque::new();
    // No more per command than a batch holds (only tests lower the batch).
    let per_command = FETCH_MESSAGES.min(batch_messages());
    let mut i = 0;
    while i < metas.len() {
        let mut uids = Vec::new();
        let mut bytes = 0;
        while i < metas.len()
            && uids.len() < per_command
            && (uids.is_empty() || bytes + metas[i].size <= FETCH_BYTES)
        {
            bytes += metas[i].size;
            uids.push(metas[i].uid);
            i += 1;
        }
        out.push_back(Req { uids, bytes });
    }
    out
}

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
    let ledger = ledger.get()?;
    let mut summary = Summary::default();
    let mut progress = Progress::new(ui, &acct.name);
    let mut failures: Vec<Error> = Vec::new();
    for (name, delim) in &folders {
        if crate::signals::stop_requested() {
            break;
        }
        match sync_folder(
            acct,
            ui,
            ledger,
            &mut session,
            name,
            *delim,
            &mut summary,
            &mut progress,
        ) {
            Ok(()) => {}
            Err(mut e) if folder_only(&e) => {
                e.msg = format!("folder {}: {}", escape(name), e.msg);
                failures.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    session.logout();
    if !acct.read_only() {
        ledger.commit()?;
        ledger.maybe_compact(|_| true)?;
    }
    match failures.len() {
        0 => Ok(summary),
        1 => Err(failures.pop().expect("one")),
        n => {
            for e in &failures {
                ui.error(&acct.name, &e.msg);
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

/// The folders to fetch, with their hierarchy delimiters.
/// Folder names as the user writes them (UTF-8) are sent to the server in
/// modified UTF-7 (RFC 3501 §5.1.3); names from LIST are already.
pub(crate) fn choose_folders(
    acct: &Account,
    session: &mut Session,
) -> Result<Vec<(String, Option<char>)>> {
    let wanted: Vec<String> = acct
        .imap
        .folders
        .iter()
        .map(|f| names::encode_mutf7(f))
        .collect();
    let wanted = &wanted;
    if !acct.imap.all_folders
        && (wanted.is_empty() || wanted.iter().all(|f| f.eq_ignore_ascii_case("INBOX")))
    {
        return Ok(vec![("INBOX".to_string(), None)]);
    }
    let listed = session.list()?;
    if acct.imap.all_folders {
        return Ok(listed
            .into_iter()
            .filter(|f| f.selectable)
            .filter(|f| {
                acct.imap
                    .move_to
                    .as_deref()
                    .map(names::encode_mutf7)
                    .as_deref()
                    != Some(f.name.as_str())
            })
            .map(|f| (f.name, f.delimiter))
            .collect());
    }
    let delims: HashMap<&str, Option<char>> = listed
        .iter()
        .map(|f| (f.name.as_str(), f.delimiter))
        .collect();
    let default_delim = listed.iter().find_map(|f| f.delimiter);
    Ok(wanted
        .iter()
        .map(|w| {
            let d = delims.get(w.as_str()).copied().unwrap_or(default_delim);
            (w.clone(), d)
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn sync_folder(
    acct: &Account,
    ui: &Ui,
    ledger: &mut Ledger,
    session: &mut Session,
    folder: &str,
    delim: Option<char>,
    summary: &mut Summary,
    progress: &mut Progress,
) -> Result<()> {
    let sel = session.select(folder, acct.read_only())?;
    let uv = sel.uid_validity;
    let known = ledger.folder(folder).cloned();
    if let Some(st) = &known
        && st.uid_validity != uv
        && !acct.imap.resync
    {
        return Err(data(format!(
            "UIDVALIDITY changed (was {}, now {uv}): the server renumbered this folder, so \
             fetch cannot tell which messages it already has; nothing was changed. Run with \
             --resync to fetch it again without duplicating what is already here",
            st.uid_validity
        )));
    }
    let same_uv = known.as_ref().filter(|s| s.uid_validity == uv);
    let last = same_uv.map_or(0, |s| s.last_uid);
    let resyncing = known.as_ref().is_some_and(|s| s.uid_validity != uv);

    let subdir = match &acct.dest {
        Destination::Maildir(_) => names::maildir_folder(folder, delim),
        _ => None,
    };
    // The local folder's stamp before we touch it (see FolderState::local_stamp).
    let stamp_at_start = match &acct.dest {
        Destination::Maildir(root) => local_stamp(&match &subdir {
            Some(s) => root.join(s),
            None => root.clone(),
        }),
        _ => 0,
    };
    let folder_dir = match &acct.dest {
        Destination::Maildir(root) => Some(match &subdir {
            Some(s) => root.join(s),
            None => root.clone(),
        }),
        _ => None,
    };
    // cur/ alone, for the stamp after a run that delivers (see the end).
    let cur_at_start = folder_dir.as_ref().and_then(|d| mtime_ns(&d.join("cur")));
    // --resync: what we already have from this folder, by content.
    let (resync, stale_keys) = if resyncing {
        let Some(dir) = &folder_dir else {
            return Err(crate::error::usage(
                "--resync can only match messages in a Maildir destination",
            ));
        };
        resync_index(ledger, folder, uv, dir)?
    } else {
        (None, Vec::new())
    };

    // New mail: nothing when UIDNEXT says so; after a few new messages,
    // their metadata in one round trip (UID FETCH last+1:*); otherwise (a
    // first sync, --search, --resync) a UID SEARCH, then the metadata in
    // chunks.
    let have = |u: u32| !acct.all && ledger.contains(&key(uv, u, folder));
    let few_new = sel
        .uid_next
        .and_then(|n| n.checked_sub(last))
        .filter(|&n| n <= FEW_NEW);
    let mut metas = match (&acct.imap.search, few_new) {
        _ if resyncing => {
            let c = session.new_uids(0, acct.imap.search.as_deref())?;
            session.meta(&c.into_iter().filter(|&u| !have(u)).collect::<Vec<_>>())?
        }
        (None, _) if sel.uid_next.is_some_and(|n| n <= last.saturating_add(1)) => Vec::new(),
        (None, Some(n)) => session.meta_after(last, n)?,
        (criteria, _) => {
            let after = if criteria.is_some() { 0 } else { last };
            let c = session.new_uids(after, criteria.as_deref())?;
            session.meta(&c.into_iter().filter(|&u| !have(u)).collect::<Vec<_>>())?
        }
    };
    metas.retain(|m| !have(m.uid));
    let shown = names::decode_mutf7(folder).unwrap_or_else(|_| folder.to_string());
    // Too large for --max-size: reported and left on the server; the
    // folder's last UID stays below it, so it is reported again.
    let mut held_back: Vec<u32> = Vec::new();
    if let Some(max) = acct.max_size {
        metas.retain(|m| {
            if m.size <= max {
                return true;
            }
            ui.warn(
                &acct.name,
                &format!(
                    "{} UID {} ({} bytes) is larger than --max-size {max}; left on the server",
                    escape(&shown),
                    m.uid,
                    m.size
                ),
            );
            ui.message(
                &acct.name,
                Some(&shown),
                Some(&m.uid.to_string()),
                m.size,
                None,
                "skipped",
            );
            held_back.push(m.uid);
            false
        });
    }
    if let Some(n) = acct.limit {
        let room = n.saturating_sub(summary.fetched);
        if metas.len() > room {
            held_back.push(metas[room].uid);
            metas.truncate(room);
        }
    }
    if acct.read_only() {
        summary.available += metas.len();
        summary.available_bytes += metas.iter().map(|m| m.size).sum::<u64>();
        if acct.dry_run() {
            // As below: flags are synced in a Maildir, in keep mode, for
            // a folder synced before under the same UIDVALIDITY.
            let flag_plan = match (&folder_dir, same_uv) {
                (Some(dir), Some(st)) if !acct.deletes() && !resyncing => {
                    plan_flags(acct, ledger, session, folder, &sel, st, dir, stamp_at_start)?
                }
                _ => FlagPlan::default(),
            };
            report_plan(acct, ui, ledger, folder, uv, &metas, &flag_plan, summary);
        }
        return Ok(());
    }
    progress.add(metas.len() as u64, metas.iter().map(|m| m.size).sum());
    let id = acct.ledger_id();
    let mut dest = deliver::open(
        &acct.dest,
        &acct.deliver_options(),
        ledger.dir(),
        &ledger::account_tag(&id),
        subdir.as_deref(),
    )?;
    dest.clean_up()?;
    let mut fetched = Fetcher {
        acct,
        ui,
        folder,
        uv,
        dest: dest.as_mut(),
        batches: Batches::default(),
        committed: Vec::new(),
        failures: Vec::new(),
        failed_uids: Vec::new(),
        resync,
        rematched: Vec::new(),
        progress,
    };
    let r = fetched.fetch_all(session, ledger, &metas, summary);
    let Fetcher {
        committed,
        mut failures,
        failed_uids,
        rematched,
        ..
    } = fetched;
    r?;
    if resyncing {
        // Messages already here get their new UIDs; the old entries go.
        let now = deliver::unix_now();
        for (uid, name, size, fl) in rematched {
            ledger.delivered(
                &key(uv, uid, folder),
                crate::ledger::Entry {
                    name,
                    size,
                    time: now,
                    flags: fl,
                },
            );
        }
        for k in &stale_keys {
            ledger.removed(k);
        }
        ledger.commit()?;
    }

    // The ledger now holds the committed messages. The folder's last UID
    // moves up to just below the first message a destination refused (it
    // is tried again next time); messages that vanished count as settled.
    let listed_max = metas.iter().map(|m| m.uid).max().unwrap_or(0);
    let new_last = match failed_uids.iter().chain(&held_back).min() {
        None => listed_max.max(last),
        Some(&f) => last.max(f.saturating_sub(1)),
    };
    let mut st = same_uv
        .cloned()
        .filter(|_| !resyncing)
        .unwrap_or(FolderState {
            uid_validity: uv,
            last_uid: 0,
            mod_seq: 0,
            local_stamp: 0,
        });
    st.last_uid = new_last.max(st.last_uid);
    ledger.set_folder(folder, st.clone());

    // Only now may the server change, and only for committed messages:
    // those of this run and those an interrupted earlier run committed but
    // did not get to delete. In this mode the ledger holds exactly those
    // (an entry goes once its message is expunged or moved).
    if acct.deletes() {
        let pending: Vec<(u32, String)> = ledger
            .entries()
            .filter_map(|(k, _)| match parse_key(k) {
                Some((v, uid, f)) if v == uv && f == folder => Some((uid, k.clone())),
                _ => None,
            })
            .collect();
        if !pending.is_empty() {
            ledger.commit()?;
            let uids: Vec<u32> = pending.iter().map(|(u, _)| *u).collect();
            if let Some(target) = &acct.imap.move_to {
                session.move_to(&uids, &names::encode_mutf7(target))?;
            } else {
                session.store(&uids, "+FLAGS.SILENT", "(\\Deleted)")?;
                session.uid_expunge(&uids)?;
            }
            for (_, k) in &pending {
                ledger.removed(k);
            }
            summary.deleted += uids.len();
        }
    }
    if let Destination::Maildir(root) = &acct.dest
        && !acct.deletes()
    {
        let dir = match &subdir {
            Some(s) => root.join(s),
            None => root.clone(),
        };
        // A folder seen for the first time was just fetched with its
        // current flags: nothing to sync yet.
        let first_time = known.is_none() || resyncing;
        let (changed, touched) = if first_time {
            (0, false)
        } else {
            sync_flags(
                acct,
                ui,
                ledger,
                session,
                folder,
                &sel,
                &st,
                &dir,
                stamp_at_start,
            )?
        };
        summary.flags_synced += changed;
        if let Some(m) = sel.highest_mod_seq {
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
        } else if committed.is_empty() {
            stamp_at_start
        } else if !acct.imap.sync_deletes
            && cur_at_start.is_some()
            && mtime_ns(&dir.join("cur")) == cur_at_start
        {
            local_stamp(&dir)
        } else {
            0
        };
        ledger.set_folder(folder, st);
    }
    ledger.commit()?;
    if let Some(e) = failures.pop() {
        return Err(e);
    }
    Ok(())
}

/// `--dry-run`: what [`sync_folder`] would do in `folder`.
#[allow(clippy::too_many_arguments)]
fn report_plan(
    acct: &Account,
    ui: &Ui,
    ledger: &Ledger,
    folder: &str,
    uv: u32,
    metas: &[Meta],
    flag_plan: &FlagPlan,
    summary: &mut Summary,
) {
    let name = &acct.name;
    let shown = names::decode_mutf7(folder).unwrap_or_else(|_| folder.to_string());
    let f = Some(shown.as_str());
    let label = |uid: u32| format!("{} UID {uid}", escape(&shown));
    let action = match acct.imap.move_to {
        Some(_) => "would_move",
        None => "would_delete",
    };
    let verb = |what: &str| match &acct.imap.move_to {
        Some(t) => format!("move {what} to {}", escape(t)),
        None => format!("delete {what} from the server"),
    };
    for m in metas {
        let uid = m.uid.to_string();
        let then = if acct.deletes() {
            format!(", then {}", verb("it"))
        } else {
            String::new()
        };
        let what = format!("would fetch {}, {} bytes{then}", label(m.uid), m.size);
        ui.would(name, f, Some(&uid), m.size, "would_fetch", &what);
        if acct.deletes() {
            ui.would(name, f, Some(&uid), m.size, action, "");
            summary.would_delete += 1;
        }
    }
    if acct.deletes() {
        // Committed by an earlier run that did not get to delete them.
        for (k, e) in ledger.entries() {
            if let Some((v, uid, fo)) = parse_key(k)
                && v == uv
                && fo == folder
            {
                let what = format!("would {} (delivered by an earlier run)", verb(&label(uid)));
                ui.would(name, f, Some(&uid.to_string()), e.size, action, &what);
                summary.would_delete += 1;
            }
        }
    }
    for c in &flag_plan.changes {
        let mut parts = Vec::new();
        if !c.add.is_empty() {
            parts.push(format!("add {} on the server", c.add.imap_list()));
        }
        if !c.remove.is_empty() {
            parts.push(format!("remove {} on the server", c.remove.imap_list()));
        }
        if let Some((_, to)) = &c.rename {
            parts.push(format!("rename the local file to {}", to.display()));
        }
        if parts.is_empty() {
            parts.push("record that both sides agree".into());
        }
        let what = format!(
            "would sync the flags of {}: {}",
            label(c.uid),
            parts.join(", ")
        );
        ui.would(name, f, Some(&c.uid.to_string()), 0, "would_flag", &what);
        summary.would_flag += 1;
    }
    if acct.imap.sync_deletes {
        for (uid, _, file) in &flag_plan.gone_on_server {
            if let Some(p) = file {
                let what = format!("would remove {} (expunged on the server)", p.display());
                ui.would(
                    name,
                    f,
                    Some(&uid.to_string()),
                    0,
                    "would_remove_local",
                    &what,
                );
            }
        }
    }
    for (uid, _) in &flag_plan.expunge_local_gone {
        let what = format!(
            "would delete {} from the server (its local copy was deleted)",
            label(*uid)
        );
        ui.would(name, f, Some(&uid.to_string()), 0, "would_delete", &what);
        summary.would_delete += 1;
    }
}

/// SHA-256 of message bytes as stored.
fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// For --resync: the local messages of `folder` known under another
/// UIDVALIDITY, by the SHA-256 of their files, and those entries' keys
/// (removed once the folder is resynced).
#[allow(clippy::type_complexity)]
fn resync_index(
    ledger: &Ledger,
    folder: &str,
    uv: u32,
    dir: &Path,
) -> Result<(Option<HashMap<[u8; 32], (String, u64)>>, Vec<String>)> {
    let local = scan_maildir(dir)?;
    let mut index = HashMap::new();
    let mut stale = Vec::new();
    for (k, e) in ledger.entries() {
        let Some((v, _, f)) = parse_key(k) else {
            continue;
        };
        if f != folder || v == uv {
            continue;
        }
        stale.push(k.clone());
        if let Some((path, _)) = local.get(e.name.as_str()) {
            let bytes = std::fs::read(path)
                .map_err(|e| crate::error::local_io(format!("reading {}: {e}", path.display())))?;
            index.insert(sha256(&bytes), (e.name.clone(), bytes.len() as u64));
        }
    }
    Ok((Some(index), stale))
}

struct Fetcher<'a> {
    acct: &'a Account,
    ui: &'a Ui,
    folder: &'a str,
    uv: u32,
    dest: &'a mut dyn Deliver,
    /// Staged and in flight, not yet committed: (uid, key, flags for the
    /// ledger).
    batches: Batches<(u32, String, String)>,
    /// Committed: (uid, key).
    committed: Vec<(u32, String)>,
    failures: Vec<Error>,
    /// UIDs the destination refused.
    failed_uids: Vec<u32>,
    /// --resync: SHA-256 of what is here -> (local name, size).
    resync: Option<HashMap<[u8; 32], (String, u64)>>,
    /// --resync: messages found here already: (uid, name, size, flags).
    rematched: Vec<(u32, String, u64, String)>,
    progress: &'a mut Progress,
}

/// One FETCH command of a folder's download: whole bodies of these
/// messages (their announced sizes add up to `bytes`).
struct Req {
    uids: Vec<u32>,
    bytes: u64,
}

impl Req {
    fn budget(&self) -> u64 {
        Session::body_budget(self.bytes, self.uids.len())
    }
}

/// A body has arrived whole: deliver it (or, with --resync, match it to a
/// file already here).
fn finish_body(
    mut c: Receiving,
    dest: &mut dyn Deliver,
    resync: &mut Option<HashMap<[u8; 32], (String, u64)>>,
    arrived: &mut Arrived,
) -> Result<()> {
    use sha2::Digest;
    let mut out = Vec::new();
    c.conv.finish(&mut out);
    dest.write(&out)?;
    if let Some(mut h) = c.hasher.take() {
        h.update(&out);
        let digest: [u8; 32] = h.finalize().into();
        if let Some((name, size)) = resync.as_mut().and_then(|k| k.remove(&digest)) {
            dest.abort();
            arrived.found.push((c.uid, name, size));
            return Ok(());
        }
    }
    arrived.staged.push((c.uid, dest.end()?));
    Ok(())
}

/// The message whose body is arriving.
struct Receiving {
    uid: u32,
    conv: CrlfToLf,
    hasher: Option<sha2::Sha256>,
}

/// What the bodies of one read brought: (uid, stored bytes) delivered to
/// the destination, and (uid, name, size) found here already (--resync).
#[derive(Default)]
struct Arrived {
    staged: Vec<(u32, u64)>,
    found: Vec<(u32, String, u64)>,
}

impl Fetcher<'_> {
    /// Download `metas` into the destination, committing every
    /// [`batch_messages`] or BATCH_BYTES. The FETCH commands are pipelined: up
    /// to PIPELINE of them, asking for at most PIPELINE_BYTES, are on their
    /// way at any time, so a round trip is paid once, not per command.
    /// Bodies are taken as they come, by UID, whichever command they answer
    /// and in whatever order.
    fn fetch_all(
        &mut self,
        session: &mut Session,
        ledger: &mut Ledger,
        metas: &[Meta],
        summary: &mut Summary,
    ) -> Result<()> {
        let by_uid: HashMap<u32, &Meta> = metas.iter().map(|m| (m.uid, m)).collect();
        let by_seq: HashMap<u32, u32> = metas.iter().map(|m| (m.seq, m.uid)).collect();
        let mut todo = plan_requests(metas);
        let mut sent: std::collections::VecDeque<Req> = std::collections::VecDeque::new();
        let mut sent_bytes = 0u64;
        let mut cur: Option<Receiving> = None;
        let mut seen: HashSet<u32> = HashSet::new();
        let r = (|| -> Result<()> {
            loop {
                while let Some(next) = todo.front() {
                    let full = sent.len() >= PIPELINE
                        || (!sent.is_empty() && sent_bytes + next.bytes > PIPELINE_BYTES);
                    // A stop request ends the download between commands.
                    if full || crate::signals::stop_requested() {
                        break;
                    }
                    let req = todo.pop_front().expect("front exists");
                    session.send_fetch(&crate::imap::uid_set(&req.uids), "(UID BODY.PEEK[])")?;
                    sent_bytes += req.bytes;
                    sent.push_back(req);
                }
                if sent.is_empty() {
                    return Ok(());
                }
                // Everything on its way may arrive in this read.
                let budget = sent.iter().map(Req::budget).sum();
                let before = session.fetches_pending();
                let mut arrived = Arrived::default();
                let r = self.read_bodies(
                    session,
                    &by_uid,
                    &by_seq,
                    &mut cur,
                    &mut seen,
                    &mut arrived,
                    budget,
                );
                for (uid, n) in arrived.staged {
                    self.stage(by_uid[&uid], n);
                }
                for (uid, name, size) in arrived.found {
                    self.rematch(by_uid[&uid], name, size);
                }
                r?;
                // The commands answered in this read.
                for _ in 0..before - session.fetches_pending() {
                    if let Some(req) = sent.pop_front() {
                        sent_bytes -= req.bytes;
                    }
                }
                // Commit between messages only (nothing half-received).
                if cur.is_none() && self.batches.is_full() {
                    self.rotate(ledger, summary)?;
                }
            }
        })();
        if let Err(e) = r {
            self.dest.abort();
            // A batch already on its way to the disk is kept (the staged
            // one is dropped, and fetched again by the next run).
            if let Err(c) = self.commit_in_flight(ledger, summary) {
                self.ui.warn(&self.acct.name, &c.msg);
            }
            // Read what is still on its way, so the connection can serve the
            // next folder. If it cannot, the account stops: with this error
            // if it stops the account anyway, else with the connection's.
            if let Err(d) = session.discard_fetches() {
                return Err(if folder_only(&e) { d } else { e });
            }
            return Err(e);
        }
        if let Some(c) = cur {
            // Every reply was read to its tagged end, so a body cannot
            // still be arriving.
            self.dest.abort();
            return Err(crate::error::internal(format!(
                "message {} was left half received",
                c.uid
            )));
        }
        self.commit(ledger, summary)
    }

    /// One read of FETCH replies (up to the oldest command's tagged reply),
    /// streaming each body into the destination.
    #[allow(clippy::too_many_arguments)]
    fn read_bodies(
        &mut self,
        session: &mut Session,
        by_uid: &HashMap<u32, &Meta>,
        by_seq: &HashMap<u32, u32>,
        cur: &mut Option<Receiving>,
        seen: &mut HashSet<u32>,
        arrived: &mut Arrived,
        budget: u64,
    ) -> Result<()> {
        use sha2::Digest;
        let dest = &mut *self.dest;
        let resync = &mut self.resync;
        let mut out = Vec::with_capacity(64 * 1024);
        session.read_fetch(budget, &mut |ev| {
            match ev {
                Event::BodyStart {
                    seq,
                    uid,
                    origin,
                    len,
                } => {
                    let uid = uid.or_else(|| by_seq.get(&seq).copied()).ok_or_else(|| {
                        crate::error::protocol("the server sent a body without its UID before it")
                    })?;
                    let meta = by_uid.get(&uid).ok_or_else(|| {
                        crate::error::protocol(format!(
                            "the server sent UID {uid}, which was not asked for"
                        ))
                    })?;
                    if let Some(c) = cur.as_ref() {
                        // Cannot happen: a body is one literal.
                        return Err(crate::error::internal(format!(
                            "UID {uid} began while UID {} was not complete",
                            c.uid
                        )));
                    }
                    if origin.is_some_and(|o| o != 0) {
                        return Err(crate::error::protocol(format!(
                            "the server sent UID {uid} from byte {}, not whole",
                            origin.unwrap_or(0)
                        )));
                    }
                    // RFC822.SIZE may be an estimate (Exchange's is), so a
                    // body may be longer than announced, but not without end.
                    let limit = Session::body_budget(meta.size, 1);
                    if len > limit {
                        return Err(crate::error::protocol(format!(
                            "UID {uid}: the server announced {} bytes and sends {len}",
                            meta.size
                        )));
                    }
                    if !seen.insert(uid) {
                        return Err(crate::error::protocol(format!(
                            "the server sent UID {uid} twice"
                        )));
                    }
                    dest.begin(&info(meta))?;
                    *cur = Some(Receiving {
                        uid,
                        conv: CrlfToLf::default(),
                        hasher: resync.is_some().then(sha2::Sha256::new),
                    });
                }
                Event::BodyData(data) => {
                    if let Some(c) = cur.as_mut() {
                        out.clear();
                        c.conv.convert(data, &mut out);
                        if let Some(h) = c.hasher.as_mut() {
                            h.update(&out);
                        }
                        dest.write(&out)?;
                    }
                }
                Event::BodyEnd => {
                    if let Some(c) = cur.take() {
                        finish_body(c, dest, resync, arrived)?;
                    }
                }
                Event::FetchEnd { .. } | Event::Done { .. } => {}
            }
            Ok(())
        })
    }

    fn rematch(&mut self, m: &Meta, name: String, size: u64) {
        let f = Flags::parse(m.flags.iter().map(String::as_str));
        self.rematched
            .push((m.uid, name, size, flags::to_ledger(&f)));
    }

    fn stage(&mut self, m: &Meta, stored: u64) {
        self.progress.message_done(m.size);
        let f = Flags::parse(m.flags.iter().map(String::as_str));
        self.batches.push(
            (
                m.uid,
                key(self.uv, m.uid, self.folder),
                flags::to_ledger(&f),
            ),
            stored,
        );
    }

    /// The staged batch is full: complete the batch in flight, then start
    /// this one's commit so that it becomes durable while the next batch
    /// downloads; or commit it in place when the destination cannot.
    fn rotate(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        self.commit_in_flight(ledger, summary)?;
        if self.batches.start(&mut *self.dest)? {
            return Ok(());
        }
        self.commit(ledger, summary)
    }

    /// Commit the batch in flight, then the staged one.
    fn commit(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        self.commit_in_flight(ledger, summary)?;
        let items = self.batches.take_staged();
        self.commit_items(items, ledger, summary)
    }

    fn commit_in_flight(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        let items = self.batches.take_in_flight();
        self.commit_items(items, ledger, summary)
    }

    /// Commit `items` (the next batch the destination commits), and act on
    /// the outcomes.
    fn commit_items(
        &mut self,
        items: Vec<(u32, String, String)>,
        ledger: &mut Ledger,
        summary: &mut Summary,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = items.iter().map(|(_, k, _)| k.clone()).collect();
        if self.dest.commit_len() != keys.len() {
            return Err(crate::error::internal(format!(
                "{} messages to commit but {} keys",
                self.dest.commit_len(),
                keys.len()
            )));
        }
        let outcomes = self.dest.commit(ledger, &keys)?;
        for ((uid, k, fl), outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered { entry, location } => {
                    summary.fetched += 1;
                    summary.bytes += entry.size;
                    let shown = names::decode_mutf7(self.folder)
                        .unwrap_or_else(|_| self.folder.to_string());
                    self.ui.message(
                        &self.acct.name,
                        Some(&shown),
                        Some(&uid.to_string()),
                        entry.size,
                        Some(&location),
                        "delivered",
                    );
                    ledger.set_flags(&k, &fl);
                    self.committed.push((uid, k));
                }
                Outcome::Failed(e) => {
                    self.ui.warn(
                        &self.acct.name,
                        &format!(
                            "{} UID {uid} stays on the server: {}",
                            escape(self.folder),
                            e.msg
                        ),
                    );
                    self.failed_uids.push(uid);
                    self.failures.push(e);
                }
            }
        }
        Ok(())
    }
}

fn info(m: &Meta) -> MessageInfo {
    let f = Flags::parse(m.flags.iter().map(String::as_str));
    MessageInfo {
        received: m.received,
        flags: Some(flags::maildir_letters(&f)),
    }
}

/// One message whose flags a sync changes.
struct FlagChange {
    uid: u32,
    key: String,
    /// The local file's new name, when its letters change.
    rename: Option<(PathBuf, PathBuf)>,
    /// Flags to add and to remove on the server.
    add: Flags,
    remove: Flags,
    /// The new agreed flags for the ledger, when they changed.
    base: Option<String>,
}

/// What a flag sync of one folder would do ([`plan_flags`]), done by
/// [`apply_flags`] or reported by `--dry-run`.
#[derive(Default)]
struct FlagPlan {
    changes: Vec<FlagChange>,
    /// Expunged on the server: (uid, key, local file if still here).
    gone_on_server: Vec<(u32, String, Option<PathBuf>)>,
    /// `--sync-deletes`: deleted locally, to expunge on the server.
    expunge_local_gone: Vec<(u32, String)>,
}

/// Keep flags in step both ways between the server and the Maildir. Per
/// message the ledger holds the flags both sides agreed on last time (the
/// base); a side that changed a flag since wins, and when both changed it
/// the addition wins (`imap::flags::merge`). Server changes come from
/// CHANGEDSINCE when the server has CONDSTORE (cost: what changed), else
/// from every message's flags; local changes from the file names.
///
/// Returns how many messages changed, and whether local files were touched.
#[allow(clippy::too_many_arguments)]
fn sync_flags(
    acct: &Account,
    ui: &Ui,
    ledger: &mut Ledger,
    session: &mut Session,
    folder: &str,
    sel: &Selected,
    st: &FolderState,
    dir: &Path,
    stamp_now: u64,
) -> Result<(usize, bool)> {
    let plan = plan_flags(acct, ledger, session, folder, sel, st, dir, stamp_now)?;
    apply_flags(acct, ui, ledger, session, folder, dir, plan)
}

/// Work out what a flag sync would change, changing nothing.
#[allow(clippy::too_many_arguments)]
fn plan_flags(
    acct: &Account,
    ledger: &Ledger,
    session: &mut Session,
    folder: &str,
    sel: &Selected,
    st: &FolderState,
    dir: &Path,
    stamp_now: u64,
) -> Result<FlagPlan> {
    let uv = sel.uid_validity;
    let mut plan = FlagPlan::default();
    if st.last_uid == 0 {
        return Ok(plan);
    }
    let local_unchanged = st.local_stamp != 0 && st.local_stamp == stamp_now;
    let incremental = session.condstore() && st.mod_seq > 0;
    let server_unchanged = incremental && sel.highest_mod_seq == Some(st.mod_seq);
    if local_unchanged && server_unchanged && !acct.imap.sync_deletes {
        return Ok(plan); // O(1): nothing changed on either side
    }
    let server: HashMap<u32, Flags> = if server_unchanged {
        HashMap::new()
    } else {
        session
            .flags(
                st.last_uid,
                if incremental { Some(st.mod_seq) } else { None },
            )?
            .into_iter()
            .map(|(u, f)| (u, Flags::parse(f.iter().map(String::as_str))))
            .collect()
    };
    // Without CONDSTORE the listing is complete: a UID missing from it was
    // expunged on the server. With it, only --sync-deletes asks (one UID
    // SEARCH) which UIDs still exist.
    let existing: Option<HashSet<u32>> = if !incremental {
        Some(server.keys().copied().collect())
    } else if acct.imap.sync_deletes {
        Some(session.new_uids(0, None)?.into_iter().collect())
    } else {
        None
    };
    // The messages to look at: all of the folder's, or (nothing changed
    // locally, nothing to learn about deletions) just those the server
    // says changed.
    let mine: Vec<(u32, String, String, String)> = if local_unchanged && existing.is_none() {
        server
            .keys()
            .filter_map(|&uid| {
                let k = key(uv, uid, folder);
                let e = ledger.get(&k)?;
                Some((uid, k, e.name.clone(), e.flags.clone()))
            })
            .collect()
    } else {
        ledger
            .entries()
            .filter_map(|(k, e)| match parse_key(k) {
                Some((v, uid, f)) if v == uv && f == folder => {
                    Some((uid, k.clone(), e.name.clone(), e.flags.clone()))
                }
                _ => None,
            })
            .collect()
    };
    if mine.is_empty() {
        return Ok(plan);
    }
    let local = if local_unchanged {
        locate(dir, &mine)?
    } else {
        scan_maildir(dir)?
    };

    for (uid, k, name, base_s) in mine {
        let base = flags::from_ledger(&base_s);
        let file = local.get(name.as_str());
        if let Some(ex) = &existing
            && !ex.contains(&uid)
        {
            plan.gone_on_server
                .push((uid, k, file.map(|(p, _)| p.clone())));
            continue;
        }
        let Some((path, letters)) = file else {
            if acct.imap.sync_deletes {
                plan.expunge_local_gone.push((uid, k));
            }
            continue;
        };
        let local_f = flags::flags_from_letters(letters);
        let server_f = server.get(&uid).cloned().unwrap_or_else(|| base.clone());
        let merged = flags::merge(&base, &local_f, &server_f);
        let (add, remove) = flags::diff(&server_f, &merged);
        // Other clients' letters (P, lower-case keywords) are kept.
        let rename =
            (flags::maildir_letters(&merged) != flags::maildir_letters(&local_f)).then(|| {
                let new_name =
                    flags::with_letters(&name, &flags::replace_letters(letters, &merged));
                (path.clone(), dir.join("cur").join(new_name))
            });
        let new_base = (merged != base).then(|| flags::to_ledger(&merged));
        if rename.is_some() || !add.is_empty() || !remove.is_empty() || new_base.is_some() {
            plan.changes.push(FlagChange {
                uid,
                key: k,
                rename,
                add,
                remove,
                base: new_base,
            });
        }
    }
    // In UID order: the order of a dry run's report, and of the STOREs.
    plan.changes.sort_by_key(|c| c.uid);
    Ok(plan)
}

/// Carry out a [`FlagPlan`]. Order, so that a crash never reverts a user's
/// change: rename local files (and fsync the directories), then UID STORE
/// on the server, and only then record the new base in the ledger.
fn apply_flags(
    acct: &Account,
    ui: &Ui,
    ledger: &mut Ledger,
    session: &mut Session,
    folder: &str,
    dir: &Path,
    plan: FlagPlan,
) -> Result<(usize, bool)> {
    // 1. Local side.
    let mut renamed = false;
    for (from, to) in plan.changes.iter().filter_map(|c| c.rename.as_ref()) {
        crate::crash::point("before a flag rename");
        std::fs::rename(from, to).map_err(|e| {
            crate::error::local_io(format!(
                "renaming {} to {}: {e}",
                from.display(),
                to.display()
            ))
        })?;
        renamed = true;
    }
    if renamed {
        crate::durable::sync_dir(&dir.join("new"))?;
        crate::durable::sync_dir(&dir.join("cur"))?;
    }
    // 2. Server side, one STORE per distinct set of flags.
    let mut store_add: HashMap<String, Vec<u32>> = HashMap::new();
    let mut store_remove: HashMap<String, Vec<u32>> = HashMap::new();
    for c in &plan.changes {
        if !c.add.is_empty() {
            store_add.entry(c.add.imap_list()).or_default().push(c.uid);
        }
        if !c.remove.is_empty() {
            store_remove
                .entry(c.remove.imap_list())
                .or_default()
                .push(c.uid);
        }
    }
    for (list, uids) in &store_add {
        session.store(uids, "+FLAGS.SILENT", list)?;
    }
    for (list, uids) in &store_remove {
        session.store(uids, "-FLAGS.SILENT", list)?;
    }
    // 3. The new base.
    let mut rebased = 0;
    for c in &plan.changes {
        if let Some(f) = &c.base {
            ledger.set_flags(&c.key, f);
            rebased += 1;
        }
    }
    // Deletions, only with --sync-deletes; otherwise a message gone on one
    // side stays on the other, and the ledger stops tracking server-gone ones.
    for (_, k, file) in &plan.gone_on_server {
        if acct.imap.sync_deletes
            && let Some(p) = file
        {
            std::fs::remove_file(p)
                .map_err(|e| crate::error::local_io(format!("removing {}: {e}", p.display())))?;
        }
        ledger.removed(k);
    }
    if !plan.expunge_local_gone.is_empty() {
        ledger.commit()?;
        let uids: Vec<u32> = plan.expunge_local_gone.iter().map(|(u, _)| *u).collect();
        session.store(&uids, "+FLAGS.SILENT", "(\\Deleted)")?;
        session.uid_expunge(&uids)?;
        for (_, k) in &plan.expunge_local_gone {
            ledger.removed(k);
        }
    }
    let changed = rebased + plan.gone_on_server.len() + plan.expunge_local_gone.len();
    if changed > 0 {
        ui.detail(
            &acct.name,
            &format!("{}: flags of {rebased} message(s) synced", escape(folder)),
        );
    }
    let touched = renamed || (acct.imap.sync_deletes && !plan.gone_on_server.is_empty());
    Ok((changed, touched))
}

/// A directory's modification time in ns, if it can be read.
fn mtime_ns(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
}

/// The local folder's stamp: `new/` and `cur/` modification times (ns),
/// combined; 0 if unknown.
fn local_stamp(dir: &Path) -> u64 {
    match (mtime_ns(&dir.join("new")), mtime_ns(&dir.join("cur"))) {
        (Some(n), Some(c)) => n.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(c).max(1),
        _ => 0,
    }
}

/// Find the files of `mine` without scanning, where the folder is known
/// unchanged since the last sync: each is where that sync left it
/// (`new/NAME` without flags, `cur/NAME:2,LETTERS` with). Falls back to a
/// scan if any is not there (another client's letters, say).
fn locate(
    dir: &Path,
    mine: &[(u32, String, String, String)],
) -> Result<HashMap<String, (PathBuf, String)>> {
    let mut out = HashMap::with_capacity(mine.len());
    for (_, _, name, base) in mine {
        let letters = flags::maildir_letters(&flags::from_ledger(base));
        let candidates = if letters.is_empty() {
            vec![
                dir.join("new").join(name),
                dir.join("cur").join(format!("{name}:2,")),
            ]
        } else {
            vec![dir.join("cur").join(flags::with_letters(name, &letters))]
        };
        match candidates.into_iter().find(|p| p.exists()) {
            Some(p) => {
                out.insert(name.clone(), (p, letters));
            }
            None => return scan_maildir(dir),
        }
    }
    Ok(out)
}

/// The messages in a Maildir folder: base name (without `:2,` info) ->
/// (path, flag letters).
fn scan_maildir(dir: &Path) -> Result<HashMap<String, (PathBuf, String)>> {
    let mut out = HashMap::new();
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::error::local_io(format!(
                    "reading {}: {e}",
                    d.display()
                )));
            }
        };
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (base, letters) = flags::split_maildir_name(name);
            out.insert(
                base.to_string(),
                (entry.path(), letters.unwrap_or_default().to_string()),
            );
        }
    }
    Ok(out)
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
