//! Tenants' policies kept in step with the registry: hot swap with bounded staleness.
//!
//! The follower is the resolver's [`PolicyLookup`] where a registry is configured: it asks
//! [`RegistryFollower::ensure`] before resolving a tenant's conflict. At most once per
//! refresh interval per tenant that costs one read of the tenant's state; when its revision
//! moved, the named versions are fetched, verified against their digests, loaded (from the
//! local artifact cache when precompiled, so a cold start deserializes) and swapped in
//! atomically: calls in flight finish on the old version, the next call gets the new one. A
//! version that cannot be loaded is logged and counted, and the old one keeps serving.
//!
//! The first call for a tenant waits for its policy; later refreshes never block a call (a call
//! that finds another thread refreshing uses the current version).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use policy_types::PartyVersion;

use host_sandbox::{ArtifactCache, Policy, PolicyEngine};

use crate::conflict::{CapturedConflict, CapturedContext};
use crate::policies::TenantPolicies;
use crate::registry::{
    PolicyRegistry, RegistryError, ShadowComparison, ShadowOutcome, TenantState, fetch_component,
    now_ms, short,
};
use crate::resolve::{
    ActivePolicy, Conflict, Decision, PolicyLookup, ResolveFailure, Resolved, resolve_with_writes,
};

/// Counters a host reports as metrics.
#[derive(Debug, Default)]
pub struct RefreshStats {
    /// Tenant states read from the registry.
    pub checks: AtomicU64,
    /// Policies swapped in (a new active version, candidate or configuration).
    pub swaps: AtomicU64,
    /// Versions that could not be fetched, verified or loaded (the old one kept serving), and
    /// registry reads that failed.
    pub failures: AtomicU64,
    pub shadow_compared: AtomicU64,
    pub shadow_disagreed: AtomicU64,
}

impl RefreshStats {
    /// The counters since the last call, reset.
    pub fn take(&self) -> [(&'static str, u64); 5] {
        [
            ("PolicyChecks", self.checks.swap(0, Ordering::Relaxed)),
            ("PolicySwaps", self.swaps.swap(0, Ordering::Relaxed)),
            (
                "PolicyLoadFailures",
                self.failures.swap(0, Ordering::Relaxed),
            ),
            (
                "ShadowCompared",
                self.shadow_compared.swap(0, Ordering::Relaxed),
            ),
            (
                "ShadowDisagreed",
                self.shadow_disagreed.swap(0, Ordering::Relaxed),
            ),
        ]
    }
}

#[derive(Default)]
struct Slot {
    /// Held while loading; the first load of a tenant waits on it, later ones try it.
    loading: Mutex<()>,
    seen: Mutex<Seen>,
}

type Served = (u64, u64, String);

fn fingerprint(state: &TenantState) -> Served {
    (
        state.revision,
        state.updated_at_ms,
        state.updated_by.clone(),
    )
}

#[derive(Default)]
struct Seen {
    checked: Option<Instant>,
    /// What is being served: the state's revision, when and by whom it was written (`None`
    /// before the first successful refresh). More than the revision: two regions' writes to
    /// the global registry table may carry the same revision, and last-writer-wins keeps one.
    served: Option<Served>,
}

/// Loaded versions kept for reuse (rollback, a candidate promoted to active).
const KEEP_LOADED: usize = 8;

/// The tenants' policies, refreshed from a registry.
pub struct RegistryFollower {
    registry: Arc<dyn PolicyRegistry>,
    policies: Arc<TenantPolicies>,
    engine: PolicyEngine,
    cache: Option<ArtifactCache>,
    interval: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    loaded: Mutex<Vec<Arc<Policy>>>,
    stats: RefreshStats,
}

impl std::fmt::Debug for RegistryFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryFollower")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What a refresh found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// The tenant's revision has not moved.
    Unchanged,
    /// A new revision is served.
    Swapped { revision: u64 },
    /// The registry has nothing for the tenant: the default policy serves it.
    NoEntry,
}

/// Why a refresh kept the old policy.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("reading tenant {tenant}'s state from the registry: {source}")]
    Registry {
        tenant: String,
        #[source]
        source: RegistryError,
    },
    #[error(
        "loading version {digest} for tenant {tenant}: {reason}; the previous policy keeps serving"
    )]
    Load {
        tenant: String,
        digest: String,
        reason: String,
    },
}

