//! Crash at every step. For each mode and destination: count the crash
//! points (journal writes, torn journal records, file writes, syncs,
//! renames, DELE, QUIT, STORE, EXPUNGE, LOGOUT) of a clean run; then, for
//! every N, abort a fresh run at point N (SIGABRT: no destructors, no
//! flushing), run again to completion, and check what a user would: every
//! message exactly once and byte-exact, the server in the state the mode
//! promises, no temporary files of ours left behind.
//!
//! POP3 (scripted server): delete and keep, into Maildir and mbox, and a
//! server without UIDL. IMAP (real Dovecot): keep, --delete and --move-to
//! into Maildir, --delete into mbox, and a two-way flag sync cut short at
//! every step (neither side's change may be lost).
//!
//! The hook exists only in debug builds (see src/crash.rs).

mod common;

use std::path::Path;

use common::Env;
use common::args::{dovecot, scripted_pop3};
use common::dest::{Dest, maildir_files, tmp_files};
use common::dovecot::{Dovecot, imap_body};
use common::mail::{expected_messages, lf, sorted};
use common::pop3server::{Pop3Server, ServerConfig, growing};

/// 20 messages of growing size, with lines a mbox must quote and a POP3
/// server must stuff.
fn messages() -> Vec<(String, Vec<u8>)> {
    growing(20, 30, &["From the body", "."])
}

fn args(env: &Env, port: u16, dest: Dest, keep: bool) -> Vec<String> {
    let mut a = scripted_pop3(port);
    a.extend(dest.args(env));
    if keep {
        a.push("--keep".into());
    }
    a
}

fn run(env: &Env, a: &[String], crash_at: Option<usize>, log: Option<&Path>) -> common::Out {
    let mut c = env.cmd();
    c.args(a);
    // Batches of 6: the 20 messages take four, so a crash also lands while
    // one batch syncs on its own thread and the next one downloads.
    c.env("FETCH_BATCH_MESSAGES", "6");
    if let Some(n) = crash_at {
        c.env("FETCH_CRASH_AT", n.to_string());
    }
    if let Some(l) = log {
        c.env("FETCH_CRASH_LOG", l);
    }
    common::run_bounded(c, std::time::Duration::from_secs(60))
}

fn sweep_pop3(dest: Dest, keep: bool, uidl: bool) {
    let msgs = messages();
    let want = expected_messages(&msgs);
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
        let Some(got) = dest.local(&env) else { return };
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
            dest.local(&env).unwrap() == want,
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

/// What an IMAP run does with the server's copies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ImapMode {
    Keep,
    Delete,
    MoveTo,
}

/// 20 messages of growing size (a few batches' worth of crash points).
fn imap_messages() -> Vec<Vec<u8>> {
    (1..=20)
        .map(|i| {
            let body: String = (0..i * 30)
                .map(|j| format!("line {j} of message {i}\nFrom here\n"))
                .collect();
            format!("From: s{i}@example.org\nSubject: {i}\n\n{body}").into_bytes()
        })
        .collect()
}

/// `fetch --imap` arguments for the sandbox's plaintext port.
fn imap_args(dc: &Dovecot, env: &Env, dest: Dest, mode: ImapMode) -> Vec<String> {
    let mut a = dovecot(dc, "imap", "none");
    a.extend(dest.args(env));
    match mode {
        ImapMode::Keep => {}
        ImapMode::Delete => a.push("--delete".into()),
        ImapMode::MoveTo => a.extend(["--move-to".into(), "Archive".into()]),
    }
    a
}

