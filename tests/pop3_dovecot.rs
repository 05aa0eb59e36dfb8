//! `fetch` against a real Dovecot started for the test (see
//! `scripts/dovecot-sandbox`), filled with the project's fixtures, a large
//! attachment and, where `../shared/corpus` exists, every corpus message.
//! Without Dovecot (or the corpus) these skip with a printed reason, unless
//! FETCH_REQUIRE lists it (see tests/common/require.rs).

mod common;

use std::path::PathBuf;

use common::dovecot::{Dovecot, corpus_files, pop3_content};
use common::{Env, expected_local, maildir_files, maildir_messages, sorted};

/// Everything we put on the server, in order.
fn mail_files() -> Vec<PathBuf> {
    let mut files = common::fixture_files();
    files.extend(corpus_files());
    files
}

fn fill(dc: &Dovecot) -> Vec<Vec<u8>> {
    let files = mail_files();
    dc.fill_files(&files);
    let mut stored: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let large = common::large_message(2 << 20, "\n");
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
    let port = match tls {
        "implicit" => dc.pop3s_port,
        _ => dc.pop3_port,
    }
    .to_string();
    let pw = format!("cat {}", dc.password_file.display());
    let cafile = dc.cafile.to_string_lossy().into_owned();
    let maildir = env.maildir().to_string_lossy().into_owned();
    let mut args = vec![
        "--pop3",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        tls,
        "--cafile",
        &cafile,
        "-u",
        &dc.user,
        "--password-command",
        &pw,
        "--maildir",
        &maildir,
    ];
    if tls == "none" {
        args.push("--allow-plaintext-auth");
    }
    args.extend_from_slice(extra);
    env.run(&args)
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
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(": 0 new messages"), "{}", out.stderr);
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
    let port = dc.pop3s_port.to_string();
    let maildir = env.maildir().to_string_lossy().into_owned();
    let cafile = dc.cafile.to_string_lossy().into_owned();
    let base = [
        "--pop3",
        "127.0.0.1",
        "--port",
        &port,
        "-u",
        &dc.user,
        "--maildir",
        &maildir,
    ];
    let mut a = base.to_vec();
    a.extend([
        "--cafile",
        &cafile,
        "--password-command",
        "echo wrong-password",
    ]);
    let out = env.run(&a);
    assert_eq!(out.code, 77, "{out:?}");
    assert!(
        out.stderr.contains("authentication failed"),
        "{}",
        out.stderr
    );

    // Dovecot's self-signed certificate is not trusted without --cafile.
    let pw = format!("cat {}", dc.password_file.display());
    let mut a = base.to_vec();
    a.extend(["--password-command", &pw]);
    let out = env.run(&a);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("certificate"), "{}", out.stderr);
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
    assert_eq!(out.code, 75, "{out:?}");
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
}
