//! An IMAP session over the `imap` crate, on a connection opened by our
//! `net` (deadlines, TLS, trust): `connect.rs` gets it logged in, this file
//! holds the commands of a sync (LIST, SELECT, SEARCH, metadata, flags,
//! STORE, EXPUNGE, MOVE), `stream.rs` streams FETCH bodies and `idle.rs`
//! waits with IDLE.
//!
//! Every command starts the connection's clock with a byte budget sized for
//! the reply it can need: the library buffers whole responses, and the
//! budget is what keeps a lying server (a literal of 2^32 bytes, an endless
//! line) from making us hold unbounded data. Unsolicited responses are
//! drained after each command; only UIDs are used, never sequence numbers.

use std::collections::HashSet;
use std::rc::Rc;

use super::caps::Caps;
use super::connect;
use super::{list, names};
use crate::error::{Error, Kind, Result, config, protocol, temporary};
use crate::net::{self, Clock, Endpoint, SharedConn, Trace};
use crate::sanitize::escape;
use crate::secret::Login;

pub(super) const ENABLE: &str = "ENABLE CONDSTORE UTF8=ACCEPT";

/// Budget for replies whose size does not depend on the mailbox.
pub(super) const SMALL_REPLY: u64 = 1 << 20;
/// Per-message allowance on top of the data itself (FETCH framing, flags).
pub(super) const PER_MESSAGE: u64 = 4096;
/// Longest line we read ourselves, outside the library.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// A selected folder as the server describes it.
#[derive(Debug, Clone)]
pub struct Selected {
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
    pub highest_mod_seq: Option<u64>,
}

/// Metadata of one message.
#[derive(Debug, Clone)]
pub struct Meta {
    pub uid: u32,
    /// Its sequence number when the metadata was fetched (to place a body
    /// whose UID the server sends after it).
    pub seq: u32,
    pub size: u64,
    pub flags: Vec<String>,
    /// INTERNALDATE, seconds since the epoch.
    pub received: Option<i64>,
}

/// A folder from LIST.
#[derive(Debug, Clone)]
pub struct Folder {
    pub name: String,
    pub delimiter: Option<char>,
    pub selectable: bool,
    /// A special-use attribute (RFC 6154) that marks a folder whose
    /// messages are elsewhere too (`\All`, `\Flagged`: views of other
    /// folders) or that the user rarely wants (`\Junk`, `\Trash`).
    pub special: Option<&'static str>,
}

/// The special-use attribute (RFC 6154) among `attrs` that decides
/// whether `--all-folders` takes the folder.
fn special_use(attrs: &[String]) -> Option<&'static str> {
    ["\\All", "\\Flagged", "\\Junk", "\\Trash"]
        .into_iter()
        .find(|s| attrs.iter().any(|a| a.eq_ignore_ascii_case(s)))
}

pub struct Session<'u> {
    pub(super) inner: imap::Session<SharedConn>,
    /// The same connection, for streaming bodies between library commands.
    pub(super) raw: SharedConn,
    pub(super) next_tag: u32,
    /// Tags of FETCH commands sent whose replies are not read yet.
    pub(super) pending: std::collections::VecDeque<String>,
    /// A FETCH reply could not be read to its end (a timeout, a flood):
    /// the connection is out of step and serves no more commands.
    pub(super) broken: bool,
    pub(super) clock: Rc<Clock>,
    pub(super) trace: &'u dyn Trace,
    /// After login; None until a command needs them.
    caps: Option<Caps>,
    condstore: bool,
    /// UTF8=ACCEPT is enabled (RFC 6855): mailbox names are UTF-8 on the
    /// wire in both directions, no longer modified UTF-7.
    utf8: bool,
    /// ENABLE has been answered (it goes with the first SELECT or LIST).
    pub(super) enabled: bool,
}

/// The metadata a sync asks for.
pub(super) const META_QUERY: &str = "(UID RFC822.SIZE FLAGS INTERNALDATE)";

/// Map a library error to ours, with `what` (the command) as its context:
/// our own errors (timeouts, budgets) come back out of the I/O error;
/// NO, BAD and BYE keep the server's words; the library's own errors are
/// kept as the cause.
pub(super) fn lib_error(what: &str, e: imap::Error) -> Error {
    let e = match e {
        imap::Error::Io(io) => net::from_io(io),
        imap::Error::ConnectionLost => temporary("connection closed by the server"),
        imap::Error::No(r) => protocol("the server said NO").server_said(r.information),
        imap::Error::Bad(r) => protocol("the server said BAD").server_said(r.information),
        imap::Error::Bye(r) => {
            temporary("the server closed the session").server_said(r.information)
        }
        imap::Error::Parse(p) => protocol("unreadable server response").because(p.to_string()),
        imap::Error::Validate(v) => config("invalid command").because(v.to_string()),
        other => protocol("unexpected reply").because(other.to_string()),
    };
    e.context(what)
}

