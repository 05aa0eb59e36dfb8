//! Passwords from a netrc file (`$NETRC` or `~/.netrc`), as ftp and curl
//! read it.
//!
//! The file is a sequence of whitespace-separated tokens. An entry starts
//! with `machine HOST` or `default` and runs to the next of those; inside it,
//! `login USER`, `password PASS`, `account ACCT` and `port N` take one value
//! each (account and port are read and ignored). `macdef NAME` defines an ftp
//! macro whose body runs from the next line to the next empty line; we skip
//! it. A token may be double-quoted, with backslash escapes (`\"`, `\\`,
//! `\n`, `\r`, `\t`, anything else stands for itself), as curl accepts, so a
//! password can contain spaces. Unknown keywords are skipped.
//!
//! Matching: the first `machine` entry whose host equals ours (ignoring
//! ASCII case) and whose login is ours, or which has no login, wins; only if
//! no machine entry matches does the first matching `default` entry apply.
//! The winner's password is the answer, even if it has none (then the caller
//! asks elsewhere): a later entry is never consulted.
//!
//! Like ftp, [`lookup_file`] refuses a file that would give us a password
//! while it is accessible by group or others, or owned by someone else.
//! A file that has no entry for us is not judged.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Result, config};

/// One `machine` or `default` entry; values are raw bytes until the end.
#[derive(Debug, Default)]
struct Entry {
    /// `None` for `default`.
    machine: Option<Vec<u8>>,
    login: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
}

impl Entry {
    fn matches_user(&self, user: &str) -> bool {
        self.login.as_deref().is_none_or(|l| l == user.as_bytes())
    }
}

/// A tokenizer that knows where lines end, for `macdef`.
struct Tokens<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a [u8]) -> Self {
        Tokens { text, pos: 0 }
    }

    /// The next token, or `None` at the end of the text.
    fn next_token(&mut self) -> Option<Vec<u8>> {
        let t = self.text;
        while self.pos < t.len() && t[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        if self.pos >= t.len() {
            return None;
        }
        let mut tok = Vec::new();
        if t[self.pos] == b'"' {
            self.pos += 1;
            // An unterminated quote runs to the end of the text.
            while self.pos < t.len() {
                let c = t[self.pos];
                self.pos += 1;
                match c {
                    b'"' => break,
                    b'\\' if self.pos < t.len() => {
                        let e = t[self.pos];
                        self.pos += 1;
                        tok.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                    }
                    other => tok.push(other),
                }
            }
        } else {
            while self.pos < t.len() && !t[self.pos].is_ascii_whitespace() {
                tok.push(t[self.pos]);
                self.pos += 1;
            }
        }
        Some(tok)
    }

    /// Skip a `macdef` body: the rest of the current line, then every line
    /// up to and including the first empty one (a line holding only a CR
    /// counts as empty, for files with CRLF line ends).
    fn skip_macro_body(&mut self) {
        let t = self.text;
        let Some(nl) = t[self.pos..].iter().position(|&c| c == b'\n') else {
            self.pos = t.len();
            return;
        };
        self.pos += nl + 1;
        loop {
            let rest = &t[self.pos..];
            let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
                self.pos = t.len();
                return;
            };
            self.pos += nl + 1;
            if nl == 0 || (nl == 1 && rest[0] == b'\r') {
                return;
            }
        }
    }
}

fn parse(text: &[u8]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut toks = Tokens::new(text);
    while let Some(tok) = toks.next_token() {
        match tok.as_slice() {
            b"machine" => {
                let host = toks.next_token().unwrap_or_default();
                entries.push(Entry {
                    machine: Some(host),
                    ..Entry::default()
                });
            }
            b"default" => entries.push(Entry::default()),
            b"macdef" => {
                let _name = toks.next_token();
                toks.skip_macro_body();
            }
            b"login" | b"password" | b"account" | b"port" => {
                let value = toks.next_token();
                // Values outside any entry belong to nothing.
                if let Some(entry) = entries.last_mut() {
                    match tok.as_slice() {
                        b"login" => entry.login = value,
                        b"password" => entry.password = value,
                        _ => {}
                    }
                }
            }
            _ => {} // unknown keyword: skipped
        }
    }
    entries
}

/// The entry we would use for `host` and `user`, if any.
fn find<'e>(entries: &'e [Entry], host: &str, user: &str) -> Option<&'e Entry> {
    entries
        .iter()
        .find(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(host.as_bytes()))
                && e.matches_user(user)
        })
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.machine.is_none() && e.matches_user(user))
        })
}

