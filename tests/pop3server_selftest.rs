//! Tests of the scripted POP3 test server and the test PKI themselves, using
//! hand-written TcpStream / native-tls clients.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pop3server::{
    Faults, Pop3Server, ServerConfig, TlsMode, base64_decode, base64_encode, md5_hex, msg,
};
use common::tls::{self, TestCa, Validity};

/// A minimal POP3 client that never reads past the line it needs, so the
/// socket can be handed to TLS after STLS.
struct Client<S: Read + Write> {
    s: S,
}

impl Client<TcpStream> {
    fn connect(server: &Pop3Server) -> Client<TcpStream> {
        let s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { s }
    }

    /// Connects and logs in with USER/PASS, returning the client.
    fn login(server: &Pop3Server) -> Client<TcpStream> {
        let mut c = Client::connect(server);
        assert!(c.line().starts_with("+OK"));
        assert!(c.cmd("USER tester").starts_with("+OK"));
        let r = c.cmd("PASS secret");
        assert!(r.starts_with("+OK"), "{r}");
        c
    }

    fn starttls(mut self, ca: &TestCa) -> Client<native_tls::TlsStream<TcpStream>> {
        let r = self.cmd("STLS");
        assert!(r.starts_with("+OK"), "{r}");
        Client {
            s: tls_connect(ca, "127.0.0.1", self.s).unwrap(),
        }
    }
}

impl<S: Read + Write> Client<S> {
    /// One line without CRLF; "" on EOF.
    fn line(&mut self) -> String {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while self.s.read(&mut b).unwrap_or(0) == 1 {
            out.push(b[0]);
            if b[0] == b'\n' {
                break;
            }
        }
        let t = out.strip_suffix(b"\r\n").unwrap_or(&out);
        String::from_utf8_lossy(t).into_owned()
    }

    fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).unwrap();
        self.s.flush().unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// The raw body of a multi-line reply, up to and excluding ".\r\n".
    fn body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut l = Vec::new();
            let mut b = [0u8; 1];
            while self.s.read(&mut b).unwrap_or(0) == 1 {
                l.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            if l.is_empty() {
                panic!("EOF inside multi-line reply; got {:?}", lossy(&out));
            }
            if l == b".\r\n" {
                return out;
            }
            out.extend_from_slice(&l);
        }
    }

    fn lines(&mut self) -> Vec<String> {
        lossy(&self.body())
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Everything until EOF (bounded by the read timeout).
    fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.s.read_to_end(&mut out);
        out
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tls_connect(
    ca: &TestCa,
    host: &str,
    tcp: TcpStream,
) -> Result<native_tls::TlsStream<TcpStream>, String> {
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    connector.connect(host, tcp).map_err(|e| e.to_string())
}

fn two_messages() -> Vec<(String, Vec<u8>)> {
    vec![
        ("uid-1".to_string(), msg(1, &["hello", "world"])),
        ("uid-2".to_string(), msg(2, &["second"])),
    ]
}

fn start(cfg: ServerConfig) -> Pop3Server {
    Pop3Server::start(cfg, two_messages())
}

fn with_faults(faults: Faults) -> ServerConfig {
    ServerConfig {
        faults,
        ..Default::default()
    }
}

// --------------------------------------------------------------------------
// Basic protocol
// --------------------------------------------------------------------------

#[test]
fn greeting_and_capa() {
    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    assert_eq!(c.line(), "+OK fetch test POP3 server ready");
    assert!(c.cmd("CAPA").starts_with("+OK"));
    let capa = c.lines();
    for want in [
        "TOP",
        "UIDL",
        "USER",
        "PIPELINING",
        "SASL PLAIN",
        "RESP-CODES",
        "AUTH-RESP-CODE",
    ] {
        assert!(capa.iter().any(|l| l == want), "{want} missing: {capa:?}");
    }
    assert!(!capa.iter().any(|l| l == "STLS"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(c.rest(), b"");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.commands(), vec!["CAPA", "QUIT"]);
    assert_eq!(server.received(), b"CAPA\r\nQUIT\r\n");
}

#[test]
fn capa_switches() {
    let server = start(ServerConfig {
        capa_pipelining: false,
        capa_top: false,
        capa_extra: vec!["LOGIN-DELAY 900".into()],
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("CAPA").starts_with("+OK"));
    let capa = c.lines();
    assert!(!capa.iter().any(|l| l == "PIPELINING" || l == "TOP"));
    assert!(capa.iter().any(|l| l == "LOGIN-DELAY 900"));

    let server = start(ServerConfig {
        capa_enabled: false,
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("CAPA").starts_with("-ERR"));
}

#[test]
fn user_pass_and_state_checks() {
    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("STAT").starts_with("-ERR"));
    assert!(c.cmd("RETR 1").starts_with("-ERR"));
    assert!(c.cmd("PASS secret").starts_with("-ERR"), "PASS before USER");
    assert!(c.cmd("FROB").starts_with("-ERR"));
    assert!(c.cmd("USER tester").starts_with("+OK"));
    assert_eq!(c.cmd("PASS wrong"), "-ERR [AUTH] invalid credentials");
    assert!(c.cmd("STAT").starts_with("-ERR"));
    assert!(c.cmd("USER tester").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    let total = msg(1, &["hello", "world"]).len() + msg(2, &["second"]).len();
    assert_eq!(c.cmd("STAT"), format!("+OK 2 {total}"));
    assert!(c.cmd("USER tester").starts_with("-ERR"));
    assert!(c.cmd("NOOP").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let cmds = server.commands();
    assert!(cmds.contains(&"PASS wrong".to_string()));
    assert!(cmds.contains(&"PASS secret".to_string()));
}

#[test]
fn user_disabled_and_plaintext_auth_refused() {
    let server = start(ServerConfig {
        user_enabled: false,
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("USER tester").starts_with("-ERR"));

    let server = start(ServerConfig {
        plaintext_auth_allowed: false,
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("USER tester").starts_with("-ERR [AUTH]"));
    let ir = base64_encode(b"\0tester\0secret");
    assert!(
        c.cmd(&format!("AUTH PLAIN {ir}"))
            .starts_with("-ERR [AUTH]")
    );
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let server = start(ServerConfig::default());
    let good = base64_encode(b"\0tester\0secret");
    let bad = base64_encode(b"\0tester\0nope");

    let mut c = Client::connect(&server);
    c.line();
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {bad}")),
        "-ERR [AUTH] invalid credentials"
    );
    assert!(c.cmd("AUTH PLAIN !!!").starts_with("-ERR"));
    assert!(c.cmd(&format!("AUTH PLAIN {good}")).starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let mut c = Client::connect(&server);
    c.line();
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert!(c.cmd("*").starts_with("-ERR"), "cancelled exchange");
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert!(c.cmd(&good).starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let per = server.commands_per_connection();
    assert_eq!(per.len(), 2);
    assert_eq!(per[1], vec!["AUTH PLAIN", "*", "AUTH PLAIN", &good, "QUIT"]);
    assert!(server.commands().contains(&format!("AUTH PLAIN {good}")));
}

#[test]
fn auth_without_mechanism_lists_plain_and_unknown_mech_fails() {
    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("AUTH").starts_with("+OK"));
    assert_eq!(c.lines(), vec!["PLAIN"]);
    assert!(c.cmd("AUTH CRAM-MD5").starts_with("-ERR"));
}

#[test]
fn apop() {
    // RFC 1939's example digest, as a check of the test md5.
    assert_eq!(
        md5_hex(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf"),
        "c4c9334bac560ecc979e58001b3e22fb"
    );
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    let long = vec![b'a'; 1000];
    assert_eq!(md5_hex(&long), "cabe45dcc9ae5b66ba86600cca6b8ba8");

    let ts = "<1896.697170952@example.org>";
    let server = start(ServerConfig {
        greeting: format!("POP3 ready {ts}"),
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    assert!(c.line().ends_with(ts));
    let bad = md5_hex(format!("{ts}wrong").as_bytes());
    assert!(
        c.cmd(&format!("APOP tester {bad}"))
            .starts_with("-ERR [AUTH]")
    );
    let good = md5_hex(format!("{ts}secret").as_bytes());
    assert!(c.cmd(&format!("APOP tester {good}")).starts_with("+OK"));

    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd(&format!("APOP tester {good}")).starts_with("-ERR"));
}

#[test]
fn base64_roundtrip() {
    for s in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"\0tester\0secret"] {
        assert_eq!(base64_decode(&base64_encode(s)).unwrap(), s);
    }
    assert_eq!(base64_encode(b"\0tester\0secret"), "AHRlc3RlcgBzZWNyZXQ=");
    assert!(base64_decode("abc").is_none());
    assert!(base64_decode("a=bc").is_none());
}

#[test]
fn uidl_list_retr_with_dot_stuffing() {
    let tricky = b"Subject: dots\r\n\r\n.x\r\n..y\r\nz\r\n.\r\nlast".to_vec();
    let server = Pop3Server::start(
        ServerConfig::default(),
        vec![
            ("a".into(), msg(1, &["hi"])),
            ("b".into(), tricky.clone()),
            ("c".into(), Vec::new()),
        ],
    );
    let mut c = Client::login(&server);
    assert!(c.cmd("UIDL").starts_with("+OK"));
    assert_eq!(c.lines(), vec!["1 a", "2 b", "3 c"]);
    assert_eq!(c.cmd("UIDL 2"), "+OK 2 b");
    let list = c.cmd("LIST");
    assert!(list.starts_with("+OK 3 messages"), "{list}");
    assert_eq!(
        c.lines(),
        vec![
            format!("1 {}", msg(1, &["hi"]).len()),
            format!("2 {}", tricky.len()),
            "3 0".to_string()
        ]
    );
    assert_eq!(c.cmd("LIST 2"), format!("+OK 2 {}", tricky.len()));
    assert!(c.cmd("LIST 9").starts_with("-ERR"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.body(), msg(1, &["hi"]));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(
        lossy(&c.body()),
        "Subject: dots\r\n\r\n..x\r\n...y\r\nz\r\n..\r\nlast\r\n"
    );
    assert!(c.cmd("RETR 3").starts_with("+OK 0 octets"));
    assert_eq!(c.body(), b"");
    assert!(c.cmd("TOP 2 1").starts_with("+OK"));
    assert_eq!(lossy(&c.body()), "Subject: dots\r\n\r\n..x\r\n");
    assert!(c.cmd("RETR 0").starts_with("-ERR"));
    assert!(c.cmd("RETR x").starts_with("-ERR"));
}

#[test]
fn uidl_and_top_can_be_unsupported() {
    let server = start(ServerConfig {
        uidl_supported: false,
        top_supported: false,
        ..Default::default()
    });
    let mut c = Client::login(&server);
    assert!(c.cmd("UIDL").starts_with("-ERR"));
    assert!(c.cmd("TOP 1 0").starts_with("-ERR"));
}

#[test]
fn pipelined_commands_answered_in_order() {
    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    c.line();
    c.send(b"USER tester\r\nPASS secret\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.body(), msg(1, &["hello", "world"]));
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.body(), msg(2, &["second"]));
    assert_eq!(c.line(), "+OK message 1 deleted");
    assert!(c.line().starts_with("+OK bye"));
    assert_eq!(c.rest(), b"");
    assert_eq!(
        server.commands(),
        vec![
            "USER tester",
            "PASS secret",
            "RETR 1",
            "RETR 2",
            "DELE 1",
            "QUIT"
        ]
    );
    assert_eq!(server.remaining().len(), 1);
    assert_eq!(server.remaining()[0].0, "uid-2");
}

#[test]
fn quit_applies_deletes_and_drop_does_not() {
    let server = start(ServerConfig::default());
    // Dropped connection: nothing deleted.
    {
        let mut c = Client::login(&server);
        assert!(c.cmd("DELE 1").starts_with("+OK"));
        assert!(c.cmd("DELE 1").starts_with("-ERR"), "already deleted");
        assert!(c.cmd("RETR 1").starts_with("-ERR"));
        assert!(server.mailbox.lock().unwrap().messages[0].deleted);
    }
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert_eq!(server.remaining().len(), 2);
    assert!(!server.mailbox.lock().unwrap().messages[0].deleted);
    assert!(!server.mailbox.lock().unwrap().locked);

    // RSET undeletes.
    let mut c = Client::login(&server);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(c.cmd("STAT"), "+OK 0 0");
    assert!(c.cmd("RSET").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert!(c.cmd("UIDL").starts_with("+OK"));
    assert_eq!(c.lines(), vec!["1 uid-1"]);
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(server.remaining().len(), 1);
    assert_eq!(server.remaining()[0].0, "uid-1");
    assert_eq!(server.connections(), 2);
}

#[test]
fn concurrent_login_is_refused_in_use() {
    let server = start(ServerConfig::default());
    let mut a = Client::login(&server);
    let mut b = Client::connect(&server);
    b.line();
    b.cmd("USER tester");
    let t = Instant::now();
    assert!(b.cmd("PASS secret").starts_with("-ERR [IN-USE]"));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(a.cmd("QUIT").starts_with("+OK"));
    assert!(b.cmd("USER tester").starts_with("+OK"));
    assert!(b.cmd("PASS secret").starts_with("+OK"));
}

// --------------------------------------------------------------------------
// TLS
// --------------------------------------------------------------------------

#[test]
fn stls_upgrade() {
    let ca = TestCa::new();
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let server = start(ServerConfig {
        tls: TlsMode::Stls(tls::acceptor(&cert)),
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    c.cmd("CAPA");
    assert!(c.lines().iter().any(|l| l == "STLS"));
    let mut c = c.starttls(&ca);
    assert!(c.cmd("CAPA").starts_with("+OK"));
    let capa = c.lines();
    assert!(!capa.iter().any(|l| l == "STLS"), "{capa:?}");
    assert!(c.cmd("STLS").starts_with("-ERR"));
    assert!(c.cmd("USER tester").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(c.body(), msg(2, &["second"]));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(
        lossy(&server.received()),
        "CAPA\r\nSTLS\r\nCAPA\r\nSTLS\r\nUSER tester\r\nPASS secret\r\nRETR 2\r\nQUIT\r\n"
    );
}

#[test]
fn plaintext_pipelined_after_stls_is_discarded() {
    let ca = TestCa::new();
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let server = start(ServerConfig {
        tls: TlsMode::Stls(tls::acceptor(&cert)),
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    c.send(b"STLS\r\nUSER evil\r\n");
    assert!(c.line().starts_with("+OK"));
    // The server now expects a handshake; the pipelined USER was dropped.
    let mut t = Client {
        s: tls_connect(&ca, "127.0.0.1", c.s).unwrap(),
    };
    assert!(
        t.cmd("PASS secret").starts_with("-ERR"),
        "USER evil ignored"
    );
    assert_eq!(server.commands(), vec!["STLS", "PASS secret"]);
    assert!(lossy(&server.received()).contains("USER evil"));
}

#[test]
fn inject_after_stls_is_sent_in_the_same_write() {
    let ca = TestCa::new();
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let injected = b"+OK injected\r\n".to_vec();
    let server = start(ServerConfig {
        tls: TlsMode::Stls(tls::acceptor(&cert)),
        faults: Faults {
            inject_after_stls: Some(injected.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    c.send(b"STLS\r\n");
    let want = [&b"+OK Begin TLS negotiation\r\n"[..], &injected].concat();
    let mut got = vec![0u8; 256];
    // Loopback delivers one write in one segment: a single read gets both.
    std::thread::sleep(Duration::from_millis(50));
    let n = c.s.read(&mut got).unwrap();
    assert_eq!(&got[..n], &want[..]);
    // The handshake still works afterwards.
    let mut t = Client {
        s: tls_connect(&ca, "127.0.0.1", c.s).unwrap(),
    };
    assert!(t.cmd("NOOP").starts_with("-ERR"), "not authenticated");
}

#[test]
fn stls_faults() {
    let ca = TestCa::new();
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let acc = tls::acceptor(&cert);
    let server = start(ServerConfig {
        tls: TlsMode::Stls(acc.clone()),
        faults: Faults {
            stls_not_advertised: true,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    c.cmd("CAPA");
    assert!(!c.lines().iter().any(|l| l == "STLS"));
    let mut t = c.starttls(&ca);
    assert!(t.cmd("NOOP").starts_with("-ERR"));

    let server = start(ServerConfig {
        tls: TlsMode::Stls(acc),
        faults: Faults {
            stls_refused: true,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    c.line();
    c.cmd("CAPA");
    assert!(c.lines().iter().any(|l| l == "STLS"));
    assert!(c.cmd("STLS").starts_with("-ERR"));
    assert!(c.cmd("USER tester").starts_with("+OK"), "still plaintext");

    let server = start(ServerConfig::default());
    let mut c = Client::connect(&server);
    c.line();
    assert!(c.cmd("STLS").starts_with("-ERR"), "no TLS configured");
}

#[test]
fn implicit_tls() {
    let ca = TestCa::new();
    let cert = ca.issue(&["127.0.0.1", "localhost"], Validity::Good);
    let server = start(ServerConfig {
        tls: TlsMode::Implicit(tls::acceptor(&cert)),
        ..Default::default()
    });
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c = Client {
        s: tls_connect(&ca, "localhost", tcp).unwrap(),
    };
    assert!(c.line().starts_with("+OK"));
    c.cmd("CAPA");
    assert!(!c.lines().iter().any(|l| l == "STLS"));
    assert!(c.cmd("USER tester").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(
        lossy(&server.received()),
        "CAPA\r\nUSER tester\r\nPASS secret\r\nQUIT\r\n"
    );
}

fn try_implicit(cert: &tls::ServerCert, ca: &TestCa, host: &str) -> Result<(), String> {
    let server = start(ServerConfig {
        tls: TlsMode::Implicit(tls::acceptor(cert)),
        ..Default::default()
    });
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = tls_connect(ca, host, tcp)?;
    let mut b = [0u8; 3];
    s.read_exact(&mut b).map_err(|e| e.to_string())?;
    assert_eq!(&b, b"+OK");
    Ok(())
}

#[test]
fn bad_certificates_are_rejected_by_a_verifying_client() {
    let ca = TestCa::new();
    let good = ca.issue(&["127.0.0.1"], Validity::Good);
    try_implicit(&good, &ca, "127.0.0.1").unwrap();

    let wrong_name = ca.issue(&["mail.example.org"], Validity::Good);
    assert!(try_implicit(&wrong_name, &ca, "127.0.0.1").is_err());
    try_implicit(&wrong_name, &ca, "mail.example.org").unwrap();

    let expired = ca.issue(&["127.0.0.1"], Validity::Expired);
    let e = try_implicit(&expired, &ca, "127.0.0.1").unwrap_err();
    assert!(e.contains("expired"), "{e}");

    let future = ca.issue(&["127.0.0.1"], Validity::NotYetValid);
    let e = try_implicit(&future, &ca, "127.0.0.1").unwrap_err();
    assert!(e.contains("not yet valid"), "{e}");

    let selfsigned = tls::self_signed(&["127.0.0.1"]);
    assert!(try_implicit(&selfsigned, &ca, "127.0.0.1").is_err());
    let other_ca = TestCa::new();
    assert!(try_implicit(&good, &other_ca, "127.0.0.1").is_err());
}

#[test]
fn self_signed_cert_can_be_its_own_trust_anchor() {
    let ss = tls::self_signed(&["127.0.0.1"]);
    let server = start(ServerConfig {
        tls: TlsMode::Implicit(tls::acceptor(&ss)),
        ..Default::default()
    });
    let tcp = TcpStream::connect(server.addr()).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(ss.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut s = connector.connect("127.0.0.1", tcp).unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"+OK");
}

#[test]
fn ca_write_pem() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ca.pem");
    ca.write_pem(&p);
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.starts_with("-----BEGIN CERTIFICATE-----"));
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    assert!(cert.chain_pem.starts_with(&cert.cert_pem));
    assert!(cert.chain_pem.ends_with(&ca.cert_pem));
    assert!(cert.key_pem.contains("PRIVATE KEY"));
}

// --------------------------------------------------------------------------
// Faults
// --------------------------------------------------------------------------

#[test]
fn drop_during_retr_only_on_first_connection() {
    let server = start(with_faults(Faults {
        drop_during_retr: Some((2, 20)),
        fault_connections: Some(1),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    c.send(b"RETR 2\r\n");
    let got = c.rest();
    assert_eq!(got.len(), 20);
    assert!(got.starts_with(b"+OK"));
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert_eq!(server.remaining().len(), 2, "no UPDATE after a cut");

    let mut c = Client::login(&server);
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(c.body(), msg(2, &["second"]));
}

#[test]
fn stall_during_retr() {
    let server = start(with_faults(Faults {
        stall_during_retr: Some((1, 30, Duration::from_millis(300))),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    c.send(b"RETR 1\r\n");
    let t = Instant::now();
    let got = c.rest();
    assert_eq!(got.len(), 30);
    assert!(t.elapsed() >= Duration::from_millis(250));
}

#[test]
fn list_size_and_uidl_overrides() {
    let weird = vec![
        "has space".to_string(),
        "../../etc/passwd".to_string(),
        "x".repeat(71),
    ];
    let server = Pop3Server::start(
        with_faults(Faults {
            list_size_override: HashMap::from([(1, 5u64)]),
            uidl_override: Some(weird.clone()),
            ..Default::default()
        }),
        vec![
            ("a".into(), msg(1, &["x"])),
            ("b".into(), msg(2, &["y"])),
            ("c".into(), msg(3, &["z"])),
            ("d".into(), msg(4, &["w"])),
        ],
    );
    let mut c = Client::login(&server);
    c.cmd("LIST");
    let lines = c.lines();
    assert_eq!(lines[0], "1 5");
    assert_eq!(lines[1], format!("2 {}", msg(2, &["y"]).len()));
    assert_eq!(c.cmd("LIST 1"), "+OK 1 5");
    assert!(c.cmd("RETR 1").starts_with("+OK 5 octets"));
    assert_eq!(c.body(), msg(1, &["x"]));
    c.cmd("UIDL");
    assert_eq!(
        c.lines(),
        vec![
            "1 has space".to_string(),
            "2 ../../etc/passwd".to_string(),
            format!("3 {}", "x".repeat(71)),
            "4 d".to_string()
        ]
    );
    assert_eq!(c.cmd("UIDL 2"), "+OK 2 ../../etc/passwd");

    // Duplicates.
    let server = start(with_faults(Faults {
        uidl_override: Some(vec!["same".into(), "same".into()]),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    c.cmd("UIDL");
    assert_eq!(c.lines(), vec!["1 same", "2 same"]);
}

#[test]
fn stall_before_and_after_greeting() {
    let server = start(with_faults(Faults {
        stall_before_greeting: Some(Duration::from_millis(300)),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    let t = Instant::now();
    assert_eq!(c.rest(), b"", "nothing, then close");
    assert!(t.elapsed() >= Duration::from_millis(250));

    let server = start(with_faults(Faults {
        stall_after_greeting: Some(Duration::from_millis(300)),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    assert!(c.line().starts_with("+OK"));
    c.send(b"CAPA\r\n");
    let t = Instant::now();
    assert_eq!(c.rest(), b"", "no answer, then close");
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.received(), b"");
}

#[test]
fn dribble_sends_one_byte_at_a_time() {
    let server = start(with_faults(Faults {
        dribble: Some(Duration::from_millis(10)),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    let t = Instant::now();
    let mut first = [0u8; 8];
    let n = c.s.read(&mut first).unwrap();
    assert_eq!(n, 1, "first read gets a single byte");
    let rest = c.line();
    assert_eq!(
        format!("{}{rest}", first[0] as char),
        "+OK fetch test POP3 server ready"
    );
    // 34 bytes at 10 ms each.
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn unterminated_multiline() {
    let server = start(with_faults(Faults {
        unterminated_multiline: Some("RETR".into()),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    c.cmd("UIDL");
    assert_eq!(c.lines().len(), 2, "other multi-line replies unaffected");
    c.send(b"RETR 1\r\n");
    let got = c.rest();
    let body = msg(1, &["hello", "world"]);
    let want = [format!("+OK {} octets\r\n", body.len()).as_bytes(), &body].concat();
    assert_eq!(lossy(&got), lossy(&want), "no final dot");
}

#[test]
fn long_greeting_line() {
    let server = start(with_faults(Faults {
        long_line: Some(100_000),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    let l = c.line();
    assert_eq!(l.len(), 100_000);
    assert!(l.starts_with("+OK xxx"));
    assert!(c.cmd("USER tester").starts_with("+OK"));
}

#[test]
fn dele_error_and_quit_error() {
    let server = start(with_faults(Faults {
        dele_error: HashSet::from([2]),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("-ERR"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(server.remaining().len(), 1);
    assert_eq!(server.remaining()[0].0, "uid-2");

    let server = start(with_faults(Faults {
        quit_error: true,
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("-ERR"));
    assert_eq!(c.rest(), b"");
    assert_eq!(server.remaining().len(), 2);
}

#[test]
fn drop_on_command() {
    let server = start(with_faults(Faults {
        drop_on_command: Some("quit".into()),
        ..Default::default()
    }));
    let mut c = Client::login(&server);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    c.send(b"QUIT\r\n");
    assert_eq!(c.rest(), b"");
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert_eq!(server.remaining().len(), 2);
}

#[test]
fn auth_reply_override() {
    let server = start(with_faults(Faults {
        auth_reply_override: Some("-ERR [SYS/TEMP] try later".into()),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    c.line();
    c.cmd("USER tester");
    assert_eq!(c.cmd("PASS secret"), "-ERR [SYS/TEMP] try later");
    assert!(c.cmd("STAT").starts_with("-ERR"));
}

#[test]
fn hook_sees_commands_before_the_reply() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let server = start(ServerConfig {
        hook_on_command: Some(Arc::new(move |line: &str| {
            s2.lock().unwrap().push(line.to_string());
        })),
        ..Default::default()
    });
    let mut c = Client::login(&server);
    c.send(b"DELE 2\r\n");
    // The reply comes after the hook ran.
    assert!(c.line().starts_with("+OK"));
    assert_eq!(seen.lock().unwrap().last().unwrap(), "DELE 2");
    c.cmd("QUIT");
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["USER tester", "PASS secret", "DELE 2", "QUIT"]
    );
}

#[test]
#[should_panic(expected = "hook assertion")]
fn hook_panic_fails_the_test_on_drop() {
    let server = start(ServerConfig {
        hook_on_command: Some(Arc::new(|line: &str| {
            assert!(line != "DELE 1", "hook assertion");
        })),
        ..Default::default()
    });
    let mut c = Client::login(&server);
    c.send(b"DELE 1\r\n");
    assert_eq!(c.rest(), b"", "connection ends");
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert_eq!(server.panics().len(), 1);
    assert!(!server.mailbox.lock().unwrap().locked, "lock released");
    drop(server);
}

#[test]
fn script_escape_hatch() {
    let server = start(ServerConfig {
        script: Some(Arc::new(|s: &mut TcpStream, rec| {
            s.write_all(b"+OK hostile\r\n").unwrap();
            while let Some(line) = rec.read_line(s) {
                if line == "QUIT" {
                    break;
                }
                let reply = format!("+OK conn {} got {line}\r\n", rec.connection());
                s.write_all(reply.as_bytes()).unwrap();
            }
        })),
        ..Default::default()
    });
    let mut c = Client::connect(&server);
    assert_eq!(c.line(), "+OK hostile");
    assert_eq!(c.cmd("CAPA"), "+OK conn 1 got CAPA");
    c.send(b"QUIT\r\n");
    assert_eq!(c.rest(), b"");
    assert_eq!(server.commands(), vec!["CAPA", "QUIT"]);
    assert_eq!(server.received(), b"CAPA\r\nQUIT\r\n");
}

#[test]
fn drop_never_hangs_with_a_client_still_connected() {
    let server = start(with_faults(Faults {
        stall_after_greeting: Some(Duration::from_secs(30)),
        ..Default::default()
    }));
    let mut c = Client::connect(&server);
    assert!(c.line().starts_with("+OK"));
    let t = Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(2));
}
