//! A scripted, in-process POP3 server (RFC 1939, with CAPA/PIPELINING from
//! RFC 2449, STLS from RFC 2595 and AUTH PLAIN from RFC 5034) for testing the
//! client's behaviour, including its reaction to faults and hostile input.
//!
//! The server listens on `127.0.0.1:<ephemeral port>` and serves any number
//! of connections (each in its own thread) until the [`Pop3Server`] is
//! dropped. Everything the client sends is recorded:
//!
//! * [`Pop3Server::received`]: every byte read from the client, all
//!   connections concatenated in arrival order. For TLS this is the
//!   decrypted plaintext (the handshake itself is not recorded); for STLS it
//!   is the plaintext before the upgrade followed by the decrypted bytes
//!   after it. Bytes the client pipelined after `STLS` in plaintext are
//!   recorded, then discarded (never executed), as RFC 2595 requires.
//! * [`Pop3Server::commands`]: every line received, verbatim without its
//!   line terminator, all connections in order (no separators; see
//!   [`Pop3Server::commands_per_connection`] for a split). This includes
//!   `PASS secret`, `AUTH PLAIN <base64>` and the base64 continuation line of
//!   an `AUTH PLAIN` without initial response, exactly as sent.
//!
//! Deletions are flagged per session (`Message::deleted`) and applied only
//! when the client sends QUIT in the TRANSACTION state; a connection that
//! ends any other way clears the flags. While a session is authenticated it
//! holds the maildrop lock (`Mailbox::locked`); a second concurrent login
//! waits up to 1 s for it and then gets `-ERR [IN-USE] ...`.
//!
//! A panic in a connection thread (for example an assertion inside
//! [`ServerConfig::hook_on_command`]) is caught, recorded, ends that
//! connection, and is re-raised as a panic when the server is dropped (unless
//! the test thread is already panicking), so hook assertions fail the test.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use native_tls::{TlsAcceptor, TlsStream};

/// Read and write timeout on every server-side socket: no connection
/// handler ever blocks longer than this on one I/O operation.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest command line the server accepts (bytes, terminator included).
pub const MAX_LINE: usize = 64 * 1024;

/// How long a login waits for the maildrop lock held by another session.
const LOCK_WAIT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// Mailbox
// ---------------------------------------------------------------------------

/// One message on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub uidl: String,
    /// Raw message bytes, served exactly as given (plus dot-stuffing, and a
    /// final CRLF if missing).
    pub body: Vec<u8>,
    /// Marked for deletion by DELE in the current session (cleared by RSET
    /// or by the session ending without QUIT).
    pub deleted: bool,
}

/// The maildrop, shared by all connections.
#[derive(Clone, Debug, Default)]
pub struct Mailbox {
    pub messages: Vec<Message>,
    /// True while an authenticated session holds the maildrop.
    pub locked: bool,
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Transport security of the server.
#[derive(Clone)]
pub enum TlsMode {
    /// Plain TCP; STLS is an unknown command.
    None,
    /// TLS from the first byte (POP3S).
    Implicit(TlsAcceptor),
    /// Plain TCP with STLS (RFC 2595) available and advertised.
    Stls(TlsAcceptor),
}

/// Replaces the protocol loop entirely for a connection. It gets the raw,
/// accepted socket (timeouts already set) and a [`Recorder`]; it must do its
/// own recording (see [`Recorder::read_line`]). The socket is shut down when
/// the script returns.
pub type Script = Arc<dyn Fn(&mut TcpStream, &Recorder) + Send + Sync>;

/// Called with each command line (without CRLF) before it is answered.
pub type CommandHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Normal server behaviour. Build with `ServerConfig { field: .., ..Default::default() }`.
#[derive(Clone)]
pub struct ServerConfig {
    pub user: String,
    pub password: String,
    pub tls: TlsMode,
    /// Text after `+OK ` in the greeting. If it contains an APOP timestamp
    /// `<...>`, APOP is accepted (digest = md5(timestamp + password)).
    pub greeting: String,
    /// false: CAPA answers `-ERR` (a pre-RFC 2449 server).
    pub capa_enabled: bool,
    pub capa_top: bool,
    pub capa_uidl: bool,
    pub capa_user: bool,
    pub capa_pipelining: bool,
    pub capa_sasl_plain: bool,
    pub capa_resp_codes: bool,
    pub capa_auth_resp_code: bool,
    /// Extra capability lines appended verbatim.
    pub capa_extra: Vec<String>,
    /// false: UIDL is an unknown command.
    pub uidl_supported: bool,
    /// false: TOP is an unknown command.
    pub top_supported: bool,
    /// false: USER is rejected.
    pub user_enabled: bool,
    /// false: AUTH PLAIN is rejected as an unsupported mechanism.
    pub sasl_plain_enabled: bool,
    /// false: USER/PASS/APOP/AUTH are refused (`-ERR [AUTH] ...`) until
    /// TLS is active.
    pub plaintext_auth_allowed: bool,
    pub faults: Faults,
    /// Called before the server answers each command line (the line as
    /// received, without CRLF, e.g. `"DELE 3"`). Not called for the
    /// continuation line of `AUTH PLAIN` (that one is only recorded).
    pub hook_on_command: Option<CommandHook>,
    /// Replaces the whole protocol loop (greeting included) for every
    /// connection; see [`Script`]. `tls` and `faults` are then ignored.
    pub script: Option<Script>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            user: "tester".into(),
            password: "secret".into(),
            tls: TlsMode::None,
            greeting: "fetch test POP3 server ready".into(),
            capa_enabled: true,
            capa_top: true,
            capa_uidl: true,
            capa_user: true,
            capa_pipelining: true,
            capa_sasl_plain: true,
            capa_resp_codes: true,
            capa_auth_resp_code: true,
            capa_extra: Vec::new(),
            uidl_supported: true,
            top_supported: true,
            user_enabled: true,
            sasl_plain_enabled: true,
            plaintext_auth_allowed: true,
            faults: Faults::default(),
            hook_on_command: None,
            script: None,
        }
    }
}

