//! fetchmail's run control file (`~/.fetchmailrc`) parsed into statements,
//! following the grammar of fetchmail's `rcfile_y.y`: `set` statements,
//! and `poll`/`skip`/`defaults` entries, each with server options and then
//! one or more users with their options. Options are kept as written
//! (keyword, `no`, value, line); `convert.rs` decides what they mean here.
//! No I/O; any bytes give a parse or a [`SyntaxError`] with its line.

use super::lexer::{SyntaxError, Tok, Token, tokens};

/// A parsed run control file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RcFile {
    /// `set KEYWORD [value]`, in file order.
    pub sets: Vec<Opt>,
    /// `poll`, `skip` and `defaults` entries, in file order.
    pub polls: Vec<Poll>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollKind {
    Poll,
    /// Polled only when named on fetchmail's command line.
    Skip,
    /// Options for the entries after it.
    Defaults,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub line: usize,
    pub kind: PollKind,
    /// The name after `poll` (a host, or a label when `via` names the host).
    pub name: String,
    pub server: Vec<Opt>,
    /// One per `user` (or one, unnamed, for options given without `user`).
    pub users: Vec<Vec<Opt>>,
}

/// One option as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub line: usize,
    /// The keyword's canonical spelling (`protocol` for `proto`).
    pub key: &'static str,
    /// Written with `no`.
    pub negated: bool,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Flag,
    Str(String),
    Num(i64),
    List(Vec<String>),
    /// Local names of `is`/`to` (or `user ... here`): a name, or a
    /// `remote = local` pair; `*` is the multidrop wildcard.
    Names(Vec<(String, Option<String>)>),
}

