//! Merges correctly, then bumps its own region's counter in the version vector: a forged
//! clock that would make this version dominate writes it never saw. The host must refuse it.
use policy_sdk::types::*;
struct ForgeClock;
impl policy_sdk::Policy for ForgeClock {
    fn describe() -> Description {
        policy_sdk::description("hostile-forge-clock", "0.0.1")
    }
    fn resolve(_: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut merged = policy_sdk::merge::merge(&Default::default(), local, remote);
        for dot in &mut merged.version_vector {
            dot.counter += 1000;
        }
        Resolution::Merged(merged)
    }
}
policy_sdk::export_policy!(ForgeClock);
