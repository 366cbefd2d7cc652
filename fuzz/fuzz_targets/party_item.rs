//! A DynamoDB party item in the SDK's JSON form, read by `host_aws::dynamo::party_from_item`:
//! `parsers_fuzz::party_item` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::party_item(bytes);
});
