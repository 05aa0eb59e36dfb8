//! `fetch --imap` against a real Dovecot started for the test: byte-exact
//! delivery into Maildir folders, incremental runs, two-way flag sync,
//! UIDVALIDITY changes, delete/move. Without Dovecot these skip with a
//! printed reason, unless FETCH_REQUIRE lists dovecot (see
//! tests/common/require.rs).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::args::dovecot;
use common::dest::{Dest, maildir_files, maildir_messages};
use common::dovecot::{Dovecot, imap_body};
use common::mail::{fixture_files, fixtures_and_corpus, large_message, lf, read_all, sorted};
use common::require::{program_missing, require};
use common::spawned::Spawned;
use common::{Env, json_events, run_bounded};

/// What a stored message looks like in our Maildir after IMAP.
fn expected(stored: &[Vec<u8>]) -> Vec<Vec<u8>> {
    sorted(stored.iter().map(|m| lf(&imap_body(m))).collect())
}

/// A few lines from a@b.example, with the subject `i`.
fn short_message(i: usize) -> Vec<u8> {
    format!("From: a@b.example\nSubject: {i}\n\nbody {i}\n").into_bytes()
}

/// Messages 1 to `n`, each a [`short_message`].
fn short_messages(n: usize) -> Vec<Vec<u8>> {
    (1..=n).map(short_message).collect()
}

fn hazards() -> Vec<Vec<u8>> {
    let mut v = read_all(&fixtures_and_corpus());
    // Larger than a FETCH command's byte bound (4 MiB): a command of its own.
    v.push(large_message(5 << 20, "\n"));
    v
}

/// Create `folder` on the server and put `msgs` into it byte for byte.
fn fill_folder(dc: &Dovecot, folder: &str, msgs: &[Vec<u8>]) {
    let out = dc.doveadm(&["mailbox", "create", "-u", &dc.user, folder]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for m in msgs {
        add_to_folder(dc, folder, m);
    }
}

/// Deliver `msg` into an existing `folder` on the server, byte for byte.
fn add_to_folder(dc: &Dovecot, folder: &str, msg: &[u8]) {
    let out = dc.doveadm(&["mailbox", "path", "-u", &dc.user, folder]);
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let owner = std::fs::metadata(dc.server_maildir.join("new")).unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        let _ = std::os::unix::fs::chown(dir.join(sub), Some(owner.uid()), Some(owner.gid()));
    }
    static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let i = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("{}.M{i}P1.fill", 1_700_000_000 + i);
    let tmp = dir.join("tmp").join(&name);
    std::fs::write(&tmp, msg).unwrap();
    let _ = std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid()));
    std::fs::rename(&tmp, dir.join("new").join(&name)).unwrap();
}

