//! The mail tests put on servers and what fetch should store of it: the
//! project's fixtures, the shared corpus, generated large messages, and the
//! line-ending conversions between a server's copy and the stored one.

use std::path::{Path, PathBuf};

use super::require::require;

/// The project's own fixture messages (`tests/fixtures/*.eml`), sorted by name.
pub fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}

/// The shared test corpus (`../shared/corpus/messages` next to the crate);
/// None (after [`require`] let the test go on without it) when absent.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/messages");
    let missing = (!d.is_dir()).then(|| format!("no corpus at {}", d.display()));
    require("corpus", missing).then_some(d)
}

/// Every regular file below [`corpus_dir`], sorted by path; empty without
/// a corpus.
pub fn corpus_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Some(root) = corpus_dir() else {
        return out;
    };
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The fixtures, then the corpus (when present): awkward real-world mail.
pub fn fixtures_and_corpus() -> Vec<PathBuf> {
    let mut files = fixture_files();
    files.extend(corpus_files());
    files
}

/// The contents of `files`, in order.
pub fn read_all(files: &[PathBuf]) -> Vec<Vec<u8>> {
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// CRLF -> LF, without adding a final newline: what fetch stores of a
/// message that IMAP carried to its last byte.
pub fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if !(c == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            out.push(c);
        }
    }
    out
}

/// Every bare LF becomes CRLF (existing CRLF and bare CR stay), as a POP3
/// or IMAP server serves a message stored with LF line ends.
pub fn lf_to_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 16);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// What a message stored on a POP3 server should look like in the Maildir:
/// CRLF line endings become LF. POP3 cannot carry a missing final line
/// break (the terminator needs one), so a message without one gains "\n".
pub fn expected_local(server: &[u8]) -> Vec<u8> {
    let mut out = lf(server);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// [`expected_local`] of every `(UIDL, message)` a POP3 server holds,
/// sorted: what a Maildir holds once all of them are fetched.
pub fn expected_messages(msgs: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
    sorted(msgs.iter().map(|(_, b)| expected_local(b)).collect())
}

/// Sorted copy, for multiset comparisons.
pub fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A deterministic message with a base64 attachment of `attachment_bytes`
/// pseudo-random bytes, lines ending in `eol`.
pub fn large_message(attachment_bytes: usize, eol: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(attachment_bytes * 4 / 3 + 4096);
    for line in [
        "From: Large Sender <large@example.org>",
        "To: bob@example.net",
        "Subject: a large attachment",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        "Message-ID: <large@fixtures.fetch>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=\"b0undary\"",
        "",
        "--b0undary",
        "Content-Type: text/plain",
        "",
        "See the attachment.",
        "--b0undary",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename=\"blob.bin\"",
        "Content-Transfer-Encoding: base64",
        "",
    ] {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol.as_bytes());
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut line = Vec::with_capacity(80);
    let mut left = attachment_bytes;
    while left > 0 {
        // 57 raw bytes make one 76-character base64 line.
        let n = left.min(57);
        let mut raw = [0u8; 57];
        for b in raw.iter_mut().take(n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        line.clear();
        fetch::wire::base64_encode(&raw[..n], &mut line);
        out.extend_from_slice(&line);
        out.extend_from_slice(eol.as_bytes());
        left -= n;
    }
    out.extend_from_slice(b"--b0undary--");
    out.extend_from_slice(eol.as_bytes());
    out
}
