//! Many accounts on one server: `max_connections` holds however large
//! `--jobs` is, and a server's "too many connections" is a temporary
//! failure (75), never an authentication failure (77).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Env;
use common::config::write_config;
use common::dest::maildir_files;
use common::dovecot::Dovecot;

/// A TCP proxy to `upstream` that counts the POP3 sessions open through it
/// at once. A session counts from its accept until the client's QUIT
/// passes (before the server can answer it, so before the client can
/// give its connection slot back) or the client hangs up.
struct CountingProxy {
    port: u16,
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let most = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let now = Arc::new(Mutex::new(0usize));
        let (m, st) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                {
                    let mut n = now.lock().unwrap();
                    *n += 1;
                    m.fetch_max(*n, Ordering::SeqCst);
                }
                let now = now.clone();
                std::thread::spawn(move || relay(client, upstream, &now));
            }
        });
        CountingProxy { port, most, stop }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(client: TcpStream, upstream: u16, now: &Mutex<usize>) {
    let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let (mut c_out, mut s_in) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let down = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_in, &mut c_out);
        let _ = c_out.shutdown(Shutdown::Write);
    });
    let mut counted = true;
    let mut lines = BufReader::new(client);
    let mut server = server;
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if counted && line.eq_ignore_ascii_case(b"QUIT\r\n") {
            *now.lock().unwrap() -= 1;
            counted = false;
        }
        if server.write_all(&line).is_err() {
            break;
        }
    }
    if counted {
        *now.lock().unwrap() -= 1;
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = down.join();
}

fn message(user: usize, i: usize) -> Vec<u8> {
    format!("From: a@example.org\nSubject: user{user} message {i}\n\nbody {user}/{i}\n")
        .into_bytes()
}

#[test]
fn twenty_accounts_on_one_server_never_exceed_max_connections() {
    let Some(dc) = Dovecot::start_users(20) else {
        return;
    };
    for u in 1..=20 {
        let dir = tempfile::tempdir_in(dc.path()).unwrap();
        let paths: Vec<_> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.eml"));
                std::fs::write(&p, message(u, i)).unwrap();
                p
            })
            .collect();
        dc.fill_files_of(&format!("user{u}"), &paths);
    }
    let proxy = CountingProxy::start(dc.pop3_port);
    let env = Env::new();
    let mut config = String::new();
    for u in 1..=20 {
        config.push_str(&format!(
            "[accounts.a{u}]\nprotocol = \"pop3\"\nhost = \"127.0.0.1\"\nport = {}\n\
             tls = \"none\"\nallow_plaintext_auth = true\nuser = \"user{u}\"\n\
             password_command = \"cat {}\"\nkeep = true\nmaildir = \"{}/Mail-{u}\"\n\n",
            proxy.port,
            dc.password_file.display(),
            env.path().display()
        ));
    }
    write_config(&env, &config, 0o600);
    let out = env.run(&["-j", "16", "--max-connections", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let most = proxy.most.load(Ordering::SeqCst);
    assert!(
        most <= 3,
        "{most} POP3 sessions at once with max_connections 3"
    );
    for u in 1..=20 {
        let files = maildir_files(&env.path().join(format!("Mail-{u}")));
        let mut got: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        got.sort();
        let want: Vec<Vec<u8>> = (0..3).map(|i| message(u, i)).collect();
        assert_eq!(got, want, "user{u}'s mail");
    }
}

/// A server that accepts connections and never says a word; they stay
/// open until the test ends.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(16) {
            held.push(s);
        }
    });
    port
}

/// Three accounts on a server that hangs, ahead of one on a server that
/// works, with two jobs and one connection per server: the second job runs
/// the working server's account at once, instead of waiting behind the
/// hung server's accounts for their connection (as fetchmail's one queue
/// does).
#[test]
fn a_hung_server_holds_up_no_other_servers_accounts() {
    let hung = silent_server();
    let good = common::pop3server::account_server("zed", "pzed", 2);
    let env = Env::new();
    let mut config = String::new();
    let section = |name: &str, port: u16, user: &str, timeout: u32| {
        format!(
            "[accounts.{name}]\nprotocol = \"pop3\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"none\"\nallow_plaintext_auth = true\nuser = \"{user}\"\n\
             password_command = \"echo p{user}\"\ntimeout = {timeout}\n\
             maildir = \"{}/Mail-{name}\"\n\n",
            env.path().display()
        )
    };
    for name in ["a1", "a2", "a3"] {
        config.push_str(&section(name, hung, "u", 1));
    }
    config.push_str(&section("z", good.port, "zed", 10));
    write_config(&env, &config, 0o600);
    let out = env.run(&["-j", "2", "--max-connections", "1", "--json", "-v"]);
    assert_eq!(out.code, 75, "{out:?}");
    // The job left with only the hung server's accounts says why it waits.
    assert!(
        out.stderr
            .contains("waiting for one of the 1 connections to the server (max_connections)"),
        "{out:?}"
    );
    assert_eq!(
        maildir_files(&env.path().join("Mail-z")).len(),
        2,
        "{out:?}"
    );
    let finished: Vec<String> = common::json_events(&out)
        .iter()
        .filter(|e| e["type"] == "account")
        .map(|e| e["account"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(finished.len(), 4, "{out:?}");
    assert_eq!(
        finished[0], "z",
        "the hung server's accounts went first: {finished:?}"
    );
}

#[test]
fn max_connections_zero_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(&["--pop3", "127.0.0.1", "-u", "u", "--max-connections", "0"]);
    out.assert_exit(64, "max_connections must be at least 1");
}

/// What a scripted server does with a line: answer it (and hang up after
/// the answer when the flag says so).
type Answer = Box<dyn Fn(&str) -> (String, bool) + Send>;

/// A one-connection server: sends `greeting` (and hangs up if `answer` is
/// None), then answers each line the client sends.
fn scripted(greeting: &'static str, answer: Option<Answer>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(greeting.as_bytes());
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while let Some(answer) = &answer {
            line.clear();
            if !matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                return;
            }
            let (text, close) = answer(line.trim_end());
            if s.write_all(text.as_bytes()).is_err() || close {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
    });
    port
}

