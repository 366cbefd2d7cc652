//! A conflict-log record, read by `host_core::conflict_log::parse_record`:
//! `parsers_fuzz::conflict_record` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::conflict_record(bytes);
});
