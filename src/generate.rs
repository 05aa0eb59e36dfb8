//! The man page and shell completions, generated from the one CLI
//! definition (`cli.rs`) by the hidden `fetch --generate KIND`. The files in
//! `man/` and `completions/` are its output, committed; `scripts/regenerate`
//! rewrites them and `tests/generated.rs` fails when they are stale.
//!
//! The man page is clap_mangen's NAME, SYNOPSIS, DESCRIPTION and OPTIONS
//! (from the doc comments in `cli.rs`) plus the hand-written sections here.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{Cli, Generated};

pub fn generate(kind: Generated, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    let shell = match kind {
        Generated::Man => return man(out),
        Generated::Bash => clap_complete::Shell::Bash,
        Generated::Zsh => clap_complete::Shell::Zsh,
        Generated::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "fetch", out);
    Ok(())
}

fn man(out: &mut dyn Write) -> io::Result<()> {
    let cmd = Cli::command();
    // No date: the page must be the same bytes on every build.
    let m = clap_mangen::Man::new(cmd)
        .manual("User Commands")
        .source(format!("fetch {}", env!("CARGO_PKG_VERSION")));
    m.render_title(out)?;
    m.render_name_section(out)?;
    m.render_synopsis_section(out)?;
    m.render_description_section(out)?;
    m.render_options_section(out)?;
    for (title, body) in SECTIONS {
        writeln!(out, ".SH {title}")?;
        render_body(body, out)?;
    }
    Ok(())
}

