//! OAuth 2.0 logins against a real Dovecot whose `oauth2` passdb checks
//! each token with the test's authorization server
//! (`tests/common/tokenserver.rs`) by token introspection: XOAUTH2 and
//! OAUTHBEARER, over IMAP and POP3, with the token from a command (as oama
//! or mutt_oauth2.py give it) and from the built-in refresh.

mod common;

use common::Env;
use common::args::dovecot;
use common::dest::{Dest, maildir_messages};
use common::dovecot::Dovecot;
use common::tokenserver::TokenServer;

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: a@example.org\nSubject: oauth {n}\nMessage-ID: <oauth{n}@example.org>\n\nbody {n}\n"
    )
    .into_bytes()
}

/// A Dovecot that checks tokens with a fresh token server.
fn servers() -> Option<(TokenServer, Dovecot)> {
    let ts = TokenServer::start("fetchtest");
    let dc = Dovecot::start_oauth2(&ts.url("/introspect"))?;
    Some((ts, dc))
}

/// fetch's arguments for `proto` over implicit TLS with `--auth MECH`, the
/// token printed by a command reading `token_file`.
fn token_command_args(
    dc: &Dovecot,
    env: &Env,
    proto: &str,
    mech: &str,
    token_file: &std::path::Path,
) -> Vec<String> {
    let mut a = dovecot(dc, proto, "implicit");
    let i = a.iter().position(|x| x == "--password-command").unwrap();
    a[i + 1] = format!("cat {}", token_file.display());
    a.extend(["--auth".to_string(), mech.to_string()]);
    a.extend(Dest::Maildir.args(env));
    a
}

#[test]
fn a_token_from_a_command_logs_in_with_each_mechanism_over_imap_and_pop3() {
    let Some((ts, dc)) = servers() else { return };
    let mut n = 0;
    for proto in ["imap", "pop3"] {
        for mech in ["xoauth2", "oauthbearer"] {
            n += 1;
            dc.fill(&[message(n)]);
            let env = Env::new();
            let token = ts.with(|s| s.issue_access());
            let file = env.path().join("token");
            std::fs::write(&file, format!("{token}\n")).unwrap();
            let mut args = token_command_args(&dc, &env, proto, mech, &file);
            args.push("-vv".into());
            let out = env.run_args(&args);
            assert_eq!(out.code, 0, "{proto} {mech}: {out:?}");
            let got = maildir_messages(&env.maildir());
            assert!(
                got.iter()
                    .any(|m| m.ends_with(format!("body {n}\n").as_bytes())),
                "{proto} {mech}: the message arrived"
            );
            assert!(
                out.stderr.contains(&format!(
                    "AUTH{} {} [REDACTED]",
                    if proto == "imap" { "ENTICATE" } else { "" },
                    mech.to_uppercase()
                )),
                "{proto} {mech}: the trace shows the mechanism, redacted: {}",
                out.stderr
            );
            assert!(
                !out.stderr.contains(&token) && !out.stdout.contains(&token),
                "{proto} {mech}: the token appears in the output"
            );
        }
    }
}

#[test]
fn a_rejected_token_fails_with_77_naming_the_account_and_the_servers_status() {
    let Some((ts, dc)) = servers() else { return };
    dc.fill(&[message(1)]);
    for proto in ["imap", "pop3"] {
        for mech in ["xoauth2", "oauthbearer"] {
            let env = Env::new();
            let file = env.path().join("token");
            std::fs::write(&file, "at-never-issued\n").unwrap();
            let args = token_command_args(&dc, &env, proto, mech, &file);
            let out = env.run_args(&args);
            out.assert_exit(77, "the access token was rejected");
            assert!(
                out.stderr.contains("fetchtest@127.0.0.1") && out.stderr.contains("status"),
                "{proto} {mech}: {}",
                out.stderr
            );
            assert!(maildir_messages(&env.maildir()).is_empty());
        }
    }
    // Dovecot finished each exchange (the client answered the error
    // challenge) instead of timing out.
    assert!(
        !dc.log().contains("Disconnected: Inactivity"),
        "{}",
        dc.log()
    );
    assert_eq!(dc.message_count(), 1);
    drop(ts);
}

#[test]
fn the_token_needs_tls_unless_plaintext_is_allowed() {
    let Some((ts, dc)) = servers() else { return };
    let env = Env::new();
    let token = ts.with(|s| s.issue_access());
    let file = env.path().join("token");
    std::fs::write(&file, &token).unwrap();
    let mut args = dovecot(&dc, "imap", "none");
    args.retain(|a| a != "--allow-plaintext-auth");
    let i = args.iter().position(|x| x == "--password-command").unwrap();
    args[i + 1] = format!("cat {}", file.display());
    args.extend(["--auth".into(), "xoauth2".into()]);
    args.extend(Dest::Maildir.args(&env));
    let out = env.run_args(&args);
    out.assert_exit(69, "unencrypted");
    assert_eq!(ts.with(|s| s.count("/introspect")), 0, "the token was sent");
}
