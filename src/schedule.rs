//! Which accounts run when: all of them once, up to `--jobs` at a time; or
//! with `--daemon`, every interval, each failing account backing off on its
//! own; with `--idle`, an IMAP account also as soon as one of its folders
//! has news (`run/idle.rs`). Each account's run is reported as it ends
//! (summary or `--check`/`--dry-run` answer, JSON events, errors).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::config::{Account, Daemon, Mode};
use crate::error::{self, Result};
use crate::report::Ui;
use crate::report::events::{AccountEvent, ErrorEvent, Event};
use crate::secret::Secret;
use crate::types::Protocol;
use crate::{run, signals};

/// Where runs get their passwords. A one-shot run asks each time (once per
/// account); a daemon asks once and keeps the password in memory (as
/// fetchmail does: a prompt every poll would be useless), forgetting it
/// when the server rejects it. OAuth tokens are never kept here.
struct Passwords {
    keep: bool,
    cache: Mutex<HashMap<usize, Secret>>,
}

impl Passwords {
    fn new(keep: bool) -> Passwords {
        Passwords {
            keep,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, i: usize, acct: &Account) -> Result<Secret> {
        // An OAuth access token expires within the hour: its source (the
        // token store, or a helper that caches) is asked every time.
        if !self.keep || acct.auth.is_oauth() {
            return crate::password::obtain(&acct.password_sources());
        }
        // Held while asking, so two threads never prompt at once.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&i) {
            return Ok(s.duplicate());
        }
        let s = crate::password::obtain(&acct.password_sources())?;
        cache.insert(i, s.duplicate());
        Ok(s)
    }

    fn forget(&self, i: usize) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&i);
    }
}

/// Run every account once, up to `jobs` at a time. Returns (exit code,
/// has new mail) per account.
pub fn once(accounts: &[Account], jobs: usize, ui: &Ui) -> Vec<(i32, bool)> {
    // The process exits after this: ledgers need not free their memory.
    run::exit_follows();
    run::slots::limit(accounts);
    let all: Vec<usize> = (0..accounts.len()).collect();
    run_accounts(accounts, jobs, &all, ui, &Passwords::new(false))
}

