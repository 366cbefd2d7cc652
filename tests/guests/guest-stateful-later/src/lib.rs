//! A broken policy: the default merge for its first 300 calls on an instance, then it keeps
//! the local version of every concurrent conflict (a counter in the instance's memory). A
//! fresh instance always merges; a reused one, a few hundred calls in, does not.
use policy_sdk::types::*;
use std::sync::atomic::{AtomicU64, Ordering};
static CALLS: AtomicU64 = AtomicU64::new(0);
struct StatefulLater;
impl policy_sdk::Policy for StatefulLater {
    fn describe() -> Description {
        policy_sdk::description("stateful-later", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        if CALLS.fetch_add(1, Ordering::Relaxed) >= 300 && ctx.relation == Relation::Concurrent {
            return Resolution::KeepLocal;
        }
        policy_sdk::merge::resolve(ctx, local, remote)
    }
}
policy_sdk::export_policy!(StatefulLater);
