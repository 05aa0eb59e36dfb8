//! Switching from fetchmail, against the real fetchmail (Debian's) and a
//! private Dovecot: the same run control file run by fetchmail and, after
//! `--import-fetchmailrc`, by fetch delivers the same messages; after
//! `--import-uidls` from the `.fetchids` fetchmail wrote, fetch fetches
//! none of what fetchmail fetched, and all that is new.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::dovecot::{Dovecot, run_limited};
use common::mail::sorted;
use common::require::{program_missing, require};
use common::{Env, run_bounded};

/// A message fetchmail passes on unchanged (full addresses, nothing for
/// its header rewriting to touch).
fn message(n: usize) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: message {n}\n\
         Message-ID: <{n}.migration@example.org>\n\nbody of message {n}\n"
    )
    .into_bytes()
}

/// The MDA both programs run: each message into a file of its own in
/// $DEST (fetchmail hands its MDA LF line ends, as fetch does).
fn write_mda(dir: &Path) -> PathBuf {
    let p = dir.join("deliver");
    std::fs::write(
        &p,
        "#!/bin/sh\nf=$(mktemp \"$DEST/msg.XXXXXXXX\") && cat > \"$f\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

/// fetchmail, run once in the foreground with every file it keeps in
/// `home` (its rc, ids and pid files named on its command line; HOME and
/// FETCHMAILHOME pointing there), delivering into `dest`. As root it only
/// warns; the rc file is ours and mode 0600, as it insists.
fn run_fetchmail(home: &Path, rc: &Path, dest: &Path) -> String {
    let mut cmd = Command::new("fetchmail");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("FETCHMAILHOME", home)
        .env("DEST", dest)
        .current_dir(home)
        .arg("--fetchmailrc")
        .arg(rc)
        .arg("--idfile")
        .arg(home.join(".fetchids"))
        .arg("--pidfile")
        .arg(home.join("fetchmail.pid"))
        .args(["--nosyslog", "--nodetach"]);
    let out = run_limited(cmd, Duration::from_secs(60)).expect("fetchmail runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fetchmail failed: {text}");
    text
}

#[test]
fn fetchmail_then_fetch_same_messages_and_no_refetch_after_import() {
    if !require("fetchmail", program_missing("fetchmail", &["--version"])) {
        return;
    }
    let Some(dc) = Dovecot::start() else { return };
    dc.fill(&(1..=4).map(message).collect::<Vec<_>>());
    let env = Env::new();
    let home = env.path().join("fetchmail-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mda = write_mda(env.path());
    // As a fetchmail user would write it: POP3 over TLS, the certificate
    // checked against a CA file, mail left on the server, an MDA. The
    // certificate names localhost, which fetchmail checks by DNS name.
    // `set invisible` keeps fetchmail from adding its Received header.
    let rc = home.join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set invisible\n\
             poll localhost with proto pop3 port {}:\n  \
             user \"{}\" there with password \"{}\" is tester here\n  \
             ssl sslcertck sslcertfile \"{}\" keep\n  \
             mda \"{} %T\"\n",
            dc.pop3s_port,
            dc.user,
            dc.password,
            dc.cafile.display(),
            mda.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();

    let fm_out = env.path().join("by-fetchmail");
    std::fs::create_dir(&fm_out).unwrap();
    let log = run_fetchmail(&home, &rc, &fm_out);
    let by_fetchmail = files_in(&fm_out);
    assert_eq!(by_fetchmail.len(), 4, "{log}");
    assert_eq!(
        by_fetchmail,
        sorted((1..=4).map(message).collect()),
        "{log}"
    );
    let ids = std::fs::read_to_string(home.join(".fetchids")).unwrap();
    assert_eq!(ids.lines().count(), 4, "{ids}");

    // The rc file as fetch's config: no password in it, and it loads.
    let out = env.run(&["--import-fetchmailrc", &rc.to_string_lossy()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains(&dc.password), "{}", out.stdout);
    assert!(
        out.stderr.contains("password of 1 account"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("password_command"), "{}", out.stdout);
    common::config::write_config(&env, &out.stdout, 0o644);
    let password = format!("cat {}", dc.password_file.display());

    // 1. From scratch, fetch delivers what fetchmail delivered.
    let fetch_out = env.path().join("by-fetch");
    std::fs::create_dir(&fetch_out).unwrap();
    let run = |dest: &Path, args: &[&str]| {
        let mut c = env.cmd();
        c.env("DEST", dest).args(args);
        run_bounded(c, Duration::from_secs(60))
    };
    let out = run(&fetch_out, &["localhost", "--password-command", &password]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(files_in(&fetch_out), by_fetchmail);

    // 2. A fresh ledger seeded from fetchmail's .fetchids: nothing old
    // comes again, everything new does.
    std::fs::remove_dir_all(env.state_dir()).unwrap();
    std::fs::create_dir(env.state_dir()).unwrap();
    let ids_path = home.join(".fetchids").to_string_lossy().into_owned();
    let out = env.run(&["--import-uidls", &ids_path, "localhost"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("4 message(s) recorded"),
        "{}",
        out.stderr
    );
    let again = env.run(&["--import-uidls", &ids_path, "localhost"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stderr.contains("0 message(s) recorded")
            && again.stderr.contains("4 recorded already"),
        "{}",
        again.stderr
    );
    dc.fill(&(5..=6).map(message).collect::<Vec<_>>());
    let after = env.path().join("after-import");
    std::fs::create_dir(&after).unwrap();
    let out = run(&after, &["localhost", "--password-command", &password]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(files_in(&after), sorted((5..=6).map(message).collect()));
    assert_eq!(dc.message_count(), 6, "keep: all stay on the server");

    // fetchmail, run again, agrees on what is new.
    let fm_again = env.path().join("by-fetchmail-again");
    std::fs::create_dir(&fm_again).unwrap();
    run_fetchmail(&home, &rc, &fm_again);
    assert_eq!(files_in(&fm_again), files_in(&after));
}
