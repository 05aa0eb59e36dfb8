//! Server folder names: modified UTF-7 (RFC 3501 §5.1.3) and the mapping of
//! a server folder to the Maildir++ subdirectory that holds its mail.
//!
//! Pure functions on strings: nothing here touches the file system or a
//! socket, and nothing here may ever produce a directory name that leaves the
//! Maildir or lands on `tmp`, `new` or `cur`. Creating the directory is the
//! caller's job.
//!
//! # The mapping, exactly
//!
//! [`maildir_folder`] maps a server name `N` with hierarchy delimiter `d` to
//! a single directory name:
//!
//! 1. `INBOX` (any case, the whole name only) is the Maildir root: `None`.
//! 2. **Decoded path.** If `N` is canonical modified UTF-7 ([`decode_mutf7`]
//!    accepts it) and the decoded name holds no control character, split the
//!    *decoded* name on `d` (no split without a delimiter) and escape every
//!    component: `%` `.` `/` `\` `~` become `%25` `%2E` `%2F` `%5C` `%7E`;
//!    every other character, `&` and non-ASCII included, is kept as is (so
//!    the directory name is UTF-8).
//! 3. **Raw path.** Otherwise (the name is not valid modified UTF-7, or it
//!    decodes to a control character) use the raw name: split it on `d` only
//!    when `d` is printable ASCII other than `&`, and escape every component
//!    as in 2, plus `&`, every control character and every non-ASCII
//!    character, each UTF-8 byte as `%XX`. The raw path's output is printable
//!    ASCII.
//! 4. An empty component (`a//b`, a leading or trailing delimiter, the empty
//!    name) is written as a lone `%`.
//! 5. The result is `.` followed by the components joined with `.`.
//! 6. If that is longer than [`MAX_NAME`] (255) bytes, it is cut back, at a
//!    character and escape boundary, to at most 238 bytes and `~` plus the
//!    first 16 hex digits of the SHA-256 of the full (uncut) result is
//!    appended, so the whole name fits in one file-system name.
//!
//! | server name (delimiter `/`) | directory           |
//! |-----------------------------|---------------------|
//! | `INBOX`, `inbox`            | (the Maildir root)  |
//! | `Lists/rust`                | `.Lists.rust`       |
//! | `Lists/rust` (delimiter `.`)| `.Lists%2Frust`     |
//! | `v1.2/notes`                | `.v1%2E2.notes`     |
//! | `Entw&APw-rfe`              | `.Entwürfe`         |
//! | `R&AOk-sum&AOk-s/2024`      | `.Résumés.2024`     |
//! | `Tom &- Jerry`              | `.Tom & Jerry`      |
//! | `100%`                      | `.100%25`           |
//! | `..`                        | `.%2E%2E`           |
//! | `a//b`                      | `.a.%.b`            |
//! | `~/x`                       | `.%7E.x`            |
//! | `Foo&Bar` (broken UTF-7)    | `.Foo%26Bar`        |
//! | `Café` (raw UTF-8)          | `.Caf%C3%A9`        |
//!
//! # Why it is safe and injective
//!
//! Safety: the result starts with `.` (so it is never `tmp`, `new`, `cur`,
//! `.` or `..`), and holds no `/` or NUL (both always escaped). Every
//! component is non-empty and holds no literal `.`, so no Maildir++ component
//! is `..` and no two dots are adjacent.
//!
//! Injectivity (for one delimiter; `INBOX` in its different cases is the one
//! deliberate exception): each path is injective on its own, because modified
//! UTF-7 decoding is injective on canonical input (decode then encode gives
//! the input back), splitting is undone by joining, and the escape is undone
//! by reading `%XX` as a byte (a lone `%` is the empty component). The two
//! paths never meet: a raw-path name always contains `&` or a character
//! outside printable ASCII (else it would decode canonically), and that
//! character is never the delimiter it was split on, so its output holds an
//! escape `%26`, `%00`-`%1F`, `%7F` or `%80`-`%FF`, which the decoded path
//! never writes. A cut name is the only kind with a literal `~`, and it
//! carries a hash of everything, so cutting keeps injectivity except for a
//! collision in 64 bits of SHA-256. The tests check all of this with an
//! inverse function and with property tests.
//!
//! Note for users of other clients: Dovecot stores Maildir++ folder names in
//! modified UTF-7 unless its `mail_location` has `:UTF-8`; this mapping
//! writes UTF-8.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The longest directory name [`maildir_folder`] returns, in bytes: the
/// common `NAME_MAX`.
pub const MAX_NAME: usize = 255;

