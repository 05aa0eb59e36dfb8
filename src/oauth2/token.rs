//! What an authorization server answers, read without I/O: token responses
//! (RFC 6749 section 5, the device grant's polling answers of RFC 8628
//! section 3.5) and device authorization responses (RFC 8628 section 3.2).
//! Everything here comes from the network: nothing panics, and a body that
//! is not what the RFCs describe is a clear error.

use serde::Deserialize;

use crate::error::{Error, Result, protocol, temporary};
use crate::sanitize::escape;
use crate::secret::Secret;

/// The most of a response body that is read (token responses are well
/// under 10 KiB; Microsoft's, the largest seen, about 5 KiB).
pub const MAX_BODY: u64 = 64 * 1024;

/// Tokens granted.
pub struct Granted {
    pub access_token: Secret,
    /// A new refresh token, when the server issues (or rotates) one.
    pub refresh_token: Option<Secret>,
    /// Seconds the access token lives, when the server says.
    pub expires_in: Option<u64>,
}

/// Why the token endpoint said no (its `error` code, RFC 6749 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The refresh token (or code) is revoked, expired or unknown.
    InvalidGrant(String),
    /// Device grant: the user has not finished yet.
    Pending,
    /// Device grant: poll more slowly.
    SlowDown,
    /// The user said no.
    Denied,
    /// Device grant: the code expired.
    Expired,
    /// Any other code, with its description.
    Other(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::InvalidGrant(d) if d.is_empty() => f.write_str("invalid_grant"),
            Refused::InvalidGrant(d) => write!(f, "invalid_grant: {d}"),
            Refused::Pending => f.write_str("authorization_pending"),
            Refused::SlowDown => f.write_str("slow_down"),
            Refused::Denied => f.write_str("access_denied"),
            Refused::Expired => f.write_str("expired_token"),
            Refused::Other(d) => f.write_str(d),
        }
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A number that some servers send as a string ("3599").
fn seconds(v: &Option<serde_json::Value>) -> Option<u64> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn server_fault(status: u16) -> Error {
    temporary(format!(
        "the OAuth token endpoint answered HTTP {status}; trying again later"
    ))
}

fn not_json(what: &str, body: &[u8]) -> Error {
    let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
    protocol(format!(
        "the OAuth {what} endpoint sent something that is not the JSON the RFCs describe \
         (it starts: {:?})",
        escape(&start)
    ))
}

/// Read a token endpoint's answer (HTTP `status`, `body`): tokens, or the
/// server's refusal. Errors: 5xx and 429 (temporary), anything that is not
/// a token response (protocol).
pub fn parse_token_reply(
    status: u16,
    body: &[u8],
) -> Result<std::result::Result<Granted, Refused>> {
    if status >= 500 || status == 429 {
        return Err(server_fault(status));
    }
    let raw: RawToken = serde_json::from_slice(body).map_err(|_| not_json("token", body))?;
    if let Some(code) = raw.error {
        let desc = raw
            .error_description
            .map(|d| escape(&d))
            .unwrap_or_default();
        return Ok(Err(match code.as_str() {
            "invalid_grant" => Refused::InvalidGrant(desc),
            "authorization_pending" => Refused::Pending,
            "slow_down" => Refused::SlowDown,
            "access_denied" => Refused::Denied,
            "expired_token" => Refused::Expired,
            other if desc.is_empty() => Refused::Other(escape(other)),
            other => Refused::Other(format!("{}: {desc}", escape(other))),
        }));
    }
    if !(200..300).contains(&status) {
        return Err(protocol(format!(
            "the OAuth token endpoint answered HTTP {status} without an error code"
        )));
    }
    let Some(access) = raw.access_token.filter(|t| !t.is_empty()) else {
        return Err(protocol(
            "the OAuth token endpoint's answer has no access_token",
        ));
    };
    Ok(Ok(Granted {
        access_token: Secret::new(access),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in: seconds(&raw.expires_in),
    }))
}

/// A device authorization (RFC 8628 section 3.2).
#[derive(Debug)]
pub struct DeviceAuth {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    /// Seconds between polls (5 when the server does not say).
    pub interval: u64,
}

