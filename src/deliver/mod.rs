//! Destinations for fetched mail, behind one trait.
//!
//! A message streams in through [`Deliver::begin`], [`Deliver::write`] and
//! [`Deliver::end`] (or [`Deliver::abort`]); it is then staged, not yet
//! delivered. [`Deliver::commit`] delivers every staged message and records
//! each in the ledger, in the order that destination's durability needs:
//! Maildir publishes by rename, mbox appends under its locks, an MDA is a
//! pipe whose exit status decides, stdout is a pipe that cannot prove
//! anything. Each destination owns that order; `run/` owns when a batch
//! is committed, and that the server is changed only for messages the
//! commit reports delivered.

pub mod maildir;
pub mod mbox;
pub mod mbox_lock;
pub mod mboxrd;
pub mod mda;
pub mod mda_cmd;
pub mod smtp;
pub mod spool;
pub mod stdout;

use std::path::Path;

use crate::error::Result;
use crate::ledger::{Entry, Ledger};
use crate::types::Destination;

/// What a destination needs to know beyond where it is.
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    /// The user mail is delivered for (`%T` of an MDA command).
    pub user: String,
    /// The longest wait for another program's lock on an mbox.
    pub lock_wait: std::time::Duration,
    /// LMTP/SMTP: the envelope recipient.
    pub recipient: String,
    /// LMTP/SMTP: for connecting and for each reply.
    pub timeout: std::time::Duration,
    /// LMTP/SMTP: whom to trust after STARTTLS.
    pub trust: crate::net::TlsSettings,
    /// LMTP/SMTP: hand mail to a remote server without TLS.
    pub allow_plaintext: bool,
}

/// What is known about a message before its bytes arrive.
#[derive(Debug, Clone, Default)]
pub struct MessageInfo {
    /// When the server received it (seconds since the epoch), if it says.
    pub received: Option<i64>,
    /// Its flags as sorted Maildir letters (`D`raft, `F`lagged, `R`eplied,
    /// `S`een, `T`rashed), when the server keeps flags (IMAP).
    pub flags: Option<String>,
}

/// CRLF -> LF for message bytes that arrive in pieces (IMAP literals): a
/// CR at the end of one piece is held until the next shows what follows.
#[derive(Debug, Default)]
pub struct CrlfToLf {
    held_cr: bool,
}

impl CrlfToLf {
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if self.held_cr {
            self.held_cr = false;
            if rest.first() != Some(&b'\n') {
                out.push(b'\r');
            }
        }
        while let Some(p) = memchr::memchr(b'\r', rest) {
            out.extend_from_slice(&rest[..p]);
            match rest.get(p + 1) {
                Some(b'\n') => {}
                Some(_) => out.push(b'\r'),
                None => self.held_cr = true,
            }
            rest = &rest[p + 1..];
        }
        out.extend_from_slice(rest);
    }

    /// The message ended: a CR still held was data.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            out.push(b'\r');
        }
    }
}

/// What became of one staged message at commit.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered and recorded: the server may forget it. `location` says
    /// where it went, for reports: a file path, `MBOX@OFFSET`, the MDA
    /// command, or `-` for stdout.
    Delivered { entry: Entry, location: String },
    /// Not delivered (e.g. the MDA refused it); it stays on the server and
    /// the run fails with this error's kind and message.
    Failed(crate::error::Error),
    /// Refused for good (an LMTP or SMTP server's 5xx, in `reason` with
    /// the server's words): recorded as rejected in the ledger, so later
    /// runs leave it on the server without offering it again until asked;
    /// the run goes on with the other messages.
    Rejected { reason: String, size: u64 },
}

