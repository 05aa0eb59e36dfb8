//! --daemon, SIGTERM and -j: new mail is picked up while running, a
//! signal lets the message in flight be committed and the session end
//! properly (the daemon exits 0, a one-shot run 143; nothing lost or
//! doubled), a failing account backs off without holding up the others,
//! and accounts run in parallel.

mod common;

use std::time::Duration;

use common::Env;
use common::args::scripted_pop3;
use common::config::{account, write_config};
use common::dest::{Dest, maildir_files, maildir_messages, tmp_files};
use common::mail::expected_messages;
use common::pop3server::{
    Message, Pop3Server, ServerConfig, account_server, mail_of, msg, numbered, slow_retr,
};

#[test]
fn daemon_picks_up_new_mail_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    let server = Pop3Server::start(
        ServerConfig::default(),
        vec![("u1".into(), msg(1, &["first"]))],
    );
    let mut args = scripted_pop3(server.port);
    args.extend(Dest::Maildir.args(&env));
    args.extend(["--daemon".into(), "1".into()]);
    let mut child = env.spawn(&args);
    child.wait_until("the first message", Duration::from_secs(10), || {
        maildir_files(&env.maildir()).len() == 1
    });
    server.mailbox.lock().unwrap().messages.push(Message {
        uidl: "u2".into(),
        body: msg(2, &["second"]),
        deleted: false,
    });
    child.wait_until("mail added while running", Duration::from_secs(10), || {
        maildir_files(&env.maildir()).len() == 2
    });
    assert_eq!(child.stop(Duration::from_secs(10)).code, 0);
    assert!(server.remaining().is_empty());
    assert_eq!(maildir_files(&env.maildir()).len(), 2);
}

#[test]
fn sigterm_mid_fetch_commits_what_arrived_and_ends_the_session() {
    let env = Env::new();
    let msgs = numbered(40, &["x"]);
    let cfg = ServerConfig {
        capa_pipelining: false, // one RETR at a time: a long, slow fetch
        hook_on_command: Some(slow_retr(Duration::from_millis(50))),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let mut args = scripted_pop3(server.port);
    args.extend(Dest::Maildir.args(&env));
    let mut child = env.spawn(&args);
    child.wait_until("a few messages", Duration::from_secs(10), || {
        server
            .commands()
            .iter()
            .filter(|c| c.starts_with("RETR"))
            .count()
            >= 5
    });
    let exit = child.stop(Duration::from_secs(10));
    assert_eq!(
        exit.code,
        128 + 15,
        "a one-shot run cut short says so, as shells do"
    );
    assert!(exit.took < Duration::from_secs(2), "{:?}", exit.took);
    let here = maildir_messages(&env.maildir());
    assert!(
        !here.is_empty() && here.len() < 40,
        "{} messages",
        here.len()
    );
    assert!(
        server.commands().contains(&"QUIT".to_string()),
        "the session ended properly"
    );
    assert_eq!(
        here.len() + server.remaining().len(),
        40,
        "the delivered ones were deleted, the rest stay"
    );
    assert!(tmp_files(&env.maildir()).is_empty());
    // The next run takes the rest, each once.
    assert_eq!(env.run_args(&args).code, 0);
    let want = expected_messages(&msgs);
    assert_eq!(maildir_messages(&env.maildir()), want);
}

#[test]
fn a_failing_account_backs_off_without_holding_up_the_others() {
    let env = Env::new();
    let good = account_server("good", "g", 1);
    let bad = account_server("bad", "right", 1);
    write_config(
        &env,
        &[
            account(
                "bad",
                bad.port,
                "bad",
                "password_command = \"echo wrong\"",
                &env,
            ),
            account(
                "good",
                good.port,
                "good",
                "password_command = \"echo g\"",
                &env,
            ),
        ]
        .concat(),
        0o600,
    );
    let child = env.spawn(&["--daemon", "1"]);
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(child.stop(Duration::from_secs(10)).code, 0);
    let (g, b) = (good.connections(), bad.connections());
    assert!(g >= 4, "the good account kept its pace: {g} runs");
    assert!(
        (2..=3).contains(&b),
        "the failing one backed off (1 s, 2 s, 4 s...): {b} runs"
    );
    assert_eq!(maildir_files(&env.path().join("Mail-good")).len(), 1);
}

#[test]
fn accounts_run_in_parallel_with_jobs() {
    let env = Env::new();
    let slow = |user: &str| {
        Pop3Server::start(
            ServerConfig {
                user: user.into(),
                password: "p".into(),
                hook_on_command: Some(slow_retr(Duration::from_millis(300))),
                ..Default::default()
            },
            mail_of(user, 3),
        )
    };
    let servers: Vec<Pop3Server> = ["a", "b", "c"].iter().map(|u| slow(u)).collect();
    let text: String = ["a", "b", "c"]
        .iter()
        .zip(&servers)
        .map(|(u, s)| account(u, s.port, u, "password_command = \"echo p\"", &env))
        .collect();
    write_config(&env, &text, 0o600);
    let out = env.run(&["-j", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    for u in ["a", "b", "c"] {
        assert_eq!(
            maildir_files(&env.path().join(format!("Mail-{u}"))).len(),
            3,
            "{u}"
        );
    }
    // Sequentially this takes 9 x 300 ms at least; in parallel about a third.
    assert!(
        out.elapsed < Duration::from_millis(2500),
        "{:?}",
        out.elapsed
    );
}

/// An account whose server accepts the connection and then says nothing
/// does not hold up the daemon's other accounts: each account goes back in
/// the queue as it falls due, instead of every account waiting for the
/// slowest of a round.
#[test]
fn a_hung_account_holds_up_no_other_in_the_daemon() {
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(4) {
            h.lock().unwrap().push(s);
        }
    });
    let env = Env::new();
    let good = account_server("good", "g", 1);
    let text = [
        format!(
            "[accounts.hung]\nhost = \"127.0.0.1\"\nport = {hung}\ntls = \"none\"\n\
             allow_plaintext_auth = true\nuser = \"h\"\npassword_command = \"echo h\"\n\
             timeout = 120\nmaildir = \"{}/Mail-hung\"\n\n",
            env.path().display()
        ),
        account(
            "good",
            good.port,
            "good",
            "password_command = \"echo g\"",
            &env,
        ),
    ]
    .concat();
    write_config(&env, &text, 0o600);
    let mut child = env.spawn(&["--daemon", "1", "-j", "2"]);
    let mail = env.path().join("Mail-good");
    child.wait_until("the first message", Duration::from_secs(10), || {
        maildir_files(&mail).len() == 1
    });
    good.mailbox.lock().unwrap().messages.push(Message {
        uidl: "later".into(),
        body: msg(2, &["later"]),
        deleted: false,
    });
    // The hung account's first run lasts 120 s; the good one's next poll
    // is due in 1 s.
    child.wait_until(
        "the good account's next poll",
        Duration::from_secs(20),
        || maildir_files(&mail).len() == 2,
    );
    assert_eq!(
        held.lock().unwrap().len(),
        1,
        "the hung account connected once"
    );
    // Hang up on the hung account's run, so that the daemon can stop.
    held.lock().unwrap().clear();
    assert_eq!(child.stop(Duration::from_secs(20)).code, 0);
}
