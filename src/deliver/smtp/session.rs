//! One LMTP or SMTP session over a [`Conn`]: greeting, LHLO/EHLO,
//! STARTTLS, then one transaction per message (RSET, MAIL, RCPT, DATA,
//! pipelined when offered), and QUIT.
//!
//! The order that keeps the hand-off narrow: after the message's final
//! `.` nothing is sent until its reply is in, and the caller records the
//! message only once that reply said 250. A connection lost between the
//! `.` and the reply leaves the message undecided: it stays on the mail
//! server we fetched it from and is offered again next run, so it may
//! arrive twice; every MTA hand-off has this window (RFC 1047).

use std::io::Write;
use std::net::IpAddr;

use super::proto::{Caps, Reply, Stuffer, parse_reply};
use crate::deliver::DeliverOptions;
use crate::deliver::spool::{Item, Spool};
use crate::error::{Error, Result, config, protocol, temporary, unavailable};
use crate::net::{Conn, from_io};
use crate::types::MailServer;

/// LMTP (RFC 2033) or SMTP (RFC 5321): the same dialogue, but LMTP greets
/// with LHLO and answers the end of the data once per recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Lmtp,
    Smtp,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Lmtp => "LMTP",
            Dialect::Smtp => "SMTP",
        }
    }
}

/// What became of one message.
#[derive(Debug)]
pub enum Verdict {
    /// The final 250: the mail server has it.
    Accepted,
    /// A 4xx (or a local reason to wait): not delivered; try again later.
    Deferred(Error),
    /// A 5xx (or the server lacks what the message needs): the reason.
    Rejected(String),
}

pub struct Session {
    conn: Conn,
    dialect: Dialect,
    caps: Caps,
    /// A transaction happened: RSET before the next.
    used: bool,
    recipient: String,
}

impl Session {
    /// Connect, read the greeting, LHLO/EHLO, and STARTTLS when the server
    /// is not on this machine.
    pub fn open(server: &MailServer, dialect: Dialect, opts: &DeliverOptions) -> Result<Session> {
        let (conn, remote) = match server {
            MailServer::Unix(path) => (Conn::connect_unix(path, opts.timeout)?, None),
            MailServer::Tcp { host, port } => {
                let conn = Conn::connect(host, *port, opts.timeout)?;
                (conn, (!is_loopback(host)).then_some(host.as_str()))
            }
        };
        let mut s = Session {
            conn,
            dialect,
            caps: Caps::default(),
            used: false,
            recipient: recipient(&opts.recipient, dialect),
        };
        let greeting = s.reply()?;
        if greeting.code != 220 {
            let what = format!(
                "the {} server {} did not greet with 220",
                dialect.name(),
                s.conn.peer
            );
            return Err(match greeting.class() {
                4 => temporary(what),
                5 => unavailable(what),
                _ => protocol(what),
            }
            .server_said(greeting.words()));
        }
        s.hello()?;
        if let Some(host) = remote {
            if s.caps.starttls {
                s.command(b"STARTTLS\r\n")?;
                let r = s.reply()?;
                if r.code != 220 {
                    return Err(unavailable(format!(
                        "{} refused STARTTLS; nothing was sent",
                        s.conn.peer
                    ))
                    .server_said(r.words()));
                }
                s.conn.start_tls(host, &opts.trust)?;
                // RFC 3207 section 4.2: forget what was said before TLS.
                s.hello()?;
            } else if !opts.allow_plaintext {
                return Err(unavailable(format!(
                    "{} does not offer STARTTLS; fetch will not hand mail to a remote server \
                     without TLS unless --allow-plaintext-smtp",
                    s.conn.peer
                )));
            }
        }
        Ok(s)
    }