/// Misbehaviour to inject. `Default` = none. Message numbers are 1-based.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Faults apply only to the first N connections (1..=N); None = all.
    pub fault_connections: Option<usize>,
    /// STLS works but is not listed in CAPA.
    pub stls_not_advertised: bool,
    /// STLS is answered with `-ERR`.
    pub stls_refused: bool,
    /// Bytes sent in the same write right after `+OK` to STLS, before the
    /// handshake (response injection). The handshake is still attempted.
    pub inject_after_stls: Option<Vec<u8>>,
    /// `(n, k)`: on `RETR n`, send only the first `k` bytes of the whole
    /// reply (counting from the `+` of the status line), then cut the
    /// connection (no UPDATE, no TLS close_notify).
    pub drop_during_retr: Option<(usize, usize)>,
    /// `(n, k, d)`: on `RETR n`, send the first `k` bytes of the reply, stay
    /// silent for `d`, then cut the connection.
    pub stall_during_retr: Option<(usize, usize, Duration)>,
    /// Size reported by LIST/STAT/RETR status for message n.
    pub list_size_override: HashMap<usize, u64>,
    /// Raw text after `"n "` in UIDL replies, element i for message i+1
    /// (served verbatim, no validation; missing entries use the real uidl).
    pub uidl_override: Option<Vec<String>>,
    /// Accept, send nothing for this long, then close.
    pub stall_before_greeting: Option<Duration>,
    /// Send the greeting, then read/answer nothing for this long, then close.
    pub stall_after_greeting: Option<Duration>,
    /// Send every reply one byte at a time, sleeping this long after each.
    pub dribble: Option<Duration>,
    /// Verb (e.g. "RETR", "UIDL", "LIST", "CAPA", "TOP") whose multi-line
    /// replies are sent without the final ".\r\n", after which the
    /// connection is closed.
    pub unterminated_multiline: Option<String>,
    /// The greeting is one line of exactly this many bytes (`+OK xxxx...`,
    /// CRLF not counted); the session then goes on normally.
    pub long_line: Option<usize>,
    /// `DELE n` answers `-ERR` (message not marked).
    pub dele_error: HashSet<usize>,
    /// QUIT in TRANSACTION answers `-ERR [SYS/TEMP] ...` and deletes nothing.
    pub quit_error: bool,
    /// When a command line starting with this text (case-insensitive)
    /// arrives, close the connection without answering (no UPDATE).
    pub drop_on_command: Option<String>,
    /// Every authentication attempt (PASS, APOP, AUTH PLAIN) is answered
    /// with this line (e.g. `"-ERR [IN-USE] busy"`), whatever the
    /// credentials, and the session stays unauthenticated.
    pub auth_reply_override: Option<String>,
}

// ---------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Record {
    received: Vec<u8>,
    /// Index = connection number - 1.
    commands: Vec<Vec<String>>,
    log: Vec<String>,
    panics: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-connection handle on the server's record, also given to scripts.
#[derive(Clone)]
pub struct Recorder {
    rec: Arc<Mutex<Record>>,
    conn: usize,
}

impl Recorder {
    /// 1-based number of this connection.
    pub fn connection(&self) -> usize {
        self.conn
    }
    /// Appends bytes received from the client.
    pub fn record_bytes(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            lock(&self.rec).received.extend_from_slice(bytes);
        }
    }
    /// Appends a command line (without terminator).
    pub fn record_command(&self, line: &str) {
        let mut r = lock(&self.rec);
        let idx = self.conn - 1;
        while r.commands.len() <= idx {
            r.commands.push(Vec::new());
        }
        r.commands[idx].push(line.to_string());
    }
    /// Adds a diagnostic message to the server log.
    pub fn log(&self, msg: impl AsRef<str>) {
        lock(&self.rec)
            .log
            .push(format!("conn {}: {}", self.conn, msg.as_ref()));
    }
    /// For scripts: reads one line byte by byte (never over-reads), records
    /// its bytes and the line (without CRLF) as a command. None on EOF,
    /// error, timeout, or a line longer than [`MAX_LINE`] (whatever was
    /// read is still recorded).
    pub fn read_line(&self, stream: &mut dyn Read) -> Option<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match stream.read(&mut b) {
                Ok(1) => {
                    line.push(b[0]);
                    if b[0] == b'\n' {
                        break;
                    }
                    if line.len() >= MAX_LINE {
                        self.record_bytes(&line);
                        return None;
                    }
                }
                _ => {
                    self.record_bytes(&line);
                    return None;
                }
            }
        }
        self.record_bytes(&line);
        let text = String::from_utf8_lossy(strip_eol(&line)).into_owned();
        self.record_command(&text);
        Some(text)
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A running server; stops when dropped.
pub struct Pop3Server {
    pub port: u16,
    pub mailbox: Arc<Mutex<Mailbox>>,
    rec: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    live: Arc<Mutex<HashMap<usize, TcpStream>>>,
    accept_done: Option<mpsc::Receiver<()>>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    cfg: ServerConfig,
    mailbox: Arc<Mutex<Mailbox>>,
    rec: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    live: Arc<Mutex<HashMap<usize, TcpStream>>>,
}

