//! The command line, as one clap-derive definition. Doc comments here are
//! the `--help` text and the man page. Values stay raw here;
//! `config/` turns them into resolved settings.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use crate::types::{AuthMethod, TlsMode};

/// Fetch mail from POP3 and IMAP servers, durably
///
/// fetch downloads mail into a Maildir, an mbox, an MDA or stdout, and keeps
/// IMAP flags in step with a Maildir both ways. A message is deleted from
/// the server only after it is delivered and recorded. Into a Maildir or an
/// mbox, delivered means on disk: whatever stops a run (kill -9, a power
/// loss, a full disk, a dropped connection), no message is lost and none is
/// delivered twice. Through an MDA, delivered means it exited 0: it gets a
/// message again if it exited otherwise after delivering, or if fetch was
/// killed before recording its exit. Mail written to stdout stays on the
/// server unless --delete-after-stdout. DESTINATIONS in the man page says
/// more.
///
/// Without --pop3, fetch runs the accounts of the config file
/// ($XDG_CONFIG_HOME/fetch/config.toml): all of them, or the ACCOUNTs named.
/// Options given on the command line override the file for this run.
#[derive(Debug, Parser)]
#[command(
    name = "fetch",
    version,
    after_help = crate::error::exit_help(),
    args_override_self = true
)]
pub struct Cli {
    /// Accounts from the config file to fetch [default: all of them].
    #[arg(value_name = "ACCOUNT")]
    pub accounts: Vec<String>,

    /// Read this config file instead of $XDG_CONFIG_HOME/fetch/config.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Fetch from this POP3 server (a one-shot account; no config file needed).
    #[arg(long, value_name = "HOST", conflicts_with = "imap")]
    pub pop3: Option<String>,

    /// Fetch from this IMAP server (a one-shot account): new mail of the
    /// chosen folders, keeping flags in step both ways with a Maildir.
    #[arg(long, value_name = "HOST")]
    pub imap: Option<String>,

    /// IMAP: a folder to fetch; repeat for several [default: INBOX].
    #[arg(long = "folder", value_name = "NAME")]
    pub folders: Vec<String>,

    /// IMAP: fetch every folder the server lists.
    #[arg(long)]
    pub all_folders: bool,

    /// IMAP: delete fetched messages on the server (\Deleted, then UID
    /// EXPUNGE of exactly those) once their local copies are committed.
    #[arg(long, conflicts_with = "move_to")]
    pub delete: bool,

    /// IMAP: move fetched messages to this server folder once their local
    /// copies are committed.
    #[arg(long, value_name = "FOLDER")]
    pub move_to: Option<String>,

    /// IMAP: fetch only messages matching these IMAP SEARCH criteria, e.g.
    /// "UNSEEN" or "FROM alice SINCE 1-Nov-2026".
    #[arg(long, value_name = "CRITERIA")]
    pub search: Option<String>,

    /// IMAP: propagate deletions both ways: a message expunged on the server
    /// is removed locally, a file removed locally is expunged on the server.
    #[arg(long)]
    pub sync_deletes: bool,

    /// IMAP: accept a folder whose UIDVALIDITY changed and fetch it again,
    /// without duplicating messages already here.
    #[arg(long)]
    pub resync: bool,

    /// Server port [default: POP3 995, or 110 with STLS or no TLS; IMAP 993,
    /// or 143].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Login name [default: $USER].
    #[arg(short, long, value_name = "NAME")]
    pub user: Option<String>,

    /// How to protect the connection: TLS from the first byte, a mandatory
    /// STLS upgrade, or none (then a password is only sent with
    /// --allow-plaintext-auth).
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,

    /// Allow sending the password over a connection without TLS.
    #[arg(long)]
    pub allow_plaintext_auth: bool,

    /// Login method: auto (SASL PLAIN when offered, else USER/PASS), or force
    /// one. APOP is only used when asked for.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub auth: Option<AuthMethod>,

    /// Shell command that prints the password (with --auth xoauth2 or
    /// oauthbearer, the access token: oama, mutt_oauth2.py); the first line
    /// of its output is used. Without it, fetch asks on the terminal.
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,

    /// Also trust the certificate authorities in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub cafile: Option<PathBuf>,

    /// Leave messages on the server; later runs fetch only messages not
    /// fetched before (tracked by UIDL).
    #[arg(short, long, overrides_with = "no_keep")]
    pub keep: bool,

