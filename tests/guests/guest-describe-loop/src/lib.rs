//! Loops forever in `describe`, which the host calls once, at load: the deadline must stop it
//! and the load must fail saying that describe ran past it.
use policy_sdk::types::*;
struct DescribeLoop;
impl policy_sdk::Policy for DescribeLoop {
    fn describe() -> Description {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        Resolution::KeepLocal
    }
}
policy_sdk::export_policy!(DescribeLoop);
