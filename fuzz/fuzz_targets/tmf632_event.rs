//! A TMF632 event (v4 or v5 envelope) or a party's members, posted to the API of an empty
//! region: `parsers_fuzz::tmf632_event` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::tmf632_event(bytes);
});
