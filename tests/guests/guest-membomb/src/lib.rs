//! Allocates and touches 1 GiB: the host's memory cap must stop it.
use policy_sdk::types::*;
struct Bomb;
impl policy_sdk::Policy for Bomb {
    fn describe() -> Description {
        policy_sdk::description("hostile-membomb", "0.0.1")
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        let v = vec![1u8; 1 << 30];
        Resolution::Reject(format!("allocated {}", std::hint::black_box(v).len()))
    }
}
policy_sdk::export_policy!(Bomb);
