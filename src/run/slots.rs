//! `max_connections`: how many connections this process holds open to one
//! server at a time, across every account and every IDLE watcher, so that
//! `--jobs 64` against one provider does not trip its per-address limit
//! and lock the user out.
//!
//! A server is the endpoint as configured: protocol, host name and port.
//! The host name counts as written (compared without case and without a
//! trailing dot), not by its addresses: two names for one server, or a name
//! and its IP address, are counted apart.
//!
//! A run holds one slot from before it connects until its session is over
//! (an account's run never opens a second connection, so it never waits
//! while holding a slot). An IDLE watcher holds one for as long as it
//! watches, so watchers never take the last slot of a server: runs can
//! always go on, at worst one at a time. Waiting for a slot ends when one
//! is freed or a stop is asked for (SIGTERM, SIGINT); a waiter sleeps until
//! then, so a daemon whose watchers outnumber a server's slots stays idle.

use std::collections::HashMap;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::config::Account;
use crate::error::{Result, temporary, unavailable};
use crate::platform::stop;
use crate::signals::stop_requested;

/// Who wants a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// An account's run: finishes by itself, may take the last slot.
    Run,
    /// An IDLE watcher: holds its slot until stopped, so leaves one free.
    Watch,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Server {
    protocol: &'static str,
    host: String,
    port: u16,
}

impl Server {
    fn of(acct: &Account) -> Server {
        Server {
            protocol: acct.protocol.name(),
            host: acct.host.trim_end_matches('.').to_ascii_lowercase(),
            port: acct.port,
        }
    }
}

#[derive(Debug)]
struct Count {
    cap: usize,
    open: usize,
}

/// The process's servers and their open connections.
struct Table {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    servers: HashMap<Server, Count>,
    /// Counts every slot given back and every [`nudge`], so that a waiter
    /// who looked at the table before can tell whether to look again.
    changes: u64,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    state: Mutex::new(State {
        servers: HashMap::new(),
        changes: 0,
    }),
    changed: Condvar::new(),
});

fn state() -> MutexGuard<'static, State> {
    TABLE.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set each server's cap from the accounts that use it: the smallest
/// `max_connections` among them, so that no account's limit is exceeded
/// on its behalf.
pub fn limit(accounts: &[Account]) {
    let mut table = state();
    for acct in accounts {
        let cap = acct.max_connections.max(1);
        table
            .servers
            .entry(Server::of(acct))
            .and_modify(|c| c.cap = c.cap.min(cap))
            .or_insert(Count { cap, open: 0 });
    }
}

/// The cap on `acct`'s server: the smallest `max_connections` of the
/// accounts that share it.
pub fn cap(acct: &Account) -> usize {
    state()
        .servers
        .get(&Server::of(acct))
        .map_or(acct.max_connections, |c| c.cap)
}

/// What `-v` says of a run that has to wait for one of its server's
/// `cap` connections (run/mod.rs, and schedule/pool.rs's jobs).
pub fn waiting_note(cap: usize) -> String {
    format!("waiting for one of the {cap} connections to the server (max_connections)")
}

/// Whether IDLE watchers may connect to `acct`'s server at all: not when
/// its cap is 1, the one connection being the runs'.
pub fn watchers_allowed(acct: &Account) -> bool {
    cap(acct) > 1
}

/// An open connection's place under its server's cap; given back when
/// dropped.
#[derive(Debug)]
pub struct Slot {
    server: Server,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = state();
        if let Some(c) = table.servers.get_mut(&self.server) {
            c.open = c.open.saturating_sub(1);
        }
        table.changes += 1;
        drop(table);
        TABLE.changed.notify_all();
    }
}

/// What taking a slot at once came to.
enum Take {
    Taken(Slot),
    /// The server's slots are all open; its cap.
    Full(usize),
}

fn take(table: &mut State, acct: &Account, usage: Use) -> Result<Take> {
    let server = Server::of(acct);
    let reserve = if usage == Use::Watch { 1 } else { 0 };
    let count = table.servers.entry(server.clone()).or_insert(Count {
        cap: acct.max_connections.max(1),
        open: 0,
    });
    if count.cap <= reserve {
        return Err(unavailable(format!(
            "max_connections {} to {}:{} leaves no connection for IDLE",
            count.cap, server.host, server.port
        )));
    }
    if count.open + reserve < count.cap {
        count.open += 1;
        return Ok(Take::Taken(Slot { server }));
    }
    Ok(Take::Full(count.cap))
}

/// A slot for a run of `acct`'s if its server has one free now, without
/// waiting: how the scheduler (schedule/pool.rs) passes over an account
/// whose server is full for one whose server is not.
pub fn try_acquire(acct: &Account) -> Option<Slot> {
    match take(&mut state(), acct, Use::Run) {
        Ok(Take::Taken(slot)) => Some(slot),
        _ => None,
    }
}

/// How many times a slot has been given back (or [`nudge`] called) so
/// far: read before looking for a free slot, then given to
/// [`wait_for_change`].
pub fn changes() -> u64 {
    state().changes
}

/// Wait until the count of [`changes`] has moved past `seen` (a slot was
/// given back, new work came, or a stop was asked for).
pub fn wait_for_change(seen: u64) {
    let mut table = state();
    while table.changes == seen && !stop_requested() {
        table = sleep(table);
    }
}

