//! Sans-io reader for the responses to `UID FETCH ... (UID BODY.PEEK[])`
//! (and `BODY.PEEK[]<offset.length>`): body literals stream out as they
//! arrive, in pieces of whatever the socket delivered, never buffered whole.
//!
//! Why not the `imap` crate for this: it reads a literal line by line and
//! re-parses the response from its start after every line, and holds the
//! whole response in memory, which took most of the CPU time of a full
//! sync (bench/README.md). Everything else (login, SELECT, SEARCH, flags)
//! still goes through the crate.
//!
//! The reader understands enough IMAP to stay in step with any response:
//! lines, literals (skipped unless they are a body), quoted strings and
//! parenthesised lists, so a UID after the body, a MODSEQ or FLAGS item, or
//! an unsolicited EXPUNGE does not confuse it. Response text outside
//! literals is capped.

use crate::error::{Result, protocol};

/// Longest response text (outside literals) we accept for one response.
pub const MAX_TEXT: usize = 64 * 1024;
/// Longest literal we accept (a message body): 2^32 - 1, IMAP's limit;
/// the connection's byte budget bounds what we really take.
pub const MAX_LITERAL: u64 = u32::MAX as u64;

/// What the reader saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A body literal of `len` bytes starts, in FETCH response `seq`; the
    /// UID when it came before the body.
    BodyStart {
        seq: u32,
        uid: Option<u32>,
        len: u64,
        /// `BODY[]<origin>`: where a partial body starts.
        origin: Option<u64>,
    },
    /// Body bytes, in order.
    BodyData(&'a [u8]),
    /// The body literal ended.
    BodyEnd,
    /// A FETCH response ended; its UID if it had one.
    FetchEnd { seq: u32, uid: Option<u32> },
    /// The tagged reply to our command.
    Done { ok: bool, text: String },
}

#[derive(Debug)]
enum State {
    /// Collecting a line (outside literals) into `line`.
    Line,
    /// Inside a literal with this many bytes left; `body` if it is a body.
    Literal { left: u64, body: bool },
}

/// Reads the replies to tagged commands: one, or several pipelined (a
/// server may send the untagged data of all of them before the first
/// tagged reply, as Dovecot does, so the data cannot be told apart by tag).
#[derive(Debug)]
pub struct FetchReader {
    tags: Vec<String>,
    /// Which of `tags` the last Done event was for.
    finished: Option<usize>,
    state: State,
    line: Vec<u8>,
    /// The current response's text so far, literals replaced by `{}`.
    text: Vec<u8>,
    /// Whether `text` belongs to a response that continues after a literal.
    in_response: bool,
    done: bool,
}

impl FetchReader {
    pub fn new(tag: &str) -> FetchReader {
        FetchReader::with_tags(vec![tag.to_string()])
    }

    /// A reader that ends at the tagged reply to any of `tags`; after
    /// each, [`resume`](Self::resume) reads on.
    pub fn with_tags(tags: Vec<String>) -> FetchReader {
        FetchReader {
            tags,
            finished: None,
            state: State::Line,
            line: Vec::new(),
            text: Vec::new(),
            in_response: false,
            done: false,
        }
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// The tag whose tagged reply was the last Done event.
    pub fn finished(&self) -> Option<&str> {
        self.finished.map(|i| self.tags[i].as_str())
    }

    /// Read on after a Done event (more tagged replies are awaited).
    pub fn resume(&mut self) {
        self.done = false;
        self.finished = None;
    }

    /// Whether [`next`](Self::next) needs bytes to make progress (false
    /// when a body literal has just ended: the next call says so without
    /// input).
    pub fn needs_input(&self) -> bool {
        !self.done && !matches!(self.state, State::Literal { left: 0, .. })
    }

    /// Take bytes from `buf`; returns how many were used and at most one
    /// event. Call again with the rest (and more bytes) until `done()`.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, Option<Event<'a>>)> {
        if self.done {
            return Ok((0, None));
        }
        match self.state {
            State::Literal { left: 0, body } => {
                self.state = State::Line;
                Ok((0, body.then_some(Event::BodyEnd)))
            }
            State::Literal { left, body } => {
                let n = (buf.len() as u64).min(left) as usize;
                self.state = State::Literal {
                    left: left - n as u64,
                    body,
                };
                Ok((n, (body && n > 0).then(|| Event::BodyData(&buf[..n]))))
            }
            State::Line if buf.is_empty() => Ok((0, None)),
            State::Line => {
                let (used, complete) = match buf.iter().position(|&b| b == b'\n') {
                    Some(p) => (p + 1, true),
                    None => (buf.len(), false),
                };
                if self.line.len() + used > MAX_TEXT {
                    return Err(protocol(
                        "the server sent an over-long line in a FETCH reply",
                    ));
                }
                self.line.extend_from_slice(&buf[..used]);
                if !complete {
                    return Ok((used, None));
                }
                let line = std::mem::take(&mut self.line);
                let ev = self.line_done(&line)?;
                Ok((used, ev))
            }
        }
    }

