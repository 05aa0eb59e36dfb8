//! The ledger's files, and the only code that touches them: the account's
//! directory and its lock, reading a whole file, appending to the journal
//! and making it durable, and replacing a file atomically (the snapshot, a
//! fresh journal). What the bytes mean is `codec.rs`'s business; what to
//! accept is `mod.rs`'s.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::corrupt;
use crate::durable::write_atomically;
use crate::error::{Context, Kind, Result, local_io, temporary};
use crate::platform::{is_symlink_refusal, open_nofollow};

/// The lock file of the account directory `dir`, held (flock) until the
/// returned file is closed; a second holder fails at once.
pub(super) fn lock(dir: &Path) -> Result<File> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(Kind::LocalIo, || {
            format!("creating state directory {}", dir.display())
        })?;
    let lock_path = dir.join("lock");
    let lock = open_nofollow(
        &lock_path,
        OpenOptions::new().read(true).write(true).create(true),
    )
    .ctx(Kind::LocalIo, || format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(temporary(format!(
            "another fetch is running for this account (lock {} is held)",
            lock_path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => {
            Err(local_io(format!("locking {}", lock_path.display())).because(e))
        }
    }
}

/// Read a whole state file, refusing symlinks. `Ok(None)` if absent.
pub(super) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match open_nofollow(path, OpenOptions::new().read(true)) {
        Ok(mut f) => {
            let mut v = Vec::new();
            f.read_to_end(&mut v)
                .ctx(Kind::LocalIo, || format!("reading {}", path.display()))?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if is_symlink_refusal(&e) => Err(corrupt(path, "it is a symbolic link")),
        Err(e) => Err(local_io(format!("opening {}", path.display())).because(e)),
    }
}

/// Replace `name` in `dir` with `bytes`, atomically and durably.
pub(super) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_atomically(dir, name, bytes)
}

/// The journal, open for appending.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes in the file (all of them records we read or wrote).
    len: u64,
    /// Written since the last sync.
    dirty: bool,
}

impl Journal {
    /// The journal at `path`, whose first `good` bytes were read as
    /// records; a torn tail after them is cut off first.
    pub(super) fn reopen(path: PathBuf, good: u64, torn: bool) -> Result<Journal> {
        let file = open_nofollow(&path, OpenOptions::new().append(true))
            .ctx(Kind::LocalIo, || format!("opening {}", path.display()))?;
        if torn {
            // Cut the torn tail off before appending after it.
            file.set_len(good)
                .and_then(|_| file.sync_data())
                .ctx(Kind::LocalIo, || format!("truncating {}", path.display()))?;
        }
        Ok(Journal {
            file,
            path,
            len: good,
            dirty: false,
        })
    }

    /// A new journal in `dir` holding `start` (its header and first
    /// records), made durable before it replaces any old one.
    pub(super) fn create(dir: &Path, start: &[u8]) -> Result<Journal> {
        replace(dir, "journal", start)?;
        Journal::reopen(dir.join("journal"), start.len() as u64, false)
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Append `buf` (whole records), without waiting for the disk.
    pub(super) fn append(&mut self, buf: &[u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        // Crash tests also need the torn record a crash mid-write leaves.
        #[cfg(debug_assertions)]
        if buf.len() > 1 {
            let half = buf.len() / 2;
            if self.file.write_all(&buf[..half]).is_ok() {
                crate::crash::point("journal record half written");
                let _ = self.file.set_len(self.len);
            }
        }
        if let Err(e) = self.file.write_all(buf) {
            // Do not leave half a record in front of later appends.
            let _ = self.file.set_len(self.len);
            return Err(local_io(format!("writing {}", self.path.display())).because(e));
        }
        self.len += buf.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Make what was appended durable (fdatasync), if anything was.
    pub(super) fn sync(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        crate::crash::point("journal written, not yet synced");
        self.file
            .sync_data()
            .ctx(Kind::LocalIo, || format!("fsync {}", self.path.display()))?;
        self.dirty = false;
        crate::crash::point("journal committed");
        Ok(())
    }
}
