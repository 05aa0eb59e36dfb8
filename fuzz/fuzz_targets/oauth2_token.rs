//! An OAuth token or device authorization endpoint's answer (two bytes of
//! HTTP status, then the body). Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::oauth2_token(data);
});
