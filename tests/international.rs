//! Internationalised mail: POP3 UTF-8 mode (RFC 6856) against Courier's
//! real POP3 server, IMAP UTF8=ACCEPT (RFC 6855) folder names, and user
//! names and passwords outside ASCII against the real Dovecot.

mod common;

use common::Env;
use common::args;
use common::courier::Courier;
use common::dest::{Dest, maildir_messages};
use common::dovecot::Dovecot;
use common::imapserver;
use common::mail::{fixture_files, fixtures_and_corpus, lf_to_crlf, read_all, sorted};
use common::pop3server::{Pop3Server, ServerConfig};

/// Whether the header section of `msg` (up to the first empty line) has a
/// byte outside ASCII.
fn eight_bit_headers(msg: &[u8]) -> bool {
    let end = msg
        .windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| msg.windows(4).position(|w| w == b"\r\n\r\n"))
        .unwrap_or(msg.len());
    msg[..end].iter().any(|&b| b >= 0x80)
}

/// fetch's arguments for the Courier service, into the env's Maildir.
fn courier_args(env: &Env, c: &Courier) -> Vec<String> {
    [
        "--pop3",
        "127.0.0.1",
        "--port",
        &c.port.to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "-u",
        &c.user,
        "--password-command",
        &format!("echo {}", c.password),
        "--timeout",
        "20",
        "--maildir",
        &env.maildir().to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What Courier's RETR carries of a stored message, once fetch has turned
/// CRLF into LF: the stored bytes (Courier sends CR before each LF, so a
/// stored CRLF comes back as CRLF), with a line end added when the last
/// line has none.
fn courier_stored(stored: &[u8]) -> Vec<u8> {
    let mut v = stored.to_vec();
    if !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    v
}

/// Courier in UTF-8 mode serves messages with 8-bit headers unchanged:
/// fetch asks for it (UTF8, before logging in) and every message, the
/// fixtures' and the corpus's, arrives byte for byte.
#[test]
fn courier_pop3_utf8_mode_keeps_8bit_headers() {
    let Some(courier) = Courier::start(true) else {
        return;
    };
    let msgs = read_all(&fixtures_and_corpus());
    let eight_bit = msgs.iter().filter(|m| eight_bit_headers(m)).count();
    assert!(eight_bit >= 1, "no message with 8-bit headers to test with");
    courier.fill(&msgs);
    let env = Env::new();
    let out = env.run_args(&courier_args(&env, &courier));
    assert_eq!(out.code, 0, "{out:?}\n{}", courier.log());
    let want = sorted(msgs.iter().map(|m| courier_stored(m)).collect());
    let got = maildir_messages(&env.maildir());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w,
            "a message arrived changed:\n{}",
            String::from_utf8_lossy(&g[..g.len().min(400)])
        );
    }
    // Delivered, so deleted on the server.
    assert_eq!(courier.left(), 0);
    // UTF8 went in the AUTHORIZATION state, before the login.
    let cmds = courier.commands();
    let utf8 = cmds.iter().position(|c| c == "UTF8").expect("UTF8 sent");
    let user = cmds.iter().position(|c| c.starts_with("USER ")).unwrap();
    assert!(utf8 < user, "{cmds:?}");
}

/// The same server without UTF-8 mode (CAPA without UTF8): fetch does not
/// send the command, and Courier replaces each message with 8-bit headers
/// by its "Cannot display Unicode content" message, while the others
/// arrive as they are. What the test above guards against, shown real.
#[test]
fn courier_without_utf8_mode_changes_8bit_headers() {
    let Some(courier) = Courier::start(false) else {
        return;
    };
    let msgs = read_all(&fixture_files());
    courier.fill(&msgs);
    let env = Env::new();
    let out = env.run_args(&courier_args(&env, &courier));
    assert_eq!(out.code, 0, "{out:?}\n{}", courier.log());
    assert!(!courier.commands().iter().any(|c| c == "UTF8"));
    let got = maildir_messages(&env.maildir());
    assert_eq!(got.len(), msgs.len());
    for m in &msgs {
        let arrived = got.contains(&courier_stored(m));
        assert_eq!(arrived, !eight_bit_headers(m));
    }
    let wrapped = got
        .iter()
        .filter(|g| String::from_utf8_lossy(g).contains("Subject: Cannot display Unicode content"))
        .count();
    assert_eq!(
        wrapped,
        msgs.iter().filter(|m| eight_bit_headers(m)).count()
    );
}