impl RegistryFollower {
    pub fn new(
        registry: Arc<dyn PolicyRegistry>,
        policies: Arc<TenantPolicies>,
        engine: PolicyEngine,
        cache: Option<ArtifactCache>,
        interval: Duration,
    ) -> Self {
        RegistryFollower {
            registry,
            policies,
            engine,
            cache,
            interval,
            slots: Mutex::new(HashMap::new()),
            loaded: Mutex::new(Vec::new()),
            stats: RefreshStats::default(),
        }
    }

    pub fn policies(&self) -> &Arc<TenantPolicies> {
        &self.policies
    }

    pub fn registry(&self) -> &Arc<dyn PolicyRegistry> {
        &self.registry
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn stats(&self) -> &RefreshStats {
        &self.stats
    }

    /// The tenant's slot (allocated once per tenant, not per call).
    fn slot(&self, tenant: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get(tenant) {
            return slot.clone();
        }
        slots.entry(tenant.to_owned()).or_default().clone()
    }

    /// Makes sure the tenant's policy is at most one interval stale. A refresh that goes wrong
    /// is logged and counted, and the current policy keeps serving; only when the tenant has
    /// never been read successfully is the failure returned (serving the default policy to a
    /// tenant that has its own would write the wrong merges), and the next call tries again.
    pub fn ensure(&self, tenant: &str) -> Result<(), RefreshError> {
        let slot = self.slot(tenant);
        let first = {
            let seen = slot.seen.lock().unwrap();
            if seen.checked.is_some_and(|c| c.elapsed() < self.interval) {
                return Ok(());
            }
            seen.served.is_none()
        };
        let _guard = if first {
            slot.loading.lock().unwrap()
        } else {
            match slot.loading.try_lock() {
                Ok(g) => g,
                Err(_) => return Ok(()),
            }
        };
        if slot
            .seen
            .lock()
            .unwrap()
            .checked
            .is_some_and(|c| c.elapsed() < self.interval)
        {
            return Ok(());
        }
        let served = slot.seen.lock().unwrap().served.clone();
        // Staleness counts from the read, not from the end of a (slow) load: a change made
        // after this read is seen by the first call one interval later.
        let started = Instant::now();
        let result = self.refresh_from(tenant, served.as_ref());
        let mut seen = slot.seen.lock().unwrap();
        match result {
            Ok((_, now_served)) => {
                seen.checked = Some(started);
                seen.served = now_served;
                Ok(())
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(tenant, error = %e, "host.policy.refresh_failed");
                if seen.served.is_none() {
                    return Err(e);
                }
                seen.checked = Some(started);
                Ok(())
            }
        }
    }

    /// Reads the tenant's state now and swaps if it differs from the one served.
    pub fn refresh(&self, tenant: &str) -> Result<Refreshed, RefreshError> {
        let slot = self.slot(tenant);
        let _guard = slot.loading.lock().unwrap();
        let served = slot.seen.lock().unwrap().served.clone();
        let started = Instant::now();
        let result = self.refresh_from(tenant, served.as_ref());
        let mut seen = slot.seen.lock().unwrap();
        seen.checked = Some(started);
        match result {
            Ok((outcome, now_served)) => {
                seen.served = now_served;
                Ok(outcome)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Returns what is served afterwards; `None` when a part (the shadow candidate) could not
    /// be loaded, so that the next refresh tries again.
    fn refresh_from(
        &self,
        tenant: &str,
        served: Option<&Served>,
    ) -> Result<(Refreshed, Option<Served>), RefreshError> {
        self.stats.checks.fetch_add(1, Ordering::Relaxed);
        let state = self
            .registry
            .state(tenant)
            .map_err(|source| RefreshError::Registry {
                tenant: tenant.to_owned(),
                source,
            })?;
        let Some(state) = state else {
            if served.is_some_and(|s| s.0 > 0) {
                self.policies.deactivate(tenant);
            }
            return Ok((Refreshed::NoEntry, Some((0, 0, String::new()))));
        };
        let now = fingerprint(&state);
        if served == Some(&now) {
            return Ok((Refreshed::Unchanged, Some(now)));
        }
        let complete = self.swap_to(&state)?;
        Ok((
            Refreshed::Swapped {
                revision: state.revision,
            },
            complete.then_some(now),
        ))
    }

    /// Swaps to the state's versions; returns false when the shadow candidate could not be
    /// loaded (the active version serves; the comparison waits for the next refresh).
    fn swap_to(&self, state: &TenantState) -> Result<bool, RefreshError> {
        let tenant = &state.tenant;
        let Some(active) = &state.active else {
            // Versions uploaded, none activated (or all rolled back): the default serves.
            self.policies.deactivate(tenant);
            return Ok(true);
        };
        let versions = if state.trusted_keys.is_empty() {
            Vec::new()
        } else {
            self.registry
                .versions(tenant)
                .map_err(|source| RefreshError::Registry {
                    tenant: tenant.to_owned(),
                    source,
                })?
        };
        self.check_signature(state, &versions, active)?;
        let policy = self.load(tenant, active)?;
        let mut complete = true;
        let shadow = match &state.shadow {
            Some(s) => match self
                .check_signature(state, &versions, &s.digest)
                .and_then(|()| self.load(tenant, &s.digest))
            {
                Ok(p) => Some(p),
                Err(e) => {
                    complete = false;
                    // The active policy still serves; only the comparison is lost.
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(tenant = %tenant, error = %e, "host.policy.shadow_load_failed");
                    None
                }
            },
            None => None,
        };
        let previous = self
            .policies
            .get(tenant)
            .ok()
            .map(|p| p.policy.digest().to_owned());
        self.policies.activate(
            tenant,
            ActivePolicy::new(policy)
                .with_config(state.config.clone())
                .with_shadow(shadow),
        );
        self.stats.swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            tenant = %tenant,
            revision = state.revision,
            policy = %active,
            previous = previous.as_deref().unwrap_or("-"),
            shadow = state.shadow.as_ref().map_or("-", |s| s.digest.as_str()),
            "host.policy.swap"
        );
        Ok(complete)
    }

    /// Refuses a version the tenant's trusted keys did not sign (when it trusts any): the
    /// version served before keeps serving, and the refusal is logged and counted as a load
    /// failure (the functions' `PolicyLoadFailures`, which is alarmed).
    fn check_signature(
        &self,
        state: &TenantState,
        versions: &[crate::registry::PolicyVersion],
        digest: &str,
    ) -> Result<(), RefreshError> {
        if state.trusted_keys.is_empty() {
            return Ok(());
        }
        let refused = |reason: String| {
            tracing::error!(tenant = %state.tenant, policy = %digest, reason, "host.policy.signature_refused");
            RefreshError::Load {
                tenant: state.tenant.clone(),
                digest: digest.to_owned(),
                reason,
            }
        };
        let version = versions
            .iter()
            .find(|v| v.digest == digest)
            .ok_or_else(|| refused("no version record: its signature cannot be checked".into()))?;
        crate::signing::verify(
            &state.tenant,
            &state.trusted_keys,
            digest,
            &version.description,
            version.signature.as_ref(),
        )
        .map_err(|e| refused(e.to_string()))
    }

    /// A loaded version: reused when loaded before, else fetched, verified and loaded.
    fn load(&self, tenant: &str, digest: &str) -> Result<Arc<Policy>, RefreshError> {
        if let Some(p) = self
            .loaded
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.digest() == digest)
        {
            return Ok(p.clone());
        }
        let fail = |reason: String| RefreshError::Load {
            tenant: tenant.to_owned(),
            digest: digest.to_owned(),
            reason,
        };
        let bytes = fetch_component(&*self.registry, digest).map_err(|e| fail(e.to_string()))?;
        self.fetch_precompiled(digest);
        let policy = Arc::new(
            Policy::load(&self.engine, &bytes, self.cache.as_ref())
                .map_err(|e| fail(e.to_string()))?,
        );
        tracing::info!(
            tenant,
            policy = %digest,
            from_cache = policy.info().from_cache,
            "host.policy.loaded"
        );
        let mut loaded = self.loaded.lock().unwrap();
        loaded.push(policy.clone());
        if loaded.len() > KEEP_LOADED {
            loaded.remove(0);
        }
        Ok(policy)
    }

    /// Copies the artifact the upload stored beside the component into the local cache when
    /// the cache lacks it, so that this load deserializes instead of compiling. Whatever fails
    /// here only costs the compilation the load then does.
    fn fetch_precompiled(&self, digest: &str) {
        let Some(cache) = &self.cache else { return };
        if cache.contains(&self.engine, digest) {
            return;
        }
        let engine = self.engine.compatibility_hash();
        match self.registry.precompiled(&engine, digest) {
            Ok(Some(artifact)) => {
                if let Err(e) = cache.install(&self.engine, digest, &artifact) {
                    tracing::warn!(policy = %digest, error = %e, "host.policy.precompiled_not_cached");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(policy = %digest, error = %e, "host.policy.precompiled_unreadable");
            }
        }
    }

    /// Resolves the conflict with the candidate too and records whether it agreed with the
    /// active policy. Never changes what is written; a failure to record is logged.
    fn compare_shadow(
        &self,
        active: &ActivePolicy,
        candidate: &Policy,
        conflict: &Conflict<'_>,
        served: &Result<Resolved, ResolveFailure>,
    ) {
        let (region, local, remote) = (conflict.region, conflict.local, conflict.remote);
        let (local_writes, remote_writes) = (conflict.local_writes, conflict.remote_writes);
        // The candidate is sent what the active policy was sent, writes included.
        let theirs = resolve_with_writes(
            candidate,
            &active.config,
            region,
            (local, local_writes),
            (remote, remote_writes),
        )
        .map_err(ResolveFailure::from);
        let ours = outcome(served, local, remote);
        let other = outcome(&theirs, local, remote);
        // Rejections and failures compare by kind, not by their messages.
        let agreed = ours.decision == other.decision && ours.party == other.party;
        self.stats.shadow_compared.fetch_add(1, Ordering::Relaxed);
        if !agreed {
            self.stats.shadow_disagreed.fetch_add(1, Ordering::Relaxed);
        }
        let relation = crate::resolve::relation(local, remote);
        let comparison = ShadowComparison {
            tenant: local.tenant.clone(),
            party_id: local.party_id.clone(),
            region: region.to_owned(),
            at_ms: now_ms(),
            active: active.policy.digest().to_owned(),
            candidate: candidate.digest().to_owned(),
            relation,
            agreed,
            active_outcome: (!agreed).then_some(ours),
            candidate_outcome: (!agreed).then_some(other),
            conflict: (!agreed).then(|| CapturedConflict {
                id: None,
                tenant: local.tenant.clone(),
                note: Some(format!(
                    "shadow disagreement: active {}, candidate {}",
                    short(active.policy.digest()),
                    short(candidate.digest())
                )),
                local: local.clone(),
                remote: remote.clone(),
                context: Some(CapturedContext {
                    resolving_region: Some(region.to_owned()),
                    config: serde_json::from_str(&active.config).ok(),
                }),
                local_writes: local_writes.clone(),
                remote_writes: remote_writes.clone(),
            }),
        };
        tracing::debug!(
            tenant = %local.tenant,
            party = %local.party_id,
            policy = %active.policy.digest(),
            candidate = %candidate.digest(),
            agreed,
            "host.shadow.compared"
        );
        if let Err(e) = self.registry.record_shadow(&comparison) {
            tracing::warn!(tenant = %local.tenant, error = %e, "host.shadow.record_failed");
        }
    }
}

impl PolicyLookup for RegistryFollower {
    fn policy(&self, tenant: &str) -> Result<Arc<ActivePolicy>, ResolveFailure> {
        self.ensure(tenant)
            .map_err(|e| ResolveFailure::Registry(e.to_string()))?;
        Ok(self.policies.get(tenant)?)
    }

    fn resolved(
        &self,
        conflict: &Conflict<'_>,
        active: &ActivePolicy,
        served: &Result<Resolved, ResolveFailure>,
    ) {
        if let Some(candidate) = &active.shadow {
            self.compare_shadow(active, candidate, conflict, served);
        }
    }

    fn take_stats(&self) -> Vec<(&'static str, u64)> {
        self.stats.take().to_vec()
    }
}

/// What a resolution amounts to, for comparing two policies: the decision and the party it
/// would write (rejections and failures compare by kind, not by message).
fn outcome(
    result: &Result<Resolved, ResolveFailure>,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> ShadowOutcome {
    match result {
        Ok(r) => ShadowOutcome {
            decision: r.decision.kind().to_owned(),
            party: r.written(local, remote).cloned(),
            reason: match &r.decision {
                Decision::Rejected(why) => Some(why.clone()),
                _ => None,
            },
        },
        Err(e) => ShadowOutcome {
            decision: "failed".to_owned(),
            party: None,
            reason: Some(e.to_string()),
        },
    }
}
