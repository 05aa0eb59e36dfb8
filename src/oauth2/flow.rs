//! `fetch --login`: getting the first refresh token, with the user at a
//! browser (possibly on another machine: nothing is read from stdin).
//!
//! - With a device endpoint: the device authorization grant (RFC 8628).
//!   The user opens the verification URL anywhere and types the code; we
//!   poll the token endpoint at the interval the server asks (slower after
//!   `slow_down`) until it grants, refuses, or the code expires.
//! - Otherwise: the authorization code grant with PKCE (RFC 7636, S256)
//!   and a loopback redirect (RFC 8252 section 7.3): a listener on
//!   127.0.0.1 and a free port receives the browser's redirect; its `state`
//!   must be the one we sent, or the request is ignored.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::Digest;

use super::store::{self, Tokens};
use super::token::{self, Granted, Refused};
use super::{Client, http, now};
use crate::error::{Result, auth, config, internal, temporary};
use crate::wire::base64_url;

/// What the user must do, for the caller to show.
pub enum Prompt<'a> {
    /// Open this URL in a browser and grant access.
    Browser { url: &'a str },
    /// Open `uri` (anywhere) and enter `code`.
    Device {
        uri: &'a str,
        code: &'a str,
        /// The URI with the code in it, when the server gives one.
        complete: Option<&'a str>,
    },
}

/// The longest wait for the browser's redirect.
const BROWSER_WAIT: Duration = Duration::from_secs(600);
/// The longest device grant we poll for, whatever the server says.
const DEVICE_WAIT: u64 = 1800;

/// Authorize `client` for the account whose state directory is `dir`, and
/// store the tokens granted.
pub fn login(client: &Client, dir: &Path, timeout: Duration, show: &dyn Fn(&Prompt)) -> Result<()> {
    http::check_url(&client.token_url)?;
    let granted = match &client.device_url {
        Some(url) => device(client, url, timeout, show)?,
        None => browser(client, timeout, show)?,
    };
    let Some(refresh) = granted.refresh_token.as_ref() else {
        return Err(auth(
            "the provider granted access but no refresh token, so fetch could not log in \
             again later (Google issues one only with access_type=offline)",
        ));
    };
    let _lock = store::lock(dir, timeout)?;
    let tokens = Tokens {
        client_id: client.client_id.clone(),
        token_url: client.token_url.clone(),
        refresh_token: Some(refresh.expose().to_string()),
        access_token: Some(granted.access_token.expose().to_string()),
        expires_at: Some(now() + granted.expires_in.unwrap_or(3600)),
    };
    store::save(dir, &tokens)
}

fn with_secret<'a>(
    client: &'a Client,
    mut form: Vec<(&'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    form.push(("client_id", &client.client_id));
    if let Some(s) = &client.client_secret {
        form.push(("client_secret", s));
    }
    form
}

fn stopped() -> Result<()> {
    if crate::signals::stop_requested() {
        return Err(temporary("interrupted while waiting for the authorization"));
    }
    Ok(())
}

fn device(
    client: &Client,
    url: &str,
    timeout: Duration,
    show: &dyn Fn(&Prompt),
) -> Result<Granted> {
    let form = with_secret(client, vec![("scope", client.scope.as_str())]);
    let (status, body) = http::post_form(url, &form, timeout)?;
    let d = token::parse_device_reply(status, &body)?;
    show(&Prompt::Device {
        uri: &d.verification_uri,
        code: &d.user_code,
        complete: d.verification_uri_complete.as_deref(),
    });
    let deadline = Instant::now() + Duration::from_secs(d.expires_in.min(DEVICE_WAIT));
    let mut interval = Duration::from_secs(d.interval);
    let form = with_secret(
        client,
        vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", d.device_code.as_str()),
        ],
    );
    loop {
        let wake = Instant::now() + interval;
        while Instant::now() < wake {
            stopped()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        if Instant::now() >= deadline {
            return Err(auth(
                "the code expired before the authorization was granted",
            ));
        }
        let reply = http::post_form(&client.token_url, &form, timeout)
            .and_then(|(status, body)| token::parse_token_reply(status, &body));
        match reply {
            Ok(Ok(g)) => return Ok(g),
            Ok(Err(Refused::Pending)) => {}
            // RFC 8628 section 3.5: five seconds more from now on.
            Ok(Err(Refused::SlowDown)) => interval += Duration::from_secs(5),
            Ok(Err(Refused::Denied)) => return Err(auth("the authorization was denied")),
            Ok(Err(Refused::Expired)) => {
                return Err(auth(
                    "the code expired before the authorization was granted",
                ));
            }
            Ok(Err(other)) => {
                return Err(auth(format!("the OAuth token endpoint refused: {other}")));
            }
            // A poll that failed on the way: the next one may get through.
            Err(e) if e.kind == crate::error::Kind::Temporary => {}
            Err(e) => return Err(e),
        }
    }
}

