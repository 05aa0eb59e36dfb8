//! Which accounts run when: all of them once, up to `--jobs` at a time; or
//! with `--daemon`, every interval, each failing account backing off on its
//! own; with `--idle`, an IMAP account also as soon as one of its folders
//! has news (`run/idle.rs`). Each account's run is reported as it ends
//! (summary or `--check`/`--dry-run` answer, JSON events, errors). The
//! jobs take accounts from a queue (`pool.rs`) in an order that lets no
//! full or hung server hold up another's accounts.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::config::{Account, Daemon, Mode};
use crate::error::{self, Result};
use crate::report::Ui;
use crate::report::events::{AccountEvent, ErrorEvent, Event};
use crate::run::slots::Slot;
use crate::secret::Secret;
use crate::types::Protocol;
use crate::{run, signals};

mod pool;
use pool::Pool;

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
    let passwords = Passwords::new(false);
    let one = |i: usize, slot: Option<Slot>| {
        run_one(&accounts[i], ui, &|| passwords.get(i, &accounts[i]), slot)
    };
    let workers = jobs.min(accounts.len());
    if workers <= 1 {
        // No threads for the usual case: signals then reach the thread that
        // is doing the work, and a trace shows one thread.
        let mut results = Vec::with_capacity(accounts.len());
        for i in 0..accounts.len() {
            if signals::stop_requested() {
                break;
            }
            results.push(one(i, None));
        }
        results.resize(accounts.len(), (0, false));
        return results;
    }
    let held_up = held_up(accounts, ui);
    let pool = Pool::new(accounts, &held_up);
    for i in 0..accounts.len() {
        pool.push(i);
    }
    pool.close();
    let results = Mutex::new(vec![(0, false); accounts.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                pool.work(&|i, slot| {
                    let r = one(i, Some(slot));
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = r;
                })
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// What `-v` says when every queued account's server is full, for the
/// first of them: what a run that waits says (run/mod.rs).
fn held_up<'a>(accounts: &'a [Account], ui: &'a Ui) -> impl Fn(usize) + Sync + 'a {
    move |i| {
        let acct = &accounts[i];
        ui.detail(&acct.name, &run::slots::waiting_note(run::slots::cap(acct)));
    }
}

/// Run one account and report it. Returns its exit code and whether it
/// has new mail.
fn run_one(
    acct: &Account,
    ui: &Ui,
    password: &dyn Fn() -> Result<Secret>,
    slot: Option<Slot>,
) -> (i32, bool) {
    let started = Instant::now();
    let (summary, code) = match run::run(acct, ui, password, slot) {
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
/// hour); the others keep their pace, and a slow account holds up no other
/// (each goes back in the queue as it falls due). Exits 0 when asked to
/// stop.
pub fn daemon(accounts: &[Account], jobs: usize, daemon: Daemon, ui: &Ui) -> i32 {
    let passwords = Passwords::new(true);
    run::slots::limit(accounts);
    let held_up = held_up(accounts, ui);
    let pool = Pool::new(accounts, &held_up);
    let (tx, rx) = mpsc::channel::<News>();
    std::thread::scope(|s| {
        if daemon.idle {
            for (i, acct) in accounts.iter().enumerate() {
                if acct.protocol != Protocol::Imap {
                    continue;
                }
                let tx = tx.clone();
                let passwords = &passwords;
                s.spawn(move || {
                    let news = move || {
                        let _ = tx.send(News::Mail(i));
                    };
                    run::idle::watch(acct, ui, &|| passwords.get(i, acct), &news);
                });
            }
        }
        for _ in 0..jobs.clamp(1, accounts.len().max(1)) {
            let tx = tx.clone();
            let (pool, passwords) = (&pool, &passwords);
            s.spawn(move || {
                pool.work(&|i, slot| {
                    let acct = &accounts[i];
                    let (code, _) = run_one(acct, ui, &|| passwords.get(i, acct), Some(slot));
                    if code == error::Kind::Auth.exit_code() {
                        passwords.forget(i);
                    }
                    let _ = tx.send(News::Ran(i, code));
                })
            });
        }
        // A stop signal becomes news for the loop below, which then sleeps
        // until something is due instead of waking to look at the stop
        // flag (platform/stop.rs); the workers are let go.
        let stop_tx = tx.clone();
        let pool = &pool;
        s.spawn(move || {
            let slice = if crate::platform::stop::available() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(100)
            };
            while !signals::stop_requested() {
                let _ = crate::platform::stop::wait(None, Some(slice));
            }
            pool.close();
            let _ = stop_tx.send(News::Stop);
        });
        drop(tx);
        poll(accounts.len(), pool, daemon.interval, &rx);
    });
    0
}

/// What the daemon's loop hears of.
enum News {
    /// A watcher saw new mail for account i.
    Mail(usize),
    /// Account i's run ended with this exit code.
    Ran(usize, i32),
    /// SIGTERM or SIGINT.
    Stop,
}

/// How long news of new mail waits before the account is queued, so that
/// a burst (a few messages at once, several folders) makes one run.
const SETTLE: Duration = Duration::from_millis(100);

/// The daemon's loop: queue each account as it falls due, and wait for the
/// next due time, a run's end or a watcher's news, whichever comes first.
fn poll(n: usize, pool: &Pool, interval: Duration, news: &mpsc::Receiver<News>) {
    let cap = interval.max(Duration::from_secs(3600));
    let mut due = vec![Instant::now(); n];
    let mut failures = vec![0u32; n];
    // Queued or running; `again`: news came meanwhile, so run once more.
    let mut busy = vec![false; n];
    let mut again = vec![false; n];
    while !signals::stop_requested() {
        let now = Instant::now();
        for i in 0..n {
            if !busy[i] && due[i] <= now {
                busy[i] = true;
                again[i] = false;
                pool.push(i);
            }
        }
        let next = (0..n).filter(|&i| !busy[i]).map(|i| due[i]).min();
        let heard = match next {
            Some(until) => news.recv_timeout(until.saturating_duration_since(now)),
            None => news
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match heard {
            Ok(News::Stop) => break,
            // Failing accounts keep their pause: news does not cut it.
            Ok(News::Mail(i)) if failures[i] == 0 => {
                if busy[i] {
                    again[i] = true;
                } else {
                    due[i] = due[i].min(Instant::now() + SETTLE);
                }
            }
            Ok(News::Mail(_)) => {}
            Ok(News::Ran(i, code)) => {
                busy[i] = false;
                if code == 0 {
                    failures[i] = 0;
                    due[i] = if again[i] {
                        Instant::now() + SETTLE
                    } else {
                        Instant::now() + interval
                    };
                } else {
                    failures[i] = failures[i].saturating_add(1);
                    let backoff = interval.saturating_mul(1 << failures[i].min(16)).min(cap);
                    due[i] = Instant::now() + backoff;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Nobody is left to send: only after a stop.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}