/// Run the accounts `which` (up to `jobs` at a time), reporting each as
/// it ends. Returns (exit code, has new mail) per account, in `which` order.
fn run_accounts(
    accounts: &[Account],
    jobs: usize,
    which: &[usize],
    ui: &Ui,
    passwords: &Passwords,
) -> Vec<(i32, bool)> {
    let one = |i: usize| {
        let r = run_one(&accounts[i], ui, &|| passwords.get(i, &accounts[i]));
        if r.0 == error::Kind::Auth.exit_code() {
            passwords.forget(i);
        }
        r
    };
    let workers = jobs.min(which.len());
    if workers <= 1 {
        // No threads for the usual case: signals then reach the thread that
        // is doing the work, and a trace shows one thread.
        let mut results = Vec::with_capacity(which.len());
        for &i in which {
            if signals::stop_requested() {
                break;
            }
            results.push(one(i));
        }
        results.resize(which.len(), (0, false));
        return results;
    }
    let results = Mutex::new(vec![(0, false); which.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= which.len() || signals::stop_requested() {
                        return;
                    }
                    let r = one(which[k]);
                    results.lock().unwrap_or_else(|e| e.into_inner())[k] = r;
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Run one account and report it. Returns its exit code and whether it
/// has new mail.
fn run_one(acct: &Account, ui: &Ui, password: &dyn Fn() -> Result<Secret>) -> (i32, bool) {
    let started = Instant::now();
    let (summary, code) = match run::run(acct, ui, password) {
        Ok(summary) => {
            match acct.mode {
                // --check's answer is data: stdout.
                Mode::Check if !ui.json => {
                    ui.data(&format!("{}: {} new\n", acct.name, summary.available));
                }
                Mode::DryRun if !ui.json => {
                    ui.data(&format!("{}: {}\n", acct.name, summary.dry_run_line()));
                }
                Mode::Fetch => ui.info(&acct.name, &summary.line()),
                _ => {}
            }
            (summary, 0)
        }
        Err(e) if e.kind == error::Kind::PipeClosed => (run::Summary::default(), 0),
        Err(e) => {
            let message = e.message();
            ui.error(&acct.name, &message);
            ui.event(&Event::Error(ErrorEvent {
                account: &acct.name,
                kind: e.kind.name(),
                message: &message,
            }));
            (run::Summary::default(), e.kind.exit_code())
        }
    };
    let planned = acct.read_only();
    let dry_run = acct.dry_run();
    ui.event(&Event::Account(AccountEvent {
        account: &acct.name,
        fetched: summary.fetched,
        bytes: summary.bytes,
        deleted: summary.deleted,
        flags_synced: summary.flags_synced,
        new: planned.then_some(summary.available),
        would_delete: dry_run.then_some(summary.would_delete),
        would_flag: dry_run.then_some(summary.would_flag),
        seconds: started.elapsed().as_secs_f64(),
        exit_code: code,
    }));
    (code, summary.available > 0)
}

/// `--daemon`: fetch every account every `interval` until SIGTERM/SIGINT,
/// and with `--idle` an IMAP account also when its watchers report news.
/// A failing account is retried after 2, 4, 8... intervals (at most an
/// hour); the others keep their pace. Exits 0 when asked to stop.
pub fn daemon(accounts: &[Account], jobs: usize, daemon: Daemon, ui: &Ui) -> i32 {
    let passwords = Passwords::new(true);
    run::slots::limit(accounts);
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::scope(|s| {
        if daemon.idle {
            for (i, acct) in accounts.iter().enumerate() {
                if acct.protocol != Protocol::Imap {
                    continue;
                }
                let tx = Mutex::new(tx.clone());
                let passwords = &passwords;
                s.spawn(move || {
                    let news = move || {
                        let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(i);
                    };
                    run::idle::watch(acct, ui, &|| passwords.get(i, acct), &news);
                });
            }
        }
        // A stop signal becomes a message to the loop below, which then
        // sleeps until something is due instead of waking to look at the
        // stop flag (platform/stop.rs).
        let stop_tx = tx.clone();
        s.spawn(move || {
            let slice = if crate::platform::stop::available() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(100)
            };
            while !signals::stop_requested() {
                let _ = crate::platform::stop::wait(None, Some(slice));
            }
            let _ = stop_tx.send(STOP);
        });
        drop(tx);
        poll(accounts, jobs, ui, daemon.interval, &passwords, &rx);
    });
    0
}

/// On the daemon's news channel: not an account, a stop.
const STOP: usize = usize::MAX;

/// The daemon's loop: run what is due, then wait for the next due time or
/// news from a watcher, whichever comes first.
fn poll(
    accounts: &[Account],
    jobs: usize,
    ui: &Ui,
    interval: Duration,
    passwords: &Passwords,
    news: &mpsc::Receiver<usize>,
) {
    let cap = interval.max(Duration::from_secs(3600));
    let mut due = vec![Instant::now(); accounts.len()];
    let mut failures = vec![0u32; accounts.len()];
    while !signals::stop_requested() {
        let now = Instant::now();
        let ready: Vec<usize> = (0..accounts.len()).filter(|&i| due[i] <= now).collect();
        if !ready.is_empty() {
            let results = run_accounts(accounts, jobs, &ready, ui, passwords);
            for (&i, &(code, _)) in ready.iter().zip(&results) {
                if code == 0 {
                    failures[i] = 0;
                    due[i] = now + interval;
                } else {
                    failures[i] = failures[i].saturating_add(1);
                    let backoff = interval.saturating_mul(1 << failures[i].min(16)).min(cap);
                    due[i] = Instant::now() + backoff;
                }
            }
        }
        // Wait until the next account is due or a watcher has news (an
        // account that is backing off keeps its pause).
        let until = due.iter().min().copied().unwrap_or(now + interval);
        while !signals::stop_requested() && Instant::now() < until {
            let wait = until - Instant::now();
            match news.recv_timeout(wait) {
                Ok(STOP) => break,
                Ok(i) => {
                    if failures[i] == 0 {
                        due[i] = Instant::now();
                        // Let a burst of news (a few messages at once) settle
                        // into one run.
                        std::thread::sleep(Duration::from_millis(100));
                        while let Ok(j) = news.try_recv() {
                            if j != STOP && failures[j] == 0 {
                                due[j] = Instant::now();
                            }
                        }
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Nobody left to send (only after a stop): wait for the time,
                // or the stop.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = crate::platform::stop::wait(None, Some(wait));
                }
            }
        }
    }
}
