//! Per-account orchestration, and the only place that decides the order of
//! delivery, commit and server mutation (`pop3.rs`, `imap/`). Common to
//! both: password -> lock ledger -> recover ([`recover`]) -> the protocol's
//! run, in which a batch of messages streams into the destination, the
//! destination's commit makes it durable and recorded (e.g. Maildir: fsync
//! files -> journal intents -> rename into new/ + fsync new/ -> journal
//! "delivered"), and only then is the server changed, and only for what the
//! commit reports delivered.

pub mod idle;
pub mod imap;
pub mod pop3;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use crate::config::{Account, Mode};
use crate::deliver::{maildir, mbox, unix_now};
use crate::error::{Result, config};
use crate::ledger::{self, Entry, Ledger, Target};
use crate::report::{Ui, human_bytes};
use crate::secret::Secret;
use crate::types::Protocol;

/// A batch is committed (one group of fsyncs) after this many messages...
pub const BATCH_MESSAGES: usize = 256;
/// ... or this many bytes, whichever comes first.
pub const BATCH_BYTES: u64 = 32 << 20;

/// [`BATCH_MESSAGES`], which debug builds (what `cargo test` runs) let a
/// test lower with FETCH_BATCH_MESSAGES=N, so that a crash test with a few
/// messages still goes through several batches.
pub fn batch_messages() -> usize {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("FETCH_BATCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    BATCH_MESSAGES
}

/// The messages of a run between download and commit: the batch being
/// staged, and the one whose commit the destination started
/// ([`Deliver::start_commit`](crate::deliver::Deliver::start_commit)).
/// The protocol's run commits the batch in flight before starting the
/// next, and acts on each batch's outcomes.
pub struct Batches<T> {
    staged: Vec<T>,
    in_flight: Vec<T>,
    staged_bytes: u64,
}

impl<T> Default for Batches<T> {
    fn default() -> Batches<T> {
        Batches {
            staged: Vec::new(),
            in_flight: Vec::new(),
            staged_bytes: 0,
        }
    }
}

impl<T> Batches<T> {
    /// A message staged in the destination, taking `bytes` there.
    pub fn push(&mut self, item: T, bytes: u64) {
        self.staged.push(item);
        self.staged_bytes += bytes;
    }

    /// The staged batch has reached [`batch_messages`] or [`BATCH_BYTES`].
    pub fn is_full(&self) -> bool {
        self.staged.len() >= batch_messages() || self.staged_bytes >= BATCH_BYTES
    }

    pub fn take_in_flight(&mut self) -> Vec<T> {
        std::mem::take(&mut self.in_flight)
    }

    pub fn take_staged(&mut self) -> Vec<T> {
        self.staged_bytes = 0;
        std::mem::take(&mut self.staged)
    }

    /// Start the staged batch's commit in `dest` (commit the batch in
    /// flight first). True: it is in flight now. False: the destination
    /// commits only in place, and the batch is still staged. An error
    /// drops the batch: not delivered, so it stays on the server.
    pub fn start(&mut self, dest: &mut dyn crate::deliver::Deliver) -> Result<bool> {
        debug_assert!(self.in_flight.is_empty());
        match dest.start_commit() {
            Ok(true) => {
                self.in_flight = self.take_staged();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.take_staged();
                Err(e)
            }
        }
    }
}

/// What one account's run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub fetched: usize,
    pub bytes: u64,
    pub deleted: usize,
    /// IMAP: messages whose flags changed on one side or the other.
    pub flags_synced: usize,
    /// `--check`, `--dry-run`: new messages waiting on the server, and
    /// their bytes.
    pub available: usize,
    pub available_bytes: u64,
    /// `--dry-run`: messages that would be deleted or moved on the server,
    /// and whose flags would be synced (either way).
    pub would_delete: usize,
    pub would_flag: usize,
    pub seconds: f64,
}

impl Summary {
    pub fn line(&self) -> String {
        let noun = if self.fetched == 1 {
            "message"
        } else {
            "messages"
        };
        let mut s = format!(
            "{} new {noun} ({}) in {:.1} s",
            self.fetched,
            human_bytes(self.bytes),
            self.seconds
        );
        if self.deleted > 0 {
            s.push_str(&format!(", {} deleted from the server", self.deleted));
        }
        if self.flags_synced > 0 {
            s.push_str(&format!(", {} flags synced", self.flags_synced));
        }
        s
    }

