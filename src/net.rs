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

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use openssl::ssl::{
    HandshakeError, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode,
    SslOptions, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;

use crate::error::{Error, Kind, Result, config, temporary, unavailable};

/// A server must send at least this many bytes per timeout period while a
/// reply is in progress, or the reply times out.
pub const PROGRESS_BYTES: u64 = 64 * 1024;
const BUF_SIZE: usize = 64 * 1024;

/// Trust settings for TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Extra trust roots (PEM, one or more certificates), added to the system's.
    pub cafile: Option<PathBuf>,
    /// A pinned SHA-256 certificate fingerprint (32 bytes): when set, it
    /// replaces the CA check: the server's certificate must be exactly this
    /// one, whoever signed it.
    pub fingerprint: Option<[u8; 32]>,
    /// Complete the handshake whatever the certificate (`--show-cert` only,
    /// which sends nothing after it); [`Conn::peer_info`] says whether it
    /// was trusted.
    pub inspect_only: bool,
}

/// What `--show-cert` prints about a TLS session.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub version: String,
    pub cipher: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub names: Vec<String>,
    pub sha256: [u8; 32],
    /// Why the certificate is not trusted by the normal checks, if it is not.
    pub untrusted: Option<String>,
}

/// `AB:CD:...` for a fingerprint.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse a SHA-256 fingerprint written with or without colons, any case,
/// optionally prefixed `sha256:`.
pub fn parse_fingerprint(s: &str) -> std::result::Result<[u8; 32], String> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

