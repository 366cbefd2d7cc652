//! The contract 1.1 path the benchmarks compare with the 1.0 one: `host_sandbox::strip` leaves out
//! of the call what both versions hold identically (the hosts do this for policies that
//! declare revision 1.1, as the default policy does).

use policy_types::PartyVersion;

use host_core::{ResolveError, resolve_with_whole_versions};

pub use host_core::sandbox::strip::{Stripped, restore, strip};

/// `resolve_with` as a contract 1.0 policy is called: both versions whole. Returns the party
/// written.
pub fn resolve_whole(
    policy: &host_core::Policy,
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> Result<Option<PartyVersion>, ResolveError> {
    let r = resolve_with_whole_versions(policy, "{}", region, local, remote)?;
    Ok(r.written(local, remote).cloned())
}