/// `fetch --imap` over implicit TLS into the test's Maildir, with `extra`.
fn args(env: &Env, dc: &Dovecot, extra: &[&str]) -> Vec<String> {
    let mut a = dovecot(dc, "imap", "implicit");
    a.extend(Dest::Maildir.args(env));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn fetch(env: &Env, dc: &Dovecot, extra: &[&str]) -> common::Out {
    env.run_args(&args(env, dc, extra))
}

fn flags_of(dc: &Dovecot, folder: &str, uid: u32) -> String {
    let out = dc.doveadm(&[
        "fetch",
        "-u",
        &dc.user,
        "flags",
        "mailbox",
        folder,
        "uid",
        &uid.to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn only_file(dir: &Path) -> PathBuf {
    let f = maildir_files(dir);
    assert_eq!(f.len(), 1, "{f:?}");
    f[0].clone()
}

#[test]
fn inbox_and_a_non_ascii_folder_arrive_byte_exact_then_a_rerun_fetches_nothing() {
    let Some(dc) = Dovecot::start() else { return };
    let inbox = hazards();
    dc.fill(&inbox);
    let sub = read_all(&fixture_files());
    fill_folder(&dc, "Archiv.Grüße", &sub);

    let env = Env::new();
    let out = fetch(
        &env,
        &dc,
        &["--folder", "INBOX", "--folder", "Archiv.Grüße"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "silent on success");
    let got = maildir_messages(&env.maildir());
    let want = expected(&inbox);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(g == w, "an INBOX message differs");
    }
    let subdir = env.maildir().join(".Archiv.Grüße");
    assert!(subdir.join("maildirfolder").exists());
    assert_eq!(maildir_messages(&subdir), expected(&sub));
    assert_eq!(
        dc.message_count(),
        inbox.len(),
        "IMAP keeps mail on the server"
    );

    let out = fetch(
        &env,
        &dc,
        &["--folder", "INBOX", "--folder", "Archiv.Grüße", "-vv"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("BODY.PEEK"),
        "no body fetched: {}",
        out.stderr
    );
    assert!(out.stderr.contains(": 0 new messages"), "{}", out.stderr);
    assert_eq!(maildir_files(&env.maildir()).len(), inbox.len());

    // --all-folders finds both folders (the ledger already has them all).
    let out = fetch(&env, &dc, &["--all-folders", "-v"]);
    out.assert_exit(0, ": 0 new messages");
}

#[test]
fn flags_sync_both_ways() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(3);
    dc.fill(&msgs);
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    assert_eq!(
        std::fs::read_dir(env.maildir().join("new"))
            .unwrap()
            .count(),
        3
    );

    // Server -> local.
    dc.flags("add", "\\Seen", "INBOX", "1");
    dc.flags("add", "\\Flagged \\Answered", "INBOX", "2");
    let out = fetch(&env, &dc, &["-v"]);
    out.assert_exit(0, "2 flags synced");
    let names: Vec<String> = maildir_files(&env.maildir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(":2,S")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(":2,FR")), "{names:?}");
    assert_eq!(
        std::fs::read_dir(env.maildir().join("new"))
            .unwrap()
            .count(),
        1
    );

    // Runs with nothing new on either side record that the Maildir is
    // unchanged (and then skip scanning it); a later rename must still count.
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let out = fetch(&env, &dc, &["-vv"]);
    // (The new mail's metadata, asked for with the SELECT, names FLAGS
    // too: the flag sync's own query is "(UID FLAGS)".)
    assert!(
        !out.stderr.contains("(UID FLAGS)"),
        "nothing to ask the server: {}",
        out.stderr
    );

    // Local -> server: a mail reader marks the third one read.
    let third = maildir_files(&env.maildir())
        .into_iter()
        .find(|p| p.parent().unwrap().ends_with("new"))
        .unwrap();
    let name = third.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::rename(
        &third,
        env.maildir().join("cur").join(format!("{name}:2,S")),
    )
    .unwrap();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    assert!(
        flags_of(&dc, "INBOX", 3).contains("\\Seen"),
        "{}",
        flags_of(&dc, "INBOX", 3)
    );

    // Removed on the server -> removed locally.
    dc.flags("remove", "\\Seen", "INBOX", "1");
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let names: Vec<String> = maildir_files(&env.maildir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(":2,S")).count(),
        1,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.ends_with(":2,")), "{names:?}");
}

/// Whether a run of fetch (as [`fetch`] would run it) lists the Maildir's
/// `cur/` directory; None without strace.
fn lists_cur(env: &Env, dc: &Dovecot) -> Option<bool> {
    if !require("strace", program_missing("strace", &["-V"])) {
        return None;
    }
    let log = env.path().join("openat.log");
    let log_s = log.to_string_lossy();
    let mut c = env.cmd_wrapped(&["strace", "-f", "-qq", "-e", "trace=openat", "-o", &log_s]);
    c.args(args(env, dc, &[]));
    let out = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{out:?}");
    let cur = format!("{}\"", env.maildir().join("cur").display());
    let text = std::fs::read_to_string(&log).unwrap();
    Some(
        text.lines()
            .any(|l| l.contains(&cur) && l.contains("O_DIRECTORY")),
    )
}

#[test]
fn a_run_after_one_that_delivered_does_not_rescan_and_flags_still_sync() {
    let Some(dc) = Dovecot::start() else { return };
    dc.fill(&short_messages(2));
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    assert_eq!(fetch(&env, &dc, &[]).code, 0);

    // A run that delivers into new/ only leaves a stamp the next run trusts.
    dc.fill(&[short_message(3)]);
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    if let Some(listed) = lists_cur(&env, &dc) {
        assert!(!listed, "the run after a delivery listed cur/ again");
    }

    // A mail reader's change after that still counts ...
    let first = maildir_files(&env.maildir())
        .into_iter()
        .find(|p| p.parent().unwrap().ends_with("new"))
        .unwrap();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::rename(
        &first,
        env.maildir().join("cur").join(format!("{name}:2,S")),
    )
    .unwrap();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let seen: Vec<u32> = (1..=3)
        .filter(|&u| flags_of(&dc, "INBOX", u).contains("\\Seen"))
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");

    // ... and so does one made before a run that also delivers.
    let another = maildir_files(&env.maildir())
        .into_iter()
        .find(|p| p.parent().unwrap().ends_with("new"))
        .unwrap();
    let name = another.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::rename(
        &another,
        env.maildir().join("cur").join(format!("{name}:2,F")),
    )
    .unwrap();
    dc.fill(&[short_message(4)]);
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let flagged: Vec<u32> = (1..=4)
        .filter(|&u| flags_of(&dc, "INBOX", u).contains("\\Flagged"))
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 4);

    // A server-side change after a delivering run reaches the Maildir.
    dc.fill(&[short_message(5)]);
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    dc.flags("add", "\\Answered", "INBOX", "5");
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let names: Vec<String> = maildir_files(&env.maildir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(":2,R")), "{names:?}");
}