    /// The `--dry-run` summary.
    pub fn dry_run_line(&self) -> String {
        format!(
            "dry run: would fetch {} message(s) ({}), delete or move {} on the server, \
             sync the flags of {}; nothing was changed",
            self.available,
            human_bytes(self.available_bytes),
            self.would_delete,
            self.would_flag
        )
    }
}

/// Set when the process exits once the accounts have run (not a daemon).
static EXIT_FOLLOWS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The process ends after this run of the accounts: a ledger's maps are
/// then left to the exit instead of being freed one entry at a time (two
/// allocations per message, a noticeable part of a run with nothing new on
/// a large mailbox: bench/README.md).
pub fn exit_follows() {
    EXIT_FOLLOWS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Fetch one account, with the password from `password` (asked only once
/// the run needs it: `--show-cert` does not).
pub fn run(acct: &Account, ui: &Ui, password: &dyn Fn() -> Result<Secret>) -> Result<Summary> {
    if acct.mode == Mode::ShowCert {
        show_cert(acct, ui)?;
        return Ok(Summary::default());
    }
    let started = Instant::now();
    let password = password()?;
    let root = ledger::default_root()
        .ok_or_else(|| config("cannot find a state directory: set XDG_STATE_HOME or HOME"))?;
    // The lock first: a second run for the account stops here, before any
    // network. Reading (and recovering) the ledger then overlaps with
    // connecting, logging in and the server's listing, which on a large
    // mailbox take longer than the ledger does.
    let locked = Ledger::lock(&root, &acct.ledger_id())?;
    let mut summary = std::thread::scope(|scope| {
        let mut ledger = LedgerSoon {
            state: Loading::Running(scope.spawn(|| prepare(locked, acct, ui))),
        };
        let result = match acct.protocol {
            Protocol::Pop3 => pop3::run(acct, ui, &mut ledger, password),
            Protocol::Imap => imap::run(acct, ui, &mut ledger, password),
        };
        // A damaged ledger is the thing to report, whatever became of the
        // session meanwhile.
        let outcome = match (result, ledger.get()) {
            (Err(e), Ok(_)) => Err(e),
            (Err(_), Err(e)) => Err(e),
            (Ok(summary), _) => Ok(summary),
        };
        if EXIT_FOLLOWS.load(std::sync::atomic::Ordering::Relaxed)
            && let Loading::Ready(ledger) = std::mem::replace(&mut ledger.state, Loading::Empty)
        {
            ledger.close_for_exit();
        }
        outcome
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Load the ledger and settle what an interrupted run left half-done.
fn prepare(locked: ledger::Locked, acct: &Account, ui: &Ui) -> Result<Ledger> {
    let mut ledger = locked.load()?;
    // --check and --dry-run change nothing, not even a half-done
    // delivery's record.
    if !acct.read_only() {
        recover(&mut ledger, acct, ui)?;
    } else if acct.dry_run() && !ledger.pending_intents().is_empty() {
        ui.warn(
            &acct.name,
            &format!(
                "an interrupted run left {} delivery(ies) unfinished; a real run settles \
                 them first, so some messages listed below may turn out to be here already",
                ledger.pending_intents().len()
            ),
        );
    }
    Ok(ledger)
}

/// An account's ledger that is being loaded on another thread; the
/// protocol's run asks for it once the server has listed its messages.
pub struct LedgerSoon<'s> {
    state: Loading<'s>,
}

enum Loading<'s> {
    Running(std::thread::ScopedJoinHandle<'s, Result<Ledger>>),
    Ready(Box<Ledger>),
    Failed(crate::error::Error),
    Empty,
}

impl LedgerSoon<'_> {
    /// The loaded, recovered ledger: waits for the load, and gives its
    /// error (every time it is asked) if it failed.
    pub fn get(&mut self) -> Result<&mut Ledger> {
        if let Loading::Running(_) = self.state {
            let Loading::Running(handle) = std::mem::replace(&mut self.state, Loading::Empty)
            else {
                unreachable!("matched above")
            };
            self.state = match handle.join() {
                Ok(Ok(ledger)) => Loading::Ready(Box::new(ledger)),
                Ok(Err(e)) => Loading::Failed(e),
                Err(panic) => std::panic::resume_unwind(panic),
            };
        }
        match &mut self.state {
            Loading::Ready(ledger) => Ok(ledger),
            Loading::Failed(e) => Err(e.clone()),
            Loading::Running(_) | Loading::Empty => {
                Err(crate::error::internal("the ledger load went missing"))
            }
        }
    }
}

/// `--show-cert`: connect as the account would, print the TLS session, the
/// certificate and the capabilities on stdout, and send no credential.
fn show_cert(acct: &Account, ui: &Ui) -> Result<()> {
    use std::fmt::Write;
    let ep = acct.endpoint();
    let (info, caps) = match acct.protocol {
        Protocol::Pop3 => {
            let mut s = crate::pop3::Session::connect(&ep, ui)?;
            let info = s.peer_info(&ep);
            let caps = s
                .caps
                .raw
                .iter()
                .map(|c| crate::sanitize::escape(c))
                .collect();
            let _ = s.quit();
            (info, caps)
        }
        Protocol::Imap => crate::imap::inspect(&ep, ui)?,
    };
    let mut out = format!("{}: {}:{}\n", acct.name, acct.host, acct.port);
    match info {
        None => out.push_str("  TLS: none (--tls none)\n"),
        Some(i) => {
            let _ = writeln!(out, "  TLS: {} ({})", i.version, i.cipher);
            let _ = writeln!(out, "  subject: {}", i.subject);
            let _ = writeln!(out, "  issuer: {}", i.issuer);
            let _ = writeln!(out, "  valid: {} to {}", i.not_before, i.not_after);
            let _ = writeln!(out, "  names: {}", i.names.join(", "));
            let _ = writeln!(out, "  sha256: {}", crate::net::fingerprint_hex(&i.sha256));
            match (&acct.fingerprint, &i.untrusted) {
                (Some(pin), _) if *pin == i.sha256 => {
                    out.push_str("  trusted: yes (pinned fingerprint matches)\n")
                }
                (Some(_), _) => out.push_str("  trusted: no (not the pinned fingerprint)\n"),
                (None, None) => out.push_str("  trusted: yes\n"),
                (None, Some(why)) => {
                    let _ = writeln!(
                        out,
                        "  trusted: no ({why}); to trust this certificate itself, use --fingerprint {}",
                        crate::net::fingerprint_hex(&i.sha256)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "  capabilities: {}", caps.join(" | "));
    ui.data(&out);
    Ok(())
}

/// Settle deliveries that a crashed run left half-done, whatever
/// the destination is now: a Maildir intent whose file is in `new/` or
/// `cur/` was delivered; an mbox intent whose bytes are in the mbox, whole
/// and ours, was delivered (a torn one is cut off); anything else was not,
/// and will be fetched again.
fn recover(ledger: &mut Ledger, acct: &Account, ui: &Ui) -> Result<()> {
    let name = acct.name.as_str();
    let intents = ledger.pending_intents().to_vec();
    if intents.is_empty() {
        return Ok(());
    }
    let now = unix_now();
    let (mut found, mut missing) = (0, 0);
    let mut synced: HashSet<PathBuf> = HashSet::new();
    let mut mbox_intents: Vec<(String, PathBuf, u64, u64, u32)> = Vec::new();
    for i in intents {
        match i.target {
            Target::Maildir { dir, name: file } => match maildir::find_in(&dir, &file) {
                Some(path) => {
                    if synced.insert(dir.clone()) {
                        crate::durable::sync_dir(&dir.join("new"))?;
                        crate::durable::sync_dir(&dir.join("cur"))?;
                    }
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    ledger.delivered(
                        &i.key,
                        Entry {
                            name: file,
                            size,
                            time: now,
                            flags: String::new(),
                        },
                    );
                    found += 1;
                }
                None => {
                    ledger.aborted(&i.key);
                    missing += 1;
                }
            },
            Target::Mbox {
                path,
                offset,
                len,
                crc,
            } => mbox_intents.push((i.key, path, offset, len, crc)),
        }
    }
    let mut warn = |msg: String| ui.warn(name, &msg);
    for (key, delivered) in mbox::recover(&mbox_intents, acct.timeout, &mut warn)? {
        match delivered {
            Some(entry) => {
                ledger.delivered(&key, entry);
                found += 1;
            }
            None => {
                ledger.aborted(&key);
                missing += 1;
            }
        }
    }
    ledger.commit()?;
    ui.info(
        name,
        &format!(
            "finished an interrupted run: {found} message(s) were delivered, \
             {missing} will be fetched again"
        ),
    );
    Ok(())
}
