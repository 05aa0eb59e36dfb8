//! A wake-up for stop signals (the self-pipe trick): the SIGTERM/SIGINT
//! handler writes a byte to a pipe, and every wait that must end on a stop
//! (an IDLE watcher's socket, the daemon's sleep) polls that pipe beside
//! what it waits for. So an idle daemon sleeps in the kernel until a server
//! speaks, a timer falls due or a signal comes, instead of waking every few
//! hundred milliseconds to look at a flag. The pipe is never drained: once
//! a stop is asked for, every wait ends at once.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The pipe's ends, or -1 before [`init`].
static READ_END: AtomicI32 = AtomicI32::new(-1);
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// Create the pipe (once; later calls do nothing). Called before the
/// signal handlers are installed.
pub fn init() {
    if READ_END.load(Ordering::SeqCst) >= 0 {
        return;
    }
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return; // waits then fall back to waking on their own timeouts
    }
    for fd in fds {
        // SAFETY: fcntl on descriptors we just made.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    WRITE_END.store(fds[1], Ordering::SeqCst);
    READ_END.store(fds[0], Ordering::SeqCst);
}

/// Whether [`init`] made the pipe (waits then end on a stop).
pub fn available() -> bool {
    READ_END.load(Ordering::SeqCst) >= 0
}

/// Wake every wait (safe in a signal handler: one write(2)).
pub fn notify() {
    let fd = WRITE_END.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: a one-byte write from a static buffer; a full pipe
        // (EAGAIN) is fine, the byte already there wakes everyone.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// `fd` is readable.
    Ready,
    /// A stop was asked for.
    Stop,
    /// The time ran out (or a signal interrupted the wait).
    Timeout,
}

/// Wait up to `wait` for `fd` to be readable (or, with None, only for a
/// stop or the time), waking at once on a stop. Without [`init`], only
/// `fd` and the time end it.
pub fn wait(fd: Option<RawFd>, wait: Option<Duration>) -> io::Result<Woken> {
    let stop = READ_END.load(Ordering::SeqCst);
    let mut pfds = Vec::with_capacity(2);
    if let Some(fd) = fd {
        pfds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    if stop >= 0 {
        pfds.push(libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let ms = match wait {
        Some(w) => w.as_millis().min(i32::MAX as u128) as i32,
        None => -1,
    };
    if pfds.is_empty() {
        std::thread::sleep(wait.unwrap_or(Duration::from_secs(1)));
        return Ok(Woken::Timeout);
    }
    // SAFETY: `pfds` holds pfds.len() valid pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(Woken::Timeout)
        } else {
            Err(e)
        };
    }
    if stop >= 0 && pfds.last().is_some_and(|p| p.revents != 0) {
        return Ok(Woken::Stop);
    }
    if fd.is_some() && pfds[0].revents != 0 {
        return Ok(Woken::Ready);
    }
    Ok(Woken::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_socket_wakes_the_wait_and_then_a_stop_does() {
        init();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            wait(Some(b.as_raw_fd()), Some(Duration::from_millis(50))).unwrap(),
            Woken::Timeout
        );
        assert!(t.elapsed() >= Duration::from_millis(40));
        a.write_all(b"x").unwrap();
        assert_eq!(wait(Some(b.as_raw_fd()), None).unwrap(), Woken::Ready);
        // The stop wakes a wait with no time limit.
        let waiter = std::thread::spawn(|| wait(None, None).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        notify();
        assert_eq!(waiter.join().unwrap(), Woken::Stop);
        // Other tests in this binary wait too: take the byte back.
        let mut byte = [0u8; 8];
        // SAFETY: a read into a local buffer of its length.
        unsafe { libc::read(READ_END.load(Ordering::SeqCst), byte.as_mut_ptr().cast(), 8) };
        assert_eq!(wait(None, Some(Duration::ZERO)).unwrap(), Woken::Timeout);
    }
}
