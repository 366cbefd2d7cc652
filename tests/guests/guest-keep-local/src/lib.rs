//! A broken policy: always keeps the local version, without reading either. Law checks must
//! catch it (resolve(a,b) and resolve(b,a) disagree whenever the versions differ).
use policy_sdk::types::*;
struct KeepLocal;
impl policy_sdk::Policy for KeepLocal {
    fn describe() -> Description {
        policy_sdk::description("keep-local", "1.0.0")
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        Resolution::KeepLocal
    }
}
policy_sdk::export_policy!(KeepLocal);
