//! The built-in OAuth 2.0 client against a real Dovecot (oauth2 passdb)
//! and the test's authorization server: `fetch --login` by device grant and
//! by loopback redirect (the test plays the browser), then runs that use and
//! refresh the stored token; revocation, an unreachable or broken token
//! endpoint, and kill -9 at each step of a refresh that rotates the
//! refresh token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::config::write_config;
use common::dest::maildir_messages;
use common::dovecot::Dovecot;
use common::tokenserver::{Fault, TokenServer};
use common::{Env, all_files, json_events, run_bounded};
use std::time::Duration;

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: a@example.org\nSubject: builtin {n}\nMessage-ID: <b{n}@example.org>\n\nbody {n}\n"
    )
    .into_bytes()
}

fn servers() -> Option<(TokenServer, Dovecot)> {
    let ts = TokenServer::start("fetchtest");
    let dc = Dovecot::start_oauth2(&ts.url("/introspect"))?;
    Some((ts, dc))
}

/// A config with account `g` (IMAP, or POP3 with `pop3`) using the
/// built-in client; `flow` is the key naming the login endpoint.
fn configure(env: &Env, ts: &TokenServer, dc: &Dovecot, pop3: bool, flow: &str) {
    configure_mech(
        env,
        ts,
        dc,
        pop3,
        if pop3 { "oauthbearer" } else { "xoauth2" },
        flow,
    );
}

fn configure_mech(env: &Env, ts: &TokenServer, dc: &Dovecot, pop3: bool, mech: &str, flow: &str) {
    let (proto, port) = if pop3 {
        ("pop3", dc.pop3s_port)
    } else {
        ("imap", dc.imaps_port)
    };
    let (key, path) = if flow == "device" {
        ("oauth2_device_url", "/device")
    } else {
        ("oauth2_authorize_url", "/authorize")
    };
    let text = format!(
        "[accounts.g]\nprotocol = \"{proto}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"implicit\"\ncafile = \"{}\"\nuser = \"fetchtest\"\nauth = \"{mech}\"\n\
         timeout = 10\nkeep = true\nmaildir = \"{}\"\n\
         oauth2_client_id = \"fetch-test-client\"\noauth2_scope = \"mail\"\n\
         oauth2_token_url = \"{}\"\n{key} = \"{}\"\n",
        dc.cafile.display(),
        env.maildir().display(),
        ts.url("/token"),
        ts.url(path),
    );
    write_config(env, &text, 0o600);
}