/// Password for `machine HOST login USER` in netrc text; `default` applies
/// when no machine matches. `None` when no entry matches or the matching
/// entry has no password. (The program reads files through
/// [`lookup_file`]; this is the same lookup on text, for tests.)
#[cfg(test)]
pub fn lookup(text: &str, host: &str, user: &str) -> Option<String> {
    let entries = parse(text.as_bytes());
    let password = find(&entries, host, user)?.password.clone()?;
    // Tokens split a str at ASCII bytes and escapes produce ASCII: valid UTF-8.
    String::from_utf8(password).ok()
}

/// Read the netrc file at `path` ($NETRC if set, else ~/.netrc; the caller
/// decides) and look up; `Ok(None)` if the file does not exist or has no
/// password for us.
///
/// Refuses (a config error) a file that would give us a password while it is
/// accessible by group or others or not owned by the current user.
pub fn lookup_file(path: &Path, host: &str, user: &str) -> Result<Option<String>> {
    let shown = path.display();
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(config(format!("cannot read {shown}")).because(e)),
    };
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| config(format!("cannot read {shown}")).because(e))?;
    let entries = parse(&text);
    let Some(password) = find(&entries, host, user).and_then(|e| e.password.as_ref()) else {
        return Ok(None);
    };
    // Judge the file we read, not whatever the path names now.
    let meta = file
        .metadata()
        .map_err(|e| config(format!("cannot read {shown}")).because(e))?;
    let me = crate::platform::euid();
    if meta.uid() != me {
        return Err(config(format!(
            "{shown} holds a password but is owned by uid {}, not by you (uid {me}); \
             refusing to use it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(config(format!(
            "{shown} holds a password but is accessible by group or others; \
             run: chmod 600 {shown}"
        )));
    }
    match String::from_utf8(password.clone()) {
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(config(format!(
            "the password for {host} in {shown} is not valid UTF-8"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn l(text: &str, host: &str, user: &str) -> Option<String> {
        lookup(text, host, user)
    }

    #[test]
    fn machine_login_password() {
        let t = "machine pop.example.org login alice password s3cret\n";
        assert_eq!(l(t, "pop.example.org", "alice").as_deref(), Some("s3cret"));
        assert_eq!(l(t, "pop.example.org", "bob"), None);
        assert_eq!(l(t, "imap.example.org", "alice"), None);
        assert_eq!(l("", "pop.example.org", "alice"), None);
    }

    #[test]
    fn tokens_may_span_lines_and_any_order() {
        let t = "machine\n  a.example\n\tpassword p1\n login u\n\
                 machine b.example login u password p2";
        assert_eq!(l(t, "a.example", "u").as_deref(), Some("p1"));
        assert_eq!(l(t, "b.example", "u").as_deref(), Some("p2"));
        let crlf = "machine a.example\r\nlogin u\r\npassword p\r\n";
        assert_eq!(l(crlf, "a.example", "u").as_deref(), Some("p"));
    }

    #[test]
    fn host_is_case_insensitive_login_is_not() {
        let t = "machine POP.Example.ORG login Alice password p";
        assert_eq!(l(t, "pop.example.org", "Alice").as_deref(), Some("p"));
        assert_eq!(l(t, "pop.example.org", "alice"), None);
    }

    #[test]
    fn entry_without_login_matches_any_user() {
        let t = "machine h password any";
        assert_eq!(l(t, "h", "whoever").as_deref(), Some("any"));
    }

    #[test]
    fn first_matching_entry_wins() {
        let t = "machine h login bob password b\n\
                 machine h login alice password first\n\
                 machine h password anyone\n\
                 machine h login alice password second\n";
        assert_eq!(l(t, "h", "alice").as_deref(), Some("first"));
        assert_eq!(l(t, "h", "bob").as_deref(), Some("b"));
        assert_eq!(l(t, "h", "carol").as_deref(), Some("anyone"));
    }

    #[test]
    fn matching_entry_without_password_ends_the_search() {
        let t = "machine h login alice\nmachine h login alice password later\n\
                 default password d";
        assert_eq!(l(t, "h", "alice"), None);
    }

    #[test]
    fn default_applies_only_when_no_machine_matches() {
        let t = "default login alice password dflt\n\
                 machine h login alice password mach\n";
        assert_eq!(l(t, "h", "alice").as_deref(), Some("mach"));
        assert_eq!(l(t, "other", "alice").as_deref(), Some("dflt"));
        assert_eq!(l(t, "other", "bob"), None);
        let t2 = "machine h login bob password b\ndefault password any";
        assert_eq!(l(t2, "h", "alice").as_deref(), Some("any"));
    }

    #[test]
    fn account_and_port_are_ignored() {
        let t = "machine h port 995 account acct login u password p";
        assert_eq!(l(t, "h", "u").as_deref(), Some("p"));
        // Their values are consumed, never read as keywords.
        let t = "machine h account password login u password p";
        assert_eq!(l(t, "h", "u").as_deref(), Some("p"));
    }

    #[test]
    fn macdef_body_is_skipped_up_to_blank_line() {
        let t = "macdef init\n\
                 machine evil login u password wrong\n\
                 cd /pub\n\
                 \n\
                 machine h login u password right\n";
        assert_eq!(l(t, "h", "u").as_deref(), Some("right"));
        assert_eq!(l(t, "evil", "u"), None);
        // Inside an entry, macdef does not end the entry's fields that follow
        // the body (like ftp, which reads on).
        let t = "machine h login u macdef m\npassword no\n\r\npassword yes";
        assert_eq!(l(t, "h", "u").as_deref(), Some("yes"));
        // A body running to the end of the file.
        let t = "machine h login u password p macdef m\nmachine h password x";
        assert_eq!(l(t, "h", "u").as_deref(), Some("p"));
        assert_eq!(l("macdef", "h", "u"), None);
    }

    #[test]
    fn quoted_tokens_with_escapes() {
        let t = r#"machine h login "al ice" password "pa ss \"word\" \\ \t end""#;
        assert_eq!(
            l(t, "h", "al ice").as_deref(),
            Some("pa ss \"word\" \\ \t end")
        );
        let t = r#"machine "h" login u password """#;
        assert_eq!(l(t, "h", "u").as_deref(), Some(""));
        // A quoted token ends at its closing quote.
        let t = r#"machine h login u password "a b"c"#;
        assert_eq!(l(t, "h", "u").as_deref(), Some("a b"));
        // An unterminated quote runs to the end.
        let t = "machine h login u password \"a b\n";
        assert_eq!(l(t, "h", "u").as_deref(), Some("a b\n"));
        // Unquoted tokens keep backslashes and quotes inside them.
        let t = r#"machine h login u password a\b"c"#;
        assert_eq!(l(t, "h", "u").as_deref(), Some(r#"a\b"c"#));
    }

    #[test]
    fn values_outside_entries_and_unknown_words_are_ignored() {
        let t = "login u password stray frobnicate\nmachine h login u password p";
        assert_eq!(l(t, "h", "u").as_deref(), Some("p"));
        assert_eq!(l("login u password stray", "h", "u"), None);
        assert_eq!(l("machine", "h", "u"), None);
        assert_eq!(l("machine h login u password", "h", "u"), None);
    }

    #[test]
    fn non_ascii_passwords() {
        let t = "machine h login u password pässwörd";
        assert_eq!(l(t, "h", "u").as_deref(), Some("pässwörd"));
    }

    fn write(dir: &Path, text: &[u8], mode: u32) -> std::path::PathBuf {
        let p = dir.join("netrc");
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn file_missing_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(lookup_file(&d.path().join("nope"), "h", "u").unwrap(), None);
    }

    #[test]
    fn file_private_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), b"machine h login u password p\n", 0o600);
        assert_eq!(lookup_file(&p, "h", "u").unwrap().as_deref(), Some("p"));
        assert_eq!(lookup_file(&p, "x", "u").unwrap(), None);
        let p = write(d.path(), b"machine h login u password p\n", 0o400);
        assert_eq!(lookup_file(&p, "h", "u").unwrap().as_deref(), Some("p"));
    }

    #[test]
    fn file_readable_by_others_is_refused_only_when_used() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            let p = write(d.path(), b"machine h login u password p\n", mode);
            let e = lookup_file(&p, "h", "u").unwrap_err();
            assert_eq!(e.kind, Kind::Config);
            assert!(
                e.message().contains(&format!("chmod 600 {}", p.display())),
                "{}",
                e.message()
            );
            // No entry for us, or an entry without a password: not judged.
            assert_eq!(lookup_file(&p, "other", "u").unwrap(), None);
        }
        let p = write(d.path(), b"machine h login u\n", 0o644);
        assert_eq!(lookup_file(&p, "h", "u").unwrap(), None);
    }

    #[test]
    fn file_owned_by_someone_else_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), b"default password p\n", 0o600);
        if crate::platform::euid() != 0 {
            eprintln!("SKIP: chown to another user needs root");
            return;
        }
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        let e = lookup_file(&p, "h", "u").unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert!(
            e.message().contains("owned by uid 65534"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn file_with_non_utf8_elsewhere_still_works() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            b"machine x password \xff\xfe\nmachine h login u password ok\n",
            0o600,
        );
        assert_eq!(lookup_file(&p, "h", "u").unwrap().as_deref(), Some("ok"));
        let e = lookup_file(&p, "x", "u").unwrap_err();
        assert_eq!(e.kind, Kind::Config);
    }

    #[test]
    fn unreadable_path_is_a_config_error() {
        let d = tempfile::tempdir().unwrap();
        // A directory cannot be read as a file.
        let e = lookup_file(d.path(), "h", "u").unwrap_err();
        assert_eq!(e.kind, Kind::Config);
    }
}
