//! The SDK for policy authors: a policy is an implementation of [`Policy`] plus one
//! [`export_policy!`] line, built for `wasm32-unknown-unknown` and turned into a component.
//!
//! ```ignore
//! struct MyPolicy;
//! impl policy_sdk::Policy for MyPolicy {
//!     fn describe() -> Description { Description::new("my-policy", "1.0.0") }
//!     fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
//!         tmf632_merge::resolve(ctx, local, remote)
//!     }
//! }
//! policy_sdk::export_policy!(MyPolicy);
//! ```
//!
//! Everything a policy sees and returns is a [`policy_types`] value; the bindings stay private
//! to this crate. The helpers in [`fields`] cover the usual needs: reading a field's JSON,
//! picking the last writer, building a merged party from the default merge.

pub use policy_types as types;
pub use tmf632_merge as merge;

pub mod fields;

/// The generated guest bindings. Not part of the SDK's API: use [`export_policy!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "packed-policy",
        pub_export_macro: true,
        default_bindings_module: "policy_sdk::bindings",
    });
}

mod convert;

#[cfg(target_arch = "wasm32")]
mod arena;

/// Calls allocate from a call arena ([`arena`]): a policy built with the SDK gets it as its
/// global allocator, so it cannot declare another one.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ARENA: arena::CallArena = arena::CallArena::new();

#[doc(hidden)]
pub type __Bytes = Vec<u8>;

#[doc(hidden)]
pub use convert::{__describe, __resolve, __resolve_packed};

use policy_types::{Context, Description, PartyVersion, Resolution};

/// A conflict-resolution policy. Policies are stateless: the host may run a call on a fresh
/// instance or on one that served other calls, and both must give the same answer.
pub trait Policy {
    fn describe() -> Description;
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution;
}

/// A description for `name` at `version` against this SDK's contract version.
pub fn description(name: &str, version: &str) -> Description {
    Description {
        name: name.to_owned(),
        version: version.to_owned(),
        contract_version: policy_types::CONTRACT_REVISION.to_owned(),
    }
}

/// Exports a [`Policy`] implementation as the component's `tmf632:conflict/resolver` interface,
/// and as `tmf632:conflict/packed-resolver` (the same `resolve` on packed bytes, which hosts
/// prefer: BENCHMARKS.md).
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: () = {
            struct __PolicyShim;
            impl $crate::bindings::exports::tmf632::conflict::resolver::Guest for __PolicyShim {
                fn describe() -> $crate::bindings::exports::tmf632::conflict::resolver::Description
                {
                    $crate::__describe::<$policy>()
                }
                fn resolve(
                    ctx: $crate::bindings::exports::tmf632::conflict::resolver::Context,
                    local: $crate::bindings::exports::tmf632::conflict::resolver::PartyVersion,
                    remote: $crate::bindings::exports::tmf632::conflict::resolver::PartyVersion,
                ) -> $crate::bindings::exports::tmf632::conflict::resolver::Resolution {
                    $crate::__resolve::<$policy>(ctx, local, remote)
                }
            }
            impl $crate::bindings::exports::tmf632::conflict::packed_resolver::Guest for __PolicyShim {
                fn resolve(call: $crate::__Bytes) -> $crate::__Bytes {
                    $crate::__resolve_packed::<$policy>(call)
                }
            }
    $crate::bindings::export!(__PolicyShim with_types_in $crate::bindings);
        };
    };
}
