//! Sans-io reading of the reply to `LIST "" *` (RFC 3501 §6.3.8, §7.2.2):
//! where one response ends (a line, or lines joined by literals), and what
//! a `* LIST` response says.
//!
//! Why not the `imap` crate here: its parser takes only 7-bit quoted
//! strings, and once UTF8=ACCEPT is enabled (RFC 6855 §3) a server sends
//! mailbox names as quoted UTF-8, which the crate turns into a failed
//! command. Nothing here does I/O or sizes an allocation from what the
//! server says: a response (with its literals) is capped at
//! [`MAX_RESPONSE`] bytes.

use crate::error::{Result, protocol};

/// Longest LIST response we accept, literals included: a mailbox name has
/// no reason to come near it.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// One folder as a `* LIST` response names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The name attributes (`\Noselect`, `\HasChildren`, ...), as sent.
    pub attrs: Vec<String>,
    pub delimiter: Option<char>,
    /// The name as it was on the wire, quoting and literal framing
    /// removed: modified UTF-7, or UTF-8 once UTF8=ACCEPT is enabled.
    /// `INBOX` in any case is `INBOX`.
    pub name: String,
}

impl Listed {
    /// Whether the folder can be selected: not `\Noselect`, and not
    /// `\NonExistent` (RFC 5258 §3.4, which implies `\Noselect`).
    pub fn selectable(&self) -> bool {
        !self.attrs.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }
}

/// One response of the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    List(Listed),
    /// The tagged reply: whether it was OK, and its text.
    Done {
        ok: bool,
        text: String,
    },
    /// Any other response (unsolicited EXISTS, a `* OK` ...): ignored.
    Other,
}

/// The length of the first complete response in `buf` (its line, plus any
/// literal with the line that follows it), or `None` when more bytes are
/// needed. An error when it would be longer than [`MAX_RESPONSE`].
pub fn response_end(buf: &[u8]) -> Result<Option<usize>> {
    let mut at = 0;
    loop {
        let Some(end) = crate::wire::line_end(&buf[at..], MAX_RESPONSE - at)? else {
            return Ok(None);
        };
        let line = &buf[at..at + end];
        at += end;
        let Some(n) = literal_len(line)? else {
            return Ok(Some(at));
        };
        if n > MAX_RESPONSE - at {
            return Err(too_long());
        }
        if buf.len() < at + n {
            return Ok(None);
        }
        at += n;
    }
}

fn too_long() -> crate::error::Error {
    protocol(format!("a LIST response longer than {MAX_RESPONSE} bytes"))
}

/// The length of the literal that `line` announces at its end (`{n}`,
/// `{n+}` or `~{n}` before the line end), if any.
fn literal_len(line: &[u8]) -> Result<Option<usize>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = body.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    if digits.len() > 9 {
        return Err(too_long());
    }
    // At most nine digits: fits.
    let n: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(too_long)?;
    Ok(Some(n))
}

/// What the response `resp` (as [`response_end`] delimits it) says, in
/// the reply to the command tagged `tag`.
pub fn parse(resp: &[u8], tag: &str) -> Result<Reply> {
    let line = resp.strip_suffix(b"\n").unwrap_or(resp);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line
        .strip_prefix(tag.as_bytes())
        .and_then(|r| r.strip_prefix(b" "))
    {
        let text = String::from_utf8_lossy(rest).into_owned();
        let ok = text.get(..2).is_some_and(|w| w.eq_ignore_ascii_case("OK"))
            && text[2..].chars().next().is_none_or(|c| c == ' ');
        return Ok(Reply::Done { ok, text });
    }
    let mut p = Parser { s: resp, at: 0 };
    if !p.word_ci(b"* LIST ") {
        return Ok(Reply::Other);
    }
    let attrs = p.attrs()?;
    p.expect(b' ')?;
    let delimiter = match p.nstring()? {
        None => None,
        Some(d) => {
            let d = String::from_utf8(d).map_err(|_| bad("a delimiter that is not UTF-8"))?;
            let mut cs = d.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Some(c),
                _ => return Err(bad("a delimiter that is not one character")),
            }
        }
    };
    p.expect(b' ')?;
    let name = p.astring()?;
    // Anything after the name (RFC 5258 extended data) is not ours to read.
    let name = String::from_utf8(name).map_err(|_| bad("a mailbox name that is not UTF-8"))?;
    let name = if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name
    };
    Ok(Reply::List(Listed {
        attrs,
        delimiter,
        name,
    }))
}

