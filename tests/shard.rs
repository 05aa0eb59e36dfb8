//! `--shard K/N` through the binary: N runs of one config file with K = 0
//! to N-1 run every account exactly once; adding an account (at the top of
//! the file) or renaming one moves no other; a shard may be empty; bad
//! input is a usage error; two machines mistakenly given the same shard
//! are kept apart by the account's lock; --list-accounts names what a shard
//! holds and where its state is, touching nothing.
//!
//! Which accounts a run took on is read from its `--json` account events.
//! The accounts point at a port nobody listens on, so each run is quick and
//! fails with exit 75 after taking the account's lock and trying to
//! connect: the selection is what is under test here, the fetching is
//! tested everywhere else.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::config::write_config;
use common::{Env, json_events, run_bounded};

/// A port on 127.0.0.1 that refuses connections (it was free a moment ago).
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `[accounts.NAME]` for POP3 user `user` on `port`.
fn section(name: &str, user: &str, port: u16, env: &Env) -> String {
    format!(
        "[accounts.{name}]\nprotocol = \"pop3\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nallow_plaintext_auth = true\nuser = \"{user}\"\npassword = \"x\"\n\
         timeout = 5\nmaildir = \"{}/Mail-{name}\"\n\n",
        env.path().display()
    )
}

/// The config of `accounts` (name, user), in this order.
fn config(accounts: &[(String, String)], port: u16, env: &Env) -> String {
    accounts
        .iter()
        .map(|(name, user)| section(name, user, port, env))
        .collect()
}

/// Runs shards 0 to n-1 of the current config; returns account name ->
/// the shards that ran it.
fn runs(env: &Env, n: u32) -> BTreeMap<String, Vec<u32>> {
    let mut ran: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for k in 0..n {
        let shard = format!("{k}/{n}");
        let out = env.run(&["--shard", &shard, "--json", "-j", "8"]);
        assert!(out.code == 75 || out.code == 0, "{out:?}");
        for e in json_events(&out) {
            if e["type"] == "account" {
                assert_eq!(e["exit_code"], 75, "{e}");
                let name = e["account"].as_str().unwrap().to_string();
                ran.entry(name).or_default().push(k);
            }
        }
    }
    ran
}

/// Each account of `accounts` ran in exactly one shard: name -> shard.
fn exactly_once(
    ran: BTreeMap<String, Vec<u32>>,
    accounts: &[(String, String)],
) -> BTreeMap<String, u32> {
    let names: BTreeSet<&String> = accounts.iter().map(|(n, _)| n).collect();
    let seen: BTreeSet<&String> = ran.keys().collect();
    assert_eq!(seen, names, "every account runs, and no other");
    ran.into_iter()
        .map(|(name, shards)| {
            assert_eq!(shards.len(), 1, "{name} ran in shards {shards:?}");
            (name, shards[0])
        })
        .collect()
}

#[test]
fn three_shards_cover_fifty_accounts_once_and_an_added_account_moves_no_other() {
    let env = Env::new();
    let port = refused_port();
    let accounts: Vec<(String, String)> = (0..50)
        .map(|i| (format!("acct{i:02}"), format!("user{i:02}")))
        .collect();
    write_config(&env, &config(&accounts, port, &env), 0o600);
    let before = exactly_once(runs(&env, 3), &accounts);
    let mut sizes = [0; 3];
    for &k in before.values() {
        sizes[k as usize] += 1;
    }
    // A split by hash, not everything on one machine (for these 50
    // identities the pinned function gives every shard a fair part).
    assert!(sizes.iter().all(|&s| s >= 8), "{sizes:?}");

    // --list-accounts says the same, and names the directories the runs
    // used (each holds the lock file a run took).
    for k in 0..3u32 {
        let out = env.run(&["--list-accounts", "--shard", &format!("{k}/3")]);
        assert_eq!(out.code, 0, "{out:?}");
        let listed: BTreeSet<String> = out
            .stdout
            .lines()
            .map(|l| {
                let (name, dir) = l.split_once('\t').unwrap();
                assert!(
                    std::path::Path::new(dir).join("lock").is_file(),
                    "{name}: {dir}"
                );
                assert!(dir.starts_with(env.state_dir().to_str().unwrap()), "{dir}");
                name.to_string()
            })
            .collect();
        let ran: BTreeSet<String> = before
            .iter()
            .filter(|&(_, &s)| s == k)
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(listed, ran, "shard {k}");
    }

    // One account more, at the top of the file: a split by position would
    // move most of the others.
    let mut grown = vec![("newcomer".to_string(), "user50".to_string())];
    grown.extend(accounts.iter().cloned());
    write_config(&env, &config(&grown, port, &env), 0o600);
    let after = exactly_once(runs(&env, 3), &grown);
    for (name, k) in &before {
        assert_eq!(after[name], *k, "{name} moved from shard {k}");
    }

    // Renamed accounts (same server, same users: the same state
    // directories) stay where they were, in reverse file order too.
    let renamed: Vec<(String, String)> = accounts
        .iter()
        .rev()
        .map(|(n, u)| (format!("renamed-{n}"), u.clone()))
        .collect();
    write_config(&env, &config(&renamed, port, &env), 0o600);
    let again = exactly_once(runs(&env, 3), &renamed);
    for (name, k) in &before {
        assert_eq!(again[&format!("renamed-{name}")], *k, "{name} moved");
    }
}

