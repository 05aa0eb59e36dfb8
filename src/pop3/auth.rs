//! Logging in to a POP3 server: USER/PASS, APOP, and SASL (PLAIN, XOAUTH2,
//! OAUTHBEARER) with RFC 5034's AUTH, and what a refusal means.

use super::Session;
use super::proto::{self, Command, Status};
use crate::error::{Error, Result, auth, protocol, temporary, unavailable};
use crate::sanitize::escape;
use crate::sasl::{self, Mechanism};
use crate::secret::Login;
use crate::types::AuthMethod;

impl Session<'_> {
    /// Log in. Refuses to send a password over plaintext unless allowed.
    pub fn login(&mut self, login: &Login) -> Result<()> {
        if !self.conn.is_tls() && !login.allow_plaintext {
            return Err(unavailable(
                "refusing to send the password over an unencrypted connection; use \
                 --tls implicit or --tls starttls, or --allow-plaintext-auth if you must",
            ));
        }
        self.check_non_ascii(login)?;
        let method = match login.method {
            AuthMethod::Auto if self.caps.sasl_plain => AuthMethod::Plain,
            AuthMethod::Auto => AuthMethod::User,
            m => m,
        };
        let user = login.user;
        let pass = login.password.expose();
        let reply = match method {
            AuthMethod::User => match self.simple(&Command::User(user))? {
                Status::Ok(_) => self.simple(&Command::Pass(pass))?,
                other => other,
            },
            AuthMethod::Apop => {
                let Some(ts) = proto::apop_timestamp(&self.greeting) else {
                    return Err(unavailable(
                        "APOP was requested but the server greeting has no APOP timestamp",
                    ));
                };
                let digest = apop_digest(ts, pass);
                self.simple(&Command::Apop { user, digest })?
            }
            sasl_method => {
                let mech = Mechanism::of(sasl_method).expect("the rest are SASL");
                return self.sasl(mech, login);
            }
        };
        match reply {
            Status::Ok(_) => Ok(()),
            Status::Err(text) | Status::Continue(text) => Err(login_error(&text)),
        }
    }

    /// `AUTH` with `mech` (RFC 5034): the initial response in the command
    /// when the command stays within POP3's 255 octets (RFC 2449), else in
    /// answer to the first challenge; a later challenge is the server's
    /// error status, answered so that the server finishes with -ERR.
    fn sasl(&mut self, mech: Mechanism, login: &Login) -> Result<()> {
        if mech.is_oauth() && self.caps.known && !self.caps.sasl.iter().any(|m| m == mech.name()) {
            return Err(unavailable(format!(
                "the server does not offer SASL {} (it offers: {})",
                mech.name(),
                escape(&self.caps.sasl.join(" "))
            )));
        }
        let creds = sasl::Credentials {
            user: login.user,
            secret: login.password,
            host: login.host,
            port: login.port,
        };
        sasl::check(mech, &creds).map_err(crate::error::config)?;
        let ir = sasl::initial_response(mech, &creds);
        let ir = ir.expose().as_bytes();
        // "AUTH " + name + " " + base64 + CRLF.
        let fits = 5 + mech.name().len() + 1 + ir.len().div_ceil(3) * 4 + 2 <= 255;
        let mut reply = self.simple(&Command::Auth {
            mech: mech.name(),
            ir: fits.then_some(ir),
        })?;
        if !fits && let Status::Continue(_) = reply {
            reply = self.simple(&Command::SaslAnswer(ir))?;
        }
        // A challenge now is the server's reason for refusing: answer it
        // so that it finishes, and keep it for the message.
        let mut challenge = None;
        if let Status::Continue(text) = &reply {
            challenge = Some(
                crate::wire::base64_decode(text.trim())
                    .unwrap_or_else(|| text.clone().into_bytes()),
            );
            reply = self.simple(&Command::SaslAnswer(sasl::error_answer(mech)))?;
        }
        match reply {
            Status::Ok(_) => Ok(()),
            Status::Continue(_) => {
                // A third round: no mechanism here has one. Cancel.
                self.send_line(b"*\r\n")?;
                let _ = self.read_status();
                Err(protocol(format!(
                    "the server asked for more than {} has to say",
                    mech.name()
                )))
            }
            Status::Err(text) => {
                let e = login_error(&text);
                Err(match challenge {
                    Some(c) if e.kind == crate::error::Kind::Auth => {
                        sasl::rejected(mech, &c).server_said(text)
                    }
                    _ => e,
                })
            }
        }
    }

    /// A user name or password outside ASCII: SASL PLAIN carries UTF-8
    /// (RFC 5034, RFC 4616), USER and PASS only where CAPA says `UTF8 USER`
    /// (RFC 6856). With `auto` and neither on offer, a clear error rather
    /// than a login the server cannot read; an explicit `--auth user` is
    /// sent as asked (UTF-8), for a server that takes it without saying so.
    fn check_non_ascii(&self, login: &Login) -> Result<()> {
        if login.user.is_ascii() && login.password.expose().is_ascii() {
            return Ok(());
        }
        if login.method == AuthMethod::Auto && !self.caps.sasl_plain && !self.caps.utf8_user {
            return Err(unavailable(
                "the user name or password is not ASCII, and the server offers neither \
                 SASL PLAIN nor UTF-8 in USER and PASS (UTF8 USER, RFC 6856); \
                 --auth user sends them anyway, in UTF-8",
            ));
        }
        Ok(())
    }
}

pub(super) fn login_error(text: &str) -> Error {
    match proto::resp_code(text).as_deref() {
        Some("IN-USE") | Some("LOGIN-DELAY") | Some("SYS/TEMP") => {
            temporary("server refused the login for now").server_said(text)
        }
        Some("SYS/PERM") => unavailable("server refused the login").server_said(text),
        _ => auth("authentication failed").server_said(text),
    }
}

pub(super) fn apop_digest(timestamp: &str, password: &str) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(password.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apop_rfc1939_example() {
        assert_eq!(
            apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn login_errors_are_classified() {
        use crate::error::Kind;
        assert_eq!(login_error("[AUTH] bad password").kind, Kind::Auth);
        assert_eq!(login_error("invalid").kind, Kind::Auth);
        assert_eq!(login_error("[IN-USE] locked").kind, Kind::Temporary);
        assert_eq!(login_error("[SYS/TEMP] try later").kind, Kind::Temporary);
    }
}
