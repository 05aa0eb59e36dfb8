//! Sans-io LMTP/SMTP: replies in (RFC 5321 section 4.2: one or more lines
//! `CODE-text`, the last `CODE text`; RFC 3463 enhanced status codes; RFC
//! 2033 for LMTP, whose replies have the same shape), the EHLO/LHLO
//! capabilities, and message bytes out (CRLF line ends and dot-stuffing,
//! RFC 5321 section 4.5.2). No I/O here: the session feeds bytes in and
//! sends what comes out; the fuzz target feeds it anything.

/// A reply line longer than this is not a reply (RFC 5321 section 4.5.3.1.5
/// allows 512 bytes; servers send more text than that now and then).
pub const MAX_LINE: usize = 1000;
/// Lines in one reply, at most (an EHLO reply lists a dozen or so). With
/// [`MAX_LINE`] this keeps a whole reply well inside the connection's
/// read buffer.
pub const MAX_LINES: usize = 50;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code (200-599).
    pub code: u16,
    /// The enhanced status code of the first line (`5.1.1`), when the
    /// server sends them.
    pub enhanced: Option<(u8, u16, u16)>,
    /// Each line's text after the code and its separator, as sent (lossy
    /// UTF-8).
    pub lines: Vec<String>,
}

impl Reply {
    /// 2 (success), 3 (go on: DATA's 354), 4 (try again later) or 5 (no).
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The reply as one line for messages and the ledger: `550 5.1.1 text`
    /// with the lines joined by ` / `.
    pub fn words(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
            .trim_end()
            .to_string()
    }
}

/// Parse the reply at the start of `buf`. `Ok(None)`: it is not complete
/// yet. `Ok(Some((reply, n)))`: it took the first `n` bytes. `Err`: what
/// is there is not a reply (the text says why).
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > MAX_LINE {
                return Err(format!("a reply line longer than {MAX_LINE} bytes"));
            }
            return Ok(None);
        };
        if nl > MAX_LINE {
            return Err(format!("a reply line longer than {MAX_LINE} bytes"));
        }
        let mut line = &rest[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        pos += nl + 1;
        let (this, last, text) = split_line(line)?;
        match code {
            None => code = Some(this),
            Some(c) if c != this => {
                return Err(format!(
                    "a reply whose lines have different codes ({c} and {this})"
                ));
            }
            Some(_) => {}
        }
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            let code = this;
            let enhanced = enhanced_code(&lines[0], code);
            return Ok(Some((
                Reply {
                    code,
                    enhanced,
                    lines,
                },
                pos,
            )));
        }
        if lines.len() >= MAX_LINES {
            return Err(format!("a reply of more than {MAX_LINES} lines"));
        }
    }
}

/// `250-text` -> (250, false, "text"); `250 text` or `250` -> (250, true, ..).
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), String> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(format!("not a reply: {:?}", shown()));
    }
    let code = u16::from(line[0] - b'0') * 100
        + u16::from(line[1] - b'0') * 10
        + u16::from(line[2] - b'0');
    if !(200..600).contains(&code) {
        return Err(format!("a reply code out of range: {:?}", shown()));
    }
    match line.get(3) {
        None => Ok((code, true, &[])),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(format!("not a reply: {:?}", shown())),
    }
}

/// The RFC 3463 code at the start of `text` (`class.subject.detail`),
/// when its class matches the reply code's.
fn enhanced_code(text: &str, code: u16) -> Option<(u8, u16, u16)> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || u16::from(class) != code / 100 || subject > 999 || detail > 999 {
        return None;
    }
    Some((class, subject, detail))
}

/// What the server offers in its EHLO/LHLO reply (RFC 5321 section 4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 6152: 8-bit message bytes may be sent with BODY=8BITMIME.
    pub eight_bit_mime: bool,
    /// RFC 6531: addresses and headers in UTF-8.
    pub smtputf8: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 1870: the largest message it takes (0: no limit given).
    pub size: Option<u64>,
}

impl Caps {
    /// The capabilities in an EHLO/LHLO reply (its first line greets).
    pub fn parse(reply: &Reply) -> Caps {
        let mut caps = Caps::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else { continue };
            match name.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        caps
    }
}

/// Message bytes with LF line ends (as the spool holds them) out as the
/// DATA of RFC 5321: every LF sent as CRLF, a line that starts with `.`
/// sent with another `.` before it, and at [`Stuffer::finish`] a line
/// break if the message lacks a final one, then the `.` line.
#[derive(Debug)]
pub struct Stuffer {
    at_line_start: bool,
}

impl Default for Stuffer {
    fn default() -> Stuffer {
        Stuffer {
            at_line_start: true,
        }
    }
}

