//! IMAP: getting a session ready (`connect.rs`: greeting, STARTTLS, login),
//! its capabilities (`caps.rs`, parsed in one place), the commands of a
//! sync (`session.rs`, over the `imap` crate on our own connection; a
//! folder's SELECT pipelined in `select.rs`), FETCH
//! bodies streamed through our sans-io reader (`stream.rs`, `fetch.rs`),
//! IDLE (`idle.rs`), the LIST reply (`list.rs`, sans-io: UTF-8 names),
//! folder names (`names.rs`: modified UTF-7, Maildir++ paths that cannot
//! leave the Maildir) and flags (`flags.rs`: IMAP <->
//! Maildir letters <-> ledger, and the three-way merge of two-way sync).
//! The order of delivery, commit and server changes lives in `run/imap/`.

pub mod caps;
mod connect;
pub mod fetch;
pub mod flags;
mod idle;
pub mod list;
pub mod names;
mod select;
pub mod session;
mod stream;

pub use connect::inspect;
pub use idle::Idled;
pub use session::{Folder, Meta, Selected, Session, uid_set};
