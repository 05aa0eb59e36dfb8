//! `fetch` against a real Dovecot started for the test (see
//! `scripts/dovecot-sandbox`), filled with the project's fixtures, a large
//! attachment and, where `../shared/corpus` exists, every corpus message.
//! Without Dovecot (or the corpus) these skip with a printed reason, unless
//! FETCH_REQUIRE lists it (see tests/common/require.rs).

mod common;

use common::Env;
use common::args::{dovecot, remove_option, set_option};
use common::dest::{Dest, maildir_files, maildir_messages};
use common::dovecot::{Dovecot, pop3_content};
use common::mail::{expected_local, fixtures_and_corpus, large_message, read_all, sorted};

/// Puts the fixtures, the corpus and a large message on the server;
/// returns them in order.
fn fill(dc: &Dovecot) -> Vec<Vec<u8>> {
    let files = fixtures_and_corpus();
    dc.fill_files(&files);
    let mut stored = read_all(&files);
    let large = large_message(2 << 20, "\n");
    dc.fill(&[&large]);
    stored.push(large);
    assert_eq!(dc.message_count(), stored.len());
    stored
}

/// What each stored message must look like in our Maildir: what Dovecot
/// serves over POP3, with CRLF turned into LF.
fn expected(stored: &[Vec<u8>]) -> Vec<Vec<u8>> {
    sorted(
        stored
            .iter()
            .map(|m| expected_local(&pop3_content(m)))
            .collect(),
    )
}

fn fetch(env: &Env, dc: &Dovecot, tls: &str, extra: &[&str]) -> common::Out {
    let mut args = dovecot(dc, "pop3", tls);
    args.extend(Dest::Maildir.args(env));
    args.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&args)
}

#[test]
fn every_message_arrives_byte_exact_over_each_tls_mode_then_delete_empties_the_server() {
    let Some(dc) = Dovecot::start() else { return };
    let stored = fill(&dc);
    let want = expected(&stored);

    for tls in ["none", "starttls", "implicit"] {
        let env = Env::new();
        let out = fetch(&env, &dc, tls, &["--keep"]);
        assert_eq!(out.code, 0, "{tls}: {out:?}");
        assert_eq!(out.stderr, "", "{tls}: a successful run is silent");
        let got = maildir_messages(&env.maildir());
        assert_eq!(got.len(), want.len(), "{tls}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "{tls}: a message differs from what the server holds"
            );
        }
        // --keep: the second run fetches nothing.
        let out = fetch(&env, &dc, tls, &["--keep", "-v"]);
        assert_eq!(out.code, 0, "{tls}: {out:?}");
        assert!(
            out.stderr.contains(": 0 new messages"),
            "{tls}: {}",
            out.stderr
        );
        assert_eq!(maildir_files(&env.maildir()).len(), want.len());
        assert_eq!(
            dc.message_count(),
            stored.len(),
            "{tls}: --keep left the server alone"
        );
    }

    // Delete mode, after a keep run in the same state: nothing is downloaded
    // twice, everything is deleted.
    let env = Env::new();
    assert_eq!(fetch(&env, &dc, "implicit", &["--keep"]).code, 0);
    let out = fetch(&env, &dc, "implicit", &["-v"]);
    out.assert_exit(0, ": 0 new messages");
    assert_eq!(dc.message_count(), 0, "the server is empty");
    assert_eq!(
        maildir_messages(&env.maildir()),
        want,
        "each message exactly once"
    );
}

#[test]
fn delete_mode_from_scratch() {
    let Some(dc) = Dovecot::start() else { return };
    let stored = fill(&dc);
    let env = Env::new();
    let out = fetch(&env, &dc, "starttls", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dc.message_count(), 0);
    assert_eq!(maildir_messages(&env.maildir()), expected(&stored));
    // New mail arrives; the next run takes only it.
    let late = b"From: late@example.org\nSubject: late\n\nlate body\n".to_vec();
    dc.fill(&[&late]);
    let out = fetch(&env, &dc, "starttls", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dc.message_count(), 0);
    assert_eq!(maildir_files(&env.maildir()).len(), stored.len() + 1);
}

#[test]
fn wrong_password_and_untrusted_certificate() {
    let Some(dc) = Dovecot::start() else { return };
    fill(&dc);
    let env = Env::new();
    let mut a = dovecot(&dc, "pop3", "implicit");
    a.extend(Dest::Maildir.args(&env));
    let mut wrong = a.clone();
    set_option(&mut wrong, "--password-command", "echo wrong-password");
    let out = env.run_args(&wrong);
    out.assert_exit(77, "authentication failed");

    // Dovecot's self-signed certificate is not trusted without --cafile.
    remove_option(&mut a, "--cafile");
    let out = env.run_args(&a);
    out.assert_exit(69, "certificate");
    assert!(maildir_files(&env.maildir()).is_empty());
}

#[test]
fn connection_refused_is_temporary() {
    let env = Env::new();
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let maildir = env.maildir().to_string_lossy().into_owned();
    let out = env.run(&[
        "--pop3",
        "127.0.0.1",
        "--port",
        &port,
        "-u",
        "x",
        "--password-command",
        "echo x",
        "--maildir",
        &maildir,
    ]);
    out.assert_exit(75, "connection refused");
}
