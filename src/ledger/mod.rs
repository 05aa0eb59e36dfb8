//! The per-account durable ledger: what has been delivered, under which
//! local name, and what is still to be done on the server.
//!
//! On disk, in `STATE/fetch/ACCOUNT-DIR/`:
//! - `lock`: held with flock for the whole run; a second run on the same
//!   account fails at once (exit 75). The kernel drops it when a run dies.
//! - `ledger`: a snapshot (written whole, fsynced, renamed into place),
//!   generation G, ending in an `End` record that counts the records.
//! - `journal`: generation G, append-only records since the snapshot.
//!
//! `codec.rs` turns records into bytes and back (no I/O; fuzzed);
//! `files.rs` owns the files; this module decides what to accept and keeps
//! the ledger's maps. A torn journal tail (the crash of a writer) is cut
//! off; a bad record followed by good data, a bad snapshot, a generation
//! mismatch or a newer format version is corruption: we refuse (exit 65)
//! rather than guess, because treating a damaged ledger as empty would
//! fetch everything again.
//!
//! Group commit: records are buffered by [`Ledger::intend`],
//! [`Ledger::delivered`] and [`Ledger::removed`], and [`Ledger::commit`]
//! writes them with one `write` and one `fdatasync`, however many messages
//! they describe.
//!
//! Compaction writes a new snapshot (generation G+1), then a fresh journal
//! (G+1). A crash in between leaves a journal of generation G beside a
//! snapshot of G+1, which is recognised as already folded in and discarded.

mod codec;
mod files;

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, data};
use crate::hash::{self, Map};
pub use codec::fuzz_parse;
use codec::{
    HEADER_LEN, JOURNAL_MAGIC, Record, SNAPSHOT_MAGIC, header, parse_header, parse_records,
};
use files::Journal;

/// Compact when the journal grows past this and past the snapshot's size.
const COMPACT_MIN_JOURNAL: u64 = 1 << 20;

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name we gave it (in `new/`, or `cur/` with flags added).
    pub name: String,
    /// Bytes stored locally.
    pub size: u64,
    /// When it was delivered (seconds since the epoch).
    pub time: u64,
    /// IMAP: the flags both sides agreed on at the last sync (the base of
    /// the three-way merge), as `imap::flags::to_ledger` writes them.
    /// Empty for POP3.
    pub flags: String,
}

/// A message a mail server refused for good (LMTP/SMTP 5xx): it stays on
/// the server and is not offered again until the user asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// When (seconds since the epoch).
    pub time: u64,
    /// Why, with the server's words.
    pub reason: String,
}

/// What the ledger knows about one IMAP folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderState {
    pub uid_validity: u32,
    /// The highest UID fetched (or known gone): later runs look above it.
    pub last_uid: u32,
    /// HIGHESTMODSEQ at the last flag sync (0: unknown, no CONDSTORE).
    pub mod_seq: u64,
    /// The local Maildir folder's `new/` and `cur/` modification times
    /// when it was last known to match the ledger (0: unknown). Unchanged
    /// means nobody renamed or removed a file since, so there is nothing to
    /// scan for.
    pub local_stamp: u64,
}

/// A delivery that was about to be published when the journal was last
/// written: recovery decides whether it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub key: String,
    pub target: Target,
}

/// Where an intended delivery was going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `name` in `new/` of the Maildir `dir` (any bytes a path may hold).
    Maildir { dir: PathBuf, name: String },
    /// `len` bytes at `offset` in the mbox `path`, with this CRC-32, so a
    /// later run can tell our whole message from a torn or foreign one.
    Mbox {
        path: PathBuf,
        offset: u64,
        len: u64,
        crc: u32,
    },
}

/// The ledger of one account, locked for the lifetime of this value.
pub struct Ledger {
    dir: PathBuf,
    account: String,
    _lock: File,
    journal: Journal,
    snapshot_len: u64,
    generation: u64,
    entries: Map<String, Entry>,
    intents: Vec<Intent>,
    folders: Map<String, FolderState>,
    rejected: Map<String, Rejection>,
    /// Records not written yet (group commit).
    buf: Vec<u8>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// The state directory for `account`: a readable, safe name plus a hash of
/// the exact identity, so distinct accounts never share a ledger.
pub fn account_dir_name(account: &str) -> String {
    let safe: String = account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{safe}-{}", account_tag(account))
}

/// A short, stable tag for `account` (8 hex digits).
pub fn account_tag(account: &str) -> String {
    hex(&Sha256::digest(account.as_bytes())[..4])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Where ledgers live: `$XDG_STATE_HOME/fetch`, else the local data dir.
pub fn default_root() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("fetch"))
}

