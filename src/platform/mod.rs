//! Every call into the C library lives here, behind a safe function, so
//! that the rest of fetch builds and behaves the same on every Unix.
//!
//! What POSIX gives everywhere is in this file. Where Linux has a faster or
//! stronger call, `linux.rs` uses it and `portable.rs` holds the fallback
//! that other Unixes (macOS, the BSDs) get:
//!
//! | call | Linux | elsewhere |
//! |---|---|---|
//! | [`sync_filesystem`] | `syncfs(2)`: one call for a batch | not available: fsync each file |
//! | [`rename_noreplace`] | `renameat2(RENAME_NOREPLACE)` | `link(2)` + `unlink(2)` |
//! | [`anonymous_file`] | `O_TMPFILE` | a named file, unlinked at once |
//! | [`make_undumpable`] | `prctl(PR_SET_DUMPABLE, 0)` | FreeBSD `procctl`, macOS `PT_DENY_ATTACH`, else no core dumps |
//!
//! A Linux build uses the fallbacks too when built with `RUSTFLAGS="--cfg
//! fetch_portable"`, so that the code other Unixes get is tested here
//! (`.ci/run` runs the test suite that way as well).
//!
//! [`is_local_fs`] has no common fallback to test that way: each system
//! says whether a file system is local in its own words (Linux `statfs(2)`'s
//! `f_type`, the BSDs' and macOS's `MNT_LOCAL` flag), and others cannot say.

#[cfg(all(target_os = "linux", not(fetch_portable)))]
#[path = "linux.rs"]
mod special;
#[cfg(not(all(target_os = "linux", not(fetch_portable))))]
#[path = "portable.rs"]
mod special;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

pub mod stop;

pub use special::{
    anonymous_file, is_undumpable, make_undumpable, rename_noreplace, sync_filesystem,
};

/// Whether this build uses the Linux-only calls (false: the fallbacks).
pub const LINUX_CALLS: bool = cfg!(all(target_os = "linux", not(fetch_portable)));

/// The error numbers that callers tell apart (the values differ between
/// systems; the names do not).
pub mod errno {
    pub use libc::{
        EACCES, EAGAIN, EEXIST, EINTR, EINVAL, EIO, EISDIR, ELOOP, EMLINK, ENOENT, ENOLCK, ENOSPC,
        ENOSYS, EOPNOTSUPP, EPERM, EROFS,
    };
}

/// Files and directories we create are 0600 and 0700 whatever the
/// caller's umask: every create asks for exactly those modes, and nothing
/// is masked off them.
pub fn restrict_umask() {
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe { libc::umask(0o077) };
}

/// The real user id of the process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective user id of the process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The host's name as the system gives it (empty if it will not say);
/// callers make it safe for where it goes.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Open `path` with `opts`, refusing a symbolic link (see
/// [`is_symlink_refusal`]); a file it creates is mode 0600. (The standard
/// library opens every file close-on-exec.)
pub fn open_nofollow(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    opts.custom_flags(libc::O_NOFOLLOW).mode(0o600).open(path)
}

/// Open `path` for reading without following a symbolic link and without
/// blocking on a FIFO.
pub fn open_read_nofollow_nonblock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Whether an open with [`open_nofollow`] failed because the path is a
/// symbolic link: ELOOP per POSIX, EMLINK on FreeBSD and DragonFly.
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(n) if n == libc::ELOOP || (cfg!(any(target_os = "freebsd", target_os = "dragonfly")) && n == libc::EMLINK))
}

/// An fcntl write lock (`F_SETLK`, never waiting) on the whole of `file`.
pub fn fcntl_lock(file: &File) -> io::Result<()> {
    fcntl_whole_file(file, true)
}

/// Release the fcntl lock of [`fcntl_lock`].
pub fn fcntl_unlock(file: &File) {
    let _ = fcntl_whole_file(file, false);
}

fn fcntl_whole_file(file: &File, lock: bool) -> io::Result<()> {
    // SAFETY: flock is plain data; all-zero is valid (start 0, len 0 = all).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    // The constants are an int on some systems and a short on others.
    #[allow(clippy::unnecessary_cast)]
    {
        fl.l_type = (if lock { libc::F_WRLCK } else { libc::F_UNLCK }) as libc::c_short;
    }
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the fd is open for the lifetime of `file`; fl is a valid flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &mut fl) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid` exists: Some(false) only when the system says
/// there is no such process; None when it will not say.
pub fn process_exists(pid: i32) -> Option<bool> {
    // SAFETY: signal 0 only checks whether the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return Some(true);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Some(false),
        Some(libc::EPERM) => Some(true),
        _ => None,
    }
}

/// Wait up to `wait` for `file` to have input; interrupted waits say false.
pub fn wait_readable(file: &File, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        0 => Ok(false),
        n if n < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        _ => Ok(true),
    }
}

/// The terminal `tty` with echo off (line editing on) until this is
/// dropped, which restores its settings.
pub struct EchoOff<'a> {
    tty: &'a File,
    saved: libc::termios,
}

impl EchoOff<'_> {
    pub fn new(tty: &File) -> io::Result<EchoOff<'_>> {
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
        quiet.c_lflag |= libc::ICANON;
        // SAFETY: valid fd and termios.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`, on the same fd.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSAFLUSH, &self.saved) };
    }
}