/// The Maildir++ folders (`.NAME` directories) in `md`, sorted.
fn maildir_folders(md: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(md)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Messages with UTF-8 headers, as an IMAP server sends them (CRLF).
fn utf8_messages() -> Vec<imapserver::Msg> {
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/eight_bit_headers.eml"),
    )
    .unwrap();
    vec![
        imapserver::Msg::new(1, lf_to_crlf(&fixture)),
        imapserver::Msg::new(
            2,
            "Subject: =?utf-8?q?caf=C3=A9?=\r\nFrom: Zo\u{eb} <zo\u{eb}@example.net>\r\n\r\n\u{65e5}\u{672c}\r\n"
                .as_bytes()
                .to_vec(),
        ),
    ]
}

/// Folder names on the wire, quoted, without and with UTF8=ACCEPT: the
/// same folders.
const MUTF7_NAMES: [&str; 3] = [
    "\"Entw&APw-rfe\"",
    "\"Gr&APwA3w-e/K&APY-ln\"",
    "\"Tom &- Jerry\"",
];
const UTF8_NAMES: [&str; 3] = ["\"Entwürfe\"", "\"Grüße/Köln\"", "\"Tom & Jerry\""];

/// Serve `names` (UTF-8 ones with UTF8=ACCEPT) and fetch every folder.
fn fetch_all_folders(names: &[&str], utf8: bool, env: &Env) -> common::Out {
    let mut script = imapserver::Script::new(utf8_messages());
    script.list = names.iter().map(|s| s.to_string()).collect();
    script.utf8_accept = utf8;
    let port = imapserver::serve(script);
    imapserver::fetch(env, port, &["--all-folders", "-vv"])
}

/// With UTF8=ACCEPT enabled, LIST's UTF-8 names are read, SELECT sends
/// UTF-8 (the server knows no other name), 8-bit headers arrive byte for
/// byte, and each folder lands in the Maildir folder that the same server
/// folder gets without UTF8=ACCEPT (modified UTF-7 on the wire).
#[test]
fn utf8_accept_folders_land_where_modified_utf7_ones_do() {
    let with = Env::new();
    let out = fetch_all_folders(&UTF8_NAMES, true, &with);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("ENABLE CONDSTORE UTF8=ACCEPT"),
        "{}",
        out.stderr
    );
    let without = Env::new();
    let out = fetch_all_folders(&MUTF7_NAMES, false, &without);
    assert_eq!(out.code, 0, "{out:?}");
    let folders = maildir_folders(&with.maildir());
    assert_eq!(
        folders,
        [".Entwürfe", ".Grüße.Köln", ".Tom & Jerry"],
        "{:?}",
        common::walk(with.path())
    );
    assert_eq!(folders, maildir_folders(&without.maildir()));
    let want = imapserver::stored(&utf8_messages());
    for f in folders.iter().map(String::as_str).chain([""]) {
        assert_eq!(maildir_messages(&with.maildir().join(f)), want, "{f}");
        assert_eq!(maildir_messages(&without.maildir().join(f)), want, "{f}");
    }
}