impl Pop3Server {
    /// Starts a server on 127.0.0.1 with the given `(uidl, raw message)`
    /// list. Accepts any number of connections until dropped.
    pub fn start(cfg: ServerConfig, messages: Vec<(String, Vec<u8>)>) -> Pop3Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let mailbox = Arc::new(Mutex::new(Mailbox {
            messages: messages
                .into_iter()
                .map(|(uidl, body)| Message {
                    uidl,
                    body,
                    deleted: false,
                })
                .collect(),
            locked: false,
        }));
        let shared = Arc::new(Shared {
            cfg,
            mailbox: mailbox.clone(),
            rec: Arc::new(Mutex::new(Record::default())),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(AtomicUsize::new(0)),
            active: Arc::new(AtomicUsize::new(0)),
            live: Arc::new(Mutex::new(HashMap::new())),
        });
        let (tx, rx) = mpsc::channel();
        let sh = shared.clone();
        let accept_thread = thread::Builder::new()
            .name(format!("pop3-accept-{port}"))
            .spawn(move || {
                accept_loop(listener, &sh);
                let _ = tx.send(());
            })
            .expect("spawn accept thread");
        Pop3Server {
            port,
            mailbox,
            rec: shared.rec.clone(),
            stop: shared.stop.clone(),
            conns: shared.conns.clone(),
            active: shared.active.clone(),
            live: shared.live.clone(),
            accept_done: Some(rx),
            accept_thread: Some(accept_thread),
        }
    }

    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every byte any client sent (see module docs).
    pub fn received(&self) -> Vec<u8> {
        lock(&self.rec).received.clone()
    }

    /// All command lines received, all connections in order, no separators.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.rec).commands.concat()
    }

    /// Command lines received, one Vec per connection (index 0 = first).
    pub fn commands_per_connection(&self) -> Vec<Vec<String>> {
        lock(&self.rec).commands.clone()
    }

    /// Messages still on the server (`(uidl, body)`), including ones only
    /// flagged for deletion by a session still in progress.
    pub fn remaining(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.mailbox)
            .messages
            .iter()
            .map(|m| (m.uidl.clone(), m.body.clone()))
            .collect()
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Diagnostics: I/O errors, TLS handshake failures, faults applied.
    pub fn log(&self) -> Vec<String> {
        lock(&self.rec).log.clone()
    }

    /// Panics caught in connection threads (also re-raised on drop).
    pub fn panics(&self) -> Vec<String> {
        lock(&self.rec).panics.clone()
    }

    /// Waits (at most `timeout`) until no connection is being served;
    /// returns whether that happened.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Pop3Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        if let Some(rx) = self.accept_done.take()
            && rx.recv_timeout(Duration::from_secs(2)).is_ok()
            && let Some(t) = self.accept_thread.take()
        {
            let _ = t.join();
        }
        // Unblock every handler still reading or writing.
        for (_, s) in lock(&self.live).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.wait_idle(Duration::from_secs(3));
        let panics = self.panics();
        if !panics.is_empty() && !thread::panicking() {
            panic!("POP3 test server thread panicked: {panics:?}");
        }
    }
}