    /// Delete fetched messages from the server even if the config file says
    /// keep = true.
    #[arg(long, overrides_with = "keep")]
    pub no_keep: bool,

    /// Fetch all messages, including those fetched before.
    #[arg(short, long)]
    pub all: bool,

    /// Deliver into this Maildir (created if missing) [default: ~/Maildir].
    #[arg(long, value_name = "DIR", group = "destination")]
    pub maildir: Option<String>,

    /// Append to this mbox file (mboxrd format), locked with a dotlock and fcntl.
    #[arg(long, value_name = "FILE", group = "destination")]
    pub mbox: Option<String>,

    /// Hand each message to this command on its stdin (e.g. "procmail -d %T");
    /// exit status 0 means delivered. %F is the envelope sender, %T the user.
    #[arg(long, value_name = "CMD", group = "destination")]
    pub mda: Option<String>,

    /// Write messages to stdout as an mboxrd stream, for pipes. Mail is then
    /// left on the server (a pipe cannot prove it was kept), unless
    /// --delete-after-stdout is also given.
    #[arg(long, group = "destination")]
    pub stdout: bool,

    /// With --stdout: delete from the server what was written to stdout,
    /// trusting the reader of the pipe to have kept it.
    #[arg(long)]
    pub delete_after_stdout: bool,

    /// Hand each message to this LMTP server (RFC 2033): a unix socket path
    /// (Dovecot's is /var/run/dovecot/lmtp) or HOST:PORT. Delivered means
    /// the server accepted it for the recipient (see --deliver-to).
    #[arg(long, value_name = "TARGET", group = "destination")]
    pub lmtp: Option<String>,

    /// Hand each message to this SMTP server (HOST or HOST:PORT, port 25 by
    /// default), as fetchmail does. Delivered means the server answered 250
    /// to the end of the message. A remote server must offer STARTTLS
    /// unless --allow-plaintext-smtp.
    #[arg(long, value_name = "HOST[:PORT]", group = "destination")]
    pub smtp: Option<String>,

    /// With --lmtp or --smtp: the recipient's address [default: the local
    /// user name, as fetchmail does].
    #[arg(long, value_name = "ADDR")]
    pub deliver_to: Option<String>,

    /// With --lmtp or --smtp to a remote host: hand mail over even when the
    /// server does not offer STARTTLS.
    #[arg(long)]
    pub allow_plaintext_smtp: bool,

    /// Offer again the messages an LMTP or SMTP server rejected (5xx) in an
    /// earlier run; without it (or --all) they stay on the server, untouched.
    #[arg(long)]
    pub retry_rejected: bool,

    /// Timeout in seconds [default: 60]: for connecting, for each reply (a
    /// server must keep making progress within it), and the longest wait for
    /// another program's lock on an mbox.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Print nothing but errors. The last of -q and -v given wins.
    #[arg(short, long, overrides_with = "verbose")]
    pub quiet: bool,

    /// Say more: -v a summary and a line per message, -vv also the protocol
    /// exchange (passwords redacted).
    #[arg(short, long, action = ArgAction::Count, overrides_with = "quiet")]
    pub verbose: u8,

    /// Write newline-delimited JSON events on stdout (one per message, one
    /// per account, one per error; see JSON OUTPUT in the man page).
    #[arg(long)]
    pub json: bool,

    /// Only count new messages, downloading nothing and changing nothing;
    /// print the count per account. Exit status 0 if there is new mail,
    /// 1 if there is none.
    #[arg(short = 'c', long, conflicts_with = "dry_run")]
    pub check: bool,

    /// Connect and say, one line per message on stdout, what a run would
    /// fetch, delete, move and which flags it would sync, changing nothing
    /// (on the server, in the destination, or in the ledger).
    #[arg(short = 'n', long, conflicts_with = "show_cert")]
    pub dry_run: bool,

    /// Fetch at most this many messages per account in this run.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Leave messages larger than this on the server (and say so); K, M and
    /// G suffixes are powers of 1024.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// POP3 with --keep: delete server copies first fetched more than DAYS
    /// days ago.
    #[arg(long, value_name = "DAYS")]
    pub delete_after: Option<u64>,

    /// Trust the server's certificate only if its SHA-256 fingerprint is
    /// this (64 hex digits, colons allowed); replaces the CA check. See
    /// --show-cert.
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Connect, print the server's TLS version, certificate (subject,
    /// issuer, validity, names, SHA-256 fingerprint, whether it is trusted)
    /// and capabilities, and exit; no credential is sent.
    #[arg(long)]
    pub show_cert: bool,

