//! Whether a test goes on without something it needs from the machine: a
//! program (Dovecot and its LMTP server, Exim, Courier's POP3 server,
//! python3, strace, groff, script, fetchmail) or the shared corpus.
//!
//! `FETCH_REQUIRE` lists, separated by commas, what must be there:
//! `dovecot`, `dovecot-lmtpd`, `exim`, `courier`, `python3`, `strace`,
//! `groff`, `script`, `corpus`, `cross` (read by
//! scripts/check-other-unixes), `fetchmail` (the real one, for the
//! migration test), or `all`. Something missing that
//! it does not list is skipped with a printed reason; something missing
//! that it lists fails the test. `.ci/run` sets `FETCH_REQUIRE=all`.

use std::process::{Command, Stdio};

/// The names `FETCH_REQUIRE` may list (besides `all`).
pub const NAMES: [&str; 11] = [
    "dovecot",
    "courier",
    "dovecot-lmtpd",
    "exim",
    "python3",
    "strace",
    "groff",
    "script",
    "corpus",
    "cross",
    "fetchmail",
];

/// Whether a test that needs `what` goes on: true when `missing` is None.
/// Otherwise (`missing` says why `what` is not there) prints
/// `SKIP: <what>: <why>` and returns false, or panics when `FETCH_REQUIRE`
/// lists `what` or `all`.
#[track_caller]
pub fn require(what: &str, missing: Option<String>) -> bool {
    assert!(
        NAMES.contains(&what),
        "require({what:?}): FETCH_REQUIRE has no such name"
    );
    let list = std::env::var("FETCH_REQUIRE").unwrap_or_default();
    let listed: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    // A misspelt name would otherwise require nothing, silently.
    if let Some(bad) = listed.iter().find(|n| **n != "all" && !NAMES.contains(n)) {
        panic!(
            "FETCH_REQUIRE={list} names {bad:?}; it takes all or a list of: {}",
            NAMES.join(", ")
        );
    }
    let Some(why) = missing else {
        return true;
    };
    if listed.iter().any(|n| *n == what || *n == "all") {
        panic!("{what} is required (FETCH_REQUIRE={list}) but {why}");
    }
    eprintln!("SKIP: {what}: {why}");
    false
}

/// Why `program args` cannot serve a test (it does not start, or fails),
/// or None when it runs and succeeds.
pub fn program_missing(program: &str, args: &[&str]) -> Option<String> {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`{program} {}` failed ({})",
            args.join(" "),
            o.status
        )),
        Err(e) => Some(format!("`{program}` does not start: {e}")),
    }
}
