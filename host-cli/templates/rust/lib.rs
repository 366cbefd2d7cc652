//! {{name}}: a conflict-resolution policy for TMF632 parties. It starts as the default merge
//! (per-field last writer by hybrid logical clock, arrays element-wise, `status` by lifecycle,
//! deletes as tombstones); change `resolve` to add your rules, as
//! resolver-wasm/examples/na-status does. docs/writing-a-policy.md is the guide.

use policy_sdk::types::*;
use policy_sdk::{Policy, description, merge};

struct ThePolicy;

impl Policy for ThePolicy {
    fn describe() -> Description {
        description("{{name}}", "0.1.0")
    }

    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        merge::resolve(ctx, local, remote)
    }
}

policy_sdk::export_policy!(ThePolicy);
