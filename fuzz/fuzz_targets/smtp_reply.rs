//! LMTP/SMTP replies (multi-line, enhanced status codes), the EHLO/LHLO
//! capabilities and the DATA encoding (dot-stuffing, CRLF) with its inverse.
//! Must never panic, whatever the bytes (the entry point asserts invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::smtp_reply(data);
});