/// Hand-written sections. Paragraphs are separated by blank lines; a
/// paragraph whose lines start with two spaces is shown as typed (.nf).
const SECTIONS: &[(&str, &str)] = &[
    (
        "CONFIGURATION",
        "\
The config file is TOML, at $XDG_CONFIG_HOME/fetch/config.toml (usually ~/.config/fetch/config.toml) or the file given with --config. A [defaults] table applies to every account; each [accounts.NAME] table is one account. Without --pop3, fetch runs every account in file order, or only the NAMEs given. Options on the command line override the file for that run.

Keys (each means what the option of the same name means): protocol (\"pop3\" or \"imap\"), host, port, user, tls (\"implicit\", \"starttls\", \"none\"), cafile, allow_plaintext_auth, auth (\"auto\", \"plain\", \"user\", \"apop\"), password_command, password, keep, all, timeout, and one destination: maildir, mbox, mda or stdout (with delete_after_stdout). Also: fingerprint, limit, max_size (a number or text like \\(dq10M\\(dq), delete_after (POP3 with keep). IMAP accounts also take folders (a list), all_folders, delete, move_to, search, sync_deletes and resync. A destination in an account replaces the one in [defaults]. ~ and $VARIABLES expand in paths.

An unknown key, a value of the wrong type or an unknown account name is an error (exit 78) that names the file and line. A password key is refused unless the file is mode 0600 (or stricter) and owned by the user.

  [defaults]
  maildir = \"~/Maildir\"

  [accounts.work]
  host = \"pop.example.org\"
  user = \"alice\"
  password_command = \"pass show mail/work\"
  keep = true

  [accounts.home]
  host = \"mail.example.net\"
  user = \"alice\"
  mbox = \"~/mail/home.mbox\"",
    ),
    (
        "IMAP",
        "\
fetch \\-\\-imap HOST fetches the new mail of the chosen folders (INBOX by default; \\-\\-folder, repeatable, or \\-\\-all\\-folders) and leaves it on the server. Only UIDs above the last one fetched are looked at, so a run with nothing new costs a handful of commands whatever the size of the mailbox. Bodies are fetched with BODY.PEEK[] (reading does not mark mail as seen), many per command and several commands at once, each streamed to disk as it arrives, so memory stays bounded whatever the message size.

With a Maildir, INBOX is the Maildir itself and other folders are Maildir++ subfolders (Lists/rust becomes .Lists.rust; names are decoded from modified UTF\\-7 and escaped so that no server name can leave the Maildir). Flags are kept in step both ways: \\\\Seen, \\\\Answered, \\\\Flagged, \\\\Deleted and \\\\Draft are the letters S, R, F, T and D of the file names; a change on either side since the last run is carried to the other, and when both sides changed a flag, setting it wins. Keywords stay on the server and in the state file, never in file names. New mail that is already flagged goes to cur/. With an mbox, messages get Status: and X\\-Status: headers from their flags.

A message expunged on the server stays in the Maildir, and a file removed locally stays on the server, unless \\-\\-sync\\-deletes. \\-\\-delete and \\-\\-move\\-to change the server only for messages already delivered, and only ever expunge those (UID EXPUNGE). If a folder's UIDVALIDITY changes, fetch stops that folder (exit 65) and changes nothing; \\-\\-resync then fetches it again and recognises, by content, what the Maildir already holds.",
    ),
    (
        "PASSWORDS",
        "\
fetch never takes a password on the command line. It tries, in order: password_command (run with sh \\-c; the first line of its output is the password), ~/.netrc or the file in $NETRC (machine HOST login USER password PASSWORD; the file must be mode 0600), the password key of the config file, and last a prompt on the terminal without echo. With no terminal and no other source it exits 78 at once.",
    ),
    (
        "DESTINATIONS",
        "\
Maildir (the default, ~/Maildir): each message is written to tmp/, made durable, renamed into new/, and recorded before the server is told anything.

mbox: mboxrd format. Messages are appended under a dotlock (FILE.lock) and an fcntl lock, the order mutt, procmail and Dovecot use, waiting at most the timeout. A failed append is truncated away; an append cut short by a crash is repaired by the next run.

MDA: the command runs once per message with the message on its standard input; %F is the envelope sender and %T the user. It runs without a shell unless it contains shell syntax. Exit status 0 means delivered; any other status leaves the message on the server and the run exits 74.

stdout: an mboxrd stream for pipes. Because a pipe cannot prove that mail was kept, server copies are only deleted with --delete-after-stdout. When the reader closes the pipe, fetch stops without changing the server and exits 0.",
    ),
    (
        "JSON OUTPUT",
        "\
With \\-\\-json, fetch writes one JSON object per line on standard output, a stable interface for scripts (messages for humans still go to standard error). Fields may be added in later versions; none is removed or changes meaning. Every event has a type:

message
  A message delivered or left alone: account, folder (null for POP3; the folder's name, decoded, for IMAP), uid (the UIDL or IMAP UID as a string; null for a POP3 server without UIDL), size (bytes), destination (a file path, MBOX@OFFSET, the MDA command, or \"\\-\" for stdout; null when nothing was delivered), action (\"delivered\", or \"skipped\" for a message over \\-\\-max\\-size; with \\-\\-dry\\-run, what a run would do: \"would_fetch\", \"would_delete\", \"would_move\", \"would_flag\" (flags synced either way), \"would_remove_local\" (\\-\\-sync\\-deletes)).

account
  One per account, last: account, fetched (messages), bytes, deleted (from the server), flags_synced, new (with \\-\\-check or \\-\\-dry\\-run: messages waiting; else null), would_delete and would_flag (with \\-\\-dry\\-run: messages that would be deleted or moved on the server, and whose flags would be synced; else null), seconds, exit_code (as in EXIT STATUS).

error
  Before the account event of a failed account: account, kind (usage, data, unavailable, internal, cant_create, local_io, temporary, protocol, auth, config), message.

  {\"type\":\"message\",\"account\":\"work\",\"folder\":null,\"uid\":\"1a2b\",\"size\":2048,\"destination\":\"/home/a/Maildir/new/17...\",\"action\":\"delivered\"}
  {\"type\":\"account\",\"account\":\"work\",\"fetched\":1,\"bytes\":2048,\"deleted\":1,\"flags_synced\":0,\"new\":null,\"seconds\":0.21,\"exit_code\":0}

\\-\\-json and \\-\\-stdout cannot be used together.",
    ),
    (
        "FILES",
        "\
$XDG_CONFIG_HOME/fetch/config.toml
  The config file.

$XDG_STATE_HOME/fetch/ACCOUNT/ (usually ~/.local/state/fetch/)
  Per account: lock (held while a run works on the account), ledger and journal (what has been delivered; checksummed; never edit them). A damaged ledger is refused with exit 65: move the directory aside to start over, knowing that mail left on the server is then fetched again.",
    ),
    (
        "ENVIRONMENT",
        "\
HOME, XDG_CONFIG_HOME, XDG_STATE_HOME: where the config file and the ledgers live.

USER: the default login name.

NETRC: the netrc file to read instead of ~/.netrc.",
    ),
    (
        "EXIT STATUS",
        "\
0
  success, whether or not there was new mail (with \\-\\-check: there is new mail)

1
  \\-\\-check only: no new mail

64
  usage error

65
  damaged ledger, or server data that cannot be stored

69
  service refused: certificate rejected, STARTTLS missing, plaintext login refused, an IMAP folder the server will not open

70
  internal error

73
  cannot create the destination

74
  local I/O error: delivery failed, disk full

75
  temporary failure: network, timeout, a lock held by another run

76
  protocol violation by the server

77
  authentication failed

78
  configuration error, including no way to get a password

130, 143
  stopped by SIGINT or SIGTERM (128 + the signal) before all mail was fetched; what arrived is delivered and recorded. With \\-\\-daemon a stop is normal and exits 0.

With several accounts: the code of the one that failed, or 75 when two or more failed with different codes. One failing account does not stop the others.",
    ),
    (
        "EXAMPLES",
        "\
Fetch and delete, TLS, asking for the password:

  fetch \\-\\-pop3 pop.example.org \\-u alice

Leave mail on the server; later runs fetch only new mail:

  fetch \\-\\-pop3 pop.example.org \\-u alice \\-\\-keep \\-\\-password\\-command 'pass show mail'

IMAP, two folders, flags in step with the Maildir:

  fetch \\-\\-imap imap.example.org \\-u alice \\-\\-folder INBOX \\-\\-folder Lists/rust

From cron every 5 minutes, silent unless something fails:

  */5 * * * * fetch \\-q

Or as a long\\-running service, every 5 minutes, three accounts at a time, IMAP accounts at once when mail arrives:

  fetch \\-\\-daemon 300 \\-\\-idle \\-j 3 \\-q

A systemd user timer instead of cron (~/.config/systemd/user/fetch.service and fetch.timer; then systemctl \\-\\-user enable \\-\\-now fetch.timer):

  [Service]
  Type=oneshot
  ExecStart=%h/.cargo/bin/fetch \\-q

  [Timer]
  OnBootSec=1min
  OnUnitActiveSec=5min
  [Install]
  WantedBy=timers.target

Into procmail, or through a pipe:

  fetch work \\-\\-mda 'procmail \\-d %T'
  fetch work \\-\\-stdout | grep '^Subject:'",
    ),
    (
        "SIGNALS",
        "\
SIGTERM or SIGINT (Ctrl\\-C) asks fetch to stop: no new message is requested, the ones already on their way are delivered and recorded, the session ends with QUIT or LOGOUT (so a POP3 server deletes what was delivered), and fetch exits. A second signal exits at once; that is safe too (nothing is deleted on the server before it is recorded), the next run only has more to resume. At the password prompt, the first Ctrl\\-C gives up.",
    ),
    (
        "SECURITY",
        "\
TLS is used from the first byte by default (port 995). With \\-\\-tls starttls the STLS upgrade is required: a server that does not offer it, refuses it, or sends anything after accepting it before the handshake is refused (exit 69) before any credential is sent. Certificates are verified against the system's trust store plus \\-\\-cafile; \\-\\-fingerprint pins one certificate by its SHA\\-256 instead (\\-\\-show\\-cert prints it, with whether the certificate is trusted, and sends no credential). A password is sent over an unencrypted connection only with \\-\\-allow\\-plaintext\\-auth. Files fetch creates are mode 0600 and directories 0700; the process cannot be dumped or traced by other users while it holds a password; \\-vv redacts PASS, AUTH and APOP.",
    ),
];

/// Write hand-written text as roff: paragraphs (.PP) and typed blocks (.nf).
/// The text is already roff-escaped where it needs to be (\\- for dashes in
/// options); here a line that would start with a control character is
/// protected.
fn render_body(body: &str, out: &mut dyn Write) -> io::Result<()> {
    for para in body.split("\n\n") {
        let typed = para.lines().all(|l| l.starts_with("  "));
        if typed {
            writeln!(out, ".PP\n.nf")?;
            for l in para.lines() {
                writeln!(out, "{}", protect(&l[2..]))?;
            }
            writeln!(out, ".fi")?;
        } else if let Some((first, rest)) = para.split_once('\n')
            && rest.lines().all(|l| l.starts_with("  "))
        {
            // A term and its indented description.
            writeln!(out, ".TP\n{}", protect(first))?;
            for l in rest.lines() {
                writeln!(out, "{}", protect(l.trim_start()))?;
            }
        } else {
            writeln!(out, ".PP")?;
            for l in para.lines() {
                writeln!(out, "{}", protect(l))?;
            }
        }
    }
    Ok(())
}

fn protect(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_kind_generates() {
        for kind in Generated::value_variants() {
            let mut v = Vec::new();
            generate(*kind, &mut v).unwrap();
            assert!(v.len() > 500, "{kind:?}");
        }
        let mut v = Vec::new();
        generate(Generated::Man, &mut v).unwrap();
        let page = String::from_utf8(v).unwrap();
        for s in [
            ".SH NAME",
            ".SH OPTIONS",
            ".SH EXIT STATUS",
            "\\-\\-password\\-command",
        ] {
            assert!(page.contains(s), "{s}");
        }
    }
}
