//! An OAuth 2.0 authorization server for the tests, on 127.0.0.1: it
//! issues, expires, rotates and revokes tokens, answers Dovecot's token
//! introspection (RFC 7662, `introspection_mode = post`), and plays the
//! device authorization endpoint (RFC 8628) and the authorization endpoint
//! (a 302 to the client's loopback redirect, RFC 8252), so that the
//! built-in flows run for real against it.
//!
//! Plain HTTP/1.1, one request per connection, one thread per connection;
//! the listener thread ends when the server is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the token endpoint misbehaves, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// 503 with an HTML body.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON body missing `access_token`.
    MissingField,
    /// 200 with a 50 MiB body.
    Huge,
    /// Accepts the request, then holds it this long before answering.
    Slow(Duration),
}

#[derive(Debug, Default)]
struct Refresh {
    valid: bool,
    /// The token that replaced this one (rotation): this one stays valid
    /// until its successor is first used, as rotating servers allow.
    successor: Option<String>,
}

#[derive(Debug)]
pub struct State {
    pub user: String,
    pub client_id: String,
    /// Lifetime of the access tokens issued.
    pub access_lifetime: u64,
    /// Issue a new refresh token at each refresh.
    pub rotate: bool,
    pub fault: Fault,
    access: HashMap<String, Instant>,
    refresh: HashMap<String, Refresh>,
    codes: HashMap<String, (String, String)>,
    /// Device grant: polls left before approval; whether to say slow_down once.
    device: Option<(String, u32, bool)>,
    serial: u64,
    /// Every request: "METHOD PATH grant_type" (no secrets), in order.
    pub log: Vec<String>,
    /// Each form body received at /token (secrets included, for checks).
    pub token_forms: Vec<HashMap<String, String>>,
}

impl State {
    fn mint(&mut self, kind: &str) -> String {
        self.serial += 1;
        format!("{kind}-{}-{}", self.serial, std::process::id())
    }

    /// A fresh access token, valid for `access_lifetime` seconds.
    pub fn issue_access(&mut self) -> String {
        let t = self.mint("at");
        self.access.insert(
            t.clone(),
            Instant::now() + Duration::from_secs(self.access_lifetime),
        );
        t
    }

    pub fn issue_refresh(&mut self) -> String {
        let t = self.mint("rt");
        self.refresh.insert(
            t.clone(),
            Refresh {
                valid: true,
                successor: None,
            },
        );
        t
    }

    /// Forget the access tokens issued, refresh tokens kept (a provider
    /// that invalidates access tokens early).
    pub fn forget_access(&mut self) {
        self.access.clear();
    }

    /// Every token issued so far (access and refresh), for checking that
    /// none leaks.
    pub fn all_tokens(&self) -> Vec<String> {
        self.access
            .keys()
            .chain(self.refresh.keys())
            .cloned()
            .collect()
    }

    /// Revoke every token (the user withdrew consent).
    pub fn revoke_all(&mut self) {
        self.access.clear();
        for r in self.refresh.values_mut() {
            r.valid = false;
        }
    }

    /// The access tokens that are valid now.
    pub fn valid_access(&self) -> usize {
        let now = Instant::now();
        self.access.values().filter(|&&e| e > now).count()
    }

    pub fn count(&self, what: &str) -> usize {
        self.log.iter().filter(|l| l.contains(what)).count()
    }
}

