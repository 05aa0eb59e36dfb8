//! fetchmail's run control file as tokens, the way its own lexer
//! (`rcfile_l.l` in fetchmail's sources) cuts it: quoted and bare strings
//! with C-style escapes, numbers, keywords (a bare word is a keyword only
//! when it is one whole), the noise words it ignores (`with`, `and`,
//! `has`, `wants`, `options`, and `;` `:` `,`), `#` comments, and the
//! `no` glued to a flag (`nokeep` is `no keep`).
//!
//! Two states of that lexer matter: after `user`, `pass[word]`, `is`, `to`
//! or `=`, the next bare word is a name whatever it spells (`password
//! keep` is the password "keep"); after `auth[enticate]`, `password` is an
//! authentication type. No I/O; any bytes give tokens or an error with a
//! line number, never a panic.

/// One token and the line it starts on (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) line: usize,
    pub(super) kind: Tok,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A keyword, by its canonical spelling (`user` for `username`).
    Kw(&'static str),
    /// `no`, alone or glued to a flag.
    No,
    /// `=`
    Map,
    Str(String),
    Num(i64),
    /// A protocol name (`pop3`, `imap`, `auto`, ...), lower case.
    Proto(&'static str),
    /// An authentication type (`password`, `cram-md5`, ...), canonical.
    AuthType(&'static str),
}

/// A bare word that is a keyword, and its canonical spelling.
const KEYWORDS: &[(&str, &str)] = &[
    ("set", "set"),
    ("logfile", "logfile"),
    ("idfile", "idfile"),
    ("pidfile", "pidfile"),
    ("daemon", "daemon"),
    ("syslog", "syslog"),
    ("invisible", "invisible"),
    ("showdots", "showdots"),
    ("postmaster", "postmaster"),
    ("bouncemail", "bouncemail"),
    ("spambounce", "spambounce"),
    ("softbounce", "softbounce"),
    ("warnings", "warnings"),
    ("tracepolls", "tracepolls"),
    ("defaults", "defaults"),
    ("server", "poll"),
    ("poll", "poll"),
    ("skip", "skip"),
    ("via", "via"),
    ("aka", "aka"),
    ("local", "localdomains"),
    ("localdomains", "localdomains"),
    ("proto", "protocol"),
    ("protocol", "protocol"),
    ("service", "service"),
    ("port", "port"),
    ("interval", "interval"),
    ("preauth", "auth"),
    ("preauthenticate", "auth"),
    ("auth", "auth"),
    ("authenticate", "auth"),
    ("timeout", "timeout"),
    ("idletimeout", "idletimeout"),
    ("envelope", "envelope"),
    ("qvirtual", "qvirtual"),
    ("principal", "principal"),
    ("esmtpname", "esmtpname"),
    ("esmtppassword", "esmtppassword"),
    ("bad-header", "bad-header"),
    ("accept", "accept"),
    ("reject", "reject"),
    ("user", "user"),
    ("username", "user"),
    ("pass", "password"),
    ("password", "password"),
    ("folder", "folder"),
    ("folders", "folder"),
    ("smtp", "smtphost"),
    ("smtphost", "smtphost"),
    ("fetchdomains", "fetchdomains"),
    ("smtpaddress", "smtpaddress"),
    ("smtpname", "smtpname"),
    ("antispam", "antispam"),
    ("mda", "mda"),
    ("bsmtp", "bsmtp"),
    ("lmtp", "lmtp"),
    ("pre", "preconnect"),
    ("preconnect", "preconnect"),
    ("post", "postconnect"),
    ("postconnect", "postconnect"),
    ("interface", "interface"),
    ("monitor", "monitor"),
    ("plugin", "plugin"),
    ("plugout", "plugout"),
    ("batchlimit", "batchlimit"),
    ("fetchlimit", "fetchlimit"),
    ("fetchsizelimit", "fetchsizelimit"),
    ("fastuidl", "fastuidl"),
    ("expunge", "expunge"),
    ("properties", "properties"),
    ("is", "is"),
    ("here", "here"),
    ("there", "there"),
    ("to", "to"),
    ("keep", "keep"),
    ("flush", "flush"),
    ("limitflush", "limitflush"),
    ("fetchall", "fetchall"),
    ("rewrite", "rewrite"),
    ("forcecr", "forcecr"),
    ("stripcr", "stripcr"),
    ("pass8", "pass8bits"),
    ("pass8bits", "pass8bits"),
    ("dropstatus", "dropstatus"),
    ("dropdelivered", "dropdelivered"),
    ("mimedec", "mimedecode"),
    ("mimedecode", "mimedecode"),
    ("idle", "idle"),
    ("forceidle", "forceidle"),
    ("dns", "dns"),
    ("uidl", "uidl"),
    ("checkalias", "checkalias"),
    ("ssl", "ssl"),
    ("sslkey", "sslkey"),
    ("sslcert", "sslcert"),
    ("sslproto", "sslproto"),
    ("sslcertck", "sslcertck"),
    ("sslcertfile", "sslcertfile"),
    ("sslcertpath", "sslcertpath"),
    ("sslcommonname", "sslcommonname"),
    ("sslfingerprint", "sslfingerprint"),
    ("limit", "limit"),
];

/// Flags that take a glued `no` (`nokeep`); the rest needs `no keep`.
const NO_GLUED: &[&str] = &[
    "bouncemail",
    "uidl",
    "checkalias",
    "dns",
    "envelope",
    "keep",
    "flush",
    "limitflush",
    "fetchall",
    "rewrite",
    "forcecr",
    "stripcr",
    "pass8",
    "pass8bits",
    "dropstatus",
    "dropdelivered",
    "mimedec",
    "mimedecode",
    "spambounce",
    "idle",
    "forceidle",
];

const NOISE: &[&str] = &["with", "and", "has", "wants", "options"];

const AUTH_TYPES: &[(&str, &str)] = &[
    ("any", "any"),
    ("gssapi", "gssapi"),
    ("kerberos_v4", "kerberos_v4"),
    ("kerberos4", "kerberos_v4"),
    ("kerberos", "kerberos_v4"),
    ("kerberos_v5", "kerberos_v5"),
    ("kerberos5", "kerberos_v5"),
    ("ssh", "ssh"),
    ("implicit", "implicit"),
    ("external", "external"),
    ("otp", "otp"),
    ("opie", "otp"),
    ("cram", "cram-md5"),
    ("cram-md5", "cram-md5"),
    ("msn", "msn"),
    ("ntlm", "ntlm"),
];

const PROTOCOLS: &[&str] = &[
    "auto", "pop2", "sdps", "pop3", "imap", "apop", "rpop", "etrn", "odmr", "kpop",
];

/// A file with more tokens than this is not a run control file.
const MAX_TOKENS: usize = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    /// The next bare word is a name.
    Name,
    /// `password` is an authentication type.
    Auth,
}

/// What went wrong, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub(super) line: usize,
    pub(super) what: String,
}

