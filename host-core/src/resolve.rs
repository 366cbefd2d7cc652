//! Resolving one conflict: causality first, the tenant's policy only for concurrent versions,
//! and the policy's answer checked before anything is written.

use std::sync::Arc;

use policy_types::{
    ContextRef, PartyVersion, Relation, Resolution, VectorOrder, compare_vectors, join_vectors,
    materialize_with,
};

use host_sandbox::{Call, CallFailure, Policy};
use thiserror::Error;

use crate::tenant::{LogSettings, policy_view};

/// The causal relation of two versions, from their version vectors.
#[inline]
pub fn relation(local: &PartyVersion, remote: &PartyVersion) -> Relation {
    match compare_vectors(&local.version_vector, &remote.version_vector) {
        VectorOrder::Equal => Relation::Equal,
        VectorOrder::Dominates => Relation::LocalDominates,
        VectorOrder::DominatedBy => Relation::RemoteDominates,
        VectorOrder::Concurrent => Relation::Concurrent,
    }
}

/// What was decided for one conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    KeepLocal,
    TakeRemote,
    Merged,
    /// The policy refused; the conflict goes to the dead-letter path with this reason.
    Rejected(String),
}

impl Decision {
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::KeepLocal => "keep-local",
            Decision::TakeRemote => "take-remote",
            Decision::Merged => "merged",
            Decision::Rejected(_) => "rejected",
        }
    }
}

/// The outcome of resolving one conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub relation: Relation,
    pub decision: Decision,
    /// The party the policy's answer describes (merged, or one side under the joined version
    /// vector). `None` when rejected, and when one version dominates: the host then answers
    /// without copying anything — the winner is one of the inputs ([`Resolved::written`]).
    /// Boxed, so that a host decision moves a few words rather than a whole version's worth.
    pub party: Option<Box<PartyVersion>>,
    /// The digest of the policy that decided, `None` when the host decided alone
    /// (one version dominates the other).
    pub policy_digest: Option<String>,
}

impl Resolved {
    /// What to write: the policy's party, or the dominating input; `None` when rejected.
    pub fn written<'a>(
        &'a self,
        local: &'a PartyVersion,
        remote: &'a PartyVersion,
    ) -> Option<&'a PartyVersion> {
        match (&self.party, &self.decision) {
            (Some(p), _) => Some(&**p),
            (None, Decision::KeepLocal) => Some(local),
            (None, Decision::TakeRemote) => Some(remote),
            (None, _) => None,
        }
    }
}

/// Validates a policy's resolution and builds the party it describes.
///
/// Keep-local and take-remote on concurrent versions keep that side's content under the
/// joined version vector: the other side's writes were seen and overruled, and a vector that
/// did not cover them would bring the same conflict back forever.
pub fn apply_resolution(
    region: &str,
    relation: Relation,
    local: &PartyVersion,
    remote: &PartyVersion,
    resolution: &Resolution,
) -> Result<(Decision, Option<PartyVersion>), CallFailure> {
    apply_resolution_with(region, relation, local, remote, resolution, &[])
}

