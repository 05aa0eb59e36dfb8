//! An IMAP server that lies or misbehaves (scripted, in process): literal
//! sizes of 4 GiB and beyond, a body sent twice, a UID not asked for or
//! missing, UIDVALIDITY 0 or absent, folder names that try to leave the
//! Maildir, a megabyte-long line, a greeting that never ends. Each gets a
//! clear error or a safe skip: no panic, no hang, no path outside the mail
//! directory, nothing half written, and an honest rerun gets every message
//! exactly once.

mod common;

use std::path::Path;
use std::time::Duration;

use common::dest::{maildir_messages, tmp_files};
use common::imapserver::{Msg, Script, fetch, honest_body, serve, small, stored};
use common::{Env, walk};

fn three() -> Vec<Msg> {
    vec![small(1), small(2), small(3)]
}

/// A refused run: exit 76 (protocol), the error says `what`, the Maildir
/// holds only whole messages of the mailbox (each at most once), no tmp
/// file is left, and a run against an honest server then leaves every
/// message there exactly once.
fn refused_then_honest(script: Script, what: &str) {
    let env = Env::new();
    let port = serve(script);
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 76, "{what}: {out:?}");
    assert!(out.stderr.contains(what), "{what}: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let all = stored(&three());
    let got = maildir_messages(&env.maildir());
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup, got, "{what}: a message twice");
    assert!(got.iter().all(|m| all.contains(m)), "{what}: {got:?}");
    assert!(tmp_files(&env.maildir()).is_empty(), "{what}");

    let honest = serve(Script::new(three()));
    let out = fetch(&env, honest, &[]);
    assert_eq!(out.code, 0, "{what}: {out:?}");
    assert_eq!(maildir_messages(&env.maildir()), all, "{what}");
}

#[test]
fn literals_of_4_gib_and_beyond_are_refused_before_anything_is_written() {
    // The server announces the literal and closes: fetch must not wait for
    // (or make room for) 4 GiB.
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                if m.uid != 2 {
                    return (honest_body(seq, m), false);
                }
                let mut out = format!("* {seq} FETCH (UID 2 BODY[] {{4294967295}}\r\n");
                out.push_str(&"x".repeat(1000));
                (out.into_bytes(), true)
            }),
            ..Script::new(three())
        },
        "bytes and sends 4294967295",
    );
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                let out = format!("* {seq} FETCH (UID {} BODY[] {{99999999999}}\r\n", m.uid);
                (out.into_bytes(), true)
            }),
            ..Script::new(three())
        },
        "literal",
    );
}

#[test]
fn a_body_twice_a_uid_not_asked_for_or_none_at_all_are_refused() {
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                let mut out = honest_body(seq, m);
                if m.uid == 2 {
                    out.extend(honest_body(seq, m));
                }
                (out, false)
            }),
            ..Script::new(three())
        },
        "sent UID 2 twice",
    );
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                let m2 = Msg::new(m.uid + 100, m.body.clone());
                (honest_body(seq, &m2), false)
            }),
            ..Script::new(three())
        },
        "which was not asked for",
    );
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                let mut out =
                    format!("* {} FETCH (BODY[] {{{}}}\r\n", seq + 50, m.body.len()).into_bytes();
                out.extend(&m.body);
                out.extend(b")\r\n");
                (out, false)
            }),
            ..Script::new(three())
        },
        "without its UID",
    );
}

#[test]
fn uidvalidity_zero_or_missing_is_refused_and_nothing_is_fetched() {
    for uv in [Some(0), None] {
        let env = Env::new();
        let port = serve(Script {
            uid_validity: uv,
            ..Script::new(three())
        });
        let out = fetch(&env, port, &[]);
        assert_eq!(out.code, 76, "{uv:?}: {out:?}");
        assert!(
            out.stderr.contains("no valid UIDVALIDITY"),
            "{}",
            out.stderr
        );
        assert!(maildir_messages(&env.maildir()).is_empty());
    }
}

