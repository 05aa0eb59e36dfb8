//! Command lines for fetch against the test servers (the scripted POP3 and
//! IMAP servers, the Dovecot sandbox), without a destination: callers add
//! one (see `dest::Dest::args`) and their own options. Options given twice
//! take the last value, so a caller's `--timeout` overrides the one here.

use super::dovecot::Dovecot;

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A plaintext session of `proto` with a scripted server on `port` (user
/// tester, password secret, a 5 s timeout).
fn scripted(proto: &str, port: u16) -> Vec<String> {
    owned(&[
        &format!("--{proto}"),
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "-u",
        "tester",
        "--password-command",
        "echo secret",
        "--timeout",
        "5",
    ])
}

/// A session with the scripted POP3 server on `port`.
pub fn scripted_pop3(port: u16) -> Vec<String> {
    scripted("pop3", port)
}

/// A session with a scripted IMAP server on `port`, logging in with
/// LOGIN (`--auth user`), all that the scripted IMAP servers implement.
pub fn scripted_imap(port: u16) -> Vec<String> {
    let mut a = scripted("imap", port);
    a.extend(owned(&["--auth", "user"]));
    a
}

/// A session of `proto` ("pop3" or "imap") with the Dovecot sandbox over
/// `tls` ("none", "starttls" or "implicit", on the port that serves it),
/// trusting the sandbox's certificate, as its user with the password from
/// its file. With "none" the password may go in plaintext.
pub fn dovecot(dc: &Dovecot, proto: &str, tls: &str) -> Vec<String> {
    let port = match (proto, tls) {
        ("pop3", "implicit") => dc.pop3s_port,
        ("pop3", _) => dc.pop3_port,
        ("imap", "implicit") => dc.imaps_port,
        ("imap", _) => dc.imap_port,
        _ => panic!("no Dovecot port for {proto}"),
    };
    let mut a = owned(&[
        &format!("--{proto}"),
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        tls,
        "--cafile",
        &dc.cafile.to_string_lossy(),
        "-u",
        &dc.user,
        "--password-command",
        &format!("cat {}", dc.password_file.display()),
    ]);
    if tls == "none" {
        a.push("--allow-plaintext-auth".into());
    }
    a
}

/// Removes `option` and the value after it.
pub fn remove_option(args: &mut Vec<String>, option: &str) {
    let at = args
        .iter()
        .position(|a| a == option)
        .unwrap_or_else(|| panic!("no {option} in {args:?}"));
    args.drain(at..at + 2);
}

/// Replaces the value after `option`.
pub fn set_option(args: &mut [String], option: &str, value: &str) {
    let at = args
        .iter()
        .position(|a| a == option)
        .unwrap_or_else(|| panic!("no {option} in {args:?}"));
    args[at + 1] = value.to_string();
}
