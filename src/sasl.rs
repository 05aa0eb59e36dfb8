//! The client side of the SASL mechanisms (RFC 4422) that both protocols
//! speak, free of sockets: what to send first, what to answer a challenge,
//! and what a server's error challenge says.
//!
//! - PLAIN (RFC 4616): `\0user\0password`, in UTF-8.
//! - OAUTHBEARER (RFC 7628): a GS2 header naming the user, then the host,
//!   the port and the bearer token, separated by 0x01.
//! - XOAUTH2, the older form that Google and Microsoft document:
//!   `user=U\x01auth=Bearer T\x01\x01`.
//!
//! A server that rejects a token does not answer NO at once: it sends a
//! challenge holding a JSON status (RFC 7628 section 3.2.2), and waits for
//! the client to answer it (OAUTHBEARER: one 0x01 byte; XOAUTH2: an empty
//! response) before it finishes with NO or -ERR.

use crate::secret::Secret;
use crate::types::AuthMethod;

/// A SASL mechanism that fetch speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Xoauth2,
    Oauthbearer,
}

impl Mechanism {
    /// The mechanism's registered name, as in `AUTH=...` / `SASL ...`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }

    /// The mechanism that `method` names, if it is a SASL one.
    pub fn of(method: AuthMethod) -> Option<Mechanism> {
        match method {
            AuthMethod::Plain => Some(Mechanism::Plain),
            AuthMethod::Xoauth2 => Some(Mechanism::Xoauth2),
            AuthMethod::Oauthbearer => Some(Mechanism::Oauthbearer),
            AuthMethod::Auto | AuthMethod::User | AuthMethod::Apop => None,
        }
    }

    /// Whether the secret is an OAuth 2.0 bearer token (not a password).
    pub fn is_oauth(self) -> bool {
        self != Mechanism::Plain
    }
}

/// Whom to log in as, and where: OAUTHBEARER names the server it talks to
/// so that a token cannot be replayed elsewhere.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub secret: &'a Secret,
    pub host: &'a str,
    pub port: u16,
}

/// Why credentials cannot be put in a mechanism's message.
pub fn check(mech: Mechanism, c: &Credentials) -> Result<(), &'static str> {
    let secret = c.secret.expose();
    if c.user.contains('\0') || secret.contains('\0') {
        return Err("the user name or secret contains a NUL byte, which SASL cannot carry");
    }
    if mech.is_oauth() && (c.user.contains('\x01') || secret.contains('\x01')) {
        return Err("the user name or token contains a 0x01 byte, which OAuth SASL cannot carry");
    }
    // RFC 6750's b64token is narrower; printable ASCII without spaces is
    // what any provider's token is, and what the message format survives.
    if mech.is_oauth() && !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token has spaces or characters that are not printable ASCII, which a \
             bearer token cannot have; is the password command printing something else?",
        );
    }
    Ok(())
}

/// The client's first message, raw (before base64), wiped when dropped.
/// Call [`check`] first: this does not refuse anything.
pub fn initial_response(mech: Mechanism, c: &Credentials) -> Secret {
    let secret = c.secret.expose();
    Secret::new(match mech {
        Mechanism::Plain => format!("\0{}\0{}", c.user, secret),
        Mechanism::Xoauth2 => format!("user={}\x01auth=Bearer {}\x01\x01", c.user, secret),
        Mechanism::Oauthbearer => format!(
            "n,a={},\x01host={}\x01port={}\x01auth=Bearer {}\x01\x01",
            gs2_name(c.user),
            c.host,
            c.port,
            secret
        ),
    })
}

/// RFC 5801 section 4: in a GS2 authzid, ',' and '=' are escaped.
fn gs2_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The client's answer to a challenge that comes after its initial
/// response: for the OAuth mechanisms, that is the server's error status,
/// and the answer lets the server finish with its failure reply.
pub fn error_answer(mech: Mechanism) -> &'static [u8] {
    match mech {
        Mechanism::Oauthbearer => b"\x01",
        Mechanism::Xoauth2 | Mechanism::Plain => b"",
    }
}