fn accept_loop(listener: TcpListener, sh: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                lock(&sh.rec).log.push(format!("accept error: {e}"));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let n = sh.conns.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut r = lock(&sh.rec);
            while r.commands.len() < n {
                r.commands.push(Vec::new());
            }
        }
        if let Ok(c) = stream.try_clone() {
            lock(&sh.live).insert(n, c);
        }
        sh.active.fetch_add(1, Ordering::SeqCst);
        let sh2 = sh.clone();
        let spawned = thread::Builder::new()
            .name(format!("pop3-conn-{n}"))
            .spawn(move || {
                let _guard = ActiveGuard(sh2.active.clone());
                let rec = Recorder {
                    rec: sh2.rec.clone(),
                    conn: n,
                };
                let result = catch_unwind(AssertUnwindSafe(|| handle(stream, &sh2, &rec)));
                if let Err(p) = result {
                    let msg = if let Some(s) = p.downcast_ref::<&str>() {
                        s.to_string()
                    } else if let Some(s) = p.downcast_ref::<String>() {
                        s.clone()
                    } else {
                        "non-string panic payload".to_string()
                    };
                    lock(&sh2.rec).panics.push(format!("conn {n}: {msg}"));
                }
                // Whatever happened (even a panic), the client sees the
                // connection close now.
                if let Some(s) = lock(&sh2.live).remove(&n) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            });
        if spawned.is_err() {
            sh.active.fetch_sub(1, Ordering::SeqCst);
            lock(&sh.live).remove(&n);
            lock(&sh.rec).log.push("could not spawn handler".into());
        }
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle(stream: TcpStream, sh: &Shared, rec: &Recorder) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let raw = match stream.try_clone() {
        Ok(r) => r,
        Err(e) => {
            rec.log(format!("try_clone: {e}"));
            return;
        }
    };
    let cfg = &sh.cfg;
    if let Some(script) = &cfg.script {
        let mut s = stream;
        script(&mut s, rec);
        let _ = raw.shutdown(Shutdown::Both);
        return;
    }
    let faults_on = cfg
        .faults
        .fault_connections
        .is_none_or(|n| rec.connection() <= n);
    let (stream, tls_active) = match &cfg.tls {
        TlsMode::Implicit(acc) => match acc.accept(stream) {
            Ok(t) => (Stream::Tls(Box::new(t)), true),
            Err(e) => {
                rec.log(format!("implicit TLS handshake failed: {e}"));
                let _ = raw.shutdown(Shutdown::Both);
                return;
            }
        },
        _ => (Stream::Plain(stream), false),
    };
    let mut session = Session {
        cfg,
        faults: &cfg.faults,
        faults_on,
        rec: rec.clone(),
        mailbox: sh.mailbox.clone(),
        stop: sh.stop.clone(),
        reader: BufReader::new(Conn {
            stream,
            rec: rec.clone(),
        }),
        tls_active,
        authed: false,
        pending_user: None,
        holds_lock: false,
    };
    match session.run() {
        Ok(End::Graceful) => {
            if let Stream::Tls(t) = &mut session.reader.get_mut().stream {
                let _ = t.shutdown();
            }
        }
        Ok(End::Abort) => {}
        Err(e) => rec.log(format!("I/O error: {e}")),
    }
    session.release();
    drop(session);
    let _ = raw.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Connection plumbing
// ---------------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Closed,
}

/// The client-facing stream; everything read through it is recorded.
struct Conn {
    stream: Stream,
    rec: Recorder,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(buf)?,
            Stream::Tls(s) => s.read(buf)?,
            Stream::Closed => 0,
        };
        self.rec.record_bytes(&buf[..n]);
        Ok(n)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Ok(()),
        }
    }
}

/// How a session ended.
enum End {
    /// QUIT or client hang-up: close normally (TLS close_notify).
    Graceful,
    /// A fault cut the connection.
    Abort,
}

enum Flow {
    Continue,
    End(End),
}

