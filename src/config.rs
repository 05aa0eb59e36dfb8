//! Resolution of raw settings (command line, environment) into an
//! [`Account`] where every choice is already made and typed. No network, no
//! state; nothing downstream re-parses a string.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{AuthMethod, Cli, TlsMode};
use crate::error::{Result, config, usage};

pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pop3,
}

/// One account, fully resolved.
#[derive(Debug, Clone)]
pub struct Account {
    /// The name used in messages (`fetch: NAME: ...`).
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub tls: TlsMode,
    pub cafile: Option<PathBuf>,
    pub allow_plaintext_auth: bool,
    pub auth: AuthMethod,
    pub password_command: Option<String>,
    pub keep: bool,
    pub all: bool,
    pub maildir: PathBuf,
    pub timeout: Duration,
}

impl Account {
    /// The identity of the account's ledger: protocol, user and server. The
    /// port is left out on purpose: the same mailbox reached over 995 or
    /// 110 is the same mailbox.
    pub fn ledger_id(&self) -> String {
        let proto = match self.protocol {
            Protocol::Pop3 => "pop3",
        };
        format!("{proto}:{}@{}", self.user, self.host.to_ascii_lowercase())
    }
}

/// Human-facing output settings.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub quiet: bool,
    pub verbose: u8,
}

/// Resolve the command line into the accounts to fetch.
pub fn resolve(cli: &Cli) -> Result<(Vec<Account>, Output)> {
    let output = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let Some(host) = cli.pop3.clone() else {
        return Err(usage("no server given: use --pop3 HOST (see fetch --help)"));
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(usage(format!("invalid host name {host:?}")));
    }
    let tls = cli.tls.unwrap_or(TlsMode::Implicit);
    let port = cli.port.unwrap_or(match tls {
        TlsMode::Implicit => 995,
        TlsMode::Starttls | TlsMode::None => 110,
    });
    if port == 0 {
        return Err(usage("port 0 is not a valid port"));
    }
    let user = match &cli.user {
        Some(u) => u.clone(),
        None => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| config("no user name: give -u NAME (or set $USER)"))?,
    };
    if user.is_empty() || user.contains(['\r', '\n', '\0']) {
        return Err(usage(
            "the user name is empty or contains a control character",
        ));
    }
    let maildir = match &cli.maildir {
        Some(p) => p.clone(),
        None => dirs::home_dir()
            .ok_or_else(|| {
                config("cannot find the home directory for ~/Maildir: give --maildir DIR")
            })?
            .join("Maildir"),
    };
    let maildir = std::path::absolute(&maildir)
        .map_err(|e| config(format!("bad Maildir path {}: {e}", maildir.display())))?;
    let timeout = cli.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(usage("--timeout must be at least 1 second"));
    }
    let account = Account {
        name: format!("{user}@{host}"),
        protocol: Protocol::Pop3,
        host,
        port,
        user,
        tls,
        cafile: cli.cafile.clone(),
        allow_plaintext_auth: cli.allow_plaintext_auth,
        auth: cli.auth.unwrap_or(AuthMethod::Auto),
        password_command: cli.password_command.clone(),
        keep: cli.keep,
        all: cli.all,
        maildir,
        timeout: Duration::from_secs(timeout),
    };
    Ok((vec![account], output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Account> {
        let mut argv = vec!["fetch"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        resolve(&cli).map(|(mut a, _)| a.remove(0))
    }

    #[test]
    fn defaults_follow_tls_mode() {
        let a = parse(&["--pop3", "h", "-u", "u", "--maildir", "/m"]).unwrap();
        assert_eq!((a.port, a.tls), (995, TlsMode::Implicit));
        let a = parse(&[
            "--pop3",
            "h",
            "-u",
            "u",
            "--tls",
            "starttls",
            "--maildir",
            "/m",
        ])
        .unwrap();
        assert_eq!(a.port, 110);
        let a = parse(&[
            "--pop3",
            "h",
            "-u",
            "u",
            "--tls",
            "none",
            "--port",
            "2110",
            "--maildir",
            "/m",
        ])
        .unwrap();
        assert_eq!(a.port, 2110);
        assert_eq!(a.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(a.ledger_id(), "pop3:u@h");
    }

    #[test]
    fn missing_server_is_usage() {
        let e = parse(&[]).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);
    }

    #[test]
    fn relative_maildir_becomes_absolute() {
        let a = parse(&["--pop3", "h", "-u", "u", "--maildir", "rel/Mail"]).unwrap();
        assert!(a.maildir.is_absolute());
    }
}
