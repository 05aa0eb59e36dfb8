//! Resolution of raw settings into a [`Plan`]: the accounts, each an
//! [`Account`] where every choice is already made and typed, and how the
//! run goes (mode, jobs, daemon). No network, no state; nothing downstream
//! sees the command line or re-parses a string.
//!
//! Layers, lowest first: built-in defaults, the config file's `[defaults]`,
//! its `[accounts.NAME]`, then the command line. A layer that names a
//! destination (maildir, mbox, mda, stdout, lmtp, smtp) replaces the destination of the
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

mod account;
mod layers;
mod paths;
mod provider;
mod shard;

use std::time::Duration;

use account::build;
pub use account::{Account, ImapOptions};
use layers::{LoadedFile, Settings, config_path, load_file};
pub use paths::expand_path;
pub use shard::{Shard, shard_of};

use crate::cli::Cli;
use crate::error::{Kind, Result, config, usage};
use crate::types::Destination;

pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Connections at once to one server: below the usual per-address limits
/// (Dovecot's mail_max_userip_connections is 10, Gmail allows 15 IMAP
/// connections per account), so that a large --jobs is not locked out.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8;
/// `--idle` without `--daemon`: how often POP3 accounts (and IMAP folders
/// not watched) are polled.
const DEFAULT_POLL_SECS: u64 = 300;

/// Everything a run needs, resolved.
#[derive(Debug)]
pub struct Plan {
    pub accounts: Vec<Account>,
    pub output: Output,
    pub mode: Mode,
    /// Up to this many accounts at once.
    pub jobs: usize,
    /// Keep running (`--daemon`, `--idle`).
    pub daemon: Option<Daemon>,
    /// `--shard`: the shard, and how many accounts were chosen before it
    /// kept its own.
    pub shard: Option<(Shard, usize)>,
}

/// What a run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fetch,
    /// `--check`: count new messages, change nothing.
    Check,
    /// `--dry-run`: say what a run would do, change nothing.
    DryRun,
    /// `--show-cert`: print the server's certificate and capabilities,
    /// send no credential.
    ShowCert,
    /// `--login`: authorize the account's OAuth client, fetch nothing.
    Login,
}

/// `--daemon` and `--idle`.
#[derive(Debug, Clone, Copy)]
pub struct Daemon {
    /// Every account is fetched this often.
    pub interval: Duration,
    /// IMAP accounts are also fetched as soon as a watched folder has news.
    pub idle: bool,
}

/// Human-facing output settings.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub quiet: bool,
    pub verbose: u8,
    /// `--json`: newline-delimited events on stdout.
    pub json: bool,
}

/// Resolve the command line (and the config file) into the plan of the
/// run: nothing after this sees the command line.
pub fn resolve(cli: &Cli) -> Result<Plan> {
    let output = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        json: cli.json,
    };
    if cli.jobs == 0 || cli.daemon == Some(0) {
        return Err(usage("--jobs and --daemon need a number above 0"));
    }
    let mode = if cli.check {
        Mode::Check
    } else if cli.dry_run {
        Mode::DryRun
    } else if cli.show_cert {
        Mode::ShowCert
    } else if cli.login {
        Mode::Login
    } else {
        Mode::Fetch
    };
    let daemon = (cli.daemon.is_some() || cli.idle).then(|| Daemon {
        interval: Duration::from_secs(cli.daemon.unwrap_or(DEFAULT_POLL_SECS)),
        idle: cli.idle,
    });
    let shard = cli.shard.as_deref().map(Shard::parse).transpose()?;
    let cli_layer = Settings::from_cli(cli);
    let path = config_path(cli);
    let one_shot = cli.pop3.is_some() || cli.imap.is_some();
    if one_shot && !cli.accounts.is_empty() {
        return Err(usage(
            "give either --pop3/--imap HOST or account names from the config file, not both",
        ));
    }
    if one_shot && shard.is_some() {
        return Err(usage(
            "--shard splits the accounts of a config file; it does not go with --pop3/--imap",
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
                    "{}: account {name}: give only one of maildir, mbox, mda, stdout, lmtp, smtp",
                    f.path.display()
                )));
            }
            let base = f.settings.defaults.clone().overlay(acct.clone());
            layers.push((name, base, Some(f)));
        }
        if f.settings.defaults.destinations() > 1 {
            return Err(config(format!(
                "{}: [defaults]: give only one of maildir, mbox, mda, stdout, lmtp, smtp",
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
        let acct = build(name, merged, mode).map_err(|e| match file {
            Some(f) if e.kind == Kind::Config && !one_shot => {
                e.context(f.path.display().to_string())
            }
            _ => e,
        })?;
        if cli.json && acct.dest == Destination::Stdout {
            return Err(usage(
                "--json and --stdout both want stdout; use one of them (see the JSON events' \
                 destination field for where messages went)",
            ));
        }
        accounts.push(acct);
    }
    // After every account is built: a mistake in the config file stops
    // every shard alike, not only the one that holds the account.
    let shard = shard.map(|s| (s, shard::select(&mut accounts, s)));
    Ok(Plan {
        accounts,
        output,
        mode,
        jobs: cli.jobs,
        daemon,
        shard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Protocol, TlsMode};
    use clap::Parser;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn parse(args: &[&str]) -> Result<Vec<Account>> {
        let mut argv = vec!["fetch"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        resolve(&cli).map(|p| p.accounts)
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
        assert!(e.message().contains(&format!("{p}:3")), "{}", e.message());
        assert!(e.message().contains("mailfir"), "{}", e.message());

        let (_d, p) = file("[accounts.a]\nhost = \"h\"\nport = \"pop\"\n", 0o600);
        let e = parse(&["--config", &p]).unwrap_err();
        assert!(e.message().contains(&format!("{p}:3")), "{}", e.message());

        let (_d, p) = file("[accounts.a]\nhost = \"h\"\n", 0o600);
        let e = parse(&["--config", &p, "b"]).unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert!(
            e.message().contains("no account named \"b\""),
            "{}",
            e.message()
        );

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
        assert!(
            e.message().contains(&format!("chmod 600 {p}")),
            "{}",
            e.message()
        );
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
