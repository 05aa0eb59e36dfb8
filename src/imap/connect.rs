//! Getting an IMAP session ready: connect, greeting, STARTTLS by hand (so
//! that the rules hold before the `imap` crate sees the stream: STARTTLS
//! required means no PREAUTH and no credentials in plaintext, and nothing
//! the server sent before the handshake is trusted), then log in.

use std::cell::RefCell;
use std::rc::Rc;

use super::caps::Caps;
use super::session::{MAX_LINE, SMALL_REPLY, lib_error};
use crate::error::{Error, Result, auth, config, protocol, temporary, unavailable};
use crate::net::{Clock, Conn, Endpoint, PeerInfo, SharedConn, Trace};
use crate::sanitize::escape;
use crate::sasl::{self, Mechanism};
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

/// A SASL exchange for the `imap` crate: the initial response (unless it
/// rode with the command, SASL-IR), then, for a second challenge, the
/// answer that lets the server finish, keeping that challenge: it is the
/// server's reason (RFC 7628 section 3.2.2).
struct SaslAuth {
    mech: Mechanism,
    first: RefCell<Option<Secret>>,
    challenge: RefCell<Option<Vec<u8>>>,
}

impl imap::Authenticator for SaslAuth {
    type Response = Vec<u8>;
    fn process(&self, challenge: &[u8]) -> Vec<u8> {
        if let Some(ir) = self.first.borrow_mut().take() {
            return ir.expose().as_bytes().to_vec();
        }
        *self.challenge.borrow_mut() = Some(challenge.to_vec());
        sasl::error_answer(self.mech).to_vec()
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

/// Log in on `conn`, whose capabilities before login are `caps`: by SASL
/// (PLAIN, XOAUTH2 or OAUTHBEARER; the initial response in the command
/// when the server has SASL-IR, RFC 4959) or LOGIN. Refuses to send a
/// password or token without TLS unless allowed.
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
    check_non_ascii(login, caps)?;
    let method = match login.method {
        AuthMethod::Auto if caps.has("AUTH=PLAIN") => AuthMethod::Plain,
        AuthMethod::Auto => AuthMethod::User,
        AuthMethod::Apop => {
            return Err(config(
                "--auth apop is for POP3; IMAP uses plain, user (LOGIN), xoauth2 or oauthbearer",
            ));
        }
        m => m,
    };
    clock.begin(SMALL_REPLY);
    let Some(mech) = sasl::Mechanism::of(method) else {
        let (user, pass) = (login.user, login.password.expose());
        if user.contains(['\r', '\n']) || pass.contains(['\r', '\n']) {
            return Err(config(
                "the user name or password contains a line break, which IMAP cannot carry",
            ));
        }
        trace.line("C:", "LOGIN [REDACTED]");
        return match client.login(user, pass) {
            Ok(inner) => Ok(LoggedIn { inner, raw, clock }),
            Err((imap::Error::No(r), _)) => Err(login_error(&r.information)),
            Err((e, _)) => Err(lib_error("login", e)),
        };
    };
    if mech.is_oauth() && !caps.has(&format!("AUTH={}", mech.name())) {
        return Err(unavailable(format!(
            "the server does not offer {} (its capabilities: {})",
            mech.name(),
            escape(&caps.words().join(" "))
        )));
    }
    let creds = sasl::Credentials {
        user: login.user,
        secret: login.password,
        host: login.host,
        port: login.port,
    };
    sasl::check(mech, &creds).map_err(config)?;
    let ir = sasl::initial_response(mech, &creds);
    trace.line("C:", &format!("AUTHENTICATE {} [REDACTED]", mech.name()));
    // With SASL-IR (RFC 4959) the initial response rides with the command,
    // saving a round trip. Held in a Secret: wiped when dropped.
    let (command, first) = if caps.has("SASL-IR") {
        let mut cmd = format!("{} ", mech.name()).into_bytes();
        crate::wire::base64_encode(ir.expose().as_bytes(), &mut cmd);
        let cmd = Secret::new(String::from_utf8(cmd).expect("base64 is ASCII"));
        (cmd, None)
    } else {
        (Secret::new(mech.name().into()), Some(ir))
    };
    let auth = SaslAuth {
        mech,
        first: RefCell::new(first),
        challenge: RefCell::new(None),
    };
    match client.authenticate(command.expose(), &auth) {
        Ok(inner) => Ok(LoggedIn { inner, raw, clock }),
        Err((imap::Error::No(r), _)) => {
            let e = login_error(&r.information);
            Err(match auth.challenge.take() {
                Some(c) if e.kind == crate::error::Kind::Auth => {
                    sasl::rejected(mech, &c).server_said(&r.information)
                }
                _ => e,
            })
        }
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
                host: "imap.example.org",
                port: 993,
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
