//! Handing mail to an LMTP or SMTP server when it fails: a scripted POP3
//! server as the source, a scripted LMTP/SMTP server (tests/common/mta.rs)
//! as the destination. What a user checks: which messages stay on the
//! POP3 server, which the mail server got, the exit status, and that no
//! DELE ever comes before the mail server's 250.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::args::scripted_pop3;
use common::mta::{Config, Mta, Step};
use common::pop3server::{Pop3Server, ServerConfig, growing};
use common::{Env, json_events};

fn run(env: &Env, pop: &Pop3Server, mta: &Mta, dialect: &str, extra: &[&str]) -> common::Out {
    let port: u16 = pop.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut args = scripted_pop3(port);
    args.push(format!("--{dialect}"));
    args.push(format!("127.0.0.1:{}", mta.port));
    args.extend(["--deliver-to".into(), "alice".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&args)
}

fn uidls(pop: &Pop3Server) -> Vec<String> {
    pop.remaining().into_iter().map(|(u, _)| u).collect()
}

/// A server whose DELE hook fails the test when a message is deleted
/// before the mail server accepted as many messages as are being deleted.
fn source_checking_order(msgs: Vec<(String, Vec<u8>)>, mta: &Mta) -> Pop3Server {
    let accepted = mta.accepted_counter();
    let deles = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook = Arc::new(move |line: &str| {
        if line.starts_with("DELE") {
            let n = deles.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            assert!(
                n <= accepted(),
                "DELE number {n} before the mail server accepted that many"
            );
        }
    });
    Pop3Server::start(
        ServerConfig {
            hook_on_command: Some(hook),
            ..Default::default()
        },
        msgs,
    )
}

#[test]
fn a_4xx_stays_for_the_next_run_a_5xx_is_recorded_and_left_alone_the_rest_is_delivered() {
    let mta = Mta::start(Config {
        steps: vec![
            Step::Accept,
            Step::Final("452 4.2.2 Mailbox full"),
            Step::Final("550 5.7.1 Message looks like spam"),
            Step::Accept,
        ],
        ..Default::default()
    });
    let msgs = growing(4, 3, &[".a line with a leading dot"]);
    let pop = source_checking_order(msgs.clone(), &mta);
    let env = Env::new();

    let out = run(&env, &pop, &mta, "lmtp", &["--json"]);
    assert_eq!(out.code, 75, "the 4xx decides: try again later: {out:?}");
    assert_eq!(uidls(&pop), ["uid-2", "uid-3"], "{out:?}");
    let events = json_events(&out);
    let actions: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| (e["uid"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("uid-1", "delivered"),
            ("uid-3", "rejected"),
            ("uid-4", "delivered")
        ]
    );
    let rejected = events.iter().find(|e| e["action"] == "rejected").unwrap();
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("550 5.7.1 Message looks like spam"),
        "{rejected}"
    );
    // What the mail server got is the message, dot-stuffing undone.
    let data = mta.data();
    let first = &data.iter().find(|(i, _)| *i == 0).unwrap().1;
    assert_eq!(first, &msgs[0].1);
    assert!(common::mail::contains(
        first,
        b"\r\n.a line with a leading dot\r\n"
    ));
    let wire = mta.commands();
    assert!(
        wire.iter()
            .any(|c| c == "LHLO localhost" || c.starts_with("LHLO "))
    );
    assert!(wire.contains(&"RCPT TO:<alice>".to_string()), "{wire:?}");
    assert!(wire.contains(&"RSET".to_string()), "RSET between messages");

    // Next run: the deferred one goes; the rejected one is not offered.
    let before = mta.data().len();
    let out = run(&env, &pop, &mta, "lmtp", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(uidls(&pop), ["uid-3"]);
    assert_eq!(mta.data().len(), before + 1, "only the deferred message");

    // Asked to: the rejected one is offered again, and now accepted.
    let out = run(&env, &pop, &mta, "lmtp", &["--retry-rejected"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(uidls(&pop).is_empty());
}

#[test]
fn a_rejection_alone_fails_the_run_with_65_and_a_reason_then_later_runs_are_quiet() {
    let mta = Mta::start(Config {
        steps: vec![Step::Rcpt("552 5.2.2 Over quota")],
        ..Default::default()
    });
    let pop = Pop3Server::start(ServerConfig::default(), growing(2, 2, &[]));
    let env = Env::new();
    let out = run(&env, &pop, &mta, "smtp", &[]);
    out.assert_exit(65, "rejected 1 message");
    assert_eq!(uidls(&pop), ["uid-1"], "the rejected message stays");
    let out = run(&env, &pop, &mta, "smtp", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(uidls(&pop), ["uid-1"]);
    assert_eq!(mta.data().len(), 1, "never offered again");
}

#[test]
fn an_unknown_recipient_stops_the_run_without_recording_rejections() {
    let mta = Mta::start(Config {
        steps: vec![Step::Rcpt("550 5.1.1 <alice>: no such user"); 3],
        ..Default::default()
    });
    let pop = Pop3Server::start(ServerConfig::default(), growing(3, 2, &[]));
    let env = Env::new();
    let out = run(&env, &pop, &mta, "lmtp", &[]);
    out.assert_exit(78, "does not accept the recipient <alice>");
    assert_eq!(uidls(&pop).len(), 3);
    // Once the address is right, everything goes: nothing was marked.
    let ok = Mta::start(Config::default());
    let out = run(&env, &pop, &ok, "lmtp", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(uidls(&pop).is_empty());
}

#[test]
fn a_connection_dropped_before_or_after_the_dot_leaves_the_message_for_the_next_run() {
    for (step, got_data) in [(Step::DropBeforeDot, false), (Step::DropAfterDot, true)] {
        let mta = Mta::start(Config {
            steps: vec![Step::Accept, step.clone()],
            ..Default::default()
        });
        let pop = source_checking_order(growing(3, 2, &[]), &mta);
        let env = Env::new();
        let out = run(&env, &pop, &mta, "smtp", &[]);
        assert_eq!(out.code, 75, "{step:?}: {out:?}");
        if got_data {
            assert!(
                out.stderr.contains("may have been delivered"),
                "{}",
                out.stderr
            );
        }
        assert_eq!(uidls(&pop), ["uid-2", "uid-3"], "{step:?}");
        assert_eq!(mta.data().iter().any(|(i, _)| *i == 1), got_data);
        let out = run(&env, &pop, &mta, "smtp", &[]);
        assert_eq!(out.code, 0, "{step:?}: {out:?}");
        assert!(uidls(&pop).is_empty());
    }
}

#[test]
fn a_stalled_server_times_out_and_a_greeting_other_than_220_is_refused() {
    let mta = Mta::start(Config {
        steps: vec![Step::Stall(Duration::from_secs(8))],
        ..Default::default()
    });
    let pop = Pop3Server::start(ServerConfig::default(), growing(1, 2, &[]));
    let env = Env::new();
    let out = run(&env, &pop, &mta, "lmtp", &["--timeout", "2"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(7), "{:?}", out.elapsed);
    assert_eq!(uidls(&pop), ["uid-1"]);

    for (greeting, code) in [
        ("421 4.3.2 busy, try later", 75),
        ("554 5.3.2 no service here", 69),
        ("hello there", 76),
    ] {
        let mta = Mta::start(Config {
            greeting,
            ..Default::default()
        });
        let out = run(&env, &pop, &mta, "smtp", &[]);
        assert_eq!(out.code, code, "{greeting}: {out:?}");
        assert_eq!(uidls(&pop), ["uid-1"], "{greeting}");
        assert!(mta.data().is_empty());
    }
}

#[test]
fn eight_bit_mail_needs_8bitmime_and_goes_with_body_8bitmime() {
    let mta = Mta::start(Config {
        caps: vec!["PIPELINING"],
        ..Default::default()
    });
    let mut msgs = growing(2, 1, &[]);
    msgs[1].1 =
        b"Return-Path: <b\xc3\xa4r@example.org>\r\nSubject: x\r\n\r\ncaf\xc3\xa9\r\n".to_vec();
    msgs[0].1 = b"Return-Path: <bob@example.org>\r\nSubject: y\r\n\r\ncaf\xc3\xa9\r\n".to_vec();
    let pop = Pop3Server::start(ServerConfig::default(), msgs);
    let env = Env::new();
    let out = run(&env, &pop, &mta, "smtp", &[]);
    out.assert_exit(65, "rejected 2 message");
    assert!(out.stderr.is_empty() || !out.stderr.contains("panicked"));
    assert!(
        mta.data().is_empty(),
        "nothing sent that the server cannot take"
    );

    let mta = Mta::start(Config {
        caps: vec!["8BITMIME", "SMTPUTF8"],
        ..Default::default()
    });
    let out = run(&env, &pop, &mta, "smtp", &["--retry-rejected"]);
    assert_eq!(out.code, 0, "{out:?}");
    let wire = mta.commands();
    assert!(
        wire.contains(&"MAIL FROM:<bob@example.org> BODY=8BITMIME".to_string()),
        "{wire:?}"
    );
    assert!(
        wire.contains(&"MAIL FROM:<bär@example.org> BODY=8BITMIME SMTPUTF8".to_string()),
        "{wire:?}"
    );
}

/// `--smtp 127.1:PORT`: glibc's resolver reads `127.1` as 127.0.0.1, but
/// fetch does not count the name as loopback, so it treats the server as
/// remote: STARTTLS required, the certificate checked for `127.1`.
fn run_remote(env: &Env, pop: &Pop3Server, mta: &Mta, extra: &[&str]) -> common::Out {
    let port: u16 = pop.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut args = scripted_pop3(port);
    args.extend([
        "--smtp".to_string(),
        format!("127.1:{}", mta.port),
        "--deliver-to".into(),
        "alice".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&args)
}

#[test]
fn a_remote_smtp_server_gets_mail_only_over_starttls_with_a_trusted_certificate() {
    let cert = common::tls::self_signed(&["127.1"]);
    let msgs = || vec![("u1".to_string(), b"Subject: tls\r\n\r\nsecret\r\n".to_vec())];
    let env = Env::new();
    let cafile = env.path().join("ca.pem");
    std::fs::write(&cafile, &cert.cert_pem).unwrap();
    let cafile = cafile.to_string_lossy().into_owned();

    // Offered and trusted: the whole transaction goes over TLS.
    let mta = Mta::start(Config {
        tls: Some(common::tls::acceptor(&cert)),
        ..Config::default()
    });
    let pop = Pop3Server::start(ServerConfig::default(), msgs());
    let out = run_remote(&env, &pop, &mta, &["--cafile", &cafile]);
    assert_eq!(out.code, 0, "{out:?}");
    let cmds = mta.commands();
    let tls_at = cmds.iter().position(|c| c == "[TLS]").expect("STARTTLS");
    let mail_at = cmds.iter().position(|c| c.starts_with("MAIL")).unwrap();
    assert!(tls_at < mail_at, "{cmds:?}");
    assert_eq!(
        cmds.iter().filter(|c| c.starts_with("EHLO")).count(),
        2,
        "EHLO again after TLS"
    );
    assert_eq!(mta.accepted(), 1);
    assert!(uidls(&pop).is_empty());

    // Offered, but the certificate is not trusted: nothing is sent.
    let env = Env::new();
    let mta = Mta::start(Config {
        tls: Some(common::tls::acceptor(&cert)),
        ..Config::default()
    });
    let pop = Pop3Server::start(ServerConfig::default(), msgs());
    let out = run_remote(&env, &pop, &mta, &[]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(!mta.commands().iter().any(|c| c.starts_with("MAIL")));
    assert_eq!(uidls(&pop), ["u1"]);

    // Not offered: refused unless the user allows plaintext.
    let env = Env::new();
    let mta = Mta::start(Config::default());
    let pop = Pop3Server::start(ServerConfig::default(), msgs());
    let out = run_remote(&env, &pop, &mta, &[]);
    out.assert_exit(69, "does not offer STARTTLS");
    assert!(!mta.commands().iter().any(|c| c.starts_with("MAIL")));
    assert_eq!(uidls(&pop), ["u1"]);
    let out = run_remote(&env, &pop, &mta, &["--allow-plaintext-smtp"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(mta.accepted(), 1);
    assert!(uidls(&pop).is_empty());
}
