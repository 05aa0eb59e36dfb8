//! The streaming UID FETCH reply reader, fed in chunks as a session feeds it.
//! Must never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::imap_fetch(data);
});
