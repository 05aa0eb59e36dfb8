//! Getting an IMAP session ready: connect, greeting, STARTTLS by hand (so
//! that the rules hold before the `imap` crate sees the stream: STARTTLS
//! required means no PREAUTH and no credentials in plaintext, and nothing
//! the server sent before the handshake is trusted), then log in.

use std::rc::Rc;

use super::caps::Caps;
use super::session::{MAX_LINE, SMALL_REPLY, lib_error};
use crate::error::{Error, Result, auth, config, protocol, temporary, unavailable};
use crate::net::{Clock, Conn, Endpoint, PeerInfo, SharedConn, Trace};
use crate::sanitize::escape;
use crate::secret::{Login, Secret};
use crate::types::{AuthMethod, TlsMode};

/// Read one CRLF line ourselves (before the library owns the stream).
pub(super) fn read_line(conn: &mut Conn) -> Result<String> {
    conn.begin_reply();
    loop {
        if let Some(end) = crate::wire::line_end(conn.buffered(), MAX_LINE)? {
            let line = String::from_utf8_lossy(&conn.buffered()[..end])
                .trim_end_matches(['\r', '\n'])
                .to_string();
            conn.consume(end);
            return Ok(line);
        }
        conn.read_more()?;
    }
}

/// Send `TAG COMMAND` and read to the tagged reply; returns the untagged
/// lines and the tagged line's status word and text.
fn simple_command(
    conn: &mut Conn,
    tag: &str,
    cmd: &str,
    trace: &dyn Trace,
) -> Result<(Vec<String>, String)> {
    trace.line("C:", &format!("{tag} {cmd}"));
    conn.send(format!("{tag} {cmd}\r\n").as_bytes())?;
    let mut untagged = Vec::new();
    for _ in 0..1000 {
        let line = read_line(conn)?;
        trace.line("S:", &line);
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            return Ok((untagged, rest.to_string()));
        }
        untagged.push(line);
    }
    Err(protocol(format!("no reply to {cmd} after 1000 lines")))
}

struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;
    fn process(&self, _challenge: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.user.len() + self.password.len() + 2);
        v.push(0);
        v.extend_from_slice(self.user.as_bytes());
        v.push(0);
        v.extend_from_slice(self.password.as_bytes());
        v
    }
}

/// Connect and set up TLS as `ep` requires (implicit, or STARTTLS: no
/// PREAUTH, no credential in plaintext, nothing the server sent before the
/// handshake trusted); nothing has been sent but CAPABILITY and STARTTLS
/// when this returns. Returns the capabilities valid now: the
/// greeting's, when it lists them and no STARTTLS came after it (one round
/// trip saved), else a CAPABILITY's.
pub(super) fn connect(ep: &Endpoint, trace: &dyn Trace) -> Result<(Conn, Caps)> {
    let mut conn = Conn::open(ep)?;
    let greeting = read_line(&mut conn)?;
    trace.line("S:", &greeting);
    let upper = greeting.to_ascii_uppercase();
    if upper.starts_with("* BYE") {
        return Err(temporary("server refused the connection").server_said(greeting));
    }
    if upper.starts_with("* PREAUTH") {
        if ep.tls == TlsMode::Starttls {
            return Err(unavailable(
                "the server greeted with PREAUTH (already logged in, in plaintext) while \
                     STARTTLS is required; refusing to continue without encryption",
            ));
        }
        return Err(protocol(
            "the server greeted with PREAUTH; fetch logs in itself and does not support \
                 pre-authenticated sessions",
        ));
    }
    if !upper.starts_with("* OK") {
        return Err(protocol("unexpected greeting").server_said(greeting));
    }
    if ep.tls == TlsMode::Starttls {
        let (lines, status) = simple_command(&mut conn, "F0", "CAPABILITY", trace)?;
        let caps = Caps::from_lines(&lines);
        if !status.to_ascii_uppercase().starts_with("OK") {
            return Err(protocol("CAPABILITY failed").server_said(status));
        }
        if !caps.has("STARTTLS") {
            return Err(unavailable(
                "server does not offer STARTTLS, and --tls starttls requires it; \
                     refusing to continue without encryption",
            ));
        }
        // Untagged lines before the tagged OK are plaintext and ignored.
        let (_, status) = simple_command(&mut conn, "F1", "STARTTLS", trace)?;
        if !status.to_ascii_uppercase().starts_with("OK") {
            return Err(unavailable(
                "server refused STARTTLS, and fetch will not continue without encryption",
            )
            .server_said(status));
        }
        conn.start_tls(&ep.host, &ep.trust)?;
    }
    let caps = match Caps::from_greeting(&greeting) {
        Some(c) if ep.tls != TlsMode::Starttls => c,
        _ => {
            let (lines, status) = simple_command(&mut conn, "F2", "CAPABILITY", trace)?;
            if !status.to_ascii_uppercase().starts_with("OK") {
                return Err(protocol("CAPABILITY failed").server_said(status));
            }
            Caps::from_lines(&lines)
        }
    };
    Ok((conn, caps))
}

/// `--show-cert`: the TLS session and certificate (if any) and the
/// capabilities, then LOGOUT; no credential is sent.
pub fn inspect(ep: &Endpoint, trace: &dyn Trace) -> Result<(Option<PeerInfo>, Vec<String>)> {
    let (mut conn, _) = connect(ep, trace)?;
    let info = conn.peer_info(&ep.host, &ep.trust);
    let (lines, _) = simple_command(&mut conn, "F8", "CAPABILITY", trace)?;
    let caps = Caps::from_lines(&lines);
    let _ = simple_command(&mut conn, "F9", "LOGOUT", trace);
    Ok((info, vec![escape(&caps.words().join(" "))]))
}

