//! A broken policy with two faces: its packed `packed-resolver.resolve` merges as the default
//! policy does, so every law holds on the path hosts take today, but its typed
//! `resolver.resolve` keeps the local version. The contract says both give the same answer,
//! and a host that does not know the packed interface (an older host, a region not yet
//! upgraded) calls the typed one: regions would write different parties for one conflict. The
//! law check must compare the two and refuse the policy.
//!
//! It implements the interfaces itself, with bindings of its own: the SDK exports one `resolve`
//! through both.
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "packed-policy",
    });
}

use bindings::exports::tmf632::conflict::{packed_resolver, resolver};
use policy_packed::Format;
use policy_types::Resolution;

struct TwoFaced;

impl resolver::Guest for TwoFaced {
    fn describe() -> resolver::Description {
        resolver::Description {
            name: "two-faced".into(),
            version: "1.0.0".into(),
            contract_version: policy_types::CONTRACT_REVISION.into(),
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

impl packed_resolver::Guest for TwoFaced {
    fn resolve(call: Vec<u8>) -> Vec<u8> {
        let answer = match policy_packed::unpack_call(&call) {
            Ok((ctx, local, remote)) => tmf632_merge::resolve(&ctx, &local, &remote),
            Err(e) => Resolution::Reject(format!("unreadable call: {e}")),
        };
        let mut out = Vec::new();
        // The answer is in the format of the call.
        let format = Format::of(&call).unwrap_or(Format::V1);
        policy_packed::pack_resolution(&mut out, format, &answer);
        out
    }
}

bindings::export!(TwoFaced with_types_in bindings);
