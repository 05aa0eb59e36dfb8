//! SIGTERM and SIGINT: the first asks for a stop (the runs check
//! [`stop_requested`] between messages, so the message in flight is
//! committed and the session ends properly); a second one exits at once
//! (the durability protocol makes that safe too, only slower to resume).

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stop signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
        crate::platform::exit_now(128 + sig);
    }
    // Wake whatever waits (IDLE watchers, the daemon's sleep).
    crate::platform::stop::notify();
}

/// Install the handlers (once, at start).
pub fn install() {
    crate::platform::stop::init();
    // A blocked read returns EINTR: socket reads retry it (the loops see
    // the flag at the next message); the password prompt gives up.
    crate::platform::on_stop_signals(on_signal);
}

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    received().is_some()
}

/// The signal that asked for the stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
