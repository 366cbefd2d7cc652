//! A policy whose memory creeps up: every call leaks a MiB, then merges as the default policy
//! does. Not wrong in any answer, but one instance would reach the memory cap within a hundred
//! calls; the host must retire it before that (`Warm::worn` in host-sandbox) rather than fail
//! the call that crosses the cap.
use policy_sdk::types::*;

struct Leak;
impl policy_sdk::Policy for Leak {
    fn describe() -> Description {
        policy_sdk::description("leak", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        // Touched, so the pages are really taken.
        let leaked: &'static mut [u8] = vec![1u8; 1 << 20].leak();
        std::hint::black_box(leaked);
        policy_sdk::merge::resolve(ctx, local, remote)
    }
}
policy_sdk::export_policy!(Leak);
