//! A POP3 account's run: list, retrieve (pipelined) into the destination in
//! batches, commit each batch, and only then DELE, and only what the commit
//! reports delivered; QUIT; record what the server confirmed it deleted.
//!
//! A failure in the middle still commits the messages that arrived whole,
//! then drops the connection without QUIT, so the server deletes nothing
//! from this session; the next run sends the DELEs without downloading again.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::{Batches, LedgerSoon, Summary};
use crate::config::Account;
use crate::deliver::{self, Deliver, MessageInfo, Outcome};
use crate::error::{Error, Result, protocol, temporary};
use crate::hash;
use crate::ledger::{self, Ledger};
use crate::pop3::{Listed, Retrieved, Session};
use crate::report::progress::Progress;
use crate::report::{Action, Ui};
use crate::sanitize::escape;
use crate::secret::Secret;

/// RETRs kept in flight when the server pipelines.
const PIPELINE_WINDOW: usize = 1024;

/// Fetch one POP3 account; the ledger is locked, and loaded and recovered
/// while the session connects and lists.
pub fn run(
    acct: &Account,
    ui: &Ui,
    ledger: &mut LedgerSoon<'_>,
    password: Secret,
) -> Result<Summary> {
    let mut session = Session::connect(&acct.endpoint(), ui)?;
    session.login(&acct.login(&password))?;
    drop(password);
    let listing = session.listing()?;
    let listing = listing.messages();

    let ledger = ledger.get()?;
    let mut dest: Box<dyn Deliver> = if acct.read_only() {
        Box::new(deliver::Nowhere)
    } else {
        let id = acct.ledger_id();
        let mut d = deliver::open(
            &acct.dest,
            &acct.deliver_options(),
            ledger.dir(),
            &ledger::account_tag(&id),
            None,
        )?;
        d.clean_up()?;
        d
    };

    let mut run = Run {
        acct,
        ui,
        ledger,
        dest: dest.as_mut(),
        session,
        batches: Batches::default(),
        dele_keys: HashMap::new(),
        failures: Vec::new(),
        summary: Summary::default(),
        progress: Progress::new(ui, &acct.name),
    };
    let outcome = run.fetch(&listing);
    let Run {
        session,
        mut summary,
        dele_keys,
        failures,
        ledger,
        ..
    } = run;
    outcome?;
    if acct.read_only() {
        // Nothing was sent but listings: say goodbye and change nothing.
        let mut session = session;
        session.quit()?;
        return Ok(summary);
    }
    finish(acct, ledger, session, dele_keys, &listing, &mut summary)?;
    if let Some(first) = failures.into_iter().next() {
        return Err(first);
    }
    summary.rejected_error()?;
    Ok(summary)
}

/// One message to retrieve.
struct Job {
    msgno: u32,
    size: u64,
    /// The ledger key (`u:UIDL`), or None when the server has no UIDL and
    /// the key is the content hash, known only after download.
    key: Option<String>,
}

struct Run<'a, 'u> {
    acct: &'a Account,
    ui: &'u Ui,
    ledger: &'a mut Ledger,
    dest: &'a mut dyn Deliver,
    session: Session<'u>,
    /// Staged and in flight, not yet committed: (msgno, ledger key).
    batches: Batches<(u32, String)>,
    /// DELEs sent this session: msgno -> ledger key.
    dele_keys: HashMap<u32, String>,
    /// Messages the destination refused (they stay on the server).
    failures: Vec<Error>,
    summary: Summary,
    progress: Progress,
}

