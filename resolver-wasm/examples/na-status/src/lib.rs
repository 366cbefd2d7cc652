//! NA is the system of record for `status`. Of two different statuses, the merge keeps:
//! 1. a terminal state (an Individual's `deceased`, an Organization's `closed`: the end of the
//!    lifecycle) over one that is not, wherever it was written — NA's authority does not bring a
//!    party back from its end;
//! 2. otherwise the one written in NA, whatever its clock says;
//! 3. otherwise the last writer.
//!
//! That is one order of all status writes (terminal first, then NA's, then by stamp), so the
//! merge stays commutative, associative and idempotent. Deletes follow the default rules: the
//! rule steps aside when the merge keeps a tombstone, and for tenants configured
//! `update-resurrects`, where a delete keeps the writes stamped after it and so only the
//! stamps' order is associative (the default merge's lifecycle rule steps aside there too).
//! Every other field merges as the default policy does (per-field last writer, arrays
//! element-wise).
//!
//! Its limit: a status NA wrote *before* the two versions forked still beats a later change from
//! another region that had seen it, because the contract does not yet say which write set a
//! field; "NA wins only when NA changed status concurrently" needs that
//! (docs/per-field-causality.md).

use policy_sdk::types::*;
use policy_sdk::{Policy, description, fields, merge};

struct NaStatus;

impl Policy for NaStatus {
    fn describe() -> Description {
        description("na-status", "1.1.0")
    }

    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut merged = match merge::resolve(ctx, local, remote) {
            Resolution::Merged(m) => m,
            other => return other,
        };
        let (Some(l), Some(r)) = (local.field("status"), remote.field("status")) else {
            return Resolution::Merged(merged);
        };
        let delete_wins = merge::Config::parse(&ctx.config)
            .is_ok_and(|c| c.delete_rule == merge::DeleteRule::DeleteWins);
        if merged.tombstone.is_some() || !delete_wins {
            return Resolution::Merged(merged); // deletes follow the default rules
        }
        let rank = |f: &Field| {
            let terminal = match &f.value {
                FieldValue::Json(status) => merge::is_terminal(local.resource_type, status),
                FieldValue::Elements(_) => false,
            };
            (terminal, f.stamp.region == "na")
        };
        let side = match rank(l).cmp(&rank(r)) {
            std::cmp::Ordering::Greater => Side::Local,
            std::cmp::Ordering::Less => Side::Remote,
            std::cmp::Ordering::Equal => fields::last_writer(l, r),
        };
        fields::set_field(&mut merged, "status", MergedValue::Copy(side));
        Resolution::Merged(merged)
    }
}

policy_sdk::export_policy!(NaStatus);
