//! The mboxrd format, for writing a streamed message into an mbox file.
//!
//! A message in an mbox starts with a `From_` line ([`from_line`], carrying
//! the [`envelope_sender`] and the delivery time), is followed by its lines
//! with mboxrd quoting ([`FromQuoter`]: every line matching `^>*From ` gets
//! one more `>`, so that reading strips exactly one and the format is
//! reversible), ends with a newline, and then an empty line separates it
//! from the next message. The writer of the file (not this module) adds that
//! empty line and does the locking (`mbox_lock`).
//!
//! Because the `From_` line needs the sender from the header and bodies are
//! streamed, [`HeaderSniffer`] holds back the beginning of a message until
//! its header block is complete.
//!
//! Input is a message whose line ends are already LF; a CR is ordinary data.

/// The sender used when a message names none (as mutt, procmail and
/// Dovecot do).
pub const NO_SENDER: &str = "MAILER-DAEMON";

/// The longest sender we put on a `From_` line, in bytes.
pub const MAX_SENDER: usize = 255;

/// How much of a message [`HeaderSniffer`] holds back at most.
pub const HEADER_CAP: usize = 256 * 1024;

const FROM: &[u8; 5] = b"From ";

/// Streaming mboxrd quoting: every line matching `^>*From ` gets one more
/// leading `>`.
///
/// Any split of the input gives the same output. Nothing is buffered but two
/// counters: while a line so far is `>`s followed by a prefix of `From `,
/// those bytes are held back as counts and written once the line proves to
/// need quoting or not, so memory stays O(1) even for a line of a million
/// `>`s.
#[derive(Debug, Clone)]
pub struct FromQuoter {
    /// True while the current line could still turn out to match `^>*From `.
    at_prefix: bool,
    /// `>`s held back at the start of the current line.
    gts: u64,
    /// Bytes of `From ` matched after them (0..5).
    matched: usize,
    /// Whether any input was seen.
    any: bool,
    /// Whether the last input byte was LF.
    last_nl: bool,
}

impl Default for FromQuoter {
    fn default() -> Self {
        Self::new()
    }
}

impl FromQuoter {
    pub fn new() -> Self {
        FromQuoter {
            at_prefix: true,
            gts: 0,
            matched: 0,
            any: false,
            last_nl: false,
        }
    }

    /// Quote the next piece of the message, appending to `out`.
    pub fn quote(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        self.any = true;
        self.last_nl = input[input.len() - 1] == b'\n';
        let mut i = 0;
        while i < input.len() {
            if !self.at_prefix {
                // Copy through the end of the line in one go.
                match input[i..].iter().position(|&c| c == b'\n') {
                    Some(n) => {
                        out.extend_from_slice(&input[i..i + n + 1]);
                        i += n + 1;
                        self.at_prefix = true;
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        return;
                    }
                }
                continue;
            }
            let c = input[i];
            if c == b'>' && self.matched == 0 {
                self.gts += 1;
                i += 1;
            } else if c == FROM[self.matched] {
                self.matched += 1;
                i += 1;
                if self.matched == FROM.len() {
                    out.push(b'>');
                    self.flush_prefix(out);
                    self.at_prefix = false;
                }
            } else {
                // Not a From_ line: what was held back is ordinary data, and
                // `c` is handled as the rest of the line.
                self.flush_prefix(out);
                self.at_prefix = false;
            }
        }
    }

    /// Write the held-back prefix and forget it.
    fn flush_prefix(&mut self, out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(b'>', self.gts as usize));
        out.extend_from_slice(&FROM[..self.matched]);
        self.gts = 0;
        self.matched = 0;
    }

    /// The message has ended: write any held-back prefix, and a final LF if
    /// the message did not end with one (an empty message stays empty).
    /// The quoter is then ready for a new message.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_prefix(out);
        if !self.ended_with_newline() {
            out.push(b'\n');
        }
        *self = FromQuoter::new();
    }

    /// Whether the input so far is empty or ends with LF (so [`finish`]
    /// adds nothing but held-back bytes).
    ///
    /// [`finish`]: FromQuoter::finish
    pub fn ended_with_newline(&self) -> bool {
        !self.any || self.last_nl
    }
}

