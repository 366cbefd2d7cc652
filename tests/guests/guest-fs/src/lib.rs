//! Built for wasm32-wasip2: tries to read a host file, which makes the component import
//! `wasi:filesystem`. The host must refuse it at load time.
use policy_sdk::types::*;
struct ReadsFiles;
impl policy_sdk::Policy for ReadsFiles {
    fn describe() -> Description {
        policy_sdk::description("hostile-fs", "0.0.1")
    }
    fn resolve(_: &Context, _: &PartyVersion, _: &PartyVersion) -> Resolution {
        match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Resolution::Reject(text),
            Err(e) => Resolution::Reject(e.to_string()),
        }
    }
}
policy_sdk::export_policy!(ReadsFiles);