fn bad(what: &str) -> crate::error::Error {
    protocol(format!("unreadable LIST response: {what}"))
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() != Some(b) {
            return Err(bad(&format!("expected {:?}", b as char)));
        }
        self.at += 1;
        Ok(())
    }

    /// Consume `w` if the input goes on with it, any case.
    fn word_ci(&mut self, w: &[u8]) -> bool {
        let ok = self
            .s
            .get(self.at..self.at + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w));
        if ok {
            self.at += w.len();
        }
        ok
    }

    /// `(` flag *(SP flag) `)`.
    fn attrs(&mut self) -> Result<Vec<String>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b')') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b' ') => self.at += 1,
                Some(_) => {
                    let a = self.atom();
                    if a.is_empty() {
                        return Err(bad("a malformed attribute list"));
                    }
                    out.push(String::from_utf8_lossy(a).into_owned());
                }
                None => return Err(bad("an attribute list without its end")),
            }
        }
    }

    /// Bytes up to a space, parenthesis, quote, brace or line end.
    fn atom(&mut self) -> &[u8] {
        let start = self.at;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'"' | b'{' | b'\r' | b'\n') {
                break;
            }
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    /// NIL, or a string.
    fn nstring(&mut self) -> Result<Option<Vec<u8>>> {
        if self.peek() != Some(b'"') && self.peek() != Some(b'{') && self.word_ci(b"NIL") {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// An atom, a quoted string or a literal.
    fn astring(&mut self) -> Result<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.string(),
            _ => {
                let a = self.atom();
                if a.is_empty() {
                    return Err(bad("no mailbox name"));
                }
                Ok(a.to_vec())
            }
        }
    }

    /// A quoted string (escapes removed) or a literal.
    fn string(&mut self) -> Result<Vec<u8>> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.at += 1;
                            return Ok(out);
                        }
                        Some(b'\\') => {
                            self.at += 1;
                            match self.peek() {
                                Some(c @ (b'\\' | b'"')) => out.push(c),
                                _ => return Err(bad("a stray backslash in a quoted string")),
                            }
                            self.at += 1;
                        }
                        Some(b'\r' | b'\n') | None => {
                            return Err(bad("a quoted string without its end"));
                        }
                        Some(c) => {
                            out.push(c);
                            self.at += 1;
                        }
                    }
                }
            }
            Some(b'{' | b'~') => {
                if self.peek() == Some(b'~') {
                    self.at += 1;
                }
                self.expect(b'{')?;
                let close = self.s[self.at..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or_else(|| bad("a literal without its length"))?;
                let digits = &self.s[self.at..self.at + close];
                let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .filter(|d| !d.is_empty() && d.len() <= 9)
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| bad("a literal with a malformed length"))?;
                self.at += close + 1;
                if !self.word_ci(b"\r\n") {
                    return Err(bad("a literal length not at the line end"));
                }
                let data = self
                    .s
                    .get(self.at..self.at.saturating_add(n))
                    .ok_or_else(|| bad("a literal shorter than announced"))?;
                self.at += n;
                Ok(data.to_vec())
            }
            _ => Err(bad("expected a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(line: &str) -> Listed {
        match parse(line.as_bytes(), "F1").unwrap() {
            Reply::List(l) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_responses() {
        let l = list("* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\n");
        assert_eq!(l.name, "Entw&APw-rfe");
        assert_eq!(l.delimiter, Some('/'));
        assert!(l.selectable());
        // UTF-8, as a server sends it once UTF8=ACCEPT is enabled.
        let l = list("* LIST () \".\" \"Entwürfe.Grüße\"\r\n");
        assert_eq!(
            (l.name.as_str(), l.delimiter),
            ("Entwürfe.Grüße", Some('.'))
        );
        let l = list("* list (\\Noselect \\HasChildren) NIL inbox\r\n");
        assert_eq!((l.name.as_str(), l.delimiter), ("INBOX", None));
        assert!(!l.selectable());
        assert!(!list("* LIST (\\NonExistent) \"/\" x").selectable());
        let l = list("* LIST () \"\\\\\" \"a\\\\b \\\"q\\\"\"\r\n");
        assert_eq!((l.name.as_str(), l.delimiter), ("a\\b \"q\"", Some('\\')));
        let l = list("* LIST () \"/\" {9}\r\nTom \"&\" J\r\n");
        assert_eq!(l.name, "Tom \"&\" J");
        let l = list("* LIST () \"/\" Lists/rust (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
        assert_eq!(l.name, "Lists/rust");
    }

    #[test]
    fn other_and_tagged_replies() {
        assert_eq!(parse(b"* 3 EXISTS\r\n", "F1").unwrap(), Reply::Other);
        assert_eq!(
            parse(b"F1 OK done\r\n", "F1").unwrap(),
            Reply::Done {
                ok: true,
                text: "OK done".into()
            }
        );
        assert!(matches!(
            parse(b"F1 NO [NOPERM] no\r\n", "F1").unwrap(),
            Reply::Done { ok: false, .. }
        ));
        assert!(matches!(
            parse(b"F1 OKAY\r\n", "F1").unwrap(),
            Reply::Done { ok: false, .. }
        ));
        assert_eq!(parse(b"F12 OK x\r\n", "F1").unwrap(), Reply::Other);
    }

    #[test]
    fn malformed_lists_are_errors() {
        for bad in [
            "* LIST \"/\" x",
            "* LIST () \"/\"",
            "* LIST () \"/\" ",
            "* LIST () \"ab\" x",
            "* LIST () \"/\" \"open",
            "* LIST () \"/\" \"a\\xb\"",
            "* LIST () \"/\" {5}\r\nab",
            "* LIST () \"/\" {x}\r\nab",
            "* LIST (\\A",
        ] {
            assert!(parse(bad.as_bytes(), "F1").is_err(), "{bad:?}");
        }
        assert!(parse(b"* LIST () \"/\" \"\xff\"\r\n", "F1").is_err());
    }

    #[test]
    fn responses_end_after_their_literals() {
        assert_eq!(
            response_end(b"* LIST () \"/\" x\r\nF1 OK").unwrap(),
            Some(17)
        );
        assert_eq!(response_end(b"* LIST () \"/\" x").unwrap(), None);
        let r = b"* LIST () \"/\" {3}\r\nabc\r\nF1 OK\r\n";
        assert_eq!(response_end(r).unwrap(), Some(24));
        assert_eq!(response_end(&r[..21]).unwrap(), None);
        assert_eq!(response_end(&r[..22]).unwrap(), None);
        assert!(response_end(b"* LIST () \"/\" {99999999}\r\n").is_err());
        assert!(response_end(b"* LIST () \"/\" {9999999999}\r\n").is_err());
        assert!(response_end(&vec![b'x'; MAX_RESPONSE + 10]).is_err());
        // A literal's data that looks like a literal announcement is data.
        let r = b"* LIST () \"/\" {4}\r\nx{3}\r\nF1 OK\r\n";
        assert_eq!(response_end(r).unwrap(), Some(25));
        // Literal after literal, each followed by more of the line.
        let r = b"* LIST () {1}\r\n/ {2}\r\nab\r\n";
        assert_eq!(response_end(r).unwrap(), Some(r.len()));
        assert_eq!(
            parse(r, "F1").unwrap(),
            Reply::List(Listed {
                attrs: vec![],
                delimiter: Some('/'),
                name: "ab".into()
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Garbage never panics, and a response never ends past its input.
        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some(n)) = response_end(&bytes) {
                prop_assert!(n <= bytes.len());
                let _ = parse(&bytes[..n], "F1");
            }
            let _ = parse(&bytes, "F1");
            crate::fuzzing::imap_list(&bytes);
        }

        /// Near-LIST garbage: a LIST prefix followed by random bytes.
        #[test]
        fn list_prefixed_garbage(tail in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'('),
                        Just(b')'), Just(b' '), Just(b'\r'), Just(b'\n'), Just(b'~'),
                        Just(b'1'), Just(b'+'), any::<u8>()], 0..60)) {
            let mut r = b"* LIST ".to_vec();
            r.extend(tail);
            if let Ok(Some(n)) = response_end(&r) {
                prop_assert!(n <= r.len());
                let _ = parse(&r[..n], "F1");
            }
            let _ = parse(&r, "F1");
            crate::fuzzing::imap_list(&r);
        }

        /// Any name, quoted or as a literal, comes back as it was.
        #[test]
        fn names_round_trip(name in "\\PC{1,20}", literal: bool) {
            let wire = if literal {
                format!("{{{}}}\r\n{name}", name.len())
            } else {
                format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
            };
            prop_assume!(!name.contains(['\r', '\n']));
            let r = format!("* LIST () \"/\" {wire}\r\n");
            prop_assert_eq!(response_end(r.as_bytes()).unwrap(), Some(r.len()));
            let l = match parse(r.as_bytes(), "F1").unwrap() {
                Reply::List(l) => l,
                other => panic!("{other:?}"),
            };
            let want = if name.eq_ignore_ascii_case("INBOX") { "INBOX".to_string() } else { name };
            prop_assert_eq!(l.name, want);
        }
    }
}
