//! `fetch --lmtp` into a real Dovecot: mail fetched over POP3 from one
//! private Dovecot is handed to another's LMTP socket (dovecot-lmtpd), and
//! what that one stored is compared byte for byte with what a Maildir
//! delivery would hold, apart from the trace headers Dovecot's LMTP adds
//! (Return-Path, Delivered-To, Received), which are checked on their own.

mod common;

use std::path::Path;

use common::Env;
use common::args::dovecot;
use common::dest::maildir_messages;
use common::dovecot::{Dovecot, pop3_content};
use common::mail::{expected_local, fixtures_and_corpus, large_message, read_all, sorted};

/// Dovecot's LMTP trace headers at the top of a stored message, and the
/// message after them: (return-path value, rest). Panics when they are
/// not there, in Dovecot's order.
fn split_trace(stored: &[u8]) -> (String, Vec<u8>) {
    let mut rest = stored;
    let mut return_path = None;
    for name in ["Return-Path:", "Delivered-To:", "Received:"] {
        assert!(
            rest.starts_with(name.as_bytes()),
            "no {name} where Dovecot puts it: {:?}",
            String::from_utf8_lossy(&stored[..stored.len().min(300)])
        );
        // The header and its continuation lines.
        let mut end = 0;
        loop {
            let nl = rest[end..].iter().position(|&b| b == b'\n').unwrap() + end + 1;
            end = nl;
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        if name == "Return-Path:" {
            return_path = Some(String::from_utf8_lossy(&rest[12..end]).trim().to_string());
        }
        rest = &rest[end..];
    }
    (return_path.unwrap(), rest.to_vec())
}

/// The envelope sender fetch must give for a message: its first
/// Return-Path's address (inside `<>`, else the first word), else `<>`.
/// Dovecot stores an address it cannot parse (two `@`) as `<>`.
fn envelope_sender(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or("");
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    for line in head.lines() {
        if line
            .get(..12)
            .is_some_and(|n| n.eq_ignore_ascii_case("Return-Path:"))
        {
            let v = line[12..].trim();
            let addr = match (v.find('<'), v.find('>')) {
                (Some(a), Some(b)) if a < b => v[a + 1..b].trim(),
                _ => v.split_whitespace().next().unwrap_or(""),
            };
            if addr.matches('@').count() > 1 {
                return "<>".into();
            }
            return format!("<{addr}>");
        }
    }
    "<>".into()
}

fn stored_messages(dc: &Dovecot) -> Vec<Vec<u8>> {
    maildir_messages(&dc.server_maildir)
}

fn lmtp_args(dc: &Dovecot, socket: &Path) -> Vec<String> {
    let mut a = dovecot(dc, "pop3", "none");
    a.extend([
        "--lmtp".into(),
        socket.to_string_lossy().into_owned(),
        "--deliver-to".into(),
        "fetchtest".into(),
    ]);
    a
}

#[test]
fn every_message_arrives_in_dovecot_through_lmtp_byte_exact_then_leaves_the_source() {
    let Some(source) = Dovecot::start() else {
        return;
    };
    let Some(target) = Dovecot::start() else {
        return;
    };
    let Some(socket) = target.lmtp().map(Path::to_path_buf) else {
        return;
    };
    let files = fixtures_and_corpus();
    source.fill_files(&files);
    let mut originals = read_all(&files);
    let large = large_message(3 << 20, "\n");
    source.fill(&[&large]);
    originals.push(large);

    // Dovecot 2.3's LMTP does not offer SMTPUTF8: a message whose envelope
    // sender (its Return-Path) is not ASCII cannot be handed over, and is
    // set aside as rejected on our side, left on the source.
    let (refused, originals): (Vec<Vec<u8>>, Vec<Vec<u8>>) = originals
        .into_iter()
        .partition(|m| !envelope_sender(m).is_ascii());

    let env = Env::new();
    let out = env.run_args(&lmtp_args(&source, &socket));
    if refused.is_empty() {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stderr, "", "a successful run is silent");
    } else {
        out.assert_exit(65, &format!("rejected {} message(s)", refused.len()));
    }
    assert_eq!(
        source.message_count(),
        refused.len(),
        "delivered, so deleted; the refused stay"
    );

    let stored = stored_messages(&target);
    assert_eq!(stored.len(), originals.len());
    let mut senders_got = Vec::new();
    let mut bodies_got = Vec::new();
    for m in &stored {
        let (rp, rest) = split_trace(m);
        senders_got.push(rp);
        bodies_got.push(rest);
    }
    // What a Maildir delivery would hold of each message is exactly what
    // Dovecot stored after its trace headers.
    let want: Vec<Vec<u8>> = sorted(
        originals
            .iter()
            .map(|m| expected_local(&pop3_content(m)))
            .collect(),
    );
    let got = sorted(bodies_got);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "message {i} differs:\n got {:?}\nwant {:?}",
            String::from_utf8_lossy(&g[..g.len().min(400)]),
            String::from_utf8_lossy(&w[..w.len().min(400)])
        );
    }
    // The envelope sender is each message's own Return-Path, else <>.
    let mut senders_want: Vec<String> = originals.iter().map(|m| envelope_sender(m)).collect();
    senders_want.sort();
    senders_got.sort();
    assert_eq!(senders_got, senders_want);
    // One LMTP session for the whole run.
    let log = target.log();
    assert_eq!(log.matches("Connect from local").count(), 1, "{log}");
}

#[test]
fn kept_mail_goes_once_and_an_unknown_recipient_changes_nothing() {
    let Some(dc) = Dovecot::start() else { return };
    let Some(socket) = dc.lmtp().map(Path::to_path_buf) else {
        return;
    };
    // Source and target are the same Dovecot: with --keep, what LMTP adds
    // to INBOX is new mail on the next listing, so the ledger must be what
    // keeps a message from going twice.
    dc.fill(&[
        b"Return-Path: <a@example.org>\nSubject: one\n\nfirst\n".as_slice(),
        b"Subject: two\n\n.second, dot-stuffed on the way\n",
    ]);
    let env = Env::new();
    let mut args = lmtp_args(&dc, &socket);
    args.push("--keep".into());
    let out = env.run_args(&args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dc.message_count(), 4);

    // A wrong recipient: exit 78, the server untouched, nothing recorded.
    let mut wrong = lmtp_args(&dc, &socket);
    wrong.push("--no-keep".into());
    let at = wrong.iter().position(|a| a == "--deliver-to").unwrap();
    wrong[at + 1] = "nobody-here".into();
    let env2 = Env::new();
    let out = env2.run_args(&wrong);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stderr.contains("nobody-here"), "{}", out.stderr);
    assert_eq!(dc.message_count(), 4, "nothing deleted");
    // The next run of the first account hands over the two copies it has
    // not seen (the ones LMTP added), and nothing twice.
    let out = env.run_args(&args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dc.message_count(), 6);
}
