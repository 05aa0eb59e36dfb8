//! The [`Secret`] type that carries a password (or an OAuth token), and
//! [`Login`], what a protocol session needs to log in. Where a password
//! comes from is `password.rs`'s business.
//!
//! While a secret is held the process is made non-dumpable, so a core
//! dump or a ptrace by another user cannot read it, and a [`Secret`] is
//! wiped from memory when dropped. Its `Debug` prints `[REDACTED]`.

use crate::types::AuthMethod;

pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        make_undumpable();
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A second copy (for a daemon that keeps the password between runs);
    /// deliberately not `Clone`, so that copies are made only on purpose.
    pub fn duplicate(&self) -> Secret {
        Secret::new(self.0.clone())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8; the string is dropped right after.
        let bytes = unsafe { self.0.as_bytes_mut() };
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

pub use crate::platform::make_undumpable;

/// What a protocol session needs to log in, as resolved for one account.
pub struct Login<'a> {
    pub user: &'a str,
    /// The password, or with an OAuth method the access token.
    pub password: &'a Secret,
    /// The server as the account names it (OAUTHBEARER sends it along, so
    /// that a token cannot be replayed to another server).
    pub host: &'a str,
    pub port: u16,
    pub method: AuthMethod,
    /// Send the password even over a connection without TLS.
    pub allow_plaintext: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_a_password_makes_the_process_undumpable() {
        let _s = Secret::new("x".into());
        assert!(crate::platform::is_undumpable());
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
    }
}
