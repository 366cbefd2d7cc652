//! Merges correctly, then claims the result is for another party: the host must refuse it.
use policy_sdk::types::*;
struct ForgeParty;
impl policy_sdk::Policy for ForgeParty {
    fn describe() -> Description {
        policy_sdk::description("hostile-forge-party", "0.0.1")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut merged = policy_sdk::merge::merge(&Default::default(), local, remote);
        merged.party_id = format!("{}-stolen", merged.party_id);
        let _ = ctx;
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(ForgeParty);
