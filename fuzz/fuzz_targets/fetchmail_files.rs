//! fetchmail's run control file grammar and its conversion to fetch's
//! config (whose output must be TOML), and the fetchmail and mpop UIDL
//! file readers. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fetch::fuzzing::fetchmail_files(data);
});
