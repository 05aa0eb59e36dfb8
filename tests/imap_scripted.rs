//! IMAP STARTTLS (RFC 3501 §6.2.1, RFC 2595 §3.1) stripped or tampered
//! with, against a scripted server: with --tls starttls, a PREAUTH greeting
//! (logged in before TLS could start), a missing or refused STARTTLS, and
//! bytes injected after the STARTTLS OK all end with exit 69 before any
//! credential is sent.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Env;

/// A one-connection scripted IMAP server: `greeting`, then answers
/// CAPABILITY with `caps` and STARTTLS with `starttls_reply` (sent in one
/// write). Records every line the client sent.
fn serve(
    greeting: &'static str,
    caps: &'static str,
    starttls_reply: &'static str,
) -> (u16, Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let t = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(greeting.as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        for _ in 0..20 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            rec.lock().unwrap().push(line.trim_end().to_string());
            let (tag, cmd) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
            let reply = match cmd.to_ascii_uppercase().as_str() {
                "CAPABILITY" => format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n"),
                "STARTTLS" => starttls_reply.replace("TAG", tag),
                _ => format!("{tag} BAD no\r\n"),
            };
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    (port, seen, t)
}

fn run(env: &Env, port: u16) -> common::Out {
    let port = port.to_string();
    env.run(&[
        "--imap",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "starttls",
        "-u",
        "tester",
        "--password-command",
        "echo S3ntinel",
        "--timeout",
        "3",
        "--maildir",
        env.maildir().to_str().unwrap(),
    ])
}

fn no_credentials(seen: &[String]) {
    for l in seen {
        let u = l.to_ascii_uppercase();
        assert!(
            !u.contains("LOGIN") && !u.contains("AUTHENTICATE") && !l.contains("S3ntinel"),
            "{seen:?}"
        );
    }
}

#[test]
fn preauth_while_starttls_is_required() {
    let env = Env::new();
    let (port, seen, t) = serve(
        "* PREAUTH [CAPABILITY IMAP4rev1] welcome\r\n",
        "IMAP4rev1 STARTTLS",
        "",
    );
    let out = run(&env, port);
    out.assert_exit(69, "PREAUTH");
    t.join().unwrap();
    no_credentials(&seen.lock().unwrap());
}

#[test]
fn starttls_not_advertised_or_refused() {
    let env = Env::new();
    let (port, seen, t) = serve("* OK hi\r\n", "IMAP4rev1 AUTH=PLAIN", "TAG OK go\r\n");
    let out = run(&env, port);
    out.assert_exit(69, "STARTTLS");
    t.join().unwrap();
    no_credentials(&seen.lock().unwrap());

    let (port, seen, t) = serve("* OK hi\r\n", "IMAP4rev1 STARTTLS", "TAG NO not today\r\n");
    let out = run(&env, port);
    out.assert_exit(69, "refused STARTTLS");
    t.join().unwrap();
    no_credentials(&seen.lock().unwrap());
}

#[test]
fn response_injection_after_starttls_ok() {
    let env = Env::new();
    // An untagged line before the OK is plaintext noise and ignored; the
    // line after it, in the same write, is an injection attempt.
    let (port, seen, t) = serve(
        "* OK hi\r\n",
        "IMAP4rev1 STARTTLS",
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] noise\r\nTAG OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LOGINDISABLED] injected\r\n",
    );
    let out = run(&env, port);
    out.assert_exit(69, "injection");
    t.join().unwrap();
    no_credentials(&seen.lock().unwrap());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(6));
        drop(s);
    });
    let out = run(&env, port);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    t.join().unwrap();
}