#[derive(Deserialize)]
struct RawDevice {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    /// Google's name for `verification_uri`.
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Read a device authorization endpoint's answer.
pub fn parse_device_reply(status: u16, body: &[u8]) -> Result<DeviceAuth> {
    if status >= 500 || status == 429 {
        return Err(server_fault(status));
    }
    let raw: RawDevice = serde_json::from_slice(body).map_err(|_| not_json("device", body))?;
    if let Some(code) = raw.error {
        return Err(crate::error::auth(format!(
            "the OAuth device endpoint refused: {}{}",
            escape(&code),
            raw.error_description
                .map(|d| format!(" ({})", escape(&d)))
                .unwrap_or_default()
        )));
    }
    let missing =
        |what: &str| protocol(format!("the OAuth device endpoint's answer has no {what}"));
    let uri = raw
        .verification_uri
        .or(raw.verification_url)
        .ok_or_else(|| missing("verification_uri"))?;
    Ok(DeviceAuth {
        device_code: raw.device_code.ok_or_else(|| missing("device_code"))?,
        user_code: escape(&raw.user_code.ok_or_else(|| missing("user_code"))?),
        verification_uri: escape(&uri),
        verification_uri_complete: raw.verification_uri_complete.map(|u| escape(&u)),
        expires_in: seconds(&raw.expires_in).ok_or_else(|| missing("expires_in"))?,
        interval: seconds(&raw.interval).unwrap_or(5).clamp(1, 60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn tokens_granted() {
        let g = parse_token_reply(
            200,
            br#"{"access_token":"at1","token_type":"Bearer","expires_in":3599,"refresh_token":"rt2","scope":"x"}"#,
        )
        .unwrap()
        .ok()
        .unwrap();
        assert_eq!(g.access_token.expose(), "at1");
        assert_eq!(g.refresh_token.unwrap().expose(), "rt2");
        assert_eq!(g.expires_in, Some(3599));
        let g = parse_token_reply(200, br#"{"access_token":"a","expires_in":"60"}"#)
            .unwrap()
            .ok()
            .unwrap();
        assert!(g.refresh_token.is_none());
        assert_eq!(g.expires_in, Some(60));
    }

    #[test]
    fn refusals_and_faults() {
        let r = |s, b: &[u8]| parse_token_reply(s, b).unwrap().err().unwrap();
        assert!(matches!(
            r(400, br#"{"error":"invalid_grant","error_description":"revoked"}"#),
            Refused::InvalidGrant(d) if d == "revoked"
        ));
        assert_eq!(
            r(400, br#"{"error":"authorization_pending"}"#),
            Refused::Pending
        );
        assert_eq!(r(400, br#"{"error":"slow_down"}"#), Refused::SlowDown);
        assert_eq!(r(400, br#"{"error":"expired_token"}"#), Refused::Expired);
        assert_eq!(
            r(401, br#"{"error":"invalid_client"}"#),
            Refused::Other("invalid_client".into())
        );
        let e = |s, b: &[u8]| parse_token_reply(s, b).err().unwrap().kind;
        assert_eq!(e(503, b"<html>"), Kind::Temporary);
        assert_eq!(e(429, b""), Kind::Temporary);
        assert_eq!(e(200, b"<html>not json"), Kind::Protocol);
        assert_eq!(e(200, br#"{"token_type":"Bearer"}"#), Kind::Protocol);
        assert_eq!(e(200, br#"{"access_token":""}"#), Kind::Protocol);
        assert_eq!(e(404, b"{}"), Kind::Protocol);
        assert_eq!(e(200, b"[]"), Kind::Protocol);
    }

    #[test]
    fn device_authorizations() {
        let d = parse_device_reply(
            200,
            br#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_url":"https://www.google.com/device","expires_in":1800,"interval":5}"#,
        )
        .unwrap();
        assert_eq!(
            (d.user_code.as_str(), d.interval, d.expires_in),
            ("WDJB-MJHT", 5, 1800)
        );
        assert_eq!(d.verification_uri, "https://www.google.com/device");
        let d = parse_device_reply(
            200,
            br#"{"device_code":"dc","user_code":"u","verification_uri":"v","expires_in":9}"#,
        )
        .unwrap();
        assert_eq!(d.interval, 5);
        assert!(parse_device_reply(200, br#"{"device_code":"dc"}"#).is_err());
        assert_eq!(
            parse_device_reply(400, br#"{"error":"invalid_scope"}"#)
                .unwrap_err()
                .kind,
            Kind::Auth
        );
        // A hostile code cannot drive the terminal.
        let d = parse_device_reply(
            200,
            b"{\"device_code\":\"dc\",\"user_code\":\"\\u001b[2J\",\"verification_uri\":\"v\",\"expires_in\":9}",
        )
        .unwrap();
        assert!(!d.user_code.contains('\x1b'));
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_read_without_panic(status in 0u16..700, body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_token_reply(status, &body);
            let _ = parse_device_reply(status, &body);
        }
    }
}
