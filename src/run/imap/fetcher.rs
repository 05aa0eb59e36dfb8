//! A folder's download: the FETCH commands planned by count and bytes and
//! pipelined, bodies streamed into the destination as they arrive (in any
//! order), batches committed as they fill, and what the commits said.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Opened, folder_only, key};
use crate::config::Account;
use crate::deliver::{CrlfToLf, Deliver, MessageInfo, Outcome};
use crate::error::{Error, Result};
use crate::imap::fetch::Event;
use crate::imap::flags::{self, Flags};
use crate::imap::{Meta, Session, uid_set};
use crate::ledger::Ledger;
use crate::report::progress::Progress;
use crate::report::{Action, Ui};
use crate::run::{Batches, Summary, batch_messages};
use crate::sanitize::escape;

/// Bodies fetched in one command add up to at most this (a larger
/// message goes alone).
const FETCH_BYTES: u64 = 4 << 20;
/// At most this many bodies in one command.
const FETCH_MESSAGES: usize = 200;
/// FETCH commands whose bodies are still to come, at once, asking for at
/// most this many bytes of bodies not yet received between them (the
/// replies wait in the socket buffers; memory stays as bounded as with one
/// command). The window is topped up every `REFILL` bytes received, not
/// when a command's tagged reply comes: a server may hold those until every
/// command on its way is answered, and the pipe would run dry.
const PIPELINE: usize = 8;
const PIPELINE_BYTES: u64 = 16 << 20;
const REFILL: u64 = 2 << 20;

/// The FETCH commands for `metas`, in groups bounded by count and bytes; a
/// message larger than `FETCH_BYTES` goes alone. Whole bodies always: the
/// reader streams them at bounded memory, and a server may answer
/// pipelined commands in any order (Dovecot runs them in parallel), which
/// whole bodies, each one response named by its UID, make harmless.
fn plan_requests(metas: &[Meta]) -> VecDeque<Req> {
    let mut out = VecDeque::new();
    // No more per command than a batch holds (only tests lower the batch).
    let per_command = FETCH_MESSAGES.min(batch_messages());
    let mut i = 0;
    while i < metas.len() {
        let mut uids = Vec::new();
        let mut bytes = 0;
        while i < metas.len()
            && uids.len() < per_command
            && (uids.is_empty() || bytes + metas[i].size <= FETCH_BYTES)
        {
            bytes += metas[i].size;
            uids.push(metas[i].uid);
            i += 1;
        }
        out.push_back(Req { uids, bytes });
    }
    out
}

/// The download of one folder's new mail into its destination.
pub(super) struct Fetcher<'a> {
    acct: &'a Account,
    ui: &'a Ui,
    folder: &'a str,
    /// The folder's name decoded, for reports.
    shown: &'a str,
    uv: u32,
    dest: &'a mut dyn Deliver,
    /// Staged and in flight, not yet committed: (uid, key, flags for the
    /// ledger).
    batches: Batches<(u32, String, String)>,
    /// Committed: (uid, key).
    committed: Vec<(u32, String)>,
    failures: Vec<Error>,
    /// UIDs the destination refused.
    failed_uids: Vec<u32>,
    /// --resync: SHA-256 of what is here -> (local name, size).
    resync: Option<HashMap<[u8; 32], (String, u64)>>,
    /// --resync: messages found here already: (uid, name, size, flags).
    rematched: Vec<(u32, String, u64, String)>,
    progress: &'a mut Progress,
}

/// One FETCH command of a folder's download: whole bodies of these
/// messages (their announced sizes add up to `bytes`).
struct Req {
    uids: Vec<u32>,
    bytes: u64,
}

impl Req {
    fn budget(&self) -> u64 {
        Session::body_budget(self.bytes, self.uids.len())
    }

    /// The announced bytes of its bodies that have not begun to arrive.
    fn to_come(&self, seen: &HashSet<u32>, by_uid: &HashMap<u32, &Meta>) -> u64 {
        self.uids
            .iter()
            .filter(|u| !seen.contains(u))
            .map(|u| by_uid.get(u).map_or(0, |m| m.size))
            .sum()
    }
}

