//! Making files and directory entries durable, for the ledger and the
//! Maildir alike: a directory's fsync (so that entries created or renamed
//! in it survive a crash), and a file replaced whole and atomically.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Context, Kind, Result};
use crate::platform::open_nofollow;

/// fsync a directory, so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(Kind::LocalIo, || format!("fsync {}", dir.display()))
}

/// Write `name` in `dir` atomically and durably: write a temporary file,
/// fsync it, rename it into place, fsync the directory. A crash leaves the
/// old file or the new one, whole.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.new"));
    let path = dir.join(name);
    let _ = fs::remove_file(&tmp);
    let mut f = open_nofollow(&tmp, OpenOptions::new().write(true).create_new(true))
        .ctx(Kind::LocalIo, || format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .ctx(Kind::LocalIo, || format!("writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, &path).ctx(Kind::LocalIo, || format!("renaming {}", tmp.display()))?;
    sync_dir(dir)
}
