//! Crash points, for tests only: `point(name)` marks a step of the
//! durability protocol (a journal write, a file write, an fsync, a rename,
//! a server mutation). In debug builds (what `cargo test` builds), the
//! environment variable FETCH_CRASH_AT=N makes the N-th point abort the
//! process on the spot (SIGABRT: no destructors, no flushing, like a kill
//! -9 for our files), and FETCH_CRASH_LOG=FILE appends one line per point
//! reached, so a test can count them and then crash at each in turn.
//! Release builds compile `point` to nothing.

#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::io::Write;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNT: AtomicU64 = AtomicU64::new(0);
    static TARGET: OnceLock<Option<u64>> = OnceLock::new();
    static LOG: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();

    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let target = *TARGET.get_or_init(|| {
        std::env::var("FETCH_CRASH_AT")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(path) = LOG.get_or_init(|| std::env::var_os("FETCH_CRASH_LOG").map(Into::into))
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{n} {name}");
    }
    if target == Some(n) {
        eprintln!("fetch: crash point {n}: {name}");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}
