//! NA is the system of record for `status`: NA's status wins when NA changed it concurrently.
//! Of two different statuses, the merge keeps the greater by:
//! 1. a terminal state (an Individual's `deceased`, an Organization's `closed`: the end of the
//!    lifecycle) over one that is not, wherever it was written — NA's authority does not bring a
//!    party back from its end;
//! 2. then how many of NA's writes the status's write had seen, counting itself when NA made
//!    it (`fields::seen`, contract revision 1.3). NA's concurrent change beats a write made
//!    without having seen it; a write made after seeing NA's latest status counts as many and,
//!    stamped later, wins by
//! 3. the last writer.
//!
//! So a status NA wrote *before* the two versions forked does not beat a later change from
//! another region that had seen it, and a change made in ignorance of NA's latest decision
//! loses to one made knowing it.
//!
//! Where either status's write is unknown (a party stored before writes were recorded, or a
//! conflict captured without them), step 2 is the rule before revision 1.3: the status written
//! in NA wins. (Not "an unknown write has seen no NA write": then a status NA wrote before
//! writes were recorded would beat every later status NA writes.)
//!
//! Among known writes the key is the write's alone, so this is one order of status writes and
//! the merge stays commutative, associative and idempotent; a mixture of known and unknown
//! writes of one status across three or more versions is outside that argument (a party that
//! was stored before writes were recorded, until its status is written again). Deletes follow the default rules: the rule steps
//! aside when the merge keeps a tombstone, and for tenants configured `update-resurrects`,
//! where a delete keeps the writes stamped after it and so only the stamps' order is
//! associative (the default merge's lifecycle rule steps aside there too). Every other field
//! merges as the default policy does (per-field last writer, arrays element-wise).
//! docs/per-field-causality.md says why the key is NA's writes seen, not "which side changed
//! it" (that rule diverges).

use policy_sdk::types::writes::Writes;
use policy_sdk::types::*;
use policy_sdk::{Policy, description_with_writes, fields, merge};

struct NaStatus;

/// The region whose status wins.
const NA: &str = "na";

impl Policy for NaStatus {
    fn describe() -> Description {
        description_with_writes("na-status", "1.2.0")
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
        let delete_wins = merge::Config::parse(&ctx.config)
            .is_ok_and(|c| c.delete_rule == merge::DeleteRule::DeleteWins);
        if merged.tombstone.is_some() || !delete_wins {
            return Resolution::Merged(merged); // deletes follow the default rules
        }
        let seen = (
            fields::seen(local, "status", NA),
            fields::seen(remote, "status", NA),
        );
        let rank = |side: (&PartyVersion, &Writes), f: &Field, seen: Option<u64>| {
            let terminal = match &f.value {
                FieldValue::Json(status) => merge::is_terminal(side.0.resource_type, status),
                FieldValue::Elements(_) => false,
            };
            let authority = match seen {
                Some(n) => n,
                None => u64::from(f.stamp.region == NA),
            };
            (terminal, authority)
        };
        // Both writes known: NA's writes seen; otherwise whether NA wrote it.
        let known = seen.0.is_some() && seen.1.is_some();
        let (ls, rs) = if known { seen } else { (None, None) };
        let side = match rank(local, l, ls).cmp(&rank(remote, r, rs)) {
            std::cmp::Ordering::Greater => Side::Local,
            std::cmp::Ordering::Less => Side::Remote,
            std::cmp::Ordering::Equal => fields::last_writer(l, r),
        };
        fields::set_field(&mut merged, "status", MergedValue::Copy(side));
        Resolution::Merged(merged)
    }
}

policy_sdk::export_policy!(NaStatus);
