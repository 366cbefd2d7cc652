//! A DynamoDB stream batch as Lambda hands it to the reconcile function, its images read
//! by `host_aws::dynamo::party_from_item`: `parsers_fuzz::stream_event` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::stream_event(bytes);
});