struct Session<'a> {
    cfg: &'a ServerConfig,
    faults: &'a Faults,
    faults_on: bool,
    rec: Recorder,
    mailbox: Arc<Mutex<Mailbox>>,
    stop: Arc<AtomicBool>,
    reader: BufReader<Conn>,
    tls_active: bool,
    authed: bool,
    pending_user: Option<String>,
    holds_lock: bool,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<'a> Session<'a> {
    /// Gives up the maildrop without UPDATE: clears deletion flags, unlocks.
    fn release(&mut self) {
        if self.holds_lock {
            let mut mb = lock(&self.mailbox);
            for m in &mut mb.messages {
                m.deleted = false;
            }
            mb.locked = false;
            self.holds_lock = false;
        }
    }

    fn fault<T>(&self, f: impl FnOnce(&'a Faults) -> Option<T>) -> Option<T> {
        if self.faults_on { f(self.faults) } else { None }
    }

    /// Sleeps up to `d`, returning early if the server is stopping.
    fn nap(&self, d: Duration) {
        let deadline = Instant::now() + d;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(d) = self.fault(|f| f.dribble) {
            for &b in data {
                if self.stop.load(Ordering::SeqCst) {
                    return Err(io::Error::other("server stopping"));
                }
                let w = self.reader.get_mut();
                w.write_all(&[b])?;
                w.flush()?;
                self.nap(d);
            }
            Ok(())
        } else {
            let w = self.reader.get_mut();
            w.write_all(data)?;
            w.flush()
        }
    }

    fn reply(&mut self, line: &str) -> io::Result<Flow> {
        self.send(format!("{line}\r\n").as_bytes())?;
        Ok(Flow::Continue)
    }

    /// Sends `status`, the (already dot-stuffed, CRLF-terminated) payload
    /// and the terminator, honouring `unterminated_multiline`.
    fn multiline(&mut self, verb: &str, status: &str, payload: &[u8]) -> io::Result<Flow> {
        let mut out = Vec::with_capacity(status.len() + payload.len() + 8);
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        let cut = self
            .fault(|f| f.unterminated_multiline.clone())
            .is_some_and(|v| v.eq_ignore_ascii_case(verb));
        if cut {
            self.send(&out)?;
            self.rec
                .log(format!("fault: {verb} reply left unterminated, closing"));
            return Ok(Flow::End(End::Abort));
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out)?;
        Ok(Flow::Continue)
    }

    /// Reads one line (terminator included). None on EOF.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 { Ok(None) } else { Ok(Some(buf)) }
    }

    fn run(&mut self) -> io::Result<End> {
        if let Some(d) = self.fault(|f| f.stall_before_greeting) {
            self.rec.log("fault: stalling before greeting");
            self.nap(d);
            return Ok(End::Abort);
        }
        let greeting = match self.fault(|f| f.long_line) {
            Some(n) => {
                let mut l = b"+OK ".to_vec();
                l.resize(n.max(4), b'x');
                l.truncate(n);
                l.extend_from_slice(b"\r\n");
                l
            }
            None => format!("+OK {}\r\n", self.cfg.greeting).into_bytes(),
        };
        self.send(&greeting)?;
        if let Some(d) = self.fault(|f| f.stall_after_greeting) {
            self.rec.log("fault: stalling after greeting");
            self.nap(d);
            return Ok(End::Abort);
        }
        loop {
            let Some(raw) = self.read_line()? else {
                self.rec.log("client closed the connection");
                return Ok(End::Graceful);
            };
            if !raw.ends_with(b"\n") {
                if raw.len() >= MAX_LINE {
                    self.reply("-ERR line too long")?;
                } else {
                    self.rec.log("EOF in the middle of a line");
                }
                return Ok(End::Graceful);
            }
            let line = String::from_utf8_lossy(strip_eol(&raw)).into_owned();
            self.rec.record_command(&line);
            if let Some(h) = &self.cfg.hook_on_command {
                h(&line);
            }
            if let Some(prefix) = self.fault(|f| f.drop_on_command.clone())
                && line
                    .get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
            {
                self.rec
                    .log(format!("fault: dropping connection on {line:?}"));
                return Ok(End::Abort);
            }
            if let Flow::End(e) = self.dispatch(&line)? {
                return Ok(e);
            }
        }
    }

    fn dispatch(&mut self, line: &str) -> io::Result<Flow> {
        let (verb, rest) = match line.split_once(' ') {
            Some((v, r)) => (v.to_ascii_uppercase(), r),
            None => (line.to_ascii_uppercase(), ""),
        };
        let args: Vec<&str> = rest.split(' ').filter(|s| !s.is_empty()).collect();
        match verb.as_str() {
            "CAPA" => self.capa(),
            "QUIT" => self.quit(),
            "STLS" => self.stls(),
            "USER" | "PASS" | "APOP" | "AUTH" if self.authed => {
                self.reply("-ERR already authenticated")
            }
            "USER" | "PASS" | "APOP" | "AUTH"
                if !self.tls_active && !self.cfg.plaintext_auth_allowed =>
            {
                self.reply("-ERR [AUTH] plaintext authentication disallowed without TLS")
            }
            "USER" => {
                if !self.cfg.user_enabled || args.len() != 1 {
                    self.pending_user = None;
                    return self.reply("-ERR USER not accepted");
                }
                self.pending_user = Some(args[0].to_string());
                self.reply("+OK send PASS")
            }
            "PASS" => match self.pending_user.take() {
                None => self.reply("-ERR USER first"),
                Some(user) => {
                    let ok = user == self.cfg.user && rest == self.cfg.password;
                    self.login(ok)
                }
            },
            "APOP" => self.apop(&args),
            "AUTH" => self.auth(&args),
            "STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL"
                if !self.authed =>
            {
                self.reply("-ERR not authenticated")
            }
            "UIDL" if !self.cfg.uidl_supported => self.reply("-ERR unknown command"),
            "TOP" if !self.cfg.top_supported => self.reply("-ERR unknown command"),
            "STAT" => {
                let (n, size) = {
                    let mb = lock(&self.mailbox);
                    let mut n = 0;
                    let mut size = 0;
                    for (i, m) in mb.messages.iter().enumerate() {
                        if !m.deleted {
                            n += 1;
                            size += self.size_of(i + 1, m);
                        }
                    }
                    (n, size)
                };
                self.reply(&format!("+OK {n} {size}"))
            }
            "LIST" | "UIDL" => self.listing(&verb, &args),
            "RETR" => self.retr(&args),
            "TOP" => self.top(&args),
            "DELE" => {
                let n = match self.msg_num(&args, 1) {
                    Ok(n) => n,
                    Err(e) => return self.reply(e),
                };
                if self.faults_on && self.faults.dele_error.contains(&n) {
                    self.rec.log(format!("fault: DELE {n} refused"));
                    return self.reply(&format!("-ERR cannot delete message {n}"));
                }
                lock(&self.mailbox).messages[n - 1].deleted = true;
                self.reply(&format!("+OK message {n} deleted"))
            }
            "NOOP" => self.reply("+OK"),
            "RSET" => {
                for m in &mut lock(&self.mailbox).messages {
                    m.deleted = false;
                }
                self.reply("+OK")
            }
            _ => self.reply("-ERR unknown command"),
        }
    }

    fn size_of(&self, n: usize, m: &Message) -> u64 {
        if self.faults_on
            && let Some(&s) = self.faults.list_size_override.get(&n)
        {
            return s;
        }
        m.body.len() as u64
    }

    fn uidl_of(&self, n: usize, m: &Message) -> String {
        if let Some(v) = self.fault(|f| f.uidl_override.as_ref())
            && let Some(u) = v.get(n - 1)
        {
            return u.clone();
        }
        m.uidl.clone()
    }

    /// Parses a message number argument: must exist and not be deleted.
    fn msg_num(&self, args: &[&str], want_args: usize) -> Result<usize, &'static str> {
        if args.len() != want_args {
            return Err("-ERR syntax error");
        }
        let n: usize = args[0].parse().map_err(|_| "-ERR invalid message number")?;
        let mb = lock(&self.mailbox);
        if n == 0 || n > mb.messages.len() {
            return Err("-ERR no such message");
        }
        if mb.messages[n - 1].deleted {
            return Err("-ERR message already deleted");
        }
        Ok(n)
    }

    fn capa(&mut self) -> io::Result<Flow> {
        if !self.cfg.capa_enabled {
            return self.reply("-ERR unknown command");
        }
        let c = self.cfg;
        let mut lines: Vec<String> = Vec::new();
        for (on, name) in [
            (c.capa_top, "TOP"),
            (c.capa_uidl, "UIDL"),
            (c.capa_user, "USER"),
            (c.capa_pipelining, "PIPELINING"),
            (c.capa_sasl_plain, "SASL PLAIN"),
            (c.capa_resp_codes, "RESP-CODES"),
            (c.capa_auth_resp_code, "AUTH-RESP-CODE"),
        ] {
            if on {
                lines.push(name.into());
            }
        }
        let hide_stls = self.faults_on && self.faults.stls_not_advertised;
        if matches!(c.tls, TlsMode::Stls(_)) && !self.tls_active && !self.authed && !hide_stls {
            lines.push("STLS".into());
        }
        lines.push("IMPLEMENTATION fetch-test-pop3".into());
        lines.extend(c.capa_extra.iter().cloned());
        let payload = dot_stuff_lines(&lines);
        self.multiline("CAPA", "+OK Capability list follows", &payload)
    }

    fn quit(&mut self) -> io::Result<Flow> {
        if !self.authed {
            self.reply("+OK bye")?;
            return Ok(Flow::End(End::Graceful));
        }
        if self.faults_on && self.faults.quit_error {
            self.rec.log("fault: QUIT fails, nothing deleted");
            self.release();
            self.reply("-ERR [SYS/TEMP] some deleted messages not removed")?;
            return Ok(Flow::End(End::Graceful));
        }
        let removed = {
            let mut mb = lock(&self.mailbox);
            let before = mb.messages.len();
            mb.messages.retain(|m| !m.deleted);
            before - mb.messages.len()
        };
        self.release();
        self.reply(&format!("+OK bye ({removed} messages removed)"))?;
        Ok(Flow::End(End::Graceful))
    }

    fn stls(&mut self) -> io::Result<Flow> {
        let TlsMode::Stls(acceptor) = &self.cfg.tls else {
            return self.reply("-ERR unknown command");
        };
        let acceptor = acceptor.clone();
        if self.tls_active {
            return self.reply("-ERR TLS already active");
        }
        if self.authed {
            return self.reply("-ERR STLS only in AUTHORIZATION state");
        }
        if self.faults_on && self.faults.stls_refused {
            self.rec.log("fault: STLS refused");
            return self.reply("-ERR [SYS/TEMP] TLS not available");
        }
        let mut out = b"+OK Begin TLS negotiation\r\n".to_vec();
        if let Some(inj) = self.fault(|f| f.inject_after_stls.clone()) {
            self.rec
                .log(format!("fault: injecting {} bytes after STLS", inj.len()));
            out.extend_from_slice(&inj);
        }
        self.send(&out)?;
        // Anything the client pipelined after STLS in plaintext has been
        // recorded; it must not be executed.
        let leftover = self.reader.buffer().len();
        if leftover > 0 {
            self.rec.log(format!(
                "discarding {leftover} plaintext bytes pipelined after STLS"
            ));
            self.reader.consume(leftover);
        }
        let conn = self.reader.get_mut();
        let Stream::Plain(tcp) = std::mem::replace(&mut conn.stream, Stream::Closed) else {
            return Ok(Flow::End(End::Abort));
        };
        match acceptor.accept(tcp) {
            Ok(t) => {
                conn.stream = Stream::Tls(Box::new(t));
                self.tls_active = true;
                self.pending_user = None;
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.rec.log(format!("STLS handshake failed: {e}"));
                Ok(Flow::End(End::Abort))
            }
        }
    }

    /// Finishes an authentication attempt whose credentials were `ok`.
    fn login(&mut self, ok: bool) -> io::Result<Flow> {
        if let Some(line) = self.fault(|f| f.auth_reply_override.clone()) {
            self.rec.log("fault: authentication reply overridden");
            return self.reply(&line);
        }
        if !ok {
            return self.reply("-ERR [AUTH] invalid credentials");
        }
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            {
                let mut mb = lock(&self.mailbox);
                if !mb.locked {
                    mb.locked = true;
                    for m in &mut mb.messages {
                        m.deleted = false;
                    }
                    self.holds_lock = true;
                    break;
                }
            }
            if Instant::now() >= deadline {
                return self.reply("-ERR [IN-USE] maildrop already locked");
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.authed = true;
        let n = lock(&self.mailbox).messages.len();
        self.reply(&format!("+OK logged in, {n} messages"))
    }

    fn apop(&mut self, args: &[&str]) -> io::Result<Flow> {
        let Some(ts) = apop_timestamp(&self.cfg.greeting) else {
            return self.reply("-ERR APOP not supported");
        };
        if args.len() != 2 {
            return self.reply("-ERR syntax error");
        }
        let mut data = ts.as_bytes().to_vec();
        data.extend_from_slice(self.cfg.password.as_bytes());
        let expect = md5_hex(&data);
        let ok = args[0] == self.cfg.user && args[1].eq_ignore_ascii_case(&expect);
        self.login(ok)
    }

    fn auth(&mut self, args: &[&str]) -> io::Result<Flow> {
        if args.is_empty() {
            let payload: &[u8] = if self.cfg.sasl_plain_enabled {
                b"PLAIN\r\n"
            } else {
                b""
            };
            return self.multiline("AUTH", "+OK supported mechanisms", payload);
        }
        if !args[0].eq_ignore_ascii_case("PLAIN") || !self.cfg.sasl_plain_enabled {
            return self.reply("-ERR unsupported authentication mechanism");
        }
        if args.len() > 2 {
            return self.reply("-ERR syntax error");
        }
        let response = match args.get(1) {
            Some(ir) => ir.to_string(),
            None => {
                self.send(b"+ \r\n")?;
                let Some(raw) = self.read_line()? else {
                    return Ok(Flow::End(End::Graceful));
                };
                let line = String::from_utf8_lossy(strip_eol(&raw)).into_owned();
                self.rec.record_command(&line);
                if line == "*" {
                    return self.reply("-ERR [AUTH] authentication aborted");
                }
                line
            }
        };
        let decoded = if response == "=" {
            Some(Vec::new())
        } else {
            base64_decode(&response)
        };
        let Some(decoded) = decoded else {
            return self.reply("-ERR [AUTH] invalid base64");
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let ok = parts.len() == 3
            && (parts[0].is_empty() || parts[0] == parts[1])
            && parts[1] == self.cfg.user.as_bytes()
            && parts[2] == self.cfg.password.as_bytes();
        self.login(ok)
    }

    fn listing(&mut self, verb: &str, args: &[&str]) -> io::Result<Flow> {
        let uidl = verb == "UIDL";
        if !args.is_empty() {
            let n = match self.msg_num(args, 1) {
                Ok(n) => n,
                Err(e) => return self.reply(e),
            };
            let m = lock(&self.mailbox).messages[n - 1].clone();
            let v = if uidl {
                self.uidl_of(n, &m)
            } else {
                self.size_of(n, &m).to_string()
            };
            return self.reply(&format!("+OK {n} {v}"));
        }
        let msgs = lock(&self.mailbox).messages.clone();
        let mut lines = Vec::new();
        let mut count = 0;
        let mut total = 0;
        for (i, m) in msgs.iter().enumerate() {
            if m.deleted {
                continue;
            }
            count += 1;
            total += self.size_of(i + 1, m);
            let v = if uidl {
                self.uidl_of(i + 1, m)
            } else {
                self.size_of(i + 1, m).to_string()
            };
            lines.push(format!("{} {}", i + 1, v));
        }
        let status = if uidl {
            "+OK unique-id listing follows".to_string()
        } else {
            format!("+OK {count} messages ({total} octets)")
        };
        let payload = dot_stuff_lines(&lines);
        self.multiline(verb, &status, &payload)
    }

    fn retr(&mut self, args: &[&str]) -> io::Result<Flow> {
        let n = match self.msg_num(args, 1) {
            Ok(n) => n,
            Err(e) => return self.reply(e),
        };
        let m = lock(&self.mailbox).messages[n - 1].clone();
        let status = format!("+OK {} octets", self.size_of(n, &m));
        let payload = dot_stuff(&m.body);
        let cut = self
            .fault(|f| f.drop_during_retr)
            .filter(|&(dn, _)| dn == n)
            .map(|(_, k)| (k, None))
            .or_else(|| {
                self.fault(|f| f.stall_during_retr)
                    .filter(|&(sn, _, _)| sn == n)
                    .map(|(_, k, d)| (k, Some(d)))
            });
        if let Some((k, stall)) = cut {
            let mut full = format!("{status}\r\n").into_bytes();
            full.extend_from_slice(&payload);
            full.extend_from_slice(b".\r\n");
            let k = k.min(full.len());
            self.send(&full[..k])?;
            if let Some(d) = stall {
                self.rec
                    .log(format!("fault: RETR {n} stalled after {k} bytes"));
                self.nap(d);
            }
            self.rec.log(format!("fault: RETR {n} cut after {k} bytes"));
            return Ok(Flow::End(End::Abort));
        }
        self.multiline("RETR", &status, &payload)
    }

    fn top(&mut self, args: &[&str]) -> io::Result<Flow> {
        if args.len() != 2 {
            return self.reply("-ERR syntax error");
        }
        let n = match self.msg_num(&args[..1], 1) {
            Ok(n) => n,
            Err(e) => return self.reply(e),
        };
        let Ok(k) = args[1].parse::<usize>() else {
            return self.reply("-ERR invalid line count");
        };
        let body = lock(&self.mailbox).messages[n - 1].body.clone();
        let mut out = Vec::new();
        let mut in_header = true;
        let mut body_lines = 0;
        for line in body.split_inclusive(|&b| b == b'\n') {
            if in_header {
                out.extend_from_slice(line);
                if line == b"\r\n" || line == b"\n" {
                    in_header = false;
                }
            } else if body_lines < k {
                out.extend_from_slice(line);
                body_lines += 1;
            } else {
                break;
            }
        }
        let payload = dot_stuff(&out);
        self.multiline("TOP", "+OK top of message follows", &payload)
    }
}

fn apop_timestamp(greeting: &str) -> Option<&str> {
    let start = greeting.find('<')?;
    let end = start + greeting[start..].find('>')?;
    Some(&greeting[start..=end])
}

// ---------------------------------------------------------------------------
// Helpers (public so tests can use them too)
// ---------------------------------------------------------------------------

/// Dot-stuffs `body` for a multi-line reply: a `.` at the start of any line
/// (after any LF) is doubled; a CRLF is appended unless the body is empty or
/// already ends with CRLF. The terminator `.\r\n` is not included.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn dot_stuff_lines(lines: &[String]) -> Vec<u8> {
    let mut joined = Vec::new();
    for l in lines {
        joined.extend_from_slice(l.as_bytes());
        joined.extend_from_slice(b"\r\n");
    }
    dot_stuff(&joined)
}

