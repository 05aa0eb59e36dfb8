//! Per-account orchestration, and the only place that decides the order of
//! delivery, commit and server mutation (`pop3.rs`, `imap/`). Common to
//! both: password -> lock ledger -> recover (`recover.rs`) -> the protocol's
//! run, in which a batch of messages streams into the destination, the
//! destination's commit makes it durable and recorded (e.g. Maildir: fsync
//! files -> journal intents -> rename into new/ + fsync new/ -> journal
//! "delivered"), and only then is the server changed, and only for what the
//! commit reports delivered.

mod batch;
pub mod idle;
pub mod imap;
pub mod login;
pub mod pop3;
mod recover;
mod show_cert;
pub mod slots;

use std::time::Instant;

pub use batch::{BATCH_BYTES, BATCH_MESSAGES, Batches, batch_messages};
use recover::recover;
use show_cert::show_cert;

use crate::config::{Account, Mode};
use crate::error::{Result, config};
use crate::ledger::{self, Ledger};
use crate::report::{Ui, human_bytes};
use crate::secret::Secret;
use crate::types::Protocol;

/// What one account's run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub fetched: usize,
    pub bytes: u64,
    pub deleted: usize,
    /// IMAP: messages whose flags changed on one side or the other.
    pub flags_synced: usize,
    /// Messages an LMTP or SMTP server rejected in this run (they stay on
    /// the server), and those left alone because one did before.
    pub rejected: usize,
    pub rejected_before: usize,
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
        if self.rejected_before > 0 {
            s.push_str(&format!(
                ", {} rejected earlier left on the server (--retry-rejected)",
                self.rejected_before
            ));
        }
        s
    }

    /// After a run that went through: the error (exit 65) that says
    /// messages were rejected in it, if any were.
    pub fn rejected_error(&self) -> Result<()> {
        if self.rejected == 0 {
            return Ok(());
        }
        Err(crate::error::data(format!(
            "the mail server rejected {} message(s); they stay on the server and are not \
             offered again unless --retry-rejected (the other messages were delivered)",
            self.rejected
        )))
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
/// the run needs it: `--show-cert` does not). `slot` is the account's
/// place under its server's max_connections if the caller took it already
/// (schedule/pool.rs); without one, the run waits for one.
pub fn run(
    acct: &Account,
    ui: &Ui,
    password: &dyn Fn() -> Result<Secret>,
    slot: Option<slots::Slot>,
) -> Result<Summary> {
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
    // A slot under the server's max_connections, held until the session
    // (and a retry after a token refresh) is over; taken after the lock, so
    // that a run stopped by another's lock does not hold one.
    let _slot = match slot {
        Some(slot) => slot,
        None => slots::acquire(acct, slots::Use::Run, &|cap| {
            ui.detail(&acct.name, &slots::waiting_note(cap))
        })?,
    };
    let mut summary = std::thread::scope(|scope| {
        let mut ledger = LedgerSoon {
            state: Loading::Running(scope.spawn(|| prepare(locked, acct, ui))),
        };
        let mut result = match acct.protocol {
            Protocol::Pop3 => pop3::run(acct, ui, &mut ledger, password),
            Protocol::Imap => imap::run(acct, ui, &mut ledger, password),
        };
        // A token from the built-in store that the server turned down
        // although it should be valid (revoked early, clock skew): refresh
        // it once and log in again. Only a login fails with Auth, so
        // nothing has happened yet but the login.
        if let Err(e) = &result
            && e.kind == crate::error::Kind::Auth
            && let Some(fresh) = crate::password::renew(&acct.password_sources())?
        {
            ui.detail(
                &acct.name,
                "the server rejected the OAuth access token; refreshed it",
            );
            result = match acct.protocol {
                Protocol::Pop3 => pop3::run(acct, ui, &mut ledger, fresh),
                Protocol::Imap => imap::run(acct, ui, &mut ledger, fresh),
            };
        }
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