impl Run<'_, '_> {
    /// Plan and fetch.
    fn fetch(&mut self, listing: &[Listed]) -> Result<()> {
        let uidl_mode = listing.iter().all(|m| m.uidl.is_some());
        let deletes = self.acct.deletes();
        if !deletes && !uidl_mode {
            return Err(protocol(
                "the server does not support UIDL, which is needed to leave mail on the \
                 server and tell new messages from old ones; run in delete mode instead",
            ));
        }
        let mut jobs = Vec::new();
        let mut delete_only = Vec::new();
        // One buffer for the ledger keys looked up: no allocation per message
        // on a large server with nothing new.
        let mut key = String::new();
        for m in listing {
            match &m.uidl {
                Some(uidl) => {
                    uidl_key(&mut key, uidl);
                    if self.ledger.contains(&key) && !self.acct.all {
                        if deletes {
                            delete_only.push((m.msgno, key.clone()));
                        }
                    } else if self.ledger.rejection(&key).is_some() && !self.acct.retries_rejected()
                    {
                        // Refused for good by the mail server: left alone.
                        self.summary.rejected_before += 1;
                    } else {
                        jobs.push(Job {
                            msgno: m.msgno,
                            size: m.size,
                            key: Some(key.clone()),
                        });
                    }
                }
                None => jobs.push(Job {
                    msgno: m.msgno,
                    size: m.size,
                    key: None,
                }),
            }
        }
        // Too large for --max-size: reported, left on the server.
        if let Some(max) = self.acct.max_size {
            jobs.retain(|j| {
                if j.size <= max {
                    return true;
                }
                let uid = j.key.as_deref().and_then(|k| k.strip_prefix("u:"));
                self.ui.warn(
                    &self.acct.name,
                    &format!(
                        "message {} ({} bytes) is larger than --max-size {max}; left on the server",
                        j.msgno, j.size
                    ),
                );
                self.ui
                    .message(&self.acct.name, None, uid, j.size, None, Action::Skipped);
                false
            });
        }
        if let Some(n) = self.acct.limit {
            jobs.truncate(n);
        }
        // --keep --delete-after DAYS: server copies first fetched longer
        // ago than that go (getmail's delete_after).
        if let (true, Some(days)) = (self.acct.keep, self.acct.delete_after) {
            let cutoff = deliver::unix_now().saturating_sub(days.saturating_mul(86_400));
            for m in listing {
                if let Some(uidl) = &m.uidl {
                    uidl_key(&mut key, uidl);
                    if self.ledger.get(&key).is_some_and(|e| e.time <= cutoff) {
                        delete_only.push((m.msgno, key.clone()));
                    }
                }
            }
        }
        if self.acct.read_only() {
            self.summary.available = jobs.len();
            self.summary.available_bytes = jobs.iter().map(|j| j.size).sum();
            if self.acct.dry_run() {
                self.report_plan(listing, &jobs, &delete_only);
            }
            return Ok(());
        }
        self.progress
            .add(jobs.len() as u64, jobs.iter().map(|j| j.size).sum());
        // Messages delivered by an earlier run but not yet deleted: their
        // local copies are committed, so delete them without downloading.
        for (n, key) in delete_only {
            self.session.queue_dele(n)?;
            self.dele_keys.insert(n, key);
        }
        // Hash keys from an interrupted run without UIDL: a message whose
        // content matches was delivered already; it is only deleted. (Only
        // looked for when some message has no UIDL: the walk touches every
        // ledger entry.)
        let delivered_hashes: HashSet<String> = if uidl_mode {
            HashSet::new()
        } else {
            self.ledger
                .keys()
                .filter(|k| k.starts_with("h:"))
                .cloned()
                .collect()
        };

        if let Err(e) = self.retrieve(&jobs, &delivered_hashes) {
            // Keep whatever arrived whole, then hang up without QUIT.
            self.dest.abort();
            let kept = self.commit_batch(false);
            self.session.abort();
            kept?;
            return Err(e);
        }
        Ok(())
    }

    /// `--dry-run`: what [`Run::fetch`] would do with this plan.
    fn report_plan(&mut self, listing: &[Listed], jobs: &[Job], delete_only: &[(u32, String)]) {
        let name = &self.acct.name;
        let deletes = self.acct.deletes();
        let label = |msgno: u32, key: Option<&str>| match key.and_then(|k| k.strip_prefix("u:")) {
            Some(uidl) => format!("message {msgno} (UIDL {})", escape(uidl)),
            None => format!("message {msgno}"),
        };
        for j in jobs {
            let uidl = j.key.as_deref().and_then(|k| k.strip_prefix("u:"));
            let then = if deletes {
                ", then delete it from the server"
            } else {
                ""
            };
            let what = format!(
                "would fetch {}, {} bytes{then}",
                label(j.msgno, j.key.as_deref()),
                j.size
            );
            self.ui
                .would(name, None, uidl, j.size, Action::WouldFetch, &what);
            if deletes {
                self.ui
                    .would(name, None, uidl, j.size, Action::WouldDelete, "");
                self.summary.would_delete += 1;
            }
        }
        let sizes: HashMap<u32, u64> = listing.iter().map(|m| (m.msgno, m.size)).collect();
        for (n, key) in delete_only {
            let size = sizes.get(n).copied().unwrap_or(0);
            let why = if deletes {
                "delivered by an earlier run"
            } else {
                "first fetched longer ago than --delete-after"
            };
            let what = format!(
                "would delete {} from the server ({why})",
                label(*n, Some(key))
            );
            self.ui.would(
                name,
                None,
                key.strip_prefix("u:"),
                size,
                Action::WouldDelete,
                &what,
            );
            self.summary.would_delete += 1;
        }
    }

