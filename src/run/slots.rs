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
//! is freed or a stop is asked for (SIGTERM, SIGINT).

use std::collections::HashMap;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::Account;
use crate::error::{Result, temporary, unavailable};
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
    servers: Mutex<HashMap<Server, Count>>,
    freed: Condvar,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    servers: Mutex::new(HashMap::new()),
    freed: Condvar::new(),
});

fn servers() -> MutexGuard<'static, HashMap<Server, Count>> {
    TABLE.servers.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set each server's cap from the accounts that use it: the smallest
/// `max_connections` among them, so that no account's limit is exceeded
/// on its behalf.
pub fn limit(accounts: &[Account]) {
    let mut table = servers();
    for acct in accounts {
        let cap = acct.max_connections.max(1);
        table
            .entry(Server::of(acct))
            .and_modify(|c| c.cap = c.cap.min(cap))
            .or_insert(Count { cap, open: 0 });
    }
}

/// Whether IDLE watchers may connect to `acct`'s server at all: not when
/// its cap is 1, the one connection being the runs'.
pub fn watchers_allowed(acct: &Account) -> bool {
    let cap = servers()
        .get(&Server::of(acct))
        .map_or(acct.max_connections, |c| c.cap);
    cap > 1
}

/// An open connection's place under its server's cap; given back when
/// dropped.
#[derive(Debug)]
pub struct Slot {
    server: Server,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(c) = servers().get_mut(&self.server) {
            c.open = c.open.saturating_sub(1);
        }
        TABLE.freed.notify_all();
    }
}

/// A slot for a connection of `acct`'s: at once if its server has one
/// free, else after waiting for one (saying so once through `waiting`).
/// Fails when a stop is asked for meanwhile, and for a watcher when the
/// cap is 1 (the one connection is the runs').
pub fn acquire(acct: &Account, usage: Use, waiting: &dyn Fn(usize)) -> Result<Slot> {
    let server = Server::of(acct);
    let reserve = if usage == Use::Watch { 1 } else { 0 };
    let mut table = servers();
    let mut said = false;
    loop {
        let count = table.entry(server.clone()).or_insert(Count {
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
            return Ok(Slot { server });
        }
        if stop_requested() {
            return Err(temporary(format!(
                "stopped while waiting for a connection to {}:{} (max_connections {})",
                server.host, server.port, count.cap
            )));
        }
        if !said {
            waiting(count.cap);
            said = true;
        }
        // Woken when a slot is given back; the timeout only lets a stop
        // request (a signal handler cannot notify) be seen.
        table = TABLE
            .freed
            .wait_timeout(table, Duration::from_millis(250))
            .unwrap_or_else(|e| e.into_inner())
            .0;
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
