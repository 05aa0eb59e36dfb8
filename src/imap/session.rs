//! An IMAP session over the `imap` crate, on a connection opened by our
//! `net.rs` (deadlines, TLS, trust) and upgraded with STARTTLS by hand, so
//! that the rules of GUIDE §6 hold before the library sees the stream:
//! STARTTLS required means no PREAUTH and no credentials in plaintext, and
//! nothing the server sent before the handshake is trusted.
//!
//! Every command starts the connection's clock with a byte budget sized for
//! the reply it can need: the library buffers whole responses, and the
//! budget is what keeps a lying server (a literal of 2^32 bytes, an endless
//! line) from making us hold unbounded data. Unsolicited responses are
//! drained after each command; only UIDs are used, never sequence numbers.

use std::collections::HashSet;
use std::rc::Rc;

use crate::cli::{AuthMethod, TlsMode};
use crate::config::Account;
use crate::error::{Error, Kind, Result, auth, config, protocol, temporary, unavailable};
use crate::imap::fetch::{Event, FetchReader};
use crate::net::{self, Clock, Conn, SharedConn};
use crate::secret::Secret;
use crate::term::escape;
use crate::ui::Ui;

/// Budget for replies whose size does not depend on the mailbox.
const SMALL_REPLY: u64 = 1 << 20;
/// Per-message allowance on top of the data itself (FETCH framing, flags).
const PER_MESSAGE: u64 = 4096;
/// Longest line we read ourselves before the library takes over.
const MAX_LINE: usize = 64 * 1024;

/// What the server can do, among what we use. `condstore` is known after
/// login; the others after [`Session::ensure_caps`].
#[derive(Debug, Clone, Default)]
pub struct Caps {
    pub condstore: bool,
    pub uidplus: bool,
    pub move_: bool,
    pub idle: bool,
}

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
}

pub struct Session<'u> {
    inner: imap::Session<SharedConn>,
    /// The same connection, for streaming bodies between library commands.
    raw: SharedConn,
    next_tag: u32,
    /// Tags of FETCH commands sent whose replies are not read yet.
    pending: std::collections::VecDeque<String>,
    /// A FETCH reply could not be read to its end (a timeout, a flood):
    /// the connection is out of step and serves no more commands.
    broken: bool,
    clock: Rc<Clock>,
    ui: &'u Ui,
    pub caps: Caps,
    caps_known: bool,
}

/// A mailbox name as imap-proto hands it over: from a quoted string it is
/// still escaped (`\\` and `\"`), and SELECT would escape it once more and
/// name another mailbox. Servers send such names quoted (Dovecot does); a
/// name sent as a literal holding one of these pairs would be changed (no
/// server we know sends one).
fn unescape_quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('\\' | '"'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Map a library error to ours: our own errors (timeouts, budgets) come
/// back out of the I/O error; NO/BAD keep the server's words.
fn lib_error(what: &str, e: imap::Error) -> Error {
    match e {
        imap::Error::Io(io) => {
            let mut err = net::from_io(io);
            err.msg = format!("{what}: {}", err.msg);
            err
        }
        imap::Error::ConnectionLost => {
            temporary(format!("{what}: connection closed by the server"))
        }
        imap::Error::No(r) => protocol(format!(
            "{what}: the server said NO: {}",
            escape(&r.information.clone())
        )),
        imap::Error::Bad(r) => protocol(format!(
            "{what}: the server said BAD: {}",
            escape(&r.information.clone())
        )),
        imap::Error::Bye(r) => temporary(format!(
            "{what}: the server closed the session: {}",
            escape(&r.information.clone())
        )),
        imap::Error::Parse(p) => protocol(format!("{what}: unreadable server response: {p}")),
        imap::Error::Validate(v) => config(format!("{what}: {v}")),
        other => protocol(format!("{what}: {other}")),
    }
}

/// Read one CRLF line ourselves (before the library owns the stream).
fn read_line(conn: &mut Conn) -> Result<String> {
    conn.begin_reply();
    loop {
        if let Some(end) = crate::pop3::proto::line_end(conn.buffered(), MAX_LINE)? {
            let line = String::from_utf8_lossy(&conn.buffered()[..end])
                .trim_end_matches(['\r', '\n'])
                .to_string();
            conn.consume(end);
            return Ok(line);
        }
        conn.read_more()?;
    }
}

/// Send `TAG COMMAND` and read to the tagged reply; returns the untagged
/// lines and the tagged line's status word and text.
fn simple_command(conn: &mut Conn, tag: &str, cmd: &str, ui: &Ui) -> Result<(Vec<String>, String)> {
    ui.trace("C:", &format!("{tag} {cmd}"));
    conn.send(format!("{tag} {cmd}\r\n").as_bytes())?;
    let mut untagged = Vec::new();
    for _ in 0..1000 {
        let line = read_line(conn)?;
        ui.trace("S:", &line);
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            return Ok((untagged, rest.to_string()));
        }
        untagged.push(line);
    }
    Err(protocol(format!("no reply to {cmd} after 1000 lines")))
}