pub struct TokenServer {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(user: &str) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            user: user.to_string(),
            client_id: "fetch-test-client".into(),
            access_lifetime: 3600,
            rotate: false,
            fault: Fault::None,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            device: None,
            serial: 0,
            log: Vec::new(),
            token_forms: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        TokenServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Start a device grant that is approved after `polls` polls, with a
    /// `slow_down` answer first when `slow_down`.
    pub fn device_grant(&self, polls: u32, slow_down: bool) {
        self.with(|s| s.device = Some((String::new(), polls, slow_down)));
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

fn json(conn: &mut TcpStream, status: &str, v: serde_json::Value) -> std::io::Result<()> {
    reply(
        conn,
        status,
        "Content-Type: application/json\r\n",
        v.to_string().as_bytes(),
    )
}

fn serve(mut conn: TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut len = 0usize;
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let f = form(if method == "GET" { query } else { &body });
    let mut s = st.lock().unwrap();
    s.log.push(format!(
        "{method} {path} {}",
        f.get("grant_type").map(String::as_str).unwrap_or("")
    ));
    match path {
        "/introspect" => {
            let now = Instant::now();
            let ok = f
                .get("token")
                .and_then(|t| s.access.get(t))
                .is_some_and(|&e| e > now);
            let v = if ok {
                serde_json::json!({"active": true, "username": s.user})
            } else {
                serde_json::json!({"active": false})
            };
            drop(s);
            json(&mut conn, "200 OK", v)
        }
        "/device" => {
            let code = s.mint("dc");
            let polls = s.device.as_ref().map_or(0, |d| d.1);
            let slow = s.device.as_ref().is_some_and(|d| d.2);
            s.device = Some((code.clone(), polls, slow));
            drop(s);
            json(
                &mut conn,
                "200 OK",
                serde_json::json!({
                    "device_code": code,
                    "user_code": "WDJB-MJHT",
                    "verification_uri": "http://127.0.0.1/device",
                    "expires_in": 60,
                    "interval": 1
                }),
            )
        }
        "/authorize" => {
            let code = s.mint("code");
            let redirect = f.get("redirect_uri").cloned().unwrap_or_default();
            let challenge = f.get("code_challenge").cloned().unwrap_or_default();
            s.codes.insert(code.clone(), (challenge, redirect.clone()));
            drop(s);
            let state = f.get("state").cloned().unwrap_or_default();
            reply(
                &mut conn,
                "302 Found",
                &format!("Location: {redirect}?code={code}&state={state}\r\n"),
                b"",
            )
        }
        "/token" => {
            drop(s);
            token(&mut conn, st, f)
        }
        _ => {
            drop(s);
            reply(&mut conn, "404 Not Found", "", b"")
        }
    }
}

fn token(
    conn: &mut TcpStream,
    st: &Mutex<State>,
    f: HashMap<String, String>,
) -> std::io::Result<()> {
    let mut s = st.lock().unwrap();
    s.token_forms.push(f.clone());
    match s.fault {
        Fault::None => {}
        Fault::Down => {
            drop(s);
            return reply(conn, "503 Service Unavailable", "", b"<html>down</html>");
        }
        Fault::Garbage => {
            drop(s);
            return reply(conn, "200 OK", "", b"<html>not json at all");
        }
        Fault::MissingField => {
            drop(s);
            return json(conn, "200 OK", serde_json::json!({"token_type": "Bearer"}));
        }
        Fault::Huge => {
            drop(s);
            let body = vec![b' '; 50 << 20];
            return reply(conn, "200 OK", "Content-Type: application/json\r\n", &body);
        }
        Fault::Slow(d) => {
            drop(s);
            std::thread::sleep(d);
            s = st.lock().unwrap();
        }
    }
    if f.get("client_id") != Some(&s.client_id) {
        drop(s);
        return json(
            conn,
            "401 Unauthorized",
            serde_json::json!({"error": "invalid_client"}),
        );
    }
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    let invalid_grant = serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."});
    let issued_refresh = match grant.as_str() {
        "refresh_token" => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(entry) = s.refresh.get(&rt).filter(|r| r.valid) else {
                drop(s);
                return json(conn, "400 Bad Request", invalid_grant);
            };
            let successor = entry.successor.clone();
            // Using a successor retires its predecessors.
            let retired: Vec<String> = s
                .refresh
                .iter()
                .filter(|(_, r)| r.successor.as_deref() == Some(&rt))
                .map(|(k, _)| k.clone())
                .collect();
            for k in retired {
                s.refresh.get_mut(&k).unwrap().valid = false;
            }
            if s.rotate {
                let new = s.issue_refresh();
                if let Some(old) = successor {
                    // A second refresh with the same token: the first
                    // successor is superseded.
                    s.refresh.get_mut(&old).unwrap().valid = false;
                }
                s.refresh.get_mut(&rt).unwrap().successor = Some(new.clone());
                Some(new)
            } else {
                None
            }
        }
        "authorization_code" => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect)) = s.codes.remove(&code) else {
                drop(s);
                return json(conn, "400 Bad Request", invalid_grant);
            };
            use sha2::Digest;
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let d = sha2::Sha256::digest(verifier.as_bytes());
            let ok = base64url(&d) == challenge && f.get("redirect_uri") == Some(&redirect);
            if !ok {
                drop(s);
                return json(conn, "400 Bad Request", invalid_grant);
            }
            Some(s.issue_refresh())
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let dc = f.get("device_code").cloned().unwrap_or_default();
            let Some((code, polls, slow)) = s.device.clone() else {
                drop(s);
                return json(conn, "400 Bad Request", invalid_grant);
            };
            if code != dc {
                drop(s);
                return json(conn, "400 Bad Request", invalid_grant);
            }
            if slow {
                s.device = Some((code, polls, false));
                drop(s);
                return json(
                    conn,
                    "400 Bad Request",
                    serde_json::json!({"error": "slow_down"}),
                );
            }
            if polls > 0 {
                s.device = Some((code, polls - 1, false));
                drop(s);
                return json(
                    conn,
                    "400 Bad Request",
                    serde_json::json!({"error": "authorization_pending"}),
                );
            }
            s.device = None;
            Some(s.issue_refresh())
        }
        _ => {
            drop(s);
            return json(
                conn,
                "400 Bad Request",
                serde_json::json!({"error": "unsupported_grant_type"}),
            );
        }
    };
    let at = s.issue_access();
    let mut v = serde_json::json!({
        "access_token": at,
        "token_type": "Bearer",
        "expires_in": s.access_lifetime,
    });
    if let Some(rt) = issued_refresh {
        v["refresh_token"] = rt.into();
    }
    drop(s);
    json(conn, "200 OK", v)
}

fn base64url(d: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in d.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        if c.len() > 1 {
            out.push(A[(n >> 6) as usize & 63] as char);
        }
        if c.len() > 2 {
            out.push(A[n as usize & 63] as char);
        }
    }
    out
}