#[test]
fn a_changed_uidvalidity_stops_the_folder_and_resync_does_not_duplicate() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = read_all(&fixture_files());
    dc.fill(&msgs);
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let before = maildir_messages(&env.maildir());
    assert!(
        dc.doveadm(&[
            "mailbox",
            "update",
            "-u",
            &dc.user,
            "--uid-validity",
            "777",
            "INBOX"
        ])
        .status
        .success()
    );

    let out = fetch(&env, &dc, &[]);
    out.assert_exit(65, "UIDVALIDITY changed");
    assert!(out.stderr.contains("--resync"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(maildir_messages(&env.maildir()), before);

    // New mail arrived meanwhile; --resync fetches only that.
    dc.fill(&[b"From: new@example.org\nSubject: new\n\nnew\n"]);
    let out = fetch(&env, &dc, &["--resync", "-v"]);
    out.assert_exit(0, ": 1 new message");
    assert_eq!(
        maildir_files(&env.maildir()).len(),
        msgs.len() + 1,
        "no duplicates"
    );
    let out = fetch(&env, &dc, &["-v"]);
    out.assert_exit(0, ": 0 new messages");
}

#[test]
fn delete_and_move_to_change_the_server_only_after_delivery() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(5);
    dc.fill(&msgs);
    let env = Env::new();
    let out = fetch(&env, &dc, &["--move-to", "Archive"]);
    assert_ne!(
        out.code, 0,
        "moving into a folder that does not exist fails: {out:?}"
    );
    assert!(
        dc.doveadm(&["mailbox", "create", "-u", &dc.user, "Archive"])
            .status
            .success()
    );
    let env = Env::new();
    let out = fetch(&env, &dc, &["--move-to", "Archive", "-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 5);
    assert_eq!(dc.message_count(), 0, "INBOX is empty");
    let out = dc.doveadm(&["search", "-u", &dc.user, "mailbox", "Archive", "all"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);

    dc.fill(&msgs[..2]);
    let env2 = Env::new();
    let out = fetch(&env2, &dc, &["--delete"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        maildir_files(&env2.maildir()).len(),
        2,
        "local copies intact"
    );
    assert_eq!(dc.message_count(), 0);
}

#[test]
fn search_starttls_and_mbox_with_status_headers() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(4);
    dc.fill(&msgs);
    dc.flags("add", "\\Seen", "INBOX", "1:2");
    let env = Env::new();
    let mbox = env.path().join("in.mbox");
    let search = |what: &str| {
        let mut a = dovecot(&dc, "imap", "starttls");
        a.extend(["--mbox", mbox.to_str().unwrap(), "--search", what].map(String::from));
        env.run_args(&a)
    };
    let out = search("UNSEEN");
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        text.matches("\nSubject: ").count(),
        2,
        "only the unseen ones: {text}"
    );
    assert!(text.contains("Subject: 3") && text.contains("Subject: 4"));
    assert!(
        !text.contains("Status: RO"),
        "unseen mail has no Status: RO"
    );
    // And a seen one, into the mbox with its Status header.
    let out = search("SEEN");
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(text.matches("Status: RO\n").count(), 2, "{text}");
}

#[test]
fn a_50_mb_message_arrives_in_bounded_memory() {
    let Some(dc) = Dovecot::start() else { return };
    let big = large_message(38 << 20, "\n");
    assert!(big.len() > 50_000_000);
    dc.fill(&[&big]);
    let env = Env::new();
    let out = fetch(&env, &dc, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let file = only_file(&env.maildir());
    assert!(
        std::fs::read(file).unwrap() == lf(&imap_body(&big)),
        "content differs"
    );
    assert!(out.max_rss_kb > 0, "no memory reading was taken");
    assert!(
        out.max_rss_kb < 32 * 1024,
        "peak RSS {} KiB",
        out.max_rss_kb
    );
    eprintln!(
        "IMAP, {} byte message: peak RSS {} KiB",
        big.len(),
        out.max_rss_kb
    );
}

#[test]
fn mail_added_during_a_run_is_fetched_by_the_next_run_once() {
    let Some(dc) = Dovecot::start() else { return };
    let first: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            format!(
                "From: a@b.example\nSubject: first {i}\n\n{}\n",
                "x".repeat(2000)
            )
            .into_bytes()
        })
        .collect();
    dc.fill(&first);
    let env = Env::new();
    let running = env.run_in_thread(&args(&env, &dc, &[]));
    let late: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("From: a@b.example\nSubject: late {i}\n\nlate\n").into_bytes())
        .collect();
    for m in &late {
        dc.fill(&[m]);
    }
    let out = running.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let out = fetch(&env, &dc, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let all: Vec<Vec<u8>> = first.iter().chain(&late).cloned().collect();
    assert_eq!(
        maildir_messages(&env.maildir()),
        expected(&all),
        "every message exactly once"
    );
}

#[test]
fn deletions_propagate_only_with_sync_deletes() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(4);
    dc.fill(&msgs);
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    // Without --sync-deletes: a local delete stays local, a server expunge
    // stays on the server side.
    let files = maildir_files(&env.maildir());
    std::fs::remove_file(&files[0]).unwrap();
    assert!(
        dc.doveadm(&["expunge", "-u", &dc.user, "mailbox", "INBOX", "uid", "4"])
            .status
            .success()
    );
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    assert_eq!(
        dc.message_count(),
        3,
        "the local delete did not reach the server"
    );
    assert_eq!(
        maildir_files(&env.maildir()).len(),
        3,
        "the server expunge did not reach us"
    );

    // With it: both ways.
    let env = Env::new();
    dc.fill(&msgs[..1]);
    assert_eq!(fetch(&env, &dc, &["--sync-deletes"]).code, 0);
    assert_eq!(maildir_files(&env.maildir()).len(), 4);
    let files = maildir_files(&env.maildir());
    std::fs::remove_file(&files[0]).unwrap();
    assert!(
        dc.doveadm(&["expunge", "-u", &dc.user, "mailbox", "INBOX", "uid", "5"])
            .status
            .success()
    );
    let out = fetch(&env, &dc, &["--sync-deletes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        dc.message_count(),
        2,
        "local delete expunged on the server (and uid 5 by doveadm)"
    );
    assert_eq!(
        maildir_files(&env.maildir()).len(),
        2,
        "server expunge removed locally"
    );
}

#[test]
fn check_counts_new_imap_mail_and_changes_nothing() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(3);
    dc.fill(&msgs);
    let env = Env::new();
    let out = fetch(&env, &dc, &["--check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.ends_with(": 3 new\n"), "{}", out.stdout);
    assert!(!env.maildir().exists());
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    let out = fetch(&env, &dc, &["--check", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let ev = json_events(&out).pop().unwrap();
    assert_eq!(ev["new"], 0);
}

#[test]
fn dry_run_reports_fetches_flags_and_deletes_and_changes_nothing() {
    let Some(dc) = Dovecot::start() else { return };
    let msgs = short_messages(3);
    dc.fill(&msgs[..2]);
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, &[]).code, 0);
    // One new message; UID 1 read locally; UID 2 flagged on the server.
    dc.fill(&msgs[2..]);
    let f = maildir_files(&env.maildir());
    let one = f
        .iter()
        .find(|p| std::fs::read(p).unwrap() == lf(&msgs[0]))
        .unwrap()
        .clone();
    let read = env.maildir().join("cur").join(format!(
        "{}:2,S",
        one.file_name().unwrap().to_string_lossy()
    ));
    std::fs::rename(&one, &read).unwrap();
    dc.flags("add", "\\Flagged", "INBOX", "2");
    let before = sorted(
        maildir_files(&env.maildir())
            .iter()
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .collect(),
    );

    let out = fetch(&env, &dc, &["--dry-run", "-vv"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains("would fetch INBOX UID 3"), "{}", lines[0]);
    assert!(
        lines[1].contains("flags of INBOX UID 1: add (\\Seen) on the server"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("flags of INBOX UID 2: rename the local file to")
            && lines[2].ends_with(":2,F"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("would fetch 1 message(s)") && lines[3].contains("flags of 2"));
    // Nothing changed: EXAMINE, no STORE; the same files; the server's flags.
    assert!(out.stderr.contains("EXAMINE INBOX"), "{}", out.stderr);
    assert!(!out.stderr.contains("UID STORE"), "{}", out.stderr);
    let after = sorted(
        maildir_files(&env.maildir())
            .iter()
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .collect(),
    );
    assert_eq!(before, after);
    assert!(!flags_of(&dc, "INBOX", 1).contains("\\Seen"));

    // With --delete: every message in the folder, delivered or not.
    let out = fetch(&env, &dc, &["--dry-run", "--delete", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let deletes = json_events(&out)
        .into_iter()
        .filter(|e| e["action"] == "would_delete")
        .count();
    assert_eq!(deletes, 3);
    // Every kind of dry-run event is as documented: flags, a move.
    for extra in [&[][..], &["--move-to", "Archive"][..]] {
        let mut args = vec!["--dry-run", "--json"];
        args.extend_from_slice(extra);
        let out = fetch(&env, &dc, &args);
        assert_eq!(out.code, 0, "{out:?}");
        let ev = json_events(&out);
        let want = if extra.is_empty() {
            "would_flag"
        } else {
            "would_move"
        };
        assert!(ev.iter().any(|e| e["action"] == want), "{}", out.stdout);
    }
    assert_eq!(
        dc.doveadm(&["search", "-u", &dc.user, "mailbox", "INBOX", "all"])
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        3
    );

    // The real run then does what the dry run said.
    let out = fetch(&env, &dc, &["-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("1 new message") && out.stderr.contains("2 flags synced"),
        "{}",
        out.stderr
    );
    assert!(flags_of(&dc, "INBOX", 1).contains("\\Seen"));
}

/// Messages in the Maildir root and its `.Lists` folder.
fn count_all(env: &Env) -> usize {
    maildir_files(&env.maildir()).len() + maildir_files(&env.maildir().join(".Lists")).len()
}

/// Wait (bounded) until the Maildir and its folders hold `n` messages.
fn wait_for_messages(env: &Env, n: usize, child: &mut Spawned) {
    child.wait_until(&format!("{n} messages"), Duration::from_secs(10), || {
        count_all(env) >= n
    });
}

#[test]
fn idle_fetches_new_mail_in_every_folder_at_once_and_survives_a_kick() {
    let Some(dc) = Dovecot::start() else { return };
    dc.fill(&[b"Subject: 1\n\none\n"]);
    fill_folder(&dc, "Lists", &[b"Subject: 2\n\ntwo\n".to_vec()]);
    let env = Env::new();
    // Polling once an hour: only IDLE can bring mail within seconds.
    let mut child = env.spawn(&args(
        &env,
        &dc,
        &[
            "-v", "--idle", "--daemon", "3600", "--folder", "INBOX", "--folder", "Lists",
        ],
    ));
    wait_for_messages(&env, 2, &mut child);
    // New mail in each folder, once the watchers are idling.
    std::thread::sleep(Duration::from_millis(500));
    dc.fill(&[b"Subject: 3\n\nthree\n"]);
    wait_for_messages(&env, 3, &mut child);
    add_to_folder(&dc, "Lists", b"Subject: 4\n\nfour\n");
    wait_for_messages(&env, 4, &mut child);

    // The server drops every connection: the watchers reconnect, and mail
    // that came meanwhile still arrives without waiting for the poll.
    assert!(dc.doveadm(&["kick", &dc.user]).status.success());
    dc.fill(&[b"Subject: 5\n\nfive\n"]);
    wait_for_messages(&env, 5, &mut child);

    let exit = child.stop(Duration::from_secs(10));
    assert_eq!(exit.code, 0, "{}", exit.stderr);
    assert!(exit.stderr.contains("reconnecting"), "{}", exit.stderr);
    // Each message once, in its folder.
    let subjects = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = maildir_messages(dir)
            .iter()
            .map(|m| {
                String::from_utf8_lossy(m)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        subjects(&env.maildir()),
        ["Subject: 1", "Subject: 3", "Subject: 5"]
    );
    assert_eq!(
        subjects(&env.maildir().join(".Lists")),
        ["Subject: 2", "Subject: 4"]
    );
}