/// A small CRLF RFC 5322 message number `i` with the given body lines.
pub fn msg(i: usize, body_lines: &[&str]) -> Vec<u8> {
    let mut s = format!(
        "From: Sender {i} <sender{i}@example.org>\r\n\
         To: tester@example.org\r\n\
         Subject: Test message {i}\r\n\
         Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
         Message-ID: <msg{i}@example.org>\r\n\
         \r\n"
    );
    for l in body_lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.into_bytes()
}

/// Messages 1 to `n` with UIDLs `u1`, `u2`..., each [`msg`] with `body_lines`.
pub fn numbered(n: usize, body_lines: &[&str]) -> Vec<(String, Vec<u8>)> {
    (1..=n)
        .map(|i| (format!("u{i}"), msg(i, body_lines)))
        .collect()
}

/// `n` messages of `user`'s own: UIDLs `<user>-1`, `<user>-2`..., each
/// [`msg`] with the one body line `user`.
pub fn mail_of(user: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (1..=n)
        .map(|i| (format!("{user}-{i}"), msg(i, &[user])))
        .collect()
}

/// A server for one account, `user` with `password`, holding
/// [`mail_of`]`(user, n)`.
pub fn account_server(user: &str, password: &str, n: usize) -> Pop3Server {
    let cfg = ServerConfig {
        user: user.into(),
        password: password.into(),
        ..Default::default()
    };
    Pop3Server::start(cfg, mail_of(user, n))
}