    fn retrieve(&mut self, jobs: &[Job], delivered_hashes: &HashSet<String>) -> Result<()> {
        let window = if self.session.pipelining() {
            PIPELINE_WINDOW
        } else {
            1
        };
        let mut next = 0;
        for (i, job) in jobs.iter().enumerate() {
            // Asked to stop (SIGTERM/SIGINT): send no more RETRs, take in
            // the ones already on their way, then end normally.
            let stopping = crate::signals::stop_requested();
            if stopping && i == next {
                break;
            }
            // Top the window up once half of it has been read, so that the
            // RETRs go out in a few large writes, not one write each.
            let refill = next == i || self.session.retrs_in_flight() <= window / 2;
            while refill
                && !stopping
                && next < jobs.len()
                && (next == i || self.session.retrs_in_flight() < window)
            {
                self.session.queue_retr(jobs[next].msgno)?;
                next += 1;
                if !self.session.pipelining() {
                    break;
                }
            }
            self.session.flush()?;

            self.dest.begin(&MessageInfo::default())?;
            let mut hasher = job.key.is_none().then(Sha256::new);
            let dest = &mut *self.dest;
            let got = self.session.read_retr(job.msgno, job.size, &mut |chunk| {
                if let Some(h) = hasher.as_mut() {
                    h.update(chunk);
                }
                dest.write(chunk)
            });
            let (wire, written) = match got {
                Err(e) => {
                    self.dest.abort();
                    return Err(e);
                }
                Ok(Retrieved::Refused(text)) => {
                    self.dest.abort();
                    self.ui.warn(
                        &self.acct.name,
                        &format!(
                            "server refused to send message {}: {}; it stays on the server",
                            job.msgno,
                            escape(&text)
                        ),
                    );
                    continue;
                }
                Ok(Retrieved::Done { wire, written }) => (wire, written),
            };
            // A server appends CRLF to a message that lacks a final line
            // break (the terminator needs one) without counting it in LIST:
            // that is not a discrepancy worth a warning.
            if wire != job.size && wire != job.size + 2 {
                self.ui.warn(
                    &self.acct.name,
                    &format!(
                        "message {}: LIST announced {} bytes but the server sent {wire}",
                        job.msgno, job.size
                    ),
                );
            }
            let key = match (&job.key, hasher) {
                (Some(k), _) => k.clone(),
                (None, Some(h)) => format!("h:{}", ledger::hex(&h.finalize())),
                (None, None) => unreachable!("a hasher exists when there is no key"),
            };
            if job.key.is_none() && delivered_hashes.contains(&key) {
                // Delivered by an interrupted earlier run.
                self.dest.abort();
                if self.acct.deletes() {
                    self.session.queue_dele(job.msgno)?;
                    self.dele_keys.insert(job.msgno, key);
                }
                continue;
            }
            self.dest.end()?;
            self.progress.message_done(job.size);
            self.batches.push((job.msgno, key), written);
            if self.batches.is_full() {
                self.rotate_batch()?;
            }
        }
        // After the loop, not inside it: an iteration that skips a message
        // must not be able to skip the last commit.
        self.commit_batch(true)
    }

    /// The staged batch is full: complete the batch in flight (its DELEs
    /// go out now), then start this one's commit, so that it becomes
    /// durable while the next batch downloads; or commit it in place when
    /// the destination cannot.
    fn rotate_batch(&mut self) -> Result<()> {
        self.commit_in_flight(true)?;
        if self.batches.start(&mut *self.dest)? {
            return Ok(());
        }
        self.commit_batch(true)
    }

    /// Deliver and record the batch in flight, then the staged one; then
    /// (when `then_delete` and the account deletes) queue DELEs for what
    /// the destination delivered.
    fn commit_batch(&mut self, then_delete: bool) -> Result<()> {
        self.commit_in_flight(then_delete)?;
        let items = self.batches.take_staged();
        self.commit_items(items, then_delete)
    }

    fn commit_in_flight(&mut self, then_delete: bool) -> Result<()> {
        let items = self.batches.take_in_flight();
        self.commit_items(items, then_delete)
    }

