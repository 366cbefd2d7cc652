//! Lambda's on-failure message of a DynamoDB stream batch, as the redrive function reads it:
//! `parsers_fuzz::stream_failure` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::stream_failure(bytes);
});
