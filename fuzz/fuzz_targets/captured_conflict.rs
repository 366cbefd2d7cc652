//! A captured-conflict file, as `dry-run` and `policy check` read it:
//! `parsers_fuzz::captured_conflicts` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::captured_conflicts(bytes);
});