/// As [`apply_resolution`], a merged answer also keeping the local fields at `identical`
/// (those a contract 1.1 call left out: [`host_sandbox::strip::Stripped::identical_fields`]).
pub fn apply_resolution_with(
    region: &str,
    relation: Relation,
    local: &PartyVersion,
    remote: &PartyVersion,
    resolution: &Resolution,
    identical: &[usize],
) -> Result<(Decision, Option<PartyVersion>), CallFailure> {
    let keep = |side: &PartyVersion| {
        let mut party = side.clone();
        if relation == Relation::Concurrent || relation == Relation::Equal {
            party.version_vector = join_vectors(&local.version_vector, &remote.version_vector);
            party.origin_region = region.to_owned();
        }
        party
    };
    Ok(match resolution {
        Resolution::KeepLocal => (Decision::KeepLocal, Some(keep(local))),
        Resolution::TakeRemote => (Decision::TakeRemote, Some(keep(remote))),
        Resolution::Reject(reason) => (Decision::Rejected(reason.clone()), None),
        Resolution::Merged(merged) => {
            let is_json = |text: &str| {
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            let party = materialize_with(local, remote, merged, region, &is_json, identical)
                .map_err(|e| CallFailure::InvalidResult(e.to_string()))?;
            (Decision::Merged, Some(party))
        }
    })
}

/// The host's own decision, without a policy: `Some` when one version dominates the other or
/// both are the same; `None` when a policy must decide (or the versions are of different
/// parties, which [`resolve_with`] refuses). Nothing is copied: the winner is one of the inputs
/// ([`Resolved::written`]).
#[inline]
pub fn decide_by_host(local: &PartyVersion, remote: &PartyVersion) -> Option<Resolved> {
    if local.tenant != remote.tenant || local.party_id != remote.party_id {
        return None;
    }
    let relation = relation(local, remote);
    let decision = match relation {
        Relation::LocalDominates => Decision::KeepLocal,
        Relation::RemoteDominates => Decision::TakeRemote,
        Relation::Equal if local == remote => Decision::KeepLocal,
        Relation::Equal | Relation::Concurrent => return None,
    };
    Some(decided_by_host(relation, decision))
}

/// Resolves with an explicit policy and configuration (dry-run, law checks, tests). A
/// policy of contract 1.1 is sent only what differs between the versions ([`host_sandbox::strip`]).
#[inline]
pub fn resolve_with(
    policy: &Policy,
    config: &str,
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> Result<Resolved, ResolveError> {
    if let Some(decided) = decide_by_host(local, remote) {
        return Ok(decided);
    }
    resolve_inner(
        policy,
        config,
        region,
        local,
        remote,
        policy.info().differences_only,
    )
}

/// As [`resolve_with`], always sending both versions whole (as to a contract 1.0 policy):
/// what the benchmarks and the equivalence tests compare the 1.1 path with.
pub fn resolve_with_whole_versions(
    policy: &Policy,
    config: &str,
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> Result<Resolved, ResolveError> {
    if let Some(decided) = decide_by_host(local, remote) {
        return Ok(decided);
    }
    resolve_inner(policy, config, region, local, remote, false)
}

/// The policy's part, once the host has found it cannot decide alone ([`decide_by_host`]).
/// Kept out of line: inlined into [`resolve_with`], its large frame made the host's own
/// decision there cost twice as much (measured: 31 → 15 ns on a dominated pair).
#[inline(never)]
fn resolve_inner(
    policy: &Policy,
    config: &str,
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
    differences_only: bool,
) -> Result<Resolved, ResolveError> {
    let relation = relation(local, remote);
    let fail = |failure| ResolveError {
        tenant: local.tenant.clone(),
        digest: policy.digest().to_owned(),
        failure,
    };
    if local.tenant != remote.tenant || local.party_id != remote.party_id {
        return Err(fail(CallFailure::InvalidResult(format!(
            "the versions are of different parties ({}/{} and {}/{}); nothing to resolve",
            local.tenant, local.party_id, remote.tenant, remote.party_id
        ))));
    }
    let ctx = ContextRef {
        tenant: &local.tenant,
        resolving_region: region,
        relation,
        config,
    };
    let stripped = if differences_only {
        host_sandbox::strip::strip(local, remote)
    } else {
        None
    };
    let resolution = match &stripped {
        Some(s) => {
            host_sandbox::strip::restore(s, policy.call(Call::stripped(ctx, s)).map_err(fail)?)
        }
        None => policy.call((ctx, local, remote)).map_err(fail)?,
    };
    let identical = stripped.as_ref().map_or(&[][..], |s| s.identical_fields());
    let applied = apply_resolution_with(region, relation, local, remote, &resolution, identical);
    host_sandbox::policy::recycle(resolution);
    let (decision, party) = applied.map_err(fail)?;
    Ok(Resolved {
        relation,
        decision,
        party: party.map(Box::new),
        policy_digest: Some(policy.digest().to_owned()),
    })
}

fn decided_by_host(relation: Relation, decision: Decision) -> Resolved {
    Resolved {
        relation,
        decision,
        party: None,
        policy_digest: None,
    }
}

/// A tenant's policy as the hosts use it: the active version, the tenant's configuration
/// document, and optionally a candidate running in shadow beside it.
#[derive(Clone, Debug)]
pub struct ActivePolicy {
    pub policy: Arc<Policy>,
    /// JSON text handed to the policy in every context (`{}` when unset).
    pub config: String,
    pub shadow: Option<Arc<Policy>>,
    /// What the tenant asks of the conflict log (the configuration's `conflictLog` member,
    /// which is the host's: the policy never sees it).
    pub log: LogSettings,
}

impl ActivePolicy {
    pub fn new(policy: Arc<Policy>) -> Self {
        ActivePolicy {
            policy,
            config: "{}".to_owned(),
            shadow: None,
            log: LogSettings::default(),
        }
    }

    /// Sets the tenant's configuration document: its `conflictLog` member is read by the host
    /// and taken out; the rest is what the policy is given.
    pub fn with_config(mut self, config: impl Into<String>) -> Self {
        let config = config.into();
        self.log = LogSettings::from_config(&config);
        self.config = policy_view(&config);
        self
    }

    pub fn with_shadow(mut self, shadow: Option<Arc<Policy>>) -> Self {
        self.shadow = shadow;
        self
    }
}

/// Where a resolver finds a tenant's policy. A fixed set of policies answers from memory
/// ([`crate::policies::TenantPolicies`]); the registry follower ([`crate::follow`]) first makes
/// sure the answer is at most one refresh interval stale, and compares a candidate in shadow.
/// The resolver knows nothing else of registries.
pub trait PolicyLookup: Send + Sync + std::fmt::Debug {
    /// A snapshot of the tenant's policy for one call (or one batch): a hot swap meanwhile
    /// changes the next snapshot, not this one.
    fn policy(&self, tenant: &str) -> Result<Arc<ActivePolicy>, ResolveFailure>;

    /// Told after `active` answered a conflict that the host could not settle alone, with what
    /// it answered: where a candidate runs in shadow, it is asked the same and compared. Never
    /// changes what is written. Nothing by default.
    fn resolved(
        &self,
        _conflict: &Conflict<'_>,
        _active: &ActivePolicy,
        _served: &Result<Resolved, ResolveFailure>,
    ) {
    }

    /// Counters for the host's metrics since the last call, reset (policy checks, swaps, load
    /// failures, shadow comparisons). None by default.
    fn take_stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// One conflict as a resolver saw it: which region resolved it, and the two versions.
#[derive(Clone, Copy, Debug)]
pub struct Conflict<'a> {
    pub region: &'a str,
    pub local: &'a PartyVersion,
    pub remote: &'a PartyVersion,
}

/// Resolves conflicts for one region with each tenant's active policy.
#[derive(Clone, Debug)]
pub struct Resolver {
    lookup: Arc<dyn PolicyLookup>,
    region: String,
}

/// Why a conflict could not be resolved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    #[error(transparent)]
    NoPolicy(#[from] NoPolicy),
    #[error(transparent)]
    Policy(#[from] ResolveError),
    /// The tenant's policy could not be read from the registry (and none was read before).
    #[error("{0}")]
    Registry(String),
}

/// A failed resolution: which tenant, which policy, what went wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("tenant {tenant}, policy {digest}: {failure}")]
pub struct ResolveError {
    pub tenant: String,
    pub digest: String,
    #[source]
    pub failure: CallFailure,
}

/// No policy is set for a tenant and the registry has no default.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("no policy is active for tenant {0} and no default is set")]
pub struct NoPolicy(pub String);

impl Resolver {
    /// A resolver for `region` that asks `lookup` for each tenant's policy.
    pub fn new(lookup: Arc<dyn PolicyLookup>, region: impl Into<String>) -> Self {
        Resolver {
            lookup,
            region: region.into(),
        }
    }

    pub fn lookup(&self) -> &Arc<dyn PolicyLookup> {
        &self.lookup
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Resolves `local` (this region's version) against `remote` with the tenant's policy.
    pub fn resolve(
        &self,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Result<Resolved, ResolveFailure> {
        // Dominated versions need no policy: no registry read, no policy lookup, no copy.
        if let Some(decided) = decide_by_host(local, remote) {
            return Ok(decided);
        }
        let active = self.lookup.policy(&local.tenant)?;
        let differences_only = active.policy.info().differences_only;
        let result = resolve_inner(
            &active.policy,
            &active.config,
            &self.region,
            local,
            remote,
            differences_only,
        )
        .map_err(ResolveFailure::from);
        // A candidate in shadow sees what the policy saw (conflicts the host settled alone
        // returned above: no policy was asked).
        if active.shadow.is_some() {
            let conflict = Conflict {
                region: &self.region,
                local,
                remote,
            };
            self.lookup.resolved(&conflict, &active, &result);
        }
        let resolved = result?;
        tracing::debug!(
            tenant = %local.tenant,
            party = %local.party_id,
            policy = %active.policy.digest(),
            region = %self.region,
            outcome = resolved.decision.kind(),
            "host.resolve"
        );
        Ok(resolved)
    }
}