/// `--folder` names in UTF-8 reach a UTF8=ACCEPT server as UTF-8, and a
/// second run finds nothing new: the ledger knows the folders by the same
/// names.
#[test]
fn utf8_accept_named_folders_and_a_second_run() {
    let mut script = imapserver::Script::new(utf8_messages());
    script.list = UTF8_NAMES.iter().map(|s| s.to_string()).collect();
    script.utf8_accept = true;
    let port = imapserver::serve(script);
    let env = Env::new();
    let args = ["--folder", "Grüße/Köln", "--folder", "Entwürfe"];
    let out = imapserver::fetch(&env, port, &args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        maildir_folders(&env.maildir()),
        [".Entwürfe", ".Grüße.Köln"]
    );
    let want = imapserver::stored(&utf8_messages());
    assert_eq!(maildir_messages(&env.maildir().join(".Grüße.Köln")), want);
    let before = common::all_files(&env.maildir());
    let out = imapserver::fetch(&env, port, &args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(common::all_files(&env.maildir()), before);
}

/// fetch's arguments for Dovecot's user `jürgen` (name and password not
/// ASCII) over `proto` with implicit TLS.
fn jurgen(dc: &Dovecot, proto: &str) -> Vec<String> {
    let mut a = args::dovecot(dc, proto, "implicit");
    args::set_option(&mut a, "-u", &dc.utf8_user);
    args::set_option(
        &mut a,
        "--password-command",
        &format!("cat {}", dc.utf8_password_file.display()),
    );
    a
}

/// A user name and password outside ASCII log in to the real Dovecot by
/// SASL PLAIN (UTF-8), over IMAP and POP3, and his mail arrives; a wrong
/// password is still refused (77), and IMAP LOGIN, which cannot carry
/// them, is a clear error before anything is sent (78).
#[test]
fn dovecot_non_ascii_user_and_password() {
    let Some(dc) = Dovecot::start() else {
        return;
    };
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eight_bit_headers.eml");
    dc.fill_files_of(&dc.utf8_user, std::slice::from_ref(&fixture));
    let stored = std::fs::read(&fixture).unwrap();
    for proto in ["imap", "pop3"] {
        let env = Env::new();
        let mut a = jurgen(&dc, proto);
        a.extend(Dest::Maildir.args(&env));
        let out = env.run_args(&a);
        assert_eq!(out.code, 0, "{proto}: {out:?}\n{}", dc.log());
        assert_eq!(
            maildir_messages(&env.maildir()),
            std::slice::from_ref(&stored),
            "{proto}"
        );
    }
    let env = Env::new();
    let mut a = jurgen(&dc, "imap");
    args::set_option(&mut a, "--password-command", "echo pässwörd-falsch");
    a.extend(Dest::Maildir.args(&env));
    env.run_args(&a).assert_exit(77, "authentication failed");
    let mut a = jurgen(&dc, "imap");
    a.extend(["--auth".into(), "user".into()]);
    a.extend(Dest::Maildir.args(&env));
    env.run_args(&a).assert_exit(78, "--auth plain");
}

/// A Dovecot folder with a name outside ASCII (modified UTF-7 on the wire:
/// Dovecot 2.3 has no UTF8=ACCEPT) lands in the Maildir folder that the
/// scripted UTF8=ACCEPT server's folder of the same name gets.
#[test]
fn dovecot_non_ascii_folders() {
    let Some(dc) = Dovecot::start() else {
        return;
    };
    dc.fill(&[b"Subject: eins\n\nx\n".as_slice(), b"Subject: zwei\n\ny\n"]);
    for folder in ["Entwürfe", "Grüße.Köln"] {
        for args in [
            vec!["mailbox", "create", "-u", &dc.user, folder],
            vec!["copy", "-u", &dc.user, folder, "mailbox", "INBOX", "all"],
        ] {
            let out = dc.doveadm(&args);
            assert!(out.status.success(), "{args:?}: {out:?}");
        }
    }
    let env = Env::new();
    let mut a = args::dovecot(&dc, "imap", "implicit");
    a.push("--all-folders".into());
    a.extend(Dest::Maildir.args(&env));
    let out = env.run_args(&a);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        maildir_folders(&env.maildir()),
        [".Entwürfe", ".Grüße.Köln"]
    );
    let inbox = maildir_messages(&env.maildir());
    assert_eq!(inbox.len(), 2);
    for f in [".Entwürfe", ".Grüße.Köln"] {
        assert_eq!(maildir_messages(&env.maildir().join(f)), inbox, "{f}");
    }
}

/// A server that lists UTF8 but answers the command -ERR: the run goes on
/// without UTF-8 mode (as it would without the command), and UTF8 went
/// before the login.
#[test]
fn pop3_utf8_refused_is_not_an_error() {
    let cfg = ServerConfig {
        capa_extra: vec!["UTF8".into()],
        ..Default::default()
    };
    let msgs = vec![("u1".to_string(), b"Subject: a\r\n\r\nb\r\n".to_vec())];
    let server = Pop3Server::start(cfg, msgs);
    let env = Env::new();
    let mut a = args::scripted_pop3(server.port);
    a.extend(Dest::Maildir.args(&env));
    let out = env.run_args(&a);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        maildir_messages(&env.maildir()),
        [b"Subject: a\n\nb\n".to_vec()]
    );
    let cmds = server.commands();
    let utf8 = cmds.iter().position(|c| c == "UTF8").expect("UTF8 sent");
    let auth = cmds.iter().position(|c| c.starts_with("AUTH ")).unwrap();
    assert!(utf8 < auth, "{cmds:?}");
}

/// POP3 with a password outside ASCII: USER/PASS where CAPA says `UTF8
/// USER` (no SASL PLAIN here), and with neither a clear refusal (69) before
/// the password is sent.
#[test]
fn pop3_non_ascii_password_without_sasl_plain() {
    for utf8_user in [true, false] {
        let cfg = ServerConfig {
            password: "pässwort".into(),
            capa_sasl_plain: false,
            sasl_plain_enabled: false,
            capa_extra: if utf8_user {
                vec!["UTF8 USER".into()]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let server = Pop3Server::start(cfg, vec![]);
        let env = Env::new();
        let mut a = args::scripted_pop3(server.port);
        args::set_option(&mut a, "--password-command", "echo pässwort");
        a.extend(Dest::Maildir.args(&env));
        let out = env.run_args(&a);
        let sent_pass = server.commands().iter().any(|c| c.starts_with("PASS"));
        if utf8_user {
            assert_eq!(out.code, 0, "{out:?}");
            assert!(sent_pass);
        } else {
            out.assert_exit(69, "neither SASL PLAIN nor UTF-8 in USER and PASS");
            assert!(!sent_pass, "{:?}", server.commands());
        }
    }
}
