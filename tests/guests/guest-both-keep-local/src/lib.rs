//! A broken policy of contract revision 1.3, as an author might write "the side that changed
//! the status wins": `fields::change` picks the side that changed it, and when both changed it
//! concurrently the local one is kept — so resolve(a,b) and resolve(b,a) keep different
//! statuses. Told no writes (`Change::Unknown`), it is the default merge: the flaw shows only
//! where the writes are sent, as the hosts send them.
use policy_sdk::fields::{Change, change, set_field};
use policy_sdk::types::writes::Writes;
use policy_sdk::types::*;
struct BothKeepLocal;
impl policy_sdk::Policy for BothKeepLocal {
    fn describe() -> Description {
        policy_sdk::description_with_writes("both-keep-local", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let none = Writes::default();
        Self::resolve_with_writes(ctx, (local, &none), (remote, &none))
    }
    fn resolve_with_writes(
        ctx: &Context,
        local: (&PartyVersion, &Writes),
        remote: (&PartyVersion, &Writes),
    ) -> Resolution {
        let resolution = policy_sdk::merge::resolve(ctx, local.0, remote.0);
        let Resolution::Merged(mut merged) = resolution else {
            return resolution;
        };
        let both = local.0.field("status").is_some() && remote.0.field("status").is_some();
        if !both || merged.tombstone.is_some() {
            return Resolution::Merged(merged);
        }
        let side = match change(local, remote, "status") {
            Change::Local | Change::Both => Side::Local,
            Change::Remote => Side::Remote,
            Change::Same | Change::Unknown => return Resolution::Merged(merged),
        };
        set_field(&mut merged, "status", MergedValue::Copy(side));
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(BothKeepLocal);