    /// A complete line (outside literals): the end of a response, our
    /// tagged reply, or the head of a literal.
    fn line_done(&mut self, raw: &[u8]) -> Result<Option<Event<'static>>> {
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !self.in_response {
            self.text.clear();
            let tagged = self.tags.iter().position(|t| {
                line.strip_prefix(t.as_bytes())
                    .is_some_and(|rest| rest.first() == Some(&b' '))
            });
            if let Some(i) = tagged {
                let rest = &line[self.tags[i].len()..];
                self.finished = Some(i);
                let rest = &rest[1..];
                // On the bytes: the text need not be UTF-8, and its second
                // byte need not end a character.
                let ok = rest.get(..2).is_some_and(|s| s.eq_ignore_ascii_case(b"OK"));
                let text = String::from_utf8_lossy(rest).into_owned();
                self.done = true;
                return Ok(Some(Event::Done { ok, text }));
            }
            if !line.starts_with(b"* ") && !line.starts_with(b"+") {
                return Err(protocol(format!(
                    "unexpected line in a FETCH reply: {:?}",
                    crate::sanitize::escape_bytes(&line[..line.len().min(80)])
                )));
            }
        }
        // A literal at the end of the line?
        if let Some((before, len)) = literal_suffix(line)? {
            if self.text.len() + before.len() > MAX_TEXT {
                return Err(protocol("the server sent an over-long FETCH reply"));
            }
            self.text.extend_from_slice(before);
            let section = body_section(&self.text);
            let body = section.is_some();
            self.text.extend_from_slice(b"{}");
            self.in_response = true;
            self.state = State::Literal { left: len, body };
            if let Some(origin) = section {
                let seq = fetch_seq(&self.text).unwrap_or(0);
                let uid = find_uid(&self.text);
                return Ok(Some(Event::BodyStart {
                    seq,
                    uid,
                    len,
                    origin,
                }));
            }
            return Ok(None);
        }
        if self.text.len() + line.len() > MAX_TEXT {
            return Err(protocol("the server sent an over-long FETCH reply"));
        }
        self.text.extend_from_slice(line);
        self.in_response = false;
        match fetch_seq(&self.text) {
            Some(seq) => Ok(Some(Event::FetchEnd {
                seq,
                uid: find_uid(&self.text),
            })),
            None => Ok(None), // EXISTS, EXPUNGE, OK [...] and the like
        }
    }
}

/// `... {123}` or `... {123+}` at the end of a line: the text before it and
/// the literal length. A `{` that does not form a literal is not one.
fn literal_suffix(line: &[u8]) -> Result<Option<(&[u8], u64)>> {
    if !line.ends_with(b"}") {
        return Ok(None);
    }
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let inner = &line[open + 1..line.len() - 1];
    let inner = inner.strip_suffix(b"+").unwrap_or(inner);
    if inner.is_empty() || !inner.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let len: u64 = std::str::from_utf8(inner)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n <= MAX_LITERAL)
        .ok_or_else(|| protocol("the server announced a literal larger than IMAP allows"))?;
    Ok(Some((&line[..open], len)))
}

/// Whether the response text so far ends with a body section item
/// (`BODY[]`, `BODY[]<0>`, `RFC822`, optionally followed by a space).
#[cfg(test)]
fn ends_with_body_section(text: &[u8]) -> bool {
    body_section(text).is_some()
}

/// If the response text so far ends with a body section item (`BODY[]`,
/// `BODY[]<origin>`, `RFC822`, optionally followed by a space): Some, with
/// the partial's origin if there is one.
fn body_section(text: &[u8]) -> Option<Option<u64>> {
    let t = text.strip_suffix(b" ").unwrap_or(text);
    let (t, origin) = match t.strip_suffix(b">") {
        Some(rest) => match rest.iter().rposition(|&b| b == b'<') {
            Some(p) if rest[p + 1..].iter().all(u8::is_ascii_digit) => (
                &rest[..p],
                Some(std::str::from_utf8(&rest[p + 1..]).ok()?.parse().ok()?),
            ),
            _ => return None,
        },
        None => (t, None),
    };
    let u = t[t.len().saturating_sub(8)..].to_ascii_uppercase();
    (u.ends_with(b" BODY[]")
        || u.ends_with(b"(BODY[]")
        || u.ends_with(b" RFC822")
        || u.ends_with(b"(RFC822"))
    .then_some(origin)
}

