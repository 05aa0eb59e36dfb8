//! IDLE (RFC 2177): wait in the selected folder for the server to report
//! news, renewing and ending the command cleanly.

use super::connect::read_line;
use super::session::{MAX_LINE, SMALL_REPLY, Session};
use crate::error::{Result, protocol, temporary};

/// Why [`Session::idle`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idled {
    /// The server announced a message (EXISTS) or a flag change (FETCH).
    Activity,
    /// `max` passed quietly: time to renew the IDLE.
    Quiet,
    /// `stop()` said so.
    Stopped,
}

/// Untagged data one IDLE may bring before it ends (keepalives and other
/// clients' flag changes are small; a flood is an error).
const IDLE_BUDGET: u64 = 4 << 20;

impl Session<'_> {
    /// IDLE (RFC 2177) in the selected folder until the server reports a
    /// new message or a flag change, `max` passes, or `stop()` is true
    /// (looked at twice a second); then DONE and the tagged OK.
    pub fn idle(&mut self, max: std::time::Duration, stop: &dyn Fn() -> bool) -> Result<Idled> {
        use std::time::Instant;
        let tag = format!("F{}", self.next_tag);
        self.next_tag += 1;
        self.begin(&format!("{tag} IDLE"), SMALL_REPLY);
        let trace = self.trace;
        self.raw.with(|c| -> Result<()> {
            c.send(format!("{tag} IDLE\r\n").as_bytes())?;
            // Untagged lines may come before the continuation.
            for _ in 0..1000 {
                let line = read_line(c)?;
                trace.line("S:", &line);
                if line.starts_with('+') {
                    return Ok(());
                }
                if let Some(rest) = line.strip_prefix(&tag) {
                    return Err(protocol("the server refused IDLE").server_said(rest.trim()));
                }
            }
            Err(protocol("no answer to IDLE after 1000 lines"))
        })?;
        let end = Instant::now() + max;
        let mut budget = IDLE_BUDGET;
        let outcome = loop {
            if stop() {
                break Idled::Stopped;
            }
            let now = Instant::now();
            if now >= end {
                break Idled::Quiet;
            }
            // The wait ends early on data or a stop signal (net's
            // wait_readable polls the stop pipe too).
            let wait = end - now;
            let line = self.raw.with(|c| -> Result<Option<String>> {
                if !c.wait_readable(wait, &mut budget)? {
                    return Ok(None);
                }
                match crate::wire::line_end(c.buffered(), MAX_LINE)? {
                    Some(n) => {
                        let line = String::from_utf8_lossy(&c.buffered()[..n])
                            .trim_end_matches(['\r', '\n'])
                            .to_string();
                        c.consume(n);
                        Ok(Some(line))
                    }
                    // Part of a line: wait for the rest (the reply clock
                    // bounds how long).
                    None => {
                        c.begin_reply();
                        let got = c.read_more()? as u64;
                        budget = budget.checked_sub(got).ok_or_else(|| {
                            protocol("the server sent more than an idle session could need")
                        })?;
                        Ok(None)
                    }
                }
            })?;
            let Some(line) = line else { continue };
            trace.line("S:", &line);
            match idle_line(&line) {
                IdleLine::Activity => break Idled::Activity,
                IdleLine::Bye => {
                    return Err(temporary("the server ended the idle session").server_said(line));
                }
                IdleLine::Other => {}
            }
        };
        self.begin("DONE", SMALL_REPLY);
        self.raw.with(|c| -> Result<()> {
            c.send(b"DONE\r\n")?;
            for _ in 0..100_000 {
                let line = read_line(c)?;
                trace.line("S:", &line);
                if let Some(rest) = line.strip_prefix(&tag).and_then(|r| r.strip_prefix(' ')) {
                    if rest.to_ascii_uppercase().starts_with("OK") {
                        return Ok(());
                    }
                    return Err(protocol("IDLE ended with an error").server_said(rest));
                }
            }
            Err(protocol("no end to IDLE after 100000 lines"))
        })?;
        Ok(outcome)
    }
}

enum IdleLine {
    Activity,
    Bye,
    Other,
}

/// What an untagged line during IDLE means to us: `* N EXISTS` (new mail)
/// and `* N FETCH` (flags changed by another client) are worth a sync;
/// `* BYE` ends the session; keepalives (`* OK Still here`), RECENT and
/// EXPUNGE are not.
fn idle_line(line: &str) -> IdleLine {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("*") {
        return IdleLine::Other;
    }
    match (words.next(), words.next()) {
        (Some(w), _) if w.eq_ignore_ascii_case("BYE") => IdleLine::Bye,
        (Some(n), Some(what))
            if n.bytes().all(|b| b.is_ascii_digit())
                && (what.eq_ignore_ascii_case("EXISTS") || what.eq_ignore_ascii_case("FETCH")) =>
        {
            IdleLine::Activity
        }
        _ => IdleLine::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_lines() {
        assert!(matches!(idle_line("* 23 EXISTS"), IdleLine::Activity));
        assert!(matches!(
            idle_line("* 4 FETCH (FLAGS (\\Seen))"),
            IdleLine::Activity
        ));
        assert!(matches!(idle_line("* 3 exists"), IdleLine::Activity));
        assert!(matches!(idle_line("* BYE shutting down"), IdleLine::Bye));
        assert!(matches!(idle_line("* OK Still here"), IdleLine::Other));
        assert!(matches!(idle_line("* 2 EXPUNGE"), IdleLine::Other));
        assert!(matches!(idle_line("* 1 RECENT"), IdleLine::Other));
        assert!(matches!(idle_line("* x EXISTS"), IdleLine::Other));
        assert!(matches!(idle_line("+ idling"), IdleLine::Other));
        assert!(matches!(idle_line(""), IdleLine::Other));
    }
}
