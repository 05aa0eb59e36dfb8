//! A POP3 client session: drives the sans-io [`proto`] over a [`Conn`].
//!
//! It owns the order of commands on the wire and the queue of replies still
//! expected, so that RETR and DELE can be pipelined (RFC 2449 PIPELINING)
//! while replies are matched to commands in order. It never decides *when*
//! to delete: `run/pop3.rs` calls [`Session::queue_dele`] only for committed
//! messages.

mod auth;
pub mod proto;

use std::collections::VecDeque;

use crate::error::{Result, internal, protocol, temporary, unavailable};
use crate::net::{Conn, Endpoint, Trace};
use crate::sanitize::escape;
use crate::types::TlsMode;
use proto::{BodyDecoder, Capabilities, Command, Lines, ListingDecoder, MAX_LINE, Status};

/// Most messages we accept in one maildrop listing.
pub const MAX_MESSAGES: usize = 5_000_000;

/// One message as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'a> {
    pub msgno: u32,
    pub size: u64,
    /// None when the server has no UIDL.
    pub uidl: Option<&'a str>,
}

/// What STAT, UIDL and LIST said, in message-number order: the unique ids
/// stay in the one string the listing arrived in (no allocation per
/// message on a 100,000-message mailbox).
#[derive(Debug, Default)]
pub struct Listing {
    ids: String,
    entries: Vec<ListedAt>,
}

/// Message number, size, and where its unique id lies in `Listing::ids`.
type ListedAt = (u32, u64, Option<(usize, usize)>);

impl Listing {
    pub fn messages(&self) -> Vec<Listed<'_>> {
        self.entries
            .iter()
            .map(|&(msgno, size, span)| Listed {
                msgno,
                size,
                uidl: span.map(|(a, b)| &self.ids[a..b]),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Retr(u32),
    Dele(u32),
}

/// The result of a RETR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retrieved {
    /// The whole message went to the sink: bytes as the server sent them
    /// (after unstuffing, CRLF counted as two), and bytes written.
    Done { wire: u64, written: u64 },
    /// The server answered -ERR (e.g. the message vanished); nothing was written.
    Refused(String),
}

pub struct Session<'u> {
    conn: Conn,
    trace: &'u dyn Trace,
    pub caps: Capabilities,
    pub greeting: String,
    pipelining: bool,
    out: Vec<u8>,
    pending: VecDeque<Pending>,
    /// DELE commands the server refused: (msgno, server text).
    pub dele_refused: Vec<(u32, String)>,
    /// DELE commands the server accepted.
    pub dele_accepted: Vec<u32>,
    scratch: Vec<u8>,
}