/// `* 12 FETCH (` -> 12.
fn fetch_seq(text: &[u8]) -> Option<u32> {
    let rest = text.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let seq: u32 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let after = &rest[sp + 1..];
    (after.len() >= 7 && after[..7].eq_ignore_ascii_case(b"FETCH (")).then_some(seq)
}

/// The UID item at the top level of a FETCH response's attribute list.
fn find_uid(text: &[u8]) -> Option<u32> {
    let open = text.iter().position(|&b| b == b'(')?;
    let mut toks = Tokens {
        s: &text[open + 1..],
        depth: 0,
    };
    while let Some((tok, depth)) = toks.next() {
        if depth == 0 && tok.eq_ignore_ascii_case(b"UID") {
            let (v, _) = toks.next()?;
            return std::str::from_utf8(v).ok()?.parse().ok();
        }
    }
    None
}

/// Tokens of response text: atoms (with `[...]` sections and `<...>`
/// partials kept whole), quoted strings, parentheses; yields each token with
/// its nesting depth.
struct Tokens<'a> {
    s: &'a [u8],
    depth: i32,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<(&'a [u8], i32)> {
        loop {
            let (&c, rest) = self.s.split_first()?;
            match c {
                b' ' => self.s = rest,
                b'(' => {
                    self.depth += 1;
                    self.s = rest;
                }
                b')' => {
                    self.depth -= 1;
                    self.s = rest;
                    if self.depth < 0 {
                        return None;
                    }
                }
                b'"' => {
                    let mut i = 1;
                    while i < self.s.len() && self.s[i] != b'"' {
                        i += if self.s[i] == b'\\' { 2 } else { 1 };
                    }
                    let tok = &self.s[..(i + 1).min(self.s.len())];
                    self.s = &self.s[(i + 1).min(self.s.len())..];
                    return Some((tok, self.depth));
                }
                _ => {
                    let mut i = 0;
                    let mut bracket = 0;
                    while i < self.s.len() {
                        match self.s[i] {
                            b'[' => bracket += 1,
                            b']' => bracket -= 1,
                            b' ' | b'(' | b')' if bracket <= 0 => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    let tok = &self.s[..i];
                    self.s = &self.s[i..];
                    return Some((tok, self.depth));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the reader over `input` split every `split` bytes; collect the
    /// events with body bytes joined.
    fn run(tag: &str, input: &[u8], split: usize) -> Vec<String> {
        let mut r = FetchReader::new(tag);
        let mut out = Vec::new();
        let mut body = Vec::new();
        let mut chunks = input.chunks(split.max(1));
        let mut rest: &[u8] = &[];
        // The way a session drives it: more input only when it needs some.
        while !r.done() {
            if r.needs_input() && rest.is_empty() {
                rest = chunks.next().expect("the reply ended early");
            }
            let (used, ev) = r.next(rest).unwrap();
            match ev {
                Some(Event::BodyData(d)) => body.extend_from_slice(d),
                Some(Event::BodyEnd) => {
                    out.push(format!("body {:?}", String::from_utf8_lossy(&body)));
                    body.clear();
                }
                Some(e) => out.push(format!("{e:?}")),
                None => {}
            }
            rest = &rest[used..];
        }
        out
    }

    const TWO: &[u8] = b"* 1 FETCH (UID 7 MODSEQ (12) BODY[] {5}\r\nhello)\r\n\
* 3 EXPUNGE\r\n\
* 2 FETCH (BODY[] {6}\r\n(){}\r\n UID 9 FLAGS (\\Seen))\r\n\
F1 OK done\r\n";

    #[test]
    fn bodies_stream_whatever_the_split() {
        let whole = run("F1", TWO, TWO.len());
        assert_eq!(
            whole,
            vec![
                "BodyStart { seq: 1, uid: Some(7), len: 5, origin: None }",
                "body \"hello\"",
                "FetchEnd { seq: 1, uid: Some(7) }",
                "BodyStart { seq: 2, uid: None, len: 6, origin: None }",
                "body \"(){}\\r\\n\"",
                "FetchEnd { seq: 2, uid: Some(9) }",
                "Done { ok: true, text: \"OK done\" }",
            ]
        );
        for split in 1..TWO.len() {
            assert_eq!(run("F1", TWO, split), whole, "split {split}");
        }
    }

    #[test]
    fn partial_bodies_and_non_body_literals() {
        let input = b"* 4 FETCH (UID 3 BODY[]<1048576> {3}\r\nabc)\r\n\
* 5 FETCH (UID 4 BODY[HEADER] {2}\r\nxx BODY[] {0}\r\n)\r\n\
F2 NO gone\r\n";
        let got = run("F2", input, 1000);
        assert_eq!(
            got,
            vec![
                "BodyStart { seq: 4, uid: Some(3), len: 3, origin: Some(1048576) }",
                "body \"abc\"",
                "FetchEnd { seq: 4, uid: Some(3) }",
                "BodyStart { seq: 5, uid: Some(4), len: 0, origin: None }",
                "body \"\"",
                "FetchEnd { seq: 5, uid: Some(4) }",
                "Done { ok: false, text: \"NO gone\" }",
            ]
        );
    }

    /// Pipelined FETCHes as Dovecot answers them: the data of every command
    /// first, then the tagged replies. A reader for all the tags sees each
    /// body, with its origin, and each tagged reply in turn.
    #[test]
    fn pipelined_replies_with_the_tagged_lines_last() {
        let input = b"* 9 FETCH (UID 9 BODY[]<0> {3}\r\nabc)\r\n\
* 9 FETCH (UID 9 BODY[]<3> {2}\r\nde)\r\n\
* 10 FETCH (UID 10 BODY[] {1}\r\nz)\r\n\
F1 OK a\r\nF2 OK b\r\nF3 OK c\r\n";
        let mut r = FetchReader::with_tags(vec!["F1".into(), "F2".into(), "F3".into()]);
        let mut rest = &input[..];
        let mut seen = Vec::new();
        loop {
            let (used, ev) = r.next(rest).unwrap();
            rest = &rest[used..];
            match ev {
                Some(Event::BodyStart { uid, origin, .. }) => {
                    seen.push(format!("{uid:?}@{origin:?}"))
                }
                Some(Event::Done { .. }) => {
                    seen.push(r.finished().unwrap().to_string());
                    if r.finished() == Some("F3") {
                        break;
                    }
                    r.resume();
                }
                _ => {}
            }
        }
        assert_eq!(
            seen,
            [
                "Some(9)@Some(0)",
                "Some(9)@Some(3)",
                "Some(10)@None",
                "F1",
                "F2",
                "F3"
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn hostile_input() {
        let mut r = FetchReader::new("F1");
        assert!(r.next(b"* 1 FETCH (BODY[] {99999999999}\r\n").is_err());
        let mut r = FetchReader::new("F1");
        assert!(r.next(&vec![b'x'; MAX_TEXT + 1]).is_err());
        let mut r = FetchReader::new("F1");
        assert!(r.next(b"garbage\r\n").is_err());
        // A quoted "UID" in another item is not the UID.
        assert_eq!(find_uid(b"* 1 FETCH (X \"UID 5\" UID 6)"), Some(6));
        assert_eq!(
            find_uid(b"* 1 FETCH (BODY[HEADER.FIELDS (UID)] {} UID 8)"),
            Some(8)
        );
        assert_eq!(find_uid(b"* 1 FETCH (FLAGS (UID 3))"), None);
    }

    /// Found by the `imap_fetch` fuzz target: a tagged reply whose status
    /// starts with a byte that is not ASCII panicked (a string slice at a
    /// byte that is not a character boundary).
    #[test]
    fn fuzz_tagged_reply_with_non_ascii_status() {
        for (input, text) in [
            (&b"F1 \xf7\n"[..], "\u{fffd}"),
            (b"F1 \xf7NO gone\r\n", "\u{fffd}NO gone"),
            ("F1 \u{e9}t\u{e9}\r\n".as_bytes(), "\u{e9}t\u{e9}"),
            (b"F1 O\xcc\r\n", "O\u{fffd}"),
        ] {
            let mut r = FetchReader::new("F1");
            let (used, ev) = r.next(input).unwrap();
            assert_eq!(used, input.len());
            assert_eq!(
                ev,
                Some(Event::Done {
                    ok: false,
                    text: text.into()
                })
            );
        }
        let mut r = FetchReader::new("F1");
        assert_eq!(
            r.next(b"F1 ok\r\n").unwrap().1,
            Some(Event::Done {
                ok: true,
                text: "ok".into()
            })
        );
        crate::fuzzing::imap_fetch(b"F1 \xf7\n");
    }

    #[test]
    fn body_section_detection() {
        assert!(ends_with_body_section(b"* 1 FETCH (UID 1 BODY[] "));
        assert!(ends_with_body_section(b"* 1 FETCH (BODY[]<0> "));
        assert!(ends_with_body_section(b"* 1 FETCH (RFC822 "));
        assert!(!ends_with_body_section(b"* 1 FETCH (BODY[HEADER] "));
        assert!(!ends_with_body_section(b"* 1 FETCH (X-BODY[] "));
    }
}