fn corrupt(path: &Path, why: &str) -> Error {
    data(format!(
        "the ledger file {} is damaged: {why}. fetch will not guess what was already \
         delivered. To start over, move the directory {} aside: messages still on the \
         server will then be fetched again",
        path.display(),
        path.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ))
}

impl Ledger {
    /// Lock and load the ledger of `account` under `root`, creating it when
    /// this is the account's first run. (A run locks, then loads on
    /// another thread: `run::run`.)
    pub fn open(root: &Path, account: &str) -> Result<Ledger> {
        Ledger::lock(root, account)?.load()
    }

    /// Take the account's lock (at once, or fail: another run holds it),
    /// without reading the ledger yet.
    pub fn lock(root: &Path, account: &str) -> Result<Locked> {
        let dir = root.join(account_dir_name(account));
        let lock = files::lock(&dir)?;
        Ok(Locked {
            dir,
            account: account.to_string(),
            lock,
        })
    }
}

/// A ledger whose lock is held but whose files are not read yet.
#[derive(Debug)]
pub struct Locked {
    dir: PathBuf,
    account: String,
    lock: File,
}

impl Locked {
    /// Read the snapshot and journal (cutting a torn journal tail).
    pub fn load(self) -> Result<Ledger> {
        let Locked { dir, account, lock } = self;
        let account = account.as_str();
        let mut state = State::default();
        let snap_path = dir.join("ledger");
        let (generation, snapshot_len) = match files::read(&snap_path)? {
            None => (0, 0),
            Some(bytes) => {
                let generation = match parse_header(&bytes, SNAPSHOT_MAGIC, "ledger") {
                    Ok(Some(g)) => g,
                    Ok(None) => return Err(corrupt(&snap_path, "the file is empty or cut short")),
                    Err(e) => return Err(corrupt(&snap_path, &e)),
                };
                // A POP3 entry takes about 80 bytes: size the map once.
                state.entries.reserve(bytes.len() / 96);
                let (mut seen, mut end) = (0u64, None);
                let scanned = parse_records(&bytes, HEADER_LEN, |r| {
                    if end.is_some() {
                        return Err("it does not end with an end record".into());
                    }
                    if let Record::End { count } = r {
                        end = Some(count);
                        return Ok(());
                    }
                    seen += 1;
                    state.apply(account, r)
                })
                .map_err(|e| corrupt(&snap_path, &e))?;
                let Some(count) = end else {
                    return Err(corrupt(&snap_path, "it does not end with an end record"));
                };
                if scanned.torn || count != seen {
                    return Err(corrupt(&snap_path, "it is incomplete"));
                }
                (generation, bytes.len() as u64)
            }
        };

        let jpath = dir.join("journal");
        let mut journal_ok_len = None;
        if let Some(bytes) = files::read(&jpath)? {
            match parse_header(&bytes, JOURNAL_MAGIC, "journal") {
                Err(e) => return Err(corrupt(&jpath, &e)),
                Ok(None) => {} // torn creation: start a fresh journal
                Ok(Some(g)) if g + 1 == generation => {} // folded into the snapshot already
                Ok(Some(g)) if g != generation => {
                    return Err(corrupt(
                        &jpath,
                        &format!(
                            "its generation {g} does not match the snapshot's {generation} \
                             (a ledger file is missing or was replaced)"
                        ),
                    ));
                }
                Ok(Some(_)) => {
                    let scanned = parse_records(&bytes, HEADER_LEN, |r| match r {
                        Record::End { .. } => Err("it holds a snapshot record".into()),
                        r => state.apply(account, r),
                    })
                    .map_err(|e| corrupt(&jpath, &e))?;
                    journal_ok_len = Some((scanned.good_len as u64, scanned.torn));
                }
            }
        }

        let journal = match journal_ok_len {
            Some((len, torn)) => Journal::reopen(jpath, len, torn)?,
            None => new_journal(&dir, account, generation)?,
        };
        Ok(Ledger {
            dir,
            account: account.to_string(),
            _lock: lock,
            journal,
            snapshot_len,
            generation,
            entries: state.entries,
            intents: state.intents,
            folders: state.folders,
            rejected: state.rejected,
            buf: Vec::new(),
        })
    }
}

