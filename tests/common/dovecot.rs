//! Placeholder: the real Dovecot sandbox support is being written separately.
