//! The physical limit for `bench/run`: a raw pipelined byte pump. Not part
//! of fetch; built with `cargo build --release --example pump`.
//!
//!     pump pop3|imap HOST PORT USER PASSWORD_FILE [--tls CAFILE] [--write DIR]
//!
//! Logs in, asks for every message in INBOX at once and reads the bytes as
//! fast as the socket gives them, storing nothing and parsing only enough to
//! know where the data ends:
//! - POP3: RETR for every message, pipelined (up to 4,096 outstanding), done
//!   when as many `CRLF.CRLF` terminators as messages have come (dot-stuffing
//!   keeps the terminator out of message bodies);
//! - IMAP: one `UID FETCH 1:* BODY.PEEK[]`, literals skipped by their
//!   announced size, done at the tagged reply.
//!
//! With `--write DIR`, each message's bytes as they came (still CRLF, still
//! dot-stuffed for POP3) go to a file of its own, delivered the way a
//! Maildir writer must (created in `DIR/tmp/`, renamed into `DIR/new/`
//! once complete) but never fsync'd: the cost of a writer that does no
//! durability at all.
//!
//! Prints `MESSAGES BYTES`. What a client takes beyond this is its own work.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::exit;

use openssl::ssl::{SslConnector, SslMethod, SslStream};

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("pump: {msg}");
    exit(1)
}

/// A read buffer over the stream.
struct Conn {
    s: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    total: u64,
}

impl Conn {
    fn fill(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self
            .s
            .read(&mut self.buf[self.end..])
            .unwrap_or_else(|e| die(&e.to_string()));
        if n == 0 {
            die("connection closed");
        }
        self.end += n;
        self.total += n as u64;
    }

    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(p) = memchr::memmem::find(&self.buf[self.start..self.end], b"\r\n") {
                let l = self.buf[self.start..self.start + p].to_vec();
                self.start += p + 2;
                return l;
            }
            self.fill();
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap_or_else(|e| die(&e.to_string()));
    }
}

/// Where `--write` puts messages: one file each, created in tmp/, written,
/// closed, renamed into new/.
struct Sink {
    dir: std::path::PathBuf,
    n: u32,
    file: Option<std::fs::File>,
}

impl Sink {
    fn name(&self) -> String {
        format!("{}.pump{}", self.n, std::process::id())
    }
    fn begin(&mut self) {
        self.n += 1;
        let path = self.dir.join("tmp").join(self.name());
        self.file = Some(std::fs::File::create(&path).unwrap_or_else(|e| die(&e.to_string())));
    }
    fn write(&mut self, b: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            f.write_all(b).unwrap_or_else(|e| die(&e.to_string()));
        }
    }
    fn end(&mut self) {
        if self.file.take().is_some() {
            let name = self.name();
            std::fs::rename(
                self.dir.join("tmp").join(&name),
                self.dir.join("new").join(&name),
            )
            .unwrap_or_else(|e| die(&e.to_string()));
        }
    }
}

