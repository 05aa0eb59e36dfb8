//! The Linux calls of `platform` (see its table); `portable.rs` holds what
//! other systems get instead.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Make every file of `file`'s file system durable with one syncfs(2).
/// Ok(true) when done; Ok(false) when the kernel lacks the call (the caller
/// then syncs file by file). Reports writeback errors from Linux 5.8 on.
pub fn sync_filesystem(file: &File) -> io::Result<bool> {
    // SAFETY: the fd is open for the lifetime of `file`.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        return Ok(false);
    }
    Err(e)
}

/// rename(2) that fails (AlreadyExists) instead of replacing an existing
/// target: renameat2 RENAME_NOREPLACE, or link + unlink where the file
/// system lacks it.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = CString::new(from.as_os_str().as_bytes())?;
    let t = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD is a valid dirfd.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => super::link_unlink(from, to),
        _ => Err(e),
    }
}

/// A file with no name in `dir` (O_TMPFILE): a crash leaves nothing
/// behind. Falls back to a named file, unlinked at once, on file systems
/// without O_TMPFILE.
pub fn anonymous_file(dir: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(f) => Ok(f),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            super::named_then_unlinked(dir)
        }
        Err(e) => Err(e),
    }
}

/// Keep other processes of the user from reading our memory (a core dump,
/// a ptrace, /proc/PID/mem) while a secret is in it.
pub fn make_undumpable() {
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Whether [`make_undumpable`] is in effect.
pub fn is_undumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 }
}
