//! The `fetch` binary against the scripted in-process POP3 server: the
//! durability order, exit codes, TLS rules and hostile input, checked the way
//! a user would check them (files in the Maildir, what is left on the server,
//! the exit status, what was sent over the wire).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::args::{remove_option, scripted_pop3, set_option};
use common::dest::{Dest, maildir_files, maildir_messages, tmp_files};
use common::mail::{
    contains, expected_local, expected_messages, fixture_files, large_message, lf_to_crlf,
    read_all, sorted,
};
use common::pop3server::{Faults, Message, Pop3Server, ServerConfig, TlsMode, msg, numbered};
use common::tls::{TestCa, Validity, acceptor, self_signed};
use common::{Env, all_files, new_session, run_bounded, walk};

fn three() -> Vec<(String, Vec<u8>)> {
    (1..=3)
        .map(|i| {
            (
                format!("uid-{i}"),
                msg(i, &["hello", "..not a terminator", "From me"]),
            )
        })
        .collect()
}

/// Arguments for a plaintext session with the scripted server, into the
/// test's Maildir.
fn args(env: &Env, server: &Pop3Server) -> Vec<String> {
    let mut a = scripted_pop3(server.port);
    a.extend(Dest::Maildir.args(env));
    a
}

fn run(env: &Env, server: &Pop3Server, extra: &[&str]) -> common::Out {
    let mut a = args(env, server);
    a.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&a)
}

