//! A broken policy: with `{"rotate": true}` in its configuration it alternates between keeping
//! the local and taking the remote version from one call to the next (state kept in the
//! instance). Deterministic on a fresh instance, not on a reused one.
use policy_sdk::types::*;
use std::sync::atomic::{AtomicU64, Ordering};
static CALLS: AtomicU64 = AtomicU64::new(0);
struct Stateful;
impl policy_sdk::Policy for Stateful {
    fn describe() -> Description {
        policy_sdk::description("stateful", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        if ctx.config.contains("\"rotate\":true") || ctx.config.contains("\"rotate\": true") {
            if n.is_multiple_of(2) {
                Resolution::KeepLocal
            } else {
                Resolution::TakeRemote
            }
        } else {
            policy_sdk::merge::resolve(ctx, local, remote)
        }
    }
}
policy_sdk::export_policy!(Stateful);
