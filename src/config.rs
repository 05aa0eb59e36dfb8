//! Resolution of raw settings into [`Account`]s where every choice is
//! already made and typed. No network, no state; nothing downstream
//! re-parses a string.
//!
//! Layers, lowest first: built-in defaults, the config file's `[defaults]`,
//! its `[accounts.NAME]`, then the command line. A layer that names a
//! destination (maildir, mbox, mda, stdout) replaces the destination of the
//! layers below it; naming two in one layer is an error.
//!
//! The config file (TOML, `$XDG_CONFIG_HOME/fetch/config.toml` or
//! `--config`):
//!
//! ```toml
//! [defaults]
//! maildir = "~/Maildir"
//!
//! [accounts.work]
//! protocol = "pop3"
//! host = "pop.example.org"
//! user = "alice"
//! password_command = "pass show mail/work"
//! keep = true
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::cli::{AuthMethod, Cli, TlsMode};
use crate::error::{Error, Kind, Result, config, usage};
use crate::secret::Secret;

pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Pop3,
    Imap,
}

/// Where an account's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Maildir(PathBuf),
    Mbox(PathBuf),
    /// A command line, as given (split and expanded per message).
    Mda(String),
    Stdout,
}

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
    /// `--check`: count new messages, change nothing.
    pub check: bool,
    /// `--dry-run`: say what a run would do, change nothing.
    pub dry_run: bool,
    /// A pinned SHA-256 certificate fingerprint, replacing the CA check.
    pub fingerprint: Option<[u8; 32]>,
    /// `--show-cert`: print the server's certificate and capabilities, send
    /// no credential.
    pub show_cert: bool,
    /// POP3 `--keep`: delete server copies first fetched more than this
    /// many days ago.
    pub delete_after: Option<u64>,
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
        let proto = match self.protocol {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        };
        format!("{proto}:{}@{}", self.user, self.host.to_ascii_lowercase())
    }

    /// TLS trust for this account's connections.
    pub fn tls_settings(&self) -> crate::net::TlsSettings {
        crate::net::TlsSettings {
            cafile: self.cafile.clone(),
            fingerprint: self.fingerprint,
            inspect_only: self.show_cert,
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
        self.check || self.dry_run
    }
}

/// Human-facing output settings.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub quiet: bool,
    pub verbose: u8,
    /// `--json`: newline-delimited events on stdout.
    pub json: bool,
}

/// One layer of settings: the config file's `[defaults]`, an account, or
/// the command line. Every command-line setting has a key here.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    protocol: Option<Protocol>,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    tls: Option<TlsMode>,
    cafile: Option<String>,
    allow_plaintext_auth: Option<bool>,
    auth: Option<AuthMethod>,
    password_command: Option<String>,
    password: Option<String>,
    keep: Option<bool>,
    all: Option<bool>,
    maildir: Option<String>,
    mbox: Option<String>,
    mda: Option<String>,
    stdout: Option<bool>,
    delete_after_stdout: Option<bool>,
    timeout: Option<u64>,
    folders: Option<Vec<String>>,
    all_folders: Option<bool>,
    delete: Option<bool>,
    move_to: Option<String>,
    search: Option<String>,
    sync_deletes: Option<bool>,
    resync: Option<bool>,
    limit: Option<usize>,
    max_size: Option<SizeSetting>,
    fingerprint: Option<String>,
    delete_after: Option<u64>,
}

/// A size in the config file: a number of bytes, or text like "10M".
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
enum SizeSetting {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    accounts: IndexMap<String, Settings>,
}

impl Settings {
    fn destinations(&self) -> usize {
        [
            self.maildir.is_some(),
            self.mbox.is_some(),
            self.mda.is_some(),
            self.stdout == Some(true),
        ]
        .iter()
        .filter(|&&b| b)
        .count()
    }

