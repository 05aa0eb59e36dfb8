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
}

impl Ui {
    pub fn new(out: Output) -> Ui {
        Ui {
            verbose: out.verbose,
            quiet: out.quiet,
            tty: std::io::stderr().is_terminal(),
        }
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

    /// Protocol trace (-vv). Callers pass redacted commands; server lines are escaped here.
    pub fn trace(&self, dir: &str, text: &str) {
        if self.verbose >= 2 {
            line(&format!("{dir} {}", crate::term::escape(text)));
        }
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