fn fetch_from(proto: &str, port: u16) -> common::Out {
    let env = Env::new();
    let pw = env.path().join("pw");
    std::fs::write(&pw, "secret").unwrap();
    env.run_args(&[
        &format!("--{proto}"),
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "-u",
        "u",
        "--password-command",
        &format!("cat {}", pw.display()),
        "--maildir",
        &env.path().join("Mail").to_string_lossy(),
        "--timeout",
        "10",
    ])
}

/// An IMAP server whose login (LOGIN or AUTHENTICATE) gets `reply` (with
/// the command's tag where it says TAG), then hangs up if `close`.
fn imap_login(reply: &'static str, close: bool) -> Option<Answer> {
    Some(Box::new(move |line: &str| {
        let tag = line.split(' ').next().unwrap_or("*");
        let upper = line.to_ascii_uppercase();
        if upper.contains(" LOGIN ") || upper.contains(" AUTHENTICATE ") {
            (reply.replace("TAG", tag), close)
        } else {
            (format!("{tag} BAD unexpected\r\n"), false)
        }
    }))
}

/// A POP3 server whose login (PASS or AUTH) gets `refusal`.
fn pop3_login(refusal: &'static str) -> Option<Answer> {
    Some(Box::new(move |line: &str| {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let text = match verb.as_str() {
            "CAPA" => "+OK\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n".into(),
            "USER" => "+OK\r\n".into(),
            "PASS" | "AUTH" => format!("{refusal}\r\n"),
            "QUIT" => "+OK bye\r\n".into(),
            _ => "-ERR unknown\r\n".into(),
        };
        (text, false)
    }))
}

#[test]
fn too_many_connections_is_a_temporary_failure_never_an_auth_failure() {
    const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n";
    let cases = [
        (
            "imap",
            "greeting BYE",
            scripted("* BYE Too many connections from your address\r\n", None),
        ),
        (
            "imap",
            "NO [LIMIT]",
            scripted(
                GREETING,
                imap_login(
                    "TAG NO [LIMIT] Too many simultaneous connections\r\n",
                    false,
                ),
            ),
        ),
        (
            "imap",
            "NO [UNAVAILABLE]",
            scripted(
                GREETING,
                imap_login(
                    "TAG NO [UNAVAILABLE] Maximum number of connections\r\n",
                    false,
                ),
            ),
        ),
        (
            // Dovecot's mail_max_userip_connections: BYE in answer to the
            // login, then the connection closes.
            "imap",
            "BYE at login",
            scripted(
                GREETING,
                imap_login(
                    "* BYE Maximum number of connections from user+IP exceeded \
                     (mail_max_userip_connections=10)\r\n",
                    true,
                ),
            ),
        ),
        (
            "pop3",
            "greeting -ERR",
            scripted("-ERR [SYS/TEMP] Too many connections\r\n", None),
        ),
        (
            "pop3",
            "-ERR [IN-USE] at login",
            scripted(
                "+OK ready\r\n",
                pop3_login("-ERR [IN-USE] Too many connections"),
            ),
        ),
        (
            "pop3",
            "-ERR [SYS/TEMP] at login",
            scripted(
                "+OK ready\r\n",
                pop3_login("-ERR [SYS/TEMP] Try again later"),
            ),
        ),
    ];
    for (proto, what, port) in cases {
        let out = fetch_from(proto, port);
        assert_eq!(out.code, 75, "{proto} {what}: {out:?}");
        assert!(
            !out.stderr.contains("authentication failed"),
            "{proto} {what}: {out:?}"
        );
    }
}
