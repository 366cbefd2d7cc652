//! Merges concurrent versions as the default policy does and answers a dominated pair
//! backwards (the version that has not seen the other). Hosts settle dominated pairs without
//! asking (`decide_by_host`), so no host ever writes that answer: the law gate judges what
//! hosts write, and passes it.
use policy_sdk::types::*;
struct BackwardsDominated;
impl policy_sdk::Policy for BackwardsDominated {
    fn describe() -> Description {
        policy_sdk::description("backwards-dominated", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        match ctx.relation {
            Relation::LocalDominates => Resolution::TakeRemote,
            Relation::RemoteDominates => Resolution::KeepLocal,
            _ => policy_sdk::merge::resolve(ctx, local, remote),
        }
    }
}
policy_sdk::export_policy!(BackwardsDominated);
