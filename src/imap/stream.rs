//! Streaming FETCH bodies through our own reader (`imap/fetch.rs`) on the
//! session's connection, between the `imap` crate's commands: several
//! commands may be on their way at once, and bodies are handed out as they
//! arrive, never held whole.

use super::fetch::{Event, FetchReader};
use super::session::{PER_MESSAGE, SMALL_REPLY, Session};
use crate::error::{Error, Result, internal, protocol};

impl Session<'_> {
    /// Send `UID FETCH set query` and stream the replies through our own
    /// reader (see `imap::fetch`), handing each event to `on`. `budget`
    /// bounds the bytes the reply may take. Messages the server no longer
    /// has are simply absent from the events.
    pub fn stream(
        &mut self,
        set: &str,
        query: &str,
        budget: u64,
        on: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        self.send_fetch(set, query)?;
        self.read_fetch(budget, on)
    }

    /// Send `UID FETCH set query` without waiting for the reply (pipelining:
    /// several may be on their way; [`Session::read_fetch`] reads the
    /// replies in the order the commands went).
    pub fn send_fetch(&mut self, set: &str, query: &str) -> Result<()> {
        let tag = format!("F{}", self.next_tag);
        self.next_tag += 1;
        self.trace
            .line("C:", &format!("{tag} UID FETCH {set} {query}"));
        let line = format!("{tag} UID FETCH {set} {query}\r\n");
        self.raw.with(|c| c.send(line.as_bytes()))?;
        self.pending.push_back(tag);
        Ok(())
    }

    /// Whether FETCH replies are still to be read.
    pub fn fetches_pending(&self) -> usize {
        self.pending.len()
    }

    /// Read FETCH replies until the oldest FETCH sent has its tagged reply,
    /// handing each body event to `on`: also those of later commands that
    /// the server sends before it (Dovecot sends the data of pipelined
    /// FETCHes first and their tagged replies after). When `on` fails, the
    /// reading still goes on to that point (the events dropped), so the
    /// connection stays usable, and `on`'s error is returned.
    pub fn read_fetch(
        &mut self,
        budget: u64,
        on: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        self.read_fetch_some(budget, u64::MAX, on)
    }

    /// [`Session::read_fetch`], but returning early too, between two FETCH
    /// responses, once `enough` body bytes have come in this call: so that
    /// the caller can send the next commands while the later ones are still
    /// answering. A server may hold every tagged reply until the data of
    /// all the commands on their way is out (Dovecot does): a caller that
    /// waited for the oldest tagged reply let the pipe run dry, and paid a
    /// round trip, for every window of commands.
    pub fn read_fetch_some(
        &mut self,
        budget: u64,
        enough: u64,
        on: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        match self.read_reply(budget, enough, on)? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Session::read_fetch`], with the connection's errors apart (outer)
    /// from a refusal or `on`'s error (inner).
    fn read_reply(
        &mut self,
        budget: u64,
        enough: u64,
        on: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<Option<Error>> {
        let Some(oldest) = self.pending.front().cloned() else {
            return Err(internal("no FETCH reply to read"));
        };
        if self.broken {
            return Err(protocol(
                "the connection is out of step after an earlier error",
            ));
        }
        self.clock.begin(budget);
        let mut reader = FetchReader::with_tags(self.pending.iter().cloned().collect());
        let mut failure = None;
        let mut refused = None;
        let mut body_bytes = 0u64;
        loop {
            if reader.done() {
                let tag = reader.finished().unwrap_or_default().to_string();
                self.pending.retain(|t| *t != tag);
                if tag == oldest {
                    break;
                }
                reader.resume();
            }
            let step = self.raw.with(|c| -> Result<bool> {
                if reader.needs_input() && c.buffered().is_empty() {
                    c.read_more()?;
                }
                let (used, ev) = reader.next(c.buffered())?;
                // Between two responses, the reader holds nothing but the
                // tags: a new one made for the next call reads on.
                let between = matches!(ev, Some(Event::FetchEnd { .. }));
                if let Some(Event::BodyData(d)) = &ev {
                    body_bytes += d.len() as u64;
                }
                match ev {
                    Some(Event::Done { ok: false, text })
                        if !text.to_ascii_uppercase().contains("[EXPUNGEISSUED]") =>
                    {
                        refused = Some(
                            protocol("the server said")
                                .server_said(text)
                                .context("UID FETCH"),
                        );
                    }
                    Some(Event::Done { .. }) | None => {}
                    Some(ev) => {
                        if failure.is_none()
                            && let Err(e) = on(ev)
                        {
                            failure = Some(e);
                        }
                    }
                }
                c.consume(used);
                Ok(between)
            });
            match step {
                Err(e) => {
                    // Said first: why the body was refused (a flood that
                    // followed is the consequence).
                    self.broken = true;
                    return Err(failure.unwrap_or(e));
                }
                Ok(true) if body_bytes >= enough && failure.is_none() && refused.is_none() => {
                    return Ok(None);
                }
                Ok(_) => {}
            }
        }
        Ok(failure.or(refused))
    }

    /// Read and drop the replies to every FETCH still on its way (after a
    /// failure, so that the next command reads its own reply).
    pub fn discard_fetches(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            self.read_reply(u64::MAX, u64::MAX, &mut |_| Ok(()))?;
        }
        Ok(())
    }

    /// The budget for fetching bodies of `count` messages whose announced
    /// sizes add up to `bytes`: twice that, as an announced size may be an
    /// estimate (Exchange's RFC822.SIZE is), and room for the framing.
    pub fn body_budget(bytes: u64, count: usize) -> u64 {
        bytes
            .saturating_mul(2)
            .saturating_add(count as u64 * PER_MESSAGE + SMALL_REPLY)
    }
}
