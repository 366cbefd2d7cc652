//! Loading a policy: compiling the component from its bytes against deserializing the
//! artifact a previous load left in the cache. Both go through `Policy::load`, so both include
//! the load-time checks and the `describe` call.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use host_core::{ArtifactCache, Policy};
use policy_benches::report::Bound::AtLeast;
use policy_benches::report::Report;
use policy_benches::serving_engine;

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;

fn loading(c: &mut Criterion) {
    let engine = serving_engine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::new(dir.path());
    Policy::load(&engine, DEFAULT, Some(&cache)).expect("the first load compiles and stores");

    let mut g = c.benchmark_group("load");
    g.bench_function("precompiled", |b| {
        b.iter(|| {
            let p = Policy::load(&engine, black_box(DEFAULT), Some(&cache)).unwrap();
            assert!(p.info().from_cache);
            p
        })
    });
    // Cranelift takes ~0.1 s a compile: fewer samples, longer window.
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.bench_function("compile", |b| {
        b.iter(|| Policy::load(&engine, black_box(DEFAULT), None).unwrap())
    });
    g.finish();
}

fn main() {
    let mut rep = Report::run("Loading", loading);
    rep.figure(
        "compile from bytes (Policy::load, no cache)",
        "load",
        "compile",
    );
    rep.figure(
        "deserialize precompiled (Policy::load, cache hit)",
        "load",
        "precompiled",
    );
    rep.ratio(
        "compile / precompiled",
        ("load", "compile"),
        ("load", "precompiled"),
        Some(AtLeast(50.0)),
    );
    rep.line("component size", &format!("{} bytes", DEFAULT.len()));
    rep.finish();
}
