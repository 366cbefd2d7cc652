//! Panics: a trap, which must cost the conflict a trip to the dead-letter path, not the host.
use policy_sdk::types::*;
struct Panicking;
impl policy_sdk::Policy for Panicking {
    fn describe() -> Description {
        policy_sdk::description("hostile-panic", "0.0.1")
    }
    fn resolve(_: &Context, local: &PartyVersion, _: &PartyVersion) -> Resolution {
        panic!("policy bug on party {}", local.party_id)
    }
}
policy_sdk::export_policy!(Panicking);
