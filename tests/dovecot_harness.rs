//! Tests of the private-Dovecot harness itself (`scripts/dovecot-sandbox`,
//! `tests/common/dovecot.rs`), with hand-written POP3/IMAP clients. They also
//! pin down what Dovecot sends for awkward stored bytes (see the
//! documentation of `common::dovecot`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dovecot::{self, Dovecot, imap_body, pop3_content, pop3_wire, virtual_size};
use common::mail::{corpus_dir, corpus_files, fixture_files, read_all};

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// A line-oriented client over any stream (plain or TLS).
struct Client<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Client<S> {
    fn new(s: S) -> Self {
        Client {
            r: BufReader::new(s),
        }
    }

    /// One raw line including its CRLF.
    fn line(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.r.read_until(b'\n', &mut v).unwrap();
        assert!(v.ends_with(b"\n"), "connection closed mid-line: {v:?}");
        v
    }

    fn line_str(&mut self) -> String {
        String::from_utf8(self.line()).unwrap()
    }

    fn send(&mut self, cmd: &str) {
        let s = self.r.get_mut();
        s.write_all(cmd.as_bytes()).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
    }

    /// POP3 command expecting `+OK`; returns the status line.
    fn ok(&mut self, cmd: &str) -> String {
        self.send(cmd);
        let l = self.line_str();
        assert!(l.starts_with("+OK"), "{cmd} -> {l:?}");
        l
    }

    /// The raw body of a POP3 multi-line response, terminator included.
    fn multiline(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            out.extend_from_slice(&l);
            if l == b".\r\n" {
                return out;
            }
        }
    }

    fn pop3_login(&mut self, d: &Dovecot) {
        let g = self.line_str();
        assert!(g.starts_with("+OK"), "greeting {g:?}");
        self.ok(&format!("USER {}", d.user));
        self.ok(&format!("PASS {}", d.password));
    }

    /// `RETR n`: (announced octets, raw body with dot-stuffing and terminator).
    fn retr(&mut self, n: usize) -> (usize, Vec<u8>) {
        let l = self.ok(&format!("RETR {n}"));
        let octets = l
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("RETR status without size: {l:?}"));
        (octets, self.multiline())
    }

    /// IMAP command; returns every line up to and including the tagged one.
    fn imap(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.send(&format!("{tag} {cmd}"));
        let mut lines = Vec::new();
        loop {
            let l = self.line_str();
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                let last = lines.last().unwrap();
                assert!(last.starts_with(&format!("{tag} OK")), "{cmd} -> {last:?}");
                return lines;
            }
        }
    }

    /// `FETCH n (RFC822.SIZE BODY.PEEK[])`: (RFC822.SIZE, literal content).
    fn imap_fetch_body(&mut self, n: usize) -> (usize, Vec<u8>) {
        self.send(&format!("f{n} FETCH {n} (RFC822.SIZE BODY.PEEK[])"));
        let head = self.line_str();
        let prefix = format!("* {n} FETCH (RFC822.SIZE ");
        assert!(head.starts_with(&prefix), "FETCH -> {head:?}");
        let rest = &head[prefix.len()..];
        let (size, rest) = rest.split_once(' ').unwrap();
        let len: usize = rest
            .strip_prefix("BODY[] {")
            .and_then(|r| r.strip_suffix("}\r\n"))
            .unwrap_or_else(|| panic!("FETCH -> {head:?}"))
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        assert_eq!(self.line_str(), ")\r\n");
        let done = self.line_str();
        assert!(done.starts_with(&format!("f{n} OK")), "{done:?}");
        (size.parse().unwrap(), body)
    }
}

/// Printable form of bytes for reports: \r, \n, \0 and non-ASCII escaped.
fn show(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| match c {
            b'\r' => "\\r".chars().collect::<Vec<_>>(),
            b'\n' => "\\n".chars().collect(),
            0x20..=0x7e => vec![c as char],
            _ => format!("\\x{c:02x}").chars().collect(),
        })
        .collect()
}

fn tls_connector(cafile: &Path) -> native_tls::TlsConnector {
    let ca = native_tls::Certificate::from_pem(&std::fs::read(cafile).unwrap()).unwrap();
    native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .unwrap()
}

