//! Items of `serve`'s journal (a change or a dead letter, one a line), read back as a
//! restart does: `parsers_fuzz::journal_items` says what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    parsers_fuzz::journal_items(bytes);
});