    /// Authorize the accounts that have an OAuth client (oauth2_client_id,
    /// or a provider preset): print the URL to open in a browser (and, with
    /// a device endpoint, the code to enter there), wait for the grant, and
    /// keep the refresh token in the account's state directory (mode 0600).
    /// Later runs refresh the access token by themselves.
    #[arg(long, conflicts_with_all = ["check", "dry_run", "show_cert", "daemon", "idle"])]
    pub login: bool,

    /// Keep running: fetch every account every SECONDS until SIGTERM or
    /// SIGINT (which let the message in flight be committed, end the session
    /// properly, and exit 0). An account that fails is retried later and
    /// later (doubling, at most hourly); it never holds up the others.
    #[arg(
        short = 'd',
        long,
        value_name = "SECONDS",
        conflicts_with_all = ["check", "dry_run", "show_cert"]
    )]
    pub daemon: Option<u64>,

    /// With --daemon (or alone, polling every 300 seconds): also fetch an
    /// IMAP account as soon as one of its folders has new mail, watching up
    /// to 8 folders per account with IDLE. POP3 accounts are polled.
    #[arg(long, conflicts_with_all = ["check", "dry_run", "show_cert"])]
    pub idle: bool,

    /// Fetch up to N accounts at the same time (each keeps its own lock).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,

    /// Run only shard K of N (numbered from 0) of the accounts chosen
    /// (all of the config file's, or the ACCOUNTs named), so that N
    /// machines can split one config file: each runs the same file with its
    /// own K. An account's shard is fixed by its protocol, user and server
    /// (what names its state directory), not by its name or place in the
    /// file; adding an account moves no other. A shard may hold no account
    /// (then nothing is done, and -v says so). See MANY ACCOUNTS in the man
    /// page.
    #[arg(
        long,
        value_name = "K/N",
        env = "FETCH_SHARD",
        conflicts_with_all = ["pop3", "imap", "import_uidls"]
    )]
    pub shard: Option<String>,

    /// Print the accounts chosen (after --shard), one a line on stdout: the
    /// name, a tab, and the account's state directory (ledger, lock, OAuth
    /// tokens); then exit. Nothing is contacted and nothing is created: it
    /// says which directories to move when resharding.
    #[arg(
        long,
        conflicts_with_all = ["pop3", "imap", "check", "dry_run", "show_cert", "login", "daemon", "idle", "json", "import_uidls"]
    )]
    pub list_accounts: bool,

    /// Open at most N connections at a time to one server [default: 8]:
    /// across all accounts, --jobs and --idle watchers. A server is a
    /// protocol, host name (as written, not its addresses) and port.
    /// A job passes over a full server's accounts to another server's, and
    /// waits only when none has a connection free; watchers never take the
    /// last one.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Print a fetch config file equivalent to a fetchmail run control
    /// file [default: ~/.fetchmailrc] on stdout, and exit. What has no
    /// equivalent here is said in comments; a password is never copied
    /// (a comment suggests a password_command instead). A syntax error is
    /// exit status 65, with the file and line.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        conflicts_with_all = ["pop3", "imap", "accounts", "import_uidls", "check", "dry_run", "show_cert", "daemon", "idle", "json"]
    )]
    pub import_fetchmailrc: Option<Option<PathBuf>>,

    /// Record in the ACCOUNT's ledger the POP3 messages that fetchmail (its
    /// .fetchids) or mpop (its UIDL file) fetched and left on the server,
    /// so that fetch does not fetch them again; then exit. Entries for
    /// other servers or users are left alone; a second import adds
    /// nothing. The account is one from the config file, or --pop3 HOST -u
    /// USER.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["check", "dry_run", "show_cert", "daemon", "idle", "json"]
    )]
    pub import_uidls: Option<PathBuf>,

    /// Print the man page or a shell completion script and exit (used to
    /// produce man/ and completions/).
    #[arg(long, value_enum, value_name = "KIND", hide = true)]
    pub generate: Option<Generated>,
}

/// `10M` -> 10485760: a size with an optional K, M or G (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a size (like 500K, 10M or 1G)"))
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500"), Ok(500));
        assert_eq!(parse_size("10k"), Ok(10240));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_flag_takes_a_password() {
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                !id.contains("password") || id == "password_command",
                "argument {id} would put a password on argv"
            );
        }
    }
}
