//! The default merge declaring contract revision 1.1, as policies built before revision 1.2
//! do: a host sends it only what differs, in packed format 1, and it answers in format 1.
use policy_sdk::types::*;
struct Revision11;
impl policy_sdk::Policy for Revision11 {
    fn describe() -> Description {
        Description {
            contract_version: "1.1.0".into(),
            ..policy_sdk::description("revision-1-1", "1.0.0")
        }
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        policy_sdk::merge::resolve(ctx, local, remote)
    }
}
policy_sdk::export_policy!(Revision11);
