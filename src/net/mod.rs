//! The only code that opens sockets and TLS sessions.
//!
//! [`Conn`] is a buffered connection (plain TCP or TLS) with two clocks:
//! an idle timeout on every read and write (SO_RCVTIMEO/SO_SNDTIMEO), and a
//! per-reply deadline started by [`Clock::begin`] that only moves forward
//! when the server makes real progress ([`PROGRESS_BYTES`] per timeout
//! period). A server that dribbles one byte every few seconds therefore fails
//! within the timeout, not never. Each reply also has a byte budget: a
//! server that sends more than the reply can need is stopped, so nothing it
//! sends can make us hold unbounded data in memory (the IMAP library
//! buffers whole responses).
//!
//! `Conn` implements `Read` and `Write`, so a protocol library (the `imap`
//! crate) can run over it; its [`Clock`] handle stays with the caller, who
//! starts the clock and sets the budget before each command.
//!
//! STARTTLS: [`Conn::start_tls`] refuses to upgrade when the server has sent
//! anything after its positive reply (RFC 2595 / RFC 3207 response injection).
//!
//! What to connect to comes as an [`Endpoint`] (resolved settings, no
//! account or command-line type), and a protocol's `-vv` exchange goes to
//! a [`Trace`] the caller provides.

mod shared;
pub mod tls;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use openssl::ssl::SslStream;

use crate::error::{Error, Result, temporary, unavailable};
use crate::types::TlsMode;
pub use shared::SharedConn;
pub use tls::{PeerInfo, TlsSettings, fingerprint_hex, parse_fingerprint};

/// A server must send at least this many bytes per timeout period while a
/// reply is in progress, or the reply times out.
pub const PROGRESS_BYTES: u64 = 64 * 1024;
const BUF_SIZE: usize = 64 * 1024;

/// Where and how to connect: one account's server, as resolved.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// For connecting, for each reply, and for each socket read and write.
    pub timeout: Duration,
    pub trust: TlsSettings,
}

/// Where a protocol session writes its exchange with the server for `-vv`.
/// Commands come redacted (no password, no token); server lines come as
/// received, and the sink escapes them before they reach a terminal.
pub trait Trace: Sync {
    /// Whether lines are wanted at all (so callers can skip building them).
    fn on(&self) -> bool;
    /// One line: `dir` is `C:` (sent) or `S:` (received).
    fn line(&self, dir: &str, text: &str);
}

/// A [`Trace`] that keeps nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    fn on(&self) -> bool {
        false
    }
    fn line(&self, _: &str, _: &str) {}
}