/// A body has arrived whole: deliver it (or, with --resync, match it to a
/// file already here).
fn finish_body(
    mut c: Receiving,
    dest: &mut dyn Deliver,
    resync: &mut Option<HashMap<[u8; 32], (String, u64)>>,
    arrived: &mut Arrived,
) -> Result<()> {
    use sha2::Digest;
    let mut out = Vec::new();
    c.conv.finish(&mut out);
    dest.write(&out)?;
    if let Some(mut h) = c.hasher.take() {
        h.update(&out);
        let digest: [u8; 32] = h.finalize().into();
        if let Some((name, size)) = resync.as_mut().and_then(|k| k.remove(&digest)) {
            dest.abort();
            arrived.found.push((c.uid, name, size));
            return Ok(());
        }
    }
    arrived.staged.push((c.uid, dest.end()?));
    Ok(())
}

/// The message whose body is arriving.
struct Receiving {
    uid: u32,
    conv: CrlfToLf,
    hasher: Option<sha2::Sha256>,
}

/// What the bodies of one read brought: (uid, stored bytes) delivered to
/// the destination, and (uid, name, size) found here already (--resync).
#[derive(Default)]
struct Arrived {
    staged: Vec<(u32, u64)>,
    found: Vec<(u32, String, u64)>,
}