    /// `over` on top of `self`: each key set in `over` wins; a destination
    /// in `over` replaces any destination in `self`. Done on the TOML form of
    /// the two layers (unset keys are absent there), so a new key can never
    /// be forgotten here.
    fn overlay(self, over: Settings) -> Settings {
        let table = |s: &Settings| match toml::Value::try_from(s) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Settings serialises to a table"),
        };
        let mut base = table(&self);
        if over.destinations() > 0 {
            for k in ["maildir", "mbox", "mda", "stdout"] {
                base.remove(k);
            }
        }
        for (k, v) in table(&over) {
            base.insert(k, v);
        }
        toml::Value::Table(base)
            .try_into()
            .expect("a merge of two valid layers is valid")
    }

    fn from_cli(cli: &Cli) -> Settings {
        let (protocol, host) = match (&cli.pop3, &cli.imap) {
            (Some(h), _) => (Some(Protocol::Pop3), Some(h.clone())),
            (None, Some(h)) => (Some(Protocol::Imap), Some(h.clone())),
            (None, None) => (None, None),
        };
        Settings {
            protocol,
            host,
            port: cli.port,
            user: cli.user.clone(),
            tls: cli.tls,
            cafile: cli
                .cafile
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            allow_plaintext_auth: cli.allow_plaintext_auth.then_some(true),
            auth: cli.auth,
            password_command: cli.password_command.clone(),
            password: None,
            keep: if cli.keep {
                Some(true)
            } else if cli.no_keep {
                Some(false)
            } else {
                None
            },
            all: cli.all.then_some(true),
            maildir: cli.maildir.clone(),
            mbox: cli.mbox.clone(),
            mda: cli.mda.clone(),
            stdout: cli.stdout.then_some(true),
            delete_after_stdout: cli.delete_after_stdout.then_some(true),
            timeout: cli.timeout,
            folders: (!cli.folders.is_empty()).then(|| cli.folders.clone()),
            all_folders: cli.all_folders.then_some(true),
            delete: cli.delete.then_some(true),
            move_to: cli.move_to.clone(),
            search: cli.search.clone(),
            sync_deletes: cli.sync_deletes.then_some(true),
            resync: cli.resync.then_some(true),
            limit: cli.limit,
            max_size: cli.max_size.map(SizeSetting::Bytes),
            fingerprint: cli.fingerprint.clone(),
            delete_after: cli.delete_after,
        }
    }
}

/// The config file to read: `--config`, else the default location.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config
        .clone()
        .or_else(|| dirs::config_dir().map(|d| d.join("fetch").join("config.toml")))
}

/// A parsed config file and where it came from.
struct LoadedFile {
    path: PathBuf,
    settings: FileSettings,
    /// Whether the file may hold a password (private to the user).
    private: bool,
}

fn load_file(path: &Path, required: bool) -> Result<Option<LoadedFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(config(format!("cannot read {}: {e}", path.display()))),
    };
    let settings: FileSettings = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_string();
        match line {
            Some(l) => config(format!("{}:{l}: {msg}", path.display())),
            None => config(format!("{}: {msg}", path.display())),
        }
    })?;
    Ok(Some(LoadedFile {
        path: path.to_path_buf(),
        private: is_private(path),
        settings,
    }))
}

/// Mode 0600 or stricter and owned by the user running fetch.
fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        // SAFETY: getuid has no preconditions.
        Ok(m) => m.mode() & 0o077 == 0 && m.uid() == unsafe { libc::getuid() },
        Err(_) => false,
    }
}

