//! IMAP: the session (`session.rs`, over the `imap` crate on our own
//! connection), folder names (`names.rs`: modified UTF-7, Maildir++ paths
//! that cannot leave the Maildir) and flags (`flags.rs`: IMAP <-> Maildir
//! letters <-> ledger, and the three-way merge of two-way sync). The order of
//! delivery, commit and server changes lives in `run/imap.rs`.

pub mod fetch;
pub mod flags;
pub mod names;
pub mod session;
