//! Internationalised mail: POP3 UTF-8 mode (RFC 6856) against Courier's
//! real POP3 server, IMAP UTF8=ACCEPT (RFC 6855) folder names, and user
//! names and passwords outside ASCII against the real Dovecot.

mod common;

use common::Env;
use common::courier::Courier;
use common::dest::maildir_messages;
use common::mail::{fixture_files, fixtures_and_corpus, read_all, sorted};

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
