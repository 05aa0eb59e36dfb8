//! Modified UTF-7 decoding and the server-folder-to-Maildir++ directory mapping.
//! Must never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::folder_name(data);
});