fn caps_from(words: impl Iterator<Item = String>) -> HashSet<String> {
    words.map(|w| w.to_ascii_uppercase()).collect()
}

struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;
    fn process(&self, _challenge: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.user.len() + self.password.len() + 2);
        v.push(0);
        v.extend_from_slice(self.user.as_bytes());
        v.push(0);
        v.extend_from_slice(self.password.as_bytes());
        v
    }
}

/// Connect and set up TLS as the account requires (implicit, or STARTTLS
/// with the rules of GUIDE §6); nothing has been sent but CAPABILITY and
/// STARTTLS when this returns. Returns the capabilities valid now: the
/// greeting's, when it lists them and no STARTTLS came after it (one round
/// trip saved), else a CAPABILITY's.
fn connect(acct: &Account, ui: &Ui) -> Result<(Conn, HashSet<String>)> {
    let tls = acct.tls_settings();
    let mut conn = Conn::connect(&acct.host, acct.port, acct.timeout)?;
    if acct.tls == TlsMode::Implicit {
        conn.tls(&acct.host, &tls)?;
    }
    let greeting = read_line(&mut conn)?;
    ui.trace("S:", &greeting);
    let upper = greeting.to_ascii_uppercase();
    if upper.starts_with("* BYE") {
        return Err(temporary(format!(
            "server refused the connection: {}",
            escape(&greeting)
        )));
    }
    if upper.starts_with("* PREAUTH") {
        if acct.tls == TlsMode::Starttls {
            return Err(unavailable(
                "the server greeted with PREAUTH (already logged in, in plaintext) while \
                     STARTTLS is required; refusing to continue without encryption",
            ));
        }
        return Err(protocol(
            "the server greeted with PREAUTH; fetch logs in itself and does not support \
                 pre-authenticated sessions",
        ));
    }
    if !upper.starts_with("* OK") {
        return Err(protocol(format!(
            "unexpected greeting: {}",
            escape(&greeting)
        )));
    }
    if acct.tls == TlsMode::Starttls {
        let (lines, status) = simple_command(&mut conn, "F0", "CAPABILITY", ui)?;
        let caps = caps_from(
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("* CAPABILITY "))
                .flat_map(|l| l.split_ascii_whitespace().map(str::to_string)),
        );
        if !status.to_ascii_uppercase().starts_with("OK") {
            return Err(protocol(format!("CAPABILITY failed: {}", escape(&status))));
        }
        if !caps.contains("STARTTLS") {
            return Err(unavailable(
                "server does not offer STARTTLS, and --tls starttls requires it; \
                     refusing to continue without encryption",
            ));
        }
        // Untagged lines before the tagged OK are plaintext and ignored.
        let (_, status) = simple_command(&mut conn, "F1", "STARTTLS", ui)?;
        if !status.to_ascii_uppercase().starts_with("OK") {
            return Err(unavailable(format!(
                "server refused STARTTLS: {}; refusing to continue without encryption",
                escape(&status)
            )));
        }
        conn.start_tls(&acct.host, &tls)?;
    }
    let caps = match greeting_caps(&greeting) {
        Some(c) if acct.tls != TlsMode::Starttls => c,
        _ => {
            let (lines, status) = simple_command(&mut conn, "F2", "CAPABILITY", ui)?;
            if !status.to_ascii_uppercase().starts_with("OK") {
                return Err(protocol(format!("CAPABILITY failed: {}", escape(&status))));
            }
            caps_from(
                lines
                    .iter()
                    .filter_map(|l| l.strip_prefix("* CAPABILITY "))
                    .flat_map(|l| l.split_ascii_whitespace().map(str::to_string)),
            )
        }
    };
    Ok((conn, caps))
}

/// The capabilities a greeting lists (`* OK [CAPABILITY ...] text`).
fn greeting_caps(greeting: &str) -> Option<HashSet<String>> {
    let start = greeting.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let end = start + greeting[start..].find(']')?;
    Some(caps_from(
        greeting[start..end]
            .split_ascii_whitespace()
            .map(str::to_string),
    ))
}

