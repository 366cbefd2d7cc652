//! The policies a function serves: the engine, the local artifact cache, and the tenants'
//! active policies (the embedded default until the registry says otherwise).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use host_core::{
    ActivePolicy, ArtifactCache, Limits, Metering, Policy, PolicyEngine, TenantPolicies,
};

/// A serving engine and the tenants' policies, with the default policy for every tenant that
/// has none of its own.
pub fn default_policies(
    cache_dir: &str,
) -> anyhow::Result<(Arc<PolicyEngine>, Arc<TenantPolicies>, ArtifactCache)> {
    let started = Instant::now();
    let engine = Arc::new(
        PolicyEngine::new(Limits::default(), Metering::Epoch)
            .context("building the policy engine")?,
    );
    let engine_ms = started.elapsed().as_secs_f64() * 1e3;
    let cache = ArtifactCache::new(cache_dir);
    let policy = Policy::load(
        &engine,
        default_policy_artifact::DEFAULT_POLICY,
        Some(&cache),
    )
    .context("loading the embedded default policy")?;
    // Part of the cold start (BENCHMARKS.md, "Lambda cold start"): compiling instead of
    // deserializing is most of it.
    tracing::info!(
        engine_ms,
        load_ms = started.elapsed().as_secs_f64() * 1e3 - engine_ms,
        from_cache = policy.info().from_cache,
        policy = %policy.digest(),
        "host.init.policies"
    );
    let policies = Arc::new(TenantPolicies::new());
    policies.set_default(ActivePolicy::new(Arc::new(policy)));
    Ok((engine, policies, cache))
}