/// statfs(2) of `dir`, on the systems whose statfs says whether a file
/// system is local (see [`is_local_fs`]).
#[cfg(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
fn statfs(dir: &Path) -> Option<libc::statfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain data; c is a valid path; st is writable.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st)
}

/// Whether `dir` is on a local file system, where a pid in a dotlock is a
/// pid on this host. Linux says so by the file system's type, the BSDs
/// and macOS by a flag (MNT_LOCAL); elsewhere fetch cannot tell, and
/// unknown counts as not local (a stale dotlock is then judged by its age
/// alone).
pub fn is_local_fs(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        const REMOTE: &[u32] = &[
            0x6969,      // NFS
            0x517B,      // SMB
            0xFF53_4D42, // CIFS
            0xFE53_4D42, // SMB2
            0x7375_7245, // Coda
            0x5346_414F, // AFS
            0x6B41_4653, // kAFS
            0x00C3_6400, // Ceph
            0x0102_1997, // 9P
            0x6573_5546, // FUSE (sshfs and friends)
            0x0116_1970, // GFS2
            0x7461_636F, // OCFS2
            0x0BD0_0BD0, // Lustre
        ];
        statfs(dir).is_some_and(|st| !REMOTE.contains(&(st.f_type as u32)))
    }
    #[cfg(any(
        target_os = "macos",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    {
        #[allow(clippy::unnecessary_cast)]
        statfs(dir).is_some_and(|st| (st.f_flags as u64) & (libc::MNT_LOCAL as u64) != 0)
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )))]
    {
        let _ = dir;
        false
    }
}

/// rename without replacing, the portable way: link(2) fails if `to`
/// exists; then `from` is unlinked.
fn link_unlink(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// A file in `dir` under a unique name, unlinked at once: what a file with
/// no name is where O_TMPFILE is missing.
fn named_then_unlinked(dir: &Path) -> io::Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!("spool.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => {
                std::fs::remove_file(&p)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for a temporary file in {}", dir.display()),
    ))
}

/// The signals that ask fetch to stop.
pub const SIGINT: i32 = libc::SIGINT;
pub const SIGTERM: i32 = libc::SIGTERM;

/// Run `handler` on SIGTERM and SIGINT. Without SA_RESTART, so that a
/// blocked read returns EINTR and its loop can look at the stop flag.
/// `handler` must be async-signal-safe.
pub fn on_stop_signals(handler: extern "C" fn(i32)) {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: sigaction is given a zeroed, then filled, struct; the
        // handler is a plain function.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// End the process at once with `code`, running nothing else (safe in a
/// signal handler).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and does not return.
    unsafe { libc::_exit(code) }
}

/// `t` as asctime(3) writes it (`Mon Nov  2 23:59:59 2026\n`), from the C
/// library's gmtime_r and strftime: an independent check of our own date
/// formatting.
#[cfg(test)]
pub fn asctime_utc(t: i64) -> Option<String> {
    // SAFETY: tm is plain data; both calls get valid pointers; the format
    // is NUL-terminated and the buffer's length is passed.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let tt = t as libc::time_t;
        if libc::gmtime_r(&tt, &mut tm).is_null() {
            return None;
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%a %b %e %H:%M:%S %Y\n".as_ptr(),
            &tm,
        );
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        rename_noreplace(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&c).unwrap(), b"a");
    }

    #[test]
    fn anonymous_files_leave_nothing_behind() {
        use std::io::{Read, Seek, Write};
        let d = tempfile::tempdir().unwrap();
        let mut f = anonymous_file(d.path()).unwrap();
        f.write_all(b"spooled").unwrap();
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "spooled");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn sync_filesystem_syncs_or_says_it_cannot() {
        let d = tempfile::tempdir().unwrap();
        let f = File::create(d.path().join("x")).unwrap();
        assert_eq!(sync_filesystem(&f).unwrap(), LINUX_CALLS);
    }

    #[test]
    fn symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("t"), b"t").unwrap();
        std::os::unix::fs::symlink(d.path().join("t"), d.path().join("l")).unwrap();
        let e = open_nofollow(&d.path().join("l"), OpenOptions::new().read(true)).unwrap_err();
        assert!(is_symlink_refusal(&e), "{e}");
    }

    #[test]
    fn processes_are_told_apart() {
        assert_eq!(process_exists(std::process::id() as i32), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(process_exists(pid), Some(false));
    }

    #[test]
    fn a_temporary_directory_is_on_a_local_file_system() {
        let d = tempfile::tempdir().unwrap();
        if cfg!(target_os = "linux") {
            assert!(is_local_fs(d.path()));
        }
        assert!(!is_local_fs(&d.path().join("no such directory")));
    }

    #[test]
    fn the_host_has_a_name() {
        assert!(!hostname().is_empty());
    }
}
