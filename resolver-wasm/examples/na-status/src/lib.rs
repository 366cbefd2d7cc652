//! NA is the system of record for `status`: when the two versions disagree on it, the one
//! written in NA wins, whatever its clock says. Everything else merges as the default policy
//! does (per-field last writer, arrays element-wise, deletes as tombstones).

use policy_sdk::types::*;
use policy_sdk::{Policy, description, fields, merge};

struct NaStatus;

impl Policy for NaStatus {
    fn describe() -> Description {
        description("na-status", "1.0.0")
    }

    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut merged = match merge::resolve(ctx, local, remote) {
            Resolution::Merged(m) => m,
            other => return other,
        };
        let (Some(l), Some(r)) = (local.field("status"), remote.field("status")) else {
            return Resolution::Merged(merged);
        };
        if merged.tombstone.is_some() {
            return Resolution::Merged(merged); // deletes follow the default rules
        }
        let side = match (l.stamp.region == "na", r.stamp.region == "na") {
            (true, false) => Side::Local,
            (false, true) => Side::Remote,
            _ => fields::last_writer(l, r),
        };
        fields::set_field(&mut merged, "status", MergedValue::Copy(side));
        Resolution::Merged(merged)
    }
}

policy_sdk::export_policy!(NaStatus);
