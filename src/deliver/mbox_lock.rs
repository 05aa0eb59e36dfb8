//! Locking an mbox file the way mutt, procmail and Dovecot do: a dotlock
//! (`PATH.lock`) and then an fcntl write lock on the whole file, each retried
//! until a bounded wait has passed in total.
//!
//! The dotlock is taken NFS-safely: we create a unique file
//! `PATH.lock.HOST.PID.RANDOM` (exclusively, holding our pid), `link()` it to
//! `PATH.lock`, and count it taken if `link()` succeeded or the unique file
//! now has two links (the reply to a successful `link()` may be lost on NFS).
//! The unique file is always removed. If the directory does not let us
//! create files (EACCES, EPERM, EROFS: e.g. `/var/spool/mail` without group
//! `mail`) or hard links, we do without the dotlock and rely on fcntl.
//!
//! Stale dotlocks are removed, and only regular files are ever judged:
//! - by age: a `PATH.lock` last modified more than [`STALE_AGE`] ago (as
//!   procmail and mutt do; fetch holds one only for a local copy of a
//!   batch, far less than that);
//! - by pid: a `PATH.lock` whose whole content is a decimal pid (surrounding
//!   whitespace allowed) of a process that does not exist (`kill(pid, 0)`
//!   fails with ESRCH), but only when the directory is on a local file
//!   system: on NFS, CIFS and the like the pid may belong to another host.
//!
//! The fcntl lock uses `F_SETLK` (never `F_SETLKW`) so the wait stays
//! bounded. fcntl locks belong to the process: closing *any* descriptor of
//! the mbox in this process releases it, so while an [`MboxLock`] is held, do
//! all I/O on the mbox through [`MboxLock::file`].

use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Result, cant_create, local_io, temporary};
use crate::platform::{self, errno};

/// A dotlock older than this is stale.
pub const STALE_AGE: Duration = Duration::from_secs(5 * 60);

const FIRST_SLEEP: Duration = Duration::from_millis(50);
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// A locked mbox: the open file (read-write, created mode 0600 if missing)
/// with an fcntl write lock on it, and the dotlock if we could take one.
/// Dropping it releases the fcntl lock and then removes the dotlock (only if
/// it is still ours).
#[derive(Debug)]
pub struct MboxLock {
    // Declared before `dotlock`: fields drop in order, so the file (and its
    // fcntl lock) goes first and the dotlock last, the reverse of taking them.
    file: File,
    fcntl_held: bool,
    /// Held for its Drop, which removes the dotlock.
    _dotlock: Option<DotLock>,
}

/// A dotlock we took. It is still ours if `PATH.lock` is the same inode and
/// still holds our pid: a file put in its place may well get the inode
/// number of the one removed, but not our pid as its content. (Its ctime
/// would tell too, but anyone touching the lock changes that.)
#[derive(Debug)]
struct DotLock {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// What we write into our dotlock.
fn our_content() -> String {
    format!("{}\n", std::process::id())
}

/// What tells one file from another over time: inode numbers are reused,
/// but a new file also gets a new ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl FileId {
    fn of(m: &fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }
}

/// The metadata and first 64 bytes of the regular file at `path`, never
/// following a symlink nor blocking on a FIFO.
fn read_small(path: &Path) -> Option<(fs::Metadata, Vec<u8>)> {
    let f = platform::open_read_nofollow_nonblock(path).ok()?;
    let meta = f.metadata().ok().filter(|m| m.is_file())?;
    let mut buf = Vec::new();
    f.take(64).read_to_end(&mut buf).ok()?;
    Some((meta, buf))
}

