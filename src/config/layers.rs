//! The layers of settings before they are resolved: the config file's
//! `[defaults]` and `[accounts.NAME]` tables and the command line, each a
//! [`Settings`] in which every command-line setting has a key; and reading
//! the config file.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::cli::Cli;
use crate::error::{Result, config};
use crate::types::{AuthMethod, Protocol, TlsMode};

/// One layer of settings: the config file's `[defaults]`, an account, or
/// the command line. Every command-line setting has a key here.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    pub(super) protocol: Option<Protocol>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) user: Option<String>,
    pub(super) tls: Option<TlsMode>,
    pub(super) cafile: Option<String>,
    pub(super) allow_plaintext_auth: Option<bool>,
    pub(super) auth: Option<AuthMethod>,
    pub(super) password_command: Option<String>,
    pub(super) password: Option<String>,
    pub(super) keep: Option<bool>,
    pub(super) all: Option<bool>,
    pub(super) maildir: Option<String>,
    pub(super) mbox: Option<String>,
    pub(super) mda: Option<String>,
    pub(super) stdout: Option<bool>,
    pub(super) delete_after_stdout: Option<bool>,
    pub(super) timeout: Option<u64>,
    pub(super) folders: Option<Vec<String>>,
    pub(super) all_folders: Option<bool>,
    pub(super) delete: Option<bool>,
    pub(super) move_to: Option<String>,
    pub(super) search: Option<String>,
    pub(super) sync_deletes: Option<bool>,
    pub(super) resync: Option<bool>,
    pub(super) limit: Option<usize>,
    pub(super) max_size: Option<SizeSetting>,
    pub(super) fingerprint: Option<String>,
    pub(super) delete_after: Option<u64>,
    pub(super) lmtp: Option<String>,
    pub(super) smtp: Option<String>,
    pub(super) deliver_to: Option<String>,
    pub(super) allow_plaintext_smtp: Option<bool>,
    pub(super) retry_rejected: Option<bool>,
    pub(super) max_connections: Option<usize>,
    // Config-file only: a provider preset and the account's OAuth client
    // (`provider.rs`).
    pub(super) provider: Option<String>,
    pub(super) oauth2_client_id: Option<String>,
    pub(super) oauth2_client_secret: Option<String>,
    pub(super) oauth2_scope: Option<String>,
    pub(super) oauth2_token_url: Option<String>,
    pub(super) oauth2_authorize_url: Option<String>,
    pub(super) oauth2_device_url: Option<String>,
    pub(super) oauth2_authorize_params: Option<Vec<String>>,
}

/// A size in the config file: a number of bytes, or text like "10M".
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub(super) enum SizeSetting {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    #[serde(default)]
    pub(super) defaults: Settings,
    #[serde(default)]
    pub(super) accounts: IndexMap<String, Settings>,
}

impl Settings {
    pub(super) fn destinations(&self) -> usize {
        [
            self.maildir.is_some(),
            self.mbox.is_some(),
            self.mda.is_some(),
            self.stdout == Some(true),
            self.lmtp.is_some(),
            self.smtp.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count()
    }

    /// `over` on top of `self`: each key set in `over` wins; a destination
    /// in `over` replaces any destination in `self`. Done on the TOML form of
    /// the two layers (unset keys are absent there), so a new key can never
    /// be forgotten here.
    pub(super) fn overlay(self, over: Settings) -> Settings {
        let table = |s: &Settings| match toml::Value::try_from(s) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Settings serialises to a table"),
        };
        let mut base = table(&self);
        if over.destinations() > 0 {
            for k in ["maildir", "mbox", "mda", "stdout", "lmtp", "smtp"] {
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

    pub(super) fn from_cli(cli: &Cli) -> Settings {
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
            lmtp: cli.lmtp.clone(),
            smtp: cli.smtp.clone(),
            deliver_to: cli.deliver_to.clone(),
            allow_plaintext_smtp: cli.allow_plaintext_smtp.then_some(true),
            retry_rejected: cli.retry_rejected.then_some(true),
            max_connections: cli.max_connections,
            ..Default::default()
        }
    }
}

/// The config file to read: `--config`, else the default location.
pub(super) fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config
        .clone()
        .or_else(|| dirs::config_dir().map(|d| d.join("fetch").join("config.toml")))
}

/// A parsed config file and where it came from.
pub(super) struct LoadedFile {
    pub(super) path: PathBuf,
    pub(super) settings: FileSettings,
    /// Whether the file may hold a password (private to the user).
    pub(super) private: bool,
}

pub(super) fn load_file(path: &Path, required: bool) -> Result<Option<LoadedFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(config(format!("cannot read {}", path.display())).because(e)),
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
pub(super) fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => m.mode() & 0o077 == 0 && m.uid() == crate::platform::uid(),
        Err(_) => false,
    }
}
