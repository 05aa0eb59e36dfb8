//! mbox, MDA and stdout destinations, run the way users run them, against
//! the scripted POP3 server: what the mbox holds when read back by another
//! program, what stays on the server, the exit status.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::Env;
use common::args::{scripted_pop3, set_option};
use common::dest::python_read_mbox;
use common::mail::{
    contains, expected_local, expected_messages, fixtures_and_corpus, large_message, lf_to_crlf,
    read_all,
};
use common::pop3server::{Pop3Server, ServerConfig, msg, numbered};

fn run(env: &Env, server: &Pop3Server, extra: &[&str]) -> common::Out {
    let mut a = scripted_pop3(server.port);
    a.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&a)
}

/// Fixtures, a large attachment and (when present) the shared corpus, as a
/// server would hold them (CRLF line ends).
fn hazards() -> Vec<(String, Vec<u8>)> {
    let mut msgs: Vec<(String, Vec<u8>)> = read_all(&fixtures_and_corpus())
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("h{i}"), lf_to_crlf(b)))
        .collect();
    msgs.push(("big".into(), large_message(1 << 20, "\r\n")));
    msgs
}

#[test]
fn mbox_reads_back_byte_exact_in_order() {
    let env = Env::new();
    let msgs = hazards();
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let mbox = env.path().join("mail.mbox");
    let out = run(&env, &server, &["--mbox", mbox.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        server.remaining().is_empty(),
        "delete mode deletes after the append"
    );
    let Some(got) = python_read_mbox(&mbox) else {
        return;
    };
    assert_eq!(got.len(), msgs.len(), "message count");
    for (i, ((from, data), (_, sent))) in got.iter().zip(&msgs).enumerate() {
        assert!(
            *data == expected_local(sent),
            "message {i} differs after reading back"
        );
        assert!(!from.is_empty(), "message {i} has a From_ line");
    }
    // The envelope sender comes from Return-Path, then From.
    let with_return_path = msgs
        .iter()
        .position(|(_, b)| b.starts_with(b"Return-Path: <alice@example.org>"))
        .expect("a fixture with a Return-Path");
    assert!(
        got[with_return_path].0.starts_with("alice@example.org "),
        "{}",
        got[with_return_path].0
    );
    let meta = std::fs::metadata(&mbox).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        !mbox.with_extension("mbox.lock").exists(),
        "dotlock released"
    );
}

#[test]
fn mbox_appends_after_existing_mail_and_mboxrd_round_trips_from_lines() {
    let env = Env::new();
    let mbox = env.path().join("inbox");
    // Existing content that does not end in a blank line.
    std::fs::write(
        &mbox,
        b"From old Mon Jan  1 00:00:00 2024\nSubject: old\n\nold body\n",
    )
    .unwrap();
    let body = msg(1, &["From the start", ">From once", ">>From twice", "From"]);
    let server = Pop3Server::start(ServerConfig::default(), vec![("u1".into(), body.clone())]);
    let out = run(&env, &server, &["--mbox", mbox.to_str().unwrap(), "--keep"]);
    assert_eq!(out.code, 0, "{out:?}");
    let raw = std::fs::read(&mbox).unwrap();
    assert!(contains(
        &raw,
        b"\n>From the start\n>>From once\n>>>From twice\nFrom\n"
    ));
    let Some(got) = python_read_mbox(&mbox) else {
        return;
    };
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, b"Subject: old\n\nold body\n");
    assert_eq!(got[1].1, expected_local(&body));
}

#[test]
fn two_accounts_appending_to_one_mbox_at_once() {
    let env = Env::new();
    let mbox = env.path().join("shared.mbox");
    let a: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| {
            (
                format!("a{i}"),
                msg(i, &[&format!("account A message {i}"), "From A"]),
            )
        })
        .collect();
    let b: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| {
            (
                format!("b{i}"),
                msg(1000 + i, &[&format!("account B message {i}")]),
            )
        })
        .collect();
    let sa = Pop3Server::start(ServerConfig::default(), a.clone());
    let sb = Pop3Server::start(
        ServerConfig {
            user: "other".into(),
            ..Default::default()
        },
        b.clone(),
    );
    let spawn = |port: u16, user: &str| {
        let mut args = scripted_pop3(port);
        set_option(&mut args, "-u", user);
        args.extend(["--mbox".into(), mbox.to_string_lossy().into_owned()]);
        env.run_in_thread(&args)
    };
    let ta = spawn(sa.port, "tester");
    let tb = spawn(sb.port, "other");
    let (oa, ob) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!(oa.code, 0, "{oa:?}");
    assert_eq!(ob.code, 0, "{ob:?}");
    let Some(got) = python_read_mbox(&mbox) else {
        return;
    };
    let mut got: Vec<Vec<u8>> = got.into_iter().map(|(_, d)| d).collect();
    got.sort();
    let want = expected_messages(&[a, b].concat());
    assert_eq!(got.len(), 300);
    assert!(got == want, "every message exactly once");
}

