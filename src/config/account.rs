//! One account as resolved: every choice made and typed, and what each
//! layer below needs of it (an [`Endpoint`], a [`Login`], password
//! [`Sources`], [`DeliverOptions`]), so that no layer below sees this type.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::layers::{Settings, SizeSetting};
use super::paths::expand_path;
use super::{DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_SECS, Mode};
use crate::cli::parse_size;
use crate::deliver::DeliverOptions;
use crate::error::{Result, config, usage};
use crate::net::{Endpoint, TlsSettings, parse_fingerprint};
use crate::password::Sources;
use crate::secret::{Login, Secret};
use crate::types::{AuthMethod, Destination, MailServer, Protocol, TlsMode};

/// One account, fully resolved.
#[derive(Debug, Clone)]
pub struct Account {
    /// The name used in messages (`fetch: NAME: ...`): the config file's
    /// account name, or `user@host` for a one-shot account.
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub tls: TlsMode,
    pub cafile: Option<PathBuf>,
    pub allow_plaintext_auth: bool,
    pub auth: AuthMethod,
    /// The built-in OAuth client: the access token comes from its store
    /// (unless a password command gives it).
    pub oauth2: Option<crate::oauth2::Client>,
    pub password_command: Option<String>,
    /// A password written in the config file (only accepted from a file
    /// that is private to the user).
    pub config_password: Option<Arc<Secret>>,
    pub keep: bool,
    pub all: bool,
    pub dest: Destination,
    /// With [`Destination::Stdout`]: delete what was written (the user
    /// trusts the pipe). Never true for other destinations.
    pub delete_after_stdout: bool,
    pub timeout: Duration,
    pub imap: ImapOptions,
    /// Fetch at most this many messages per run.
    pub limit: Option<usize>,
    /// Leave larger messages (bytes, as the server counts them) on the server.
    pub max_size: Option<u64>,
    /// What the run is for: fetch, or only look (`--check`, `--dry-run`,
    /// `--show-cert`).
    pub mode: Mode,
    /// A pinned SHA-256 certificate fingerprint, replacing the CA check.
    pub fingerprint: Option<[u8; 32]>,
    /// POP3 `--keep`: delete server copies first fetched more than this
    /// many days ago.
    pub delete_after: Option<u64>,
    /// LMTP/SMTP: the envelope recipient.
    pub deliver_to: String,
    /// LMTP/SMTP: hand mail to a remote server without STARTTLS.
    pub allow_plaintext_smtp: bool,
    /// Offer again the messages a mail server rejected in an earlier run
    /// (also implied by `all`).
    pub retry_rejected: bool,
    /// Connections open at once to the account's server, shared with the
    /// other accounts on it (`run/slots.rs`).
    pub max_connections: usize,
}

/// The IMAP-only settings of an account.
#[derive(Debug, Clone, Default)]
pub struct ImapOptions {
    /// Folders to fetch (server names); INBOX when none are given.
    pub folders: Vec<String>,
    pub all_folders: bool,
    /// Delete (\Deleted + UID EXPUNGE) what was fetched.
    pub delete: bool,
    /// Move what was fetched to this server folder.
    pub move_to: Option<String>,
    pub search: Option<String>,
    pub sync_deletes: bool,
    pub resync: bool,
}

impl Account {
    /// The identity of the account's ledger: protocol, user and server. The
    /// port is left out on purpose: the same mailbox reached over 995 or
    /// 110 is the same mailbox.
    pub fn ledger_id(&self) -> String {
        format!(
            "{}:{}@{}",
            self.protocol.name(),
            self.user,
            self.host.to_ascii_lowercase()
        )
    }

