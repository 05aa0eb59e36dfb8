//! Maildir delivery with group commit.
//!
//! A message is streamed into `tmp/NAME` (created exclusively, mode 0600),
//! and only published into `new/NAME,S=SIZE` after it is durable. Publishing
//! is split in two so that the caller can journal its intent in between:
//!
//! 1. [`Maildir::create`] + [`Staging::write`] + [`Maildir::finish`] per message;
//! 2. `sync_files`: make a whole batch of files durable (on a thread of
//!    its own while the next batch downloads: [`Deliver::start_commit`]);
//! 3. (the caller journals which names it is about to publish)
//! 4. [`Maildir::publish`]: rename the batch into `new/`, then one fsync of
//!    `new/` makes all the renames durable.
//!
//! Names are ours (time, pid, counter, account tag, host), never server data.
//! The account tag lets a later run of the same account find and remove its
//! own leftovers in `tmp/` after a crash, without touching other programs'
//! files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::deliver::{Deliver, MessageInfo, Outcome, unix_now};
use crate::durable::sync_dir;
use crate::error::{Context, Kind, Result, cant_create, internal, local_io};
use crate::ledger::{Entry, Ledger, Target};
use crate::platform;

/// Batches at least this large are synced with one syncfs(2); see `sync_files`.
pub const SYNCFS_MIN_BATCH: usize = 16;

pub struct Maildir {
    root: PathBuf,
    tag: String,
    host: String,
    pid: u32,
    seq: u64,
    /// The message being written, as a [`Deliver`] destination.
    current: Option<Staging>,
    /// Its flags (Maildir letters) from [`MessageInfo`].
    current_letters: String,
    /// Complete messages waiting for [`Deliver::commit`].
    pending: Vec<Staged>,
    /// The write buffer of the last finished message, for the next one.
    spare: Vec<u8>,
    /// A batch whose files are being synced on another thread while the
    /// next batch downloads ([`Deliver::start_commit`]).
    syncing: Option<Syncing>,
}

/// A batch being made durable on another thread: it hands the files back
/// with the result.
struct Syncing {
    len: usize,
    handle: std::thread::JoinHandle<(Vec<Staged>, Result<()>)>,
}

