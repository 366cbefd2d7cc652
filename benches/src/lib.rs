//! Benchmarks of the policy host (issue 7): what a conflict costs in a WASM policy against the
//! same merge natively and as a Rhai script, what the host's causality shortcut costs,
//! instantiation, loading, hot swap, and event application.
//!
//! The setup lives here so that the criterion benches (`benches/`) and the smoke test
//! (`tests/smoke.rs`, which runs every measured operation once) share it.

pub mod events;
pub mod fixtures;
pub mod hot_swap;
pub mod postcard_form;
pub mod report;
pub mod script;
pub mod strip;

use host_core::{
    CallFailure, Decision, Limits, Metering, Policy, PolicyEngine, apply_resolution, relation,
};
use policy_types::{Context, PartyVersion, Relation};

/// A policy that keeps the local version without reading either (`tests/guests/guest-keep-local`):
/// calling it costs the boundary and no merge.
pub const KEEP_LOCAL_POLICY: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/guest-keep-local.wasm"));

/// A policy that panics on every call (`tests/guests/guest-panic`): each call traps, so the
/// host discards its instance and the next call gets a fresh one.
pub const PANIC_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest-panic.wasm"));

/// The serving engine: epoch deadline and memory cap on, default limits.
pub fn serving_engine() -> PolicyEngine {
    PolicyEngine::new(Limits::default(), Metering::Epoch).expect("the serving engine")
}

/// Loads (compiles) a policy.
pub fn load(engine: &PolicyEngine, bytes: &[u8]) -> Policy {
    Policy::load(engine, bytes, None).expect("the policy loads")
}

/// The relation and the context a host gives the merge, with no configuration.
fn native_context(
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> (Relation, Context) {
    let relation = relation(local, remote);
    let ctx = Context {
        tenant: local.tenant.clone(),
        resolving_region: region.to_owned(),
        relation,
        config: "{}".to_owned(),
    };
    (relation, ctx)
}

/// The native peer of `resolve_with` on concurrent versions: the causal relation, the merge,
/// and the same validation and materialisation of the result.
pub fn native_resolve(
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> Result<(Decision, Option<PartyVersion>), CallFailure> {
    let (relation, ctx) = native_context(region, local, remote);
    let resolution = tmf632_merge::resolve(&ctx, local, remote);
    apply_resolution(region, relation, local, remote, &resolution)
}

/// The native merge through the host's contract 1.1 path: what differs is copied out of the
/// versions (a native merge needs values; the WASM path packs views instead), merged, put
/// back, and the answer validated and materialised with the identical fields kept as they are.
/// The baseline for what the 1.1 path itself saves, apart from WASM.
pub fn native_resolve_stripped(
    region: &str,
    local: &PartyVersion,
    remote: &PartyVersion,
) -> Result<(Decision, Option<PartyVersion>), CallFailure> {
    let Some(stripped) = host_core::sandbox::strip::strip(local, remote) else {
        return native_resolve(region, local, remote);
    };
    let (relation, ctx) = native_context(region, local, remote);
    let (l, r) = stripped.versions();
    let answer =
        host_core::sandbox::strip::restore(&stripped, tmf632_merge::resolve(&ctx, &l, &r))?;
    host_core::apply_resolution_with(
        region,
        relation,
        local,
        remote,
        &answer,
        stripped.identical_fields(),
    )
}

/// Two operations timed in alternating blocks (`a`, `b`, `a`, `b`, …) of about a millisecond
/// each: the ratio of each block of `a` to the block of `b` beside it, and its median over
/// all pairs. Criterion times one benchmark for seconds, then the next; on a shared machine
/// whose speed drifts by 10–40 % over minutes, two figures taken apart can differ by that much
/// even where their ratio does not. Blocks side by side see the same machine.
#[derive(Clone, Copy, Debug)]
pub struct Interleaved {
    /// The median time of one `a`, in ns.
    pub a_ns: f64,
    /// The median time of one `b`, in ns.
    pub b_ns: f64,
    /// The median of the pairs' ratios `a / b`.
    pub ratio: f64,
    pub pairs: usize,
}

/// Times `a` against `b` in `pairs` pairs of blocks ([`Interleaved`]), after a warm-up of both.
pub fn interleaved(mut a: impl FnMut(), mut b: impl FnMut(), pairs: usize) -> Interleaved {
    use std::time::{Duration, Instant};
    let per_call = |f: &mut dyn FnMut(), n: u32| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed() / n
    };
    let warm = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(100) {
            f();
        }
    };
    warm(&mut a);
    warm(&mut b);
    // Blocks of about a millisecond of the slower of the two, at least one call.
    let slowest = per_call(&mut a, 20).max(per_call(&mut b, 20));
    let block = (Duration::from_millis(1).as_nanos() / slowest.as_nanos().max(1)).max(1) as u32;
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        let x = per_call(&mut a, block).as_nanos() as f64;
        let y = per_call(&mut b, block).as_nanos() as f64;
        ta.push(x);
        tb.push(y);
        ratios.push(x / y.max(1.0));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Interleaved {
        a_ns: median(&mut ta),
        b_ns: median(&mut tb),
        ratio: median(&mut ratios),
        pairs,
    }
}
