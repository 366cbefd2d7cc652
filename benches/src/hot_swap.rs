//! Hot swap under load: a caller thread resolves the typical conflict continuously through
//! the tenant's active policy (`TenantPolicies::get` + `resolve_with`, as `Resolver::resolve`
//! does) while another thread publishes new versions of the policy. Reports call latency
//! percentiles in steady state and while swapping, failed calls, and the time from
//! `activate` to the end of the first call that used the new version.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use host_core::{ActivePolicy, ArtifactCache, Policy, PolicyEngine, TenantPolicies, resolve_with};

use crate::fixtures::{Pair, REGION, Size, TENANT, concurrent};

/// How long each phase runs and how often versions are published.
#[derive(Clone, Copy, Debug)]
pub struct SwapConfig {
    pub phase: Duration,
    pub swap_every: Duration,
}

/// Latencies of one phase.
#[derive(Clone, Debug, Default)]
pub struct PhaseStats {
    pub calls: usize,
    pub failed: usize,
    pub swaps: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    /// From `activate` to the end of the first call that used the new version.
    pub first_use: Vec<Duration>,
    /// The latency of the first call on each new version.
    pub first_call: Vec<Duration>,
}

/// The three phases: no swaps; swaps of freshly loaded versions; swaps of versions that were
/// called once (warmed) on the publishing thread before `activate`.
#[derive(Clone, Debug, Default)]
pub struct SwapReport {
    pub steady: PhaseStats,
    pub swapping: PhaseStats,
    pub swapping_warmed: PhaseStats,
}

struct Call {
    end: Instant,
    latency: Duration,
    version: usize,
    ok: bool,
}

/// Percentile `p` (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn caller(policies: &TenantPolicies, pair: &Pair, stop: &AtomicBool) -> Vec<Call> {
    let mut calls = Vec::with_capacity(1 << 18);
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let active = policies.get(TENANT).expect("the tenant has a policy");
        let version = Arc::as_ptr(&active.policy) as usize;
        let ok = resolve_with(
            &active.policy,
            &active.config,
            REGION,
            &pair.local,
            &pair.remote,
        )
        .is_ok_and(|r| r.party.is_some());
        drop(active);
        let end = Instant::now();
        calls.push(Call {
            end,
            latency: end - start,
            version,
            ok,
        });
    }
    calls
}

/// Runs one phase. `publish` is `None` for steady state; otherwise `Some(warm)`: publish a
/// newly loaded version every `swap_every`, after one warm-up call when `warm`.
fn phase(
    engine: &PolicyEngine,
    cache: &ArtifactCache,
    policies: &Arc<TenantPolicies>,
    pair: &Pair,
    config: SwapConfig,
    publish: Option<bool>,
) -> PhaseStats {
    let stop = AtomicBool::new(false);
    let versions: [&[u8]; 2] = [
        default_policy_artifact::DEFAULT_POLICY,
        default_policy_artifact::NA_STATUS_POLICY,
    ];
    let (calls, swaps) = thread::scope(|s| {
        let calls = s.spawn(|| caller(policies, pair, &stop));
        let mut swaps: Vec<(Instant, usize)> = Vec::new();
        // Weak references keep each version's allocation, so a dropped version's address is
        // never reused by a later one while the phase runs (versions are told apart by it).
        let mut keep: Vec<Weak<Policy>> = Vec::new();
        let deadline = Instant::now() + config.phase;
        let mut k = 0;
        while Instant::now() < deadline {
            if let Some(warm) = publish {
                k += 1;
                let policy = Arc::new(
                    Policy::load(engine, versions[k % 2], Some(cache)).expect("the policy loads"),
                );
                if warm {
                    policy
                        .call((&pair.context(), &pair.local, &pair.remote))
                        .expect("the warm-up call");
                }
                keep.push(Arc::downgrade(&policy));
                let version = Arc::as_ptr(&policy) as usize;
                let at = Instant::now();
                policies.activate(TENANT, ActivePolicy::new(policy));
                swaps.push((at, version));
            }
            thread::sleep(config.swap_every);
        }
        stop.store(true, Ordering::Relaxed);
        (calls.join().expect("the caller thread"), swaps)
    });
    let mut latencies: Vec<Duration> = calls.iter().map(|c| c.latency).collect();
    latencies.sort();
    let mut stats = PhaseStats {
        calls: calls.len(),
        failed: calls.iter().filter(|c| !c.ok).count(),
        swaps: swaps.len(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        p999: percentile(&latencies, 0.999),
        max: latencies.last().copied().unwrap_or_default(),
        first_use: Vec::new(),
        first_call: Vec::new(),
    };
    for (at, version) in swaps {
        if let Some(c) = calls.iter().find(|c| c.version == version && c.end > at) {
            stats.first_use.push(c.end - at);
            stats.first_call.push(c.latency);
        }
    }
    stats.first_use.sort();
    stats.first_call.sort();
    stats
}

/// Runs the three phases on a fresh registry for one tenant.
pub fn run(engine: &PolicyEngine, config: SwapConfig) -> SwapReport {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::new(dir.path());
    for bytes in [
        default_policy_artifact::DEFAULT_POLICY,
        default_policy_artifact::NA_STATUS_POLICY,
    ] {
        Policy::load(engine, bytes, Some(&cache)).expect("the policy compiles");
    }
    let pair = concurrent(Size::Typical);
    let policies = Arc::new(TenantPolicies::new());
    let first = Policy::load(
        engine,
        default_policy_artifact::DEFAULT_POLICY,
        Some(&cache),
    )
    .expect("the policy loads");
    policies.activate(TENANT, ActivePolicy::new(Arc::new(first)));
    SwapReport {
        steady: phase(engine, &cache, &policies, &pair, config, None),
        swapping: phase(engine, &cache, &policies, &pair, config, Some(false)),
        swapping_warmed: phase(engine, &cache, &policies, &pair, config, Some(true)),
    }
}