    /// The server to connect to, and how.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            timeout: self.timeout,
            trust: TlsSettings {
                cafile: self.cafile.clone(),
                fingerprint: self.fingerprint,
                inspect_only: self.mode == Mode::ShowCert,
            },
        }
    }

    /// How to log in with `password`.
    pub fn login<'a>(&'a self, password: &'a Secret) -> Login<'a> {
        Login {
            user: &self.user,
            password,
            host: &self.host,
            port: self.port,
            method: self.auth,
            allow_plaintext: self.allow_plaintext_auth,
        }
    }

    /// Where this account's password may come from.
    pub fn password_sources(&self) -> Sources<'_> {
        Sources {
            account: &self.name,
            host: &self.host,
            user: &self.user,
            command: self.password_command.as_deref(),
            config: self.config_password.as_deref(),
            oauth2: self.oauth2.as_ref().filter(|_| self.auth.is_oauth()),
            state_dir: self.state_dir(),
            timeout: self.timeout,
        }
    }

    /// The account's state directory (ledger, lock, OAuth tokens).
    pub fn state_dir(&self) -> Option<PathBuf> {
        crate::ledger::default_root()
            .map(|root| root.join(crate::ledger::account_dir_name(&self.ledger_id())))
    }

    /// What a destination needs beyond where it is.
    pub fn deliver_options(&self) -> DeliverOptions {
        DeliverOptions {
            user: self.user.clone(),
            lock_wait: self.timeout,
            recipient: self.deliver_to.clone(),
            timeout: self.timeout,
            trust: TlsSettings {
                cafile: self.cafile.clone(),
                fingerprint: None,
                inspect_only: false,
            },
            allow_plaintext: self.allow_plaintext_smtp,
        }
    }

    /// Whether messages are deleted (or, IMAP, moved) on the server once
    /// delivered. A pipe (stdout) never counts as delivered enough for that
    /// unless the user says so.
    pub fn deletes(&self) -> bool {
        let wanted = match self.protocol {
            Protocol::Pop3 => !self.keep,
            Protocol::Imap => self.imap.delete || self.imap.move_to.is_some(),
        };
        wanted && (self.dest != Destination::Stdout || self.delete_after_stdout)
    }

    /// `--check` or `--dry-run`: look, change nothing anywhere (no
    /// recovery, no delivery, no ledger record, no server change; IMAP
    /// folders are opened with EXAMINE).
    pub fn read_only(&self) -> bool {
        matches!(self.mode, Mode::Check | Mode::DryRun)
    }

    /// Whether messages a mail server rejected before are offered again.
    pub fn retries_rejected(&self) -> bool {
        self.retry_rejected || self.all
    }

    pub fn dry_run(&self) -> bool {
        self.mode == Mode::DryRun
    }
}