enum Stream {
    Plain(TcpStream),
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
            Stream::Closed => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Err(closed()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(closed()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
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
    /// Open a TCP connection to `host:port`, trying every address the name
    /// resolves to, each with a connect deadline of `timeout`.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Conn> {
        let peer = format!("{host}:{port}");
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| temporary(format!("cannot resolve {host}: {e}")))?
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

    fn new(tcp: TcpStream, peer: String, timeout: Duration) -> Result<Conn> {
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(timeout))
            .and_then(|_| tcp.set_write_timeout(Some(timeout)))
            .map_err(|e| temporary(format!("{peer}: cannot set timeouts: {e}")))?;
        let stream = Stream::Plain(tcp);
        Ok(Conn {
            stream,
            peer,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            timeout,
            sock_timeout: timeout,
            clock: Rc::new(Clock::new(timeout)),
        })
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

    fn upgrade(&mut self, host: &str, tls: &TlsSettings) -> Result<()> {
        let ssl = client_session(host, tls)?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(crate::error::internal(
                "TLS requested twice on one connection",
            ));
        };
        let peer = &self.peer;
        match ssl.connect(tcp) {
            Ok(s) => {
                if let Some(pin) = &tls.fingerprint {
                    let got = s
                        .ssl()
                        .peer_certificate()
                        .and_then(|c| c.digest(openssl::hash::MessageDigest::sha256()).ok());
                    match got {
                        Some(d) if d.as_ref() == pin => {}
                        Some(d) => {
                            let mut fp = [0u8; 32];
                            fp.copy_from_slice(d.as_ref());
                            return Err(unavailable(format!(
                                "{peer}: the server's certificate is not the pinned one \
                                 (fingerprint {}, pinned {})",
                                fingerprint_hex(&fp),
                                fingerprint_hex(pin)
                            )));
                        }
                        None => {
                            return Err(unavailable(format!(
                                "{peer}: the server sent no certificate to check the pin against"
                            )));
                        }
                    }
                }
                self.stream = Stream::Tls(Box::new(s));
                self.start = 0;
                self.end = 0;
                Ok(())
            }
            Err(HandshakeError::WouldBlock(_)) => Err(temporary(format!(
                "{peer}: TLS handshake timed out after {} s",
                self.timeout.as_secs()
            ))),
            Err(HandshakeError::SetupFailure(e)) => Err(Error::new(
                Kind::Internal,
                format!("{peer}: cannot set up TLS: {e}"),
            )),
            Err(HandshakeError::Failure(mid)) => {
                Err(classify_tls_error(peer, mid.error(), mid.ssl()))
            }
        }
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
            if let Some(tcp) = self.stream.tcp() {
                let _ = tcp.set_read_timeout(Some(want));
            }
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
        let wait = wait.max(Duration::from_millis(1));
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.set_read_timeout(Some(wait));
        }
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
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TLS session and the server's certificate, for `--show-cert`.
    /// Trust is judged as a normal connection would (system roots plus
    /// `cafile`, host name `host`), whatever the handshake accepted.
    pub fn peer_info(&self, host: &str, tls: &TlsSettings) -> Option<PeerInfo> {
        let Stream::Tls(s) = &self.stream else {
            return None;
        };
        let ssl = s.ssl();
        let cert = ssl.peer_certificate()?;
        let name = |n: &openssl::x509::X509NameRef| {
            n.entries()
                .map(|e| {
                    format!(
                        "{}={}",
                        e.object().nid().short_name().unwrap_or("?"),
                        String::from_utf8_lossy(e.data().as_slice())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let digest = cert.digest(openssl::hash::MessageDigest::sha256()).ok()?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        let names =
            cert.subject_alt_names()
                .map(|alts| {
                    alts.iter()
                        .filter_map(|a| {
                            a.dnsname().map(str::to_string).or_else(|| {
                                a.ipaddress().map(|ip| match ip.len() {
                                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])
                                        .to_string(),
                                    _ => format!("{ip:?}"),
                                })
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
        Some(PeerInfo {
            version: ssl.version_str().to_string(),
            cipher: ssl
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
            subject: crate::term::escape(&name(cert.subject_name())),
            issuer: crate::term::escape(&name(cert.issuer_name())),
            not_before: cert.not_before().to_string(),
            not_after: cert.not_after().to_string(),
            names,
            sha256,
            untrusted: judge_trust(ssl, host, tls),
        })
    }

    fn timed_out(&self) -> Error {
        temporary(format!(
            "{}: timed out after {} s waiting for the server",
            self.peer,
            self.timeout.as_secs()
        ))
    }
}

/// A [`Conn`] shared between a protocol library that owns "its" stream
/// (the `imap` crate) and our own code, on one thread. Reads through it
/// hand out at most one line at a time, so the library's own read buffer
/// never holds bytes beyond the reply it asked for: once it has read a
/// tagged reply, the connection can be used directly (for streaming
/// bodies) and handed back. Errors carry our [`Error`] inside the
/// `io::Error`; get it back with [`from_io`].
#[derive(Clone)]
pub struct SharedConn(Rc<std::cell::RefCell<Conn>>);

impl SharedConn {
    pub fn new(conn: Conn) -> SharedConn {
        SharedConn(Rc::new(std::cell::RefCell::new(conn)))
    }

    /// Use the connection directly, between the library's commands.
    pub fn with<R>(&self, f: impl FnOnce(&mut Conn) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

impl Read for SharedConn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut c = self.0.borrow_mut();
        if c.start == c.end {
            c.read_more().map_err(io::Error::other)?;
        }
        let avail = &c.buf[c.start..c.end];
        let lim = out.len().min(avail.len());
        let n = match avail[..lim].iter().position(|&b| b == b'\n') {
            Some(p) => p + 1,
            None => lim,
        };
        out[..n].copy_from_slice(&avail[..n]);
        c.consume(n);
        Ok(n)
    }
}

impl Write for SharedConn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().send(data).map_err(io::Error::other)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

/// A client TLS session for `host`: the same hardening as the openssl
/// crate's `SslConnector` (options, cipher list, peer verification, host name
/// checks without partial wildcards), TLS 1.2 or newer, and a trust store of
/// the system's CAs plus `--cafile`.
///
/// Why not `SslConnector` (or native-tls, which wraps it): it parses the
/// whole system CA bundle, and native-tls parses it a second time, on every
/// connection; here that cost 38 ms, more than the rest of a run with no new
/// mail. We look system CAs up lazily in the hashed certificate directory
/// instead (only the issuer's file is read), and load the bundle only on
/// systems without such a directory.
fn client_session(host: &str, tls: &TlsSettings) -> Result<Ssl> {
    let setup = |e: openssl::error::ErrorStack| {
        Error::new(Kind::Internal, format!("cannot set up TLS: {e}"))
    };
    let mut ctx = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
    let mut opts = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    ctx.set_options(opts);
    ctx.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    ctx.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    ctx.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(setup)?;
    if tls.fingerprint.is_some() || tls.inspect_only {
        // The pin (checked right after the handshake) replaces the CA and
        // host name checks; --show-cert sends nothing and reports trust.
        ctx.set_verify(SslVerifyMode::NONE);
    } else {
        ctx.set_verify(SslVerifyMode::PEER);
    }
    ctx.set_cert_store(trust_store(tls)?);
    let ctx: SslContext = ctx.build();

    let mut ssl = Ssl::new(&ctx).map_err(setup)?;
    let param = ssl.param_mut();
    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
    match host.parse::<IpAddr>() {
        Ok(ip) => param.set_ip(ip).map_err(setup)?,
        Err(_) => {
            param.set_host(host).map_err(setup)?;
            ssl.set_hostname(host).map_err(setup)?; // SNI
        }
    }
    Ok(ssl)
}

/// Would a normal connection trust this session's certificate chain for
/// `host`? None if yes, else why not.
fn judge_trust(ssl: &openssl::ssl::SslRef, host: &str, tls: &TlsSettings) -> Option<String> {
    use openssl::x509::store::X509StoreRef;
    use openssl::x509::{X509StoreContext, X509VerifyResult};
    let chain = ssl.peer_cert_chain()?;
    let leaf = ssl.peer_certificate()?;
    let store = match trust_store(tls) {
        Ok(s) => s,
        Err(e) => return Some(e.msg),
    };
    let mut stack = openssl::stack::Stack::new().ok()?;
    for c in chain {
        let _ = stack.push(c.to_owned());
    }
    let mut ctx = X509StoreContext::new().ok()?;
    let store_ref: &X509StoreRef = &store;
    let verdict = ctx
        .init(store_ref, &leaf, &stack, |c| {
            let ok = c.verify_cert()?;
            Ok(if ok { X509VerifyResult::OK } else { c.error() })
        })
        .ok()?;
    if verdict != X509VerifyResult::OK {
        return Some(verdict.error_string().to_string());
    }
    let name_ok = match host.parse::<IpAddr>() {
        Ok(ip) => leaf.subject_alt_names().is_some_and(|alts| {
            alts.iter()
                .any(|a| a.ipaddress() == Some(&ip_bytes(ip)[..]))
        }),
        Err(_) => leaf.subject_alt_names().is_some_and(|alts| {
            alts.iter()
                .any(|a| a.dnsname().is_some_and(|d| dns_matches(d, host)))
        }),
    };
    (!name_ok).then(|| format!("the certificate is not for {host}"))
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// A DNS SAN matches `host` exactly or as a whole-label wildcard (`*.b.c`).
fn dns_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => p == h,
    }
}

/// The system's trust roots (lazily, see [`client_session`]) plus the
/// certificates of `--cafile`.
fn trust_store(tls: &TlsSettings) -> Result<openssl::x509::store::X509Store> {
    let setup = |e: openssl::error::ErrorStack| {
        Error::new(
            Kind::Internal,
            format!("cannot set up the TLS trust store: {e}"),
        )
    };
    let mut store = X509StoreBuilder::new().map_err(setup)?;
    let probe = openssl_probe::probe();
    let hashed: Vec<&PathBuf> = probe
        .cert_dir
        .iter()
        .filter(|d| has_hash_links(d))
        .collect();
    if hashed.is_empty() {
        if let Some(file) = &probe.cert_file {
            let lookup = store.add_lookup(X509Lookup::file()).map_err(setup)?;
            // A missing or unreadable bundle leaves only --cafile; not fatal.
            let _ = lookup.load_cert_file(file, SslFiletype::PEM);
        }
    } else {
        let lookup = store.add_lookup(X509Lookup::hash_dir()).map_err(setup)?;
        for d in hashed {
            if let Some(d) = d.to_str() {
                lookup.add_dir(d, SslFiletype::PEM).map_err(setup)?;
            }
        }
    }
    if let Some(path) = &tls.cafile {
        let pem = std::fs::read(path)
            .map_err(|e| config(format!("cannot read CA file {}: {e}", path.display())))?;
        let certs = split_pem_certificates(&pem);
        if certs.is_empty() {
            return Err(config(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
        for c in certs {
            let cert = X509::from_pem(c).map_err(|e| {
                config(format!(
                    "bad certificate in CA file {}: {e}",
                    path.display()
                ))
            })?;
            // Adding a certificate that is already a system root is fine.
            let _ = store.add_cert(cert);
        }
    }
    Ok(store.build())
}

/// Whether `dir` holds OpenSSL's subject-hash links (`1a2b3c4d.0`), which
/// the lazy directory lookup needs.
fn has_hash_links(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name();
        let b = name.as_encoded_bytes();
        b.len() >= 10 && b[8] == b'.' && b[..8].iter().all(u8::is_ascii_hexdigit)
    })
}

/// The PEM blocks of the certificates in a (bundle) file.
fn split_pem_certificates(pem: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(s) = find(rest, BEGIN) {
        let Some(e) = find(&rest[s..], END) else {
            break;
        };
        let stop = s + e + END.len();
        out.push(&rest[s..stop]);
        rest = &rest[stop..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A handshake failure is a refusal (69) when it is about trust or about the
/// server not speaking TLS, and temporary (75) when the network broke.
fn classify_tls_error(peer: &str, e: &openssl::ssl::Error, ssl: &openssl::ssl::SslRef) -> Error {
    if let Some(io) = e.io_error() {
        if is_timeout(io) {
            return temporary(format!("{peer}: TLS handshake timed out"));
        }
        return temporary(format!("{peer}: TLS handshake failed: {}", describe_io(io)));
    }
    let verify = ssl.verify_result();
    if verify != openssl::x509::X509VerifyResult::OK {
        return unavailable(format!(
            "{peer}: the server's certificate is not trusted: {}",
            verify.error_string()
        ));
    }
    if e.code() == openssl::ssl::ErrorCode::SYSCALL && e.ssl_error().is_none() {
        return temporary(format!(
            "{peer}: connection closed during the TLS handshake"
        ));
    }
    unavailable(format!(
        "{peer}: TLS handshake failed: {}",
        crate::term::escape(&e.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundle_split() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("junk\n{one}{one}");
        assert_eq!(split_pem_certificates(bundle.as_bytes()).len(), 2);
        assert!(split_pem_certificates(b"nothing").is_empty());
    }

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
        assert_eq!(err.kind, Kind::Temporary, "{}", err.msg);
        assert!(err.msg.contains("timed out"), "{}", err.msg);
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
        assert!(err.msg.contains("injection"), "{}", err.msg);
        server.join().unwrap();
    }
}