/// A server without UIDL whose first session loses its QUIT: the
/// messages were delivered, but the server never deleted them.
fn no_uidl_first_quit_lost() -> ServerConfig {
    ServerConfig {
        capa_uidl: false,
        uidl_supported: false,
        faults: Faults {
            fault_connections: Some(1),
            drop_on_command: Some("QUIT".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn credentials_sent(server: &Pop3Server) -> bool {
    server.commands().iter().any(|c| {
        let u = c.to_ascii_uppercase();
        u.starts_with("USER")
            || u.starts_with("PASS")
            || u.starts_with("AUTH")
            || u.starts_with("APOP")
    }) || contains(&server.received(), b"secret")
}

#[test]
fn delete_mode_fetches_everything_and_empties_the_server() {
    let env = Env::new();
    let msgs = three();
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "", "stdout is for data only");
    assert_eq!(
        out.stderr, "",
        "a successful run without a terminal is silent"
    );
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
    assert!(tmp_files(&env.maildir()).is_empty());
    // The stored line "..not a terminator" (sent stuffed as "...") arrives as stored.
    let one = std::fs::read(&maildir_files(&env.maildir())[0]).unwrap();
    assert!(contains(&one, b"\n..not a terminator\n"));
    assert!(!contains(&one, b"\r\n"));
    // A second run finds nothing and changes nothing.
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 3);
}

#[test]
fn dele_only_after_the_message_is_durable_and_recorded() {
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = (1..=40)
        .map(|i| (format!("UIDL-MARK-{i:03}"), msg(i, &[&format!("body {i}")])))
        .collect();
    let maildir = env.maildir();
    let state = env.state_dir();
    let by_no: HashMap<usize, (String, Vec<u8>)> = msgs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, m)| (i + 1, m))
        .collect();
    let checked = Arc::new(Mutex::new(0usize));
    let checked2 = checked.clone();
    let hook = Arc::new(move |line: &str| {
        let Some(n) = line.strip_prefix("DELE ") else {
            return;
        };
        let n: usize = n.trim().parse().unwrap();
        let (uidl, body) = &by_no[&n];
        let want = expected_local(body);
        assert!(
            maildir_messages(&maildir).contains(&want),
            "DELE {n} arrived before message {n} was in the Maildir"
        );
        let recorded = all_files(&state)
            .iter()
            .any(|(p, b)| p.ends_with("journal") && contains(b, uidl.as_bytes()));
        assert!(
            recorded,
            "DELE {n} arrived before {uidl} was in the journal"
        );
        *checked2.lock().unwrap() += 1;
    });
    let cfg = ServerConfig {
        hook_on_command: Some(hook),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(*checked.lock().unwrap(), 40);
    assert!(server.remaining().is_empty());
    drop(server); // re-raises any hook assertion
}

#[test]
fn wrong_password_exits_77_and_changes_nothing() {
    let env = Env::new();
    let cfg = ServerConfig {
        password: "other".into(),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let out = run(&env, &server, &[]);
    out.assert_exit(77, "authentication failed");
    assert!(
        out.stderr.starts_with("fetch: tester@127.0.0.1: "),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("secret"));
    assert_eq!(server.remaining().len(), 3);
    assert!(maildir_files(&env.maildir()).is_empty());
}

#[test]
fn locked_maildrop_is_a_temporary_failure() {
    let env = Env::new();
    let cfg = ServerConfig {
        faults: Faults {
            auth_reply_override: Some("-ERR [IN-USE] maildrop busy".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 75, "{out:?}");
}

#[test]
fn dropped_connection_mid_retr_then_rerun_delivers_exactly_once() {
    let env = Env::new();
    let msgs = three();
    let cfg = ServerConfig {
        faults: Faults {
            fault_connections: Some(1),
            drop_during_retr: Some((2, 40)),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &[]);
    out.assert_exit(75, "connection");
    // Nothing half-written anywhere; the complete message 1 is kept.
    let got = maildir_messages(&env.maildir());
    assert!(!got.contains(&expected_local(&msgs[1].1)));
    assert!(
        got.iter()
            .all(|m| msgs.iter().any(|(_, b)| &expected_local(b) == m))
    );
    assert!(
        tmp_files(&env.maildir()).is_empty(),
        "{:?}",
        tmp_files(&env.maildir())
    );
    assert_eq!(server.remaining().len(), 3, "no QUIT, so nothing deleted");

    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
    // Message 1 was committed in the first run: the second only deletes it.
    let retr1 = server.commands().iter().filter(|c| *c == "RETR 1").count();
    assert_eq!(retr1, 1, "{:?}", server.commands());
}

#[test]
fn starttls_missing_exits_69_before_credentials() {
    let env = Env::new();
    for faults in [
        Faults {
            stls_not_advertised: true,
            ..Default::default()
        },
        Faults {
            stls_refused: true,
            ..Default::default()
        },
    ] {
        let ca = TestCa::new();
        let cert = ca.issue(&["127.0.0.1"], Validity::Good);
        let cfg = ServerConfig {
            tls: TlsMode::Stls(acceptor(&cert)),
            faults,
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let out = run(&env, &server, &["--tls", "starttls"]);
        assert_eq!(out.code, 69, "{out:?}");
        assert!(!credentials_sent(&server), "{:?}", server.commands());
    }
    // And with no TLS support at all.
    let server = Pop3Server::start(ServerConfig::default(), three());
    let out = run(&env, &server, &["--tls", "starttls"]);
    out.assert_exit(69, "STLS");
    assert!(!credentials_sent(&server));
}

#[test]
fn starttls_response_injection_is_refused() {
    let env = Env::new();
    let ca = TestCa::new();
    let ca_arg = ca.cafile_in(env.path());
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let cfg = ServerConfig {
        tls: TlsMode::Stls(acceptor(&cert)),
        faults: Faults {
            inject_after_stls: Some(b"+OK injected\r\n".to_vec()),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let out = run(&env, &server, &["--tls", "starttls", "--cafile", &ca_arg]);
    out.assert_exit(69, "injection");
    assert!(!credentials_sent(&server));
}

#[test]
fn starttls_and_implicit_tls_work_with_a_trusted_ca() {
    let env = Env::new();
    let ca = TestCa::new();
    let ca_arg = ca.cafile_in(env.path());
    let cert = ca.issue(&["127.0.0.1"], Validity::Good);
    let msgs = three();

    let cfg = ServerConfig {
        tls: TlsMode::Stls(acceptor(&cert)),
        plaintext_auth_allowed: false,
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &["--tls", "starttls", "--cafile", &ca_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        server.commands().iter().filter(|c| *c == "CAPA").count() == 2,
        "CAPA again after STLS"
    );

    let cfg = ServerConfig {
        tls: TlsMode::Implicit(acceptor(&cert)),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &["--tls", "implicit", "--cafile", &ca_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 6);
}

#[test]
fn untrusted_certificates_exit_69_before_credentials() {
    let env = Env::new();
    let ca = TestCa::new();
    let ca_arg = ca.cafile_in(env.path());
    let cases = [
        ("self-signed", self_signed(&["127.0.0.1"]), true),
        (
            "unknown CA",
            TestCa::new().issue(&["127.0.0.1"], Validity::Good),
            true,
        ),
        (
            "wrong host",
            ca.issue(&["mail.example.org"], Validity::Good),
            true,
        ),
        ("expired", ca.issue(&["127.0.0.1"], Validity::Expired), true),
        (
            "not yet valid",
            ca.issue(&["127.0.0.1"], Validity::NotYetValid),
            true,
        ),
        (
            "self-signed, no --cafile",
            ca.issue(&["127.0.0.1"], Validity::Good),
            false,
        ),
    ];
    for (what, cert, with_cafile) in cases {
        let cfg = ServerConfig {
            tls: TlsMode::Implicit(acceptor(&cert)),
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let mut extra = vec!["--tls", "implicit"];
        if with_cafile {
            extra.extend(["--cafile", &ca_arg]);
        }
        let out = run(&env, &server, &extra);
        assert_eq!(out.code, 69, "{what}: {out:?}");
        assert!(!credentials_sent(&server), "{what}");
        assert_eq!(server.remaining().len(), 3);
    }
}

#[test]
fn plaintext_login_is_refused_unless_allowed() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    let a: Vec<String> = args(&env, &server)
        .into_iter()
        .filter(|a| a != "--allow-plaintext-auth")
        .collect();
    let out = env.run_args(&a);
    out.assert_exit(69, "--allow-plaintext-auth");
    assert!(!credentials_sent(&server));
}

#[test]
fn auth_plain_is_preferred_and_user_pass_is_the_fallback() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    let cmds = server.commands();
    assert!(
        cmds.iter().any(|c| c.starts_with("AUTH PLAIN ")),
        "{cmds:?}"
    );
    assert!(!cmds.iter().any(|c| c.starts_with("PASS")), "{cmds:?}");

    let cfg = ServerConfig {
        capa_sasl_plain: false,
        sasl_plain_enabled: false,
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let env = Env::new();
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    let cmds = server.commands();
    assert!(cmds.contains(&"USER tester".to_string()), "{cmds:?}");
    assert!(cmds.contains(&"PASS secret".to_string()), "{cmds:?}");
}

#[test]
fn apop_only_on_request() {
    let env = Env::new();
    let cfg = ServerConfig {
        greeting: "ready <1896.697170952@dbc.mtview.ca.us>".into(),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    assert!(!server.commands().iter().any(|c| c.starts_with("APOP")));
    let env = Env::new();
    let out = run(&env, &server, &["--keep", "--auth", "apop"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        server
            .commands()
            .iter()
            .any(|c| c.starts_with("APOP tester "))
    );
}

#[test]
fn keep_mode_fetches_only_new_mail_and_all_refetches() {
    let env = Env::new();
    let msgs = three();
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert_eq!(server.remaining().len(), 3);
    assert!(!server.commands().iter().any(|c| c.starts_with("DELE")));

    let before = server.commands().len();
    assert_eq!(run(&env, &server, &["-k"]).code, 0);
    let second: Vec<String> = server.commands()[before..].to_vec();
    assert!(!second.iter().any(|c| c.starts_with("RETR")), "{second:?}");
    assert_eq!(maildir_files(&env.maildir()).len(), 3);

    let new = msg(4, &["a new one"]);
    server.mailbox.lock().unwrap().messages.push(Message {
        uidl: "uid-4".into(),
        body: new.clone(),
        deleted: false,
    });
    let before = server.commands().len();
    let out = run(&env, &server, &["--keep", "-v"]);
    out.assert_exit(0, "1 new message");
    let third: Vec<String> = server.commands()[before..].to_vec();
    assert_eq!(
        third
            .iter()
            .filter(|c| c.starts_with("RETR"))
            .collect::<Vec<_>>(),
        vec!["RETR 4"]
    );
    assert_eq!(maildir_files(&env.maildir()).len(), 4);

    assert_eq!(run(&env, &server, &["--keep", "--all"]).code, 0);
    assert_eq!(maildir_files(&env.maildir()).len(), 8);
}

#[test]
fn keep_then_delete_deletes_without_downloading_again() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    let before = server.commands().len();
    assert_eq!(run(&env, &server, &[]).code, 0);
    let second: Vec<String> = server.commands()[before..].to_vec();
    assert!(!second.iter().any(|c| c.starts_with("RETR")), "{second:?}");
    assert_eq!(second.iter().filter(|c| c.starts_with("DELE")).count(), 3);
    assert!(server.remaining().is_empty());
    assert_eq!(maildir_files(&env.maildir()).len(), 3);
}

#[test]
fn server_without_uidl_delete_works_keep_exits_76() {
    let env = Env::new();
    let msgs = three();
    let cfg = ServerConfig {
        capa_uidl: false,
        uidl_supported: false,
        ..Default::default()
    };
    let server = Pop3Server::start(cfg.clone(), msgs.clone());
    let out = run(&env, &server, &["--keep"]);
    out.assert_exit(76, "UIDL");
    assert_eq!(server.remaining().len(), 3);

    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
}

#[test]
fn no_uidl_interrupted_before_quit_is_not_delivered_twice() {
    let env = Env::new();
    let msgs = three();
    let server = Pop3Server::start(no_uidl_first_quit_lost(), msgs.clone());
    let out = run(&env, &server, &[]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert_eq!(server.remaining().len(), 3, "QUIT never completed");
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        maildir_messages(&env.maildir()),
        expected_messages(&msgs),
        "no duplicates"
    );
    assert!(server.remaining().is_empty());
}

#[test]
fn interrupted_quit_with_uidl_deletes_on_next_run_without_refetch() {
    let env = Env::new();
    let msgs = three();
    let cfg = ServerConfig {
        faults: Faults {
            fault_connections: Some(1),
            drop_on_command: Some("QUIT".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 75, "{out:?}");
    let before = server.commands().len();
    assert_eq!(run(&env, &server, &[]).code, 0);
    assert!(
        !server.commands()[before..]
            .iter()
            .any(|c| c.starts_with("RETR"))
    );
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
}

#[test]
fn refused_dele_is_reported_and_retried() {
    let env = Env::new();
    let msgs = three();
    let cfg = ServerConfig {
        faults: Faults {
            fault_connections: Some(1),
            dele_error: [2].into_iter().collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &[]);
    out.assert_exit(76, "refused to delete");
    assert_eq!(server.remaining().len(), 1);
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty());
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
}

#[test]
fn no_password_source_without_a_terminal_exits_78_at_once() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    let mut a = args(&env, &server);
    remove_option(&mut a, "--password-command");
    let mut c = env.cmd();
    c.args(&a);
    new_session(&mut c);
    let out = run_bounded(c, Duration::from_secs(10));
    out.assert_exit(78, "--password-command");
    assert!(out.elapsed < Duration::from_secs(2), "{:?}", out.elapsed);
    assert_eq!(server.connections(), 0, "no network before a password");
}

#[test]
fn a_second_run_on_the_same_account_exits_75_at_once() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    let lock: PathBuf = all_files(&env.state_dir())
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.ends_with("lock"))
        .expect("a lock file");
    let held = std::fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    let out = run(&env, &server, &["--keep"]);
    out.assert_exit(75, "another fetch");
    assert!(out.elapsed < Duration::from_secs(2));
    drop(held);
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
}

#[test]
fn hostile_unique_ids_are_ledger_keys_never_paths() {
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = (1..=4)
        .map(|i| (format!("x{i}"), msg(i, &["hi"])))
        .collect();
    let cfg = ServerConfig {
        faults: Faults {
            uidl_override: Some(vec![
                "../../../../etc/passwd".into(),
                "a/b/c".into(),
                "with spaces in it".into(),
                "z".repeat(200),
            ]),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &["--keep"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    for f in maildir_files(&env.maildir()) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains("passwd") && !name.contains("spaces"),
            "{name}"
        );
    }
    let before = server.commands().len();
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    assert!(
        !server.commands()[before..]
            .iter()
            .any(|c| c.starts_with("RETR"))
    );
}

#[test]
fn duplicate_unique_ids_are_refused() {
    let env = Env::new();
    let cfg = ServerConfig {
        faults: Faults {
            uidl_override: Some(vec!["same".into(), "other".into(), "same".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let out = run(&env, &server, &[]);
    out.assert_exit(76, "same unique id");
    assert!(out.stderr.contains("messages 1 and 3"), "{}", out.stderr);
    assert_eq!(server.remaining().len(), 3);
    assert!(maildir_files(&env.maildir()).is_empty());
}

#[test]
fn size_different_from_list_is_delivered_with_a_warning() {
    let env = Env::new();
    let msgs = three();
    let cfg = ServerConfig {
        faults: Faults {
            list_size_override: [(1, 5u64), (2, 100_000u64)].into_iter().collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &["-v"]);
    out.assert_exit(0, "LIST announced 5 bytes");
    assert!(
        out.stderr.contains("LIST announced 100000 bytes"),
        "{}",
        out.stderr
    );
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
}

#[test]
fn broken_replies_get_clear_errors_and_leave_nothing_half_written() {
    // (fault, expected exit code, words in the error)
    let cases: Vec<(Faults, i32, &str)> = vec![
        (
            Faults {
                long_line: Some(1 << 20),
                ..Default::default()
            },
            76,
            "longer than",
        ),
        (
            Faults {
                unterminated_multiline: Some("RETR".into()),
                ..Default::default()
            },
            75,
            "closed",
        ),
        (
            Faults {
                unterminated_multiline: Some("UIDL".into()),
                ..Default::default()
            },
            75,
            "closed",
        ),
    ];
    for (faults, code, words) in cases {
        let env = Env::new();
        let cfg = ServerConfig {
            faults: faults.clone(),
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let out = run(&env, &server, &[]);
        assert_eq!(out.code, code, "{faults:?}: {out:?}");
        assert!(out.stderr.contains(words), "{faults:?}: {}", out.stderr);
        assert!(tmp_files(&env.maildir()).is_empty());
        assert_eq!(server.remaining().len(), 3);
    }
}

#[test]
fn stalled_and_dribbling_servers_time_out() {
    for faults in [
        Faults {
            stall_after_greeting: Some(Duration::from_secs(8)),
            ..Default::default()
        },
        Faults {
            stall_during_retr: Some((2, 30, Duration::from_secs(8))),
            ..Default::default()
        },
        Faults {
            dribble: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    ] {
        let env = Env::new();
        let cfg = ServerConfig {
            faults: faults.clone(),
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let out = run(&env, &server, &["--timeout", "2"]);
        assert_eq!(out.code, 75, "{faults:?}: {out:?}");
        assert!(
            out.stderr.contains("timed out"),
            "{faults:?}: {}",
            out.stderr
        );
        assert!(
            out.elapsed < Duration::from_secs(4),
            "{faults:?}: {:?}",
            out.elapsed
        );
        assert!(tmp_files(&env.maildir()).is_empty());
    }
}

#[test]
fn many_messages_span_several_batches() {
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = (1..=600)
        .map(|i| (format!("u{i}"), msg(i, &[&format!("number {i}")])))
        .collect();
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
}

#[test]
fn without_pipelining_one_command_at_a_time_still_works() {
    let env = Env::new();
    let msgs = numbered(20, &["x"]);
    let cfg = ServerConfig {
        capa_pipelining: false,
        capa_enabled: false,
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&msgs));
    assert!(server.remaining().is_empty());
}

#[test]
fn own_fixtures_and_a_large_attachment_arrive_byte_exact() {
    let env = Env::new();
    let mut originals = read_all(&fixture_files());
    originals.push(large_message(3 << 20, "\r\n"));
    originals.push(large_message(1 << 20, "\n"));
    let msgs: Vec<(String, Vec<u8>)> = originals
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("f{i}"), lf_to_crlf(b)))
        .collect();
    let server = Pop3Server::start(ServerConfig::default(), msgs);
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let want = sorted(originals.iter().map(|b| expected_local(b)).collect());
    assert_eq!(maildir_messages(&env.maildir()), want);
}

#[test]
fn a_50_mb_message_streams_in_bounded_memory() {
    let env = Env::new();
    let big = large_message(38 << 20, "\r\n"); // ~51 MB of base64
    assert!(big.len() > 50_000_000);
    let want = expected_local(&big);
    let server = Pop3Server::start(ServerConfig::default(), vec![("big".into(), big)]);
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let files = maildir_files(&env.maildir());
    assert_eq!(files.len(), 1);
    assert!(std::fs::read(&files[0]).unwrap() == want, "content differs");
    // The promise is memory independent of message size; 16 MiB leaves
    // room for the allocator and TLS buffers, far below the 50 MB message.
    assert!(out.max_rss_kb > 0, "no memory reading was taken");
    assert!(
        out.max_rss_kb < 16 * 1024,
        "peak RSS {} KiB",
        out.max_rss_kb
    );
    eprintln!(
        "peak RSS for a {} byte message: {} KiB",
        want.len(),
        out.max_rss_kb
    );
}

#[test]
fn the_password_appears_in_no_output_and_no_state_file() {
    const SENTINEL: &str = "S3ntinel-pa55word";
    for sasl in [true, false] {
        let env = Env::new();
        let cfg = ServerConfig {
            password: SENTINEL.into(),
            capa_sasl_plain: sasl,
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let mut a = args(&env, &server);
        set_option(&mut a, "--password-command", &format!("echo {SENTINEL}"));
        a.push("-vv".into());
        let out = env.run_args(&a);
        assert_eq!(out.code, 0, "{out:?}");
        // The trace shows the exchange, with the login redacted.
        assert!(out.stderr.contains("C: RETR 1"), "{}", out.stderr);
        assert!(out.stderr.contains("[REDACTED]"), "{}", out.stderr);
        // What went over the wire carrying the password, in any encoding.
        let secret_lines: Vec<String> = server
            .commands()
            .into_iter()
            .filter(|c| c.starts_with("PASS") || c.starts_with("AUTH"))
            .collect();
        assert!(!secret_lines.is_empty());
        for needle in std::iter::once(SENTINEL.to_string()).chain(
            secret_lines
                .iter()
                .map(|l| l.rsplit(' ').next().unwrap().to_string()),
        ) {
            assert!(!out.stderr.contains(&needle), "{needle} in stderr");
            assert!(!out.stdout.contains(&needle), "{needle} in stdout");
            for (path, bytes) in all_files(env.path()) {
                assert!(!contains(&bytes, needle.as_bytes()), "{needle} in {path:?}");
            }
        }
    }
}

const AS_NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// Whether another process of the same user (nobody) can read the
/// process's /proc/PID/environ: ptrace rules, refused for a process that
/// is not dumpable.
fn nobody_can_read_environ_of(pid: u32) -> bool {
    std::process::Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .args(["head", "-c", "1", &format!("/proc/{pid}/environ")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn the_process_is_not_dumpable_while_it_holds_a_password() {
    // Seen from outside only when fetch runs as another user than root
    // (root may read any process). Running as root is a matter of the
    // environment, not a tool to install, so these skips stay plain ones
    // that FETCH_REQUIRE does not govern (CI runs as root; setpriv comes
    // with util-linux).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/setpriv").exists() {
        println!("SKIP: needs root and setpriv, to run fetch as nobody");
        return;
    }
    if !fetch::platform::LINUX_CALLS {
        // The portable build does what other systems can: no core dumps
        // (a unit test checks that); only Linux's prctl also keeps a
        // process of the same user out.
        println!("SKIP: the portable build does not call prctl(PR_SET_DUMPABLE)");
        return;
    }
    // The measurement tells the two apart: a plain process of nobody's is
    // readable by nobody.
    let mut sleeper = std::process::Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .args(["sleep", "5"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let control = nobody_can_read_environ_of(sleeper.id());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert!(control, "the control process was not readable");

    let env = Env::new();
    let dirs = walk(env.path()).into_iter().filter(|p| p.is_dir());
    for d in dirs.chain([env.path().to_path_buf()]) {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let cfg = ServerConfig {
        faults: Faults {
            stall_before_greeting: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let mut c = env.cmd_wrapped(&AS_NOBODY);
    c.args(args(&env, &server))
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    // Connected: the password was read before, and is held now.
    let start = std::time::Instant::now();
    while server.connections() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.connections() > 0, "fetch never connected");
    let readable = nobody_can_read_environ_of(child.id());
    let exited = child.try_wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(exited, None, "fetch ended early");
    assert!(
        !readable,
        "another process of the same user could read fetch's memory"
    );
}

#[test]
fn host_names_are_verified_by_dns_name_too() {
    let env = Env::new();
    let ca = TestCa::new();
    let ca_arg = ca.cafile_in(env.path());
    for (names, ok) in [
        (&["localhost"][..], true),
        (&["*.localhost"][..], false),
        (&["mail.example.org"][..], false),
        (&["127.0.0.1"][..], false), // an IP SAN does not vouch for a name
    ] {
        let cert = ca.issue(names, Validity::Good);
        let cfg = ServerConfig {
            tls: TlsMode::Implicit(acceptor(&cert)),
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, three());
        let mut a = args(&env, &server);
        set_option(&mut a, "--pop3", "localhost");
        a.extend(["--tls", "implicit", "--cafile", &ca_arg, "--keep"].map(String::from));
        let out = env.run_args(&a);
        if ok {
            assert_eq!(out.code, 0, "{names:?}: {out:?}");
        } else {
            assert_eq!(out.code, 69, "{names:?}: {out:?}");
            assert!(
                out.stderr.contains("not trusted"),
                "{names:?}: {}",
                out.stderr
            );
            assert!(!credentials_sent(&server), "{names:?}");
        }
    }
}

#[test]
fn no_uidl_new_mail_before_already_delivered_mail_is_delivered_in_the_same_run() {
    let env = Env::new();
    let msgs = three();
    let server = Pop3Server::start(no_uidl_first_quit_lost(), msgs.clone());
    assert_ne!(run(&env, &server, &[]).code, 0);
    // New mail arrives in front of the three already delivered ones, so the
    // last messages of the next run are all "already delivered".
    let new = msg(9, &["new in front"]);
    server.mailbox.lock().unwrap().messages.insert(
        0,
        Message {
            uidl: "new".into(),
            body: new.clone(),
            deleted: false,
        },
    );
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut all = msgs.clone();
    all.push(("new".into(), new));
    assert_eq!(maildir_messages(&env.maildir()), expected_messages(&all));
    assert!(server.remaining().is_empty());
    assert!(tmp_files(&env.maildir()).is_empty());
}

#[test]
fn poison_messages_arrive_and_do_not_stop_the_rest() {
    let env = Env::new();
    let msgs: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("nul".into(), b"\0\0\0\r\n".to_vec()),
        ("bare-cr".into(), b"\r".to_vec()),
        ("headerless".into(), b"no header here\r\n..\r\n".to_vec()),
        ("fine".into(), msg(1, &["after the poison"])),
    ];
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let out = run(&env, &server, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let got = maildir_messages(&env.maildir());
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.contains(&expected_local(&msgs[4].1)));
    assert!(got.contains(&b"\0\0\0\n".to_vec()));
    assert!(got.contains(&b"no header here\n..\n".to_vec()));
    assert!(server.remaining().is_empty());
    // No crash loop: the next run is clean and quiet.
    let out = run(&env, &server, &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
}

#[test]
fn show_cert_then_pin_the_fingerprint() {
    let env = Env::new();
    let cert = self_signed(&["127.0.0.1"]);
    let fp: String = openssl::x509::X509::from_pem(cert.cert_pem.as_bytes())
        .unwrap()
        .digest(openssl::hash::MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let cfg = ServerConfig {
        tls: TlsMode::Implicit(acceptor(&cert)),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, three());
    let port = server.port.to_string();
    let out = env.run(&[
        "--pop3",
        "127.0.0.1",
        "--port",
        &port,
        "-u",
        "tester",
        "--show-cert",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("sha256: {fp}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("trusted: no"), "{}", out.stdout);
    assert!(out.stdout.contains("PIPELINING"), "{}", out.stdout);
    assert!(!credentials_sent(&server));

    let mut base = args(&env, &server);
    remove_option(&mut base, "--tls");
    base.retain(|a| a != "--allow-plaintext-auth");
    let with = |pin: &str| {
        let mut a = base.clone();
        a.extend(["--fingerprint".into(), pin.into(), "--keep".into()]);
        env.run_args(&a)
    };
    let out = with(&fp.to_lowercase());
    assert_eq!(
        out.code, 0,
        "the pinned self-signed certificate is trusted: {out:?}"
    );
    assert_eq!(maildir_files(&env.maildir()).len(), 3);
    let wrong = format!("00{}", &fp[2..]);
    let before = server.commands().len();
    let out = with(&wrong);
    out.assert_exit(69, "pinned");
    assert!(
        server.commands()[before..].is_empty(),
        "nothing sent after a pin mismatch"
    );

    // A pin replaces the CA check: a CA-trusted certificate with another
    // fingerprint is refused too.
    let ca = TestCa::new();
    let ca_arg = ca.cafile_in(env.path());
    let good = ca.issue(&["127.0.0.1"], Validity::Good);
    let server2 = Pop3Server::start(
        ServerConfig {
            tls: TlsMode::Implicit(acceptor(&good)),
            ..Default::default()
        },
        three(),
    );
    let port2 = server2.port.to_string();
    let out = env.run(&[
        "--pop3",
        "127.0.0.1",
        "--port",
        &port2,
        "-u",
        "tester",
        "--password-command",
        "echo secret",
        "--cafile",
        &ca_arg,
        "--fingerprint",
        &fp,
        "--maildir",
        env.maildir().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(!credentials_sent(&server2));
    let out = env.run(&["--pop3", "h", "--fingerprint", "not-hex"]);
    assert_eq!(out.code, 78, "{out:?}");
}

#[test]
fn keep_with_delete_after_days() {
    let env = Env::new();
    let server = Pop3Server::start(ServerConfig::default(), three());
    assert_eq!(run(&env, &server, &["--keep"]).code, 0);
    let out = run(&env, &server, &["--keep", "--delete-after", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        server.remaining().len(),
        3,
        "fetched today: not a day old yet"
    );
    let before = server.commands().len();
    let out = run(&env, &server, &["--keep", "--delete-after", "0", "-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.remaining().is_empty(), "older than 0 days: deleted");
    assert!(out.stderr.contains("3 deleted"), "{}", out.stderr);
    assert!(
        !server.commands()[before..]
            .iter()
            .any(|c| c.starts_with("RETR"))
    );
    assert_eq!(maildir_files(&env.maildir()).len(), 3, "local copies stay");
    assert_eq!(
        run(&env, &server, &["--delete-after", "3"]).code,
        64,
        "needs --keep"
    );
}