/// The modified base64 alphabet: `,` instead of `/`.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Hex digits of the hash appended to a cut name.
const HASH_HEX: usize = 16;

/// Printable US-ASCII: the characters that represent themselves in modified
/// UTF-7 (with `&`, which is written `&-`).
fn is_printable(c: char) -> bool {
    ('\x20'..='\x7e').contains(&c)
}

fn b64_value(b: u8) -> Option<u32> {
    B64.iter().position(|&x| x == b).map(|v| v as u32)
}

/// Decode a modified UTF-7 mailbox name (RFC 3501 §5.1.3).
///
/// Strict: only the canonical encoding is accepted, so that decoding is
/// injective (`encode_mutf7(&decode_mutf7(x)?) == x`). Errors: a character
/// outside printable ASCII, an `&` with no closing `-`, a character outside
/// the modified base64 alphabet, an odd number of bytes, non-zero padding
/// bits or a superfluous base64 character, an unpaired surrogate, a printable
/// ASCII character in base64 (it must represent itself), and two base64 runs
/// back to back (they must be one). `&-` is `&`.
pub fn decode_mutf7(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    // Whether the previous token was a non-empty base64 run.
    let mut after_run = false;
    while let Some(c) = rest.chars().next() {
        if c == '&' {
            let body_on = &rest[1..];
            let end = body_on
                .find('-')
                .ok_or_else(|| format!("{name:?}: '&' without a closing '-'"))?;
            let body = &body_on[..end];
            rest = &body_on[end + 1..];
            if body.is_empty() {
                out.push('&');
                after_run = false;
                continue;
            }
            if after_run {
                return Err(format!("{name:?}: two base64 runs back to back"));
            }
            decode_run(body, &mut out).map_err(|e| format!("{name:?}: {e}"))?;
            after_run = true;
        } else if is_printable(c) {
            out.push(c);
            rest = &rest[1..];
            after_run = false;
        } else {
            return Err(format!("{name:?}: character {c:?} outside printable ASCII"));
        }
    }
    Ok(out)
}

