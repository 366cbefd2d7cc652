//! Runs every operation the benchmarks measure once, so that `cargo test` keeps them working,
//! and checks that the peers being compared compute the same thing (no timing is asserted).

use std::time::Duration;

use host_core::{ArtifactCache, Call, Decision, Policy, resolve_with};
use policy_benches::events::{Applied, EventStore, apply_all, event_stream};
use policy_benches::fixtures::{REGION, Size, TENANT, concurrent, dominated, empty, tmf_bytes};
use policy_benches::hot_swap::{SwapConfig, run};
use policy_benches::script::ScriptPolicy;
use policy_benches::strip::{resolve_whole, strip};
use policy_benches::{KEEP_LOCAL_POLICY, PANIC_POLICY, load, native_resolve, serving_engine};
use policy_types::{Resolution, VectorOrder, compare_vectors};

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;

#[test]
fn the_parties_have_the_sizes_of_the_issue() {
    let sizes: Vec<usize> = Size::ALL
        .iter()
        .map(|s| tmf_bytes(&concurrent(*s).local))
        .collect();
    assert!(sizes[0] < 300, "small: {} bytes", sizes[0]);
    assert!(
        (3_000..8_000).contains(&sizes[1]),
        "typical: {} bytes",
        sizes[1]
    );
    assert!(
        (80_000..150_000).contains(&sizes[2]),
        "large: {} bytes",
        sizes[2]
    );
    for size in Size::ALL {
        assert_eq!(
            concurrent(size).relation(),
            policy_types::Relation::Concurrent
        );
        assert_eq!(
            dominated(size).relation(),
            policy_types::Relation::RemoteDominates
        );
    }
}

/// Every peer of the per-conflict benchmark (native, WASM packed and typed, fresh, stripped call,
/// script)
/// gives the same answer on every size.
#[test]
fn every_peer_resolves_the_conflicts_alike() {
    let engine = serving_engine();
    let policy = load(&engine, DEFAULT);
    let trivial = load(&engine, KEEP_LOCAL_POLICY);
    let script = ScriptPolicy::new();
    for size in Size::ALL {
        let pair = concurrent(size);
        let ctx = pair.context();
        let (l, r) = (&pair.local, &pair.remote);
        let native = tmf632_merge::resolve(&ctx, l, r);
        assert!(matches!(native, Resolution::Merged(_)), "{size:?}");
        assert!(policy.info().packed);
        assert_eq!(policy.call((&ctx, l, r)).unwrap(), native, "{size:?} wasm");
        assert_eq!(
            policy.call(Call::new(&ctx, l, r).typed()).unwrap(),
            native,
            "{size:?} typed"
        );
        let stripped = host_core::sandbox::strip::strip(l, r).unwrap();
        let (sl, sr) = stripped.versions();
        assert_eq!(
            policy
                .call(Call::stripped((&ctx).into(), &stripped))
                .unwrap(),
            policy.call(Call::new(&ctx, &sl, &sr).typed()).unwrap(),
            "{size:?} stripped, packed and typed"
        );
        assert_eq!(
            policy.call(Call::new(&ctx, l, r).fresh()).unwrap(),
            native,
            "{size:?} fresh"
        );
        assert_eq!(script.call(&ctx, l, r).unwrap(), native, "{size:?} script");
        assert_eq!(trivial.call((&ctx, l, r)).unwrap(), Resolution::KeepLocal);
        let d = dominated(size);
        assert_eq!(
            script.call(&d.context(), &d.local, &d.remote).unwrap(),
            Resolution::TakeRemote
        );

        let (decision, party) = native_resolve(REGION, l, r).unwrap();
        assert_eq!(decision, Decision::Merged);
        assert_eq!(
            policy_benches::native_resolve_stripped(REGION, l, r).unwrap(),
            (Decision::Merged, party.clone()),
            "{size:?} native through the 1.1 path"
        );
        let hosted = resolve_with(&policy, "{}", REGION, l, r).unwrap();
        assert_eq!(hosted.party.map(|p| *p), party, "{size:?} resolve_with");
        let whole = resolve_whole(&policy, REGION, l, r).unwrap();
        assert_eq!(whole, party, "{size:?} whole versions (contract 1.0 path)");
        let s = strip(l, r).unwrap();
        assert!(
            s.local.len() < l.fields.len() || size == Size::Small,
            "{size:?}: identical fields are left out"
        );
    }
}

#[test]
fn the_trapping_policy_traps_on_every_call_and_the_host_keeps_calling() {
    let engine = serving_engine();
    let panics = load(&engine, PANIC_POLICY);
    let pair = concurrent(Size::Typical);
    let ctx = pair.context();
    for _ in 0..3 {
        let failure = panics.call((&ctx, &pair.local, &pair.remote)).unwrap_err();
        assert!(
            matches!(failure, host_core::CallFailure::Trap { .. }),
            "{failure:?}"
        );
    }
}

