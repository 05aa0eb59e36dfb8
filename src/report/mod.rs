//! Everything `fetch` tells a human goes through here, and all of it goes to
//! stderr: stdout is reserved for data. Errors always print; summaries and
//! warnings print with `-v`, or on a terminal unless `-q`; so a cron run with
//! nothing wrong prints nothing. Server text is escaped before printing.
//! With `--json`, events go to stdout (`events.rs`); progress bars to a
//! terminal only (`progress.rs`).

pub mod events;
pub mod progress;

use std::io::{IsTerminal, Write};

use crate::config::Output;
use events::Message;
pub use events::{Action, Event};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub verbose: u8,
    quiet: bool,
    tty: bool,
    /// `--json`: events go to stdout as JSON lines.
    pub json: bool,
}

impl Ui {
    pub fn new(out: Output) -> Ui {
        Ui {
            verbose: out.verbose,
            quiet: out.quiet,
            tty: std::io::stderr().is_terminal(),
            json: out.json,
        }
    }

    /// Progress bars: only on a terminal, and not with -q or --json.
    pub fn wants_progress(&self) -> bool {
        self.tty && !self.quiet && !self.json
    }

    /// Summaries and warnings: shown with -v, or on a terminal unless -q.
    pub fn chatty(&self) -> bool {
        !self.quiet && (self.verbose > 0 || self.tty)
    }

    pub fn error(&self, account: &str, msg: &str) {
        line(&format!("fetch: {account}: {msg}"));
    }

    pub fn warn(&self, account: &str, msg: &str) {
        if self.chatty() {
            line(&format!("fetch: {account}: warning: {msg}"));
        }
    }

    pub fn info(&self, account: &str, msg: &str) {
        if self.chatty() {
            line(&format!("{account}: {msg}"));
        }
    }

    /// Per-message lines (-v).
    pub fn detail(&self, account: &str, msg: &str) {
        if self.verbose >= 1 {
            line(&format!("{account}: {msg}"));
        }
    }
}

/// The protocol exchange (-vv). Sessions pass redacted commands; server
/// lines are escaped here.
impl crate::net::Trace for Ui {
    fn on(&self) -> bool {
        self.verbose >= 2
    }

    fn line(&self, dir: &str, text: &str) {
        if self.on() {
            line(&format!("{dir} {}", crate::sanitize::escape(text)));
        }
    }
}

impl Ui {
    /// With `--json`, one event as a line on stdout (see JSON OUTPUT in the
    /// man page: a stable interface). A closed stdout is not our error.
    pub fn event(&self, event: &Event) {
        if self.json {
            let mut o = std::io::stdout().lock();
            if let Ok(text) = serde_json::to_string(event) {
                let _ = writeln!(o, "{text}");
                let _ = o.flush();
            }
        }
    }

    /// A message delivered (or left alone): `-v` line and `message` event.
    pub fn message(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        destination: Option<&str>,
        action: Action,
    ) {
        self.detail(
            account,
            &format!(
                "{} {}{} ({size} bytes){}",
                action.name(),
                folder
                    .map(|f| format!("{} ", crate::sanitize::escape(f)))
                    .unwrap_or_default(),
                uid.map(crate::sanitize::escape)
                    .unwrap_or_else(|| "message".into()),
                destination.map(|d| format!(" -> {d}")).unwrap_or_default()
            ),
        );
        self.event(&Event::Message(Message {
            account,
            folder,
            uid,
            size,
            destination,
            action,
            reason: None,
        }));
    }

    /// A message an LMTP or SMTP server refused for good: a warning with
    /// the reason, and a `message` event whose action is `rejected`.
    pub fn rejected(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        reason: &str,
    ) {
        let which = match (folder, uid) {
            (Some(f), Some(u)) => format!(
                "{} UID {}",
                crate::sanitize::escape(f),
                crate::sanitize::escape(u)
            ),
            (None, Some(u)) => format!("message {}", crate::sanitize::escape(u)),
            _ => "a message".into(),
        };
        self.warn(
            account,
            &format!(
                "{which} was rejected: {reason}; it stays on the server and is not offered again unless --retry-rejected"
            ),
        );
        self.event(&Event::Message(Message {
            account,
            folder,
            uid,
            size,
            destination: None,
            action: Action::Rejected,
            reason: Some(reason),
        }));
    }

    /// `--dry-run`: one thing a run would do, as a line on stdout (the
    /// answer is data, like `--check`'s) or, with `--json`, a `message`
    /// event whose action is one of the `would_` ones. `what` is the line
    /// for humans (server text in it already escaped; empty: an event
    /// only, the human line having said it already).
    pub fn would(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        action: Action,
        what: &str,
    ) {
        if self.json {
            self.event(&Event::Message(Message {
                account,
                folder,
                uid,
                size,
                destination: None,
                action,
                reason: None,
            }));
            return;
        }
        if !what.is_empty() {
            self.data(&format!("{account}: {what}\n"));
        }
    }

    /// An answer for scripts (`--check`, `--dry-run`, `--show-cert`) on
    /// stdout. A reader that stopped reading (`| head`) is not an error.
    pub fn data(&self, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

/// `--list-accounts`: each account's name (control characters escaped, so
/// one account is one line) and state directory, tab-separated, on stdout.
pub fn list_accounts(accounts: &[crate::config::Account]) -> crate::error::Result<()> {
    let mut text = String::new();
    for acct in accounts {
        let dir = acct.state_dir().ok_or_else(|| {
            crate::error::config("cannot find a state directory: set XDG_STATE_HOME or HOME")
        })?;
        text.push_str(&format!(
            "{}\t{}\n",
            crate::sanitize::escape(&acct.name),
            crate::sanitize::escape(&dir.to_string_lossy())
        ));
    }
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
    Ok(())
}

fn line(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{s}");
}

/// `1.4 MB`-style sizes for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_bytes(999), "999 B");
        assert_eq!(super::human_bytes(1400), "1.4 kB");
        assert_eq!(super::human_bytes(1_400_000), "1.4 MB");
    }
}
