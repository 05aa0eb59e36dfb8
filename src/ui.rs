//! Everything `fetch` tells a human goes through here, and all of it goes to
//! stderr: stdout is reserved for data. Errors always print; summaries and
//! warnings print with `-v`, or on a terminal unless `-q`; so a cron run with
//! nothing wrong prints nothing. Server text is escaped before printing.

use std::io::{IsTerminal, Write};

use crate::config::Output;

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
    pub fn event(&self, value: serde_json::Value) {
        if self.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{value}");
            let _ = o.flush();
        }
    }

    /// A message delivered (or left alone): `-v` line and `message` event.
    #[allow(clippy::too_many_arguments)]
    pub fn message(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        destination: Option<&str>,
        action: &str,
    ) {
        self.detail(
            account,
            &format!(
                "{action} {}{} ({size} bytes){}",
                folder
                    .map(|f| format!("{} ", crate::sanitize::escape(f)))
                    .unwrap_or_default(),
                uid.map(crate::sanitize::escape)
                    .unwrap_or_else(|| "message".into()),
                destination.map(|d| format!(" -> {d}")).unwrap_or_default()
            ),
        );
        self.message_event(account, folder, uid, size, destination, action);
    }

    /// The `message` JSON event (see JSON OUTPUT in the man page).
    fn message_event(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        destination: Option<&str>,
        action: &str,
    ) {
        self.event(serde_json::json!({
            "type": "message",
            "account": account,
            "folder": folder,
            "uid": uid,
            "size": size,
            "destination": destination,
            "action": action,
        }));
    }
}

impl Ui {
    /// `--dry-run`: one thing a run would do, as a line on stdout (the
    /// answer is data, like `--check`'s) or, with `--json`, a `message`
    /// event whose action is `would_fetch`, `would_delete`, `would_move`,
    /// `would_flag` or `would_remove_local`. `what` is the line for
    /// humans (server text in it already escaped; empty: an event only, the
    /// human line having said it already).
    #[allow(clippy::too_many_arguments)]
    pub fn would(
        &self,
        account: &str,
        folder: Option<&str>,
        uid: Option<&str>,
        size: u64,
        action: &str,
        what: &str,
    ) {
        if self.json {
            self.message_event(account, folder, uid, size, None, action);
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
