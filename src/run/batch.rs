//! Batches: how many messages share one commit (one group of fsyncs), and
//! the two batches a run holds between download and commit.

use crate::error::Result;

/// A batch is committed (one group of fsyncs) after this many messages...
pub const BATCH_MESSAGES: usize = 256;
/// ... or this many bytes, whichever comes first.
pub const BATCH_BYTES: u64 = 32 << 20;

/// [`BATCH_MESSAGES`], which debug builds (what `cargo test` runs) let a
/// test lower with FETCH_BATCH_MESSAGES=N, so that a crash test with a few
/// messages still goes through several batches.
pub fn batch_messages() -> usize {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("FETCH_BATCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    BATCH_MESSAGES
}

/// The messages of a run between download and commit: the batch being
/// staged, and the one whose commit the destination started
/// ([`Deliver::start_commit`](crate::deliver::Deliver::start_commit)).
/// The protocol's run commits the batch in flight before starting the
/// next, and acts on each batch's outcomes.
pub struct Batches<T> {
    staged: Vec<T>,
    in_flight: Vec<T>,
    staged_bytes: u64,
}

impl<T> Default for Batches<T> {
    fn default() -> Batches<T> {
        Batches {
            staged: Vec::new(),
            in_flight: Vec::new(),
            staged_bytes: 0,
        }
    }
}

impl<T> Batches<T> {
    /// A message staged in the destination, taking `bytes` there.
    pub fn push(&mut self, item: T, bytes: u64) {
        self.staged.push(item);
        self.staged_bytes += bytes;
    }

    /// The staged batch has reached [`batch_messages`] or [`BATCH_BYTES`].
    pub fn is_full(&self) -> bool {
        self.staged.len() >= batch_messages() || self.staged_bytes >= BATCH_BYTES
    }

    pub fn take_in_flight(&mut self) -> Vec<T> {
        std::mem::take(&mut self.in_flight)
    }

    pub fn take_staged(&mut self) -> Vec<T> {
        self.staged_bytes = 0;
        std::mem::take(&mut self.staged)
    }

    /// Start the staged batch's commit in `dest` (commit the batch in
    /// flight first). True: it is in flight now. False: the destination
    /// commits only in place, and the batch is still staged. An error
    /// drops the batch: not delivered, so it stays on the server.
    pub fn start(&mut self, dest: &mut dyn crate::deliver::Deliver) -> Result<bool> {
        debug_assert!(self.in_flight.is_empty());
        match dest.start_commit() {
            Ok(true) => {
                self.in_flight = self.take_staged();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.take_staged();
                Err(e)
            }
        }
    }
}