impl Ledger {
    /// Close the files (and the lock) but leave the maps' memory to the
    /// process's exit, which follows (see `run::exit_follows`).
    pub fn close_for_exit(self) {
        let Ledger {
            entries, folders, ..
        } = self;
        std::mem::forget(entries);
        std::mem::forget(folders);
    }

    /// The account's state directory (also home to spool files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Deliveries that were being published when the last run stopped.
    pub fn pending_intents(&self) -> &[Intent] {
        &self.intents
    }

    /// Buffer: the message `key` is about to be published at `target`.
    pub fn intend(&mut self, key: &str, target: Target) {
        let i = Intent {
            key: key.into(),
            target,
        };
        Record::Intent(i.clone()).encode(&mut self.buf);
        self.intents.push(i);
    }

    /// Buffer: `key` is delivered as `entry`.
    pub fn delivered(&mut self, key: &str, entry: Entry) {
        Record::Delivered {
            key: key.into(),
            entry: entry.clone(),
        }
        .encode(&mut self.buf);
        self.intents.retain(|i| i.key != key);
        if !self.rejected.is_empty() {
            self.rejected.remove(key);
        }
        self.entries.insert(key.into(), entry);
    }

    /// Buffer: a mail server refused `key` for good.
    pub fn rejected(&mut self, key: &str, rejection: Rejection) {
        Record::Rejected {
            key: key.into(),
            rejection: rejection.clone(),
        }
        .encode(&mut self.buf);
        self.rejected.insert(key.into(), rejection);
    }

    /// Whether (and why) a mail server refused `key` for good.
    pub fn rejection(&self, key: &str) -> Option<&Rejection> {
        self.rejected.get(key)
    }

    /// The keys of the messages refused for good.
    pub fn rejected_keys(&self) -> impl Iterator<Item = &String> {
        self.rejected.keys()
    }

    /// Buffer: forget that `key` was refused (its message left the server).
    pub fn forget_rejection(&mut self, key: &str) {
        if self.rejected.remove(key).is_some() {
            Record::Removed { key: key.into() }.encode(&mut self.buf);
        }
    }

    /// Buffer: the flags last agreed for `key` are now `flags`.
    pub fn set_flags(&mut self, key: &str, flags: &str) {
        if let Some(e) = self.entries.get_mut(key)
            && e.flags != flags
        {
            e.flags = flags.to_string();
            Record::Flags {
                key: key.into(),
                flags: flags.into(),
            }
            .encode(&mut self.buf);
        }
    }

    /// What the ledger knows about IMAP folder `name`.
    pub fn folder(&self, name: &str) -> Option<&FolderState> {
        self.folders.get(name)
    }

    /// Buffer: IMAP folder `name` is now at `state` (no write if unchanged).
    pub fn set_folder(&mut self, name: &str, state: FolderState) {
        if self.folders.get(name) != Some(&state) {
            Record::Folder {
                name: name.into(),
                state: state.clone(),
            }
            .encode(&mut self.buf);
            self.folders.insert(name.into(), state);
        }
    }

