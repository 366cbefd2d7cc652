//! A broken policy, as a new author wrote one in Python (issue 24): the default merge with an
//! authority rule for one array field, "EU's contact media win", and a delete rule that
//! compares stamps: a delete beats a version none of whose writes is newer than it, and
//! loses, whole, to one that has a newer write. Both rules are symmetric, so the policy is
//! commutative and idempotent; it is not associative. Three regions from one base: A changes
//! a contact medium, B deletes, C writes later. (A·B)·C is C (the delete beat A, then lost to
//! C); A·(B·C) is A·C, which keeps A's change.
use policy_sdk::fields::set_field;
use policy_sdk::types::*;
struct AuthorityDelete;
impl policy_sdk::Policy for AuthorityDelete {
    fn describe() -> Description {
        policy_sdk::description("authority-delete", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        if ctx.relation != Relation::Concurrent {
            return policy_sdk::merge::resolve(ctx, local, remote);
        }
        match (&local.tombstone, &remote.tombstone) {
            (Some(t), None) if remote.max_stamp() > Some(t) => return Resolution::TakeRemote,
            (Some(_), None) => return Resolution::KeepLocal,
            (None, Some(t)) if local.max_stamp() > Some(t) => return Resolution::KeepLocal,
            (None, Some(_)) => return Resolution::TakeRemote,
            _ => {}
        }
        let resolution = policy_sdk::merge::resolve(ctx, local, remote);
        let Resolution::Merged(mut merged) = resolution else {
            return resolution;
        };
        let eu = |v: &PartyVersion| {
            v.field("contactMedium")
                .is_some_and(|f| f.stamp.region == "eu")
        };
        if merged.tombstone.is_none() {
            match (eu(local), eu(remote)) {
                (true, false) => {
                    set_field(&mut merged, "contactMedium", MergedValue::Copy(Side::Local))
                }
                (false, true) => set_field(
                    &mut merged,
                    "contactMedium",
                    MergedValue::Copy(Side::Remote),
                ),
                _ => {}
            }
        }
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(AuthorityDelete);
