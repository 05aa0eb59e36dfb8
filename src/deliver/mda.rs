//! Delivery through an MDA command (procmail, maildrop, a script): one run
//! of the command per message, the message on its stdin. Exit status 0
//! means delivered; anything else is a delivery failure and the message
//! stays on the server. The command's stdout goes to our stderr: our stdout
//! carries data only.
//!
//! A pipe cannot be made durable by us: the MDA's exit status is the proof.
//! Each success is journalled at once (one fsync per message), so the
//! window in which a crash could deliver a message twice is the moment
//! between the MDA's exit and that fsync.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use crate::deliver::mda_cmd;
use crate::deliver::spool::Spool;
use crate::deliver::{Deliver, MessageInfo, Outcome, unix_now};
use crate::error::{Result, internal, local_io};
use crate::ledger::{Entry, Ledger};

pub struct Mda {
    raw: String,
    cmd: mda_cmd::Mda,
    user: String,
    spool: Spool,
}

impl Mda {
    pub fn open(cmd: &str, user: &str, state_dir: &std::path::Path) -> Result<Mda> {
        Ok(Mda {
            raw: cmd.to_string(),
            cmd: mda_cmd::parse(cmd)?,
            user: user.to_string(),
            spool: Spool::new(state_dir, false)?,
        })
    }

    /// Run the MDA on one spooled message; Ok(()) when it exited 0.
    fn deliver_one(&self, item: &crate::deliver::spool::Item) -> Result<()> {
        let argv = mda_cmd::expand(&self.cmd, &item.sender, &self.user);
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| internal("empty MDA command"))?;
        let to_stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| local_io("cannot set up the MDA's output").because(e))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(to_stderr))
            .spawn()
            .map_err(|e| local_io(format!("cannot run the MDA {:?}", self.raw)).because(e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let fed = self
            .spool
            .copy_to(item, &mut stdin)
            .and_then(|_| stdin.flush());
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| local_io(format!("waiting for the MDA {:?}", self.raw)).because(e))?;
        if !status.success() {
            return Err(local_io(format!(
                "the MDA {:?} failed ({status})",
                self.raw
            )));
        }
        // Exit 0 but it did not read the whole message: not delivered.
        if let Err(e) = fed {
            return Err(local_io(format!(
                "the MDA {:?} exited 0 without reading the whole message ({e})",
                self.raw
            )));
        }
        Ok(())
    }
}

impl Deliver for Mda {
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
            return Err(internal("MDA commit: keys and messages differ in number"));
        }
        let mut out = Vec::with_capacity(items.len());
        for (key, item) in keys.iter().zip(&items) {
            match self.deliver_one(item) {
                Ok(()) => {
                    let entry = Entry {
                        name: "mda".into(),
                        size: item.len,
                        time: unix_now(),
                        flags: String::new(),
                    };
                    ledger.delivered(key, entry.clone());
                    ledger.commit()?;
                    out.push(Outcome::Delivered {
                        entry,
                        location: self.raw.clone(),
                    });
                }
                Err(e) => out.push(Outcome::Failed(e)),
            }
        }
        self.spool.clear();
        Ok(out)
    }
}