    /// LHLO or EHLO, and the capabilities. An SMTP server that does not
    /// know EHLO gets HELO (and is then used without extensions).
    fn hello(&mut self) -> Result<()> {
        let verb = match self.dialect {
            Dialect::Lmtp => "LHLO",
            Dialect::Smtp => "EHLO",
        };
        let me = helo_name();
        self.command(format!("{verb} {me}\r\n").as_bytes())?;
        let r = self.reply()?;
        if r.class() == 2 {
            self.caps = Caps::parse(&r);
            return Ok(());
        }
        if self.dialect == Dialect::Smtp && r.class() == 5 {
            self.command(format!("HELO {me}\r\n").as_bytes())?;
            let r2 = self.reply()?;
            if r2.class() == 2 {
                self.caps = Caps::default();
                return Ok(());
            }
        }
        Err(self.refusal(&r, &format!("{verb} was refused")))
    }

    /// Hand one spooled message over.
    pub fn deliver(&mut self, spool: &Spool, item: &Item) -> Result<Verdict> {
        let sender = item.return_path.clone().unwrap_or_default();
        let utf8 = !sender.is_ascii() || !self.recipient.is_ascii();
        if utf8 && !self.caps.smtputf8 {
            return Ok(Verdict::Rejected(format!(
                "its envelope has a non-ASCII address and the {} server does not offer SMTPUTF8",
                self.dialect.name()
            )));
        }
        if item.eight_bit && !self.caps.eight_bit_mime {
            return Ok(Verdict::Rejected(format!(
                "it has 8-bit bytes and the {} server does not offer 8BITMIME",
                self.dialect.name()
            )));
        }
        let mut mail = format!("MAIL FROM:<{sender}>");
        if item.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", item.len));
        }
        let commands = [
            self.used.then(|| "RSET".to_string()),
            Some(mail),
            Some(format!("RCPT TO:<{}>", self.recipient)),
            Some("DATA".to_string()),
        ];
        let commands: Vec<String> = commands.into_iter().flatten().collect();
        self.used = true;
        let mut replies = Vec::with_capacity(commands.len());
        if self.caps.pipelining {
            let all: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
            self.command(all.as_bytes())?;
            for _ in &commands {
                replies.push(self.reply()?);
            }
        } else {
            for c in &commands {
                self.command(format!("{c}\r\n").as_bytes())?;
                let r = self.reply()?;
                let stop = r.class() != 2 && r.class() != 3;
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        let offset = usize::from(commands[0] == "RSET");
        if offset == 1 && replies[0].class() != 2 {
            return Err(self.refusal(&replies[0], "RSET was refused"));
        }
        // The first refusal among MAIL and RCPT decides; then DATA's 354.
        let data_ok = replies.len() == offset + 3 && replies[offset + 2].code == 354;
        for (i, r) in replies.iter().enumerate().skip(offset) {
            let verb = ["MAIL", "RCPT", "DATA"][i - offset];
            if (verb != "DATA" && r.class() == 2) || (verb == "DATA" && r.code == 354) {
                continue;
            }
            if r.class() < 4 {
                return Err(self.refusal(r, &format!("{verb} got an unexpected reply")));
            }
            // A 354 after a refused MAIL or RCPT (no pipelining server
            // should): end that empty transaction before the next.
            if data_ok {
                self.command(b".\r\n")?;
                self.reply()?;
            }
            let bad_address =
                matches!(r.code, 501 | 553) || r.enhanced.is_some_and(|e| e.0 == 5 && e.1 == 1);
            if verb == "RCPT" && bad_address {
                // 5.1.x, 501, 553: the address itself is bad (unknown user,
                // bad syntax). That is our setting, not this message's
                // fault: stop before every message is refused the same way.
                return Err(config(format!(
                    "the {} server does not accept the recipient <{}> (--deliver-to)",
                    self.dialect.name(),
                    self.recipient
                ))
                .server_said(r.words()));
            }
            return Ok(self.verdict(r, verb));
        }
        if !data_ok {
            return Err(protocol(format!(
                "{}: the server stopped answering in the middle of a transaction",
                self.conn.peer
            )));
        }
        self.send_data(spool, item)?;
        // Nothing more is sent until this reply is in. LMTP answers once
        // per accepted recipient; there is one.
        let r = self.reply().map_err(|e| {
            temporary(format!(
                "the connection to {} failed after the whole message was sent and before \
                 the server answered; the message may have been delivered and will be \
                 offered again next run",
                self.conn.peer
            ))
            .because(e)
        })?;
        Ok(self.verdict(&r, "the end of the data"))
    }

    /// Stream the message: CRLF, dot-stuffed, in pieces of 64 KiB.
    fn send_data(&mut self, spool: &Spool, item: &Item) -> Result<()> {
        let mut w = DataWriter {
            conn: &mut self.conn,
            stuffer: Stuffer::default(),
            out: Vec::with_capacity(DATA_CHUNK + 1024),
        };
        spool.copy_to(item, &mut w).map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<Error>()) {
                from_io(e)
            } else {
                crate::error::local_io("reading the spool").because(e)
            }
        })?;
        let DataWriter {
            conn,
            mut stuffer,
            mut out,
        } = w;
        stuffer.finish(&mut out);
        conn.send(&out)
    }

    fn verdict(&self, r: &Reply, after: &str) -> Verdict {
        match r.class() {
            2 => Verdict::Accepted,
            4 => Verdict::Deferred(
                temporary(format!(
                    "the {} server deferred it at {after}",
                    self.dialect.name()
                ))
                .server_said(r.words()),
            ),
            _ => Verdict::Rejected(format!(
                "the {} server rejected it at {after}: {}",
                self.dialect.name(),
                crate::sanitize::escape(&r.words())
            )),
        }
    }

    /// An error for a refused session command.
    fn refusal(&self, r: &Reply, what: &str) -> Error {
        let what = format!("{}: {what}", self.conn.peer);
        match r.class() {
            4 => temporary(what),
            5 => unavailable(what),
            _ => protocol(what),
        }
        .server_said(r.words())
    }

    /// Say goodbye (best effort: everything is recorded by now).
    pub fn quit(mut self) {
        if self.command(b"QUIT\r\n").is_ok() {
            let _ = self.reply();
        }
        self.conn.shutdown();
    }

    /// Hang up without a word (after a failure mid-transaction: the server
    /// then discards what it has of it).
    pub fn abort(mut self) {
        self.conn.shutdown();
    }

    fn command(&mut self, bytes: &[u8]) -> Result<()> {
        self.conn.send(bytes)
    }

    fn reply(&mut self) -> Result<Reply> {
        self.conn.begin_reply();
        loop {
            match parse_reply(self.conn.buffered()) {
                Ok(Some((r, n))) => {
                    self.conn.consume(n);
                    return Ok(r);
                }
                Ok(None) => {
                    self.conn.read_more()?;
                }
                Err(why) => {
                    return Err(protocol(format!(
                        "the {} server {} sent something that is not a reply: {why}",
                        self.dialect.name(),
                        self.conn.peer
                    )));
                }
            }
        }
    }
}

