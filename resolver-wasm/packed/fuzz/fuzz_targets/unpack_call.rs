//! The guest SDK's reader of a call: it must refuse or accept, and what it accepts must pack
//! and unpack back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_packed::{Format, pack_call_ref, unpack_call};

fuzz_target!(|bytes: &[u8]| {
    let Ok((ctx, local, remote)) = unpack_call(bytes) else {
        return;
    };
    let format = Format::of(bytes).expect("an accepted call declares its format");
    let mut again = Vec::new();
    pack_call_ref(&mut again, format, (&ctx).into(), &local, &remote);
    assert_eq!(
        unpack_call(&again),
        Ok((ctx, local, remote)),
        "packed again"
    );
});