#[test]
fn a_shard_without_accounts_is_no_error() {
    let env = Env::new();
    let port = refused_port();
    let one = [("only".to_string(), "solo".to_string())];
    write_config(&env, &config(&one, port, &env), 0o600);
    let home = fetch::config::shard_of("pop3:solo@127.0.0.1", 2);
    let empty = format!("{}/2", 1 - home);
    let out = env.run(&["--shard", &empty, "--json", "-v"]);
    out.assert_exit(
        0,
        &format!("shard {empty} runs 0 of the 1 account(s) chosen"),
    );
    assert!(json_events(&out).is_empty(), "{out:?}");
    // The other shard has it (and fails to connect, as it should here).
    let out = env.run(&["--shard", &format!("{home}/2"), "--json"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(json_events(&out).len(), 2, "an error and an account event");
    // A name on the command line is filtered too.
    let out = env.run(&["--shard", &empty, "only", "-v"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn listing_contacts_nothing_and_creates_nothing() {
    let env = Env::new();
    let port = refused_port();
    let accounts: Vec<(String, String)> =
        (0..5).map(|i| (format!("a{i}"), format!("u{i}"))).collect();
    write_config(&env, &config(&accounts, port, &env), 0o600);
    let out = env.run(&["--list-accounts"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 5, "{out:?}");
    assert!(out.stdout.starts_with("a0\t"), "file order: {out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_eq!(std::fs::read_dir(env.state_dir()).unwrap().count(), 0);
    let out = env.run(&["--list-accounts", "--check"]);
    assert_eq!(out.code, 64, "{out:?}");
}

#[test]
fn bad_shards_are_usage_errors() {
    let env = Env::new();
    let port = refused_port();
    let one = [("only".to_string(), "solo".to_string())];
    write_config(&env, &config(&one, port, &env), 0o600);
    for (arg, words) in [
        ("3/3", "K must be below N: shards are numbered 0 to 2"),
        ("1/0", "N must be 1 to"),
        ("x/3", "K is not a number"),
        ("2", "no \"/\""),
        ("-1/3", "K is not a number"),
    ] {
        let out = env.run(&[&format!("--shard={arg}")]);
        out.assert_exit(64, words);
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = env.run(&["--shard", "0/1", "--pop3", "127.0.0.1"]);
    assert_eq!(out.code, 64, "{out:?}");

    // The environment gives it too (a container image's fixed command);
    // a flag wins over it.
    let mut c = env.cmd();
    c.env("FETCH_SHARD", "7/3");
    let out = run_bounded(c, Duration::from_secs(30));
    out.assert_exit(64, "--shard \"7/3\"");
    let mut c = env.cmd();
    c.env("FETCH_SHARD", "7/3")
        .args(["--shard", "0/1", "--json"]);
    let out = run_bounded(c, Duration::from_secs(30));
    assert_eq!(out.code, 75, "the one account ran: {out:?}");
}

#[test]
fn two_machines_on_one_shard_are_kept_apart_by_the_lock() {
    let env = Env::new();
    // A server that accepts and says nothing: the first run holds the
    // account's lock while it waits for the greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, connected) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        accepted.send(()).unwrap();
        // Held open until the test is done with it (bounded by fetch's
        // own 5 s timeout, after which it hangs up).
        std::thread::sleep(Duration::from_secs(8));
        drop(stream);
    });
    let accounts = [("a".to_string(), "stall".to_string())];
    write_config(&env, &config(&accounts, port, &env), 0o600);
    let k = fetch::config::shard_of("pop3:stall@127.0.0.1", 2);
    let shard = format!("{k}/2");
    let first = env.run_in_thread(&["--shard", &shard]);
    connected
        .recv_timeout(Duration::from_secs(20))
        .expect("the first run connects");

    let started = Instant::now();
    let second = env.run(&["--shard", &shard]);
    second.assert_exit(75, "another fetch is running for this account");
    assert!(started.elapsed() < Duration::from_secs(4), "{second:?}");

    let first = first.join().unwrap();
    assert_eq!(first.code, 75, "the first timed out waiting: {first:?}");
    server.join().unwrap();
}