    /// Every entry, with its key.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Buffer: `key` is gone from the server; forget it.
    pub fn removed(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            Record::Removed { key: key.into() }.encode(&mut self.buf);
        }
    }

    /// Buffer: the intended delivery of `key` did not happen.
    pub fn aborted(&mut self, key: &str) {
        Record::Aborted { key: key.into() }.encode(&mut self.buf);
        self.intents.retain(|i| i.key != key);
    }

    /// Write the buffered records and make them durable: the commit point.
    pub fn commit(&mut self) -> Result<()> {
        self.write_buffered()?;
        self.journal.sync()
    }

    /// Write the buffered records without waiting for the disk (for records
    /// whose loss is harmless, such as "removed from the server").
    pub fn write_buffered(&mut self) -> Result<()> {
        self.journal.append(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Compact if the journal has grown large: a new snapshot replaces the
    /// journal. Entries for which `keep` is false are dropped.
    pub fn maybe_compact(&mut self, keep: impl Fn(&str) -> bool) -> Result<bool> {
        if !self.compaction_due() {
            return Ok(false);
        }
        self.compact(keep)?;
        Ok(true)
    }

    /// Whether the journal has grown enough to be folded into a snapshot.
    pub fn compaction_due(&self) -> bool {
        self.journal.len() >= COMPACT_MIN_JOURNAL.max(self.snapshot_len)
    }

    /// Write a snapshot of the current state and start an empty journal.
    pub fn compact(&mut self, keep: impl Fn(&str) -> bool) -> Result<()> {
        self.write_buffered()?;
        self.entries.retain(|k, _| keep(k));
        self.rejected.retain(|k, _| keep(k));
        let generation = self.generation + 1;
        let mut out = header(SNAPSHOT_MAGIC, generation);
        Record::Meta {
            account: self.account.clone(),
        }
        .encode(&mut out);
        let mut count = 1u64;
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        for k in keys {
            Record::Delivered {
                key: k.clone(),
                entry: self.entries[k].clone(),
            }
            .encode(&mut out);
            count += 1;
        }
        for i in &self.intents {
            Record::Intent(i.clone()).encode(&mut out);
            count += 1;
        }
        let mut keys: Vec<&String> = self.rejected.keys().collect();
        keys.sort();
        for k in keys {
            Record::Rejected {
                key: k.clone(),
                rejection: self.rejected[k].clone(),
            }
            .encode(&mut out);
            count += 1;
        }
        let mut names: Vec<&String> = self.folders.keys().collect();
        names.sort();
        for n in names {
            Record::Folder {
                name: n.clone(),
                state: self.folders[n].clone(),
            }
            .encode(&mut out);
            count += 1;
        }
        Record::End { count }.encode(&mut out);
        files::replace(&self.dir, "ledger", &out)?;
        self.snapshot_len = out.len() as u64;
        self.generation = generation;
        self.journal = new_journal(&self.dir, &self.account, generation)?;
        Ok(())
    }
}

/// What the ledger files say, built up record by record as they are read.
struct State {
    entries: Map<String, Entry>,
    intents: Vec<Intent>,
    folders: Map<String, FolderState>,
    rejected: Map<String, Rejection>,
}

impl Default for State {
    fn default() -> State {
        State {
            entries: hash::map(0),
            intents: Vec::new(),
            folders: hash::map(0),
            rejected: hash::map(0),
        }
    }
}

impl State {
    fn apply(&mut self, account: &str, r: Record) -> std::result::Result<(), String> {
        match r {
            Record::Meta { account: a } => {
                if a != account {
                    return Err(format!("it belongs to account {a:?}, not {account:?}"));
                }
            }
            Record::Intent(i) => self.intents.push(i),
            Record::Delivered { key, entry } => {
                if !self.intents.is_empty() {
                    self.intents.retain(|i| i.key != key);
                }
                if !self.rejected.is_empty() {
                    self.rejected.remove(&key);
                }
                self.entries.insert(key, entry);
            }
            Record::Removed { key } => {
                self.entries.remove(&key);
                self.rejected.remove(&key);
            }
            Record::Rejected { key, rejection } => {
                self.rejected.insert(key, rejection);
            }
            Record::Aborted { key } => self.intents.retain(|i| i.key != key),
            Record::Flags { key, flags } => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.flags = flags;
                }
            }
            Record::Folder { name, state } => {
                self.folders.insert(name, state);
            }
            Record::End { .. } => {}
        }
        Ok(())
    }
}

