//! Loops forever: the host's deadline must stop it.
use policy_sdk::types::*;
struct Looping;
impl policy_sdk::Policy for Looping {
    fn describe() -> Description {
        policy_sdk::description("hostile-loop", "0.0.1")
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}
policy_sdk::export_policy!(Looping);