impl<'u> Session<'u> {
    /// Connect, read the greeting and capabilities, and set up TLS as `ep`
    /// requires. No credential has been sent when this returns.
    pub fn connect(ep: &Endpoint, trace: &'u dyn Trace) -> Result<Session<'u>> {
        let conn = Conn::open(ep)?;
        let mut s = Session {
            conn,
            trace,
            caps: Capabilities::default(),
            greeting: String::new(),
            pipelining: false,
            out: Vec::new(),
            pending: VecDeque::new(),
            dele_refused: Vec::new(),
            dele_accepted: Vec::new(),
            scratch: Vec::with_capacity(64 * 1024),
        };
        s.conn.begin_reply();
        match s.read_status()? {
            Status::Ok(text) => s.greeting = text,
            Status::Err(text) | Status::Continue(text) => {
                return Err(temporary("server refused the connection").server_said(text));
            }
        }
        s.caps = s.capa()?;
        if ep.tls == TlsMode::Starttls {
            if !s.caps.stls {
                return Err(unavailable(
                    "server does not offer STLS, and --tls starttls requires it; \
                     refusing to continue without encryption",
                ));
            }
            match s.simple(&Command::Stls)? {
                Status::Ok(_) => {}
                Status::Err(text) | Status::Continue(text) => {
                    return Err(unavailable(
                        "server refused STLS, and fetch will not continue without encryption",
                    )
                    .server_said(text));
                }
            }
            // Anything the server sent after +OK arrived in plaintext:
            // start_tls refuses if so. Then forget the plaintext capabilities.
            s.conn.start_tls(&ep.host, &ep.trust)?;
            s.caps = s.capa()?;
        }
        s.pipelining = s.caps.pipelining;
        s.enable_utf8()?;
        Ok(s)
    }

    /// Enter UTF-8 mode (RFC 6856) when CAPA offers it. It can only be
    /// asked for now, in the AUTHORIZATION state, and after STLS (whose
    /// capabilities are the ones that count). Without it a server may
    /// change messages whose headers are 8-bit before sending them (Courier
    /// sends a generated "cannot display" message instead, the original
    /// as an attachment), so the user would not get the message as it was
    /// stored. A -ERR leaves the session as it would be without the
    /// command, so the run goes on: nothing is lost that asking could save.
    fn enable_utf8(&mut self) -> Result<()> {
        if !self.caps.utf8 {
            return Ok(());
        }
        match self.simple(&Command::Utf8)? {
            Status::Ok(_) | Status::Err(_) => Ok(()),
            Status::Continue(text) => {
                Err(protocol("a SASL continuation in reply to UTF8").server_said(text))
            }
        }
    }

    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// The TLS session and certificate, for `--show-cert`.
    pub fn peer_info(&self, ep: &Endpoint) -> Option<crate::net::PeerInfo> {
        self.conn.peer_info(&ep.host, &ep.trust)
    }

    /// STAT, UIDL (if the server has it) and LIST, checked against each other.
    pub fn listing(&mut self) -> Result<Listing> {
        // With PIPELINING the three commands go together: one round trip.
        // STAT's count still bounds the listings read after it.
        let pipelined = self.pipelining;
        if pipelined {
            self.flush()?;
            if !self.pending.is_empty() {
                return Err(internal("command sent while replies are outstanding"));
            }
            let mut out = Vec::new();
            for cmd in [Command::Stat, Command::Uidl, Command::List] {
                self.trace.line("C:", &cmd.redacted());
                cmd.encode(&mut out)?;
            }
            self.send_line(&out)?;
            self.conn.begin_reply();
        }
        let stat = if pipelined {
            self.read_status()?
        } else {
            self.simple(&Command::Stat)?
        };
        let count = match stat {
            Status::Ok(text) => proto::parse_number_size(&text)?.0 as usize,
            Status::Err(t) | Status::Continue(t) => {
                return Err(protocol("STAT failed").server_said(t));
            }
        };
        if count > MAX_MESSAGES {
            return Err(protocol(format!(
                "server claims {count} messages, more than the {MAX_MESSAGES} fetch handles"
            )));
        }
        let limit = count + 1;
        let (uidls, sizes) = if pipelined {
            let uidls = self.read_multiline(limit)?;
            (uidls, self.read_multiline(limit)?)
        } else {
            (
                self.multiline(&Command::Uidl, limit)?,
                self.multiline(&Command::List, limit)?,
            )
        };
        let sizes = sizes.ok_or_else(|| protocol("server refused LIST"))?;
        let mut msgs: Vec<ListedAt> = Vec::with_capacity(sizes.len());
        let mut seen = vec![false; count];
        for line in sizes.iter() {
            let (n, size) = proto::parse_number_size(line)?;
            let idx = (n as usize)
                .checked_sub(1)
                .filter(|&i| i < count)
                .ok_or_else(|| {
                    protocol(format!(
                        "LIST names message {n}, but STAT said {count} messages"
                    ))
                })?;
            if std::mem::replace(&mut seen[idx], true) {
                return Err(protocol(format!("LIST names message {n} twice")));
            }
            msgs.push((n, size, None));
        }
        if let Some(uidls) = &uidls {
            // By message number (bounded by STAT's count), and the set of
            // ids, which must not repeat.
            let mut by_no: Vec<Option<&str>> = vec![None; count];
            let mut ids = crate::hash::set::<&str>(uidls.len());
            for line in uidls.iter() {
                let (n, uid) = proto::parse_uidl_line(line)?;
                let i = (n as usize)
                    .checked_sub(1)
                    .filter(|&i| i < count)
                    .ok_or_else(|| {
                        protocol(format!("UIDL names message {n}, which LIST does not"))
                    })?;
                if by_no[i].is_some() {
                    return Err(protocol(format!("UIDL names message {n} twice")));
                }
                if !ids.insert(uid) {
                    let other = by_no
                        .iter()
                        .position(|u| *u == Some(uid))
                        .map_or(0, |i| i + 1);
                    return Err(protocol(format!(
                        "server gave messages {other} and {n} the same unique id {:?}; \
                         refusing to continue, as tracking by it could lose mail",
                        escape(uid)
                    )));
                }
                by_no[i] = Some(uid);
            }
            for (msgno, _, span) in &mut msgs {
                let Some(uid) = by_no[*msgno as usize - 1] else {
                    return Err(protocol(format!(
                        "UIDL has no unique id for message {msgno}"
                    )));
                };
                *span = Some(uidls.span_of(uid));
            }
            if let Some(i) = (0..count).find(|&i| by_no[i].is_some() && !seen[i]) {
                return Err(protocol(format!(
                    "UIDL names message {}, which LIST does not",
                    i + 1
                )));
            }
        }
        msgs.sort_by_key(|m| m.0);
        Ok(Listing {
            ids: uidls.map(Lines::into_text).unwrap_or_default(),
            entries: msgs,
        })
    }

    /// Queue a RETR. With pipelining it is buffered for [`Session::flush`];
    /// without, only one command may be outstanding.
    pub fn queue_retr(&mut self, n: u32) -> Result<()> {
        self.queue(Command::Retr(n), Pending::Retr(n))
    }

    /// Queue a DELE; call only for messages whose local copy is committed.
    /// Without pipelining the DELE is sent and answered right away.
    pub fn queue_dele(&mut self, n: u32) -> Result<()> {
        self.queue(Command::Dele(n), Pending::Dele(n))?;
        if !self.pipelining {
            self.flush()?;
            self.drain_deles()?;
        }
        Ok(())
    }

    fn queue(&mut self, cmd: Command<'_>, p: Pending) -> Result<()> {
        if !self.pipelining && !self.pending.is_empty() {
            return Err(internal("a second command was queued without pipelining"));
        }
        self.trace.line("C:", &cmd.redacted());
        cmd.encode(&mut self.out)?;
        self.pending.push_back(p);
        Ok(())
    }

    /// Send everything queued.
    pub fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.conn.send(&out)?;
            if out.windows(4).any(|w| w == b"DELE") {
                crate::crash::point("DELE sent");
            }
            self.out = out;
            self.out.clear();
        }
        Ok(())
    }

    /// Number of RETRs sent or queued and not yet read.
    pub fn retrs_in_flight(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p, Pending::Retr(_)))
            .count()
    }

    /// Read the reply to the oldest outstanding RETR, which must be for
    /// message `n`, streaming the message into `sink` with CRLF turned into
    /// LF. Replies to DELEs queued before it are read and recorded first.
    /// `announced` is the size from LIST: a server that sends far more is
    /// stopped, so a lying server cannot fill the disk.
    pub fn read_retr(
        &mut self,
        n: u32,
        announced: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Retrieved> {
        self.drain_deles()?;
        match self.pending.pop_front() {
            Some(Pending::Retr(m)) if m == n => {}
            other => {
                return Err(internal(format!(
                    "expected a RETR {n} reply to be next, found {other:?}"
                )));
            }
        }
        self.conn.begin_reply();
        match self.read_status()? {
            Status::Ok(_) => {}
            Status::Err(text) | Status::Continue(text) => {
                return Ok(Retrieved::Refused(text));
            }
        }
        let limit = announced.saturating_mul(2).saturating_add(1 << 20);
        let mut dec = BodyDecoder::new(true);
        let mut wire = 0u64;
        loop {
            let buf = self.conn.fill()?;
            self.scratch.clear();
            let used = dec.decode(buf, &mut self.scratch);
            self.conn.consume(used);
            wire += used as u64;
            if !self.scratch.is_empty() {
                sink(&self.scratch)?;
            }
            if dec.done() {
                break;
            }
            if wire > limit {
                return Err(protocol(format!(
                    "message {n}: server sent more than {limit} bytes, though LIST said {announced}"
                )));
            }
        }
        Ok(Retrieved::Done {
            wire: dec.unstuffed_bytes(),
            written: dec.out_bytes,
        })
    }

    /// Read the replies to DELEs at the head of the queue.
    fn drain_deles(&mut self) -> Result<()> {
        while let Some(&Pending::Dele(n)) = self.pending.front() {
            self.pending.pop_front();
            self.conn.begin_reply();
            match self.read_status()? {
                Status::Ok(_) => self.dele_accepted.push(n),
                Status::Err(t) | Status::Continue(t) => self.dele_refused.push((n, t)),
            }
        }
        Ok(())
    }

    /// Finish: read outstanding DELE replies, then QUIT. Returns Ok(true)
    /// when the server confirmed the QUIT (its deletions are done).
    pub fn quit(&mut self) -> Result<bool> {
        self.flush()?;
        self.drain_deles()?;
        if !self.pending.is_empty() {
            return Err(internal("QUIT with RETR replies still unread"));
        }
        crate::crash::point("before QUIT");
        let ok = matches!(self.simple(&Command::Quit)?, Status::Ok(_));
        crate::crash::point("QUIT answered");
        Ok(ok)
    }

    /// Drop the connection without QUIT: the server must not apply DELEs.
    pub fn abort(&mut self) {
        self.conn.shutdown();
    }

    /// Send one command (nothing may be outstanding) and read its status line.
    fn simple(&mut self, cmd: &Command<'_>) -> Result<Status> {
        self.flush()?;
        if !self.pending.is_empty() {
            return Err(internal("command sent while replies are outstanding"));
        }
        self.trace.line("C:", &cmd.redacted());
        let mut line = Vec::new();
        cmd.encode(&mut line)?;
        self.send_line(&line)?;
        self.conn.begin_reply();
        self.read_status()
    }

    fn send_line(&mut self, line: &[u8]) -> Result<()> {
        self.conn.send(line)
    }

    /// Send a command with a multi-line reply and collect its lines;
    /// `Ok(None)` when the server answered -ERR.
    fn multiline(&mut self, cmd: &Command<'_>, max_lines: usize) -> Result<Option<Lines>> {
        match self.simple(cmd)? {
            Status::Ok(_) => {}
            Status::Err(_) | Status::Continue(_) => return Ok(None),
        }
        self.read_lines(max_lines).map(Some)
    }

    /// Read a multi-line reply (status and lines) to a command already sent.
    fn read_multiline(&mut self, max_lines: usize) -> Result<Option<Lines>> {
        match self.read_status()? {
            Status::Ok(_) => self.read_lines(max_lines).map(Some),
            Status::Err(_) | Status::Continue(_) => Ok(None),
        }
    }

    /// The lines of a multi-line reply, up to its terminating dot.
    fn read_lines(&mut self, max_lines: usize) -> Result<Lines> {
        let mut dec = ListingDecoder::new(max_lines);
        loop {
            let buf = self.conn.fill()?;
            let used = dec.decode(buf)?;
            self.conn.consume(used);
            if dec.done() {
                return Ok(dec.lines);
            }
        }
    }

    fn capa(&mut self) -> Result<Capabilities> {
        match self.multiline(&Command::Capa, 1000)? {
            Some(lines) => {
                for l in lines.iter() {
                    self.trace.line("S:", l);
                }
                Ok(Capabilities::parse(lines.iter()))
            }
            None => Ok(Capabilities::default()),
        }
    }

    fn read_status(&mut self) -> Result<Status> {
        loop {
            if let Some(end) = crate::wire::line_end(self.conn.buffered(), MAX_LINE)? {
                let status = Status::parse(&self.conn.buffered()[..end]);
                if self.trace.on() {
                    let text = String::from_utf8_lossy(&self.conn.buffered()[..end]).into_owned();
                    self.trace.line("S:", text.trim_end());
                }
                self.conn.consume(end);
                return status;
            }
            self.conn.read_more()?;
        }
    }
}