/// One account from its merged layers of settings.
pub(super) fn build(name: String, mut s: Settings, mode: Mode) -> Result<Account> {
    super::provider::apply(&mut s)?;
    let oauth2 = super::provider::client(&s)?;
    let acct_hint = if name.is_empty() {
        String::new()
    } else {
        format!("account {name}: ")
    };
    let cfg = |m: String| config(format!("{acct_hint}{m}"));
    let host = s
        .host
        .ok_or_else(|| cfg("no host: set host = \"...\"".into()))?;
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(usage(format!("invalid host name {host:?}")));
    }
    let protocol = s.protocol.unwrap_or(Protocol::Pop3);
    let tls = s.tls.unwrap_or(TlsMode::Implicit);
    let port = s.port.unwrap_or(match (protocol, tls) {
        (Protocol::Pop3, TlsMode::Implicit) => 995,
        (Protocol::Pop3, _) => 110,
        (Protocol::Imap, TlsMode::Implicit) => 993,
        (Protocol::Imap, _) => 143,
    });
    let imap = ImapOptions {
        folders: s.folders.unwrap_or_default(),
        all_folders: s.all_folders.unwrap_or(false),
        delete: s.delete.unwrap_or(false),
        move_to: s.move_to,
        search: s.search,
        sync_deletes: s.sync_deletes.unwrap_or(false),
        resync: s.resync.unwrap_or(false),
    };
    if protocol == Protocol::Pop3 {
        let used = [
            (!imap.folders.is_empty(), "folders (--folder)"),
            (imap.all_folders, "all_folders"),
            (imap.delete, "delete (POP3 deletes unless keep)"),
            (imap.move_to.is_some(), "move_to"),
            (imap.search.is_some(), "search"),
            (imap.sync_deletes, "sync_deletes"),
            (imap.resync, "resync"),
        ];
        if let Some((_, what)) = used.iter().find(|(on, _)| *on) {
            return Err(usage(format!("{acct_hint}{what} is for IMAP accounts")));
        }
    }
    for text in imap.folders.iter().chain(&imap.move_to).chain(&imap.search) {
        if text.contains(['\r', '\n', '\0']) || text.is_empty() {
            return Err(usage(format!(
                "{acct_hint}a folder name or search may not be empty or contain line breaks"
            )));
        }
    }
    if port == 0 {
        return Err(usage("port 0 is not a valid port"));
    }
    let user = match s.user {
        Some(u) => u,
        None => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| cfg("no user name: give -u NAME (or set $USER)".into()))?,
    };
    if user.is_empty() || user.contains(['\r', '\n', '\0']) {
        return Err(usage(
            "the user name is empty or contains a control character",
        ));
    }
    let dest = if let Some(t) = s.lmtp {
        Destination::Lmtp(mail_server(&t, 24, true).map_err(|e| cfg(format!("lmtp: {e}")))?)
    } else if let Some(t) = s.smtp {
        Destination::Smtp(mail_server(&t, 25, false).map_err(|e| cfg(format!("smtp: {e}")))?)
    } else if let Some(p) = s.mbox {
        Destination::Mbox(expand_path(&p)?)
    } else if let Some(cmd) = s.mda {
        if cmd.trim().is_empty() {
            return Err(cfg("the mda command is empty".into()));
        }
        Destination::Mda(cmd)
    } else if s.stdout == Some(true) {
        Destination::Stdout
    } else {
        match s.maildir {
            Some(p) => Destination::Maildir(expand_path(&p)?),
            None => Destination::Maildir(
                dirs::home_dir()
                    .ok_or_else(|| {
                        cfg(
                            "cannot find the home directory for ~/Maildir: give --maildir DIR"
                                .into(),
                        )
                    })?
                    .join("Maildir"),
            ),
        }
    };
    let delete_after_stdout = s.delete_after_stdout.unwrap_or(false);
    if delete_after_stdout && dest != Destination::Stdout {
        return Err(usage(format!(
            "{acct_hint}--delete-after-stdout only makes sense with --stdout"
        )));
    }
    let max_size = match s.max_size {
        None => None,
        Some(SizeSetting::Bytes(0)) => return Err(cfg("max_size must be more than 0".into())),
        Some(SizeSetting::Bytes(n)) => Some(n),
        Some(SizeSetting::Text(t)) => {
            Some(parse_size(&t).map_err(|e| cfg("max_size".into()).because(e))?)
        }
    };
    let delete_after = s.delete_after;
    if delete_after.is_some() && !(protocol == Protocol::Pop3 && s.keep == Some(true)) {
        return Err(usage(format!(
            "{acct_hint}--delete-after is for POP3 accounts with --keep (delete mode deletes at once)"
        )));
    }
    if s.limit == Some(0) {
        return Err(usage("--limit must be at least 1"));
    }
    let deliver_to_given = s.deliver_to.is_some();
    let deliver_to = match s.deliver_to {
        Some(a) => a,
        // fetchmail's default: the local user running it.
        None => local_user_name().unwrap_or_else(|| user.clone()),
    };
    if deliver_to.is_empty()
        || deliver_to
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>'))
    {
        return Err(usage(format!(
            "{acct_hint}the recipient {deliver_to:?} (--deliver-to) is not an address"
        )));
    }
    if deliver_to_given && dest.mail_server().is_none() {
        return Err(usage(format!(
            "{acct_hint}--deliver-to is for the --lmtp and --smtp destinations"
        )));
    }
    let max_connections = s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(usage("max_connections must be at least 1"));
    }
    let timeout = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(usage("the timeout must be at least 1 second"));
    }
    let auth = match s.auth {
        Some(a) => a,
        None if oauth2.is_some() => AuthMethod::Xoauth2,
        None => AuthMethod::Auto,
    };
    if auth.is_oauth() && oauth2.is_none() && s.password_command.is_none() {
        return Err(cfg(format!(
            "--auth {} sends an OAuth access token: give password_command (a token helper such as \
             oama) or the account's OAuth client (oauth2_client_id, or provider = ...) and run \
             fetch --login",
            if auth == AuthMethod::Xoauth2 {
                "xoauth2"
            } else {
                "oauthbearer"
            }
        )));
    }
    let display = if name.is_empty() {
        format!("{user}@{host}")
    } else {
        name
    };
    Ok(Account {
        name: display,
        protocol,
        host,
        port,
        user,
        tls,
        cafile: s.cafile.as_deref().map(expand_path).transpose()?,
        allow_plaintext_auth: s.allow_plaintext_auth.unwrap_or(false),
        auth,
        oauth2,
        password_command: s.password_command,
        config_password: s.password.map(|p| Arc::new(Secret::new(p))),
        keep: s.keep.unwrap_or(false),
        all: s.all.unwrap_or(false),
        dest,
        delete_after_stdout,
        timeout: Duration::from_secs(timeout),
        imap,
        limit: s.limit,
        max_size,
        mode,
        fingerprint: s
            .fingerprint
            .as_deref()
            .map(parse_fingerprint)
            .transpose()
            .map_err(|e| cfg("fingerprint".into()).because(e))?,
        delete_after,
        deliver_to,
        allow_plaintext_smtp: s.allow_plaintext_smtp.unwrap_or(false),
        retry_rejected: s.retry_rejected.unwrap_or(false),
        max_connections,
    })
}

/// The name of the user running fetch, from the environment.
fn local_user_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.is_empty())
}

/// An LMTP or SMTP server: a unix socket path (LMTP only: anything with a
/// `/`), `HOST`, `HOST:PORT` or `[IPV6]:PORT`.
fn mail_server(text: &str, default_port: u16, lmtp: bool) -> Result<MailServer, String> {
    let text = text.trim();
    if text.contains('/') {
        if !lmtp {
            return Err(format!("{text:?} is not HOST or HOST:PORT"));
        }
        return expand_path(text)
            .map(MailServer::Unix)
            .map_err(|e| e.message());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: no ] after the IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{text:?} is not [ADDRESS]:PORT")),
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').expect("one colon");
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{p:?} is not a port"))?,
    };
    if host.is_empty() || host.contains([' ', '\t', '\r', '\n', '\0']) {
        return Err(format!("{text:?} names no host"));
    }
    Ok(MailServer::Tcp {
        host: host.to_string(),
        port,
    })
}
