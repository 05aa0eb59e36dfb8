//! The ledger journal/snapshot header and record framing and decoding.
//! Must never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::journal(data);
});
