//! Merges as the default policy does, then points the first entry reference of the first
//! element-wise field at element 9999, which was never sent. It declares the current contract
//! revision, so it is sent only what differs and the host remaps its indices: the host must
//! refuse the answer naming element 9999, the index the policy wrote, not one it remapped.
use policy_sdk::types::*;
struct BadEntryRef;
impl policy_sdk::Policy for BadEntryRef {
    fn describe() -> Description {
        policy_sdk::description("hostile-bad-entry-ref", "0.0.1")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let resolution = policy_sdk::merge::resolve(ctx, local, remote);
        let Resolution::Merged(mut merged) = resolution else {
            return resolution;
        };
        let first = merged.fields.iter_mut().find_map(|f| match &mut f.value {
            MergedValue::Elements(e) => e.elements.first_mut()?.first_mut(),
            _ => None,
        });
        if let Some(reference) = first {
            reference.element = 9999;
        }
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(BadEntryRef);