impl DotLock {
    fn still_ours(&self) -> bool {
        read_small(&self.path).is_some_and(|(m, content)| {
            m.dev() == self.dev && m.ino() == self.ino && content == our_content().as_bytes()
        })
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl MboxLock {
    /// Dotlock (`PATH.lock`) then fcntl write lock, each retried until `wait`
    /// has passed in total. On timeout, a Temporary error naming the lock
    /// that is held. The mbox is created (mode 0600) if missing.
    pub fn acquire(path: &Path, wait: Duration) -> Result<MboxLock> {
        let deadline = Instant::now() + wait;
        let dotlock = take_dotlock(path, deadline, wait)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| cant_create(format!("cannot open {}", path.display())).because(e))?;
        let fcntl_held = take_fcntl(&file, path, deadline, wait, dotlock.is_some())?;
        Ok(MboxLock {
            file,
            fcntl_held,
            _dotlock: dotlock,
        })
    }

    /// The locked mbox, open for reading and writing (not in append mode).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether we hold a dotlock (false where the directory does not allow one).
    #[cfg(test)]
    pub fn has_dotlock(&self) -> bool {
        self._dotlock.is_some()
    }
}

impl Drop for MboxLock {
    fn drop(&mut self) {
        if self.fcntl_held {
            platform::fcntl_unlock(&self.file);
        }
        // Then `file` closes, and `dotlock` removes the dotlock.
    }
}

/// Sleep before the next attempt, never past the deadline; false if the
/// deadline has passed.
fn pause(deadline: Instant, sleep: &mut Duration) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    std::thread::sleep((*sleep).min(deadline - now));
    *sleep = (*sleep * 3 / 2).min(MAX_SLEEP);
    true
}

/// Take the fcntl lock; Ok(false) if the file system has no fcntl locks and
/// we hold a dotlock instead.
fn take_fcntl(
    file: &File,
    path: &Path,
    deadline: Instant,
    wait: Duration,
    have_dotlock: bool,
) -> Result<bool> {
    let mut sleep = FIRST_SLEEP;
    loop {
        let e = match platform::fcntl_lock(file) {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        match e.raw_os_error().unwrap_or(0) {
            errno::EACCES | errno::EAGAIN => {
                if !pause(deadline, &mut sleep) {
                    return Err(temporary(format!(
                        "{} is locked (fcntl) by another program (waited {})",
                        path.display(),
                        secs(wait)
                    )));
                }
            }
            errno::EINTR => {}
            errno::ENOLCK | errno::EOPNOTSUPP | errno::ENOSYS if have_dotlock => return Ok(false),
            _ => {
                return Err(local_io(format!("cannot lock {}", path.display())).because(e));
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = OsString::from(path.as_os_str());
    p.push(".lock");
    PathBuf::from(p)
}

enum Attempt {
    Got(DotLock),
    Busy,
    /// The directory or file system does not let us make a dotlock.
    Unsupported,
}

/// Errors that mean "no dotlock possible here", not "something is wrong".
fn dotlock_unsupported(errno: i32) -> bool {
    matches!(
        errno,
        errno::EACCES | errno::EPERM | errno::EROFS | errno::EOPNOTSUPP
    )
}

fn take_dotlock(path: &Path, deadline: Instant, wait: Duration) -> Result<Option<DotLock>> {
    let lock = lock_path(path);
    let mut sleep = FIRST_SLEEP;
    // Retries without sleeping, after a stale lock went away; bounded so that
    // a file system that behaves oddly cannot make us spin.
    let mut quick = 0;
    loop {
        match try_dotlock(&lock)? {
            Attempt::Got(d) => return Ok(Some(d)),
            Attempt::Unsupported => return Ok(None),
            Attempt::Busy => {
                if quick < 10 && remove_if_stale(&lock) {
                    quick += 1;
                    continue;
                }
                quick = 0;
                if !pause(deadline, &mut sleep) {
                    return Err(temporary(format!(
                        "{} is held by another program (waited {})",
                        lock.display(),
                        secs(wait)
                    )));
                }
            }
        }
    }
}

fn try_dotlock(lock: &Path) -> Result<Attempt> {
    let mut unique = OsString::from(lock.as_os_str());
    unique.push(format!(
        ".{}.{}.{:016x}",
        hostname(),
        std::process::id(),
        random()
    ));
    let unique = PathBuf::from(unique);
    let io_err = |what: &str, p: &Path, e: io::Error| {
        local_io(format!("cannot {what} {}", p.display())).because(e)
    };
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&unique)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error().is_some_and(dotlock_unsupported) => {
            return Ok(Attempt::Unsupported);
        }
        // A name clash with another unique file: try again with a new name.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Attempt::Busy),
        Err(e) => return Err(io_err("create", lock, e)),
    };
    let written = f.write_all(our_content().as_bytes());
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&unique);
        return Err(io_err("write", &unique, e));
    }
    let linked = fs::hard_link(&unique, lock);
    let meta = fs::symlink_metadata(&unique);
    let _ = fs::remove_file(&unique);
    let meta = meta.map_err(|e| io_err("stat", &unique, e))?;
    if linked.is_ok() || meta.nlink() == 2 {
        return Ok(Attempt::Got(DotLock {
            path: lock.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        }));
    }
    let e = linked.unwrap_err();
    match e.raw_os_error() {
        Some(errno::EEXIST) => Ok(Attempt::Busy),
        Some(n) if dotlock_unsupported(n) => Ok(Attempt::Unsupported),
        _ => Err(io_err("link", lock, e)),
    }
}