/// The inverse of [`FromQuoter`], line by line: every line matching
/// `^>+From ` loses one leading `>`.
#[cfg(test)]
pub fn unquote(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(quoted.len());
    for line in quoted.split_inclusive(|&c| c == b'\n') {
        let gts = line.iter().take_while(|&&c| c == b'>').count();
        if gts > 0 && line[gts..].starts_with(FROM) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The envelope sender for the `From_` line, from a message's header block:
/// the address in the first `Return-Path:` (`<>` means none), else the first
/// address of the first `From:`, else [`NO_SENDER`].
///
/// The result is safe on a `From_` line: whitespace and control characters
/// become `_`, it is never empty, and at most [`MAX_SENDER`] bytes long.
pub fn envelope_sender(header_block: &[u8]) -> String {
    let mut return_path = None;
    let mut from = None;
    let mut rest = header_block;
    while !rest.is_empty() && rest[0] != b'\n' {
        if rest.starts_with(b"\r\n") {
            break;
        }
        match mailparse::parse_header(rest) {
            Ok((h, next)) if next > 0 => {
                let key = h.get_key_ref();
                if return_path.is_none() && key.trim().eq_ignore_ascii_case("Return-Path") {
                    return_path = Some(h.get_value());
                } else if from.is_none() && key.trim().eq_ignore_ascii_case("From") {
                    from = Some(first_address(&h));
                }
                rest = &rest[next..];
            }
            // A stray continuation line (or anything unparseable): skip it.
            _ => match rest.iter().position(|&c| c == b'\n') {
                Some(n) => rest = &rest[n + 1..],
                None => break,
            },
        }
    }
    let raw = match return_path {
        Some(v) => angle_addr(&v),
        None => from.unwrap_or_default(),
    };
    safe_sender(&raw)
}

/// The envelope sender an MTA recorded in the message's first
/// `Return-Path:` header, as LMTP and SMTP hand-off use it (RFC 5321
/// section 4.4): Some("") for `<>`, None when there is no such header or
/// its address could not be sent in `MAIL FROM:<...>` (not `local@domain`;
/// a space, a control character, an angle bracket; longer than
/// [`MAX_SENDER`]).
pub fn return_path(header_block: &[u8]) -> Option<String> {
    let mut rest = header_block;
    while !rest.is_empty() && rest[0] != b'\n' && !rest.starts_with(b"\r\n") {
        match mailparse::parse_header(rest) {
            Ok((h, next)) if next > 0 => {
                if h.get_key_ref().trim().eq_ignore_ascii_case("Return-Path") {
                    let addr = angle_addr(&h.get_value());
                    // `<>`, or one `@` between a local part and a domain:
                    // anything else (a UUCP path, a source route) a server
                    // refuses with 501, which would make the message
                    // undeliverable for the sake of its trace header.
                    let shaped = addr.is_empty()
                        || addr.split_once('@').is_some_and(|(l, d)| {
                            !l.is_empty() && !d.is_empty() && !d.contains('@')
                        });
                    let sendable = shaped
                        && addr.len() <= MAX_SENDER
                        && !addr
                            .chars()
                            .any(|c| c.is_control() || c.is_whitespace() || "<>,:;".contains(c));
                    return sendable.then_some(addr);
                }
                rest = &rest[next..];
            }
            _ => match rest.iter().position(|&c| c == b'\n') {
                Some(n) => rest = &rest[n + 1..],
                None => break,
            },
        }
    }
    None
}

/// The address in a `Return-Path:` value: inside the first `<…>`, else the
/// first word.
fn angle_addr(value: &str) -> String {
    if let Some(start) = value.find('<') {
        let inner = &value[start + 1..];
        let end = inner.find('>').unwrap_or(inner.len());
        return inner[..end].trim().to_string();
    }
    value.split_whitespace().next().unwrap_or("").to_string()
}

/// The first address of a `From:` header, or a best guess when it does not
/// parse.
fn first_address(h: &mailparse::MailHeader) -> String {
    if let Ok(list) = mailparse::addrparse_header(h) {
        for a in list.iter() {
            match a {
                mailparse::MailAddr::Single(s) => return s.addr.clone(),
                mailparse::MailAddr::Group(g) => {
                    if let Some(s) = g.addrs.first() {
                        return s.addr.clone();
                    }
                }
            }
        }
    }
    let v = h.get_value();
    if v.contains('<') {
        return angle_addr(&v);
    }
    v.split(|c: char| c.is_whitespace() || c == ',')
        .find(|w| w.contains('@'))
        .unwrap_or("")
        .to_string()
}

/// Make a sender safe for a `From_` line (see [`envelope_sender`]):
/// printable ASCII only, because readers (Python's mailbox, mutt) decode
/// the `From_` line as ASCII; an internationalised address (RFC 6531) keeps
/// its shape with `_` for each non-ASCII character.
fn safe_sender(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_SENDER));
    for c in raw.trim().chars() {
        let c = if c.is_ascii_graphic() { c } else { '_' };
        if out.len() + c.len_utf8() > MAX_SENDER {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str(NO_SENDER);
    }
    out
}

/// A `From_` line: `From SENDER Www Mmm dd hh:mm:ss yyyy\n`, the time in UTC
/// in asctime format (the day padded with a space: `Mon Nov  2 ...`). The
/// sender is made safe as by [`envelope_sender`].
pub fn from_line(sender: &str, unix_time: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_time.div_euclid(86_400);
    let secs = unix_time.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wday = (days + 4).rem_euclid(7) as usize;
    format!(
        "From {} {} {} {:2} {:02}:{:02}:{:02} {}\n",
        safe_sender(sender),
        DAYS[wday],
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

/// (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01, in
/// the proleptic Gregorian calendar (H. Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1
    let mp = (5 * doy + 2) / 153; // 0..=11, March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Holds back the beginning of a streamed message until its header block is
/// complete, so that the `From_` line can name the sender before anything is
/// written.
///
/// The header block ends with the first empty line (`"\n\n"`, or a message
/// that starts with `"\n"`); the bytes held back include that empty line. If
/// no empty line comes within [`HEADER_CAP`] bytes, the first `HEADER_CAP`
/// bytes count as the header.
///
/// Use:
/// ```text
/// for chunk in message {
///     if sniffer.is_complete() { write(chunk); continue; }
///     if let Some(n) = sniffer.push(chunk) {
///         let head = sniffer.finish();    // the held-back bytes
///         write(from_line(&envelope_sender(&head), now));
///         write(head); write(&chunk[n..]);
///     }
/// }
/// if !sniffer.is_complete() {             // the message ended inside its header
///     let head = sniffer.finish();
///     write(from_line(..)); write(head);
/// }
/// ```
#[derive(Debug)]
pub struct HeaderSniffer {
    buf: Vec<u8>,
    cap: usize,
    /// The last byte taken was LF, or nothing was taken yet.
    at_line_start: bool,
    /// The header block is complete (or capped); see [`HeaderSniffer::push`].
    complete: bool,
    /// `finish` was called.
    finished: bool,
}

impl Default for HeaderSniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderSniffer {
    pub fn new() -> Self {
        Self::with_cap(HEADER_CAP)
    }

    /// A sniffer that holds back at most `cap` bytes (at least 1).
    pub fn with_cap(cap: usize) -> Self {
        HeaderSniffer {
            buf: Vec::new(),
            cap: cap.max(1),
            at_line_start: true,
            complete: false,
            finished: false,
        }
    }

    /// Take the next chunk. `None`: all of it was held back and the header
    /// block is still incomplete. `Some(n)`: the header block completed (or
    /// reached the cap) after the first `n` bytes of `chunk`, which were held
    /// back; `chunk[n..]` is the rest of the message, for the caller. Once
    /// complete, every further call returns `Some(0)`.
    pub fn push(&mut self, chunk: &[u8]) -> Option<usize> {
        if self.complete {
            return Some(0);
        }
        let room = self.cap - self.buf.len();
        let mut prev_nl = self.at_line_start;
        let mut end = None;
        for (i, &c) in chunk.iter().take(room).enumerate() {
            if c == b'\n' {
                if prev_nl {
                    end = Some(i + 1);
                    break;
                }
                prev_nl = true;
            } else {
                prev_nl = false;
            }
        }
        let n = match end {
            Some(n) => n,
            None if chunk.len() >= room => room, // capped
            None => {
                self.buf.extend_from_slice(chunk);
                self.at_line_start = prev_nl;
                return None;
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        self.complete = true;
        Some(n)
    }

    /// Whether the header block is complete (or capped, or `finish` was
    /// called): further chunks are body, for the caller to write directly.
    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        self.complete || self.finished
    }

    /// The bytes held back so far.
    #[cfg(test)]
    pub fn held(&self) -> &[u8] {
        &self.buf
    }

    /// End sniffing, and hand back the held-back bytes: once `push` returned
    /// `Some`, or when the message ended before its header block did. Later
    /// calls return nothing.
    pub fn finish(&mut self) -> Vec<u8> {
        self.complete = true;
        self.finished = true;
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn return_path_only_when_sendable() {
        let rp = |h: &str| return_path(h.as_bytes());
        assert_eq!(
            rp("Return-Path: <a@b.example>\nFrom: c@d\n\n"),
            Some("a@b.example".into())
        );
        assert_eq!(rp("Return-Path: <>\n\n"), Some(String::new()));
        assert_eq!(
            rp("Return-Path: bare@x.example\r\n\r\n"),
            Some("bare@x.example".into())
        );
        assert_eq!(
            rp("From: c@d.example\n\n"),
            None,
            "From is no envelope sender"
        );
        for bad in [
            "Return-Path: <develop!nextmime@ebony@sblab.att.com>\n",
            "Return-Path: <@relay.example:u@x.example>\n",
            "Return-Path: <no-domain@>\n",
            "Return-Path: <two words@x.example>\n",
        ] {
            assert_eq!(rp(bad), None, "{bad}");
        }
        // Only the header counts, and the first Return-Path.
        assert_eq!(rp("Subject: x\n\nReturn-Path: <a@b.example>\n"), None);
        assert_eq!(
            rp("Return-Path: <a@b.example>\nReturn-Path: <c@d.example>\n\n"),
            Some("a@b.example".into())
        );
    }

    use super::*;

    fn quote_all(input: &[u8]) -> Vec<u8> {
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        q.quote(input, &mut out);
        q.finish(&mut out);
        out
    }

    fn quote_split(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            q.quote(&input[at..c], &mut out);
            at = c;
        }
        q.quote(&input[at..], &mut out);
        q.finish(&mut out);
        out
    }

    fn with_final_nl(input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        if !v.is_empty() && !v.ends_with(b"\n") {
            v.push(b'\n');
        }
        v
    }

    #[test]
    fn quotes_from_lines() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"From x\n", b">From x\n"),
            (b">From x\n", b">>From x\n"),
            (b">>>From \n", b">>>>From \n"),
            (b"From\n", b"From\n"),
            (b"From", b"From\n"),
            (b"Fro", b"Fro\n"),
            (b">From", b">From\n"),
            (b"from x\n", b"from x\n"),
            (b" From x\n", b" From x\n"),
            (b"x From y\n", b"x From y\n"),
            (b"From:x\n", b"From:x\n"),
            (b">>\n", b">>\n"),
            (b">", b">\n"),
            (b"", b""),
            (b"\n", b"\n"),
            (b"a\nFrom b\n>From c\nd", b"a\n>From b\n>>From c\nd\n"),
            (b"\rFrom x\n", b"\rFrom x\n"),
            (b"From x\rFrom y\n", b">From x\rFrom y\n"),
            (b"FFrom x\n", b"FFrom x\n"),
            (b">F>From x\n", b">F>From x\n"),
        ];
        for (input, want) in cases {
            assert_eq!(
                quote_all(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn finish_resets_for_next_message() {
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        q.quote(b">>Fro", &mut out);
        assert!(!q.ended_with_newline());
        q.finish(&mut out);
        assert_eq!(out, b">>Fro\n");
        assert!(q.ended_with_newline());
        out.clear();
        q.quote(b"From a", &mut out);
        q.finish(&mut out);
        assert_eq!(out, b">From a\n");
    }

    #[test]
    fn holds_counts_not_bytes_for_long_prefixes() {
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        for _ in 0..1000 {
            q.quote(&[b'>'; 1000], &mut out);
        }
        assert!(out.is_empty(), "a pure prefix is held back");
        q.quote(b"From x\n", &mut out);
        assert_eq!(out.len(), 1 + 1_000_000 + 7);
        assert!(out[..1_000_001].iter().all(|&c| c == b'>'));
        assert!(out.ends_with(b"From x\n"));
        out.clear();
        q.quote(&[b'>'; 5000], &mut out);
        q.quote(b"Fr", &mut out);
        q.quote(b"x\n", &mut out);
        assert_eq!(out.len(), 5000 + 4);
    }

    /// Many tricky messages, each quoted at every split into two and three
    /// pieces (and byte by byte), must quote the same and unquote back.
    #[test]
    fn any_split_gives_same_output_and_round_trips() {
        let lines: &[&[u8]] = &[
            b"From",
            b"From ",
            b"From x",
            b">From ",
            b">>From x",
            b">From",
            b"Fro",
            b"F",
            b">",
            b">>>>>>>>>>",
            b">>>>>>>>>>From  y",
            b"",
            b"\r",
            b"From\r",
            b"x>From y",
            b" From",
            b">F",
        ];
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in lines {
            for b in lines {
                for end in [&b""[..], b"\n"] {
                    let mut m = a.to_vec();
                    m.push(b'\n');
                    m.extend_from_slice(b);
                    m.extend_from_slice(end);
                    inputs.push(m);
                }
                let mut m = a.to_vec();
                m.extend_from_slice(b);
                inputs.push(m);
            }
        }
        for input in &inputs {
            let whole = quote_all(input);
            assert_eq!(unquote(&whole), with_final_nl(input), "{input:?}");
            for i in 0..=input.len() {
                assert_eq!(quote_split(input, &[i]), whole, "{input:?} at {i}");
            }
            let bytewise: Vec<usize> = (1..input.len()).collect();
            assert_eq!(quote_split(input, &bytewise), whole, "{input:?}");
        }
        // Three pieces on a few longer inputs.
        let long = b">From a\nFrom b\n>>From\nFrom\n>>>From c\nFr\n>";
        let whole = quote_all(long);
        assert_eq!(unquote(&whole), with_final_nl(long));
        for i in 0..=long.len() {
            for j in i..=long.len() {
                assert_eq!(quote_split(long, &[i, j]), whole);
            }
        }
    }

    #[test]
    fn pseudo_random_round_trips() {
        // A small xorshift, so the test is deterministic.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let alphabet = b">>>From \n\rx";
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let whole = quote_all(&input);
            assert_eq!(unquote(&whole), with_final_nl(&input), "{input:?}");
            let cut = (next() % (len as u64 + 1)) as usize;
            assert_eq!(quote_split(&input, &[cut]), whole);
        }
    }

    #[test]
    fn unquote_leaves_unquoted_lines() {
        assert_eq!(unquote(b"From x\n"), b"From x\n");
        assert_eq!(
            unquote(b">From x\n>>From y\n>x\n>From"),
            b"From x\n>From y\n>x\n>From"
        );
    }

    #[test]
    fn sender_from_return_path() {
        let h = b"Received: x\nReturn-Path: <alice@example.org>\nFrom: Bob <bob@example.org>\n\n";
        assert_eq!(envelope_sender(h), "alice@example.org");
        let h = b"Return-Path: <>\nFrom: bob@example.org\n\n";
        assert_eq!(envelope_sender(h), NO_SENDER);
        let h = b"return-path:   <a@b> (comment)\nReturn-Path: <second@b>\n";
        assert_eq!(envelope_sender(h), "a@b");
        let h = b"Return-Path: bare@example.org\n";
        assert_eq!(envelope_sender(h), "bare@example.org");
        let h = b"Return-Path:\n <folded@example.org>\n";
        assert_eq!(envelope_sender(h), "folded@example.org");
    }

    #[test]
    fn sender_from_from_header() {
        let h = b"Subject: hi\nFrom: \"Bob, Jr.\" <bob@example.org>, c@d\n\nbody";
        assert_eq!(envelope_sender(h), "bob@example.org");
        let h = b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\n";
        assert_eq!(envelope_sender(h), "joerg@example.org");
        let h = b"From:\n   folded@example.org\n";
        assert_eq!(envelope_sender(h), "folded@example.org");
        let h = b"From: team: x@example.org, y@example.org;\n";
        assert_eq!(envelope_sender(h), "x@example.org");
        let h = b"From: plain@example.org (Plain)\n";
        assert_eq!(envelope_sender(h), "plain@example.org");
        // Not an address at all.
        assert_eq!(envelope_sender(b"From: nobody\n"), NO_SENDER);
        assert_eq!(envelope_sender(b"Subject: x\n\n"), NO_SENDER);
        assert_eq!(envelope_sender(b""), NO_SENDER);
        assert_eq!(envelope_sender(b"\nFrom: body@example.org\n"), NO_SENDER);
    }

    #[test]
    fn sender_survives_hostile_headers() {
        // A continuation line first, a header without colon, CR bytes.
        let h = b" stray\nNoColon\nFrom: a@b\r\n\r\n";
        assert_eq!(envelope_sender(h), "a@b");
        let h = b"Return-Path: <a b\tc\x01d@e>\n";
        assert_eq!(envelope_sender(h), "a_b_c_d@e");
        let long = format!("Return-Path: <{}@example.org>\n", "x".repeat(1000));
        let s = envelope_sender(long.as_bytes());
        assert_eq!(s.len(), MAX_SENDER);
        // Non-ASCII becomes `_`, one per character (readers want ASCII).
        let long = format!("Return-Path: <{}>\n", "é".repeat(200));
        let s = envelope_sender(long.as_bytes());
        assert_eq!(s, "_".repeat(200));
        // Invalid UTF-8 does not panic.
        let s = envelope_sender(b"Return-Path: <\xff\xfe@x>\n");
        assert!(!s.contains(char::is_whitespace) && !s.is_empty());
        assert!(s.is_ascii(), "{s}");
        let s = envelope_sender(b"Return-Path: <   >\n");
        assert_eq!(s, NO_SENDER);
    }

    #[test]
    fn from_line_dates() {
        assert_eq!(from_line("a@b", 0), "From a@b Thu Jan  1 00:00:00 1970\n");
        // 2000-02-29 12:34:56 UTC
        assert_eq!(
            from_line("a@b", 951_827_696),
            "From a@b Tue Feb 29 12:34:56 2000\n"
        );
        // 2026-11-23 00:00:00 UTC
        assert_eq!(
            from_line("a@b", 1_795_392_000),
            "From a@b Mon Nov 23 00:00:00 2026\n"
        );
        // 2026-11-02 23:59:59 UTC: a day below 10 is space-padded.
        assert_eq!(
            from_line("a@b", 1_793_663_999),
            "From a@b Mon Nov  2 23:59:59 2026\n"
        );
        // Before the epoch: 1969-12-31 23:59:59.
        assert_eq!(from_line("a@b", -1), "From a@b Wed Dec 31 23:59:59 1969\n");
        assert_eq!(
            from_line("two words", 0),
            "From two_words Thu Jan  1 00:00:00 1970\n"
        );
        assert_eq!(
            from_line("", 0),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
        );
    }

    #[test]
    fn from_line_agrees_with_libc_gmtime() {
        let mut t: i64 = -2_208_988_800; // 1900
        while t < 7_258_118_400 {
            // to 2200, in odd steps
            let want = crate::platform::asctime_utc(t).unwrap();
            assert_eq!(from_line("s", t), format!("From s {want}"), "t={t}");
            t += 86_400 * 13 + 3_607;
        }
    }

    fn sniff_split(msg: &[u8], cuts: &[usize], cap: usize) -> (Vec<u8>, Vec<u8>) {
        let mut s = HeaderSniffer::with_cap(cap);
        let mut head = None;
        let mut body = Vec::new();
        let mut at = 0;
        let mut pieces: Vec<&[u8]> = Vec::new();
        for &c in cuts {
            pieces.push(&msg[at..c]);
            at = c;
        }
        pieces.push(&msg[at..]);
        for chunk in pieces {
            if s.is_complete() {
                body.extend_from_slice(chunk);
                continue;
            }
            if let Some(n) = s.push(chunk) {
                head = Some(s.finish());
                body.extend_from_slice(&chunk[n..]);
            }
        }
        if !s.is_complete() {
            head = Some(s.finish());
        }
        (head.unwrap(), body)
    }

    #[test]
    fn sniffer_finds_header_end_at_every_split() {
        let cases: &[(&[u8], usize)] = &[
            (b"From: a@b\nSubject: x\n\nbody\n\nmore\n", 22),
            (b"\nbody only\n", 1),
            (b"\n\n", 1),
            (b"A: b\n\n", 6),
            (b"A: b\n", 5),     // ends inside the header
            (b"A: b\nC: d", 9), // no final newline
            (b"", 0),
            (b"A: b\r\n\r\nbody", 12), // CRLF is not our line end: capped/ended
        ];
        for &(msg, head_len) in cases {
            for i in 0..=msg.len() {
                let (h, b) = sniff_split(msg, &[i], HEADER_CAP);
                assert_eq!(h, &msg[..head_len], "{msg:?} at {i}");
                assert_eq!(b, &msg[head_len..], "{msg:?} at {i}");
                for j in i..=msg.len() {
                    assert_eq!(
                        sniff_split(msg, &[i, j], HEADER_CAP),
                        (h.clone(), b.clone())
                    );
                }
            }
        }
    }

    #[test]
    fn sniffer_caps_the_header() {
        let msg = b"A: 0123456789\nB: 0123456789\n\nbody";
        for cap in 1..msg.len() + 3 {
            let want = if cap >= 29 { 29 } else { cap };
            for i in 0..=msg.len() {
                let (h, b) = sniff_split(msg, &[i], cap);
                assert_eq!(h, &msg[..want], "cap {cap} at {i}");
                assert_eq!(b, &msg[want..], "cap {cap} at {i}");
            }
        }
        // The default cap.
        let big = vec![b'x'; HEADER_CAP + 10];
        let mut s = HeaderSniffer::new();
        assert_eq!(s.push(&big[..100]), None);
        assert_eq!(s.push(&big[100..]), Some(HEADER_CAP - 100));
        assert_eq!(s.push(b"more"), Some(0));
        assert_eq!(s.held().len(), HEADER_CAP);
        assert_eq!(s.finish().len(), HEADER_CAP);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn whole_message_pipeline() {
        let msg = b"Return-Path: <x@y>\nFrom: z@w\n\nFrom the start\n>From here\nend";
        let mut s = HeaderSniffer::new();
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        let (chunk1, chunk2) = msg.split_at(25);
        for chunk in [chunk1, chunk2] {
            if s.is_complete() {
                q.quote(chunk, &mut out);
            } else if let Some(n) = s.push(chunk) {
                let head = s.finish();
                out.extend_from_slice(from_line(&envelope_sender(&head), 0).as_bytes());
                q.quote(&head, &mut out);
                q.quote(&chunk[n..], &mut out);
            }
        }
        q.finish(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From x@y Thu Jan  1 00:00:00 1970\nReturn-Path: <x@y>\nFrom: z@w\n\n\
             >From the start\n>>From here\nend\n"
        );
    }
}