impl Fetcher<'_> {
    /// Download `metas` into the destination, committing every
    /// [`batch_messages`] or BATCH_BYTES. The FETCH commands are pipelined: up
    /// to PIPELINE of them, asking for at most PIPELINE_BYTES, are on their
    /// way at any time, so a round trip is paid once, not per command.
    /// Bodies are taken as they come, by UID, whichever command they answer
    /// and in whatever order.
    pub(super) fn fetch_all(
        &mut self,
        session: &mut Session,
        ledger: &mut Ledger,
        metas: &[Meta],
        summary: &mut Summary,
    ) -> Result<()> {
        let by_uid: HashMap<u32, &Meta> = metas.iter().map(|m| (m.uid, m)).collect();
        let by_seq: HashMap<u32, u32> = metas.iter().map(|m| (m.seq, m.uid)).collect();
        let mut todo = plan_requests(metas);
        let mut sent: VecDeque<Req> = VecDeque::new();
        let mut cur: Option<Receiving> = None;
        let mut seen: HashSet<u32> = HashSet::new();
        let r = (|| -> Result<()> {
            loop {
                // Commands with bodies still to come, and those bodies'
                // announced bytes.
                let (active, to_come) = sent.iter().fold((0, 0), |(n, b), r: &Req| {
                    let left = r.to_come(&seen, &by_uid);
                    (n + usize::from(left > 0), b + left)
                });
                let (mut active, mut to_come) = (active, to_come);
                while let Some(next) = todo.front() {
                    let full =
                        active >= PIPELINE || (active > 0 && to_come + next.bytes > PIPELINE_BYTES);
                    // A stop request ends the download between commands.
                    if full || crate::signals::stop_requested() {
                        break;
                    }
                    let req = todo.pop_front().expect("front exists");
                    session.send_fetch(&uid_set(&req.uids), "(UID BODY.PEEK[])")?;
                    active += 1;
                    to_come += req.bytes;
                    sent.push_back(req);
                }
                if sent.is_empty() {
                    return Ok(());
                }
                // Everything on its way may arrive in this read.
                let budget = sent.iter().map(Req::budget).sum();
                let before = session.fetches_pending();
                let mut arrived = Arrived::default();
                // With more to send, return to send it once REFILL bytes
                // came; else read to the oldest command's tagged reply.
                let enough = if todo.is_empty() { u64::MAX } else { REFILL };
                let r = self.read_bodies(
                    session,
                    &by_uid,
                    &by_seq,
                    &mut cur,
                    &mut seen,
                    &mut arrived,
                    (budget, enough),
                );
                for (uid, n) in arrived.staged {
                    self.stage(by_uid[&uid], n);
                }
                for (uid, name, size) in arrived.found {
                    self.rematch(by_uid[&uid], name, size);
                }
                r?;
                // The commands answered in this read.
                for _ in 0..before - session.fetches_pending() {
                    sent.pop_front();
                }
                // Commit between messages only (nothing half-received).
                if cur.is_none() && self.batches.is_full() {
                    self.rotate(ledger, summary)?;
                }
            }
        })();
        if let Err(e) = r {
            self.dest.abort();
            // A batch already on its way to the disk is kept (the staged
            // one is dropped, and fetched again by the next run).
            if let Err(c) = self.commit_in_flight(ledger, summary) {
                self.ui.warn(&self.acct.name, &c.message());
            }
            // Read what is still on its way, so the connection can serve the
            // next folder. If it cannot, the account stops: with this error
            // if it stops the account anyway, else with the connection's.
            if let Err(d) = session.discard_fetches() {
                return Err(if folder_only(&e) { d } else { e });
            }
            return Err(e);
        }
        if let Some(c) = cur {
            // Every reply was read to its tagged end, so a body cannot
            // still be arriving.
            self.dest.abort();
            return Err(crate::error::internal(format!(
                "message {} was left half received",
                c.uid
            )));
        }
        self.commit(ledger, summary)
    }

    /// One read of FETCH replies (up to the oldest command's tagged reply),
    /// streaming each body into the destination.
    #[allow(clippy::too_many_arguments)]
    fn read_bodies(
        &mut self,
        session: &mut Session,
        by_uid: &HashMap<u32, &Meta>,
        by_seq: &HashMap<u32, u32>,
        cur: &mut Option<Receiving>,
        seen: &mut HashSet<u32>,
        arrived: &mut Arrived,
        (budget, enough): (u64, u64),
    ) -> Result<()> {
        use sha2::Digest;
        let dest = &mut *self.dest;
        let resync = &mut self.resync;
        let mut out = Vec::with_capacity(64 * 1024);
        session.read_fetch_some(budget, enough, &mut |ev| {
            match ev {
                Event::BodyStart {
                    seq,
                    uid,
                    origin,
                    len,
                } => {
                    let uid = uid.or_else(|| by_seq.get(&seq).copied()).ok_or_else(|| {
                        crate::error::protocol("the server sent a body without its UID before it")
                    })?;
                    let meta = by_uid.get(&uid).ok_or_else(|| {
                        crate::error::protocol(format!(
                            "the server sent UID {uid}, which was not asked for"
                        ))
                    })?;
                    if let Some(c) = cur.as_ref() {
                        // Cannot happen: a body is one literal.
                        return Err(crate::error::internal(format!(
                            "UID {uid} began while UID {} was not complete",
                            c.uid
                        )));
                    }
                    if origin.is_some_and(|o| o != 0) {
                        return Err(crate::error::protocol(format!(
                            "the server sent UID {uid} from byte {}, not whole",
                            origin.unwrap_or(0)
                        )));
                    }
                    // RFC822.SIZE may be an estimate (Exchange's is), so a
                    // body may be longer than announced, but not without end.
                    let limit = Session::body_budget(meta.size, 1);
                    if len > limit {
                        return Err(crate::error::protocol(format!(
                            "UID {uid}: the server announced {} bytes and sends {len}",
                            meta.size
                        )));
                    }
                    if !seen.insert(uid) {
                        return Err(crate::error::protocol(format!(
                            "the server sent UID {uid} twice"
                        )));
                    }
                    dest.begin(&info(meta))?;
                    *cur = Some(Receiving {
                        uid,
                        conv: CrlfToLf::default(),
                        hasher: resync.is_some().then(sha2::Sha256::new),
                    });
                }
                Event::BodyData(data) => {
                    if let Some(c) = cur.as_mut() {
                        out.clear();
                        c.conv.convert(data, &mut out);
                        if let Some(h) = c.hasher.as_mut() {
                            h.update(&out);
                        }
                        dest.write(&out)?;
                    }
                }
                Event::BodyEnd => {
                    if let Some(c) = cur.take() {
                        finish_body(c, dest, resync, arrived)?;
                    }
                }
                Event::FetchEnd { .. } | Event::Done { .. } => {}
            }
            Ok(())
        })
    }

    fn rematch(&mut self, m: &Meta, name: String, size: u64) {
        let f = Flags::parse(m.flags.iter().map(String::as_str));
        self.rematched
            .push((m.uid, name, size, flags::to_ledger(&f)));
    }

    fn stage(&mut self, m: &Meta, stored: u64) {
        self.progress.message_done(m.size);
        let f = Flags::parse(m.flags.iter().map(String::as_str));
        self.batches.push(
            (
                m.uid,
                key(self.uv, m.uid, self.folder),
                flags::to_ledger(&f),
            ),
            stored,
        );
    }

    /// The staged batch is full: complete the batch in flight, then start
    /// this one's commit so that it becomes durable while the next batch
    /// downloads; or commit it in place when the destination cannot.
    fn rotate(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        self.commit_in_flight(ledger, summary)?;
        if self.batches.start(&mut *self.dest)? {
            return Ok(());
        }
        self.commit(ledger, summary)
    }

    /// Commit the batch in flight, then the staged one.
    fn commit(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        self.commit_in_flight(ledger, summary)?;
        let items = self.batches.take_staged();
        self.commit_items(items, ledger, summary)
    }

    fn commit_in_flight(&mut self, ledger: &mut Ledger, summary: &mut Summary) -> Result<()> {
        let items = self.batches.take_in_flight();
        self.commit_items(items, ledger, summary)
    }

    /// Commit `items` (the next batch the destination commits), and act on
    /// the outcomes.
    fn commit_items(
        &mut self,
        items: Vec<(u32, String, String)>,
        ledger: &mut Ledger,
        summary: &mut Summary,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = items.iter().map(|(_, k, _)| k.clone()).collect();
        if self.dest.commit_len() != keys.len() {
            return Err(crate::error::internal(format!(
                "{} messages to commit but {} keys",
                self.dest.commit_len(),
                keys.len()
            )));
        }
        let outcomes = self.dest.commit(ledger, &keys)?;
        for ((uid, k, fl), outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered { entry, location } => {
                    summary.fetched += 1;
                    summary.bytes += entry.size;
                    self.ui.message(
                        &self.acct.name,
                        Some(self.shown),
                        Some(&uid.to_string()),
                        entry.size,
                        Some(&location),
                        Action::Delivered,
                    );
                    ledger.set_flags(&k, &fl);
                    self.committed.push((uid, k));
                }
                Outcome::Failed(e) => {
                    self.ui.warn(
                        &self.acct.name,
                        &format!(
                            "{} UID {uid} stays on the server: {}",
                            escape(self.folder),
                            e.message()
                        ),
                    );
                    self.failed_uids.push(uid);
                    self.failures.push(e);
                }
                Outcome::Rejected { reason, size } => {
                    self.ui.rejected(
                        &self.acct.name,
                        Some(self.shown),
                        Some(&uid.to_string()),
                        size,
                        &reason,
                    );
                    summary.rejected += 1;
                    // The folder's last UID stays below it, so that
                    // --retry-rejected finds it again.
                    self.failed_uids.push(uid);
                }
            }
        }
        Ok(())
    }
}

