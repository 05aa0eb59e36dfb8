//! Framing that the text protocols share, with no I/O: where a line ends
//! (with a cap, so a hostile server cannot make us buffer without end), and
//! base64 for SASL (and base64url for OAuth's PKCE).

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

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard base64 with padding (RFC 4648), for SASL initial responses.
pub fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    encode_with(input, out, ALPHABET, true);
}

/// base64url without padding (RFC 4648 section 5), as OAuth's PKCE
/// (RFC 7636) and `state` values use it.
pub fn base64_url(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    encode_with(input, &mut out, URL_ALPHABET, false);
    String::from_utf8(out).expect("base64 is ASCII")
}

/// Standard base64 decoded (a SASL challenge); padding optional, `None`
/// for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

fn encode_with(input: &[u8], out: &mut Vec<u8>, alphabet: &[u8; 64], pad: bool) {
    const PAD: u8 = b'=';
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(alphabet[(n >> 18) as usize & 63]);
        out.push(alphabet[(n >> 12) as usize & 63]);
        if chunk.len() > 1 {
            out.push(alphabet[(n >> 6) as usize & 63]);
        } else if pad {
            out.push(PAD);
        }
        if chunk.len() > 2 {
            out.push(alphabet[n as usize & 63]);
        } else if pad {
            out.push(PAD);
        }
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
            assert_eq!(base64_decode(o).unwrap(), i.as_bytes());
            assert_eq!(base64_url(i.as_bytes()), o.trim_end_matches('='));
        }
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Z"), None);
        // RFC 7636 appendix B: the verifier's S256 challenge.
        use sha2::Digest;
        let d = sha2::Sha256::digest(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            base64_url(&d),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    proptest::proptest! {
        #[test]
        fn base64_round_trips(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut v = Vec::new();
            base64_encode(&raw, &mut v);
            proptest::prop_assert_eq!(base64_decode(std::str::from_utf8(&v).unwrap()).unwrap(), raw);
        }
    }
}
