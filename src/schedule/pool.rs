//! The workers that run accounts, up to `--jobs` at a time, and the queue
//! they take accounts from.
//!
//! A worker takes the first queued account whose server has a connection
//! free under its `max_connections` (run/slots.rs), not simply the next
//! one: with 100 accounts on a slow or dead server ahead of 10 on another,
//! the workers the slow server cannot take run the other server's accounts
//! at once instead of queueing behind it. The slot taken here is the one
//! the account's run then holds.
//!
//! Waiting, for work or for a slot, sleeps on a condition variable until
//! something changes: an idle daemon's workers use no CPU.

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::config::Account;
use crate::run::slots::{self, Slot};
use crate::signals::stop_requested;

/// Accounts waiting for a worker, in the order they were queued.
pub struct Pool<'a> {
    accounts: &'a [Account],
    queue: Mutex<Queue>,
    work: Condvar,
    /// Told, once per account and turn in the queue, that the account
    /// heads a queue whose every server is full (for `-v`).
    held_up: &'a (dyn Fn(usize) + Sync),
}

struct Queue {
    waiting: VecDeque<usize>,
    /// No more accounts will come: workers return once the queue is empty.
    closed: bool,
    /// Accounts `held_up` was told of since they were last taken.
    told: HashSet<usize>,
}

impl<'a> Pool<'a> {
    /// A pool for `accounts`; `held_up(i)` is called when a worker has to
    /// wait for a connection because every queued account's server is
    /// full, with the first of them.
    pub fn new(accounts: &'a [Account], held_up: &'a (dyn Fn(usize) + Sync)) -> Pool<'a> {
        Pool {
            accounts,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                closed: false,
                told: HashSet::new(),
            }),
            work: Condvar::new(),
            held_up,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue account `i` (an index into the accounts).
    pub fn push(&self, i: usize) {
        self.queue().waiting.push_back(i);
        self.work.notify_one();
        // A worker waiting for a slot for other accounts may take this one.
        slots::nudge();
    }

    /// No more accounts will be queued (or a stop was asked for): workers
    /// finish what is queued, or return at once on a stop.
    pub fn close(&self) {
        self.queue().closed = true;
        self.work.notify_all();
        slots::nudge();
    }

    /// A worker: take accounts until the pool is closed and empty, or a
    /// stop is asked for. `run` gets the account's index and its slot.
    pub fn work(&self, run: &dyn Fn(usize, Slot)) {
        loop {
            // Read before looking, so that a slot freed while we look is
            // not missed by the wait below.
            let seen = slots::changes();
            let mut queue = self.queue();
            loop {
                if stop_requested() {
                    return;
                }
                if !queue.waiting.is_empty() {
                    break;
                }
                if queue.closed {
                    return;
                }
                queue = self.work.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            let taken =
                queue.waiting.iter().enumerate().find_map(|(at, &i)| {
                    slots::try_acquire(&self.accounts[i]).map(|slot| (at, slot))
                });
            match taken {
                Some((at, slot)) => {
                    let i = queue.waiting.remove(at).unwrap_or_default();
                    queue.told.remove(&i);
                    drop(queue);
                    run(i, slot);
                }
                None => {
                    // Every queued account's server is full.
                    let first = queue.waiting.front().copied().unwrap_or_default();
                    let tell = queue.told.insert(first);
                    drop(queue);
                    if tell {
                        (self.held_up)(first);
                    }
                    slots::wait_for_change(seen);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn account(host: &str, cap: usize) -> Account {
        use clap::Parser;
        let cap = cap.to_string();
        let argv = ["fetch", "--imap", host, "-u", "u", "--maildir", "/m"];
        let argv = argv.into_iter().chain(["--max-connections", &cap]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        crate::config::resolve(&cli).unwrap().accounts.remove(0)
    }

    /// Six accounts on a server with one connection, then one on another:
    /// with two workers, the second runs the other server's account while
    /// the first is still busy with the full server's.
    #[test]
    fn a_full_server_does_not_hold_up_another_servers_accounts() {
        let mut accounts: Vec<Account> = (0..6).map(|_| account("full.pool.example", 1)).collect();
        accounts.push(account("free.pool.example", 1));
        slots::limit(&accounts);
        let pool = Pool::new(&accounts, &|_| {});
        for i in 0..accounts.len() {
            pool.push(i);
        }
        pool.close();
        let order = Mutex::new(Vec::new());
        let full_running = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    pool.work(&|i, _slot| {
                        if i < 6 {
                            assert_eq!(full_running.fetch_add(1, Ordering::SeqCst), 0);
                            // The first full-server account lasts until the
                            // other server's has run.
                            let until = std::time::Instant::now() + Duration::from_secs(10);
                            while i == 0
                                && !order.lock().unwrap().contains(&6)
                                && std::time::Instant::now() < until
                            {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            full_running.fetch_sub(1, Ordering::SeqCst);
                        }
                        order.lock().unwrap().push(i);
                    });
                });
            }
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 7, "{order:?}");
        assert_eq!(order[0], 6, "{order:?}");
        assert_eq!(&order[1..], &[0, 1, 2, 3, 4, 5], "{order:?}");
    }

    /// Three accounts on a server with one connection, two workers: while
    /// the first runs, the other worker waits, and says so once, naming
    /// the account at the head of the queue.
    #[test]
    fn a_worker_that_must_wait_says_so_once_for_the_queues_head() {
        let accounts: Vec<Account> = (0..3).map(|_| account("busy.pool.example", 1)).collect();
        slots::limit(&accounts);
        let told = Mutex::new(Vec::new());
        let held_up = |i: usize| told.lock().unwrap().push(i);
        let pool = Pool::new(&accounts, &held_up);
        for i in 0..accounts.len() {
            pool.push(i);
        }
        pool.close();
        let ran = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    pool.work(&|i, _slot| {
                        // The first run lasts until the other worker has
                        // found the server full.
                        let until = std::time::Instant::now() + Duration::from_secs(10);
                        while i == 0
                            && told.lock().unwrap().is_empty()
                            && std::time::Instant::now() < until
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        ran.lock().unwrap().push(i);
                    });
                });
            }
        });
        assert_eq!(ran.into_inner().unwrap(), vec![0, 1, 2]);
        let told = told.into_inner().unwrap();
        assert_eq!(told.first(), Some(&1), "{told:?}");
        assert_eq!(told.iter().filter(|&&i| i == 1).count(), 1, "{told:?}");
    }

    #[test]
    fn an_open_pool_waits_for_work_and_close_ends_it() {
        let accounts = vec![account("open.pool.example", 8)];
        let pool = Pool::new(&accounts, &|_| {});
        let ran = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                pool.work(&|_, _| {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            });
            std::thread::sleep(Duration::from_millis(20));
            pool.push(0);
            pool.push(0);
            std::thread::sleep(Duration::from_millis(20));
            pool.close();
        });
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