/// Decode one base64 run (between `&` and `-`, non-empty) into `out`.
fn decode_run(body: &str, out: &mut String) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut nbits = 0;
    for b in body.bytes() {
        let v = b64_value(b).ok_or_else(|| format!("{:?} is not modified base64", b as char))?;
        acc = (acc << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 {
        return Err("a superfluous base64 character".into());
    }
    if acc != 0 {
        return Err("non-zero padding bits".into());
    }
    if bytes.len() % 2 != 0 {
        return Err("an odd number of bytes in UTF-16".into());
    }
    let units = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    for c in char::decode_utf16(units) {
        let c = c.map_err(|e| format!("unpaired surrogate {:#06x}", e.unpaired_surrogate()))?;
        if is_printable(c) {
            return Err(format!("{c:?} in base64 must represent itself"));
        }
        out.push(c);
    }
    Ok(())
}

/// Encode a name in modified UTF-7 (RFC 3501 §5.1.3), canonically: printable
/// ASCII represents itself, `&` is `&-`, every run of other characters is one
/// base64 run of its UTF-16BE.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_printable(c) {
            flush_run(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut nbits = 0;
    for byte in run.iter().flat_map(|u| u.to_be_bytes()) {
        acc = (acc << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(B64[((acc >> nbits) & 63) as usize] as char);
        }
        acc &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(B64[((acc << (6 - nbits)) & 63) as usize] as char);
    }
    out.push('-');
    run.clear();
}

/// The Maildir++ subdirectory (a single directory name such as
/// `.Lists.rust`) for the server folder `server_name` whose hierarchy
/// delimiter is `delimiter`, or `None` for `INBOX`, which is the Maildir
/// itself. See the module documentation for the exact mapping.
pub fn maildir_folder(server_name: &str, delimiter: Option<char>) -> Option<String> {
    if server_name.eq_ignore_ascii_case("INBOX") {
        return None;
    }
    let mut out = String::with_capacity(server_name.len() + 8);
    match decode_mutf7(server_name) {
        Ok(decoded) if !decoded.chars().any(char::is_control) => {
            for comp in split(&decoded, delimiter) {
                out.push('.');
                escape_component(comp, false, &mut out);
            }
        }
        _ => {
            let delimiter = delimiter.filter(|&d| is_printable(d) && d != '&');
            for comp in split(server_name, delimiter) {
                out.push('.');
                escape_component(comp, true, &mut out);
            }
        }
    }
    Some(cap(out))
}

fn split(name: &str, delimiter: Option<char>) -> Vec<&str> {
    match delimiter {
        Some(d) => name.split(d).collect(),
        None => vec![name],
    }
}

/// Append one escaped hierarchy component; `raw` selects the raw path's
/// stricter escape (module documentation, step 3).
fn escape_component(comp: &str, raw: bool, out: &mut String) {
    if comp.is_empty() {
        out.push('%');
        return;
    }
    for c in comp.chars() {
        let escape = match c {
            '%' | '.' | '/' | '\\' | '~' => true,
            '&' => raw,
            c => c.is_control() || (raw && !c.is_ascii()),
        };
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// Keep `name` within [`MAX_NAME`] bytes (module documentation, step 6).
fn cap(mut name: String) -> String {
    if name.len() <= MAX_NAME {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let keep = MAX_NAME - 1 - HASH_HEX;
    // Walk whole units (a character or a `%XX` escape) up to `keep` bytes.
    let bytes = name.as_bytes();
    let mut end = 0;
    while end < name.len() {
        let unit = if bytes[end] == b'%'
            && bytes.len() > end + 2
            && bytes[end + 1].is_ascii_hexdigit()
            && bytes[end + 2].is_ascii_hexdigit()
        {
            3
        } else {
            name[end..].chars().next().map_or(1, char::len_utf8)
        };
        if end + unit > keep {
            break;
        }
        end += unit;
    }
    name.truncate(end);
    name.push('~');
    for b in &digest[..HASH_HEX / 2] {
        let _ = write!(name, "{b:02x}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The inverse of [`maildir_folder`] for names that were not cut: the
    /// existence of a left inverse is the proof of injectivity.
    fn server_name_of(dir: &str, delimiter: Option<char>) -> String {
        assert!(!dir.contains('~'), "{dir:?} was cut");
        let body = dir.strip_prefix('.').expect("starts with a dot");
        let comps: Vec<Vec<u8>> = body
            .split('.')
            .map(|c| {
                if c == "%" {
                    return Vec::new();
                }
                let b = c.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'%' {
                        let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 3;
                    } else {
                        out.push(b[i]);
                        i += 1;
                    }
                }
                out
            })
            .collect();
        let comps: Vec<String> = comps
            .into_iter()
            .map(|c| String::from_utf8(c).unwrap())
            .collect();
        let raw_path = ["%26", "%7F"].iter().any(|e| body.contains(e))
            || (0..0x20)
                .chain(0x80..0x100)
                .any(|b| body.contains(&format!("%{b:02X}")));
        let join = |d: Option<char>| match d {
            Some(d) => comps.join(&d.to_string()),
            None => {
                assert_eq!(comps.len(), 1);
                comps[0].clone()
            }
        };
        if raw_path {
            join(delimiter.filter(|&d| is_printable(d) && d != '&'))
        } else {
            encode_mutf7(&join(delimiter))
        }
    }

    /// The safety rules every result must satisfy.
    fn assert_safe(dir: &str) {
        assert!(dir.len() <= MAX_NAME, "{dir:?} too long");
        assert!(dir.starts_with('.'), "{dir:?}");
        assert!(dir != "." && dir != "..", "{dir:?}");
        assert!(!dir.contains('/') && !dir.contains('\0'), "{dir:?}");
        assert!(!dir.contains(".."), "{dir:?}");
        assert!(!dir.ends_with('.'), "{dir:?}");
        for comp in dir[1..].split('.') {
            assert!(!comp.is_empty() && comp != "..", "{dir:?}");
        }
        assert!(!["tmp", "new", "cur"].contains(&dir));
    }

    fn folder(name: &str, d: char) -> String {
        maildir_folder(name, Some(d)).unwrap()
    }

    #[test]
    fn rfc3501_example() {
        let raw = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let decoded = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(decode_mutf7(raw).unwrap(), decoded);
        assert_eq!(encode_mutf7(decoded), raw);
    }

    #[test]
    fn decodes_common_names() {
        assert_eq!(decode_mutf7("INBOX").unwrap(), "INBOX");
        assert_eq!(decode_mutf7("").unwrap(), "");
        assert_eq!(decode_mutf7("&-").unwrap(), "&");
        assert_eq!(decode_mutf7("Tom &- Jerry").unwrap(), "Tom & Jerry");
        assert_eq!(decode_mutf7("Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(decode_mutf7("&AOkA6QDp-").unwrap(), "ééé");
        assert_eq!(decode_mutf7("&AOk-&-").unwrap(), "é&");
        assert_eq!(decode_mutf7("&-&AOk-").unwrap(), "&é");
        assert_eq!(decode_mutf7("a-b").unwrap(), "a-b");
        // A supplementary character is a surrogate pair.
        assert_eq!(decode_mutf7("&2D3eAA-").unwrap(), "😀");
        assert_eq!(encode_mutf7("😀"), "&2D3eAA-");
        assert_eq!(decode_mutf7("&AAE-").unwrap(), "\u{1}");
        assert_eq!(decode_mutf7("&AAA-").unwrap(), "\0");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "&AGE",         // no closing '-'
            "a&",           // no closing '-'
            "&AOk",         // no closing '-'
            "&AO!-",        // not base64
            "&AO/p-",       // standard base64 '/', not ','
            "&AOk=-",       // padding is not used
            "&AO-",         // one byte: odd
            "&AOkA-",       // three bytes: odd
            "&AOl-",        // non-zero padding bits
            "&AOkAA-",      // superfluous character
            "&2D0-",        // lone high surrogate
            "&3gA-",        // lone low surrogate
            "&3gDYPQ-",     // low then high
            "&AGE-",        // 'a' must represent itself
            "&ACY-",        // '&' must be "&-"
            "&AOk-&AOk-",   // must be one run
            "caf\u{e9}",    // raw non-ASCII
            "a\tb",         // raw control character
            "a\u{7f}",      // DEL is not printable
            "&AOk-&AOk-&-", // still two runs back to back
        ] {
            assert!(decode_mutf7(bad).is_err(), "{bad:?} accepted");
        }
        // Errors name the input.
        let e = decode_mutf7("x&AGE").unwrap_err();
        assert!(e.contains("x&AGE"), "{e}");
    }

    #[test]
    fn encodes_canonically() {
        assert_eq!(encode_mutf7(""), "");
        assert_eq!(encode_mutf7("&"), "&-");
        assert_eq!(encode_mutf7("ééé"), "&AOkA6QDp-");
        assert_eq!(encode_mutf7("é&é"), "&AOk-&-&AOk-");
        assert_eq!(encode_mutf7("a\u{1}b"), "a&AAE-b");
        assert_eq!(encode_mutf7("Résumés"), "R&AOk-sum&AOk-s");
    }

    #[test]
    fn module_doc_examples() {
        assert_eq!(maildir_folder("INBOX", Some('/')), None);
        assert_eq!(maildir_folder("inbox", Some('.')), None);
        assert_eq!(maildir_folder("InBoX", None), None);
        assert_eq!(folder("Lists/rust", '/'), ".Lists.rust");
        assert_eq!(folder("Lists.rust", '.'), ".Lists.rust");
        assert_eq!(folder("Lists/rust", '.'), ".Lists%2Frust");
        assert_eq!(folder("v1.2/notes", '/'), ".v1%2E2.notes");
        assert_eq!(folder("Entw&APw-rfe", '/'), ".Entwürfe");
        assert_eq!(folder("R&AOk-sum&AOk-s/2024", '/'), ".Résumés.2024");
        assert_eq!(folder("Tom &- Jerry", '/'), ".Tom & Jerry");
        assert_eq!(folder("100%", '/'), ".100%25");
        assert_eq!(folder("..", '/'), ".%2E%2E");
        assert_eq!(folder("a//b", '/'), ".a.%.b");
        assert_eq!(folder("~/x", '/'), ".%7E.x");
        assert_eq!(folder("Foo&Bar", '/'), ".Foo%26Bar");
        assert_eq!(folder("Café", '/'), ".Caf%C3%A9");
    }

    #[test]
    fn dangerous_names_stay_inside() {
        for (name, d) in [
            ("..", Some('/')),
            ("../..", Some('/')),
            ("/", Some('/')),
            ("/etc/passwd", Some('/')),
            ("/etc/passwd", None),
            ("a/../../b", Some('.')),
            ("tmp", Some('/')),
            ("new", None),
            ("cur", Some('.')),
            (".", Some('.')),
            ("...", Some('.')),
            ("", None),
            ("", Some('/')),
            ("a\0b", Some('/')),
            ("&AAA-", Some('/')),
            ("&AC8-", Some('/')),
            ("&AC4ALg-", Some('/')),
            ("INBOX/..", Some('/')),
            ("\\..\\", Some('\\')),
        ] {
            let dir = maildir_folder(name, d).unwrap();
            assert_safe(&dir);
        }
        assert_eq!(folder("", '/'), ".%");
        assert_eq!(folder("/", '/'), ".%.%");
        assert_eq!(folder(".", '.'), ".%.%");
        assert_eq!(maildir_folder(".", None).unwrap(), ".%2E");
        assert_eq!(folder("a\0b", '/'), ".a%00b");
        // Decodes to a NUL: the raw name is used instead.
        assert_eq!(folder("&AAA-", '/'), ".%26AAA-");
        assert_eq!(folder("INBOX/sub", '/'), ".INBOX.sub");
    }

    #[test]
    fn near_collisions_are_kept_apart() {
        let pairs: &[(&str, &str, char)] = &[
            // '&' as the delimiter: broken UTF-7 vs "&-".
            ("a&b", "a&-b", '&'),
            // A non-ASCII delimiter, raw vs encoded.
            ("a\u{e9}b", "a&AOk-b", '\u{e9}'),
            // A raw control character vs an encoded one.
            ("a\u{1}", "a&AAE-", '/'),
            ("Café", "Caf&AOk-", '/'),
            ("Foo&Bar", "Foo&-Bar", '/'),
            ("a.b", "a/b", '/'),
            ("a%2Eb", "a.b", '/'),
            ("a%b", "a%25b", '/'),
            ("", "%", '/'),
            ("a/", "a/%", '/'),
            ("~", "%7E", '/'),
            ("&AOk-", "&AOk", '/'),
            ("&AOk-", "\u{e9}", '/'),
        ];
        for &(a, b, d) in pairs {
            let (x, y) = (folder(a, d), folder(b, d));
            assert_ne!(x, y, "{a:?} and {b:?} with {d:?}");
            assert_eq!(server_name_of(&x, Some(d)), a);
            assert_eq!(server_name_of(&y, Some(d)), b);
        }
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "x".repeat(300);
        let dir = maildir_folder(&long, Some('/')).unwrap();
        assert_safe(&dir);
        assert_eq!(dir.len(), MAX_NAME);
        assert!(dir.starts_with(".xxx"));
        let (head, hash) = dir.rsplit_once('~').unwrap();
        assert_eq!(head.len(), 238);
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        // The hash is of the full result, so names sharing the cut differ.
        let other = format!("{}y", "x".repeat(299));
        assert_ne!(maildir_folder(&other, Some('/')).unwrap(), dir);
        // A short name made to look like that cut name does not collide:
        // a literal '~' is always escaped.
        let forged = dir[1..].replace('.', "/");
        assert!(forged.len() < MAX_NAME);
        assert_ne!(folder(&forged, '/'), dir);
        assert_ne!(maildir_folder(&forged, None).unwrap(), dir);
        // Exactly 255 bytes is not cut; 256 is.
        let fits = "x".repeat(254);
        assert_eq!(folder(&fits, '/').len(), 255);
        assert!(!folder(&fits, '/').contains('~'));
        assert!(folder(&format!("{fits}x"), '/').contains('~'));
        // The cut never splits an escape or a character.
        for name in ["%".repeat(100), "é".repeat(200), "&AOk-".repeat(100)] {
            for pad in 0..4 {
                let n = format!("{}{name}", "x".repeat(pad));
                let dir = folder(&n, '/');
                assert_safe(&dir);
                let head = dir.rsplit_once('~').unwrap().0;
                assert!(!head.ends_with('%') && !head[..head.len() - 1].ends_with('%'));
            }
        }
    }

    /// Names that exercise both paths: raw strings from a hostile alphabet,
    /// and encodings of arbitrary Unicode (valid modified UTF-7).
    fn server_name() -> impl Strategy<Value = String> {
        let hostile = proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('B'),
                Just('.'),
                Just('/'),
                Just('%'),
                Just('&'),
                Just('-'),
                Just('~'),
                Just('\\'),
                Just('\0'),
                Just('\u{1}'),
                Just('\u{7f}'),
                Just('\u{e9}'),
                Just('😀'),
                Just('A'),
                Just('O'),
                Just('k'),
                Just(','),
                Just('+'),
                Just('2'),
                any::<char>(),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect::<String>());
        let dotted = proptest::collection::vec(
            prop_oneof![
                Just("."),
                Just(".."),
                Just("/"),
                Just("&-"),
                Just("%2E"),
                Just("x")
            ],
            0..8,
        )
        .prop_map(|v| v.concat());
        // Valid encodings with one character inserted, removed or replaced:
        // nearly canonical input, the likeliest to slip through a check.
        let edited = (
            hostile.clone().prop_map(|s| encode_mutf7(&s)),
            any::<proptest::sample::Index>(),
            0..3u8,
            prop_oneof![
                Just('&'),
                Just('-'),
                Just('A'),
                Just('/'),
                Just('a'),
                Just('\u{e9}')
            ],
        )
            .prop_map(|(s, at, op, c)| {
                let mut v: Vec<char> = s.chars().collect();
                let i = at.index(v.len() + 1);
                match op {
                    0 => v.insert(i, c),
                    1 if i < v.len() => {
                        v.remove(i);
                    }
                    _ if i < v.len() => v[i] = c,
                    _ => v.push(c),
                }
                v.into_iter().collect::<String>()
            });
        // Two encodings back to back: adjacent base64 runs.
        let joined = (hostile.clone(), hostile.clone())
            .prop_map(|(a, b)| format!("{}{}", encode_mutf7(&a), encode_mutf7(&b)));
        prop_oneof![
            hostile.clone(),
            hostile.prop_map(|s| encode_mutf7(&s)),
            edited,
            joined,
            dotted,
            "\\PC{0,10}".prop_map(|s| encode_mutf7(&s)),
        ]
    }

    fn delimiter() -> impl Strategy<Value = Option<char>> {
        prop_oneof![
            Just(Some('/')),
            Just(Some('.')),
            Just(None),
            Just(Some('&')),
            Just(Some('%')),
            Just(Some('\u{e9}')),
            Just(Some('\u{1}')),
            Just(Some('A')),
            any::<char>().prop_map(Some),
        ]
    }

    fn is_inbox(name: &str) -> bool {
        name.eq_ignore_ascii_case("INBOX")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn mutf7_round_trips(s in any::<String>()) {
            let enc = encode_mutf7(&s);
            prop_assert!(enc.chars().all(is_printable));
            prop_assert_eq!(decode_mutf7(&enc).unwrap(), s);
        }

        #[test]
        fn mutf7_decode_is_canonical(s in server_name()) {
            // Whatever decodes, encodes back to itself: decoding is injective.
            if let Ok(d) = decode_mutf7(&s) {
                prop_assert_eq!(encode_mutf7(&d), s);
            }
        }

        #[test]
        fn folders_are_safe_and_invertible(name in server_name(), d in delimiter()) {
            match maildir_folder(&name, d) {
                None => prop_assert!(is_inbox(&name)),
                Some(dir) => {
                    assert_safe(&dir);
                    if !dir.contains('~') {
                        prop_assert_eq!(server_name_of(&dir, d), name);
                    }
                }
            }
        }

        #[test]
        fn distinct_names_give_distinct_folders(
            names in proptest::collection::vec(server_name(), 1..24),
            d in delimiter(),
        ) {
            let mut seen: HashMap<String, &str> = HashMap::new();
            for name in &names {
                let Some(dir) = maildir_folder(name, d) else { continue };
                if let Some(prev) = seen.insert(dir.clone(), name) {
                    prop_assert_eq!(prev, name.as_str(), "both map to {:?}", dir);
                }
            }
        }

        #[test]
        fn long_names_are_safe_and_distinct(
            a in "[a-z./&é%~]{200,400}",
            b in "[a-z./&é%~]{200,400}",
            d in delimiter(),
        ) {
            let (x, y) = (maildir_folder(&a, d).unwrap(), maildir_folder(&b, d).unwrap());
            assert_safe(&x);
            assert_safe(&y);
            prop_assert_eq!(a == b, x == y);
        }
    }
}
