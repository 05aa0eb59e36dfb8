//! Destinations for fetched mail. Each writes a message as it streams in and
//! makes a batch durable in steps that `run.rs` interleaves with the ledger.
//! Maildir is the first; mbox, MDA and stdout follow the same shape.

pub mod maildir;