#[test]
fn a_foreign_lock_makes_fetch_wait_then_fail_cleanly() {
    let env = Env::new();
    let mbox = env.path().join("locked.mbox");
    std::fs::write(&mbox, b"").unwrap();
    // A dotlock held by a live process (this test).
    std::fs::write(
        env.path().join("locked.mbox.lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let server = Pop3Server::start(ServerConfig::default(), vec![("u1".into(), msg(1, &["x"]))]);
    let out = run(
        &env,
        &server,
        &["--mbox", mbox.to_str().unwrap(), "--timeout", "2"],
    );
    out.assert_exit(75, "locked.mbox.lock");
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "it waited: {:?}",
        out.elapsed
    );
    assert!(out.elapsed < Duration::from_secs(6), "{:?}", out.elapsed);
    assert_eq!(std::fs::read(&mbox).unwrap(), b"", "nothing written");
    assert_eq!(server.remaining().len(), 1, "nothing deleted");
    // Once the lock is gone, the next run delivers.
    std::fs::remove_file(env.path().join("locked.mbox.lock")).unwrap();
    let out = run(&env, &server, &["--mbox", mbox.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty());
}

#[test]
fn mda_exit_status_decides() {
    let env = Env::new();
    let msgs = numbered(3, &["hi"]);
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    // A refusing MDA (procmail's "try later"): exit 74, nothing deleted.
    let out = run(&env, &server, &["--mda", "sh -c 'cat >/dev/null; exit 75'"]);
    out.assert_exit(74, "MDA");
    assert_eq!(server.remaining().len(), 3);

    // An accepting MDA that files by envelope sender (%F) and user (%T).
    let dir = env.path().join("delivered");
    std::fs::create_dir(&dir).unwrap();
    let cmd = format!("sh -c 'cat > \"$1\"' mda {}/%T-%F-$$", dir.display());
    let out = run(&env, &server, &["--mda", &cmd]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty());
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    // "$$" is shell syntax: the whole command ran under sh -c, so every
    // message went to a file named after the same shell pid or another.
    assert!(!files.is_empty());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("tester-sender"), "{name}");
    }
    let mut all = Vec::new();
    for f in &files {
        all.extend(std::fs::read(f).unwrap());
    }
    for (_, m) in &msgs {
        assert!(contains(&all, &expected_local(m)));
    }
}

/// What the documentation promises of an MDA: exit status 0 is what counts,
/// so one that delivers and then fails gets the message again next run.
#[test]
fn an_mda_that_delivers_then_fails_gets_the_message_again() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), numbered(1, &["once"]));
    let got = env.path().join("got");
    let deliver = |status: u8| format!("sh -c 'cat >> {}; exit {status}'", got.display());
    let out = run(&env, &server, &["--mda", &deliver(1)]);
    out.assert_exit(74, "MDA");
    assert_eq!(server.remaining().len(), 1, "nothing deleted");
    let once = std::fs::read(&got).unwrap();
    assert!(!once.is_empty());
    let out = run(&env, &server, &["--mda", &deliver(0)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty());
    assert_eq!(std::fs::read(&got).unwrap(), [once.clone(), once].concat());
}

#[test]
fn mda_without_shell_syntax_runs_without_a_shell() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), vec![("u1".into(), msg(1, &["x"]))]);
    let out_file = env.path().join("out.eml");
    // `tee FILE` (no shell syntax): argv is split, the message reaches FILE,
    // and tee's own stdout copy goes to our stderr, never our stdout.
    let cmd = format!("tee {}", out_file.display());
    let out = run(&env, &server, &["--mda", &cmd]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "", "the MDA's output must not reach our stdout");
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        expected_local(&msg(1, &["x"]))
    );
}

#[test]
fn stdout_streams_mboxrd_and_keeps_mail_unless_told() {
    let env = Env::new();
    let msgs = numbered(3, &["From inside"]);
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let out = run(&env, &server, &["--stdout"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout.matches("\nFrom sender").count() + 1,
        3,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\n>From inside\n"));
    assert_eq!(
        server.remaining().len(),
        3,
        "a pipe never deletes by default"
    );
    // Written once: the next run has nothing new.
    let out = run(&env, &server, &["--stdout"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    // With the explicit flag the server copies go.
    let env = Env::new();
    let out = run(&env, &server, &["--stdout", "--delete-after-stdout"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty());
    // Reading it back as an mbox gives the messages.
    let path = env.path().join("captured");
    std::fs::write(&path, out.stdout.as_bytes()).unwrap();
    if let Some(got) = python_read_mbox(&path) {
        let got: Vec<Vec<u8>> = got.into_iter().map(|(_, d)| d).collect();
        let want: Vec<Vec<u8>> = msgs.iter().map(|(_, m)| expected_local(m)).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn a_closed_pipe_stops_cleanly_with_no_server_change() {
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = (1..=400)
        .map(|i| (format!("u{i}"), large_message(8 << 10, "\r\n")))
        .collect();
    let server = Pop3Server::start(ServerConfig::default(), msgs);
    let mut args = scripted_pop3(server.port);
    args.extend(["--stdout".into(), "--delete-after-stdout".into()]);
    let mut child = env
        .cmd()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 100`: read a little, then close the pipe.
    let mut first = [0u8; 100];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(first.starts_with(b"From "));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "a closed pipe is not an error");
    assert_eq!(server.remaining().len(), 400, "no QUIT, so nothing deleted");
}

#[test]
fn one_destination_only() {
    let env = Env::new();
    let out = env.run(&["--pop3", "h", "--maildir", "/tmp/x", "--mbox", "/tmp/y"]);
    assert_eq!(out.code, 64, "{out:?}");
    let out = env.run(&[
        "--pop3",
        "h",
        "--maildir",
        "/tmp/x",
        "--delete-after-stdout",
    ]);
    assert_eq!(out.code, 64, "{out:?}");
}

#[test]
fn mbox_in_a_missing_directory_is_cant_create() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), vec![("u1".into(), msg(1, &["x"]))]);
    let p = env.path().join("no/such/dir/mbox");
    let out = run(&env, &server, &["--mbox", p.to_str().unwrap()]);
    assert_eq!(out.code, 73, "{out:?}");
    assert_eq!(server.remaining().len(), 1);
}