#[cfg(test)]
impl Value {
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Server options (before any user), and the value each takes.
const SERVER: &[(&str, Arg)] = &[
    ("via", Arg::Str),
    ("aka", Arg::Strs),
    ("localdomains", Arg::Strs),
    ("protocol", Arg::Proto),
    ("principal", Arg::Str),
    ("esmtpname", Arg::Str),
    ("esmtppassword", Arg::Str),
    ("uidl", Arg::Flag),
    ("checkalias", Arg::Flag),
    ("service", Arg::StrOrNum),
    ("port", Arg::Num),
    ("interval", Arg::Num),
    ("auth", Arg::Auth),
    ("timeout", Arg::Num),
    ("idletimeout", Arg::Num),
    ("envelope", Arg::Envelope),
    ("qvirtual", Arg::Str),
    ("interface", Arg::Str),
    ("monitor", Arg::Str),
    ("plugin", Arg::Str),
    ("plugout", Arg::Str),
    ("dns", Arg::Flag),
    ("tracepolls", Arg::Flag),
    ("bad-header", Arg::BadHeader),
];

/// User options, and the value each takes.
const USER: &[(&str, Arg)] = &[
    ("to", Arg::Names),
    ("is", Arg::Names),
    ("password", Arg::Str),
    ("folder", Arg::Strs),
    ("smtphost", Arg::Strs),
    ("fetchdomains", Arg::Strs),
    ("smtpaddress", Arg::Str),
    ("smtpname", Arg::Str),
    ("antispam", Arg::Nums),
    ("mda", Arg::Str),
    ("bsmtp", Arg::Str),
    ("lmtp", Arg::Flag),
    ("preconnect", Arg::Str),
    ("postconnect", Arg::Str),
    ("keep", Arg::Flag),
    ("flush", Arg::Flag),
    ("limitflush", Arg::Flag),
    ("fetchall", Arg::Flag),
    ("rewrite", Arg::Flag),
    ("forcecr", Arg::Flag),
    ("stripcr", Arg::Flag),
    ("pass8bits", Arg::Flag),
    ("dropstatus", Arg::Flag),
    ("dropdelivered", Arg::Flag),
    ("mimedecode", Arg::Flag),
    ("idle", Arg::Flag),
    ("forceidle", Arg::Flag),
    ("ssl", Arg::Flag),
    ("sslkey", Arg::Str),
    ("sslcert", Arg::Str),
    ("sslproto", Arg::Str),
    ("sslcertck", Arg::Flag),
    ("sslcertfile", Arg::Str),
    ("sslcertpath", Arg::Str),
    ("sslcommonname", Arg::Str),
    ("sslfingerprint", Arg::Str),
    ("limit", Arg::Num),
    ("warnings", Arg::Num),
    ("fetchlimit", Arg::Num),
    ("fetchsizelimit", Arg::Num),
    ("fastuidl", Arg::Num),
    ("batchlimit", Arg::Num),
    ("expunge", Arg::Num),
    ("properties", Arg::Str),
];

/// `set` statements, and the value each takes.
const SET: &[(&str, Arg)] = &[
    ("logfile", Arg::Str),
    ("idfile", Arg::Str),
    ("pidfile", Arg::Str),
    ("daemon", Arg::Num),
    ("postmaster", Arg::Str),
    ("properties", Arg::Str),
    ("bouncemail", Arg::Flag),
    ("spambounce", Arg::Flag),
    ("softbounce", Arg::Flag),
    ("syslog", Arg::Flag),
    ("invisible", Arg::Flag),
    ("showdots", Arg::Flag),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    Flag,
    Str,
    Num,
    Strs,
    Nums,
    StrOrNum,
    Proto,
    Auth,
    Envelope,
    BadHeader,
    Names,
}

fn arg_of(table: &[(&str, Arg)], key: &str) -> Option<Arg> {
    table.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
}

/// Parse a whole run control file.
pub fn parse(text: &[u8]) -> Result<RcFile, SyntaxError> {
    let toks = tokens(text)?;
    let last_line = toks.last().map_or(1, |t| t.line);
    let mut p = Parser {
        toks,
        pos: 0,
        last_line,
    };
    let mut rc = RcFile::default();
    while let Some(t) = p.peek() {
        match t {
            Tok::Kw("set") => {
                p.pos += 1;
                rc.sets.push(p.set()?);
            }
            Tok::Kw("poll") | Tok::Kw("skip") | Tok::Kw("defaults") => {
                rc.polls.push(p.poll()?);
            }
            _ => return Err(p.error("expected set, poll, skip or defaults")),
        }
    }
    Ok(rc)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    last_line: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.kind)
    }

    fn line(&self) -> usize {
        self.toks.get(self.pos).map_or(self.last_line, |t| t.line)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.kind.clone());
        self.pos += 1;
        t
    }

    fn error(&self, what: &str) -> SyntaxError {
        let at = match self.peek() {
            None => "the end of the file".to_string(),
            Some(Tok::Kw(k)) => format!("keyword {k:?}"),
            Some(Tok::No) => "\"no\"".into(),
            Some(Tok::Map) => "\"=\"".into(),
            Some(Tok::Str(s)) => format!("{:?}", s.chars().take(40).collect::<String>()),
            Some(Tok::Num(n)) => format!("the number {n}"),
            Some(Tok::Proto(p)) => format!("protocol name {p:?}"),
            Some(Tok::AuthType(a)) => format!("authentication type {a:?}"),
        };
        SyntaxError {
            line: self.line(),
            what: format!("syntax error at {at}: {what}"),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        match self.peek() {
            Some(Tok::Str(_)) => match self.next() {
                Some(Tok::Str(s)) => Ok(s),
                _ => unreachable!("peeked a string"),
            },
            _ => Err(self.error("expected a string")),
        }
    }

    fn number(&mut self) -> Result<i64, SyntaxError> {
        match self.peek() {
            Some(&Tok::Num(n)) => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.error("expected a number")),
        }
    }

    fn set(&mut self) -> Result<Opt, SyntaxError> {
        let line = self.line();
        let negated = self.peek() == Some(&Tok::No);
        if negated {
            self.pos += 1;
        }
        let Some(Tok::Kw(key)) = self.peek().cloned() else {
            return Err(self.error("expected what to set"));
        };
        let Some(arg) = arg_of(SET, key) else {
            return Err(self.error("not something set can set"));
        };
        self.pos += 1;
        if negated && arg != Arg::Flag {
            return Err(self.error("only a flag can be set with no"));
        }
        if arg != Arg::Flag && self.peek() == Some(&Tok::Map) {
            self.pos += 1;
        }
        let value = self.value(arg)?;
        Ok(Opt {
            line,
            key,
            negated,
            value,
        })
    }

    fn poll(&mut self) -> Result<Poll, SyntaxError> {
        let line = self.line();
        let kind = match self.next() {
            Some(Tok::Kw("poll")) => PollKind::Poll,
            Some(Tok::Kw("skip")) => PollKind::Skip,
            _ => PollKind::Defaults,
        };
        let name = if kind == PollKind::Defaults {
            "defaults".to_string()
        } else {
            self.string()?
        };
        let mut poll = Poll {
            line,
            kind,
            name,
            server: Vec::new(),
            users: Vec::new(),
        };
        let mut explicit = false;
        loop {
            let (negated, key) = match (self.peek(), self.peek_at(1)) {
                (None, _)
                | (Some(Tok::Kw("set" | "poll" | "skip" | "defaults")), _)
                | (Some(Tok::No), Some(Tok::Kw("set" | "poll" | "skip" | "defaults"))) => break,
                (Some(Tok::No), Some(Tok::Kw(k))) => (true, *k),
                (Some(Tok::Kw(k)), _) => (false, *k),
                _ => return Err(self.error("expected a server or user option")),
            };
            let line = self.line();
            if key == "user" && !negated {
                if !poll.users.is_empty() && !explicit {
                    return Err(self.error("user options come after user, not before it"));
                }
                explicit = true;
                self.pos += 1;
                let opt = self.user_def(line)?;
                poll.users.push(vec![opt]);
                continue;
            }
            if let Some(arg) = arg_of(SERVER, key) {
                if !poll.users.is_empty() {
                    return Err(self.error("server option after user options"));
                }
                let opt = self.option(line, negated, key, arg)?;
                poll.server.push(opt);
            } else if let Some(arg) = arg_of(USER, key) {
                let opt = self.option(line, negated, key, arg)?;
                match poll.users.last_mut() {
                    Some(u) => u.push(opt),
                    None => poll.users.push(vec![opt]),
                }
            } else {
                return Err(self.error("not a server or user option"));
            }
        }
        Ok(poll)
    }

    fn option(
        &mut self,
        line: usize,
        negated: bool,
        key: &'static str,
        arg: Arg,
    ) -> Result<Opt, SyntaxError> {
        if negated {
            self.pos += 1;
            // `no envelope` takes no value; every other `no` is a flag's.
            if arg != Arg::Flag && key != "envelope" {
                return Err(self.error("only a flag can follow no"));
            }
        }
        self.pos += 1;
        let value = if negated {
            Value::Flag
        } else if key == "is" && matches!(self.peek_at(1), Some(Tok::Kw("there"))) {
            // `is NAME there`: the name on the server.
            let s = self.string()?;
            self.pos += 1;
            return Ok(Opt {
                line,
                key: "user",
                negated: false,
                value: Value::Str(s),
            });
        } else {
            self.value(arg)?
        };
        Ok(Opt {
            line,
            key,
            negated,
            value,
        })
    }

    fn value(&mut self, arg: Arg) -> Result<Value, SyntaxError> {
        Ok(match arg {
            Arg::Flag => Value::Flag,
            Arg::Str => Value::Str(self.string()?),
            Arg::Num => Value::Num(self.number()?),
            Arg::Strs => {
                let mut v = vec![self.string()?];
                while let Some(Tok::Str(_)) = self.peek() {
                    v.push(self.string()?);
                }
                Value::List(v)
            }
            Arg::Nums => {
                let mut v = vec![self.number()?.to_string()];
                while let Some(Tok::Num(_)) = self.peek() {
                    v.push(self.number()?.to_string());
                }
                Value::List(v)
            }
            Arg::StrOrNum => match self.peek() {
                Some(Tok::Num(_)) => Value::Num(self.number()?),
                _ => Value::Str(self.string()?),
            },
            Arg::Proto => match self.peek() {
                Some(&Tok::Proto(p)) => {
                    self.pos += 1;
                    Value::Str(p.into())
                }
                _ => return Err(self.error("expected a protocol name")),
            },
            Arg::Auth => match self.peek() {
                Some(&Tok::AuthType(a)) => {
                    self.pos += 1;
                    Value::Str(a.into())
                }
                _ => return Err(self.error("expected an authentication type")),
            },
            Arg::Envelope => {
                if let Some(Tok::Num(_)) = self.peek() {
                    self.pos += 1;
                }
                Value::Str(self.string()?)
            }
            Arg::BadHeader => match self.next() {
                Some(Tok::Kw(k @ ("accept" | "reject"))) => Value::Str(k.into()),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("expected accept or reject"));
                }
            },
            Arg::Names => {
                let names = self.mapping_list()?;
                if self.peek() == Some(&Tok::Kw("here")) {
                    self.pos += 1;
                }
                Value::Names(names)
            }
        })
    }

    /// `NAME`, or `REMOTE = LOCAL`, one or more.
    fn mapping_list(&mut self) -> Result<Vec<(String, Option<String>)>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            let name = self.string()?;
            let local = if self.peek() == Some(&Tok::Map) {
                self.pos += 1;
                Some(self.string()?)
            } else {
                None
            };
            out.push((name, local));
            if !matches!(self.peek(), Some(Tok::Str(_))) {
                return Ok(out);
            }
        }
    }

    /// After `user`: `NAME`, `NAME there`, or `NAMES... here`.
    fn user_def(&mut self, line: usize) -> Result<Opt, SyntaxError> {
        let names = self.mapping_list()?;
        let opt = |value| Opt {
            line,
            key: "user",
            negated: false,
            value,
        };
        match self.peek() {
            Some(Tok::Kw("here")) => {
                self.pos += 1;
                Ok(opt(Value::Names(names)))
            }
            Some(Tok::Kw("there")) if names.len() == 1 && names[0].1.is_none() => {
                self.pos += 1;
                Ok(opt(Value::Str(names.into_iter().next().unwrap().0)))
            }
            _ if names.len() == 1 && names[0].1.is_none() => {
                Ok(opt(Value::Str(names.into_iter().next().unwrap().0)))
            }
            _ => Err(self.error("several user names need here after them")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[Opt]) -> Vec<(&str, bool, Value)> {
        o.iter()
            .map(|o| (o.key, o.negated, o.value.clone()))
            .collect()
    }

    #[test]
    fn the_man_page_examples() {
        let rc = parse(
            br#"
# fetchmail(1), CONFIGURATION EXAMPLES
set daemon 300
set logfile = "/var/log/fetchmail.log"
defaults proto pop3 user "fetchmail" keep

poll pop.provider.net proto pop3 user "jsmith" with pass "secret1" is "smith" here
poll other.provider.net user "jsmith" there with password "x" is jsmith here;
     user jones with pass "y" is 'jones' here no keep
skip imap.example.org via mail.example.org proto imap port 993:
  user joe password foo is bob = jsmith fred here
  folder INBOX,Lists ssl sslfingerprint "AA:BB"
"#,
        )
        .unwrap();
        assert_eq!(rc.sets.len(), 2);
        assert_eq!(rc.sets[0].value, Value::Num(300));
        assert_eq!(rc.sets[1].value.text(), Some("/var/log/fetchmail.log"));
        assert_eq!(rc.polls.len(), 4);
        assert_eq!(rc.polls[0].kind, PollKind::Defaults);
        let p = &rc.polls[1];
        assert_eq!((p.name.as_str(), p.line), ("pop.provider.net", 7));
        assert_eq!(
            opts(&p.server),
            [("protocol", false, Value::Str("pop3".into()))]
        );
        assert_eq!(
            opts(&p.users[0]),
            [
                ("user", false, Value::Str("jsmith".into())),
                ("password", false, Value::Str("secret1".into())),
                ("is", false, Value::Names(vec![("smith".into(), None)])),
            ]
        );
        let p = &rc.polls[2];
        assert_eq!(p.users.len(), 2);
        assert_eq!(
            opts(&p.users[1])[3],
            ("keep", true, Value::Flag),
            "{:?}",
            p.users[1]
        );
        let p = &rc.polls[3];
        assert_eq!(p.kind, PollKind::Skip);
        assert_eq!(p.users[0][0].line, 11);
        assert_eq!(
            p.users[0][2].value,
            Value::Names(vec![
                ("bob".into(), Some("jsmith".into())),
                ("fred".into(), None)
            ])
        );
        assert_eq!(
            p.users[0][3].value,
            Value::List(vec!["INBOX".into(), "Lists".into()])
        );
    }

    #[test]
    fn options_without_user_and_is_there() {
        let rc = parse(b"poll h keep is joe there fetchall").unwrap();
        assert_eq!(
            opts(&rc.polls[0].users[0]),
            [
                ("keep", false, Value::Flag),
                ("user", false, Value::Str("joe".into())),
                ("fetchall", false, Value::Flag),
            ]
        );
        let rc = parse(b"poll h").unwrap();
        assert!(rc.polls[0].users.is_empty());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, what) in [
            (
                &b"poll h user a\nkeep\nproto pop3\n"[..],
                3,
                "server option after user",
            ),
            (b"poll h\nport pop3s\n", 2, "expected a number"),
            (b"\n\nuser joe\n", 3, "expected set, poll"),
            (b"poll\n", 1, "the end of the file"),
            (b"poll h proto smtp", 1, "protocol name"),
            (b"poll h auth sideways", 1, "authentication type"),
            (b"set nosuch 1", 1, "expected what to set"),
            (b"poll h no mda x", 1, "only a flag"),
            (b"poll h keep user a", 1, "come after user"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e:?}");
            assert!(e.what.contains(what), "{e:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            &b"poll"[..],
            b"poll h user",
            b"poll h is",
            b"poll h is a =",
            b"poll h bad-header",
            b"poll h user a b",
            b"no no no",
            b"set no",
            b"set daemon =",
            b"poll h envelope 2",
            b"=",
        ] {
            let _ = parse(text);
        }
    }
}
