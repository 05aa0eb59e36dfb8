//! The words every layer shares: which protocol, how the connection is
//! protected, how to log in, where mail goes. The command line parses them
//! (clap), the config file reads them (serde), `config` resolves them, and
//! the protocols and destinations act on them. This module imports nothing
//! of ours, so any layer may use it without pulling in another.

use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Pop3,
    Imap,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (RFC 8314).
    Implicit,
    /// Plain connection upgraded with STLS; fails if the server does not offer it.
    Starttls,
    /// No encryption.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// SASL PLAIN if the server offers it, else USER/PASS.
    Auto,
    /// SASL PLAIN (RFC 5034).
    Plain,
    /// USER and PASS (RFC 1939).
    User,
    /// APOP (RFC 1939 section 7); needs a timestamp in the server greeting.
    Apop,
    /// SASL XOAUTH2 with an OAuth 2.0 access token (Google, Microsoft).
    Xoauth2,
    /// SASL OAUTHBEARER (RFC 7628) with an OAuth 2.0 access token.
    Oauthbearer,
}

impl AuthMethod {
    /// Whether the secret this method sends is an OAuth 2.0 access token.
    pub fn is_oauth(self) -> bool {
        matches!(self, AuthMethod::Xoauth2 | AuthMethod::Oauthbearer)
    }
}

/// Where an account's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Maildir(PathBuf),
    Mbox(PathBuf),
    /// A command line, as given (split and expanded per message).
    Mda(String),
    Stdout,
    /// A mail server speaking LMTP (RFC 2033), such as Dovecot's `lmtp`.
    Lmtp(MailServer),
    /// A mail server speaking SMTP (RFC 5321), such as Postfix or Exim.
    Smtp(MailServer),
}

impl Destination {
    /// The mail server an LMTP or SMTP destination hands mail to.
    pub fn mail_server(&self) -> Option<&MailServer> {
        match self {
            Destination::Lmtp(s) | Destination::Smtp(s) => Some(s),
            _ => None,
        }
    }
}

/// Where an LMTP or SMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailServer {
    /// A unix socket (Dovecot's `/var/run/dovecot/lmtp`).
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
}
