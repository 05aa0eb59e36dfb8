//! The files in which fetchmail and mpop remember which POP3 messages they
//! have seen, read into `(user, host, UIDL)` entries; the format is told
//! from the content. No I/O; any bytes give entries or an error with a
//! line number, never a panic.
//!
//! - fetchmail's `.fetchids` (its `uid.c`): one `USER@HOST UIDL` per line,
//!   where the user may hold `@` and spaces (the host is after the last
//!   `@` before the first space after the first `@`) and the UIDL ends at
//!   white space. fetchmail writes lines only for POP3 messages it saw and
//!   left on the server.
//! - mpop's UIDL file (its `uidls.c`): `#` comments first, then lists,
//!   each a line ` COUNT HOST USER` (a leading space) and COUNT lines of
//!   one UIDL each.

/// Which program wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fetchmail,
    Mpop,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Fetchmail => "fetchmail .fetchids",
            Format::Mpop => "mpop UIDL file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidEntry {
    pub user: String,
    pub host: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidFile {
    pub format: Format,
    pub entries: Vec<UidEntry>,
}

impl UidFile {
    /// Whether an entry belongs to the account `user@host`, as the program
    /// that wrote it compares (fetchmail ignores case; mpop does not,
    /// except that host names never differ by case).
    pub fn matches(&self, e: &UidEntry, user: &str, host: &str) -> bool {
        e.host.eq_ignore_ascii_case(host)
            && match self.format {
                Format::Fetchmail => e.user.eq_ignore_ascii_case(user),
                Format::Mpop => e.user == user,
            }
    }
}

/// A POP3 UIDL is at most 70 characters (RFC 1939, 7); allow servers
/// some excess, but not unbounded.
const MAX_UID: usize = 512;

/// A line that cannot be what the format says, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub what: String,
}