/// What a folder's download left behind.
pub(super) struct Downloaded {
    /// Committed: (uid, key).
    pub committed: Vec<(u32, String)>,
    /// Why messages the destination refused stay on the server.
    pub failures: Vec<Error>,
    /// Their UIDs.
    pub failed_uids: Vec<u32>,
    /// --resync: messages found here already: (uid, name, size, flags).
    pub rematched: Vec<(u32, String, u64, String)>,
}

impl<'a> Fetcher<'a> {
    pub(super) fn new(
        acct: &'a Account,
        ui: &'a Ui,
        folder: &'a Opened,
        dest: &'a mut dyn Deliver,
        resync: Option<HashMap<[u8; 32], (String, u64)>>,
        progress: &'a mut Progress,
    ) -> Fetcher<'a> {
        Fetcher {
            acct,
            ui,
            folder: folder.name,
            shown: &folder.shown,
            uv: folder.uv(),
            dest,
            batches: Batches::default(),
            committed: Vec::new(),
            failures: Vec::new(),
            failed_uids: Vec::new(),
            resync,
            rematched: Vec::new(),
            progress,
        }
    }

    /// What the download did.
    pub(super) fn finish(self) -> Downloaded {
        Downloaded {
            committed: self.committed,
            failures: self.failures,
            failed_uids: self.failed_uids,
            rematched: self.rematched,
        }
    }
}

fn info(m: &Meta) -> MessageInfo {
    let f = Flags::parse(m.flags.iter().map(String::as_str));
    MessageInfo {
        received: m.received,
        flags: Some(flags::maildir_letters(&f)),
    }
}
