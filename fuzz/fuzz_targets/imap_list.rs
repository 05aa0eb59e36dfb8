//! The IMAP LIST reply reader (src/imap/list.rs): framing with literals,
//! `* LIST` parsing, and the names it gives as a session holds them. Must
//! never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::imap_list(data);
});
