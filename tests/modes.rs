//! fetch at home in cron, scripts and terminals: a quiet run prints
//! nothing, --json events parse and add up, --check counts without changing
//! anything and exits 1 when there is nothing, --limit and --max-size, and
//! progress bars drawn on a terminal but never into a file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::args::scripted_pop3;
use common::dest::{Dest, maildir_files};
use common::mail::large_message;
use common::pop3server::{Pop3Server, ServerConfig, numbered, slow_retr};
use common::require::{program_missing, require};
use common::{Env, json_events, run_bounded};

fn five() -> Vec<(String, Vec<u8>)> {
    numbered(5, &["hello"])
}

/// The scripted server's mail into the test's Maildir, with `extra`.
fn args(env: &Env, server: &Pop3Server, extra: &[&str]) -> Vec<String> {
    let mut a = scripted_pop3(server.port);
    a.extend(Dest::Maildir.args(env));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run(env: &Env, server: &Pop3Server, extra: &[&str]) -> common::Out {
    env.run_args(&args(env, server, extra))
}

#[test]
fn a_cron_run_is_silent_with_and_without_new_mail() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), five());
    for _ in 0..2 {
        let out = run(&env, &server, &[]);
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (0, "", "")
        );
    }
}

#[test]
fn json_events_parse_and_add_up() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), five());
    let out = run(&env, &server, &["--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    let ev = json_events(&out);
    let msgs: Vec<&serde_json::Value> = ev.iter().filter(|e| e["type"] == "message").collect();
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs.len(), maildir_files(&env.maildir()).len());
    for m in &msgs {
        assert_eq!(m["action"], "delivered");
        assert_eq!(m["account"], "tester@127.0.0.1");
        assert!(m["uid"].as_str().unwrap().starts_with('u'));
        assert!(m["size"].as_u64().unwrap() > 0);
        let dest = m["destination"].as_str().unwrap();
        assert!(std::path::Path::new(dest).exists(), "{dest}");
        assert!(m.get("folder").is_some());
    }
    let acct: Vec<&serde_json::Value> = ev.iter().filter(|e| e["type"] == "account").collect();
    assert_eq!(acct.len(), 1);
    assert_eq!(acct[0]["fetched"], 5);
    assert_eq!(acct[0]["deleted"], 5);
    assert_eq!(acct[0]["exit_code"], 0);
    assert_eq!(
        acct[0]["bytes"].as_u64().unwrap(),
        msgs.iter()
            .map(|m| m["size"].as_u64().unwrap())
            .sum::<u64>()
    );
    assert!(acct[0]["seconds"].as_f64().unwrap() >= 0.0);

    // A failure is an error event plus the account's exit code.
    let cfg = ServerConfig {
        password: "other".into(),
        ..Default::default()
    };
    let bad = Pop3Server::start(cfg, five());
    let out = run(&Env::new(), &bad, &["--json"]);
    assert_eq!(out.code, 77);
    let ev = json_events(&out);
    assert_eq!(ev[0]["type"], "error");
    assert_eq!(ev[0]["kind"], "auth");
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("authentication failed")
    );
    assert_eq!(ev[1]["type"], "account");
    assert_eq!(ev[1]["exit_code"], 77);
    // The human line still goes to stderr.
    assert!(out.stderr.contains("authentication failed"));

    let out = run(&Env::new(), &server, &["--json", "--stdout"]);
    assert_eq!(out.code, 64, "{out:?}");
}

