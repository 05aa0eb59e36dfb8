//! Delivery to stdout as an mboxrd stream, for pipes
//! (`fetch ... --stdout | grep ...`).
//!
//! A pipe cannot prove the mail was kept, so by default nothing written here
//! is deleted from the server (see `Account::deletes`); with
//! `--delete-after-stdout` the user vouches for the reader. Each message is
//! recorded in the ledger once its last byte is flushed, so a later run does
//! not write it again. A closed pipe (EPIPE: `| head`) stops the run
//! cleanly: what was written is recorded, the connection is dropped without
//! QUIT (the server changes nothing), and the exit status is 0.

use std::io::Write;

use crate::deliver::spool::Spool;
use crate::deliver::{Deliver, MessageInfo, Outcome, unix_now};
use crate::error::{Error, Kind, Result, internal, local_io};
use crate::ledger::{Entry, Ledger};

pub struct Stdout {
    spool: Spool,
}

impl Stdout {
    pub fn open(state_dir: &std::path::Path) -> Result<Stdout> {
        Ok(Stdout {
            spool: Spool::new(state_dir, true)?,
        })
    }
}

impl Deliver for Stdout {
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
            return Err(internal(
                "stdout commit: keys and messages differ in number",
            ));
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut failure = None;
        for (key, item) in keys.iter().zip(&items) {
            if let Err(e) = self.spool.copy_to(item, &mut out).and_then(|_| out.flush()) {
                failure = Some(if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Error::new(Kind::PipeClosed, "stdout was closed")
                } else {
                    local_io("writing to stdout").because(e)
                });
                break;
            }
            let entry = Entry {
                name: "stdout".into(),
                size: item.len,
                time: unix_now(),
                flags: String::new(),
            };
            ledger.delivered(key, entry.clone());
            outcomes.push(Outcome::Delivered {
                entry,
                location: "-".into(),
            });
        }
        ledger.commit()?;
        self.spool.clear();
        match failure {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }
}
