//! The policies a function serves: the engine, the local artifact cache, and the tenants'
//! active policies (the embedded default until the registry says otherwise).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use host_core::{
    ActivePolicy, ArtifactCache, Limits, Metering, Policy, PolicyEngine, TenantPolicies,
};

/// A serving engine and the tenants' policies, with the default policy for every tenant that
/// has none of its own. Policies are loaded through the artifact cache in `cache_dir`, and
/// from the package's `packaged_dir` when the cache has none (a fresh execution environment).
pub fn default_policies(
    cache_dir: &str,
    packaged_dir: Option<&str>,
) -> anyhow::Result<(Arc<PolicyEngine>, Arc<TenantPolicies>, ArtifactCache)> {
    let started = Instant::now();
    let engine = Arc::new(
        PolicyEngine::new(Limits::default(), Metering::Epoch)
            .context("building the policy engine")?,
    );
    let engine_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut cache = ArtifactCache::new(cache_dir);
    if let Some(packaged) = packaged_dir {
        cache = cache.with_packaged(packaged);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh execution environment (an empty cache directory) whose package carries the
    /// default policy compiled for its architecture (`host-cli policy precompile`, run by
    /// `scripts/deploy.sh --build`) loads it without compiling.
    #[test]
    fn a_cold_start_loads_the_packaged_default_policy() {
        let (cache, packaged) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bytes = default_policy_artifact::DEFAULT_POLICY;
        let engine = PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap();
        let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        std::fs::write(
            packaged
                .path()
                .join(format!("{}.cwasm", host_core::digest(bytes))),
            engine.precompile_for(bytes, &target).unwrap(),
        )
        .unwrap();
        let cache_dir = cache.path().to_str().unwrap();
        let from_cache = |packaged: Option<&str>| {
            let (_, policies, _) = default_policies(cache_dir, packaged).unwrap();
            policies.get("acme").unwrap().policy.info().from_cache
        };
        assert!(from_cache(packaged.path().to_str()));
        // Without the package's artifact the same start compiles.
        assert!(!from_cache(None));
    }
}