/// Percent-encoding for a query component (RFC 3986 unreserved kept).
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn random(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    openssl::rand::rand_bytes(&mut b).map_err(|e| internal("no random bytes").because(e))?;
    Ok(base64_url(&b))
}

fn browser(client: &Client, timeout: Duration, show: &dyn Fn(&Prompt)) -> Result<Granted> {
    let Some(authorize) = &client.authorize_url else {
        return Err(config(
            "the account has neither oauth2_authorize_url nor oauth2_device_url",
        ));
    };
    http::check_url(authorize)?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| crate::error::local_io("cannot listen on 127.0.0.1").because(e))?;
    let port = listener
        .local_addr()
        .map_err(|e| crate::error::local_io("cannot listen on 127.0.0.1").because(e))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let verifier = random(32)?;
    let challenge = base64_url(&sha2::Sha256::digest(verifier.as_bytes()));
    let state = random(16)?;
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", &redirect),
        ("scope", &client.scope),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend(
        client
            .authorize_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect();
    let sep = if authorize.contains('?') { '&' } else { '?' };
    let url = format!("{authorize}{sep}{}", query.join("&"));
    show(&Prompt::Browser { url: &url });
    let code = wait_for_redirect(&listener, &state)?;
    let form = with_secret(
        client,
        vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier.as_str()),
        ],
    );
    let (status, body) = http::post_form(&client.token_url, &form, timeout)?;
    match token::parse_token_reply(status, &body)? {
        Ok(g) => Ok(g),
        Err(r) => Err(auth(format!(
            "the OAuth token endpoint refused the code: {r}"
        ))),
    }
}

/// Wait for the browser's request to the redirect URI; the code, once a
/// request carries our `state`. Other requests get an answer and are
/// otherwise ignored.
fn wait_for_redirect(listener: &TcpListener, state: &str) -> Result<String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| crate::error::local_io("cannot listen on 127.0.0.1").because(e))?;
    let deadline = Instant::now() + BROWSER_WAIT;
    while Instant::now() < deadline {
        stopped()?;
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(_) => continue,
        };
        let Some(target) = request_target(&mut conn) else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let get = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(name, _)| *name == k)
                .map(|(_, v)| unpct(v))
        };
        if path != "/" || get("state").as_deref() != Some(state) {
            answer(
                &mut conn,
                "404 Not Found",
                "Not the redirect fetch is waiting for.",
            );
            continue;
        }
        if let Some(err) = get("error") {
            answer(
                &mut conn,
                "200 OK",
                "Authorization refused. You can close this window.",
            );
            return Err(auth(format!(
                "the authorization was refused: {}",
                crate::sanitize::escape(&err)
            )));
        }
        if let Some(code) = get("code").filter(|c| !c.is_empty()) {
            answer(
                &mut conn,
                "200 OK",
                "fetch is authorized. You can close this window.",
            );
            return Ok(code);
        }
        answer(&mut conn, "400 Bad Request", "No code in the redirect.");
    }
    Err(auth(
        "no authorization arrived from the browser within 10 minutes",
    ))
}

/// The request target of an HTTP request line (bounded read, short wait).
fn request_target(conn: &mut TcpStream) -> Option<String> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 16 * 1024 {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut words = line.lines().next()?.split(' ');
    (words.next()? == "GET").then(|| words.next().map(str::to_string))?
}

fn answer(conn: &mut TcpStream, status: &str, text: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
}

fn unpct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(
            pct("http://127.0.0.1:5/ a"),
            "http%3A%2F%2F127.0.0.1%3A5%2F%20a"
        );
        assert_eq!(unpct("a%2Fb+c%zz"), "a/b c%zz");
        assert_eq!(unpct("%"), "%");
    }

    #[test]
    fn the_redirect_with_our_state_is_taken_and_others_ignored() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let browser = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for target in [
                "/favicon.ico",
                "/?code=evil&state=forged",
                "/?code=c%2F1&state=s1",
            ] {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(c, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut r = String::new();
                c.read_to_string(&mut r).unwrap();
                answers.push(r.lines().next().unwrap_or("").to_string());
            }
            answers
        });
        assert_eq!(wait_for_redirect(&l, "s1").unwrap(), "c/1");
        let answers = browser.join().unwrap();
        assert!(
            answers[0].contains("404") && answers[1].contains("404"),
            "{answers:?}"
        );
        assert!(answers[2].contains("200"));
    }
}
