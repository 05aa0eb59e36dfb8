//! Typed errors and the one mapping from an error to a process exit code.
//!
//! Every failure in `fetch` is an [`Error`] with a [`Kind`]; the kind alone
//! decides the exit code (sysexits, as mpop uses them). Call sites
//! choose the kind explicitly, because the same `io::Error` means different
//! things in different places: a read error on a socket is a temporary
//! network failure (75), a write error in the Maildir is a local I/O failure
//! (74).
//!
//! An error keeps what is known of its cause apart until it is shown: what
//! fetch was doing (the context, added by each layer it passes through:
//! `folder INBOX`, `UID FETCH`), what went wrong in our words, the
//! server's own words (as it sent them; escaped only when printed), and the
//! error underneath (an operating system or TLS library error). The top
//! prints the whole chain on one line, `fetch: ACCOUNT: context: what:
//! WORDS: cause` (our words say whose the WORDS are: "the server said NO").

use std::fmt;
use std::sync::Arc;

/// What went wrong, at the granularity a user or a script acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad command-line usage (64).
    Usage,
    /// Bad data: a corrupt state file, server data that cannot be stored, a
    /// message a mail server rejected (65).
    Data,
    /// Service refused: certificate rejected, STARTTLS missing, plaintext
    /// authentication refused (69).
    Unavailable,
    /// A bug in fetch (70).
    Internal,
    /// The destination cannot be created (73).
    CantCreate,
    /// Local I/O failure: delivery failed, disk full (74).
    LocalIo,
    /// Temporary failure: network, timeout, lock held by another run (75).
    Temporary,
    /// The server violated the protocol (76).
    Protocol,
    /// Authentication failed (77).
    Auth,
    /// Configuration error, including "no password source" (78).
    Config,
    /// The reader of our stdout went away (EPIPE, as with `| head`): the
    /// run stops without changing the server, and that is success (0).
    PipeClosed,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Usage,
        Kind::Data,
        Kind::Unavailable,
        Kind::Internal,
        Kind::CantCreate,
        Kind::LocalIo,
        Kind::Temporary,
        Kind::Protocol,
        Kind::Auth,
        Kind::Config,
        Kind::PipeClosed,
    ];

    /// The kind's name in `--json` error events (a stable interface).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Data => "data",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
            Kind::CantCreate => "cant_create",
            Kind::LocalIo => "local_io",
            Kind::Temporary => "temporary",
            Kind::Protocol => "protocol",
            Kind::Auth => "auth",
            Kind::Config => "config",
            Kind::PipeClosed => "pipe_closed",
        }
    }

    /// The process exit code for this kind of failure.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Usage => 64,
            Kind::Data => 65,
            Kind::Unavailable => 69,
            Kind::Internal => 70,
            Kind::CantCreate => 73,
            Kind::LocalIo => 74,
            Kind::Temporary => 75,
            Kind::Protocol => 76,
            Kind::Auth => 77,
            Kind::Config => 78,
            Kind::PipeClosed => 0,
        }
    }
}

/// An error: its kind, and its cause in parts (see the module's
/// documentation).
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    /// What fetch was doing, outermost first.
    context: Vec<String>,
    /// What went wrong, in our words.
    what: String,
    /// The server's words about it, as sent.
    server: Option<String>,
    /// The error underneath.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, what: impl Into<String>) -> Error {
        Error {
            kind,
            context: Vec::new(),
            what: what.into(),
            server: None,
            source: None,
        }
    }

    /// The server's words about this failure (a `-ERR` or `NO` text, a
    /// greeting), kept as sent.
    pub fn server_said(mut self, words: impl Into<String>) -> Error {
        self.server = Some(words.into());
        self
    }

    /// The error underneath this one.
    pub fn because(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// What fetch was doing when this happened (put before the context
    /// already there: layers add theirs on the way out).
    pub fn context(mut self, doing: impl Into<String>) -> Error {
        self.context.insert(0, doing.into());
        self
    }

    /// The server's words, as sent, if it said anything.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The whole chain, on one line.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.context {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.what)?;
        if let Some(words) = &self.server {
            write!(f, ": {}", crate::sanitize::escape(words))?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand constructors, one per kind, so call sites read as prose:
/// `Err(err::protocol(format!(...)))`.
macro_rules! ctor {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(pub fn $name(msg: impl Into<String>) -> Error { Error::new(Kind::$kind, msg) })*
    };
}
ctor! {
    usage => Usage,
    data => Data,
    unavailable => Unavailable,
    internal => Internal,
    cant_create => CantCreate,
    local_io => LocalIo,
    temporary => Temporary,
    protocol => Protocol,
    auth => Auth,
    config => Config,
}

/// Make an `io::Error` (or any error) the cause of one of ours, of `kind`,
/// saying what was being done.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, kind: Kind, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> Context<T>
    for std::result::Result<T, E>
{
    fn ctx<S: Into<String>>(self, kind: Kind, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::new(kind, what()).because(e))
    }
}

