//! Escaping of untrusted text (server greetings, -ERR lines, unique ids)
//! before it reaches a terminal or a log: control characters, including ESC,
//! are shown as escapes, so a hostile server cannot move the cursor, change
//! the window title or hide text.

use std::fmt::Write;

/// Escape control characters (C0, DEL, C1) and the backslash in `s`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Like [`escape`], for bytes that may not be UTF-8 (invalid bytes become U+FFFD).
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls() {
        assert_eq!(escape("ok"), "ok");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\r\ny\\"), "x\\r\\ny\\\\");
        assert_eq!(escape("\u{9b}"), "\\u{9b}");
        assert_eq!(escape("grüße"), "grüße");
        assert_eq!(escape_bytes(b"\xff\x07"), "\u{fffd}\\u{7}");
    }
}