/// Read a `.fetchids` or mpop UIDL file.
pub fn parse(data: &[u8]) -> Result<UidFile, BadLine> {
    let text = std::str::from_utf8(data).map_err(|e| BadLine {
        line: data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        what: "it is not text (UTF-8)".into(),
    })?;
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mpop = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .is_some_and(|l| {
            l.strip_prefix(' ')
                .and_then(|r| r.split(' ').next())
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    let entries = if mpop {
        mpop_entries(lines)?
    } else {
        fetchids_entries(lines)?
    };
    Ok(UidFile {
        format: if mpop {
            Format::Mpop
        } else {
            Format::Fetchmail
        },
        entries,
    })
}

fn check_uid(line: usize, uid: &str) -> Result<(), BadLine> {
    if uid.is_empty() || uid.len() > MAX_UID || uid.chars().any(|c| c.is_control() || c == ' ') {
        return Err(BadLine {
            line,
            what: "not a UIDL (1 to 512 characters, no spaces or control characters)".into(),
        });
    }
    Ok(())
}

fn fetchids_entries<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Vec<UidEntry>, BadLine> {
    let mut out = Vec::new();
    for (n, raw) in lines {
        let line = raw.trim_start_matches([' ', '\t']);
        if line.trim().is_empty() {
            continue;
        }
        let bad = || BadLine {
            line: n,
            what: "not a fetchmail .fetchids line (USER@HOST UIDL)".into(),
        };
        let at = line.find('@').ok_or_else(bad)?;
        let space = at + line[at..].find(' ').ok_or_else(bad)?;
        let userhost = line[..space].trim_end_matches([' ', '\t']);
        let uid = line[space..].trim_start_matches(' ');
        let uid = uid.split([' ', '\t', '\r']).next().unwrap_or("");
        let last_at = userhost.rfind('@').ok_or_else(bad)?;
        let (user, host) = (&userhost[..last_at], &userhost[last_at + 1..]);
        if host.is_empty() {
            return Err(bad());
        }
        check_uid(n, uid)?;
        out.push(UidEntry {
            user: user.to_string(),
            host: host.to_string(),
            uid: uid.to_string(),
        });
    }
    Ok(out)
}

fn mpop_entries<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Vec<UidEntry>, BadLine> {
    let mut out = Vec::new();
    // The list being read: (user, host, UIDLs still to come).
    let mut list: Option<(String, String, u64)> = None;
    let mut comments_allowed = true;
    let mut last = 0;
    for (n, line) in lines {
        last = n;
        if comments_allowed && line.starts_with('#') {
            continue;
        }
        comments_allowed = false;
        match &mut list {
            None => {
                let bad = |what: &str| BadLine {
                    line: n,
                    what: format!("{what} (an mpop list starts \" COUNT HOST USER\")"),
                };
                let rest = line
                    .strip_prefix(' ')
                    .ok_or_else(|| bad("a UIDL without a list"))?;
                let mut parts = rest.splitn(3, ' ');
                let count: u64 = parts
                    .next()
                    .and_then(|c| c.parse().ok())
                    .filter(|&c| c > 0)
                    .ok_or_else(|| bad("not a number of UIDLs"))?;
                let host = parts.next().filter(|h| !h.is_empty());
                let user = parts.next().filter(|u| !u.is_empty() && !u.contains(' '));
                let (Some(host), Some(user)) = (host, user) else {
                    return Err(bad("a host or user name is missing"));
                };
                list = Some((user.to_string(), host.to_string(), count));
            }
            Some((user, host, left)) => {
                if line.starts_with(' ') {
                    return Err(BadLine {
                        line: n,
                        what: format!("too few UIDLs for user {user:?} at {host:?}"),
                    });
                }
                check_uid(n, line)?;
                out.push(UidEntry {
                    user: user.clone(),
                    host: host.clone(),
                    uid: line.to_string(),
                });
                *left -= 1;
                if *left == 0 {
                    list = None;
                }
            }
        }
    }
    if let Some((user, host, _)) = list {
        return Err(BadLine {
            line: last,
            what: format!("too few UIDLs for user {user:?} at {host:?}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: &str, host: &str, uid: &str) -> UidEntry {
        UidEntry {
            user: user.into(),
            host: host.into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn fetchids_lines() {
        let f = parse(
            b"alice@pop.example.org 000001a54f2b\n\
              notes user@corp@mail.example.net <x@y>  \n\
              \n  bob@Pop.Example.org 42\n",
        )
        .unwrap();
        assert_eq!(f.format, Format::Fetchmail);
        assert_eq!(
            f.entries,
            [
                e("alice", "pop.example.org", "000001a54f2b"),
                e("notes user@corp", "mail.example.net", "<x@y>"),
                e("bob", "Pop.Example.org", "42"),
            ]
        );
        assert!(f.matches(&f.entries[2], "BOB", "pop.example.org"));
        assert!(!f.matches(&f.entries[0], "alice", "other.example.org"));
        assert_eq!(parse(b"").unwrap().entries, []);
        assert_eq!(parse(b"no at sign here\n").unwrap_err().line, 1);
        assert_eq!(parse(b"a@ x\n").unwrap_err().line, 1);
    }

    #[test]
    fn mpop_lists() {
        let f = parse(
            b"# This file was generated by mpop version 1.4.18.\n#\n \
              2 pop.example.org alice\nUID-1\nUID-2\n 1 other.example.org bob\n#not-a-comment\n",
        )
        .unwrap();
        assert_eq!(f.format, Format::Mpop);
        assert_eq!(
            f.entries,
            [
                e("alice", "pop.example.org", "UID-1"),
                e("alice", "pop.example.org", "UID-2"),
                e("bob", "other.example.org", "#not-a-comment"),
            ]
        );
        assert!(!f.matches(&f.entries[0], "Alice", "pop.example.org"));
        let err = parse(b" 3 h u\na\nb\n").unwrap_err();
        assert!(err.what.contains("too few"), "{err:?}");
        let err = parse(b" 2 h u\na\n 1 h v\nb\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(parse(b" 0 h u\n").is_err());
        assert!(parse(b" 1 h\nx\n").is_err());
    }

    #[test]
    fn not_text_is_refused_with_its_line() {
        assert_eq!(parse(b"a@b c\n\xff\n").unwrap_err().line, 2);
    }

    #[test]
    fn garbage_never_panics() {
        for data in [
            &b" "[..],
            b" 99999999999999999999999 h u",
            b" 1 h u",
            b"@",
            b"@ ",
            b" @ @",
            b"\t@\t \t",
            b" 1  ",
        ] {
            let _ = parse(data);
        }
    }
}