/// Remove `lock` if it is stale (see the module documentation); true if it
/// was removed (or vanished meanwhile), so the caller should retry at once.
fn remove_if_stale(lock: &Path) -> bool {
    let meta = match fs::symlink_metadata(lock) {
        Ok(m) => m,
        Err(e) => return e.kind() == ErrorKind::NotFound,
    };
    if !meta.file_type().is_file() {
        return false;
    }
    let old = SystemTime::now()
        .duration_since(meta.modified().unwrap_or(SystemTime::now()))
        .is_ok_and(|age| age > STALE_AGE);
    let stale = old || (pid_is_dead(lock, &meta) && on_local_fs(lock));
    if !stale {
        return false;
    }
    // Remove only the file we judged: another process may have replaced it.
    match fs::symlink_metadata(lock) {
        Ok(now) if FileId::of(&now) == FileId::of(&meta) => match fs::remove_file(lock) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound,
        },
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::NotFound,
    }
}

/// Whether the dotlock (the file `meta` describes) holds nothing but the pid
/// of a process that no longer exists.
fn pid_is_dead(lock: &Path, meta: &fs::Metadata) -> bool {
    let Some((m, content)) = read_small(lock) else {
        return false;
    };
    if FileId::of(&m) != FileId::of(meta) {
        return false;
    }
    let Some(pid) = parse_pid(&content) else {
        return false;
    };
    platform::process_exists(pid) == Some(false)
}

/// A positive decimal pid, the whole content but for surrounding whitespace.
fn parse_pid(content: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(content).ok()?.trim_ascii();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok().filter(|&p| p > 0)
}

/// Whether `lock`'s directory is on a local file system, where a pid in a
/// dotlock is a pid on this host. Unknown counts as not local.
fn on_local_fs(lock: &Path) -> bool {
    let dir = match lock.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    platform::is_local_fs(dir)
}

/// Set `path`'s mtime (and atime) to `to`, or to now.
#[cfg(test)]
fn set_mtime(path: &Path, to: Option<SystemTime>) -> io::Result<()> {
    let t = to.unwrap_or_else(SystemTime::now);
    File::open(path)?.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
}

/// The host name for unique file names: safe characters only, short.
fn hostname() -> String {
    let s: String = platform::hostname()
        .bytes()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
                c as char
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "localhost".into() } else { s }
}

