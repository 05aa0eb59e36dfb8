//! Framing that the text protocols share, with no I/O: where a line ends
//! (with a cap, so a hostile server cannot make us buffer without end), and
//! base64 for SASL responses.

use memchr::memchr;

use crate::error::{Result, protocol};

/// Find the end of the first line in `buf`: the index one past its `\n`.
/// `Ok(None)` means "need more bytes"; an error means the line is longer than
/// `max` (a hostile or broken server).
pub fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>> {
    match memchr(b'\n', &buf[..buf.len().min(max + 2)]) {
        Some(i) => Ok(Some(i + 1)),
        None if buf.len() > max => Err(protocol(format!(
            "server sent a line longer than {max} bytes"
        ))),
        None => Ok(None),
    }
}

/// Standard base64 with padding (RFC 4648), for SASL initial responses.
pub fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63]);
        out.push(ALPHABET[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_end_caps() {
        assert_eq!(line_end(b"+OK\r\nrest", 100).unwrap(), Some(5));
        assert_eq!(line_end(b"+OK", 100).unwrap(), None);
        assert!(line_end(&[b'x'; 200], 100).is_err());
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut v = Vec::new();
            base64_encode(i.as_bytes(), &mut v);
            assert_eq!(v, o.as_bytes());
        }
    }
}