/// Resolve the command line (and the config file) into the accounts to fetch.
pub fn resolve(cli: &Cli) -> Result<(Vec<Account>, Output)> {
    let output = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        json: cli.json,
    };
    let cli_layer = Settings::from_cli(cli);
    let path = config_path(cli);
    let one_shot = cli.pop3.is_some() || cli.imap.is_some();
    if one_shot && !cli.accounts.is_empty() {
        return Err(usage(
            "give either --pop3/--imap HOST or account names from the config file, not both",
        ));
    }
    let file = match &path {
        Some(p) => load_file(p, cli.config.is_some())?,
        None => None,
    };

    let mut layers: Vec<(String, Settings, Option<&LoadedFile>)> = Vec::new();
    if one_shot {
        let base = file
            .as_ref()
            .map(|f| f.settings.defaults.clone())
            .unwrap_or_default();
        layers.push((String::new(), base, file.as_ref()));
    } else {
        let Some(f) = &file else {
            return Err(usage(format!(
                "no config file ({}) and no --pop3 or --imap HOST: nothing to fetch (see fetch --help)",
                path.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "$XDG_CONFIG_HOME/fetch/config.toml".into())
            )));
        };
        let names: Vec<String> = if cli.accounts.is_empty() {
            f.settings.accounts.keys().cloned().collect()
        } else {
            cli.accounts.clone()
        };
        if names.is_empty() {
            return Err(config(format!(
                "{} defines no [accounts.NAME]",
                f.path.display()
            )));
        }
        for name in names {
            let Some(acct) = f.settings.accounts.get(&name) else {
                return Err(config(format!(
                    "no account named {name:?} in {}",
                    f.path.display()
                )));
            };
            if acct.destinations() > 1 {
                return Err(config(format!(
                    "{}: account {name}: give only one of maildir, mbox, mda, stdout",
                    f.path.display()
                )));
            }
            let base = f.settings.defaults.clone().overlay(acct.clone());
            layers.push((name, base, Some(f)));
        }
        if f.settings.defaults.destinations() > 1 {
            return Err(config(format!(
                "{}: [defaults]: give only one of maildir, mbox, mda, stdout",
                f.path.display()
            )));
        }
    }

    let mut accounts = Vec::with_capacity(layers.len());
    for (name, base, file) in layers {
        let has_password = base.password.is_some();
        if has_password
            && let Some(f) = file
            && !f.private
        {
            return Err(config(format!(
                "{} holds a password but others can read it or it is not yours; \
                 run: chmod 600 {}",
                f.path.display(),
                f.path.display()
            )));
        }
        let merged = base.overlay(cli_layer.clone());
        let acct = build(name, merged).map_err(|e| match file {
            Some(f) if e.kind == Kind::Config && !one_shot => {
                Error::new(Kind::Config, format!("{}: {}", f.path.display(), e.msg))
            }
            _ => e,
        })?;
        let mut acct = acct;
        acct.check = cli.check;
        acct.dry_run = cli.dry_run;
        acct.show_cert = cli.show_cert;
        if cli.json && acct.dest == Destination::Stdout {
            return Err(usage(
                "--json and --stdout both want stdout; use one of them (see the JSON events' \
                 destination field for where messages went)",
            ));
        }
        accounts.push(acct);
    }
    Ok((accounts, output))
}

fn build(name: String, s: Settings) -> Result<Account> {
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
    let dest = if let Some(p) = s.mbox {
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
            Some(crate::cli::parse_size(&t).map_err(|e| cfg(format!("max_size: {e}")))?)
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
    let timeout = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(usage("the timeout must be at least 1 second"));
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
        auth: s.auth.unwrap_or(AuthMethod::Auto),
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
        check: false,
        dry_run: false,
        fingerprint: s
            .fingerprint
            .as_deref()
            .map(crate::net::parse_fingerprint)
            .transpose()
            .map_err(|e| cfg(format!("fingerprint: {e}")))?,
        show_cert: false,
        delete_after,
    })
}