/// The token store of account `g`.
fn store(env: &Env) -> std::path::PathBuf {
    let found: Vec<_> = all_files(&env.state_dir())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with("oauth2-tokens.json"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// No file under the test's directory but the token store holds `secret`.
fn only_the_store_holds(env: &Env, secret: &str) {
    let store = store(env);
    for (path, bytes) in all_files(env.path()) {
        if path != store {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a token",
                path.display()
            );
        }
    }
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn device_login(env: &Env, ts: &TokenServer) -> common::Out {
    ts.device_grant(1, false);
    let out = env.run(&["--login", "g", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    out
}

#[test]
fn login_by_device_grant_then_runs_use_the_stored_token_with_each_mechanism_over_imap_and_pop3() {
    let Some((ts, dc)) = servers() else { return };
    dc.fill(&[message(1)]);
    for (i, (pop3, mech)) in [
        (false, "xoauth2"),
        (true, "oauthbearer"),
        (false, "oauthbearer"),
        (true, "xoauth2"),
    ]
    .into_iter()
    .enumerate()
    {
        let env = Env::new();
        configure_mech(&env, &ts, &dc, pop3, mech, "device");
        // Before --login: 77, and the way out.
        env.run(&["g"]).assert_exit(77, "fetch --login g");
        // slow_down once (it costs five seconds).
        ts.device_grant(1, i == 0);
        let out = env.run(&["--login", "g", "--json"]);
        assert_eq!(out.code, 0, "{out:?}");
        let events = json_events(&out);
        assert_eq!(events[0]["type"], "authorize");
        assert_eq!(events[0]["user_code"], "WDJB-MJHT");
        assert!(
            out.stderr.contains("enter the code WDJB-MJHT"),
            "{}",
            out.stderr
        );
        // Polled through authorization_pending after a slow_down.
        let polls = ts.with(|s| s.count("urn:ietf:params:oauth:grant-type:device_code"));
        assert!(polls >= 2, "{polls}");
        ts.with(|s| s.log.clear());
        let out = env.run(&["g"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(maildir_messages(&env.maildir()), vec![message(1)]);
        let tokens = ts.with(|s| {
            s.token_forms
                .iter()
                .filter_map(|f| f.get("device_code").cloned())
                .collect::<Vec<_>>()
        });
        assert!(!tokens.is_empty());
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store(&env)).unwrap()).unwrap();
        let rt = stored["refresh_token"].as_str().unwrap().to_string();
        let at = stored["access_token"].as_str().unwrap().to_string();
        only_the_store_holds(&env, &rt);
        only_the_store_holds(&env, &at);
    }
}

#[test]
fn login_by_loopback_redirect_with_the_test_as_the_browser() {
    let Some((ts, dc)) = servers() else { return };
    dc.fill(&[message(1)]);
    let env = Env::new();
    configure(&env, &ts, &dc, false, "browser");
    let mut cmd = env.cmd();
    cmd.args(["--login", "g"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .env("FETCH_NO_BROWSER", "1");
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.starts_with("http") {
            url = line.trim().to_string();
            break;
        }
    }
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    // The browser: the authorization endpoint answers with a redirect to
    // fetch's loopback listener, which the browser then follows.
    let location = http_get(&url, "Location: ");
    let page = http_get(&location, "");
    assert!(page.contains("200"), "{page}");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let out = env.run(&["g"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), vec![message(1)]);
}

/// GET `url` (http://127.0.0.1...) and return the header line starting
/// with `header` (its value), or with an empty `header` the status line.
fn http_get(url: &str, header: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_at(rest.find('/').unwrap());
    let mut c = std::net::TcpStream::connect(hostport).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: {hostport}\r\n\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let mut lines = text.lines();
    if header.is_empty() {
        return lines.next().unwrap().to_string();
    }
    lines
        .find_map(|l| l.strip_prefix(header))
        .unwrap_or_else(|| panic!("no {header} in {text}"))
        .to_string()
}

#[test]
fn a_rejected_token_is_refreshed_once_and_a_revoked_grant_sends_the_user_to_login() {
    let Some((ts, dc)) = servers() else { return };
    dc.fill(&[message(1)]);
    let env = Env::new();
    configure(&env, &ts, &dc, false, "device");
    device_login(&env, &ts);
    let refreshes = || ts.with(|s| s.count("POST /token refresh_token"));
    // The stored token lives an hour: no refresh.
    assert_eq!(env.run(&["g"]).code, 0);
    assert_eq!(refreshes(), 0);
    // The server forgets it early: one refresh, and the run succeeds.
    ts.with(|s| s.forget_access());
    dc.fill(&[message(2)]);
    let out = env.run(&["g"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(refreshes(), 1);
    assert_eq!(maildir_messages(&env.maildir()).len(), 2);
    // Consent withdrawn: 77, and what to do.
    ts.with(|s| s.revoke_all());
    let out = env.run(&["g"]);
    out.assert_exit(77, "run `fetch --login g`");
    assert_eq!(refreshes(), 2, "one refresh, not a loop");
}

#[test]
fn a_token_endpoint_down_is_temporary_and_garbage_is_a_clear_error() {
    let Some((ts, dc)) = servers() else { return };
    let env = Env::new();
    configure(&env, &ts, &dc, false, "device");
    // Access tokens that are always due for renewal.
    ts.with(|s| s.access_lifetime = 30);
    device_login(&env, &ts);
    for (fault, code, words) in [
        (Fault::Down, 75, "HTTP 503"),
        (Fault::Garbage, 76, "not the JSON"),
        (Fault::MissingField, 76, "no access_token"),
        (Fault::Huge, 76, "larger than 64 KiB"),
    ] {
        ts.with(|s| s.fault = fault);
        let out = env.run(&["g"]);
        out.assert_exit(code, words);
        // The 50 MiB body was not read whole.
        assert!(out.max_rss_kb < 40 * 1024, "{}", out.max_rss_kb);
    }
    // The endpoint gone entirely: temporary.
    ts.with(|s| s.fault = Fault::None);
    drop(ts);
    let out = env.run(&["g"]);
    out.assert_exit(75, "could not be reached");
}

#[test]
fn kill_9_at_each_step_of_a_rotating_refresh_leaves_a_working_account() {
    let Some((ts, dc)) = servers() else { return };
    let env = Env::new();
    configure(&env, &ts, &dc, false, "device");
    ts.with(|s| {
        s.access_lifetime = 30;
        s.rotate = true;
    });
    device_login(&env, &ts);
    // Which crash points a refresh passes, in order.
    let log = env.path().join("points");
    let mut c = env.cmd();
    c.args(["g"]).env("FETCH_CRASH_LOG", &log);
    assert_eq!(run_bounded(c, std::time::Duration::from_secs(60)).code, 0);
    let points: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let oauth: Vec<usize> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.contains("oauth2"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(oauth.len(), 3, "{points:?}");
    let mut n = 0;
    for at in oauth {
        n += 1;
        dc.fill(&[message(n)]);
        let mut c = env.cmd();
        c.args(["g"]).env("FETCH_CRASH_AT", at.to_string());
        let crashed = run_bounded(c, std::time::Duration::from_secs(60));
        assert_ne!(crashed.code, 0, "crash point {at} reached: {crashed:?}");
        let out = env.run(&["g"]);
        assert_eq!(
            out.code,
            0,
            "after a crash at point {at} ({}): {out:?}",
            points[at - 1]
        );
        assert_eq!(maildir_messages(&env.maildir()).len(), n);
    }
}

#[test]
fn a_daemon_refreshes_the_token_when_it_expires_and_after_a_rejection() {
    let Some((ts, dc)) = servers() else { return };
    dc.fill(&[message(1)]);
    let env = Env::new();
    configure(&env, &ts, &dc, false, "device");
    // fetch renews two minutes before expiry: this token is due in 3 s.
    ts.with(|s| s.access_lifetime = 123);
    device_login(&env, &ts);
    let refreshes = || ts.with(|s| s.count("POST /token refresh_token"));
    let mut child = env.spawn(&["g", "--daemon", "1", "-vv"]);
    let ten = Duration::from_secs(10);
    child.wait_until("the first message", ten, || {
        maildir_messages(&env.maildir()).len() == 1
    });
    child.wait_until("a refresh when the token fell due", ten, || {
        refreshes() >= 1
    });
    // No process on the machine carries a token in its argv.
    let tokens = ts.with(|s| s.all_tokens());
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(argv) = std::fs::read(e.path().join("cmdline")) {
            for t in &tokens {
                assert!(
                    !argv.windows(t.len()).any(|w| w == t.as_bytes()),
                    "a token in the argv of {}",
                    e.path().display()
                );
            }
        }
    }
    // The server drops every access token: the next poll is rejected,
    // refreshes, and goes on.
    ts.with(|s| s.forget_access());
    let before = refreshes();
    dc.fill(&[message(2)]);
    child.wait_until("mail after the rejection", Duration::from_secs(20), || {
        maildir_messages(&env.maildir()).len() == 2
    });
    assert!(refreshes() > before);
    let exit = child.stop(ten);
    assert_eq!(exit.code, 0, "{}", exit.stderr);
    // -vv traced every command; no token is in it.
    for t in ts.with(|s| s.all_tokens()) {
        assert!(!exit.stderr.contains(&t), "a token in the trace");
    }
    assert!(
        exit.stderr.contains("AUTHENTICATE XOAUTH2 [REDACTED]"),
        "{}",
        exit.stderr
    );
}