/// Standard base64 (RFC 4648), for SASL-IR.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `--show-cert`: the TLS session and certificate (if any) and the
/// capabilities, then LOGOUT; no credential is sent.
pub fn inspect(acct: &Account, ui: &Ui) -> Result<(Option<net::PeerInfo>, Vec<String>)> {
    let (mut conn, _) = connect(acct, ui)?;
    let info = conn.peer_info(&acct.host, &acct.tls_settings());
    let (lines, _) = simple_command(&mut conn, "F8", "CAPABILITY", ui)?;
    let caps = lines
        .iter()
        .filter_map(|l| l.strip_prefix("* CAPABILITY "))
        .map(escape)
        .collect();
    let _ = simple_command(&mut conn, "F9", "LOGOUT", ui);
    Ok((info, caps))
}

impl<'u> Session<'u> {
    /// Connect, set up TLS as the account requires, and log in.
    pub fn open(acct: &Account, password: &Secret, ui: &'u Ui) -> Result<Session<'u>> {
        let (conn, pre_caps) = connect(acct, ui)?;
        let encrypted = conn.is_tls();
        let clock = conn.clock();
        let raw = SharedConn::new(conn);
        let mut client = imap::Client::new(raw.clone());
        client.greeting_read = true;
        let sasl_plain = pre_caps.contains("AUTH=PLAIN");
        if !encrypted && !acct.allow_plaintext_auth {
            return Err(unavailable(
                "refusing to send the password over an unencrypted connection; use \
                 --tls implicit or --tls starttls, or --allow-plaintext-auth if you must",
            ));
        }
        let user = acct.user.as_str();
        let pass = password.expose();
        if user.contains(['\r', '\n']) || pass.contains(['\r', '\n']) {
            return Err(config(
                "the user name or password contains a line break, which IMAP cannot carry",
            ));
        }
        let plain = match acct.auth {
            AuthMethod::Plain => true,
            AuthMethod::User => false,
            AuthMethod::Apop => {
                return Err(config(
                    "--auth apop is for POP3; IMAP uses plain or user (LOGIN)",
                ));
            }
            AuthMethod::Auto => sasl_plain,
        };
        clock.begin(SMALL_REPLY);
        ui.trace(
            "C:",
            if plain {
                "AUTHENTICATE PLAIN [REDACTED]"
            } else {
                "LOGIN [REDACTED]"
            },
        );
        let logged_in = if plain {
            let auth = PlainAuth {
                user,
                password: pass,
            };
            // SASL-IR (RFC 4959): the credentials ride with the command,
            // saving a round trip. Held in a Secret: wiped when dropped.
            let method = Secret::new(if pre_caps.contains("SASL-IR") {
                use imap::Authenticator;
                format!("PLAIN {}", base64(&auth.process(b"")))
            } else {
                "PLAIN".into()
            });
            client.authenticate(method.expose(), &auth)
        } else {
            client.login(user, pass)
        };
        let inner = match logged_in {
            Ok(s) => s,
            Err((imap::Error::No(r), _)) => {
                let text = r.information.clone();
                return Err(login_error(&text));
            }
            Err((e, _)) => return Err(lib_error("login", e)),
        };
        // The capabilities may change at login. What every run needs,
        // CONDSTORE, is learnt from ENABLE's answer; the rest is asked for
        // only by the commands that need it (ensure_caps): a round trip
        // fewer for the usual run.
        let mut s = Session {
            inner,
            raw,
            next_tag: 1,
            pending: std::collections::VecDeque::new(),
            broken: false,
            clock,
            ui,
            caps: Caps::default(),
            caps_known: false,
        };
        s.begin("ENABLE CONDSTORE", SMALL_REPLY);
        match s.inner.run_command_and_read_response("ENABLE CONDSTORE") {
            Ok(lines) => {
                s.caps.condstore = String::from_utf8_lossy(&lines).lines().any(|l| {
                    let l = l.to_ascii_uppercase();
                    l.starts_with("* ENABLED")
                        && l.split_ascii_whitespace().any(|w| w == "CONDSTORE")
                });
            }
            // No ENABLE (or no CONDSTORE to enable): flags are listed in full.
            Err(imap::Error::Bad(_) | imap::Error::No(_)) => {}
            Err(e) => return Err(lib_error("ENABLE CONDSTORE", e)),
        }
        s.drain();
        Ok(s)
    }

    /// Learn the capabilities after login (UIDPLUS, MOVE, IDLE), once.
    pub fn ensure_caps(&mut self) -> Result<()> {
        if self.caps_known {
            return Ok(());
        }
        self.begin("CAPABILITY", SMALL_REPLY);
        let caps = self
            .inner
            .capabilities()
            .map_err(|e| lib_error("CAPABILITY", e))?;
        self.caps.uidplus = caps.has_str("UIDPLUS");
        self.caps.move_ = caps.has_str("MOVE");
        self.caps.idle = caps.has_str("IDLE");
        drop(caps);
        self.caps_known = true;
        self.drain();
        Ok(())
    }

    fn begin(&self, what: &str, budget: u64) {
        debug_assert!(
            self.pending.is_empty(),
            "a command sent while FETCH replies are unread"
        );
        self.ui.trace("C:", what);
        self.clock.begin(budget);
    }

    /// Forget unsolicited responses (EXISTS, EXPUNGE, FETCH from other
    /// clients): we work by UID and ask for what we need.
    fn drain(&mut self) {
        let _ = self.inner.take_all_unsolicited().count();
    }

    /// All selectable folders.
    pub fn list(&mut self) -> Result<Vec<Folder>> {
        self.begin("LIST \"\" *", 16 << 20);
        let names = self
            .inner
            .list(Some(""), Some("*"))
            .map_err(|e| lib_error("LIST", e))?;
        let out = names
            .iter()
            .map(|n| Folder {
                name: unescape_quoted(n.name()),
                delimiter: n.delimiter().and_then(|d| d.chars().next()),
                selectable: !n.attributes().iter().any(|a| match a {
                    imap_proto::NameAttribute::NoSelect => true,
                    imap_proto::NameAttribute::Extension(x) => {
                        x.eq_ignore_ascii_case("\\NonExistent")
                    }
                    _ => false,
                }),
            })
            .collect();
        drop(names);
        self.drain();
        Ok(out)
    }

    /// SELECT `folder`, or with `read_only` EXAMINE it (nothing can change:
    /// not even the \\Recent flags other clients see).
    pub fn select(&mut self, folder: &str, read_only: bool) -> Result<Selected> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.begin(&format!("{verb} {}", escape(folder)), SMALL_REPLY);
        let mb = if read_only {
            self.inner.examine(folder)
        } else {
            self.inner.select(folder)
        }
        .map_err(|e| {
            let refused = matches!(e, imap::Error::No(_));
            let mut err = lib_error(&format!("{verb} {}", escape(folder)), e);
            if refused {
                // This folder's problem (gone, no right to read it): the
                // connection is fine and the other folders go on.
                err.kind = Kind::Unavailable;
            }
            err
        })?;
        self.drain();
        let uid_validity = match mb.uid_validity {
            Some(0) | None => {
                return Err(protocol(format!(
                    "folder {} has no valid UIDVALIDITY",
                    escape(folder)
                )));
            }
            Some(v) => v,
        };
        Ok(Selected {
            uid_validity,
            uid_next: mb.uid_next,
            highest_mod_seq: mb.highest_mod_seq,
        })
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
    fn fetch_meta(
        &mut self,
        set: &str,
        count: u64,
        keep: impl Fn(u32) -> bool,
        out: &mut Vec<Meta>,
    ) -> Result<()> {
        const QUERY: &str = "(UID RFC822.SIZE FLAGS INTERNALDATE)";
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
        self.ui
            .trace("C:", &format!("{tag} UID FETCH {set} {query}"));
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
        match self.read_reply(budget, on)? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Session::read_fetch`], with the connection's errors apart (outer)
    /// from a refusal or `on`'s error (inner).
    fn read_reply(
        &mut self,
        budget: u64,
        on: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<Option<Error>> {
        let Some(oldest) = self.pending.front().cloned() else {
            return Err(crate::error::internal("no FETCH reply to read"));
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
        loop {
            if reader.done() {
                let tag = reader.finished().unwrap_or_default().to_string();
                self.pending.retain(|t| *t != tag);
                if tag == oldest {
                    break;
                }
                reader.resume();
            }
            let step = self.raw.with(|c| -> Result<()> {
                if reader.needs_input() && c.buffered().is_empty() {
                    c.read_more()?;
                }
                let (used, ev) = reader.next(c.buffered())?;
                match ev {
                    Some(Event::Done { ok: false, text })
                        if !text.to_ascii_uppercase().contains("[EXPUNGEISSUED]") =>
                    {
                        refused = Some(protocol(format!(
                            "UID FETCH: the server said {}",
                            escape(&text)
                        )));
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
                Ok(())
            });
            if let Err(e) = step {
                // Said first: why the body was refused (a flood that
                // followed is the consequence).
                self.broken = true;
                return Err(failure.unwrap_or(e));
            }
        }
        Ok(failure.or(refused))
    }

    /// Read and drop the replies to every FETCH still on its way (after a
    /// failure, so that the next command reads its own reply).
    pub fn discard_fetches(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            self.read_reply(u64::MAX, &mut |_| Ok(()))?;
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
        self.ensure_caps()?;
        if !self.caps.uidplus {
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
        self.ensure_caps()?;
        for chunk in uids.chunks(1000) {
            let set = uid_set(chunk);
            if self.caps.move_ {
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
                if !self.caps.uidplus {
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

    /// IDLE (RFC 2177) in the selected folder until the server reports a
    /// new message or a flag change, `max` passes, or `stop()` is true
    /// (looked at twice a second); then DONE and the tagged OK.
    pub fn idle(&mut self, max: std::time::Duration, stop: &dyn Fn() -> bool) -> Result<Idled> {
        use std::time::{Duration, Instant};
        let tag = format!("F{}", self.next_tag);
        self.next_tag += 1;
        self.begin(&format!("{tag} IDLE"), SMALL_REPLY);
        let ui = self.ui;
        self.raw.with(|c| -> Result<()> {
            c.send(format!("{tag} IDLE\r\n").as_bytes())?;
            // Untagged lines may come before the continuation.
            for _ in 0..1000 {
                let line = read_line(c)?;
                ui.trace("S:", &line);
                if line.starts_with('+') {
                    return Ok(());
                }
                if let Some(rest) = line.strip_prefix(&tag) {
                    return Err(protocol(format!(
                        "the server refused IDLE:{}",
                        escape(rest)
                    )));
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
            let wait = (end - now).min(Duration::from_millis(500));
            let line = self.raw.with(|c| -> Result<Option<String>> {
                if !c.wait_readable(wait, &mut budget)? {
                    return Ok(None);
                }
                match crate::pop3::proto::line_end(c.buffered(), MAX_LINE)? {
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
            ui.trace("S:", &line);
            match idle_line(&line) {
                IdleLine::Activity => break Idled::Activity,
                IdleLine::Bye => {
                    return Err(temporary(format!(
                        "the server ended the idle session: {}",
                        escape(&line)
                    )));
                }
                IdleLine::Other => {}
            }
        };
        self.begin("DONE", SMALL_REPLY);
        self.raw.with(|c| -> Result<()> {
            c.send(b"DONE\r\n")?;
            for _ in 0..100_000 {
                let line = read_line(c)?;
                ui.trace("S:", &line);
                if let Some(rest) = line.strip_prefix(&tag).and_then(|r| r.strip_prefix(' ')) {
                    if rest.to_ascii_uppercase().starts_with("OK") {
                        return Ok(());
                    }
                    return Err(protocol(format!("IDLE ended with: {}", escape(rest))));
                }
            }
            Err(protocol("no end to IDLE after 100000 lines"))
        })?;
        Ok(outcome)
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

fn login_error(text: &str) -> Error {
    let upper = text.to_ascii_uppercase();
    if upper.contains("[UNAVAILABLE]") || upper.contains("[INUSE]") || upper.contains("[LIMIT]") {
        return temporary(format!(
            "server refused the login for now: {}",
            escape(text)
        ));
    }
    auth(format!("authentication failed: {}", escape(text)))
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
    fn quoted_names_are_unescaped() {
        assert_eq!(unescape_quoted(r"a\\b"), r"a\b");
        assert_eq!(unescape_quoted(r#"say \"hi\""#), r#"say "hi""#);
        assert_eq!(unescape_quoted(r"\\\\"), r"\\");
        assert_eq!(unescape_quoted(r"plain/name.x"), "plain/name.x");
        assert_eq!(unescape_quoted(r"lone\x\"), r"lone\x\");
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 11, 9]), "1:3,7,9:11");
    }

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

    #[test]
    fn login_errors() {
        assert_eq!(login_error("[AUTHENTICATIONFAILED] no").kind, Kind::Auth);
        assert_eq!(login_error("[UNAVAILABLE] later").kind, Kind::Temporary);
    }
}