/// 64 unpredictable-enough bits for a unique name (a clash only costs a
/// retry: the file is created exclusively).
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command, Stdio};

    const SHORT: Duration = Duration::from_millis(300);
    const MARGIN: Duration = Duration::from_millis(1500);

    fn mbox(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("inbox")
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("inbox.lock."))
            .collect();
        v.sort();
        v
    }

    fn expect_timeout(path: &Path, wait: Duration, what: &str) {
        let t = Instant::now();
        let e = MboxLock::acquire(path, wait).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind, Kind::Temporary, "{}", e.message());
        assert!(e.message().contains(what), "{}", e.message());
        assert!(took >= wait, "gave up after {took:?}");
        assert!(took < wait + MARGIN, "gave up after {took:?}");
    }

    /// A python3 child holding an fcntl lock on `path` until killed.
    fn fcntl_holder(path: &Path) -> Child {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time\n\
                 f=open(sys.argv[1],'a')\n\
                 fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\n\
                 print('locked',flush=True)\n\
                 time.sleep(60)\n",
            ])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        child
    }

    /// Whether another process can take an fcntl lock on `path` right now.
    fn fcntl_free_for_others(path: &Path) -> bool {
        let out = Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys\n\
                 f=open(sys.argv[1],'a')\n\
                 try:\n  fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\n  print('free')\n\
                 except OSError:\n  print('busy')\n",
            ])
            .arg(path)
            .output()
            .expect("python3");
        match String::from_utf8_lossy(&out.stdout).trim() {
            "free" => true,
            "busy" => false,
            other => panic!("python3 said {other:?}"),
        }
    }

    fn dead_pid() -> u32 {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn acquire_creates_locks_and_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        let l = MboxLock::acquire(&p, Duration::ZERO).unwrap();
        assert!(l.has_dotlock());
        let m = fs::metadata(&p).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(
            leftovers(d.path()),
            Vec::<String>::new(),
            "unique file removed"
        );
        assert!(!fcntl_free_for_others(&p));
        // The file is usable.
        l.file().write_all(b"x").unwrap();
        drop(l);
        assert!(!lock.exists(), "dotlock removed on drop");
        assert!(fcntl_free_for_others(&p));
        assert_eq!(fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn second_acquire_in_this_process_waits_for_the_dotlock() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let first = MboxLock::acquire(&p, SHORT).unwrap();
        expect_timeout(&p, SHORT, ".lock is held by another program");
        assert!(lock_path(&p).exists(), "the holder's dotlock survives");
        drop(first);
        MboxLock::acquire(&p, SHORT).unwrap();
    }

    #[test]
    fn foreign_dotlock_with_live_pid_times_out() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
        expect_timeout(&p, SHORT, &format!("{} is held", lock.display()));
        assert!(lock.exists());
        assert!(!p.exists(), "the mbox is not touched without the dotlock");
        assert_eq!(leftovers(d.path()), Vec::<String>::new());
    }

    #[test]
    fn dotlock_released_by_its_holder_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        fs::write(&lock, "").unwrap();
        let remover = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                fs::remove_file(lock).unwrap();
            })
        };
        let t = Instant::now();
        let l = MboxLock::acquire(&p, Duration::from_secs(5)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(l.has_dotlock());
        remover.join().unwrap();
    }

    #[test]
    fn stale_dotlock_by_age_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
        let old = SystemTime::now() - STALE_AGE - Duration::from_secs(60);
        set_mtime(&lock, Some(old)).unwrap();
        let l = MboxLock::acquire(&p, SHORT).unwrap();
        assert!(l.has_dotlock());
        drop(l);
        assert!(!lock.exists());
        // Younger than the limit: held.
        fs::write(&lock, "not a pid").unwrap();
        let young = SystemTime::now() - STALE_AGE + Duration::from_secs(60);
        set_mtime(&lock, Some(young)).unwrap();
        expect_timeout(&p, SHORT, "is held");
    }

    #[test]
    fn stale_dotlock_by_dead_pid_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        if !on_local_fs(&lock) {
            eprintln!("SKIP: the test directory is not on a local file system");
            return;
        }
        for content in [format!("{}\n", dead_pid()), format!("  {} ", dead_pid())] {
            fs::write(&lock, content).unwrap();
            let l = MboxLock::acquire(&p, SHORT).unwrap();
            assert!(l.has_dotlock());
            drop(l);
            assert!(!lock.exists());
        }
    }

    #[test]
    fn dotlock_without_a_plain_pid_is_judged_by_age_only() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        let dead = dead_pid();
        for content in [
            String::new(),
            "hello".into(),
            format!("{dead}:otherhost"),
            format!("{dead}\n{dead}"),
            format!("+{dead}"),
            "0".into(),
            "-1".into(),
            "99999999999999999999".into(),
        ] {
            fs::write(&lock, &content).unwrap();
            expect_timeout(&p, Duration::from_millis(100), "is held");
            assert!(lock.exists(), "{content:?}");
        }
        assert_eq!(parse_pid(b" 123\n"), Some(123));
        assert_eq!(parse_pid(b"0"), None);
        assert_eq!(parse_pid(b"1 2"), None);
        assert_eq!(parse_pid(b"\xff"), None);
    }

    #[test]
    fn a_directory_named_like_the_dotlock_is_never_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        fs::create_dir(&lock).unwrap();
        let old = SystemTime::now() - STALE_AGE * 2;
        set_mtime(&lock, Some(old)).unwrap();
        expect_timeout(&p, Duration::from_millis(100), "is held");
        assert!(lock.is_dir());
    }

    #[test]
    fn fcntl_held_by_another_process_times_out_then_is_acquired() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        fs::write(&p, "").unwrap();
        let mut child = fcntl_holder(&p);
        expect_timeout(&p, SHORT, "is locked (fcntl) by another program");
        assert!(
            !lock_path(&p).exists(),
            "dotlock released after the failure"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let l = MboxLock::acquire(&p, SHORT).unwrap();
        assert!(!fcntl_free_for_others(&p));
        drop(l);
        assert!(fcntl_free_for_others(&p));
    }

    #[test]
    fn fcntl_released_during_the_wait_is_acquired() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        fs::write(&p, "").unwrap();
        let mut child = fcntl_holder(&p);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
            child.wait().unwrap();
        });
        MboxLock::acquire(&p, Duration::from_secs(10)).unwrap();
        killer.join().unwrap();
    }

    #[test]
    fn drop_leaves_a_dotlock_that_is_no_longer_ours() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        let lock = lock_path(&p);
        let l = MboxLock::acquire(&p, SHORT).unwrap();
        // Someone judged ours stale and took it over.
        fs::remove_file(&lock).unwrap();
        fs::write(&lock, "someone else").unwrap();
        drop(l);
        assert_eq!(fs::read_to_string(&lock).unwrap(), "someone else");
    }

    #[test]
    fn directory_refusing_the_dotlock_falls_back_to_fcntl() {
        let d = tempfile::tempdir().unwrap();
        let p = mbox(&d);
        fs::write(&p, "").unwrap();
        // Root ignores permissions, but not the immutable flag.
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(d.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            fs::set_permissions(d.path(), fs::Permissions::from_mode(0o500)).unwrap();
        }
        let probe = fs::write(d.path().join("probe"), "");
        if probe.is_ok() {
            eprintln!("SKIP: cannot make a directory refuse new files here");
            return;
        }
        let r = MboxLock::acquire(&p, SHORT);
        if ok {
            let _ = Command::new("chattr").arg("-i").arg(d.path()).status();
        } else {
            fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        }
        let l = r.unwrap();
        assert!(!l.has_dotlock());
        assert!(!fcntl_free_for_others(&p));
        drop(l);
        assert!(fcntl_free_for_others(&p));
    }

    #[test]
    fn unsupported_errors_are_classified() {
        for e in [errno::EACCES, errno::EPERM, errno::EROFS, errno::EOPNOTSUPP] {
            assert!(dotlock_unsupported(e));
        }
        for e in [errno::ENOENT, errno::ENOSPC, errno::EIO, errno::EEXIST] {
            assert!(!dotlock_unsupported(e));
        }
    }

    #[test]
    fn missing_directory_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/inbox");
        let t = Instant::now();
        let e = MboxLock::acquire(&p, Duration::from_secs(5)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(e.kind, Kind::LocalIo, "{}", e.message());
    }

    #[test]
    fn unique_names_differ() {
        let a = random();
        let b = random();
        assert_ne!(a, b);
        let h = hostname();
        assert!(
            !h.is_empty()
                && h.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
