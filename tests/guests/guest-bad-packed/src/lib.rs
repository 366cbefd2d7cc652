//! A broken policy: its typed `resolver.resolve` answers keep-local, but its packed
//! `packed-resolver.resolve` answers bytes that are not a resolution (a valid header, then an
//! unknown tag). Hosts call the packed interface when it exists, so they must refuse the answer
//! with a reason that names the packed answer, keep serving, and keep the conflict.
//!
//! It implements the interfaces itself, with bindings of its own: the SDK exports the packed
//! interface by hand from `export_policy!` only.
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "packed-policy",
    });
}

use bindings::exports::tmf632::conflict::{packed_resolver, resolver};

struct BadPacked;

impl resolver::Guest for BadPacked {
    fn describe() -> resolver::Description {
        resolver::Description {
            name: "bad-packed".into(),
            version: "1.0.0".into(),
            contract_version: "1.1.0".into(),
        }
    }
    fn resolve(
        _: resolver::Context,
        _: resolver::PartyVersion,
        _: resolver::PartyVersion,
    ) -> resolver::Resolution {
        resolver::Resolution::KeepLocal
    }
}

impl packed_resolver::Guest for BadPacked {
    fn resolve(_: Vec<u8>) -> Vec<u8> {
        vec![1, 9]
    }
}

bindings::export!(BadPacked with_types_in bindings);
