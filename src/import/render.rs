//! The converted accounts written as fetch's config file (TOML), with the
//! comments that say what was not carried over; and, in one place, the
//! keys that hand mail to the local mail system over SMTP or LMTP
//! ([`mail_system_keys`]). No I/O.

use std::fmt::Write;

use super::convert::{Acc, Context, Converted, q};

/// Comment lines are wrapped at this width.
const WIDTH: usize = 78;

/// The config file for `c`.
pub fn render(c: &Converted, ctx: &Context) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "",
        &format!(
            "fetch config converted from {:?} by `fetch --import-fetchmailrc`. Review it, \
             then save it as ~/.config/fetch/config.toml. No password is copied into it.",
            ctx.source
        ),
    );
    for n in &c.notes {
        comment(&mut out, "", n);
    }
    for (kw, why) in &c.dropped {
        comment(&mut out, "", &format!("not carried over: {kw} ({why})"));
    }
    if c.accounts.is_empty() {
        comment(&mut out, "", "the file names no server to poll");
    }
    for a in &c.accounts {
        out.push('\n');
        account(&mut out, a);
    }
    out
}

fn account(out: &mut String, a: &Acc) {
    let mut body = String::new();
    let _ = writeln!(body, "[accounts.{}]", key(&a.name));
    for (k, v) in &a.keys {
        let _ = writeln!(body, "{k} = {v}");
    }
    for n in &a.notes {
        comment(&mut body, "", n);
    }
    if a.had_password {
        let store = format!("mail/{}", a.name);
        comment(
            &mut body,
            "",
            "password: the fetchmail file holds this account's password. It is not \
             copied here, as this file may end up where others can read it. Keep it in a \
             password store and name the command that prints it, e.g.:",
        );
        let _ = writeln!(
            body,
            "# password_command = {}",
            q(&format!("pass show {store}"))
        );
        comment(
            &mut body,
            "",
            "(or a line in ~/.netrc, mode 0600: machine HOST login USER password ...)",
        );
    }
    for (kw, why) in &a.dropped {
        comment(&mut body, "", &format!("not carried over: {kw} ({why})"));
    }
    comment(out, "", &format!("from fetchmail: {}", a.origin));
    match &a.inactive {
        None => out.push_str(&body),
        Some(why) => {
            comment(out, "", &format!("not carried over: {why}"));
            for line in body.lines() {
                if line.starts_with('#') {
                    let _ = writeln!(out, "#{line}");
                } else {
                    let _ = writeln!(out, "# {line}");
                }
            }
        }
    }
}

/// A table key: bare when TOML allows it, else quoted.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        q(name)
    }
}

/// `text` as `#` comment lines, wrapped; control characters (from the rc
/// file's strings) are shown escaped so that a comment never ends early.
fn comment(out: &mut String, indent: &str, text: &str) {
    let clean: String = text
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    let mut line = format!("{indent}#");
    for word in clean.split(' ').filter(|w| !w.is_empty()) {
        if line.len() + 1 + word.len() > WIDTH && line.len() > indent.len() + 2 {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent}#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// The keys that hand mail to the local mail system, when fetchmail had
/// no `mda`: `smtp = "HOST[:PORT]"`, `lmtp = "PATH-or-HOST:PORT"` and
/// `deliver_to = "ADDR"`, the config keys of fetch's SMTP and LMTP
/// destinations. fetchmail's `smtphost` is a list of `HOST[/PORT]` tried
/// in turn (default `localhost`, port 25); an absolute path there, or the
/// `lmtp` flag, means LMTP. Its recipient is the local name (`is`), else
/// the user running it, which is also fetch's default.
pub(super) fn mail_system_keys(a: &mut Acc, hosts: &[String], lmtp: bool, local: Option<&str>) {
    let first = hosts.first().map_or("localhost", String::as_str);
    if hosts.is_empty() {
        a.notes.push(
            "fetchmail's default with no mda: hand each message to the mail system by \
             SMTP on localhost, port 25"
                .into(),
        );
    }
    if first.starts_with('/') {
        a.keys.push(("lmtp", q(first)));
    } else {
        let (host, port) = match first.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match (lmtp, port) {
            // fetchmail needs a port for LMTP over TCP; 24 is LMTP's own.
            (true, p) => a
                .keys
                .push(("lmtp", q(&format!("{host}:{}", p.unwrap_or("24"))))),
            (false, Some(p)) => a.keys.push(("smtp", q(&format!("{host}:{p}")))),
            (false, None) => a.keys.push(("smtp", q(&host))),
        }
    }
    if let Some(l) = local {
        a.keys.push(("deliver_to", q(l)));
    }
    if hosts.len() > 1 {
        a.dropped.push((
            format!("smtphost {:?}", &hosts[1..]),
            "fetchmail tried these in turn; fetch hands mail to the first".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(hosts: &[&str], lmtp: bool, local: Option<&str>) -> Vec<(&'static str, String)> {
        let mut a = Acc::default();
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        mail_system_keys(&mut a, &hosts, lmtp, local);
        a.keys
    }

    #[test]
    fn smtp_and_lmtp_targets() {
        assert_eq!(keys(&[], false, None), [("smtp", q("localhost"))]);
        assert_eq!(
            keys(&["mx/2525", "other"], false, Some("bob")),
            [("smtp", q("mx:2525")), ("deliver_to", q("bob"))]
        );
        assert_eq!(
            keys(&["/var/run/dovecot/lmtp"], false, None),
            [("lmtp", q("/var/run/dovecot/lmtp"))]
        );
        assert_eq!(
            keys(&["localhost/24"], true, None),
            [("lmtp", q("localhost:24"))]
        );
        assert_eq!(
            keys(&["::1/2525"], false, None),
            [("smtp", q("[::1]:2525"))]
        );
    }

    #[test]
    fn comments_wrap_and_never_break_out() {
        let mut out = String::new();
        comment(
            &mut out,
            "",
            &format!("a{}b\nhost = \"evil\"", "x".repeat(100)),
        );
        assert!(out.lines().all(|l| l.starts_with('#')), "{out}");
        let mut out = String::new();
        comment(&mut out, "", &"word ".repeat(40));
        assert!(out.lines().count() > 2 && out.lines().all(|l| l.len() <= WIDTH));
        assert_eq!(key("pop.example.org"), "\"pop.example.org\"");
        assert_eq!(key("work_1"), "work_1");
    }
}