#[test]
fn the_floor_pair_reaches_the_policy() {
    let engine = serving_engine();
    let trivial = load(&engine, KEEP_LOCAL_POLICY);
    let pair = empty();
    assert_eq!(pair.relation(), policy_types::Relation::Concurrent);
    let ctx = pair.context();
    assert_eq!(
        trivial.call((&ctx, &pair.local, &pair.remote)).unwrap(),
        Resolution::KeepLocal
    );
    assert!(matches!(
        tmf632_merge::resolve(&ctx, &pair.local, &pair.remote),
        Resolution::Merged(_)
    ));
}

#[test]
fn dominated_versions_are_decided_by_the_host() {
    let engine = serving_engine();
    let policy = load(&engine, DEFAULT);
    let pair = dominated(Size::Typical);
    assert_eq!(
        compare_vectors(&pair.local.version_vector, &pair.remote.version_vector),
        VectorOrder::DominatedBy
    );
    let resolved = resolve_with(&policy, "{}", REGION, &pair.local, &pair.remote).unwrap();
    assert_eq!(resolved.decision, Decision::TakeRemote);
    assert_eq!(resolved.policy_digest, None, "no policy call");
    assert_eq!(resolved.party, None, "no copy");
    let written = resolved.written(&pair.local, &pair.remote);
    assert_eq!(written, Some(&pair.remote));
    assert_eq!(
        host_core::decide_by_host(&pair.local, &pair.remote),
        Some(resolved)
    );
    let concurrent = concurrent(Size::Typical);
    assert!(host_core::decide_by_host(&concurrent.local, &concurrent.remote).is_none());
}

#[test]
fn a_precompiled_load_comes_from_the_cache() {
    let engine = serving_engine();
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path());
    let compiled = Policy::load(&engine, DEFAULT, None).unwrap();
    assert!(!compiled.info().from_cache);
    let first = Policy::load(&engine, DEFAULT, Some(&cache)).unwrap();
    assert!(!first.info().from_cache);
    let cached = Policy::load(&engine, DEFAULT, Some(&cache)).unwrap();
    assert!(cached.info().from_cache);
    assert_eq!(cached.digest(), compiled.digest());
}

#[test]
fn hot_swap_fails_no_call() {
    let engine = serving_engine();
    let report = run(
        &engine,
        SwapConfig {
            phase: Duration::from_millis(300),
            swap_every: Duration::from_millis(20),
        },
    );
    for (name, phase) in [
        ("steady", &report.steady),
        ("swapping", &report.swapping),
        ("warmed", &report.swapping_warmed),
    ] {
        assert!(phase.calls > 0, "{name}: the caller made calls");
        assert_eq!(phase.failed, 0, "{name}: no call failed");
    }
    assert_eq!(report.steady.swaps, 0);
    assert!(report.swapping.swaps > 0 && report.swapping_warmed.swaps > 0);
    assert!(
        !report.swapping.first_use.is_empty(),
        "the caller picked up new versions"
    );
}

#[test]
fn events_apply_once_each() {
    let stream = event_stream(20, 200);
    let (mut store, duplicates) = apply_all(TENANT, &stream);
    assert_eq!(store.len(), 20);
    assert_eq!(
        duplicates, 18,
        "every tenth event after the creates is a redelivery"
    );
    for e in &stream {
        assert_eq!(store.apply(TENANT, e).unwrap(), Applied::Duplicate);
    }
    let party = store.party(TENANT, "p-3").unwrap();
    assert!(party.field("contactMedium").is_some());
    assert_eq!(party.version_vector.len(), 1);
    assert!(EventStore::new("eu").is_empty());
}

/// The interleaved measurement runs both operations block for block, the same number of times,
/// and reports the pairs it took (its figures are times, so only their sanity is checked).
#[test]
fn interleaved_blocks_run_both_operations_and_report_their_pairs() {
    let (a, b) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let m = policy_benches::interleaved(
        || {
            a.set(a.get() + 1);
            std::hint::black_box(concurrent(Size::Small));
        },
        || {
            b.set(b.get() + 1);
            std::hint::black_box(concurrent(Size::Small));
        },
        7,
    );
    assert_eq!(m.pairs, 7);
    assert!(m.a_ns > 0.0 && m.b_ns > 0.0 && m.ratio.is_finite() && m.ratio > 0.0);
    // Warm-up and calibration run each for at least 100 ms and 20 calls; then 7 blocks each,
    // of the same size for both.
    let (a, b) = (a.get(), b.get());
    assert!(a >= 20 + 7 && b >= 20 + 7, "{a} and {b} calls");
}