/// A fresh journal of `generation` for `account`, replacing the old one.
fn new_journal(dir: &Path, account: &str, generation: u64) -> Result<Journal> {
    let mut bytes = header(JOURNAL_MAGIC, generation);
    Record::Meta {
        account: account.to_string(),
    }
    .encode(&mut bytes);
    Journal::create(dir, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::fs;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            size: 10,
            time: 1_700_000_000,
            flags: String::new(),
        }
    }

    const ACCT: &str = "pop3:alice@mail.example";

    fn md(name: &str) -> Target {
        Target::Maildir {
            dir: "/m".into(),
            name: name.into(),
        }
    }

    #[test]
    fn persists_across_opens_and_compaction() {
        let root = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            assert!(l.is_empty());
            l.intend("u:1", md("a"));
            l.delivered("u:1", entry("a"));
            l.delivered("u:2", entry("b"));
            l.commit().unwrap();
        }
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            assert_eq!(l.len(), 2);
            assert!(l.pending_intents().is_empty());
            l.removed("u:1");
            l.commit().unwrap();
            l.compact(|k| k != "u:gone").unwrap();
            l.delivered("u:3", entry("c"));
            l.commit().unwrap();
        }
        let l = Ledger::open(root.path(), ACCT).unwrap();
        assert_eq!(l.get("u:2"), Some(&entry("b")));
        assert_eq!(l.get("u:3"), Some(&entry("c")));
        assert!(!l.contains("u:1"));
    }

    #[test]
    fn folders_and_flags_persist_through_compaction() {
        let root = tempfile::tempdir().unwrap();
        let st = FolderState {
            uid_validity: 9,
            last_uid: 40,
            mod_seq: 1234,
            local_stamp: 99,
        };
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            l.delivered("i:9:40:INBOX", entry("a"));
            l.set_flags("i:9:40:INBOX", "\\Seen");
            l.set_folder("INBOX", st.clone());
            l.commit().unwrap();
        }
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            assert_eq!(l.folder("INBOX"), Some(&st));
            assert_eq!(l.get("i:9:40:INBOX").unwrap().flags, "\\Seen");
            l.compact(|_| true).unwrap();
        }
        let l = Ledger::open(root.path(), ACCT).unwrap();
        assert_eq!(l.folder("INBOX"), Some(&st));
        assert_eq!(l.get("i:9:40:INBOX").unwrap().flags, "\\Seen");
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let root = tempfile::tempdir().unwrap();
        let _l = Ledger::open(root.path(), ACCT).unwrap();
        let e = Ledger::open(root.path(), ACCT).unwrap_err();
        assert_eq!(e.kind, Kind::Temporary);
        assert!(e.message().contains("another fetch"), "{}", e.message());
        // A different account is independent.
        Ledger::open(root.path(), "pop3:bob@mail.example").unwrap();
    }

    #[test]
    fn intent_without_delivery_survives_reopen() {
        let root = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            l.intend("u:1", md("a"));
            l.intend("u:2", md("b"));
            l.commit().unwrap();
        }
        let mut l = Ledger::open(root.path(), ACCT).unwrap();
        assert_eq!(l.pending_intents().len(), 2);
        l.delivered("u:1", entry("a"));
        l.aborted("u:2");
        l.commit().unwrap();
        drop(l);
        let l = Ledger::open(root.path(), ACCT).unwrap();
        assert!(l.pending_intents().is_empty());
        assert!(l.contains("u:1") && !l.contains("u:2"));
    }

    fn journal_path(root: &Path) -> PathBuf {
        root.join(account_dir_name(ACCT)).join("journal")
    }

    fn setup_two(root: &Path) -> u64 {
        let mut l = Ledger::open(root, ACCT).unwrap();
        l.delivered("u:1", entry("a"));
        l.commit().unwrap();
        let len_after_first = l.journal.len();
        l.delivered("u:2", entry("b"));
        l.commit().unwrap();
        len_after_first
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut() {
        let root = tempfile::tempdir().unwrap();
        let first = setup_two(root.path());
        let full = fs::read(journal_path(root.path())).unwrap();
        for cut in first as usize..full.len() {
            fs::write(journal_path(root.path()), &full[..cut]).unwrap();
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            assert!(l.contains("u:1"), "cut {cut}");
            assert!(!l.contains("u:2"), "cut {cut}");
            // Appending after a truncated tail yields a readable journal.
            l.delivered("u:3", entry("c"));
            l.commit().unwrap();
            drop(l);
            let l = Ledger::open(root.path(), ACCT).unwrap();
            assert!(l.contains("u:1") && l.contains("u:3"), "cut {cut}");
        }
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let root = tempfile::tempdir().unwrap();
        setup_two(root.path());
        let mut full = fs::read(journal_path(root.path())).unwrap();
        full.extend_from_slice(&[0; 4096]);
        fs::write(journal_path(root.path()), &full).unwrap();
        let l = Ledger::open(root.path(), ACCT).unwrap();
        assert!(l.contains("u:2"));
    }

    #[test]
    fn damage_in_the_middle_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let first = setup_two(root.path()) as usize;
        let mut full = fs::read(journal_path(root.path())).unwrap();
        full[first - 2] ^= 0x55; // inside the first delivered record
        fs::write(journal_path(root.path()), &full).unwrap();
        let e = Ledger::open(root.path(), ACCT).unwrap_err();
        assert_eq!(e.kind, Kind::Data);
        assert!(e.message().contains("damaged"), "{}", e.message());
    }

    #[test]
    fn garbage_newer_and_symlinked_files_are_refused() {
        let root = tempfile::tempdir().unwrap();
        setup_two(root.path());
        let jp = journal_path(root.path());
        let good = fs::read(&jp).unwrap();

        fs::write(&jp, b"this is not a journal at all, just some text\n").unwrap();
        assert_eq!(
            Ledger::open(root.path(), ACCT).unwrap_err().kind,
            Kind::Data
        );

        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        fs::write(&jp, &newer).unwrap();
        let e = Ledger::open(root.path(), ACCT).unwrap_err();
        assert_eq!(e.kind, Kind::Data);
        assert!(e.message().contains("newer version"), "{}", e.message());

        fs::remove_file(&jp).unwrap();
        let elsewhere = root.path().join("elsewhere");
        fs::write(&elsewhere, &good).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &jp).unwrap();
        let e = Ledger::open(root.path(), ACCT).unwrap_err();
        assert_eq!(e.kind, Kind::Data);
        assert!(e.message().contains("symbolic link"), "{}", e.message());
    }

    #[test]
    fn damaged_snapshot_is_refused_never_empty() {
        let root = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            l.delivered("u:1", entry("a"));
            l.compact(|_| true).unwrap();
        }
        let sp = root.path().join(account_dir_name(ACCT)).join("ledger");
        let good = fs::read(&sp).unwrap();
        for bad in [
            Vec::new(),
            good[..good.len() - 3].to_vec(),
            good[..HEADER_LEN].to_vec(),
        ] {
            fs::write(&sp, &bad).unwrap();
            let e = Ledger::open(root.path(), ACCT).unwrap_err();
            assert_eq!(e.kind, Kind::Data, "{} bytes", bad.len());
        }
        // The snapshot vanished while its journal says generation 1.
        fs::remove_file(&sp).unwrap();
        assert_eq!(
            Ledger::open(root.path(), ACCT).unwrap_err().kind,
            Kind::Data
        );
        fs::write(&sp, &good).unwrap();
        assert!(Ledger::open(root.path(), ACCT).unwrap().contains("u:1"));
    }

    #[test]
    fn crash_between_snapshot_and_new_journal() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(account_dir_name(ACCT));
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            l.delivered("u:1", entry("a"));
            l.removed("u:1");
            l.delivered("u:2", entry("b"));
            l.commit().unwrap();
        }
        let old_journal = fs::read(dir.join("journal")).unwrap();
        {
            let mut l = Ledger::open(root.path(), ACCT).unwrap();
            l.compact(|_| true).unwrap();
        }
        // Simulate the crash: the old journal (generation 0) is still there.
        fs::write(dir.join("journal"), &old_journal).unwrap();
        let l = Ledger::open(root.path(), ACCT).unwrap();
        assert!(l.contains("u:2") && !l.contains("u:1"));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn ledger_of_another_account_is_refused() {
        let root = tempfile::tempdir().unwrap();
        drop(Ledger::open(root.path(), ACCT).unwrap());
        let other = "pop3:mallory@mail.example";
        fs::rename(
            root.path().join(account_dir_name(ACCT)),
            root.path().join(account_dir_name(other)),
        )
        .unwrap();
        assert_eq!(
            Ledger::open(root.path(), other).unwrap_err().kind,
            Kind::Data
        );
    }

    #[test]
    fn dir_names_are_safe_and_distinct() {
        let a = account_dir_name("pop3:../../etc@host");
        assert!(!a.contains('/') && !a.starts_with('.'), "{a}");
        assert_ne!(account_dir_name("pop3:a@b"), account_dir_name("pop3:a_b"));
    }
}