impl Syncing {
    fn wait(self) -> (Vec<Staged>, Result<()>) {
        match self.handle.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A message being written into `tmp/`.
pub struct Staging {
    file: File,
    base: String,
    path: PathBuf,
    size: u64,
    /// Bytes not written yet: a message arrives in pieces of whatever the
    /// socket gave (a few KB); one write(2) per WRITE_BUF instead of one
    /// per piece.
    buf: Vec<u8>,
}

/// What [`Staging`] gathers before writing.
const WRITE_BUF: usize = 64 * 1024;

/// A complete message in `tmp/`, not yet durable or published.
pub struct Staged {
    file: File,
    base: String,
    tmp_path: PathBuf,
    pub size: u64,
    /// Maildir flag letters: none -> `new/NAME`; some -> `cur/NAME:2,LETTERS`.
    pub letters: String,
}

impl Staged {
    /// The name the message will have in `new/`.
    pub fn final_name(&self) -> String {
        format!("{},S={}", self.base, self.size)
    }
}

impl Staging {
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() > WRITE_BUF {
            self.flush()?;
        }
        if data.len() >= WRITE_BUF {
            self.put(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        self.size += data.len() as u64;
        Ok(())
    }

    /// Write what is gathered.
    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.put(&buf);
            self.buf = buf;
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .ctx(Kind::LocalIo, || format!("writing {}", self.path.display()))?;
        crate::crash::point("message bytes written to tmp/");
        Ok(())
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Maildir {
    /// Open the Maildir at `root`, creating it and its `tmp/`, `new/` and
    /// `cur/` (mode 0700) when missing. `tag` identifies the account in the
    /// names of our temporary files.
    /// A Maildir++ subfolder `sub` (`.Name.Sub`) of the Maildir at `root`,
    /// created with the `maildirfolder` marker that Courier and Dovecot use.
    /// `sub` comes from `imap::names::maildir_folder`: one path component.
    pub fn open_subfolder(root: &Path, sub: &str, tag: &str) -> Result<Maildir> {
        if sub.is_empty() || sub.contains(['/', '\0']) || sub == "." || sub == ".." {
            return Err(crate::error::internal(format!(
                "unsafe Maildir folder name {sub:?}"
            )));
        }
        Maildir::open(root, tag)?;
        let md = Maildir::open(&root.join(sub), tag)?;
        let marker = root.join(sub).join("maildirfolder");
        if !marker.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&marker)
                .map_err(|e| cant_create(format!("creating {}", marker.display())).because(e))?;
        }
        Ok(md)
    }

    pub fn open(root: &Path, tag: &str) -> Result<Maildir> {
        for sub in ["", "tmp", "new", "cur"] {
            let dir = root.join(sub);
            match fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
            {
                Ok(()) => {}
                Err(e) => {
                    return Err(cant_create(format!(
                        "cannot create Maildir directory {}",
                        dir.display()
                    ))
                    .because(e));
                }
            }
            if !dir.is_dir() {
                return Err(cant_create(format!(
                    "{} exists but is not a directory",
                    dir.display()
                )));
            }
        }
        Ok(Maildir {
            root: root.to_path_buf(),
            tag: tag.to_string(),
            host: hostname_for_maildir(),
            pid: std::process::id(),
            seq: 0,
            current: None,
            current_letters: String::new(),
            pending: Vec::new(),
            spare: Vec::new(),
            syncing: None,
        })
    }

    /// Start a new message in `tmp/`.
    pub fn create(&mut self) -> Result<Staging> {
        for _ in 0..10 {
            let base = self.next_base();
            let path = self.root.join("tmp").join(&base);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Staging {
                        file,
                        base,
                        path,
                        size: 0,
                        buf: std::mem::take(&mut self.spare),
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(local_io(format!("creating {}", path.display())).because(e)),
            }
        }
        Err(local_io(format!(
            "cannot create a unique file in {}",
            self.root.join("tmp").display()
        )))
    }

    /// The message is complete (its last bytes are written now); keep it in
    /// `tmp/` until the batch is synced.
    pub fn finish(&mut self, mut s: Staging) -> Result<Staged> {
        s.flush()?;
        self.spare = std::mem::take(&mut s.buf);
        Ok(Staged {
            file: s.file,
            base: s.base,
            tmp_path: s.path,
            size: s.size,
            letters: String::new(),
        })
    }

    /// Remove an incomplete message from `tmp/`.
    pub fn discard(&mut self, path: &Path) {
        let _ = fs::remove_file(path);
    }

    /// [`sync_files`] for this Maildir's batch.
    #[cfg(test)]
    pub fn sync(&self, batch: &[Staged]) -> Result<()> {
        sync_files(&self.root, batch)
    }

    /// Publish and record a batch whose files are durable (see
    /// [`Deliver::commit`]).
    fn record(
        &self,
        batch: Vec<Staged>,
        ledger: &mut Ledger,
        keys: &[String],
    ) -> Result<Vec<Outcome>> {
        for (key, s) in keys.iter().zip(&batch) {
            ledger.intend(
                key,
                Target::Maildir {
                    dir: self.root.clone(),
                    name: s.final_name(),
                },
            );
        }
        ledger.commit()?;
        let names = self.publish(batch)?;
        let now = unix_now();
        let mut out = Vec::with_capacity(names.len());
        for (key, (name, size, path)) in keys.iter().zip(names) {
            let entry = Entry {
                name,
                size,
                time: now,
                flags: String::new(),
            };
            ledger.delivered(key, entry.clone());
            out.push(Outcome::Delivered {
                entry,
                location: path.to_string_lossy().into_owned(),
            });
        }
        ledger.commit()?;
        Ok(out)
    }
}

/// Make every file of the batch durable (data and size); runs on the
/// syncing thread of [`Deliver::start_commit`], or in place.
///
/// Where the system has it (`platform::sync_filesystem`: Linux's
/// syncfs(2)), a batch of [`SYNCFS_MIN_BATCH`] or more files is made
/// durable with one call for all of them instead of an fdatasync each
/// (bench/README.md has what that saves). An error from any file on the
/// file system then fails the batch, which is safe (nothing is deleted,
/// the messages are fetched again). Smaller batches, such as a cron run
/// with a few new messages, and systems without the call fsync each file,
/// so they never wait for other programs' dirty data. (The files are then
/// renamed out of tmp/ and new/ is fsynced: tmp/ itself need not be.)
fn sync_files(root: &Path, batch: &[Staged]) -> Result<()> {
    crate::crash::point("before syncing the batch's files");
    if batch.len() >= SYNCFS_MIN_BATCH {
        let done = platform::sync_filesystem(&batch[0].file).map_err(|e| {
            local_io(format!("syncfs for {}", root.join("tmp").display())).because(e)
        })?;
        if done {
            return Ok(());
        }
    }
    for s in batch {
        s.file
            .sync_data()
            .ctx(Kind::LocalIo, || format!("fsync {}", s.tmp_path.display()))?;
    }
    Ok(())
}

impl Maildir {
    /// Move every file of the batch from `tmp/` to `new/`, then make the
    /// renames durable with one fsync of `new/`. Returns the final names.
    /// On error, files already moved stay in `new/` (they are complete and
    /// durable data; the caller's journal intent lets recovery find them).
    pub fn publish(&self, batch: Vec<Staged>) -> Result<Vec<(String, u64, PathBuf)>> {
        let new = self.root.join("new");
        let cur = self.root.join("cur");
        let mut names = Vec::with_capacity(batch.len());
        let mut into_cur = false;
        for s in batch {
            let name = s.final_name();
            let dest = if s.letters.is_empty() {
                new.join(&name)
            } else {
                into_cur = true;
                cur.join(format!("{name}:2,{}", s.letters))
            };
            drop(s.file);
            platform::rename_noreplace(&s.tmp_path, &dest).ctx(Kind::LocalIo, || {
                format!("moving {} to {}", s.tmp_path.display(), dest.display())
            })?;
            crate::crash::point("a message renamed into new/ or cur/");
            names.push((name, s.size, dest));
        }
        sync_dir(&new)?;
        if into_cur {
            sync_dir(&cur)?;
        }
        crate::crash::point("new/ and cur/ synced");
        Ok(names)
    }

    /// Remove this account's leftovers in `tmp/` (from a crashed run). Only
    /// call this while holding the account's lock. Returns how many were removed.
    pub fn remove_stale_tmp(&self) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let marker = format!("F{}.", self.tag);
        let mut n = 0;
        let dir = fs::read_dir(&tmp).ctx(Kind::LocalIo, || format!("reading {}", tmp.display()))?;
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_our_name(name, &marker) {
                fs::remove_file(entry.path()).ctx(Kind::LocalIo, || {
                    format!("removing {}", entry.path().display())
                })?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn next_base(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.seq += 1;
        format!(
            "{}.M{}P{}Q{}F{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            self.pid,
            self.seq,
            self.tag,
            self.host
        )
    }
}

impl Deliver for Maildir {
    fn begin(&mut self, info: &MessageInfo) -> Result<()> {
        self.abort();
        self.current = Some(self.create()?);
        self.current_letters = info.flags.clone().unwrap_or_default();
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        match &mut self.current {
            Some(s) => s.write(chunk),
            None => Err(internal("Maildir write without begin")),
        }
    }

    fn end(&mut self) -> Result<u64> {
        let s = self
            .current
            .take()
            .ok_or_else(|| internal("Maildir end without begin"))?;
        let path = s.path.clone();
        let mut staged = match self.finish(s) {
            Ok(staged) => staged,
            Err(e) => {
                self.discard(&path);
                return Err(e);
            }
        };
        staged.letters = std::mem::take(&mut self.current_letters);
        let size = staged.size;
        self.pending.push(staged);
        Ok(size)
    }

    fn abort(&mut self) {
        if let Some(s) = self.current.take() {
            let path = s.path.clone();
            drop(s);
            self.discard(&path);
        }
    }

    fn staged(&self) -> usize {
        self.pending.len()
    }

    fn clean_up(&mut self) -> Result<()> {
        self.remove_stale_tmp().map(|_| ())
    }

    fn commit_len(&self) -> usize {
        self.syncing.as_ref().map_or(self.pending.len(), |s| s.len)
    }

    /// Hand the staged files to a thread that makes them durable, and
    /// stage the next batch meanwhile: the download of the next batch hides
    /// the time a batch's sync takes.
    fn start_commit(&mut self) -> Result<bool> {
        if self.syncing.is_some() {
            return Err(internal("Maildir: a batch is already being committed"));
        }
        if self.pending.is_empty() {
            return Ok(false);
        }
        let batch = std::mem::take(&mut self.pending);
        let len = batch.len();
        let root = self.root.clone();
        let handle = std::thread::Builder::new()
            .name("fetch-sync".into())
            .spawn(move || {
                let r = sync_files(&root, &batch);
                (batch, r)
            })
            // The files stay in tmp/ (the next run's clean-up removes them)
            // and nothing was delivered.
            .map_err(|e| local_io("starting a thread to sync the Maildir").because(e))?;
        self.syncing = Some(Syncing { len, handle });
        Ok(true)
    }

    /// The order is the guarantee: files durable -> journal intents ->
    /// renames into new/ + one fsync of new/ -> journal "delivered". The
    /// batch committed is the one [`Deliver::start_commit`] started, if
    /// any, else the staged messages.
    fn commit(&mut self, ledger: &mut Ledger, keys: &[String]) -> Result<Vec<Outcome>> {
        let synced = self.syncing.is_some();
        let batch = match self.syncing.take() {
            Some(syncing) => {
                let (batch, synced) = syncing.wait();
                // On error the files stay in tmp/: the next run's clean-up
                // removes them.
                synced?;
                batch
            }
            None => std::mem::take(&mut self.pending),
        };
        if batch.len() != keys.len() {
            return Err(internal(
                "Maildir commit: keys and messages differ in number",
            ));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if !synced {
            sync_files(&self.root, &batch)?;
        }
        self.record(batch, ledger, keys)
    }
}

impl Drop for Maildir {
    fn drop(&mut self) {
        // Staged files never published are removed; a crash leaves them to
        // `remove_stale_tmp` of the next run.
        self.abort();
        if let Some(syncing) = self.syncing.take() {
            let (batch, _) = syncing.wait();
            for s in batch {
                let _ = fs::remove_file(&s.tmp_path);
            }
        }
        for s in std::mem::take(&mut self.pending) {
            let _ = fs::remove_file(&s.tmp_path);
        }
    }
}

/// Find a message published under `name` in the Maildir at `root`: in
/// `new/`, or in `cur/` where a mail reader may have moved it and added
/// flags (`name:2,S`). Scans `cur/` only when the cheap checks fail.
pub fn find_in(root: &Path, name: &str) -> Option<PathBuf> {
    let p = root.join("new").join(name);
    if p.exists() {
        return Some(p);
    }
    let p = root.join("cur").join(name);
    if p.exists() {
        return Some(p);
    }
    let cur = fs::read_dir(root.join("cur")).ok()?;
    for entry in cur.flatten() {
        let f = entry.file_name();
        let f = f.as_bytes();
        if f.len() > name.len()
            && f.starts_with(name.as_bytes())
            && matches!(f[name.len()], b':' | b';')
        {
            return Some(entry.path());
        }
    }
    None
}

/// `SECS.M<usec>P<pid>Q<n>F<tag>.host`: one of our own temporary names.
fn is_our_name(name: &str, marker: &str) -> bool {
    let Some(pos) = name.find(marker) else {
        return false;
    };
    let head = &name[..pos];
    head.split_once(".M").is_some_and(|(secs, rest)| {
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) && rest.contains('Q')
    })
}

/// The host name as Maildir names carry it: `/` and `:` (and `,`, which
/// starts Dovecot's size fields) escaped as octal, as the Maildir spec says.
fn hostname_for_maildir() -> String {
    let raw = platform::hostname();
    let raw = if raw.is_empty() {
        "localhost".into()
    } else {
        raw
    };
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_ascii_graphic() => out.push(c),
            _ => out.push('_'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn deliver_batch_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Mail");
        let mut md = Maildir::open(&root, "0badcafe").unwrap();
        for sub in ["tmp", "new", "cur"] {
            let mode = fs::metadata(root.join(sub)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{sub}");
        }
        let mut batch = Vec::new();
        for body in [&b"one\n"[..], b"two\n\n"] {
            let mut s = md.create().unwrap();
            s.write(body).unwrap();
            batch.push(md.finish(s).unwrap());
        }
        md.sync(&batch).unwrap();
        let names: Vec<(String, u64)> = md
            .publish(batch)
            .unwrap()
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0].0, names[1].0);
        let p = root.join("new").join(&names[1].0);
        assert_eq!(fs::read(&p).unwrap(), b"two\n\n");
        assert!(names[1].0.ends_with(",S=5"), "{}", names[1].0);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert_eq!(
            find_in(&root, &names[0].0),
            Some(root.join("new").join(&names[0].0))
        );
        // A mail reader moves it to cur/ and marks it seen.
        let moved = root.join("cur").join(format!("{}:2,S", names[0].0));
        fs::rename(root.join("new").join(&names[0].0), &moved).unwrap();
        assert_eq!(find_in(&root, &names[0].0), Some(moved));
        assert_eq!(find_in(&root, "1.M1P1Q1Fx.nohost,S=1"), None);
    }

    #[test]
    fn pieces_of_every_size_are_gathered_and_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let mut md = Maildir::open(&root, "t").unwrap();
        // Small pieces, one that fills the buffer past its end, one larger
        // than the buffer on its own, and small ones again.
        let mut want = Vec::new();
        let mut s = md.create().unwrap();
        let mut piece = |s: &mut Staging, len: usize, byte: u8| {
            let p = vec![byte; len];
            s.write(&p).unwrap();
            want.extend_from_slice(&p);
        };
        for i in 0..100 {
            piece(&mut s, 700, b'a' + (i % 26) as u8);
        }
        piece(&mut s, WRITE_BUF - 10, b'X');
        piece(&mut s, 3 * WRITE_BUF + 7, b'Y');
        piece(&mut s, 1, b'Z');
        piece(&mut s, 0, b'0');
        piece(&mut s, 5, b'z');
        let path = s.path().to_path_buf();
        // Not all of it is on disk yet; all of it is once finished.
        assert!(fs::metadata(&path).unwrap().len() < want.len() as u64);
        let staged = md.finish(s).unwrap();
        assert_eq!(staged.size, want.len() as u64);
        assert_eq!(fs::read(&path).unwrap(), want);
    }

    #[test]
    fn large_batches_take_the_syncfs_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut md = Maildir::open(dir.path(), "0badcafe").unwrap();
        let mut batch = Vec::new();
        for i in 0..SYNCFS_MIN_BATCH + 4 {
            let mut s = md.create().unwrap();
            s.write(format!("message {i}\n").as_bytes()).unwrap();
            batch.push(md.finish(s).unwrap());
        }
        md.sync(&batch).unwrap();
        let names = md.publish(batch).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("new")).unwrap().count(),
            names.len()
        );
    }

    #[test]
    fn stale_tmp_cleanup_touches_only_our_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut md = Maildir::open(dir.path(), "0badcafe").unwrap();
        let s = md.create().unwrap();
        let ours = s.path().to_path_buf();
        drop(s);
        let mut other = Maildir::open(dir.path(), "12345678").unwrap();
        let theirs = other.create().unwrap().path().to_path_buf();
        let foreign = dir.path().join("tmp").join("1700000000.M1P2.otherhost");
        fs::write(&foreign, b"x").unwrap();
        assert_eq!(md.remove_stale_tmp().unwrap(), 1);
        assert!(!ours.exists());
        assert!(theirs.exists());
        assert!(foreign.exists());
    }

    #[test]
    fn unwritable_root_is_cant_create() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = Maildir::open(&file.join("Maildir"), "t").err().unwrap();
        assert_eq!(err.kind, Kind::CantCreate);
    }
}