#[test]
fn hostile_folder_names_stay_inside_the_maildir() {
    let names = [
        "\"..\"",
        "\"../../evil1\"",
        "\"a/../../../evil2\"",
        "\"/tmp/evil3\"",
        "\".\"",
        "\"..evil4\"",
        "\"a\\\\b\"",
        "\"say \\\"hi\\\"\"",
        // A NUL in a literal: RFC 3501 forbids it; refused or mapped, never
        // a path.
        "{6}\r\nevil\x005",
        "\"&Li4vLi4-evil6\"", // "../.." in modified UTF-7
    ];
    let env = Env::new();
    let port = serve(Script {
        list: names.iter().map(|s| s.to_string()).collect(),
        ..Script::new(three())
    });
    let before = walk(env.path());
    let out = fetch(&env, port, &["--all-folders"]);
    // The server answers SELECT only for the names it listed: every folder
    // was selected by its real name (a\b, say "hi") and fetched.
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let md = env.maildir();
    // Nothing new anywhere in the test's world but in the Maildir and
    // fetch's state; nothing named evil outside the Maildir (the parent of
    // the test's directory included).
    for p in walk(env.path()) {
        assert!(
            before.contains(&p) || p.starts_with(&md) || p.starts_with(env.state_dir()),
            "{} is outside the Maildir",
            p.display()
        );
    }
    let parent = env.path().parent().unwrap();
    for e in std::fs::read_dir(parent).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        assert!(!name.contains("evil"), "{name} next to the test directory");
    }
    assert!(!Path::new("/tmp/evil3").exists());
    // Every folder fetch took is a Maildir++ folder directly under the
    // Maildir: `.` then a name with no `/`.
    for e in std::fs::read_dir(&md).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !["new", "cur", "tmp"].contains(&name.as_str()) {
            assert!(
                name.starts_with('.') && name != "." && name != "..",
                "{name}"
            );
            assert!(!name.contains('/') && !name.contains('\0'), "{name}");
        }
    }
    assert_eq!(maildir_messages(&md), stored(&three()), "{out:?}");
    for dir in [".a%5Cb", ".say \"hi\""] {
        assert_eq!(
            maildir_messages(&md.join(dir)),
            stored(&three()),
            "{dir} in {:?}",
            walk(&md)
        );
    }
}

#[test]
fn a_folder_the_server_refuses_to_open_does_not_stop_the_others() {
    let env = Env::new();
    let port = serve(Script {
        list: vec!["\"Archive\"".into(), "\"refused\"".into(), "\"Zoo\"".into()],
        ..Script::new(three())
    });
    let out = fetch(&env, port, &["--all-folders"]);
    out.assert_exit(69, "folder refused: SELECT refused: the server said NO");
    let md = env.maildir();
    for dir in [".", ".Archive", ".Zoo"] {
        assert_eq!(maildir_messages(&md.join(dir)), stored(&three()), "{dir}");
    }
    // Next time the same, and nothing twice.
    assert_eq!(fetch(&env, port, &["--all-folders"]).code, 69);
    assert_eq!(maildir_messages(&md.join(".Zoo")), stored(&three()));
}

#[test]
fn a_megabyte_line_is_refused_in_bounded_memory() {
    let mut greeting = b"* OK ".to_vec();
    greeting.extend(vec![b'a'; 1 << 20]);
    greeting.extend(b"\r\n");
    let env = Env::new();
    let port = serve(Script {
        greeting,
        ..Script::new(three())
    });
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 76, "{out:?}");
    assert!(out.max_rss_kb < 32 * 1024, "{}", out.max_rss_kb);

    // The same inside a FETCH reply, outside any literal.
    refused_then_honest(
        Script {
            body_reply: Some(|seq, m| {
                let mut out = format!("* {seq} FETCH (UID {} X-JUNK \"", m.uid).into_bytes();
                out.extend(vec![b'j'; 1 << 20]);
                out.extend(b"\")\r\n");
                out.extend(honest_body(seq, m));
                (out, false)
            }),
            ..Script::new(three())
        },
        "over-long",
    );
}

#[test]
fn a_greeting_that_never_ends_times_out() {
    let env = Env::new();
    let port = serve(Script {
        greeting: b"* OK ".to_vec(),
        dribble: true,
        ..Script::new(three())
    });
    let started = std::time::Instant::now();
    let out = fetch(&env, port, &["--timeout", "2"]);
    let took = started.elapsed();
    assert_eq!(out.code, 75, "{out:?}");
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    assert!(maildir_messages(&env.maildir()).is_empty());
}

#[test]
fn all_folders_leaves_out_special_use_views_and_bins_unless_named() {
    // Gmail's LIST: All Mail and Starred hold the messages of the other
    // folders again (RFC 6154 \All, \Flagged); Spam and Bin are \Junk and
    // \Trash.
    let list: Vec<String> = [
        "(\\HasNoChildren) Work",
        "(\\All \\HasNoChildren) \"[Gmail]/All Mail\"",
        "(\\Flagged) \"[Gmail]/Starred\"",
        "(\\Junk) \"[Gmail]/Spam\"",
        "(\\HasNoChildren \\Trash) \"[Gmail]/Bin\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let folders = |env: &Env| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.maildir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let env = Env::new();
    let port = serve(Script {
        list: list.clone(),
        ..Script::new(three())
    });
    let out = fetch(&env, port, &["--all-folders"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(folders(&env), [".Work"]);
    assert_eq!(maildir_messages(&env.maildir()).len(), 3);
    assert_eq!(maildir_messages(&env.maildir().join(".Work")).len(), 3);
    // Named, a bin is fetched with the rest.
    let env = Env::new();
    let port = serve(Script {
        list,
        ..Script::new(three())
    });
    let out = fetch(&env, port, &["--all-folders", "--folder", "[Gmail]/Spam"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(folders(&env).len(), 2, "{:?}", folders(&env));
}
