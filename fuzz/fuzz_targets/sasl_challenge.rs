//! A SASL error challenge from a server (RFC 7628 section 3.2.2), raw and
//! as base64. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::sasl_challenge(data);
});