fn pop3(c: &mut Conn, user: &str, password: &str, mut sink: Option<&mut Sink>) -> u32 {
    c.line();
    let mut count = 0;
    for cmd in [
        format!("USER {user}"),
        format!("PASS {password}"),
        "STAT".into(),
    ] {
        c.send(format!("{cmd}\r\n").as_bytes());
        let reply = c.line();
        if !reply.starts_with(b"+OK") {
            die(&format!("{cmd:.4}: {}", String::from_utf8_lossy(&reply)));
        }
        count = String::from_utf8_lossy(&reply)
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    let finder = memchr::memmem::Finder::new(b"\r\n.\r\n");
    let (mut sent, mut seen) = (0u32, 0u32);
    while seen < count {
        if sent < count && sent - seen < 2048 {
            let upto = count.min(seen + 4096);
            let cmds: String = (sent + 1..=upto).map(|i| format!("RETR {i}\r\n")).collect();
            c.send(cmds.as_bytes());
            sent = upto;
        }
        if let Some(sink) = sink.as_deref_mut() {
            // One message: its status line, then its data up to the
            // terminator.
            let status = c.line();
            if !status.starts_with(b"+OK") {
                die("RETR refused");
            }
            sink.begin();
            loop {
                let hay = &c.buf[c.start..c.end];
                if let Some(p) = finder.find(hay) {
                    sink.write(&hay[..p + 2]);
                    c.start += p + 5;
                    break;
                }
                let keep_from = hay.len().saturating_sub(4);
                sink.write(&hay[..keep_from]);
                c.start += keep_from;
                c.fill();
            }
            sink.end();
            seen += 1;
            continue;
        }
        // Count terminators in what is buffered; keep the last 4 bytes (a
        // terminator may straddle two reads).
        let hay = &c.buf[c.start..c.end];
        let mut last = 0;
        for p in finder.find_iter(hay) {
            seen += 1;
            last = p + 5;
        }
        let keep_from = last.max(hay.len().saturating_sub(4));
        c.start += keep_from;
        if seen < count {
            c.fill();
        }
    }
    c.send(b"QUIT\r\n");
    count
}

fn imap(c: &mut Conn, user: &str, password: &str, mut sink: Option<&mut Sink>) -> u32 {
    c.line();
    c.send(format!("a LOGIN \"{user}\" \"{password}\"\r\nb SELECT INBOX\r\n").as_bytes());
    let mut count = 0;
    loop {
        let l = String::from_utf8_lossy(&c.line()).into_owned();
        if l.ends_with(" EXISTS") {
            count = l
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if l.starts_with("a NO") || l.starts_with("a BAD") || l.starts_with("b NO") {
            die(&l);
        }
        if l.starts_with("b OK") {
            break;
        }
    }
    c.send(b"Zq9 UID FETCH 1:* BODY.PEEK[]\r\n");
    loop {
        let l = c.line();
        if l.starts_with(b"Zq9 ") {
            break;
        }
        // A literal: skip its bytes by count.
        if l.ends_with(b"}")
            && let Some(open) = l.iter().rposition(|&b| b == b'{')
        {
            let mut left: usize = String::from_utf8_lossy(&l[open + 1..l.len() - 1])
                .parse()
                .unwrap_or_else(|_| die("bad literal"));
            let body = l.windows(6).any(|w| w == b"BODY[]");
            if body && let Some(s) = sink.as_deref_mut() {
                s.begin();
            }
            while left > 0 {
                if c.start == c.end {
                    c.fill();
                }
                let take = left.min(c.end - c.start);
                if body && let Some(s) = sink.as_deref_mut() {
                    s.write(&c.buf[c.start..c.start + take]);
                }
                c.start += take;
                left -= take;
            }
            if let Some(s) = sink.as_deref_mut() {
                s.end();
            }
        }
    }
    c.send(b"z LOGOUT\r\n");
    count
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cafile = args.iter().position(|a| a == "--tls").map(|i| {
        let f = args[i + 1].clone();
        args.drain(i..i + 2);
        f
    });
    let mut sink = args.iter().position(|a| a == "--write").map(|i| {
        let dir = std::path::PathBuf::from(&args[i + 1]);
        args.drain(i..i + 2);
        for sub in ["tmp", "new"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| die(&e.to_string()));
        }
        Sink {
            dir,
            n: 0,
            file: None,
        }
    });
    if args.len() != 5 {
        die("usage: pump pop3|imap HOST PORT USER PASSWORD_FILE [--tls CAFILE] [--write DIR]");
    }
    let (proto, host, port, user) = (&args[0], &args[1], &args[2], &args[3]);
    let password = std::fs::read_to_string(&args[4]).unwrap_or_else(|e| die(&e.to_string()));
    let tcp = TcpStream::connect((host.as_str(), port.parse::<u16>().unwrap_or(0)))
        .unwrap_or_else(|e| die(&e.to_string()));
    tcp.set_nodelay(true).ok();
    let s = match cafile {
        None => Stream::Plain(tcp),
        Some(ca) => {
            let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
            b.set_ca_file(&ca).unwrap_or_else(|e| die(&e.to_string()));
            let tls = b
                .build()
                .connect(host, tcp)
                .unwrap_or_else(|e| die(&e.to_string()));
            Stream::Tls(Box::new(tls))
        }
    };
    let mut c = Conn {
        s,
        buf: vec![0; 1 << 20],
        start: 0,
        end: 0,
        total: 0,
    };
    let count = match proto.as_str() {
        "pop3" => pop3(&mut c, user, password.trim(), sink.as_mut()),
        "imap" => imap(&mut c, user, password.trim(), sink.as_mut()),
        _ => die("pop3 or imap"),
    };
    println!("{count} {}", c.total);
}