#[test]
fn check_counts_without_changing_anything() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), five());
    let out = run(&env, &server, &["--check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "tester@127.0.0.1: 5 new\n");
    assert!(
        !server
            .commands()
            .iter()
            .any(|c| c.starts_with("RETR") || c.starts_with("DELE"))
    );
    assert_eq!(server.remaining().len(), 5);
    assert!(!env.maildir().exists(), "--check created the Maildir");

    let out = run(&env, &server, &["--keep"]);
    assert_eq!(out.code, 0);
    let out = run(&env, &server, &["-c", "--keep"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "tester@127.0.0.1: 0 new\n")
    );
    let out = run(&env, &server, &["-c", "--keep", "--json"]);
    assert_eq!(out.code, 1);
    assert_eq!(json_events(&out)[0]["new"], 0);
}

#[test]
fn dry_run_says_what_would_happen_and_changes_nothing() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), five());
    // The last session sent no RETR and no DELE.
    let untouched = |server: &Pop3Server| {
        !server
            .commands_per_connection()
            .last()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("RETR") || c.starts_with("DELE"))
    };
    let out = run(&env, &server, &["--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert_eq!(
        lines[0],
        format!(
            "tester@127.0.0.1: would fetch message 1 (UIDL u1), {} bytes, then delete it \
             from the server",
            five()[0].1.len()
        )
    );
    assert!(
        lines[5].contains("would fetch 5 message(s)"),
        "{}",
        lines[5]
    );
    assert!(untouched(&server));
    assert!(!env.maildir().exists(), "--dry-run created the Maildir");

    // Two fetched and kept; in delete mode those two would only be deleted.
    assert_eq!(run(&env, &server, &["--keep", "--limit", "2"]).code, 0);
    let out = run(&env, &server, &["-n", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let ev = json_events(&out);
    let of = |action: &str| -> Vec<String> {
        ev.iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["uid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of("would_fetch"), ["u3", "u4", "u5"]);
    assert_eq!(of("would_delete"), ["u3", "u4", "u5", "u1", "u2"]);
    let acct = ev.last().unwrap();
    assert_eq!(
        (acct["new"].as_u64(), acct["would_delete"].as_u64()),
        (Some(3), Some(5))
    );
    assert!(untouched(&server));
    assert_eq!(server.remaining().len(), 5);
    assert_eq!(maildir_files(&env.maildir()).len(), 2);

    // The dry runs recorded nothing: the real run does what they said.
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 5);
    assert!(server.remaining().is_empty());
}

#[test]
fn limit_and_max_size() {
    let env = Env::new();
    let mut msgs = five();
    msgs.push(("big".into(), large_message(200 << 10, "\r\n")));
    let server = Pop3Server::start(ServerConfig::default(), msgs);
    let out = run(
        &env,
        &server,
        &["--limit", "2", "--max-size", "100K", "--json"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let ev = json_events(&out);
    assert_eq!(ev.iter().filter(|e| e["action"] == "delivered").count(), 2);
    let skipped: Vec<&serde_json::Value> = ev.iter().filter(|e| e["action"] == "skipped").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["uid"], "big");
    assert_eq!(maildir_files(&env.maildir()).len(), 2);
    // The rest, in later runs; the big one stays on the server.
    let out = run(&env, &server, &["--max-size", "100K", "-v"]);
    out.assert_exit(0, "larger than --max-size");
    assert_eq!(maildir_files(&env.maildir()).len(), 5);
    let left: Vec<String> = server.remaining().into_iter().map(|(u, _)| u).collect();
    assert_eq!(left, vec!["big".to_string()]);
    let bad = run(&env, &server, &["--max-size", "lots"]);
    assert_eq!(bad.code, 64);
}

#[test]
fn progress_bars_on_a_terminal_never_in_a_file() {
    // script(1) runs fetch on a pseudo-terminal of its own.
    if !require("script", program_missing("script", &["--version"])) {
        return;
    }
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = (1..=30)
        .map(|i| (format!("u{i}"), large_message(64 << 10, "\r\n")))
        .collect();
    // Slow enough that the bar has time to draw.
    let cfg = ServerConfig {
        hook_on_command: Some(slow_retr(Duration::from_millis(20))),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs);
    let a = args(&env, &server, &["--keep"]);
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_fetch").to_string())
        .chain(a.clone())
        .map(|s| format!("'{}'", s.replace('\'', "'\\''")))
        .collect();
    let typescript = env.path().join("typescript");
    let mut c = env.cmd();
    c.env("TERM", "xterm");
    c.args(["-qefc", &quoted.join(" ")]).arg(&typescript);
    let mut c2 = Command::new("script");
    c2.args(["-qefc", &quoted.join(" ")]).arg(&typescript);
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            c2.env(k, v);
        }
    }
    c2.env_remove("NO_COLOR");
    let out = run_bounded(c2, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{out:?}");
    let drawn = std::fs::read(&typescript).unwrap();
    let text = String::from_utf8_lossy(&drawn);
    assert!(
        text.contains("msgs") && text.contains('\u{1b}'),
        "no progress bar drawn: {text:?}"
    );
    assert!(
        text.contains("30 new messages"),
        "summary line on a terminal: {text:?}"
    );

    // The same run with stderr to a file (not a terminal): not one escape.
    let env = Env::new();
    let out = run(&env, &server, &["--keep"]);
    assert_eq!(out.code, 0);
    assert!(!out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'));
}