/// The lines of a raw response, without their line ends.
fn response_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

impl<'u> Session<'u> {
    /// Connect, set up TLS as `ep` requires, and log in.
    pub fn open(ep: &Endpoint, login: &Login, trace: &'u dyn Trace) -> Result<Session<'u>> {
        let (conn, pre_caps) = connect::connect(ep, trace)?;
        let connect::LoggedIn { inner, raw, clock } =
            connect::log_in(conn, &pre_caps, login, trace)?;
        // The capabilities may change at login. What every run needs
        // (CONDSTORE, UTF8=ACCEPT) is learnt from ENABLE's answer, which
        // goes with the first SELECT (see `select_ahead`); the rest is
        // asked for only by the commands that need it: round trips fewer
        // for the usual run.
        Ok(Session {
            inner,
            raw,
            next_tag: 1,
            pending: std::collections::VecDeque::new(),
            broken: false,
            clock,
            trace,
            caps: None,
            condstore: false,
            utf8: false,
            enabled: false,
        })
    }

    /// Enable CONDSTORE (RFC 7162) and UTF8=ACCEPT (RFC 6855) in one round
    /// trip, and learn from `* ENABLED` which of them the server took. A
    /// server ignores the names it does not know (RFC 5161 §3.1), so both
    /// are asked for without first asking for the capabilities after login
    /// (they often differ from those before it).
    pub(super) fn enable(&mut self) -> Result<()> {
        self.enabled = true;
        self.begin(ENABLE, SMALL_REPLY);
        match self.inner.run_command_and_read_response(ENABLE) {
            Ok(lines) => {
                let enabled = Caps::enabled(&response_lines(&lines));
                self.condstore = enabled.has("CONDSTORE");
                self.utf8 = enabled.has("UTF8=ACCEPT");
            }
            // No ENABLE: flags are listed in full, names are modified UTF-7.
            Err(imap::Error::Bad(_) | imap::Error::No(_)) => {}
            Err(e) => return Err(lib_error(ENABLE, e)),
        }
        self.drain();
        Ok(())
    }

    fn ensure_enabled(&mut self) -> Result<()> {
        if self.enabled { Ok(()) } else { self.enable() }
    }

    /// Whether UTF8=ACCEPT is enabled (RFC 6855).
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// A folder name as the session's callers hold it, from the name on
    /// the wire. Callers always hold modified UTF-7 (RFC 3501 §5.1.3), the
    /// form the ledger, `--folder` and the Maildir mapping
    /// (`names::maildir_folder`) know, so the same folder lands in the same
    /// place whether or not the server speaks UTF-8.
    fn held_name(&self, name: String) -> String {
        if self.utf8 {
            names::encode_mutf7(&name)
        } else {
            name
        }
    }

    /// The name to send for a folder held as `name` (see `held_name`):
    /// UTF-8 once UTF8=ACCEPT is enabled, which then forbids modified UTF-7.
    pub(super) fn wire_name(&self, name: &str) -> String {
        if self.utf8
            && let Ok(decoded) = names::decode_mutf7(name)
        {
            return decoded;
        }
        name.to_string()
    }

    /// The capabilities after login (UIDPLUS, MOVE, IDLE), asked for once
    /// and only by the commands that need them.
    pub fn caps(&mut self) -> Result<&Caps> {
        if self.caps.is_none() {
            self.begin("CAPABILITY", SMALL_REPLY);
            let lines = self
                .inner
                .run_command_and_read_response("CAPABILITY")
                .map_err(|e| lib_error("CAPABILITY", e))?;
            self.caps = Some(Caps::from_lines(&response_lines(&lines)));
            self.drain();
        }
        Ok(self.caps.get_or_insert_default())
    }

    /// Whether CONDSTORE is enabled (RFC 7162): flag changes can be asked
    /// for since a modification sequence.
    pub fn condstore(&self) -> bool {
        self.condstore
    }

    pub(super) fn begin(&self, what: &str, budget: u64) {
        debug_assert!(
            self.pending.is_empty(),
            "a command sent while FETCH replies are unread"
        );
        self.trace.line("C:", what);
        self.clock.begin(budget);
    }

    /// Forget unsolicited responses (EXISTS, EXPUNGE, FETCH from other
    /// clients): we work by UID and ask for what we need.
    pub(super) fn drain(&mut self) {
        let _ = self.inner.take_all_unsolicited().count();
    }

    /// Every folder the server lists (`LIST "" *`), through our own
    /// reader (`imap::list`): the `imap` crate cannot read the UTF-8 names a
    /// server sends once UTF8=ACCEPT is enabled.
    pub fn list(&mut self) -> Result<Vec<Folder>> {
        self.ensure_enabled()?;
        let tag = format!("F{}", self.next_tag);
        self.next_tag += 1;
        self.begin("LIST \"\" *", 16 << 20);
        let line = format!("{tag} LIST \"\" *\r\n");
        self.raw.with(|c| c.send(line.as_bytes()))?;
        let mut out = Vec::new();
        // The byte budget begun above bounds this loop.
        loop {
            let reply = self.raw.with(|c| -> Result<list::Reply> {
                loop {
                    if let Some(n) = list::response_end(c.buffered())? {
                        let reply = list::parse(&c.buffered()[..n], &tag);
                        if self.trace.on() {
                            let text = String::from_utf8_lossy(&c.buffered()[..n]);
                            self.trace.line("S:", &escape(text.trim_end()));
                        }
                        c.consume(n);
                        return reply;
                    }
                    c.read_more()?;
                }
            });
            match reply.map_err(|e| e.context("LIST"))? {
                list::Reply::List(l) => {
                    out.push(Folder {
                        selectable: l.selectable(),
                        special: special_use(&l.attrs),
                        delimiter: l.delimiter,
                        name: self.held_name(l.name),
                    });
                }
                list::Reply::Done { ok: true, .. } => return Ok(out),
                list::Reply::Done { ok: false, text } => {
                    return Err(protocol("the server refused LIST")
                        .server_said(text)
                        .context("LIST"));
                }
                list::Reply::Other => {}
            }
        }
    }

    /// UIDs above `after` (matching `criteria` if given), ascending.
    pub fn new_uids(&mut self, after: u32, criteria: Option<&str>) -> Result<Vec<u32>> {
        let query = match criteria {
            Some(c) => format!("UID {}:* {c}", after.saturating_add(1)),
            None => format!("UID {}:*", after.saturating_add(1)),
        };
        self.begin(&format!("UID SEARCH {query}"), 64 << 20);
        let set = self
            .inner
            .uid_search(&query)
            .map_err(|e| lib_error("UID SEARCH", e))?;
        self.drain();
        // "n:*" also matches the highest UID when it is below n.
        let mut uids: Vec<u32> = set.into_iter().filter(|&u| u > after).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Size, flags and arrival date of `uids`.
    pub fn meta(&mut self, uids: &[u32]) -> Result<Vec<Meta>> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(2500) {
            let wanted: HashSet<u32> = chunk.iter().copied().collect();
            // Others are unsolicited or duplicates.
            self.fetch_meta(
                &uid_set(chunk),
                chunk.len() as u64,
                |uid| wanted.contains(&uid),
                &mut out,
            )?;
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    /// Size, flags and arrival date of the messages above UID `last`, at
    /// most about `expected` of them (from UIDNEXT), in one command.
    pub fn meta_after(&mut self, last: u32, expected: u32) -> Result<Vec<Meta>> {
        let mut out = Vec::new();
        // "n:*" also matches the highest UID when it is below n.
        self.fetch_meta(
            &format!("{}:*", last.saturating_add(1)),
            u64::from(expected) * 2 + 1,
            |uid| uid > last,
            &mut out,
        )?;
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    /// One `UID FETCH set (UID RFC822.SIZE FLAGS INTERNALDATE)` for about
    /// `count` messages; those whose UID `keep` accepts go to `out`.
    pub(super) fn fetch_meta(
        &mut self,
        set: &str,
        count: u64,
        keep: impl Fn(u32) -> bool,
        out: &mut Vec<Meta>,
    ) -> Result<()> {
        const QUERY: &str = META_QUERY;
        self.begin(
            &format!("UID FETCH {set} {QUERY}"),
            count * PER_MESSAGE + SMALL_REPLY,
        );
        let fetches = self
            .inner
            .uid_fetch(set, QUERY)
            .map_err(|e| lib_error("UID FETCH", e))?;
        for f in fetches.iter() {
            let Some(uid) = f.uid else {
                return Err(protocol("a FETCH response without the UID we asked for"));
            };
            if keep(uid) {
                out.push(Meta {
                    uid,
                    seq: f.message,
                    size: u64::from(f.size.unwrap_or(0)),
                    flags: f.flags().iter().map(flag_string).collect(),
                    received: f.internal_date().map(|d| d.timestamp()),
                });
            }
        }
        drop(fetches);
        self.drain();
        Ok(())
    }

    /// Flags of `uids` (with CONDSTORE: only those changed since `modseq`).
    pub fn flags(
        &mut self,
        up_to: u32,
        changed_since: Option<u64>,
    ) -> Result<Vec<(u32, Vec<String>)>> {
        if up_to == 0 {
            return Ok(Vec::new());
        }
        let query = match changed_since {
            Some(m) => format!("(UID FLAGS) (CHANGEDSINCE {m})"),
            None => "(UID FLAGS)".to_string(),
        };
        // In UID ranges, so that the library (which holds a whole response)
        // never holds more than a range's worth.
        const RANGE: u32 = 10_000;
        let mut out = Vec::new();
        let mut from = 1u32;
        while from <= up_to {
            let to = from.saturating_add(RANGE - 1).min(up_to);
            self.begin(
                &format!("UID FETCH {from}:{to} {query}"),
                u64::from(RANGE) * 512 + SMALL_REPLY,
            );
            let fetches = self
                .inner
                .uid_fetch(format!("{from}:{to}"), &query)
                .map_err(|e| lib_error("UID FETCH FLAGS", e))?;
            out.extend(
                fetches
                    .iter()
                    .filter_map(|f| Some((f.uid?, f.flags().iter().map(flag_string).collect()))),
            );
            drop(fetches);
            self.drain();
            if to == u32::MAX {
                break;
            }
            from = to + 1;
        }
        Ok(out)
    }

    /// Add or remove flags on the server (`op` is "+FLAGS.SILENT" or "-FLAGS.SILENT").
    pub fn store(&mut self, uids: &[u32], op: &str, flags: &str) -> Result<()> {
        for chunk in uids.chunks(1000) {
            let set = uid_set(chunk);
            self.begin(
                &format!("UID STORE {set} {op} {flags}"),
                SMALL_REPLY + chunk.len() as u64 * 512,
            );
            self.inner
                .uid_store(&set, format!("{op} {flags}"))
                .map_err(|e| lib_error("UID STORE", e))?;
            crate::crash::point("UID STORE done");
            self.drain();
        }
        Ok(())
    }

    /// Expunge exactly `uids` (UIDPLUS); never a plain EXPUNGE.
    pub fn uid_expunge(&mut self, uids: &[u32]) -> Result<()> {
        if !self.caps()?.has("UIDPLUS") {
            return Err(Error::new(
                Kind::Unavailable,
                "the server lacks UIDPLUS, so fetch cannot expunge only its own messages \
                 (a plain EXPUNGE would also remove other clients' deleted mail)",
            ));
        }
        for chunk in uids.chunks(1000) {
            let set = uid_set(chunk);
            self.begin(
                &format!("UID EXPUNGE {set}"),
                SMALL_REPLY + chunk.len() as u64 * 64,
            );
            self.inner
                .uid_expunge(&set)
                .map_err(|e| lib_error("UID EXPUNGE", e))?;
            crate::crash::point("UID EXPUNGE done");
            self.drain();
        }
        Ok(())
    }

    /// Move `uids` to `target`: UID MOVE where supported, else COPY +
    /// \Deleted + UID EXPUNGE.
    pub fn move_to(&mut self, uids: &[u32], target: &str) -> Result<()> {
        let caps = self.caps()?;
        let (can_move, uidplus) = (caps.has("MOVE"), caps.has("UIDPLUS"));
        let target = &self.wire_name(target);
        for chunk in uids.chunks(1000) {
            let set = uid_set(chunk);
            if can_move {
                self.begin(
                    &format!("UID MOVE {set} {}", escape(target)),
                    SMALL_REPLY + chunk.len() as u64 * 64,
                );
                self.inner
                    .uid_mv(&set, target)
                    .map_err(|e| lib_error("UID MOVE", e))?;
                crate::crash::point("UID MOVE done");
                self.drain();
            } else {
                if !uidplus {
                    return Err(Error::new(
                        Kind::Unavailable,
                        "the server has neither MOVE nor UIDPLUS, so fetch cannot move \
                         messages without expunging other clients' deleted mail",
                    ));
                }
                self.begin(&format!("UID COPY {set} {}", escape(target)), SMALL_REPLY);
                self.inner
                    .uid_copy(&set, target)
                    .map_err(|e| lib_error("UID COPY", e))?;
                self.drain();
                self.store(chunk, "+FLAGS.SILENT", "(\\Deleted)")?;
                self.uid_expunge(chunk)?;
            }
        }
        Ok(())
    }

    /// LOGOUT, without waiting for the server's BYE: every change was
    /// confirmed by its own tagged reply already, so nothing we need comes
    /// back, and the round trip would only be the user's time.
    pub fn logout(self) {
        crate::crash::point("before LOGOUT");
        self.begin("LOGOUT", SMALL_REPLY);
        self.raw.with(|c| {
            let _ = c.send(b"Z LOGOUT\r\n");
            c.shutdown();
        });
    }
}

fn flag_string(f: &imap::types::Flag<'_>) -> String {
    f.to_string()
}

/// A compact UID set: `1:3,7,9:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 11, 9]), "1:3,7,9:11");
    }
}