impl Stuffer {
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(p) => {
                    out.extend_from_slice(&rest[..p]);
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    rest = &rest[p + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// The end of the message: the final line break if missing, and `.`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.at_line_start = true;
    }
}

/// What a server receiving stuffed DATA keeps (RFC 5321 section 4.5.2):
/// the inverse of [`Stuffer`] up to the final line break, for tests and
/// the fuzz target. `None` when `data` does not end with the `.` line.
pub fn unstuff(data: &[u8]) -> Option<Vec<u8>> {
    let body = data.strip_suffix(b".\r\n")?;
    if !(body.is_empty() || body.ends_with(b"\r\n")) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_prefix(b".").unwrap_or(line);
        match line.strip_suffix(b"\r\n") {
            Some(l) => {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    Some(out)
}

/// Fuzzing entry: replies (whole and in every split), capabilities, and the
/// DATA encoding, on any bytes; must never panic.
pub fn fuzz(data: &[u8]) {
    let mut rest = data;
    let mut replies = 0;
    while let Ok(Some((reply, n))) = parse_reply(rest) {
        assert!(n > 0 && n <= rest.len());
        assert!((200..600).contains(&reply.code) && !reply.lines.is_empty());
        let _ = Caps::parse(&reply);
        let _ = reply.words();
        rest = &rest[n..];
        replies += 1;
        if replies > 1000 {
            break;
        }
    }
    // A reply cut anywhere is incomplete or an error, never another reply.
    if let Ok(Some((whole, n))) = parse_reply(data) {
        for cut in [n / 2, n.saturating_sub(1)] {
            if let Ok(Some((part, m))) = parse_reply(&data[..cut]) {
                assert!(m <= cut && part.lines.len() <= whole.lines.len());
            }
        }
    }
    // Stuffing, in two pieces, comes back as the input (with a final LF).
    let mut s = Stuffer::default();
    let mut out = Vec::new();
    let mid = data.len() / 3;
    s.push(&data[..mid], &mut out);
    s.push(&data[mid..], &mut out);
    s.finish(&mut out);
    let mut want = data.to_vec();
    if !want.is_empty() && !want.ends_with(b"\n") {
        want.push(b'\n');
    }
    // A CR before an LF is data: "\r\n" in goes out as "\r\r\n" and a
    // server reads it back as "\r\n" -> our LF form "\r\n" again.
    assert_eq!(unstuff(&out), Some(want));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Reply {
        let (r, n) = parse_reply(bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        r
    }

    #[test]
    fn single_and_multiline_replies() {
        let r = one(b"250 2.0.0 Ok: queued as 12345\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, Some((2, 0, 0)));
        assert_eq!(r.words(), "250 2.0.0 Ok: queued as 12345");
        let r = one(b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 STARTTLS\r\n");
        assert_eq!(r.lines.len(), 5);
        let caps = Caps::parse(&r);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.starttls && !caps.smtputf8);
        assert_eq!(caps.size, Some(10_240_000));
        // A bare code, a bare LF, an enhanced code of another class.
        let r = one(b"354\n");
        assert_eq!((r.code, r.lines.len()), (354, 1));
        assert_eq!(one(b"451 5.0.0 odd\r\n").enhanced, None);
        assert_eq!(
            one(b"550 5.1.1 <x@y>: unknown\r\n").enhanced,
            Some((5, 1, 1))
        );
    }

    #[test]
    fn incomplete_replies_wait_for_more() {
        let full = b"250-a\r\n250-b\r\n250 c\r\nleft over";
        for cut in 0..21 {
            assert_eq!(parse_reply(&full[..cut]), Ok(None), "cut {cut}");
        }
        let (r, n) = parse_reply(full).unwrap().unwrap();
        assert_eq!((r.lines.len(), &full[n..]), (3, &b"left over"[..]));
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"hello\r\n"[..],
            b"25 short\r\n",
            b"099 low\r\n",
            b"600 high\r\n",
            b"250x\r\n",
            b"250-a\r\n251 b\r\n",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_reply(&vec![b'2'; MAX_LINE + 2]).is_err());
        let many = "250-x\r\n".repeat(MAX_LINES + 1);
        assert!(parse_reply(many.as_bytes()).is_err());
    }

    #[test]
    fn stuffing_any_split() {
        let input = b".leading dot\nmid.dle\n..two\n\nlast without newline";
        let want = b"..leading dot\r\nmid.dle\r\n...two\r\n\r\nlast without newline\r\n.\r\n";
        for split in 1..input.len() {
            let mut s = Stuffer::default();
            let mut out = Vec::new();
            for piece in input.chunks(split) {
                s.push(piece, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out, want, "split {split}");
        }
        let mut s = Stuffer::default();
        let mut out = Vec::new();
        s.finish(&mut out);
        assert_eq!(out, b".\r\n", "an empty message is only the end");
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        // A deterministic spread of bytes: replies, halves, binary.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let mut data = b"250-x\r\n250 8BITMIME\r\n".to_vec();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pool = b"25 -\r\n.0a\x80";
                let b = pool[(seed % pool.len() as u64) as usize];
                data.push(b);
            }
            fuzz(&data);
            fuzz(&data[data.len() / 2..]);
        }
    }
}
