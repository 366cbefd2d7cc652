//! Contract revision 1.3, broken: "NA's status wins when NA changed it concurrently", written
//! one pair at a time — the status write the other side has not seen wins; of two concurrent
//! ones, NA's; otherwise the later stamp. NA sets `b`, EU (not having seen it) sets `a`, APAC
//! receives `b` and then sets `c`: `b` beats `a` (NA's), `c` beats `b` (it saw it), `a` beats
//! `c` (later), so the order of the merges decides (docs/per-field-causality.md). Every pair
//! of concurrent writes alone is settled consistently: the flaw needs a version received
//! mid-history.
use policy_sdk::fields::{Change, change, last_writer, set_field};
use policy_sdk::types::writes::Writes;
use policy_sdk::types::*;
use policy_sdk::{Policy, description_with_writes, merge};
struct PairwiseStatus;
impl Policy for PairwiseStatus {
    fn describe() -> Description {
        description_with_writes("pairwise-status", "1.0.0")
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
        let mut merged = match merge::resolve(ctx, local.0, remote.0) {
            Resolution::Merged(m) => m,
            other => return other,
        };
        let (Some(l), Some(r)) = (local.0.field("status"), remote.0.field("status")) else {
            return Resolution::Merged(merged);
        };
        if merged.tombstone.is_some() {
            return Resolution::Merged(merged);
        }
        let na = |f: &Field| f.stamp.region == "na";
        let side = match change(local, remote, "status") {
            Change::Local => Side::Local,
            Change::Remote => Side::Remote,
            Change::Both if na(l) && !na(r) => Side::Local,
            Change::Both if na(r) && !na(l) => Side::Remote,
            _ => last_writer(l, r),
        };
        set_field(&mut merged, "status", MergedValue::Copy(side));
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(PairwiseStatus);
