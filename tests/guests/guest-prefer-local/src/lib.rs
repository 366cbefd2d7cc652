//! A broken policy: a field-by-field merge that takes the local side for every field both
//! versions hold. Valid results, but two regions resolving the same conflict disagree.
use policy_sdk::types::*;
struct PreferLocal;
impl policy_sdk::Policy for PreferLocal {
    fn describe() -> Description {
        policy_sdk::description("prefer-local", "1.0.0")
    }
    fn resolve(_: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut merged = policy_sdk::fields::last_writer_wins(local, remote);
        for f in &mut merged.fields {
            if local.field(&f.name).is_some() {
                f.value = MergedValue::Copy(Side::Local);
            }
        }
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(PreferLocal);