/// Cut `text` into tokens.
pub(super) fn tokens(text: &[u8]) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut state = State::Initial;
    let mut line = 1usize;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b';' | b':' | b',' => i += 1,
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'=' => {
                out.push(Token {
                    line,
                    kind: Tok::Map,
                });
                state = State::Name;
                i += 1;
            }
            b'"' | b'\'' => {
                let Some(len) = text[i + 1..].iter().position(|&b| b == c) else {
                    return Err(SyntaxError {
                        line,
                        what: "a quoted string that does not end".into(),
                    });
                };
                let raw = &text[i + 1..i + 1 + len];
                out.push(Token {
                    line,
                    kind: Tok::Str(unescape(raw)),
                });
                line += raw.iter().filter(|&&b| b == b'\n').count();
                state = State::Initial;
                i += len + 2;
            }
            _ => {
                let len = text[i..]
                    .iter()
                    .position(|b| b"=;:, \t\r\n".contains(b))
                    .unwrap_or(text.len() - i);
                let word = &text[i..i + len];
                i += len;
                word_tokens(word, line, &mut state, &mut out);
            }
        }
        if out.len() > MAX_TOKENS {
            return Err(SyntaxError {
                line,
                what: "too many words for a run control file".into(),
            });
        }
    }
    Ok(out)
}

