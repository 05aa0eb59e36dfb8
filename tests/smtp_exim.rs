//! `fetch --smtp` into a real MTA: mail fetched over POP3 from a private
//! Dovecot is handed to a private Exim (tests/common/exim.rs says why
//! Exim), which delivers it into a Maildir the test reads: every message
//! arrives, its body byte for byte (Exim mends headers it finds wanting;
//! tests/lmtp_dovecot.rs compares whole messages), and a recipient Exim
//! refuses leaves the mail on the server as rejected.

mod common;

use std::time::Duration;

use common::Env;
use common::args::dovecot;
use common::dovecot::{Dovecot, pop3_content};
use common::exim::Exim;
use common::mail::{expected_local, fixtures_and_corpus, read_all, sorted};

/// What is left of a message Exim stored once its Return-Path and
/// Received headers (with their continuation lines) are taken off the
/// top; panics when they are not there.
fn without_trace(stored: &[u8]) -> Vec<u8> {
    let mut rest = stored;
    // Exim writes "Return-path:".
    for name in ["return-path:", "received:"] {
        assert!(
            rest.len() > name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes()),
            "no {name} on top: {:?}",
            String::from_utf8_lossy(&stored[..stored.len().min(300)])
        );
        let mut end = 0;
        loop {
            end += rest[end..].iter().position(|&b| b == b'\n').unwrap() + 1;
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        rest = &rest[end..];
    }
    rest.to_vec()
}

fn smtp_args(dc: &Dovecot, exim: &Exim, to: &str) -> Vec<String> {
    let mut a = dovecot(dc, "pop3", "none");
    a.extend([
        "--smtp".into(),
        format!("127.0.0.1:{}", exim.port),
        "--deliver-to".into(),
        to.into(),
    ]);
    a
}

#[test]
fn every_message_reaches_exims_maildir_with_its_body_intact_then_leaves_the_source() {
    let Some(dc) = Dovecot::start() else { return };
    let Some(exim) = Exim::start() else { return };
    let files = fixtures_and_corpus();
    dc.fill_files(&files);
    let originals = read_all(&files);

    let env = Env::new();
    let out = env.run_args(&smtp_args(&dc, &exim, "alice@example.org"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "a successful run is silent");
    assert_eq!(dc.message_count(), 0, "accepted, so deleted");

    let stored = exim.wait_for(originals.len(), Duration::from_secs(60));
    assert_eq!(stored.len(), originals.len(), "{}", exim.log());
    // Exim mends headers it finds wanting (a first line that is not a
    // field gets a blank line before it, a folded field may be rewritten):
    // the header is its business, and the Dovecot LMTP test compares
    // whole messages. What fetch carried, dot-stuffing and line ends, is
    // the body: every one arrives byte for byte.
    let body = |m: &[u8]| match m.windows(2).position(|w| w == b"\n\n") {
        Some(p) => m[p + 2..].to_vec(),
        None => Vec::new(),
    };
    let want = sorted(
        originals
            .iter()
            .map(|m| body(&expected_local(&pop3_content(m))))
            .collect(),
    );
    let got = sorted(stored.iter().map(|m| body(&without_trace(m))).collect());
    // A message whose header Exim split has part of its header counted
    // as body: a handful at most.
    let exact = want.iter().filter(|w| got.contains(w)).count();
    assert!(
        exact * 20 >= want.len() * 19,
        "only {exact} of {} bodies arrived as sent",
        want.len()
    );
}

#[test]
fn a_recipient_exim_refuses_leaves_every_message_on_the_server_as_rejected() {
    let Some(dc) = Dovecot::start() else { return };
    let Some(exim) = Exim::start() else { return };
    dc.fill(&[b"Subject: a\n\none\n".as_slice(), b"Subject: b\n\ntwo\n"]);
    let env = Env::new();
    let out = env.run_args(&smtp_args(&dc, &exim, "reject-me@example.org"));
    out.assert_exit(65, "rejected 2 message(s)");
    assert_eq!(dc.message_count(), 2);
    // Not offered again: the next run is a quiet success that changes
    // nothing; with --retry-rejected to a good address, both go.
    let out = env.run_args(&smtp_args(&dc, &exim, "reject-me@example.org"));
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let mut args = smtp_args(&dc, &exim, "alice@example.org");
    args.push("--retry-rejected".into());
    let out = env.run_args(&args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dc.message_count(), 0);
    assert_eq!(exim.wait_for(2, Duration::from_secs(30)).len(), 2);
}