enum Stream {
    Plain(TcpStream),
    /// A unix socket (an LMTP server on this machine).
    Unix(UnixStream),
    Tls(Box<SslStream<TcpStream>>),
    /// After a failed TLS upgrade: the socket is gone.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.get_ref()),
            Stream::Unix(_) | Stream::Closed => None,
        }
    }

    /// The socket to poll, and whether TLS already holds decrypted bytes
    /// (which a poll of the socket cannot see).
    fn poll_fd(&self) -> Option<(std::os::fd::RawFd, bool)> {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Plain(s) => Some((s.as_raw_fd(), false)),
            Stream::Unix(s) => Some((s.as_raw_fd(), false)),
            Stream::Tls(s) => Some((s.get_ref().as_raw_fd(), s.ssl().pending() > 0)),
            Stream::Closed => None,
        }
    }

    fn set_read_timeout(&self, d: Duration) {
        match self {
            Stream::Unix(s) => {
                let _ = s.set_read_timeout(Some(d));
            }
            _ => {
                if let Some(tcp) = self.tcp() {
                    let _ = tcp.set_read_timeout(Some(d));
                }
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Err(closed()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(closed()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Err(closed()),
        }
    }
}

/// The deadline and byte budget of the reply being read. Shared (one
/// thread) between a [`Conn`] and the code that drives a protocol over it.
#[derive(Debug)]
pub struct Clock {
    timeout: Duration,
    deadline: Cell<Instant>,
    progress: Cell<u64>,
    budget: Cell<u64>,
}

impl Clock {
    fn new(timeout: Duration) -> Clock {
        Clock {
            timeout,
            deadline: Cell::new(Instant::now() + timeout),
            progress: Cell::new(0),
            budget: Cell::new(u64::MAX),
        }
    }

    /// Start the clock for a new reply, which may take at most `budget`
    /// bytes from the server.
    pub fn begin(&self, budget: u64) {
        self.deadline.set(Instant::now() + self.timeout);
        self.progress.set(0);
        self.budget.set(budget);
    }
}

/// A buffered client connection with deadlines.
pub struct Conn {
    stream: Stream,
    /// Name used in messages: `host:port`.
    pub peer: String,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    timeout: Duration,
    /// The socket read timeout currently set, to avoid needless syscalls.
    sock_timeout: Duration,
    clock: Rc<Clock>,
}

impl Conn {
    /// Connect to `ep`, with TLS from the first byte when it asks for
    /// implicit TLS. (A STARTTLS upgrade is the protocol's to ask for, with
    /// [`Conn::start_tls`], once the server has agreed.)
    pub fn open(ep: &Endpoint) -> Result<Conn> {
        let mut conn = Conn::connect(&ep.host, ep.port, ep.timeout)?;
        if ep.tls == TlsMode::Implicit {
            conn.tls(&ep.host, &ep.trust)?;
        }
        Ok(conn)
    }

    /// Open a TCP connection to `host:port`, trying every address the name
    /// resolves to, each with a connect deadline of `timeout`.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Conn> {
        let peer = format!("{host}:{port}");
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| temporary(format!("cannot resolve {host}")).because(e))?
            .collect();
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => return Conn::new(s, peer, timeout),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => temporary(format!("cannot connect to {peer}: {}", describe_io(&e))),
            None => temporary(format!("{host} resolves to no address")),
        })
    }

    /// Connect to the unix socket `path` (a local LMTP server).
    pub fn connect_unix(path: &std::path::Path, timeout: Duration) -> Result<Conn> {
        let peer = path.display().to_string();
        let s = UnixStream::connect(path)
            .map_err(|e| temporary(format!("cannot connect to {peer}: {}", describe_io(&e))))?;
        s.set_read_timeout(Some(timeout))
            .and_then(|_| s.set_write_timeout(Some(timeout)))
            .map_err(|e| temporary(format!("{peer}: cannot set timeouts")).because(e))?;
        Ok(Conn::with_stream(Stream::Unix(s), peer, timeout))
    }

    fn new(tcp: TcpStream, peer: String, timeout: Duration) -> Result<Conn> {
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(timeout))
            .and_then(|_| tcp.set_write_timeout(Some(timeout)))
            .map_err(|e| temporary(format!("{peer}: cannot set timeouts")).because(e))?;
        Ok(Conn::with_stream(Stream::Plain(tcp), peer, timeout))
    }

    fn with_stream(stream: Stream, peer: String, timeout: Duration) -> Conn {
        Conn {
            stream,
            peer,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            timeout,
            sock_timeout: timeout,
            clock: Rc::new(Clock::new(timeout)),
        }
    }

    /// Wrap the connection in TLS right away (implicit TLS, RFC 8314).
    pub fn tls(&mut self, host: &str, tls: &TlsSettings) -> Result<()> {
        self.upgrade(host, tls)
    }

    /// Upgrade after a positive STLS/STARTTLS reply. Refuses when the server
    /// already sent more bytes: they were sent in plaintext and could have
    /// been injected by an attacker, so nothing after this point may trust
    /// them.
    pub fn start_tls(&mut self, host: &str, tls: &TlsSettings) -> Result<()> {
        if self.start != self.end {
            return Err(unavailable(format!(
                "{}: server sent {} unexpected bytes after accepting STARTTLS, before the TLS \
                 handshake (possible response injection); refusing to continue",
                self.peer,
                self.end - self.start
            )));
        }
        self.upgrade(host, tls)
    }

    fn upgrade(&mut self, host: &str, trust: &TlsSettings) -> Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(crate::error::internal(
                "TLS requested twice on one connection",
            ));
        };
        let s = tls::handshake(tcp, host, trust, &self.peer, self.timeout)?;
        self.stream = Stream::Tls(Box::new(s));
        self.start = 0;
        self.end = 0;
        Ok(())
    }

    /// Start the clock for a new reply (or a new command round trip), with
    /// no byte budget (POP3 bounds its replies itself).
    pub fn begin_reply(&mut self) {
        self.clock.begin(u64::MAX);
    }

    /// The clock handle, for code that drives this connection through a
    /// library that owns it.
    pub fn clock(&self) -> Rc<Clock> {
        Rc::clone(&self.clock)
    }

    /// The bytes buffered but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read more bytes from the server into the buffer, keeping what is
    /// already buffered. Errors on EOF, on timeout and when the buffer is
    /// full (a caller that needs more than the buffer holds at once has a
    /// bug or a hostile peer).
    pub fn read_more(&mut self) -> Result<usize> {
        if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(crate::error::protocol(format!(
                "{}: server sent more than {} bytes without a line break",
                self.peer, BUF_SIZE
            )));
        }
        let now = Instant::now();
        let deadline = self.clock.deadline.get();
        if now >= deadline {
            return Err(self.timed_out());
        }
        // Shorten the socket's idle timeout when the reply deadline is
        // nearer, so a blocked read ends by the deadline. Changed only when
        // it is off by more than a second: a syscall per read would cost more
        // than the precision is worth.
        let remaining = deadline - now;
        let want = if remaining + Duration::from_secs(1) >= self.timeout {
            self.timeout
        } else {
            remaining.max(Duration::from_millis(1))
        };
        if want > self.sock_timeout || want + Duration::from_secs(1) < self.sock_timeout {
            self.stream.set_read_timeout(want);
            self.sock_timeout = want;
        }
        let n = loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(self.timed_out()),
                Err(e) => {
                    return Err(temporary(format!(
                        "{}: connection lost: {}",
                        self.peer,
                        describe_io(&e)
                    )));
                }
            }
        };
        if n == 0 {
            return Err(temporary(format!(
                "{}: connection closed by the server",
                self.peer
            )));
        }
        self.end += n;
        let c = &self.clock;
        c.progress.set(c.progress.get() + n as u64);
        if c.progress.get() >= PROGRESS_BYTES {
            c.progress.set(0);
            c.deadline.set(Instant::now() + self.timeout);
        }
        let left = c.budget.get();
        if n as u64 > left {
            return Err(crate::error::protocol(format!(
                "{}: the server sent more than its reply could need; stopped",
                self.peer
            )));
        }
        c.budget.set(left - n as u64);
        Ok(n)
    }

    /// Wait up to `wait` for bytes from the server (IDLE: hours may pass
    /// between them, so the reply clock does not apply). Ok(true) when some
    /// are buffered, Ok(false) when none came in time; `budget` bytes at
    /// most may arrive (a flood is an error).
    pub fn wait_readable(&mut self, wait: Duration, budget: &mut u64) -> Result<bool> {
        if self.start < self.end {
            return Ok(true);
        }
        self.start = 0;
        self.end = 0;
        // Sleep in the kernel until the server speaks, the time is up or a
        // stop is asked for (platform/stop.rs): no waking to look at a flag.
        if let Some((fd, false)) = self.stream.poll_fd() {
            match crate::platform::stop::wait(Some(fd), Some(wait)) {
                Ok(crate::platform::stop::Woken::Ready) => {}
                Ok(_) => return Ok(false),
                Err(e) => {
                    return Err(temporary(format!(
                        "{}: waiting for the server failed: {e}",
                        self.peer
                    )));
                }
            }
        }
        // Readable: the rest of a TLS record may still be on its way; a
        // short read timeout keeps a stop from waiting on it.
        let wait = wait.clamp(Duration::from_millis(1), Duration::from_secs(1));
        self.stream.set_read_timeout(wait);
        self.sock_timeout = wait;
        match self.stream.read(&mut self.buf) {
            Ok(0) => Err(temporary(format!(
                "{}: connection closed by the server",
                self.peer
            ))),
            Ok(n) => {
                if n as u64 > *budget {
                    return Err(crate::error::protocol(format!(
                        "{}: the server sent more than an idle session could need; stopped",
                        self.peer
                    )));
                }
                *budget -= n as u64;
                self.end = n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => Ok(false),
            Err(e) => Err(temporary(format!(
                "{}: connection lost: {}",
                self.peer,
                describe_io(&e)
            ))),
        }
    }

    /// Make sure at least one byte is buffered and return the buffered bytes.
    pub fn fill(&mut self) -> Result<&[u8]> {
        if self.start == self.end {
            self.read_more()?;
        }
        Ok(self.buffered())
    }

    /// Write all of `bytes` (one or many pipelined commands) and flush.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self
            .stream
            .write_all(bytes)
            .and_then(|_| self.stream.flush());
        r.map_err(|e| {
            if is_timeout(&e) {
                temporary(format!(
                    "{}: timed out after {} s sending to the server",
                    self.peer,
                    self.timeout.as_secs()
                ))
            } else {
                temporary(format!(
                    "{}: connection lost: {}",
                    self.peer,
                    describe_io(&e)
                ))
            }
        })
    }

    /// Close the connection without a protocol goodbye.
    pub fn shutdown(&mut self) {
        match &self.stream {
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            other => {
                if let Some(tcp) = other.tcp() {
                    let _ = tcp.shutdown(Shutdown::Both);
                }
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TLS session and the server's certificate, for `--show-cert`
    /// (see [`tls::PeerInfo`]); None on a plain connection.
    pub fn peer_info(&self, host: &str, trust: &TlsSettings) -> Option<PeerInfo> {
        match &self.stream {
            Stream::Tls(s) => tls::peer_info(s.ssl(), host, trust),
            _ => None,
        }
    }

    fn timed_out(&self) -> Error {
        temporary(format!(
            "{}: timed out after {} s waiting for the server",
            self.peer,
            self.timeout.as_secs()
        ))
    }
}

/// Our [`Error`] back out of an `io::Error` made by `Conn`'s `Read`/`Write`;
/// any other I/O error is a network failure.
pub fn from_io(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = e.into_inner().expect("checked above");
        return *inner.downcast::<Error>().expect("checked above");
    }
    temporary(format!("connection lost: {}", describe_io(&e)))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by the server".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn dribbling_server_times_out_within_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut c = Conn::connect("127.0.0.1", port, Duration::from_millis(700)).unwrap();
        c.begin_reply();
        let t = Instant::now();
        let err = loop {
            match c.read_more() {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind, Kind::Temporary, "{}", err.message());
        assert!(err.message().contains("timed out"), "{}", err.message());
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        drop(c);
        server.join().unwrap();
    }

    #[test]
    fn start_tls_refuses_buffered_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"+OK begin TLS\r\n+OK injected\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut c = Conn::connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        c.begin_reply();
        while !c.buffered().ends_with(b"injected\r\n") {
            c.read_more().unwrap();
        }
        c.consume(15);
        let err = c
            .start_tls("localhost", &TlsSettings::default())
            .unwrap_err();
        assert_eq!(err.kind, Kind::Unavailable);
        assert!(err.message().contains("injection"), "{}", err.message());
        server.join().unwrap();
    }
}