pub trait Deliver {
    /// Start a message.
    fn begin(&mut self, info: &MessageInfo) -> Result<()>;
    /// More of the message (line endings already LF).
    fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// The message is complete; it stays staged until [`Deliver::commit`].
    /// Returns the bytes it will occupy.
    fn end(&mut self) -> Result<u64>;
    /// Throw away the message in progress.
    fn abort(&mut self);
    /// Messages staged and not yet committed.
    fn staged(&self) -> usize;
    /// Deliver every staged message (or the batch [`Deliver::start_commit`]
    /// started) and record it in `ledger` under the matching key
    /// (`keys.len() == self.commit_len()`), durably. Returns one
    /// outcome per message, in order. An `Err` means nothing more can be
    /// said: messages not reported delivered must be treated as not.
    fn commit(&mut self, ledger: &mut Ledger, keys: &[String]) -> Result<Vec<Outcome>>;
    /// Begin making the staged messages durable without waiting (Maildir:
    /// their files are synced on another thread), so that the next batch
    /// can stage meanwhile; the next [`Deliver::commit`] completes this
    /// batch, not the messages staged since. At most one batch is started
    /// at a time. Returns false (and starts nothing) when the destination
    /// commits only in place.
    fn start_commit(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// How many messages the next [`Deliver::commit`] covers: the started
    /// batch, or else the staged messages.
    fn commit_len(&self) -> usize {
        self.staged()
    }
    /// Remove this account's leftovers from a crashed run (called under the
    /// account's lock, after recovery).
    fn clean_up(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Open `dest`. `state_dir` is the account's ledger directory (for spool
/// files); `tag` marks our temporary files. For an IMAP folder with a
/// Maildir destination, `subdir` is the folder's Maildir++ subdirectory
/// (e.g. `.Lists.rust`; None is the Maildir root, for INBOX); other
/// destinations take every folder.
pub fn open(
    dest: &Destination,
    opts: &DeliverOptions,
    state_dir: &Path,
    tag: &str,
    subdir: Option<&str>,
) -> Result<Box<dyn Deliver>> {
    Ok(match dest {
        Destination::Maildir(dir) => match subdir {
            None => Box::new(maildir::Maildir::open(dir, tag)?),
            Some(sub) => Box::new(maildir::Maildir::open_subfolder(dir, sub, tag)?),
        },
        Destination::Mbox(path) => Box::new(mbox::Mbox::open(path, state_dir, opts.lock_wait)?),
        Destination::Mda(cmd) => Box::new(mda::Mda::open(cmd, &opts.user, state_dir)?),
        Destination::Stdout => Box::new(stdout::Stdout::open(state_dir)?),
        Destination::Lmtp(server) => Box::new(smtp::MailHandoff::open(
            server.clone(),
            smtp::Dialect::Lmtp,
            opts,
            state_dir,
        )?),
        Destination::Smtp(server) => Box::new(smtp::MailHandoff::open(
            server.clone(),
            smtp::Dialect::Smtp,
            opts,
            state_dir,
        )?),
    })
}

/// The destination of a run that must not deliver (`--check`): opening it
/// creates nothing, and using it is a bug.
pub struct Nowhere;

impl Deliver for Nowhere {
    fn begin(&mut self, _: &MessageInfo) -> Result<()> {
        Err(crate::error::internal("a --check run tried to deliver"))
    }
    fn write(&mut self, _: &[u8]) -> Result<()> {
        Err(crate::error::internal("a --check run tried to deliver"))
    }
    fn end(&mut self) -> Result<u64> {
        Err(crate::error::internal("a --check run tried to deliver"))
    }
    fn abort(&mut self) {}
    fn staged(&self) -> usize {
        0
    }
    fn commit(&mut self, _: &mut Ledger, _: &[String]) -> Result<Vec<Outcome>> {
        Ok(Vec::new())
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_to_lf_any_split() {
        let input = b"a\r\nb\rc\r\r\n\r";
        let want = b"a\nb\rc\r\n\r";
        for split in 1..input.len() {
            let mut c = CrlfToLf::default();
            let mut out = Vec::new();
            for piece in input.chunks(split) {
                c.convert(piece, &mut out);
            }
            c.finish(&mut out);
            assert_eq!(out, want, "split {split}");
        }
    }
}