/// Expand a leading `~` and `$VAR` / `${VAR}` in a path, and make it
/// absolute. An unset variable is an error (a silent empty string would
/// deliver mail somewhere unexpected).
pub fn expand_path(raw: &str) -> Result<PathBuf> {
    let mut out = String::with_capacity(raw.len());
    let rest = if raw == "~" || raw.starts_with("~/") {
        let home = dirs::home_dir()
            .ok_or_else(|| config(format!("cannot expand ~ in {raw:?}: no home directory")))?;
        out.push_str(&home.to_string_lossy());
        &raw[1..]
    } else {
        raw
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let tail = &rest[i + 1..];
        let (name, used) = if let Some(inner) = tail.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| config(format!("unclosed ${{ in {raw:?}")))?;
            (&inner[..end], end + 2)
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = std::env::var(name)
            .map_err(|_| config(format!("{raw:?} uses ${name}, which is not set")))?;
        out.push_str(&value);
        for _ in 0..used {
            chars.next();
        }
    }
    if out.is_empty() {
        return Err(config("an empty path"));
    }
    std::path::absolute(&out).map_err(|e| config(format!("bad path {out:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn parse(args: &[&str]) -> Result<Vec<Account>> {
        let mut argv = vec!["fetch"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        resolve(&cli).map(|(a, _)| a)
    }

    #[test]
    fn json_and_stdout_conflict() {
        let e = one(&["--pop3", "h", "-u", "u", "--stdout", "--json"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
    }

    fn one(args: &[&str]) -> Result<Account> {
        parse(args).map(|mut a| a.remove(0))
    }

    /// A config file in a temp dir, mode 0600 unless `mode` says otherwise.
    fn file(text: &str, mode: u32) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let s = p.to_string_lossy().into_owned();
        (dir, s)
    }

    #[test]
    fn defaults_follow_tls_mode() {
        let a = one(&["--pop3", "h", "-u", "u", "--maildir", "/m"]).unwrap();
        assert_eq!((a.port, a.tls), (995, TlsMode::Implicit));
        let a = one(&[
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
        let a = one(&[
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
        assert_eq!(a.dest, Destination::Maildir("/m".into()));
        assert!(a.deletes());
    }

    #[test]
    fn relative_maildir_becomes_absolute() {
        let a = one(&["--pop3", "h", "-u", "u", "--maildir", "rel/Mail"]).unwrap();
        let Destination::Maildir(p) = a.dest else {
            panic!()
        };
        assert!(p.is_absolute());
    }

    #[test]
    fn config_accounts_in_file_order_and_cli_overrides() {
        let (_d, p) = file(
            r#"
[defaults]
maildir = "/var/mail/default"
keep = true

[accounts.zeta]
host = "z.example"
user = "zed"

[accounts.alpha]
host = "a.example"
user = "al"
mbox = "/var/mail/al"
keep = false
"#,
            0o644,
        );
        let all = parse(&["--config", &p]).unwrap();
        assert_eq!(
            all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["zeta", "alpha"]
        );
        assert!(all[0].keep && !all[1].keep);
        assert_eq!(
            all[0].dest,
            Destination::Maildir("/var/mail/default".into())
        );
        assert_eq!(all[1].dest, Destination::Mbox("/var/mail/al".into()));

        let only = parse(&[
            "--config",
            &p,
            "alpha",
            "--maildir",
            "/tmp/M",
            "--keep",
            "--port",
            "1995",
        ])
        .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].dest, Destination::Maildir("/tmp/M".into()));
        assert!(only[0].keep);
        assert_eq!(only[0].port, 1995);
        let no_keep = parse(&["--config", &p, "zeta", "--no-keep"]).unwrap();
        assert!(!no_keep[0].keep);
    }

    #[test]
    fn unknown_account_key_and_wrong_type_name_the_file_and_line() {
        let (_d, p) = file("[accounts.a]\nhost = \"h\"\nmailfir = \"/x\"\n", 0o600);
        let e = parse(&["--config", &p]).unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert!(e.msg.contains(&format!("{p}:3")), "{}", e.msg);
        assert!(e.msg.contains("mailfir"), "{}", e.msg);

        let (_d, p) = file("[accounts.a]\nhost = \"h\"\nport = \"pop\"\n", 0o600);
        let e = parse(&["--config", &p]).unwrap_err();
        assert!(e.msg.contains(&format!("{p}:3")), "{}", e.msg);

        let (_d, p) = file("[accounts.a]\nhost = \"h\"\n", 0o600);
        let e = parse(&["--config", &p, "b"]).unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert!(e.msg.contains("no account named \"b\""), "{}", e.msg);

        let (_d, p) = file(
            "[accounts.a]\nhost = \"h\"\nmaildir = \"/m\"\nmbox = \"/b\"\n",
            0o600,
        );
        assert_eq!(parse(&["--config", &p]).unwrap_err().kind, Kind::Config);
    }

    #[test]
    fn password_needs_a_private_file() {
        let text = "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"pw\"\n";
        let (_d, p) = file(text, 0o644);
        let e = parse(&["--config", &p]).unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert!(e.msg.contains(&format!("chmod 600 {p}")), "{}", e.msg);
        let (_d, p) = file(text, 0o600);
        let a = parse(&["--config", &p]).unwrap();
        assert_eq!(a[0].config_password.as_ref().unwrap().expose(), "pw");
        assert!(!format!("{:?}", a[0]).contains("\"pw\""));
    }

    #[test]
    fn destinations_conflict_and_stdout_deletes_only_when_asked() {
        let a = one(&["--pop3", "h", "-u", "u", "--stdout"]).unwrap();
        assert_eq!(a.dest, Destination::Stdout);
        assert!(!a.deletes());
        let a = one(&[
            "--pop3",
            "h",
            "-u",
            "u",
            "--stdout",
            "--delete-after-stdout",
        ])
        .unwrap();
        assert!(a.deletes());
        let e = one(&[
            "--pop3",
            "h",
            "-u",
            "u",
            "--maildir",
            "/m",
            "--delete-after-stdout",
        ])
        .unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        // Two destinations on the command line: clap refuses (exit 64 in main).
        let mut argv = vec!["fetch", "--pop3", "h", "--maildir", "/m", "--mbox", "/b"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv.truncate(3);
        argv.extend(["--mda", "procmail", "--stdout"]);
        assert!(Cli::try_parse_from(&argv).is_err());
    }

    #[test]
    fn imap_defaults_and_pop3_refuses_imap_options() {
        let a = one(&["--imap", "h", "-u", "u", "--maildir", "/m"]).unwrap();
        assert_eq!((a.protocol, a.port), (Protocol::Imap, 993));
        assert_eq!(a.ledger_id(), "imap:u@h");
        assert!(!a.deletes(), "IMAP keeps mail by default");
        let a = one(&[
            "--imap", "h", "-u", "u", "--tls", "starttls", "--delete", "--folder", "A", "--folder",
            "B/C",
        ])
        .unwrap();
        assert_eq!(a.port, 143);
        assert!(a.deletes());
        assert_eq!(a.imap.folders, ["A", "B/C"]);
        let e = one(&["--pop3", "h", "-u", "u", "--folder", "X"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        let e = one(&["--imap", "h", "-u", "u", "--search", "ALL\r\nA1 LOGOUT"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
    }

    #[test]
    fn one_shot_and_names_together_is_usage() {
        let e = parse(&["--pop3", "h", "work"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
    }

    #[test]
    fn paths_expand_home_and_variables() {
        let home = dirs::home_dir().unwrap();
        assert_eq!(expand_path("~/Mail").unwrap(), home.join("Mail"));
        // SAFETY: tests in this module do not read FETCH_TEST_VAR concurrently.
        unsafe { std::env::set_var("FETCH_TEST_VAR", "/srv/mail") };
        assert_eq!(
            expand_path("$FETCH_TEST_VAR/x").unwrap(),
            PathBuf::from("/srv/mail/x")
        );
        assert_eq!(
            expand_path("${FETCH_TEST_VAR}y").unwrap(),
            PathBuf::from("/srv/maily")
        );
        assert_eq!(expand_path("/a$/b").unwrap(), PathBuf::from("/a$/b"));
        assert!(expand_path("$FETCH_TEST_UNSET_VAR/x").is_err());
        assert!(expand_path("${FETCH_TEST_VAR").is_err());
    }
}