    /// Commit `items` (the next batch the destination commits), and act on
    /// the outcomes.
    fn commit_items(&mut self, items: Vec<(u32, String)>, then_delete: bool) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = items.iter().map(|(_, k)| k.clone()).collect();
        if self.dest.commit_len() != keys.len() {
            return Err(crate::error::internal(format!(
                "{} messages to commit but {} keys",
                self.dest.commit_len(),
                keys.len()
            )));
        }
        let outcomes = self.dest.commit(self.ledger, &keys)?;
        for ((n, key), outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered { entry, location } => {
                    self.summary.fetched += 1;
                    self.summary.bytes += entry.size;
                    self.ui.message(
                        &self.acct.name,
                        None,
                        key.strip_prefix("u:"),
                        entry.size,
                        Some(&location),
                        Action::Delivered,
                    );
                    // Only now may the server forget this message.
                    if then_delete && self.acct.deletes() {
                        self.session.queue_dele(n)?;
                        self.dele_keys.insert(n, key);
                    }
                }
                Outcome::Failed(e) => {
                    self.ui.warn(
                        &self.acct.name,
                        &format!("message {n} stays on the server: {e}"),
                    );
                    self.failures.push(e);
                }
                Outcome::Rejected { reason, size } => {
                    let uid = key.strip_prefix("u:");
                    self.ui.rejected(&self.acct.name, None, uid, size, &reason);
                    self.summary.rejected += 1;
                }
            }
        }
        Ok(())
    }
}

/// QUIT, then record what the server confirmed it deleted.
fn finish(
    acct: &Account,
    ledger: &mut Ledger,
    mut session: Session<'_>,
    dele_keys: HashMap<u32, String>,
    listing: &[Listed],
    summary: &mut Summary,
) -> Result<()> {
    let confirmed = session.quit()?;
    if !confirmed {
        return Err(temporary(
            "the server reported an error at QUIT; its deletions may not have happened \
             and will be retried on the next run",
        ));
    }
    // Whatever the mode, a confirmed DELE means the message is gone.
    for n in &session.dele_accepted {
        if let Some(key) = dele_keys.get(n) {
            ledger.removed(key);
            summary.deleted += 1;
        }
    }
    if acct.deletes() {
        let on_server = server_ids(listing);
        let refused: HashSet<u32> = session.dele_refused.iter().map(|(n, _)| *n).collect();
        // Entries for messages no longer on the server (deleted by us in a
        // run whose end was not recorded, or by someone else) are done with.
        // Content-hash keys cannot be matched against the listing; after a
        // complete run, any not refused just now belongs to a message that
        // is gone.
        let refused_keys: HashSet<&String> =
            refused.iter().filter_map(|n| dele_keys.get(n)).collect();
        let stale: Vec<String> = ledger
            .keys()
            .filter(|k| {
                if k.starts_with("h:") {
                    !refused_keys.contains(k)
                } else {
                    !is_on_server(&on_server, k)
                }
            })
            .cloned()
            .collect();
        for k in stale {
            ledger.removed(&k);
        }
        let gone: Vec<String> = ledger
            .rejected_keys()
            .filter(|k| !is_on_server(&on_server, k))
            .cloned()
            .collect();
        for k in gone {
            ledger.forget_rejection(&k);
        }
        ledger.write_buffered()?;
    }
    if acct.deletes() {
        ledger.maybe_compact(|_| true)?;
    } else if ledger.compaction_due() {
        // Keep mode: what left the server is forgotten when the ledger is
        // rewritten anyway (the set is built only then).
        let on_server = server_ids(listing);
        ledger.compact(|k| is_on_server(&on_server, k))?;
    }
    if let Some((n, text)) = session.dele_refused.first() {
        return Err(protocol(format!(
            "the server refused to delete {} message(s) (message {n}: {}); they are \
             saved locally and will be deleted on the next run",
            session.dele_refused.len(),
            escape(text)
        )));
    }
    Ok(())
}

/// The ledger key of a message with unique id `uidl`, written into `key`.
fn uidl_key(key: &mut String, uidl: &str) {
    key.clear();
    key.push_str("u:");
    key.push_str(uidl);
}

/// The unique ids the server listed.
fn server_ids<'a>(listing: &[Listed<'a>]) -> hash::Set<&'a str> {
    let mut ids = hash::set(listing.len());
    ids.extend(listing.iter().filter_map(|m| m.uidl));
    ids
}

/// Whether the ledger key `key` names a message the server listed.
fn is_on_server(on_server: &hash::Set<&str>, key: &str) -> bool {
    key.strip_prefix("u:")
        .is_some_and(|uidl| on_server.contains(uidl))
}