/// The token(s) of one bare word, as the lexer's state reads it.
fn word_tokens(word: &[u8], line: usize, state: &mut State, out: &mut Vec<Token>) {
    let push = |out: &mut Vec<Token>, kind| out.push(Token { line, kind });
    if *state == State::Name {
        push(out, Tok::Str(unescape(word)));
        *state = State::Initial;
        return;
    }
    let Ok(w) = std::str::from_utf8(word) else {
        push(out, Tok::Str(unescape(word)));
        return;
    };
    if *state == State::Auth && w == "password" {
        push(out, Tok::AuthType("password"));
        *state = State::Initial;
        return;
    }
    if let Some((_, canon)) = KEYWORDS.iter().find(|(k, _)| *k == w) {
        *state = match *canon {
            "user" | "password" | "is" | "to" => State::Name,
            "auth" => State::Auth,
            _ => *state,
        };
        push(out, Tok::Kw(canon));
        return;
    }
    if w == "no" {
        push(out, Tok::No);
        return;
    }
    if let Some(rest) = w.strip_prefix("no")
        && NO_GLUED.contains(&rest)
    {
        push(out, Tok::No);
        word_tokens(rest.as_bytes(), line, state, out);
        return;
    }
    if NOISE.contains(&w) {
        return;
    }
    if let Some((_, canon)) = AUTH_TYPES.iter().find(|(k, _)| *k == w) {
        *state = State::Initial;
        push(out, Tok::AuthType(canon));
        return;
    }
    let lower = w.to_ascii_lowercase();
    if (w == lower || w == w.to_ascii_uppercase())
        && let Some(p) = PROTOCOLS.iter().find(|p| **p == lower)
    {
        push(out, Tok::Proto(p));
        return;
    }
    let digits = w.strip_prefix('-').unwrap_or(w);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Like C's atoi on a number too large: clamp rather than fail.
        let n = w.parse::<i64>().unwrap_or(if w.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        push(out, Tok::Num(n));
        return;
    }
    push(out, Tok::Str(unescape(word)));
}

/// C-style escapes, as fetchmail reads them in every string: `\n`, `\t`,
/// `\r`, `\b`, `\\`, `\xHH`, `\0OOO` octal, `\DDD` decimal; a backslash
/// before a line end joins the lines; any other escaped byte is itself.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&c) = raw.get(i) else { break };
        let digits = |i: &mut usize, radix: u32, max: usize| -> u8 {
            let mut v: u32 = 0;
            let mut n = 0;
            while n < max
                && let Some(d) = raw.get(*i).and_then(|&b| char::from(b).to_digit(radix))
            {
                v = v * radix + d;
                *i += 1;
                n += 1;
            }
            (v & 0xff) as u8
        };
        match c {
            b'x' | b'X' => {
                i += 1;
                out.push(digits(&mut i, 16, 2));
            }
            b'0' => out.push(digits(&mut i, 8, 3)),
            b'1'..=b'9' => out.push(digits(&mut i, 10, 3)),
            b'\n' => i += 1,
            _ => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'b' => 8,
                    b'r' => b'\r',
                    other => other,
                });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        tokens(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn keywords_noise_and_names() {
        use Tok::*;
        assert_eq!(
            kinds(
                "poll pop.example.org with proto POP3 port 995:\n  user 'joe' there, with password keep is jsmith here; options keep"
            ),
            vec![
                Kw("poll"),
                Str("pop.example.org".into()),
                Kw("protocol"),
                Proto("pop3"),
                Kw("port"),
                Num(995),
                Kw("user"),
                Str("joe".into()),
                Kw("there"),
                Kw("password"),
                Str("keep".into()),
                Kw("is"),
                Str("jsmith".into()),
                Kw("here"),
                Kw("keep"),
            ]
        );
    }

    #[test]
    fn glued_no_auth_state_and_comments() {
        use Tok::*;
        assert_eq!(
            kinds("nokeep no sslcertck # a comment keep\nauth password nofoo"),
            vec![
                No,
                Kw("keep"),
                No,
                Kw("sslcertck"),
                Kw("auth"),
                AuthType("password"),
                Str("nofoo".into()),
            ]
        );
        // Outside `auth`, `password` is the keyword.
        assert_eq!(kinds("password"), vec![Kw("password")]);
        // A number in a name position is a name.
        assert_eq!(kinds("user 1234"), vec![Kw("user"), Str("1234".into())]);
    }

    #[test]
    fn escapes_and_lines() {
        let t =
            tokens(b"set daemon 300\n\npoll \"a\\x41\\t\\101\\0101\"\n'multi\nline' x").unwrap();
        // \101 is decimal (e); \0101 reads three octal digits (010) then a 1.
        assert_eq!(t[4].kind, Tok::Str("aA\te\u{8}1".into()));
        assert_eq!(t[4].line, 3);
        assert_eq!(t[5].line, 4);
        assert_eq!(t[6].line, 5);
        let e = tokens(b"poll x\nuser \"joe").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            &b"\\"[..],
            b"\"\\",
            b"'\\x",
            b"\xff\xfe no\xff = = =",
            b"-",
            b"99999999999999999999999",
            b"\\0777\\999",
        ] {
            let _ = tokens(text);
        }
    }
}
