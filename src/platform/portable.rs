//! What systems other than Linux get for the calls of `platform` (see its
//! table), and what a Linux build gets with `--cfg fetch_portable`.

use std::fs::File;
use std::io;
use std::path::Path;

/// No one call syncs a file system's files here (syncfs(2) is Linux's):
/// Ok(false), and the caller syncs file by file.
pub fn sync_filesystem(_file: &File) -> io::Result<bool> {
    Ok(false)
}

/// rename(2) that fails (AlreadyExists) instead of replacing an existing
/// target: link(2) fails if the target exists, then the old name goes.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    super::link_unlink(from, to)
}

/// A file with no name in `dir`: created under a unique name and unlinked
/// at once (a crash in between leaves one empty file, removed by the next
/// run's clean-up of the state directory).
pub fn anonymous_file(dir: &Path) -> io::Result<File> {
    super::named_then_unlinked(dir)
}

/// Keep other processes of the user from reading our memory while a
/// secret is in it: FreeBSD forbids tracing with procctl, macOS with
/// PT_DENY_ATTACH; elsewhere (and in a portable Linux build) at least no
/// core dump is written.
pub fn make_undumpable() {
    #[cfg(all(target_os = "freebsd", not(fetch_portable)))]
    {
        let mut arg: libc::c_int = libc::PROC_TRACE_CTL_DISABLE;
        // SAFETY: procctl on our own pid with a valid pointer to an int.
        unsafe {
            libc::procctl(
                libc::P_PID,
                0,
                libc::PROC_TRACE_CTL,
                (&mut arg as *mut libc::c_int).cast(),
            );
        }
    }
    #[cfg(all(target_os = "macos", not(fetch_portable)))]
    // SAFETY: PT_DENY_ATTACH takes no address or data.
    unsafe {
        libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0);
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit for RLIMIT_CORE.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
}

/// Whether [`make_undumpable`] is in effect (here: no core dumps).
pub fn is_undumpable() -> bool {
    let mut now = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: a valid, writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut now) == 0 && now.rlim_cur == 0 }
}