/// Wait on the table's condition variable until notified: a slot given
/// back, a [`nudge`], or a stop. A signal handler cannot notify, so a
/// thread started on the first wait sleeps on the stop pipe
/// (platform/stop.rs) and nudges everyone when it wakes; where that pipe
/// could not be made, waits look at the stop flag four times a second.
fn sleep(table: MutexGuard<'static, State>) -> MutexGuard<'static, State> {
    static WAKER: OnceLock<bool> = OnceLock::new();
    let woken_on_stop = *WAKER.get_or_init(|| {
        stop::available()
            && std::thread::Builder::new()
                .name("stop-waker".into())
                .spawn(|| {
                    loop {
                        if let Ok(stop::Woken::Stop) = stop::wait(None, None) {
                            nudge();
                            if stop_requested() {
                                return;
                            }
                            // The pipe was written without a stop (only a
                            // test does that): do not spin on it.
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .is_ok()
    });
    if woken_on_stop {
        TABLE.changed.wait(table).unwrap_or_else(|e| e.into_inner())
    } else {
        TABLE
            .changed
            .wait_timeout(table, Duration::from_millis(250))
            .unwrap_or_else(|e| e.into_inner())
            .0
    }
}

/// Wake everyone waiting in [`wait_for_change`]: there is new work to
/// look at, or a stop.
pub fn nudge() {
    state().changes += 1;
    TABLE.changed.notify_all();
}

/// A slot for a connection of `acct`'s: at once if its server has one
/// free, else after waiting for one (saying so once through `waiting`).
/// Fails when a stop is asked for meanwhile, and for a watcher when the
/// cap is 1 (the one connection is the runs').
pub fn acquire(acct: &Account, usage: Use, waiting: &dyn Fn(usize)) -> Result<Slot> {
    let mut table = state();
    let mut said = false;
    loop {
        let cap = match take(&mut table, acct, usage)? {
            Take::Taken(slot) => return Ok(slot),
            Take::Full(cap) => cap,
        };
        if stop_requested() {
            return Err(temporary(format!(
                "stopped while waiting for a connection to {}:{} (max_connections {cap})",
                acct.host, acct.port
            )));
        }
        if !said {
            waiting(cap);
            said = true;
        }
        table = sleep(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn account(host: &str, port: u16, cap: usize) -> Account {
        use clap::Parser;
        let (port, cap) = (port.to_string(), cap.to_string());
        let argv = ["fetch", "--imap", host, "-u", "u", "--port", &port];
        let argv = argv
            .into_iter()
            .chain(["--maildir", "/m", "--max-connections", &cap]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        crate::config::resolve(&cli).unwrap().accounts.remove(0)
    }

    #[test]
    fn runs_never_exceed_the_cap_and_all_finish() {
        let acct = account("cap-test.example", 1, 3);
        limit(std::slice::from_ref(&acct));
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let _slot = acquire(&acct, Use::Run, &|_| {}).unwrap();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        now.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(done.load(Ordering::SeqCst), 80);
    }

    #[test]
    fn watchers_leave_the_last_slot_to_runs() {
        let acct = account("Watch-Test.example.", 2, 3);
        let watchers: Vec<Slot> = (0..2)
            .map(|_| acquire(&acct, Use::Watch, &|_| {}).unwrap())
            .collect();
        // The same server however its name is written.
        let same = account("watch-test.EXAMPLE", 2, 3);
        let run = acquire(&same, Use::Run, &|_| {}).unwrap();
        drop(run);
        // A third watcher would take the runs' slot: it waits instead.
        let waited = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                acquire(&acct, Use::Watch, &|_| {
                    waited.fetch_add(1, Ordering::SeqCst);
                })
            });
            while waited.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(watchers);
            assert!(h.join().unwrap().is_ok());
        });
    }

    #[test]
    fn a_cap_of_one_is_for_runs_only() {
        let acct = account("one.example", 3, 1);
        assert!(!watchers_allowed(&acct));
        assert!(watchers_allowed(&account("two.example", 3, 2)));
        assert!(acquire(&acct, Use::Watch, &|_| {}).is_err());
        assert!(acquire(&acct, Use::Run, &|_| {}).is_ok());
    }

    #[test]
    fn servers_with_other_ports_or_names_count_apart() {
        let a = account("apart.example", 4, 1);
        let b = account("apart.example", 5, 1);
        let c = account("other.example", 4, 1);
        let _x = acquire(&a, Use::Run, &|_| {}).unwrap();
        let _y = acquire(&b, Use::Run, &|_| {}).unwrap();
        let _z = acquire(&c, Use::Run, &|_| {}).unwrap();
    }

    #[test]
    fn the_smallest_cap_of_a_servers_accounts_wins() {
        let big = account("shared.example", 6, 10);
        let small = account("shared.example", 6, 1);
        limit(&[big.clone(), small]);
        let _x = acquire(&big, Use::Run, &|_| {}).unwrap();
        let waited = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                acquire(&big, Use::Run, &|cap| {
                    waited.fetch_add(cap, Ordering::SeqCst);
                })
            });
            while waited.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(waited.load(Ordering::SeqCst), 1);
            drop(_x);
            assert!(h.join().unwrap().is_ok());
        });
    }
}
