//! `fetch`: parse the command line, run each account, turn the outcome into
//! an exit code. Nothing else happens here; the work is in the library
//! (`lib.rs`), whose map is there.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use clap::error::ErrorKind;
use fetch::{cli, config, error, generate, run, signals, ui};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    // Files we create are 0600 and directories 0700, whatever the caller's
    // umask: every create asks for exactly those modes, and nothing is
    // masked off them.
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe { libc::umask(0o077) };
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => error::Kind::Usage.exit_code(),
            };
        }
    };
    if let Some(kind) = cli.generate {
        let mut out = std::io::stdout().lock();
        return match generate::generate(kind, &mut out) {
            Ok(()) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(e) => {
                eprintln!("fetch: writing the output: {e}");
                error::Kind::LocalIo.exit_code()
            }
        };
    }
    let (accounts, output) = match config::resolve(&cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fetch: {}", e.msg);
            return e.kind.exit_code();
        }
    };
    if cli.jobs == 0 || cli.daemon == Some(0) {
        eprintln!("fetch: --jobs and --daemon need a number above 0");
        return error::Kind::Usage.exit_code();
    }
    signals::install();
    let ui = ui::Ui::new(output);
    if let Some(secs) = cli.daemon {
        return daemon(&cli, &accounts, &ui, Duration::from_secs(secs));
    }
    let all: Vec<usize> = (0..accounts.len()).collect();
    let results = run_accounts(&cli, &accounts, &all, &ui);
    let codes: Vec<i32> = results.iter().map(|r| r.0).collect();
    let code = error::combine(&codes);
    if let Some(sig) = signals::received() {
        // Stopped early: what arrived is safe, but not all mail was fetched.
        return 128 + sig;
    }
    if cli.check && code == 0 && !results.iter().any(|r| r.1) {
        return 1; // --check: no new mail
    }
    code
}

/// Run the accounts `which` (up to `--jobs` at a time), reporting each as
/// it ends. Returns (exit code, has new mail) per account, in `which` order.
fn run_accounts(
    cli: &cli::Cli,
    accounts: &[config::Account],
    which: &[usize],
    ui: &ui::Ui,
) -> Vec<(i32, bool)> {
    let workers = cli.jobs.min(which.len());
    if workers <= 1 {
        // No threads for the usual case: signals then reach the thread that
        // is doing the work, and a trace shows one thread.
        let mut results = Vec::with_capacity(which.len());
        for &i in which {
            if signals::stop_requested() {
                break;
            }
            results.push(run_one(cli, &accounts[i], ui));
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
                    let r = run_one(cli, &accounts[which[k]], ui);
                    results.lock().unwrap_or_else(|e| e.into_inner())[k] = r;
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Run one account and report it (summary line or --check answer, JSON
/// events, errors). Returns its exit code and whether it has new mail.
fn run_one(cli: &cli::Cli, acct: &config::Account, ui: &ui::Ui) -> (i32, bool) {
    let started = std::time::Instant::now();
    let (summary, code) = match run::run(acct, ui) {
        Ok(summary) => {
            if cli.check {
                if !ui.json {
                    // --check's answer is data: stdout.
                    ui.data(&format!("{}: {} new\n", acct.name, summary.available));
                }
            } else if cli.dry_run {
                if !ui.json {
                    ui.data(&format!("{}: {}\n", acct.name, summary.dry_run_line()));
                }
            } else if !cli.show_cert {
                ui.info(&acct.name, &summary.line());
            }
            (summary, 0)
        }
        Err(e) if e.kind == error::Kind::PipeClosed => (run::Summary::default(), 0),
        Err(e) => {
            ui.error(&acct.name, &e.msg);
            ui.event(serde_json::json!({
                "type": "error",
                "account": acct.name,
                "kind": e.kind.name(),
                "message": e.msg,
            }));
            (run::Summary::default(), e.kind.exit_code())
        }
    };
    ui.event(serde_json::json!({
        "type": "account",
        "account": acct.name,
        "fetched": summary.fetched,
        "bytes": summary.bytes,
        "deleted": summary.deleted,
        "flags_synced": summary.flags_synced,
        "new": if cli.check || cli.dry_run { Some(summary.available) } else { None },
        "would_delete": if cli.dry_run { Some(summary.would_delete) } else { None },
        "would_flag": if cli.dry_run { Some(summary.would_flag) } else { None },
        "seconds": started.elapsed().as_secs_f64(),
        "exit_code": code,
    }));
    (code, summary.available > 0)
}

/// `--daemon`: fetch every account every `interval` until SIGTERM/SIGINT.
/// A failing account is retried after 2, 4, 8... intervals (at most an
/// hour); the others keep their pace. Exits 0 when asked to stop.
fn daemon(cli: &cli::Cli, accounts: &[config::Account], ui: &ui::Ui, interval: Duration) -> i32 {
    let cap = interval.max(Duration::from_secs(3600));
    let mut due = vec![Instant::now(); accounts.len()];
    let mut failures = vec![0u32; accounts.len()];
    while !signals::stop_requested() {
        let now = Instant::now();
        let ready: Vec<usize> = (0..accounts.len()).filter(|&i| due[i] <= now).collect();
        if !ready.is_empty() {
            let results = run_accounts(cli, accounts, &ready, ui);
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
        // Sleep until the next account is due, waking for a stop request.
        let until = due.iter().min().copied().unwrap_or(now + interval);
        while !signals::stop_requested() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }
    0
}