/// A connection logged in, handed to the `imap` crate: its session, our
/// shared handle on the same connection, and the reply clock.
pub(super) struct LoggedIn {
    pub inner: imap::Session<SharedConn>,
    pub raw: SharedConn,
    pub clock: Rc<Clock>,
}

/// Log in on `conn`, whose capabilities before login are `caps`: SASL
/// PLAIN (with the credentials in the command when the server has SASL-IR,
/// RFC 4959) or LOGIN. Refuses to send a password without TLS unless
/// allowed.
pub(super) fn log_in(
    conn: Conn,
    caps: &Caps,
    login: &Login,
    trace: &dyn Trace,
) -> Result<LoggedIn> {
    let encrypted = conn.is_tls();
    let clock = conn.clock();
    let raw = SharedConn::new(conn);
    let mut client = imap::Client::new(raw.clone());
    client.greeting_read = true;
    if !encrypted && !login.allow_plaintext {
        return Err(unavailable(
            "refusing to send the password over an unencrypted connection; use \
             --tls implicit or --tls starttls, or --allow-plaintext-auth if you must",
        ));
    }
    let user = login.user;
    let pass = login.password.expose();
    if user.contains(['\r', '\n']) || pass.contains(['\r', '\n']) {
        return Err(config(
            "the user name or password contains a line break, which IMAP cannot carry",
        ));
    }
    check_non_ascii(login, caps)?;
    let plain = match login.method {
        AuthMethod::Plain => true,
        AuthMethod::User => false,
        AuthMethod::Apop => {
            return Err(config(
                "--auth apop is for POP3; IMAP uses plain or user (LOGIN)",
            ));
        }
        AuthMethod::Auto => caps.has("AUTH=PLAIN"),
    };
    clock.begin(SMALL_REPLY);
    trace.line(
        "C:",
        if plain {
            "AUTHENTICATE PLAIN [REDACTED]"
        } else {
            "LOGIN [REDACTED]"
        },
    );
    let logged_in = if plain {
        let auth = PlainAuth {
            user,
            password: pass,
        };
        // The credentials ride with the command, saving a round trip. Held
        // in a Secret: wiped when dropped.
        let method = Secret::new(if caps.has("SASL-IR") {
            use imap::Authenticator;
            let mut ir = b"PLAIN ".to_vec();
            crate::wire::base64_encode(&auth.process(b""), &mut ir);
            String::from_utf8(ir).expect("base64 is ASCII")
        } else {
            "PLAIN".into()
        });
        client.authenticate(method.expose(), &auth)
    } else {
        client.login(user, pass)
    };
    match logged_in {
        Ok(inner) => Ok(LoggedIn { inner, raw, clock }),
        Err((imap::Error::No(r), _)) => Err(login_error(&r.information)),
        Err((e, _)) => Err(lib_error("login", e)),
    }
}

/// A user name or password outside ASCII goes only by SASL PLAIN, which
/// carries UTF-8 (RFC 4616). LOGIN's quoted strings are 7-bit (RFC 3501
/// §9, QUOTED-CHAR); UTF-8 in them needs UTF8=ACCEPT (RFC 6855), which can
/// only be enabled once logged in. So `--auth user` with such credentials
/// is refused, and `auto` needs a server that offers AUTH=PLAIN.
fn check_non_ascii(login: &Login, caps: &Caps) -> Result<()> {
    if login.user.is_ascii() && login.password.expose().is_ascii() {
        return Ok(());
    }
    match login.method {
        AuthMethod::User => Err(config(
            "the user name or password is not ASCII, which IMAP LOGIN (--auth user) cannot \
             carry; use --auth plain or auto (SASL PLAIN carries UTF-8)",
        )),
        AuthMethod::Auto if !caps.has("AUTH=PLAIN") => Err(unavailable(
            "the user name or password is not ASCII, which only SASL PLAIN carries, and \
             the server does not offer AUTH=PLAIN",
        )),
        _ => Ok(()),
    }
}

fn login_error(text: &str) -> Error {
    let upper = text.to_ascii_uppercase();
    if upper.contains("[UNAVAILABLE]") || upper.contains("[INUSE]") || upper.contains("[LIMIT]") {
        return temporary("server refused the login for now").server_said(text);
    }
    auth("authentication failed").server_said(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn login_errors() {
        assert_eq!(login_error("[AUTHENTICATIONFAILED] no").kind, Kind::Auth);
        assert_eq!(login_error("[UNAVAILABLE] later").kind, Kind::Temporary);
    }

    #[test]
    fn non_ascii_credentials_need_sasl_plain() {
        let check = |user: &str, pass: &str, method, caps: &str| {
            let password = Secret::new(pass.to_string());
            let login = Login {
                user,
                password: &password,
                method,
                allow_plaintext: false,
            };
            check_non_ascii(&login, &Caps::from_words(caps.split(' '))).map_err(|e| e.kind)
        };
        let (with, without) = ("IMAP4rev1 AUTH=PLAIN", "IMAP4rev1");
        assert_eq!(check("jürgen", "x", AuthMethod::Auto, with), Ok(()));
        assert_eq!(check("j", "pässwörd", AuthMethod::Plain, without), Ok(()));
        assert_eq!(
            check("j", "pässwörd", AuthMethod::Auto, without),
            Err(Kind::Unavailable)
        );
        assert_eq!(
            check("jürgen", "x", AuthMethod::User, with),
            Err(Kind::Config)
        );
        assert_eq!(check("j", "ascii", AuthMethod::User, without), Ok(()));
    }
}
