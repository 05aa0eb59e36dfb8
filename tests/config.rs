//! The config file with many accounts, and password sources, through the
//! binary: which accounts run, what the exit status says, which password is
//! used, and what is refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::config::{account, write_config};
use common::dest::maildir_files;
use common::pop3server::account_server;
use common::{Env, new_session};

#[test]
fn all_accounts_run_and_one_failure_does_not_stop_the_others() {
    let env = Env::new();
    let a = account_server("alice", "pa", 2);
    let b = account_server("bob", "pb", 3);
    let c = account_server("carol", "pc", 1);
    let text = [
        account("a", a.port, "alice", "password_command = \"echo pa\"", &env),
        account(
            "b",
            b.port,
            "bob",
            "password_command = \"echo WRONG\"",
            &env,
        ),
        account("c", c.port, "carol", "password_command = \"echo pc\"", &env),
    ]
    .concat();
    write_config(&env, &text, 0o644);

    let out = env.run(&[]);
    assert_eq!(out.code, 77, "one failed account gives its code: {out:?}");
    assert!(
        out.stderr.contains("fetch: b: authentication failed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(maildir_files(&env.path().join("Mail-a")).len(), 2);
    assert_eq!(
        maildir_files(&env.path().join("Mail-c")).len(),
        1,
        "c ran after b failed"
    );
    assert_eq!(b.remaining().len(), 3);

    // Only the named account runs.
    let before = a.connections();
    let out = env.run(&["c", "-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(a.connections(), before, "account a was not contacted");

    // Two accounts failing differently: 75.
    let text = [
        account(
            "b",
            b.port,
            "bob",
            "password_command = \"echo WRONG\"",
            &env,
        ),
        account("d", 1, "dave", "password_command = \"echo x\"", &env),
    ]
    .concat();
    write_config(&env, &text, 0o644);
    let out = env.run(&[]);
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
}

#[test]
fn command_line_overrides_the_file_for_this_run() {
    let env = Env::new();
    let a = account_server("alice", "pa", 2);
    let text = account(
        "a",
        a.port,
        "alice",
        "password_command = \"echo pa\"\nkeep = true",
        &env,
    );
    write_config(&env, &text, 0o644);
    let elsewhere = env.path().join("Other");
    let out = env.run(&["a", "--maildir", elsewhere.to_str().unwrap(), "--no-keep"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_files(&elsewhere).len(), 2);
    assert!(!env.path().join("Mail-a").exists());
    assert!(a.remaining().is_empty(), "--no-keep overrode keep = true");
}

#[test]
fn config_errors_exit_78_with_file_and_line() {
    let env = Env::new();
    let p = write_config(&env, "[accounts.x]\nhost = \"h\"\nkepp = true\n", 0o644);
    let out = env.run(&[]);
    out.assert_exit(78, &format!("{}:3", p.display()));
    assert!(out.stderr.contains("kepp"), "{}", out.stderr);

    let p = write_config(
        &env,
        "[accounts.x]\nhost = \"h\"\ntimeout = \"soon\"\n",
        0o644,
    );
    let out = env.run(&[]);
    out.assert_exit(78, &format!("{}:3", p.display()));

    write_config(&env, "[accounts.x]\nhost = \"h\"\n", 0o644);
    let out = env.run(&["nosuch"]);
    out.assert_exit(78, "nosuch");

    // An explicit --config that does not exist.
    let out = env.run(&["--config", "/nonexistent/fetch.toml"]);
    assert_eq!(out.code, 78, "{out:?}");
    // No config and no --pop3: nothing to do is a usage error.
    let env = Env::new();
    let out = env.run(&[]);
    assert_eq!(out.code, 64, "{out:?}");
}

#[test]
fn a_password_in_the_config_needs_a_private_file() {
    let env = Env::new();
    let a = account_server("alice", "S3cret-in-config", 1);
    let text = account(
        "a",
        a.port,
        "alice",
        "password = \"S3cret-in-config\"",
        &env,
    );
    let p = write_config(&env, &text, 0o640);
    let out = env.run(&[]);
    out.assert_exit(78, &format!("chmod 600 {}", p.display()));
    assert_eq!(a.connections(), 0);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["-vv"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("S3cret-in-config"));
}

#[test]
fn netrc_supplies_the_password_and_must_be_private() {
    let env = Env::new();
    let a = account_server("alice", "from-netrc", 1);
    write_config(&env, &account("a", a.port, "alice", "", &env), 0o644);
    let netrc = env.home().join(".netrc");
    std::fs::write(
        &netrc,
        "machine other.example login alice password nope\n\
         machine 127.0.0.1 login alice password from-netrc\n",
    )
    .unwrap();
    std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&[]);
    out.assert_exit(78, "chmod 600");
    std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(a.remaining().is_empty());
    // password_command comes first.
    let b = account_server("bob", "from-command", 1);
    std::fs::write(&netrc, "machine 127.0.0.1 login bob password from-netrc\n").unwrap();
    write_config(
        &env,
        &account(
            "b",
            b.port,
            "bob",
            "password_command = \"echo from-command\"",
            &env,
        ),
        0o644,
    );
    assert_eq!(env.run(&[]).code, 0);
}

#[test]
fn no_password_and_no_terminal_names_the_account() {
    let env = Env::new();
    let a = account_server("alice", "pa", 1);
    write_config(&env, &account("work", a.port, "alice", "", &env), 0o644);
    let mut c = env.cmd();
    new_session(&mut c);
    let out = common::run_bounded(c, Duration::from_secs(10));
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.starts_with("fetch: work: no password"),
        "{}",
        out.stderr
    );
    assert_eq!(a.connections(), 0);
}

#[test]
fn paths_expand_tilde_and_variables() {
    let env = Env::new();
    let a = account_server("alice", "pa", 1);
    let text = format!(
        "[accounts.a]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow_plaintext_auth = true\n\
         user = \"alice\"\npassword_command = \"echo pa\"\nmbox = \"~/mail/$FETCH_TEST_BOX\"\n",
        a.port
    );
    write_config(&env, &text, 0o644);
    std::fs::create_dir_all(env.home().join("mail")).unwrap();
    let mut c = env.cmd();
    c.env("FETCH_TEST_BOX", "inbox.mbox");
    let out = common::run_bounded(c, Duration::from_secs(30));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(env.home().join("mail/inbox.mbox").exists());
}
