//! SIGTERM and SIGINT: the first asks for a stop (the runs check
//! [`stop_requested`] between messages, so the message in flight is
//! committed and the session ends properly); a second one exits at once
//! (the durability protocol makes that safe too, only slower to resume).

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stop signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Install the handlers (once, at start).
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a plain handler that only touches an atomic or calls _exit;
        // sigaction is given a zeroed, then filled, struct.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            // No SA_RESTART: a blocked read returns EINTR. Socket reads
            // retry it (the loops see the flag at the next message); the
            // password prompt gives up.
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
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
