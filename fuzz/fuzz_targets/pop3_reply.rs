//! The POP3 status line, line splitter, multi-line body and listing decoders, UIDL/LIST/STAT line parsers.
//! Must never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::pop3_reply(data);
});