/// What DATA is written in.
const DATA_CHUNK: usize = 64 * 1024;

/// The spool's bytes out to the server as DATA.
struct DataWriter<'c> {
    conn: &'c mut Conn,
    stuffer: Stuffer,
    out: Vec<u8>,
}

impl Write for DataWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stuffer.push(buf, &mut self.out);
        if self.out.len() >= DATA_CHUNK {
            self.conn.send(&self.out).map_err(std::io::Error::other)?;
            self.out.clear();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The address for RCPT TO: SMTP needs a domain, and a bare user name
/// gets `@localhost`, as fetchmail gives it; an LMTP server (Dovecot) takes
/// the user name as it is.
fn recipient(given: &str, dialect: Dialect) -> String {
    if dialect == Dialect::Smtp && !given.contains('@') {
        format!("{given}@localhost")
    } else {
        given.to_string()
    }
}

/// Whether `host` is this machine: STARTTLS is not asked of a loopback
/// server (the traffic never leaves the host).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The name we greet with: this host's name when it is a plain DNS name,
/// else `localhost`.
fn helo_name() -> String {
    let h = crate::platform::hostname();
    let plain = !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if plain { h } else { "localhost".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for h in ["localhost", "127.0.0.1", "127.5.0.1", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["mail.example.org", "10.0.0.1", "::2", "localhost.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
