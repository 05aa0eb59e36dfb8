//! Crash at every step (issue 6, GUIDE §4). For each mode and destination:
//! count the crash points (journal writes, torn journal records, file
//! writes, syncs, renames, DELE, QUIT, STORE, EXPUNGE, LOGOUT) of a clean
//! run; then, for every N, abort a fresh run at point N (SIGABRT: no
//! destructors, no flushing), run again to completion, and check what a user
//! would: every message exactly once and byte-exact, the server in the state
//! the mode promises, no temporary files of ours left behind.
//!
//! The hook exists only in debug builds (see src/crash.rs).

mod common;

use std::path::Path;

use common::pop3server::{Pop3Server, ServerConfig, msg};
use common::{
    Env, expected_local, maildir_messages, python_read_mbox, scripted_args, sorted, tmp_files,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dest {
    Maildir,
    Mbox,
}

fn messages() -> Vec<(String, Vec<u8>)> {
    (1..=20)
        .map(|i| {
            let lines: Vec<String> = (0..i * 30)
                .map(|j| format!("line {j} of message {i}"))
                .collect();
            let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
            let mut m = msg(i, &refs);
            m.extend_from_slice(b"From the body\r\n.\r\n");
            (format!("uid-{i}"), m)
        })
        .collect()
}

fn args(env: &Env, port: u16, dest: Dest, keep: bool) -> Vec<String> {
    let mut a = scripted_args(port);
    match dest {
        Dest::Maildir => a.extend([
            "--maildir".into(),
            env.maildir().to_string_lossy().into_owned(),
        ]),
        Dest::Mbox => a.extend([
            "--mbox".into(),
            env.path().join("mbox").to_string_lossy().into_owned(),
        ]),
    }
    if keep {
        a.push("--keep".into());
    }
    a
}

fn run(env: &Env, a: &[String], crash_at: Option<usize>, log: Option<&Path>) -> common::Out {
    let mut c = env.cmd();
    c.args(a);
    if let Some(n) = crash_at {
        c.env("FETCH_CRASH_AT", n.to_string());
    }
    if let Some(l) = log {
        c.env("FETCH_CRASH_LOG", l);
    }
    common::run_bounded(c, std::time::Duration::from_secs(60))
}

/// What the user has locally, as a sorted multiset of messages.
fn local(env: &Env, dest: Dest) -> Option<Vec<Vec<u8>>> {
    match dest {
        Dest::Maildir => Some(maildir_messages(&env.maildir())),
        Dest::Mbox => {
            let p = env.path().join("mbox");
            if !p.exists() {
                return Some(Vec::new());
            }
            python_read_mbox(&p).map(|m| sorted(m.into_iter().map(|(_, d)| d).collect()))
        }
    }
}

fn sweep_pop3(dest: Dest, keep: bool, uidl: bool) {
    let msgs = messages();
    let want = sorted(msgs.iter().map(|(_, b)| expected_local(b)).collect());
    let cfg = || ServerConfig {
        capa_uidl: uidl,
        uidl_supported: uidl,
        ..Default::default()
    };
    // Count the points of a clean run.
    let env = Env::new();
    let server = Pop3Server::start(cfg(), msgs.clone());
    let log = env.path().join("points");
    let out = run(&env, &args(&env, server.port, dest, keep), None, Some(&log));
    assert_eq!(out.code, 0, "{out:?}");
    let points = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(points > 20, "only {points} crash points");
    let mut crashed = 0;
    for n in 1..=points {
        let env = Env::new();
        let server = Pop3Server::start(cfg(), msgs.clone());
        let a = args(&env, server.port, dest, keep);
        let first = run(&env, &a, Some(n), None);
        if first.code == 134 {
            crashed += 1;
        } else {
            // Socket reads may split messages differently from the
            // counting run, moving later points; a run that finishes is fine.
            assert_eq!(first.code, 0, "point {n}: {first:?}");
        }
        let second = run(&env, &a, None, None);
        assert_eq!(
            second.code, 0,
            "{dest:?} keep={keep} uidl={uidl}: rerun after point {n}: {second:?}"
        );
        let Some(got) = local(&env, dest) else { return };
        assert!(
            got == want,
            "{dest:?} keep={keep} uidl={uidl}: after a crash at point {n}, {} messages locally, want {} (each once)",
            got.len(),
            want.len()
        );
        let left = server.remaining().len();
        if keep {
            assert_eq!(left, msgs.len(), "point {n}: --keep deleted mail");
        } else {
            assert_eq!(left, 0, "point {n}: delete mode left mail on the server");
        }
        if dest == Dest::Maildir {
            assert!(
                tmp_files(&env.maildir()).is_empty(),
                "point {n}: stray tmp files"
            );
        }
        // A third run changes nothing.
        let third = run(&env, &a, None, None);
        assert_eq!(third.code, 0);
        assert!(
            local(&env, dest).unwrap() == want,
            "point {n}: a later run delivered again"
        );
    }
    eprintln!(
        "{dest:?} keep={keep} uidl={uidl}: {points} crash points, {crashed} crashed runs, all recovered"
    );
    assert!(
        crashed * 2 > points,
        "most points must really crash ({crashed} of {points})"
    );
}

#[test]
fn pop3_delete_into_maildir() {
    sweep_pop3(Dest::Maildir, false, true);
}

#[test]
fn pop3_keep_into_maildir() {
    sweep_pop3(Dest::Maildir, true, true);
}

#[test]
fn pop3_delete_into_mbox() {
    sweep_pop3(Dest::Mbox, false, true);
}

#[test]
fn pop3_keep_into_mbox() {
    sweep_pop3(Dest::Mbox, true, true);
}

#[test]
fn pop3_without_uidl_delete_into_maildir() {
    sweep_pop3(Dest::Maildir, false, false);
}

fn sweep_imap(delete: bool) {
    use common::dovecot::{Dovecot, imap_body};
    let Some(dc) = Dovecot::start() else { return };
    let msgs: Vec<Vec<u8>> = (1..=20)
        .map(|i| {
            let body: String = (0..i * 30)
                .map(|j| format!("line {j} of message {i}\n"))
                .collect();
            format!("From: s{i}@example.org\nSubject: {i}\n\n{body}").into_bytes()
        })
        .collect();
    let lf = |b: &[u8]| {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if !(b[i] == b'\r' && b.get(i + 1) == Some(&b'\n')) {
                out.push(b[i]);
            }
            i += 1;
        }
        out
    };
    let want = sorted(msgs.iter().map(|m| lf(&imap_body(m))).collect());
    let refill = || {
        let out = dc.doveadm(&["expunge", "-u", &dc.user, "mailbox", "INBOX", "all"]);
        assert!(out.status.success());
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        dc.fill(&refs);
        assert_eq!(dc.message_count(), msgs.len());
    };
    let args = |env: &Env| {
        let mut a: Vec<String> = [
            "--imap",
            "127.0.0.1",
            "--port",
            &dc.imap_port.to_string(),
            "--tls",
            "none",
            "--allow-plaintext-auth",
            "-u",
            &dc.user,
            "--password-command",
            &format!("cat {}", dc.password_file.display()),
            "--maildir",
            env.maildir().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if delete {
            a.push("--delete".into());
        }
        a
    };
    refill();
    let env = Env::new();
    let log = env.path().join("points");
    let out = run(&env, &args(&env), None, Some(&log));
    assert_eq!(out.code, 0, "{out:?}");
    let points = std::fs::read_to_string(&log).unwrap().lines().count();
    let mut crashed = 0;
    for n in 1..=points {
        refill();
        let env = Env::new();
        let a = args(&env);
        let first = run(&env, &a, Some(n), None);
        if first.code == 134 {
            crashed += 1;
        } else {
            assert_eq!(first.code, 0, "point {n}: {first:?}");
        }
        let second = run(&env, &a, None, None);
        assert_eq!(
            second.code, 0,
            "imap delete={delete}: rerun after point {n}: {second:?}"
        );
        let got = maildir_messages(&env.maildir());
        assert!(
            got == want,
            "imap delete={delete}: point {n}: {} local messages, want {} (each once)",
            got.len(),
            want.len()
        );
        assert_eq!(
            dc.message_count(),
            if delete { 0 } else { msgs.len() },
            "point {n}"
        );
        assert!(
            tmp_files(&env.maildir()).is_empty(),
            "point {n}: stray tmp files"
        );
    }
    eprintln!("imap delete={delete}: {points} crash points, {crashed} crashed runs, all recovered");
    assert!(
        crashed * 2 > points,
        "most points must really crash ({crashed} of {points})"
    );
}

#[test]
fn imap_keep_into_maildir() {
    sweep_imap(false);
}

#[test]
fn imap_delete_into_maildir() {
    sweep_imap(true);
}
