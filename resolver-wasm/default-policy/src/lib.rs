//! The default TMF632 policy: [`tmf632_merge`] behind the `tmf632:conflict` contract.

use policy_sdk::Policy;
use policy_sdk::types::{Context, Description, PartyVersion, Resolution};

pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn describe() -> Description {
        tmf632_merge::describe()
    }

    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        tmf632_merge::resolve(ctx, local, remote)
    }
}

policy_sdk::export_policy!(DefaultPolicy);