/// A token (or password) the server turned down, with what its error
/// challenge (decoded) says.
pub fn rejected(mech: Mechanism, challenge: &[u8]) -> crate::error::Error {
    crate::error::auth(format!(
        "authentication failed: {} rejected ({})",
        if mech.is_oauth() {
            "the access token was"
        } else {
            "the credentials were"
        },
        describe_challenge(challenge)
    ))
}

/// The longest error challenge read into a description.
const MAX_CHALLENGE: usize = 4096;

/// What a server's error challenge (already base64-decoded) says, for the
/// error message: the JSON `status` and `scope` when it is the JSON of RFC
/// 7628 section 3.2.2, else its printable text. Never fails.
pub fn describe_challenge(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_CHALLENGE)];
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw)
        && let Some(obj) = v.as_object()
    {
        let field = |k: &str| match obj.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let mut parts = Vec::new();
        if let Some(s) = field("status") {
            parts.push(format!("status {s}"));
        }
        if let Some(s) = field("scope") {
            parts.push(format!("scope {s}"));
        }
        if !parts.is_empty() {
            return crate::sanitize::escape(&parts.join(", "));
        }
    }
    crate::sanitize::escape(&String::from_utf8_lossy(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds<'a>(user: &'a str, secret: &'a Secret) -> Credentials<'a> {
        Credentials {
            user,
            secret,
            host: "imap.example.org",
            port: 993,
        }
    }

    #[test]
    fn messages_as_the_documents_give_them() {
        let t = Secret::new("ya29.vF9dft4qmT".into());
        let c = creds("someuser@example.com", &t);
        assert_eq!(
            initial_response(Mechanism::Xoauth2, &c).expose(),
            "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmT\x01\x01"
        );
        // RFC 7628 section 4.1's example, with our host and port.
        assert_eq!(
            initial_response(Mechanism::Oauthbearer, &c).expose(),
            "n,a=someuser@example.com,\x01host=imap.example.org\x01port=993\x01\
             auth=Bearer ya29.vF9dft4qmT\x01\x01"
        );
        let pw = Secret::new("pässwörd".into());
        assert_eq!(
            initial_response(Mechanism::Plain, &creds("jürgen", &pw)).expose(),
            "\0jürgen\0pässwörd"
        );
        let odd = creds("a,b=c", &t);
        assert!(
            initial_response(Mechanism::Oauthbearer, &odd)
                .expose()
                .starts_with("n,a=a=2Cb=3Dc,\x01")
        );
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let t = Secret::new("tok en\n".into());
        assert!(check(Mechanism::Xoauth2, &creds("u", &t)).is_err());
        let t = Secret::new("ok.token-_~+/=".into());
        assert!(check(Mechanism::Oauthbearer, &creds("u", &t)).is_ok());
        assert!(check(Mechanism::Oauthbearer, &creds("u\x01", &t)).is_err());
        let p = Secret::new("pass word".into());
        assert!(check(Mechanism::Plain, &creds("u", &p)).is_ok());
        assert!(check(Mechanism::Plain, &creds("u\0", &p)).is_err());
    }

    #[test]
    fn error_challenges_are_described() {
        let google = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!(
            describe_challenge(google),
            "status 401, scope https://mail.google.com/"
        );
        assert_eq!(describe_challenge(br#"{"status":400}"#), "status 400");
        assert_eq!(describe_challenge(b"not json\x1b[2J"), "not json\\u{1b}[2J");
        assert_eq!(describe_challenge(b"[1,2]"), "[1,2]");
        assert!(describe_challenge(&[b'x'; 100_000]).len() <= MAX_CHALLENGE);
        assert_eq!(error_answer(Mechanism::Oauthbearer), b"\x01");
        assert_eq!(error_answer(Mechanism::Xoauth2), b"");
    }

    proptest::proptest! {
        #[test]
        fn any_challenge_is_described_without_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = describe_challenge(&raw);
        }
    }
}