#[test]
fn starts_and_greets_on_pop3_and_imap() {
    let Some(d) = Dovecot::start() else { return };
    let mut c = Client::new(connect(d.pop3_port));
    let g = c.line_str();
    assert!(g.starts_with("+OK"), "POP3 greeting {g:?}");
    c.ok("QUIT");
    let mut c = Client::new(connect(d.imap_port));
    let g = c.line_str();
    assert!(g.starts_with("* OK"), "IMAP greeting {g:?}");
    c.imap("z", "LOGOUT");
    // The generated files are where the struct says.
    assert_eq!(
        std::fs::read_to_string(&d.password_file).unwrap(),
        d.password
    );
    assert!(d.password.len() >= 16);
    assert!(d.password.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(d.server_maildir.join("new").is_dir());
    assert!(d.cafile.is_file());
    assert_eq!(d.user, "fetchtest");
    assert_eq!(d.message_count(), 0);
    assert!(d.messages().is_empty());
}

#[test]
fn plaintext_login_and_stat_show_filled_messages() {
    let Some(d) = Dovecot::start() else { return };
    let msgs: [&[u8]; 3] = [
        b"Subject: one\n\nfirst\n",
        b"Subject: two\r\n\r\nsecond\r\n",
        b"Subject: three\n\nthird\n",
    ];
    d.fill(&msgs);
    assert_eq!(d.message_count(), 3);
    assert_eq!(d.messages(), msgs.map(|m| m.to_vec()));

    let mut c = Client::new(connect(d.pop3_port));
    c.pop3_login(&d);
    let total: usize = msgs.iter().map(|m| virtual_size(m)).sum();
    assert_eq!(c.ok("STAT"), format!("+OK 3 {total}\r\n"));
    c.ok("UIDL");
    let uidl = String::from_utf8(c.multiline()).unwrap();
    assert_eq!(uidl.lines().count(), 4, "{uidl}");
    // pop3_uidl_format = %08Xu%08Xv: 16 hex digits, UID first.
    let first = uidl.lines().next().unwrap();
    let (n, u) = first.split_once(' ').unwrap();
    assert_eq!(n, "1");
    assert_eq!(u.len(), 16);
    assert!(u.starts_with("00000001"), "{u}");
    c.ok("QUIT");

    // A second fill appends after the first, in order.
    d.fill(&[b"Subject: four\n\nfourth\n"]);
    assert_eq!(d.message_count(), 4);
    assert_eq!(d.messages()[3], b"Subject: four\n\nfourth\n");

    // A wrong password is refused.
    let mut c = Client::new(connect(d.pop3_port));
    c.line();
    c.ok(&format!("USER {}", d.user));
    c.send("PASS wrong");
    assert!(c.line_str().starts_with("-ERR"));
}

#[test]
fn implicit_tls_ports_handshake_with_the_cafile() {
    let Some(d) = Dovecot::start() else { return };
    let tls = tls_connector(&d.cafile);
    for name in ["localhost", "127.0.0.1"] {
        let s = tls.connect(name, connect(d.pop3s_port)).unwrap();
        let mut c = Client::new(s);
        c.pop3_login(&d);
        c.ok("STAT");
        c.ok("QUIT");

        let s = tls.connect(name, connect(d.imaps_port)).unwrap();
        let mut c = Client::new(s);
        assert!(c.line_str().starts_with("* OK"));
        c.imap("a", &format!("LOGIN {} {}", d.user, d.password));
        c.imap("b", "LOGOUT");
    }
    // Without the sandbox CA the certificate must not verify.
    let plain = native_tls::TlsConnector::builder()
        .disable_built_in_roots(true)
        .build()
        .unwrap();
    assert!(plain.connect("localhost", connect(d.pop3s_port)).is_err());
    // Nor for another name.
    assert!(tls.connect("example.org", connect(d.pop3s_port)).is_err());
}

/// Awkward messages: stored bytes, POP3 RETR and IMAP FETCH BODY[] compared
/// byte for byte with the documented model.
#[test]
fn byte_exactness_of_stored_and_served_messages() {
    let Some(d) = Dovecot::start() else { return };
    let cases: Vec<(&str, &[u8])> = vec![
        ("LF endings", b"Subject: lf\n\nline1\nline2\n"),
        ("CRLF endings", b"Subject: crlf\r\n\r\nline1\r\nline2\r\n"),
        ("NUL byte", b"Subject: nul\n\nbefore\0after\n"),
        ("bare CR", b"Subject: cr\n\nbefore\rafter\n"),
        ("no final newline", b"Subject: nofinal\n\nlast line"),
        ("From line", b"Subject: from\n\nFrom x\n>From y\n"),
        ("dot lines", b"Subject: dot\n\n.\n..\n.x\n"),
        ("mixed", b"Subject: mixed\r\n\nA\r\nB\nC\r\r\nD\n\r\n"),
        ("final bare CR", b"Subject: endcr\n\nx\r"),
        ("CRLF, no final newline", b"Subject: c\r\n\r\nlast"),
        ("NUL at end", b"Subject: nul-end\n\nx\0"),
        ("empty", b""),
        ("only LF", b"\n"),
        ("8-bit", b"Subject: caf\xc3\xa9\n\n\xff\xfe\n"),
        (
            "dot then terminator-like",
            b"Subject: t\r\n\r\n.\r\n.\r\nend\r\n",
        ),
    ];
    let stored: Vec<&[u8]> = cases.iter().map(|c| c.1).collect();
    d.fill(&stored);
    assert_eq!(d.message_count(), cases.len());
    // The Maildir holds exactly what was filled.
    assert_eq!(
        d.messages(),
        stored.iter().map(|m| m.to_vec()).collect::<Vec<_>>()
    );

    let mut pop = Client::new(connect(d.pop3_port));
    pop.pop3_login(&d);
    pop.ok("LIST");
    let list = String::from_utf8(pop.multiline()).unwrap();
    let mut imap = Client::new(connect(d.imap_port));
    assert!(imap.line_str().starts_with("* OK"));
    imap.imap("a", &format!("LOGIN {} {}", d.user, d.password));
    imap.imap("b", "SELECT INBOX");

    let mut report = String::new();
    for (i, (name, m)) in cases.iter().enumerate() {
        let n = i + 1;
        let (octets, wire) = pop.retr(n);
        let (size, body) = imap.imap_fetch_body(n);
        report += &format!(
            "{name}:\n  stored     {}\n  POP3 RETR  +OK {octets} octets / {}\n  IMAP BODY[] size {size} / {}\n",
            show(m),
            show(&wire),
            show(&body)
        );
        assert_eq!(
            list.lines().nth(i).unwrap(),
            format!("{n} {}", virtual_size(m)),
            "{name}: LIST"
        );
        assert_eq!(octets, virtual_size(m), "{name}: RETR octets");
        assert_eq!(show(&wire), show(&pop3_wire(m)), "{name}: RETR bytes");
        assert_eq!(size, virtual_size(m), "{name}: RFC822.SIZE");
        assert_eq!(show(&body), show(&imap_body(m)), "{name}: BODY[] bytes");
    }
    pop.ok("QUIT");
    imap.imap("z", "LOGOUT");
    eprintln!("{report}");

    // Spot checks of the model itself, as plain statements.
    assert_eq!(pop3_content(b"a\nb"), b"a\r\nb\r\n");
    assert_eq!(pop3_content(b"x\r"), b"x\r\r\n");
    assert_eq!(pop3_content(b""), b"\r\n");
    assert_eq!(pop3_wire(b".\n"), b"..\r\n.\r\n");
    assert_eq!(imap_body(b"a\0b"), b"a\x80b");
}

/// The project's fixtures, served over POP3 exactly as the model says.
#[test]
fn fixtures_round_trip_through_pop3() {
    let Some(d) = Dovecot::start() else { return };
    let files = fixture_files();
    assert!(!files.is_empty());
    d.fill_files(&files);
    let stored = read_all(&files);
    assert_eq!(d.messages(), stored);
    let mut pop = Client::new(connect(d.pop3_port));
    pop.pop3_login(&d);
    for (i, m) in stored.iter().enumerate() {
        let (octets, wire) = pop.retr(i + 1);
        assert_eq!(octets, virtual_size(m), "{}", files[i].display());
        assert_eq!(wire, pop3_wire(m), "{}", files[i].display());
    }
    pop.ok("QUIT");
}

/// Start + fill with the shared corpus (~300 messages), timed; then every
/// message read back over POP3 and compared with the model.
#[test]
fn corpus_fill_is_fast_and_ordered() {
    let Some(corpus) = corpus_dir() else { return };
    let files = corpus_files();
    assert!(!files.is_empty(), "{} holds no message", corpus.display());
    let t0 = Instant::now();
    let Some(d) = Dovecot::start() else { return };
    let t_start = t0.elapsed();
    let t1 = Instant::now();
    d.fill_files(&[corpus]);
    let t_fill = t1.elapsed();
    let t2 = Instant::now();
    let count = d.message_count();
    let t_count = t2.elapsed();
    assert_eq!(count, files.len());
    let t3 = Instant::now();
    let got = d.messages();
    let t_messages = t3.elapsed();
    let stored = read_all(&files);
    assert!(got == stored, "messages() differ from the corpus files");

    let t4 = Instant::now();
    let mut pop = Client::new(connect(d.pop3_port));
    pop.pop3_login(&d);
    let stat = pop.ok("STAT");
    let total: usize = stored.iter().map(|m| virtual_size(m)).sum();
    assert_eq!(stat, format!("+OK {} {total}\r\n", stored.len()));
    for (i, m) in stored.iter().enumerate() {
        let (octets, wire) = pop.retr(i + 1);
        assert_eq!(octets, virtual_size(m), "{}", files[i].display());
        assert!(wire == pop3_wire(m), "{}", files[i].display());
    }
    pop.ok("QUIT");
    let t_retr = t4.elapsed();
    let t5 = Instant::now();
    drop(d);
    let t_stop = t5.elapsed();
    eprintln!(
        "TIMING: {} messages ({} bytes): start {t_start:?}, fill {t_fill:?}, \
         message_count {t_count:?}, messages() {t_messages:?}, POP3 RETR all {t_retr:?}, stop {t_stop:?}",
        files.len(),
        stored.iter().map(Vec::len).sum::<usize>()
    );
}

#[test]
fn drop_stops_the_server() {
    let Some(d) = Dovecot::start() else { return };
    let port = d.pop3_port;
    let pid = d.master_pid().expect("master.pid");
    let dir = d.path().to_path_buf();
    let t = Instant::now();
    drop(d);
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(!dir.exists(), "tempdir removed");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // Gone, or at most a zombie waiting for its (foreign) parent to reap it.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(") ").next().unwrap_or("").chars().next();
    assert!(
        matches!(state, None | Some('Z')),
        "master {pid} still running"
    );
}

/// The script on its own: random free ports, a directory too long for unix
/// sockets (base_dir moves to /tmp), and `stop` cleaning that up.
#[test]
fn script_picks_ports_and_copes_with_long_dirs() {
    if Dovecot::start().is_none() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("fetch-dovecot-long")
        .tempdir()
        .unwrap();
    let dir: PathBuf = tmp.path().join("a".repeat(60)).join("b".repeat(40));
    let run = |args: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(dovecot::script()).args(args);
        dovecot::run_limited(c, Duration::from_secs(30)).unwrap()
    };
    let dir_s = dir.to_str().unwrap();
    let out = run(&["start", dir_s]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), env);
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let base_dir = PathBuf::from(get("BASE_DIR"));
    let result = std::panic::catch_unwind(|| {
        assert!(
            base_dir.to_str().unwrap().starts_with("/tmp/dcsb."),
            "{}",
            base_dir.display()
        );
        let mut ports: Vec<u16> = ["POP3_PORT", "POP3S_PORT", "IMAP_PORT", "IMAPS_PORT"]
            .iter()
            .map(|k| get(k).parse().unwrap())
            .collect();
        let mut c = Client::new(connect(ports[0]));
        assert!(c.line_str().starts_with("+OK"));
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 4);
        assert_eq!(get("USER"), "fetchtest");
        assert_eq!(
            PathBuf::from(get("MAILDIR")),
            dir.join("mail/fetchtest/Maildir")
        );
    });
    let out = run(&["stop", dir_s]);
    assert!(out.status.success());
    assert!(!base_dir.exists());
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
