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

/// The generated guest bindings of `resolver`. Not part of the SDK's API: use
/// [`export_policy!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        default_bindings_module: "policy_sdk::bindings",
    });
}

/// The component type of `packed-policy`, which adds `packed-resolver` to `policy`. Its one
/// function is exported by hand ([`export_policy!`], `convert::__packed_export`) rather than
/// generated, so that it has no post-return function: the host enters the guest twice a call
/// instead of three times (BENCHMARKS.md).
#[allow(dead_code)]
mod packed_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "packed-policy",
        skip: ["describe", "resolve"],
    });
}

mod convert;

#[cfg(any(target_arch = "wasm32", test))]
mod arena;

/// Calls allocate from a call arena ([`arena`]): a policy built with the SDK gets it as its
/// global allocator, so it cannot declare another one.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ARENA: arena::CallArena = arena::CallArena::new();

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use convert::__packed_export;
#[doc(hidden)]
pub use convert::{__describe, __resolve};

use policy_types::writes::Writes;
use policy_types::{Context, Description, PartyVersion, Resolution};

/// A conflict-resolution policy. Policies are stateless: the host may run a call on a fresh
/// instance or on one that served other calls, and both must give the same answer.
pub trait Policy {
    fn describe() -> Description;
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution;

    /// `resolve` with each version's writes (`policy_types::writes`): which write set each
    /// field sent and what that write had seen, for rules such as "NA's status wins when NA
    /// changed it concurrently" ([`fields::change`], [`fields::seen`]). The host sends them
    /// to a policy that declares contract revision 1.3 ([`description_with_writes`]); to any
    /// other, and through the typed `resolver.resolve`, every write is unknown (empty tables). By
    /// default the writes are not read: [`Policy::resolve`] decides.
    fn resolve_with_writes(
        ctx: &Context,
        local: (&PartyVersion, &Writes),
        remote: (&PartyVersion, &Writes),
    ) -> Resolution {
        Self::resolve(ctx, local.0, remote.0)
    }
}

/// A description for `name` at `version` against this SDK's contract version.
pub fn description(name: &str, version: &str) -> Description {
    Description {
        name: name.to_owned(),
        version: version.to_owned(),
        contract_version: policy_types::CONTRACT_REVISION.to_owned(),
    }
}

/// As [`description`], declaring contract revision 1.3 ([`policy_types::WRITES_REVISION`]):
/// the host then sends each version's writes ([`Policy::resolve_with_writes`]), which costs a
/// call a few bytes per field sent. A policy that does not read them declares [`description`]'s
/// revision and is sent less.
pub fn description_with_writes(name: &str, version: &str) -> Description {
    Description {
        contract_version: policy_types::WRITES_REVISION.to_owned(),
        ..description(name, version)
    }
}

/// Exports a [`Policy`] implementation as the component's `tmf632:conflict/resolver` interface,
/// and as `tmf632:conflict/packed-resolver` (the same `resolve` on packed bytes, which hosts
/// prefer: BENCHMARKS.md). The packed export has no post-return function: its answer is freed
/// at the guest's next allocation instead.
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
    $crate::bindings::export!(__PolicyShim with_types_in $crate::bindings);

            /// `packed-resolver.resolve` in the canonical ABI: the call's bytes in, a pointer
            /// to the answer's (pointer, length) out, and no post-return function.
            #[cfg(target_arch = "wasm32")]
            #[unsafe(export_name = "tmf632:conflict/packed-resolver@1.0.0#resolve")]
            unsafe extern "C" fn __packed_resolve(call: *mut u8, len: usize) -> *mut u8 {
                // SAFETY: the host calls this export as the canonical ABI says: `call` holds
                // `len` bytes it allocated through `cabi_realloc`, now the guest's.
                unsafe { $crate::__packed_export::<$policy>(call, len) }
            }
        };
    };
}
