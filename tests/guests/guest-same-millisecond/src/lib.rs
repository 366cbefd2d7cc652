//! A broken policy: the default merge, except that a scalar both versions wrote takes the
//! later write by wall-clock millisecond alone, and the local one when both were written in
//! the same millisecond. It decides as the default merge does unless two regions' stamps
//! share a millisecond; then resolve(a,b) and resolve(b,a) keep different writes (the same
//! value, when both wrote it: the parties then differ only in the field's stamp).
use policy_sdk::types::*;
struct SameMillisecond;
impl policy_sdk::Policy for SameMillisecond {
    fn describe() -> Description {
        policy_sdk::description("same-millisecond", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let resolution = policy_sdk::merge::resolve(ctx, local, remote);
        let Resolution::Merged(mut merged) = resolution else {
            return resolution;
        };
        if merged.tombstone.is_some() {
            return Resolution::Merged(merged);
        }
        for f in &mut merged.fields {
            let (Some(l), Some(r)) = (local.field(&f.name), remote.field(&f.name)) else {
                continue;
            };
            let scalar = matches!(
                (&l.value, &r.value),
                (FieldValue::Json(_), FieldValue::Json(_))
            );
            if scalar && f.name != "status" && l.stamp.wall_ms == r.stamp.wall_ms {
                f.value = MergedValue::Copy(Side::Local);
            }
        }
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(SameMillisecond);