/// Messages 1 to `n` with UIDLs `uid-1`, `uid-2`..., of growing size:
/// message i has i * `step` numbered lines, then `tail`.
pub fn growing(n: usize, step: usize, tail: &[&str]) -> Vec<(String, Vec<u8>)> {
    (1..=n)
        .map(|i| {
            let lines: Vec<String> = (0..i * step).map(|j| format!("line {j} of {i}")).collect();
            let mut refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
            refs.extend_from_slice(tail);
            (format!("uid-{i}"), msg(i, &refs))
        })
        .collect()
}

/// A [`ServerConfig::hook_on_command`] that holds up every RETR for
/// `pause`: a fetch slow enough to interrupt or to overlap with another.
pub fn slow_retr(pause: Duration) -> CommandHook {
    Arc::new(move |line: &str| {
        if line.starts_with("RETR") {
            thread::sleep(pause);
        }
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 decoding (padding required). None if invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let mut v = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let d = if c == b'=' {
                if !last || i < 2 {
                    return None;
                }
                pad += 1;
                0
            } else {
                if pad > 0 {
                    return None;
                }
                B64.iter().position(|&x| x == c)? as u32
            };
            v = (v << 6) | d;
        }
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// MD5 (RFC 1321) as lowercase hex, for APOP.
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 digest (RFC 1321). Test-only implementation for APOP.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) = (
        0x6745_2301u32,
        0xefcd_ab89u32,
        0x98ba_dcfeu32,
        0x1032_5476u32,
    );
    for block in msg.chunks(64) {
        let m: Vec<u32> = block
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    out
}