impl Kind {
    /// What the exit status of this kind means, as `--help`, the man page
    /// and README.md say it (see [`exit_statuses`]).
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Usage => "usage error",
            Kind::Data => {
                "bad data: a damaged ledger, server data that cannot be stored, or a message \
                 an LMTP or SMTP server rejected (it stays on the server; see --retry-rejected)"
            }
            Kind::Unavailable => {
                "service refused: certificate rejected, STARTTLS missing, plaintext login \
                 refused, an IMAP folder the server will not open (the others go on)"
            }
            Kind::Internal => "internal error",
            Kind::CantCreate => "cannot create the destination",
            Kind::LocalIo => "local I/O error: delivery failed, disk full",
            Kind::Temporary => "temporary failure: network, timeout, another run holds the lock",
            Kind::Protocol => "protocol violation by the server",
            Kind::Auth => "authentication failed",
            Kind::Config => "configuration error, including no way to get a password",
            Kind::PipeClosed => "the reader of standard output went away",
        }
    }
}

/// Every exit status and its meaning, in order: the one table that
/// `--help`, the man page's EXIT STATUS and README.md's table come from
/// (`tests/generated.rs` fails when README.md says otherwise).
pub fn exit_statuses() -> Vec<(String, &'static str)> {
    let mut rows = vec![
        (
            "0".to_string(),
            "success, whether or not there was new mail (--check: there is new mail)",
        ),
        ("1".to_string(), "--check only: no new mail"),
    ];
    for kind in Kind::ALL {
        if kind.exit_code() != 0 {
            rows.push((kind.exit_code().to_string(), kind.meaning()));
        }
    }
    rows.push((
        "130, 143".to_string(),
        "stopped by SIGINT or SIGTERM (128 + the signal) before the end; what arrived is \
         delivered and recorded (--daemon: a stop is normal, 0)",
    ));
    rows
}

/// What the exit status of a run over several accounts is (see [`combine`]).
pub const SEVERAL_ACCOUNTS: &str = "With several accounts: the code of the one that failed, \
    or 75 when two or more failed with different codes; one failing account does not stop \
    the others.";

/// The exit statuses for `--help`, wrapped to 80 columns.
pub fn exit_help() -> String {
    let mut out = String::from("Exit status:\n");
    for (codes, meaning) in exit_statuses() {
        let head = format!("  {codes}");
        let indent = if head.len() < 6 { 6 } else { head.len() + 1 };
        wrap(&mut out, &format!("{head:<indent$}"), indent, meaning);
    }
    out.push('\n');
    wrap(&mut out, "", 0, SEVERAL_ACCOUNTS);
    out.pop();
    out
}

/// `text` after `first` (the first line's start), wrapped at 79 columns,
/// later lines indented by `indent`.
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > 79 {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// The exit code for a run over several accounts: 0 when all succeeded,
/// the failing account's code when one failed or all failures share a
/// code, 75 when two or more failed differently.
pub fn combine(codes: &[i32]) -> i32 {
    let mut failed = codes.iter().copied().filter(|&c| c != 0);
    match failed.next() {
        None => 0,
        Some(first) => {
            if failed.all(|c| c == first) {
                first
            } else {
                75
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_sysexits() {
        assert_eq!(Kind::Usage.exit_code(), 64);
        assert_eq!(Kind::Auth.exit_code(), 77);
        assert_eq!(Kind::Config.exit_code(), 78);
    }

    #[test]
    fn combine_accounts() {
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[0, 0]), 0);
        assert_eq!(combine(&[0, 77, 0]), 77);
        assert_eq!(combine(&[77, 77]), 77);
        assert_eq!(combine(&[77, 69]), 75);
    }

    #[test]
    fn context_keeps_kind_and_cause() {
        let r: std::result::Result<(), std::io::Error> = Err(std::io::Error::from_raw_os_error(
            crate::platform::errno::ENOSPC,
        ));
        let e = r.ctx(Kind::LocalIo, || "writing /x/tmp/1").unwrap_err();
        assert_eq!(e.kind, Kind::LocalIo);
        assert!(
            e.message().starts_with("writing /x/tmp/1: "),
            "{}",
            e.message()
        );
        // The cause is kept whole, not only its words.
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.raw_os_error(), Some(crate::platform::errno::ENOSPC));
    }

    #[test]
    fn the_chain_prints_on_one_line_with_the_server_words_escaped() {
        let e = auth("authentication failed")
            .server_said("[AUTHENTICATIONFAILED] no\x1b[2J")
            .context("login");
        assert_eq!(
            e.message(),
            "login: authentication failed: [AUTHENTICATIONFAILED] no\\u{1b}[2J"
        );
        // The words themselves stay as the server sent them.
        assert_eq!(e.server(), Some("[AUTHENTICATIONFAILED] no\x1b[2J"));
        let e = protocol("the server said NO")
            .server_said("gone")
            .context("SELECT X")
            .context("folder X");
        assert_eq!(e.message(), "folder X: SELECT X: the server said NO: gone");
        assert_eq!(e.kind.exit_code(), 76);
    }
}
