//! `--import-fetchmailrc` and `--import-uidls` through the binary, on rc
//! files of our own modelled on fetchmail's documentation: the config
//! printed loads in fetch and says what it means; passwords never appear;
//! syntax errors are exit 65 with file and line; UIDL files seed the
//! ledger so that a run fetches only what the old program did not.

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use common::config::{account, write_config};
use common::dest::maildir_files;
use common::pop3server::account_server;
use fetch::cli::Cli;
use fetch::config::{Account, resolve};
use fetch::types::{Destination, MailServer, Protocol, TlsMode};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fetchmailrc")
        .join(name)
}

fn import_rc(env: &Env, name: &str) -> common::Out {
    env.run(&["--import-fetchmailrc", &fixture(name).to_string_lossy()])
}

/// The accounts fetch makes of config `text`, as a run would resolve them.
fn load(env: &Env, text: &str) -> Vec<Account> {
    let path = env.path().join("imported.toml");
    std::fs::write(&path, text).unwrap();
    let cli = <Cli as clap::Parser>::try_parse_from(["fetch", "--config", &path.to_string_lossy()])
        .unwrap();
    resolve(&cli)
        .unwrap_or_else(|e| panic!("the imported config does not load: {e}\n{text}"))
        .accounts
}

#[test]
fn an_rc_with_mdas_becomes_a_config_that_loads_as_meant() {
    let env = Env::new();
    let out = import_rc(&env, "mda.rc");
    assert_eq!(out.code, 0, "{out:?}");
    for secret in ["s3cr3t!", "passw0rd", "pa\\x73sw0rd"] {
        assert!(
            !out.stdout.contains(secret),
            "{secret} leaked:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stderr.contains("password of 2 account(s)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("run `fetch\n# --daemon 600`") || out.stdout.contains("--daemon 600")
    );
    let accts = load(&env, &out.stdout);
    assert_eq!(accts.len(), 3, "{}", out.stdout);

    let a = &accts[0];
    assert_eq!(a.name, "pop.provider.net");
    assert_eq!(
        (a.protocol, a.host.as_str(), a.port),
        (Protocol::Pop3, "pop.provider.net", 995)
    );
    assert_eq!((a.user.as_str(), a.tls), ("jsmith", TlsMode::Implicit));
    assert!(a.keep && a.all);
    assert_eq!((a.max_size, a.limit), (Some(5_000_000), Some(100)));
    assert_eq!(a.timeout.as_secs(), 120, "from defaults");
    assert_eq!(
        a.dest,
        Destination::Mda("/usr/bin/procmail -d smith".into()),
        "%T is the local name"
    );
    assert_eq!(a.fingerprint.unwrap()[..3], [0x00, 0x11, 0x22]);

    let b = &accts[1];
    assert_eq!(
        (b.protocol, b.tls, b.port),
        (Protocol::Imap, TlsMode::Starttls, 143)
    );
    assert_eq!(b.imap.folders, ["INBOX", "Lists/rust"]);
    assert!(b.imap.delete, "fetchmail deletes IMAP mail unless keep");
    assert_eq!(
        b.imap.search.as_deref(),
        Some("UNSEEN"),
        "no fetchall: unread only"
    );
    assert_eq!(
        b.cafile.as_deref(),
        Some(Path::new("/etc/ssl/certs/ca-certificates.crt"))
    );
    assert_eq!(b.user, "jones");

    let c = &accts[2];
    assert_eq!(c.name, "work");
    assert_eq!((c.host.as_str(), c.port), ("mail.work.example", 995));
    assert_eq!(c.auth, fetch::types::AuthMethod::Apop);
    assert!(!c.keep);
    assert_eq!(c.dest, Destination::Mda("/usr/bin/maildrop".into()));
}

#[test]
fn the_man_page_rc_keeps_what_it_can_and_says_what_it_cannot() {
    let env = Env::new();
    let out = import_rc(&env, "manpage.rc");
    assert_eq!(out.code, 0, "{out:?}");
    let text = &out.stdout;
    for secret in ["secret1", "secret2", "j0e'pw"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    text.parse::<toml::Table>().expect("TOML");
    for want in [
        // fetchmail's default with no mda: SMTP to localhost.
        "smtp = \"localhost\"\ndeliver_to = \"jsmith\"\n",
        "smtp = \"mx.example.org:2525\"\ndeliver_to = \"joe\"\n",
        "lmtp = \"/var/run/dovecot/lmtp\"\n",
        "# not carried over: smtphost [\"backup.example.org\"]",
        "# not carried over: sslfingerprint (an MD5 fingerprint cannot be kept: re-pin\n# with `fetch --show-cert`",
        "# not carried over: flush (",
        "# not carried over: no sslcertck (",
        "# not carried over: plugout (",
        "# not carried over: set logfile (",
        "# password_command = \"pass show mail/pop.provider.net\"",
        "# allow_plaintext_auth = true",
        "host = \"192.0.2.17\"",
        "# not carried over: protocol pop2: fetch speaks POP3 and IMAP only\n# [accounts.\"old.example.net\"]",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The whole output loads, the SMTP and LMTP hand-offs included.
    let accts = load(&env, text);
    let names: Vec<&str> = accts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pop.provider.net",
            "mail.example.com",
            "mailhost.example.org",
            "lmtp.example.net"
        ],
        "the skipped pop2 entry is commented out"
    );
    // fetchmail's hand-offs, as fetch's destinations.
    let smtp_localhost = Destination::Smtp(MailServer::Tcp {
        host: "localhost".into(),
        port: 25,
    });
    assert!(accts.iter().any(|a| a.dest == smtp_localhost));
    assert!(
        accts
            .iter()
            .any(|a| a.dest == Destination::Lmtp(MailServer::Unix("/var/run/dovecot/lmtp".into()))),
        "{:?}",
        accts.iter().map(|a| &a.dest).collect::<Vec<_>>()
    );
    assert_eq!(accts[3].tls, TlsMode::None);
    assert!(!accts[3].allow_plaintext_auth, "only when the user says so");
}

#[test]
fn syntax_errors_are_exit_65_with_file_and_line() {
    let env = Env::new();
    let out = import_rc(&env, "syntax-error.rc");
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stderr.contains("syntax-error.rc:4: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("server option after user options"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());

    let out = env.run(&["--import-fetchmailrc", "/nonexistent/.fetchmailrc"]);
    assert_eq!(out.code, 64, "{out:?}");
    // The default is ~/.fetchmailrc.
    let out = env.run(&["--import-fetchmailrc"]);
    assert_eq!(out.code, 64, "{out:?}");
    assert!(
        out.stderr.contains(".fetchmailrc does not exist"),
        "{}",
        out.stderr
    );
    std::fs::write(
        env.home().join(".fetchmailrc"),
        "poll pop.example.org proto pop3 user joe\n",
    )
    .unwrap();
    let out = env.run(&["--import-fetchmailrc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("user = \"joe\""), "{}", out.stdout);
}

/// A config with account `a`: alice at the scripted server, keeping mail.
fn keep_account(env: &Env, port: u16) {
    let text = account(
        "a",
        port,
        "alice",
        "password_command = \"echo pa\"\nkeep = true",
        env,
    );
    write_config(env, &text, 0o644);
}

fn seed_and_fetch(ids: &str) -> (Env, common::Out, Vec<PathBuf>) {
    let env = Env::new();
    let server = account_server("alice", "pa", 4);
    keep_account(&env, server.port);
    let file = env.path().join("uidls");
    std::fs::write(&file, ids).unwrap();
    let out = env.run(&["--import-uidls", &file.to_string_lossy(), "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let run = env.run(&["a"]);
    assert_eq!(run.code, 0, "{run:?}");
    let got = maildir_files(&env.path().join("Mail-a"));
    let again = env.run(&["--import-uidls", &file.to_string_lossy(), "a"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stderr.contains(": 0 message(s) recorded"),
        "{}",
        again.stderr
    );
    (env, out, got)
}

#[test]
fn fetchids_seed_the_ledger_and_only_the_rest_is_fetched() {
    let (_env, out, got) = seed_and_fetch(
        "alice@127.0.0.1 alice-1\nALICE@127.0.0.1 alice-2\nbob@127.0.0.1 bob-1\n\
         alice@pop.example.org alice-3\n",
    );
    assert!(
        out.stderr.contains("a: 2 message(s) recorded as fetched")
            && out.stderr.contains("(fetchmail .fetchids)")
            && out
                .stderr
                .contains("2 entr(ies) for other servers or users"),
        "{}",
        out.stderr
    );
    assert_eq!(got.len(), 2, "alice-3 and alice-4 only");
    let bodies: Vec<String> = got
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| !b.contains("Subject: message 1\n") && !b.contains("Subject: message 2\n")),
        "{bodies:?}"
    );
}

#[test]
fn mpop_uidl_files_are_told_apart_and_read() {
    let (_env, out, got) = seed_and_fetch(
        "# This file was generated by mpop version 1.4.18.\n#\n 3 127.0.0.1 alice\n\
         alice-1\nalice-2\nalice-3\n 1 127.0.0.1 bob\nbob-1\n",
    );
    assert!(
        out.stderr.contains("3 message(s) recorded") && out.stderr.contains("mpop"),
        "{}",
        out.stderr
    );
    assert_eq!(got.len(), 1, "alice-4 only");
}

#[test]
fn uidl_imports_refuse_imap_bad_files_and_unnamed_accounts() {
    let env = Env::new();
    let ids = env.path().join("fetchids");
    std::fs::write(&ids, "alice@127.0.0.1 1\nnot a line\n").unwrap();
    let ids = ids.to_string_lossy().into_owned();
    let text = [
        account("p", 1, "alice", "", &env),
        account("i", 1, "alice", "protocol = \"imap\"", &env),
    ]
    .concat();
    write_config(&env, &text, 0o644);
    let out = env.run(&["--import-uidls", &ids, "p"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stderr.contains("fetchids:2: "), "{}", out.stderr);
    let out = env.run(&["--import-uidls", &ids, "i"]);
    assert_eq!(out.code, 64, "{out:?}");
    assert!(out.stderr.contains("for POP3 accounts"), "{}", out.stderr);
    let out = env.run(&["--import-uidls", &ids]);
    assert_eq!(out.code, 64, "{out:?}");
    assert!(out.stderr.contains("2 are chosen"), "{}", out.stderr);
    // Nothing was written for the refused imports.
    assert!(std::fs::read_dir(env.state_dir()).unwrap().next().is_none());
}