/// Empty INBOX and Archive, then put `msgs` into INBOX.
fn refill(dc: &Dovecot, msgs: &[Vec<u8>]) {
    for folder in ["INBOX", "Archive"] {
        let out = dc.doveadm(&["expunge", "-u", &dc.user, "mailbox", folder, "all"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dc.fill(msgs);
    assert_eq!(dc.message_count(), msgs.len());
}

fn sweep_imap(mode: ImapMode, dest: Dest) {
    let Some(dc) = Dovecot::start() else { return };
    assert!(
        dc.doveadm(&["mailbox", "create", "-u", &dc.user, "Archive"])
            .status
            .success()
    );
    let msgs = imap_messages();
    let what = format!("imap {mode:?} into {dest:?}");
    // Count the points of a clean run; what it delivers is the reference
    // (for a Maildir, checked against the messages themselves).
    refill(&dc, &msgs);
    let env = Env::new();
    let log = env.path().join("points");
    let out = run(&env, &imap_args(&dc, &env, dest, mode), None, Some(&log));
    assert_eq!(out.code, 0, "{out:?}");
    let points = std::fs::read_to_string(&log).unwrap().lines().count();
    let Some(want) = dest.local(&env) else {
        return;
    };
    assert_eq!(want.len(), msgs.len());
    if dest == Dest::Maildir {
        assert!(want == sorted(msgs.iter().map(|m| lf(&imap_body(m))).collect()));
    }
    let mut crashed = 0;
    for n in 1..=points {
        refill(&dc, &msgs);
        let env = Env::new();
        let a = imap_args(&dc, &env, dest, mode);
        let first = run(&env, &a, Some(n), None);
        if first.code == 134 {
            crashed += 1;
        } else {
            assert_eq!(first.code, 0, "{what}: point {n}: {first:?}");
        }
        let second = run(&env, &a, None, None);
        assert_eq!(second.code, 0, "{what}: rerun after point {n}: {second:?}");
        let got = dest.local(&env).unwrap();
        assert!(
            got == want,
            "{what}: point {n}: {} local messages, want {} (each once)",
            got.len(),
            want.len()
        );
        let (inbox, archive) = match mode {
            ImapMode::Keep => (msgs.len(), 0),
            ImapMode::Delete => (0, 0),
            ImapMode::MoveTo => (0, msgs.len()),
        };
        assert_eq!(
            (dc.message_count(), dc.count_in("Archive")),
            (inbox, archive),
            "{what}: point {n}: (INBOX, Archive) on the server"
        );
        if dest == Dest::Maildir {
            assert!(
                tmp_files(&env.maildir()).is_empty(),
                "{what}: point {n}: stray tmp files"
            );
        }
    }
    eprintln!("{what}: {points} crash points, {crashed} crashed runs, all recovered");
    assert!(
        crashed * 2 > points,
        "most points must really crash ({crashed} of {points})"
    );
}

#[test]
fn imap_keep_into_maildir() {
    sweep_imap(ImapMode::Keep, Dest::Maildir);
}

#[test]
fn imap_delete_into_maildir() {
    sweep_imap(ImapMode::Delete, Dest::Maildir);
}

#[test]
fn imap_move_to_into_maildir() {
    sweep_imap(ImapMode::MoveTo, Dest::Maildir);
}

#[test]
fn imap_delete_into_mbox() {
    sweep_imap(ImapMode::Delete, Dest::Mbox);
}

/// A flag sync cut short at any point never loses either side's change:
/// messages 1-5 read locally, 6-10 flagged on the server, 11 both; after
/// the crash and a rerun, both sides hold the merge.
#[test]
fn imap_flag_sync() {
    use std::collections::BTreeMap;
    let Some(dc) = Dovecot::start() else { return };
    assert!(
        dc.doveadm(&["mailbox", "create", "-u", &dc.user, "Archive"])
            .status
            .success()
    );
    let msgs = imap_messages();
    let subject = |m: &[u8]| -> String {
        String::from_utf8_lossy(m)
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            .unwrap()
    };
    // Sync once, then change flags on both sides.
    let prepare = |env: &Env| -> Vec<String> {
        refill(&dc, &msgs);
        let a = imap_args(&dc, env, Dest::Maildir, ImapMode::Keep);
        assert_eq!(run(env, &a, None, None).code, 0);
        for f in maildir_files(&env.maildir()) {
            let n: u32 = subject(&std::fs::read(&f).unwrap()).parse().unwrap();
            if n <= 5 || n == 11 {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                let base = name.split(":2,").next().unwrap().to_string();
                std::fs::rename(&f, env.maildir().join("cur").join(format!("{base}:2,S"))).unwrap();
            }
        }
        // UIDs change with every refill: find 6-11 by subject.
        let out = dc.doveadm(&[
            "-f",
            "tab",
            "fetch",
            "-u",
            &dc.user,
            "uid hdr.subject",
            "mailbox",
            "INBOX",
            "all",
        ]);
        for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let (uid, subj) = line.split_once('\t').unwrap();
            if matches!(subj.trim().parse::<u32>(), Ok(6..=11)) {
                dc.flags("add", "\\Flagged", "INBOX", uid);
            }
        }
        a
    };
    let expect_server = |n: u32| match n {
        1..=5 => "\\Seen",
        6..=10 => "\\Flagged",
        11 => "\\Flagged \\Seen",
        _ => "",
    };
    let expect_local = |n: u32| match n {
        1..=5 => "S",
        6..=10 => "F",
        11 => "FS",
        _ => "",
    };
    let check = |env: &Env, what: &str| {
        let server = dc.flags_by_subject("INBOX");
        let want: BTreeMap<String, String> = (1..=20u32)
            .map(|n| (n.to_string(), expect_server(n).to_string()))
            .collect();
        // Dovecot may add \Recent; compare the flags we sync.
        let server: BTreeMap<String, String> = server
            .into_iter()
            .map(|(s, f)| {
                let f: Vec<&str> = f
                    .split(' ')
                    .filter(|x| *x == "\\Seen" || *x == "\\Flagged")
                    .collect();
                (s, f.join(" "))
            })
            .collect();
        assert_eq!(server, want, "{what}: server flags");
        let files = maildir_files(&env.maildir());
        assert_eq!(files.len(), 20, "{what}");
        for f in files {
            let n: u32 = subject(&std::fs::read(&f).unwrap()).parse().unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let letters = name.split_once(":2,").map(|(_, l)| l).unwrap_or("");
            assert_eq!(letters, expect_local(n), "{what}: message {n} is {name}");
        }
    };
    let env = Env::new();
    let a = prepare(&env);
    let log = env.path().join("points");
    let out = run(&env, &a, None, Some(&log));
    assert_eq!(out.code, 0, "{out:?}");
    check(&env, "clean run");
    let points = std::fs::read_to_string(&log).unwrap().lines().count();
    let mut crashed = 0;
    for n in 1..=points {
        let env = Env::new();
        let a = prepare(&env);
        let first = run(&env, &a, Some(n), None);
        if first.code == 134 {
            crashed += 1;
        } else {
            assert_eq!(first.code, 0, "flag sync point {n}: {first:?}");
        }
        assert_eq!(run(&env, &a, None, None).code, 0, "rerun after point {n}");
        check(&env, &format!("crash at flag sync point {n}"));
    }
    eprintln!("imap flag sync: {points} crash points, {crashed} crashed runs, all recovered");
    assert!(
        crashed * 2 > points,
        "most points must really crash ({crashed} of {points})"
    );
}
