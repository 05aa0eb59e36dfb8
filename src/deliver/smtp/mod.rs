//! Delivery by handing each message to a mail server over LMTP (Dovecot's
//! `lmtp`, RFC 2033) or SMTP (Postfix, Exim; RFC 5321), so that its
//! filters, spam checks and quotas apply.
//!
//! Messages of a batch are spooled while they download (`spool.rs`, the
//! bytes as they came, LF line ends); at commit one session, opened at the
//! first commit and kept for the run, hands them over one by one
//! (`session.rs`; `proto.rs` is the sans-io reply parser and the DATA
//! encoding). The envelope sender is the message's Return-Path, else `<>`;
//! the recipient is `--deliver-to`.
//!
//! What the server's reply means, and what is recorded at once (one
//! fsync each, as the MDA does: the window in which a crash could
//! deliver a message twice is the moment between the reply and that fsync):
//! - 250 (LMTP: the recipient's reply): delivered; the ledger records it,
//!   and only then may the run delete or flag it on the server.
//! - 4xx: deferred; nothing recorded, it stays on the server for the next
//!   run (exit 75).
//! - 5xx: rejected; recorded as such with the server's words, it stays on
//!   the server and is not offered again until `--retry-rejected` or
//!   `--all`. The run goes on.
//! - The connection fails: this message and the rest of the batch stay on
//!   the server (exit 75).

mod proto;
mod session;

use crate::deliver::spool::Spool;
use crate::deliver::{Deliver, DeliverOptions, MessageInfo, Outcome, unix_now};
use crate::error::{Result, internal};
use crate::ledger::{Entry, Ledger, Rejection};
use crate::types::MailServer;
pub use proto::fuzz as fuzz_reply;
pub use session::{Dialect, is_loopback};
use session::{Session, Verdict};

pub struct MailHandoff {
    server: MailServer,
    dialect: Dialect,
    opts: DeliverOptions,
    spool: Spool,
    session: Option<Session>,
}

impl MailHandoff {
    /// Nothing is connected until the first commit: a run with no new mail
    /// never talks to the mail server.
    pub fn open(
        server: MailServer,
        dialect: Dialect,
        opts: &DeliverOptions,
        state_dir: &std::path::Path,
    ) -> Result<MailHandoff> {
        Ok(MailHandoff {
            server,
            dialect,
            opts: opts.clone(),
            spool: Spool::new(state_dir, false)?,
            session: None,
        })
    }

    /// Where messages go, for reports: `lmtp:/run/dovecot/lmtp`,
    /// `smtp:HOST:PORT`.
    fn location(&self) -> String {
        let scheme = match self.dialect {
            Dialect::Lmtp => "lmtp",
            Dialect::Smtp => "smtp",
        };
        match &self.server {
            MailServer::Unix(p) => format!("{scheme}:{}", p.display()),
            MailServer::Tcp { host, port } => format!("{scheme}:{host}:{port}"),
        }
    }

    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            self.session = Some(Session::open(&self.server, self.dialect, &self.opts)?);
        }
        Ok(self.session.as_mut().expect("opened above"))
    }
}

impl Deliver for MailHandoff {
    fn begin(&mut self, info: &MessageInfo) -> Result<()> {
        self.spool.begin(info);
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.spool.write(chunk)
    }

    fn end(&mut self) -> Result<u64> {
        self.spool.end()
    }

    fn abort(&mut self) {
        self.spool.abort();
    }

    fn staged(&self) -> usize {
        self.spool.items().len()
    }

    fn commit(&mut self, ledger: &mut Ledger, keys: &[String]) -> Result<Vec<Outcome>> {
        let items = self.spool.items().to_vec();
        if items.len() != keys.len() {
            self.spool.clear();
            return Err(internal(
                "mail server commit: keys and messages differ in number",
            ));
        }
        if let Err(e) = self.session() {
            // Nothing was handed over: the whole batch stays on the server.
            self.spool.clear();
            return Err(e);
        }
        let out = self.hand_over(ledger, keys, &items);
        // Whatever happened, this batch is done with: what was not
        // reported delivered stays on the server.
        self.spool.clear();
        out
    }
}

impl MailHandoff {
    /// Hand the spooled messages over one by one, recording each verdict
    /// at once; stops at the first failure of the ledger itself.
    fn hand_over(
        &mut self,
        ledger: &mut Ledger,
        keys: &[String],
        items: &[crate::deliver::spool::Item],
    ) -> Result<Vec<Outcome>> {
        let location = self.location();
        let mut out = Vec::with_capacity(items.len());
        let mut broken = None;
        for (key, item) in keys.iter().zip(items) {
            if let Some(e) = &broken {
                out.push(Outcome::Failed(crate::error::Error::clone(e)));
                continue;
            }
            let session = self.session.as_mut().expect("opened by commit");
            let verdict = match session.deliver(&self.spool, item) {
                Ok(v) => v,
                Err(e) => {
                    // The session is in an unknown state: hang up, and
                    // leave this message and the rest for the next run.
                    if let Some(s) = self.session.take() {
                        s.abort();
                    }
                    if e.kind == crate::error::Kind::Config {
                        return Err(e);
                    }
                    out.push(Outcome::Failed(e.clone()));
                    broken = Some(e);
                    continue;
                }
            };
            out.push(match verdict {
                Verdict::Accepted => {
                    let entry = Entry {
                        name: location.clone(),
                        size: item.len,
                        time: unix_now(),
                        flags: String::new(),
                    };
                    ledger.delivered(key, entry.clone());
                    ledger.commit()?;
                    Outcome::Delivered {
                        entry,
                        location: location.clone(),
                    }
                }
                Verdict::Deferred(e) => Outcome::Failed(e),
                Verdict::Rejected(reason) => {
                    let rejection = Rejection {
                        time: unix_now(),
                        reason: reason.clone(),
                    };
                    ledger.rejected(key, rejection);
                    ledger.commit()?;
                    Outcome::Rejected {
                        reason,
                        size: item.len,
                    }
                }
            });
        }
        Ok(out)
    }
}

impl Drop for MailHandoff {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            s.quit();
        }
    }
}
