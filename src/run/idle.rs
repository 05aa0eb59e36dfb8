//! `--idle`: watch an IMAP account's folders with IDLE (RFC 2177) and say
//! when one of them has news, so that the daemon syncs the account at once
//! instead of at its next poll.
//!
//! IDLE watches the selected folder only, so each chosen folder gets a
//! connection of its own (EXAMINEd: a watcher never changes anything), up
//! to [`MAX_WATCHED`] per account; the account's other folders are synced at
//! every poll as before. A watcher renews its IDLE every [`RENEW`] (servers
//! may drop an IDLE after 30 minutes), reconnects after a drop with growing
//! pauses, and reports a reconnect as news too (mail may have come
//! meanwhile). Watchers never touch the ledger or the destination: the
//! account's run does all of that, under its lock, as in any other run.

use std::time::{Duration, Instant};

use super::slots::{Slot, Use, acquire};
use crate::config::Account;
use crate::error::{Kind, Result};
use crate::imap::{Idled, Session};
use crate::report::Ui;
use crate::sanitize::escape;
use crate::secret::Secret;
use crate::signals::stop_requested;

/// Folders watched per account (a connection each; servers limit how many
/// one user may open, Dovecot to 10 per address by default).
pub const MAX_WATCHED: usize = 8;
/// How long one IDLE lasts before it is renewed.
pub const RENEW: Duration = Duration::from_secs(25 * 60);
/// The longest pause between reconnection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// Watch `acct`'s folders until a stop is requested, calling `news` when a
/// folder has new mail or changed flags. Returns when stopped, or at once
/// when the server cannot IDLE (the account is then only polled).
pub fn watch(
    acct: &Account,
    ui: &Ui,
    password: &(dyn Fn() -> Result<Secret> + Sync),
    news: &(dyn Fn() + Sync),
) {
    if !super::slots::watchers_allowed(acct) {
        ui.warn(
            &acct.name,
            "idle: max_connections 1 leaves no connection for IDLE; this account is polled instead",
        );
        return;
    }
    let mut pause = Duration::from_secs(1);
    // The folders, from a first connection (which then watches the first).
    let (first, folders) = loop {
        if stop_requested() {
            return;
        }
        match open(acct, ui, password, "").and_then(|(mut s, slot)| {
            let f = super::imap::choose_folders(acct, &mut s)?;
            Ok(((s, slot), f))
        }) {
            Ok(x) => break x,
            Err(e) => {
                ui.warn(&acct.name, &format!("idle: {e}"));
                if e.kind == Kind::Auth {
                    // The runs report it; do not lock the account out.
                    return;
                }
                sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    };
    if folders.is_empty() {
        first.0.logout();
        return;
    }
    let mut first = first;
    if !first.0.caps().is_ok_and(|c| c.has("IDLE")) {
        ui.warn(
            &acct.name,
            "the server does not support IDLE; this account is polled instead",
        );
        first.0.logout();
        return;
    }
    if folders.len() > MAX_WATCHED {
        ui.warn(
            &acct.name,
            &format!(
                "idle: watching the first {MAX_WATCHED} of {} folders; the others are \
                 synced at every poll",
                folders.len()
            ),
        );
    }
    // A session stays on the thread that opened it: this one watches the
    // first folder, new threads (with new connections) the others.
    std::thread::scope(|s| {
        for (name, _) in folders.iter().take(MAX_WATCHED).skip(1) {
            s.spawn(move || watch_folder(acct, ui, password, news, name, None));
        }
        watch_folder(acct, ui, password, news, &folders[0].0, Some(first));
    });
}

/// One folder's watcher: EXAMINE, IDLE, report, renew; reconnect on errors.
fn watch_folder<'u>(
    acct: &Account,
    ui: &'u Ui,
    password: &(dyn Fn() -> Result<Secret> + Sync),
    news: &(dyn Fn() + Sync),
    folder: &str,
    mut session: Option<(Session<'u>, Slot)>,
) {
    let mut pause = Duration::from_secs(1);
    let mut reconnected = false;
    while !stop_requested() {
        let r = (|| -> Result<()> {
            let (s, _) = match &mut session {
                Some(s) => s,
                None => session.insert(open(acct, ui, password, folder)?),
            };
            s.select(folder, true)?;
            if reconnected {
                // Mail may have arrived while we were away.
                news();
                reconnected = false;
            }
            loop {
                match s.idle(RENEW, &stop_requested)? {
                    Idled::Activity => {
                        ui.detail(&acct.name, &format!("{}: new activity", escape(folder)));
                        news();
                    }
                    Idled::Quiet => {}
                    Idled::Stopped => return Ok(()),
                }
                pause = Duration::from_secs(1);
            }
        })();
        match r {
            Ok(()) => break,
            Err(e) => {
                ui.warn(
                    &acct.name,
                    &format!(
                        "idle on {}: {}; reconnecting in {} s",
                        escape(folder),
                        e.message(),
                        pause.as_secs()
                    ),
                );
                // Hang up without LOGOUT: the connection may be unusable.
                drop(session.take());
                reconnected = true;
                sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
    if let Some((s, _slot)) = session {
        s.logout();
    }
}

/// A watcher's connection, under the server's max_connections (waiting,
/// for as long as it takes or until a stop, while the slots are taken).
fn open<'u>(
    acct: &Account,
    ui: &'u Ui,
    password: &(dyn Fn() -> Result<Secret> + Sync),
    folder: &str,
) -> Result<(Session<'u>, Slot)> {
    let slot = acquire(acct, Use::Watch, &|cap| {
        ui.detail(
            &acct.name,
            &format!(
                "idle{}{}: waiting for a free connection (max_connections {cap}, the last \
                 kept for runs); polled meanwhile",
                if folder.is_empty() { "" } else { " on " },
                escape(folder)
            ),
        )
    })?;
    let pw = password()?;
    Ok((Session::open(&acct.endpoint(), &acct.login(&pw), ui)?, slot))
}

/// Sleep, waking early for a stop request.
fn sleep(d: Duration) {
    let until = Instant::now() + d;
    while !stop_requested() && Instant::now() < until {
        if crate::platform::stop::wait(None, Some(until - Instant::now())).is_err() {
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }
}
