//! Per-conflict cost of the `na-status` policy in Python and JavaScript against the Rust one,
//! in the same run, on the small, typical and large parties: each through the host's whole
//! path (`resolve_with`: leave out what both versions hold, as the declared revision agrees,
//! call, put back, validate, materialise). All three are `na-status` 1.2.0 on contract revision
//! 1.3 and are sent the writes behind both versions, as the hosts send them: Rust through the
//! packed call (format 3), Python and JavaScript through the typed `writes-resolver`.
//!
//! The foreign components are built by `scripts/build-foreign-policies.sh` into
//! `target/foreign-policies/` (the test command runs it); without them the bench says so and
//! measures Rust alone.
//!
//! ```sh
//! scripts/build-foreign-policies.sh
//! cargo bench -p policy-benches --bench foreign
//! ```

use std::hint::black_box;
use std::path::PathBuf;

use criterion::Criterion;
use host_core::resolve_with_writes;
use policy_benches::fixtures::{REGION, Size, concurrent};
use policy_benches::report::Bound::AtMost;
use policy_benches::report::{Report, criterion};
use policy_benches::{load, serving_engine};

/// The three ports, by name, with their bytes (`None`: not built here).
fn ports() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/foreign-policies");
    let read = |file: &str| std::fs::read(built.join(file)).ok();
    vec![
        (
            "rust",
            Some(default_policy_artifact::NA_STATUS_POLICY.to_vec()),
        ),
        ("python", read("python-na-status-stub-wasi.wasm")),
        ("js", read("js-na-status.wasm")),
    ]
}

fn foreign(c: &mut Criterion, ports: &[(&'static str, host_core::Policy)]) {
    let mut g = c.benchmark_group("foreign");
    for size in Size::ALL {
        let pair = concurrent(size);
        let (l, r) = (&pair.local, &pair.remote);
        let [lw, rw] = &pair.writes;
        for (name, policy) in ports {
            g.bench_function(format!("{}-{name}", size.name()), |b| {
                b.iter(|| {
                    resolve_with_writes(
                        policy,
                        "{}",
                        REGION,
                        black_box((l, lw)),
                        black_box((r, rw)),
                    )
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

fn main() {
    let mut rep = Report::new("Foreign policies: na-status per conflict, through the host");
    let engine = serving_engine();
    let mut loaded = Vec::new();
    for (name, bytes) in ports() {
        match bytes {
            Some(bytes) => {
                let policy = load(&engine, &bytes);
                rep.line(
                    &format!("{name}: declares"),
                    &policy.info().description.contract_version.clone(),
                );
                loaded.push((name, policy));
            }
            None => rep.line(
                &format!("{name}: not built"),
                "run scripts/build-foreign-policies.sh",
            ),
        }
    }
    let mut c = criterion();
    foreign(&mut c, &loaded);
    c.final_summary();
    for size in Size::ALL {
        let n = size.name();
        for (name, _) in &loaded {
            rep.figure(&format!("{n}: {name}"), "foreign", &format!("{n}-{name}"));
        }
        for (name, goal) in [("python", 5.0), ("js", 10.0)] {
            if loaded.iter().any(|(p, _)| *p == name) {
                rep.ratio(
                    &format!("{n}: {name} / rust"),
                    ("foreign", &format!("{n}-{name}")),
                    ("foreign", &format!("{n}-rust")),
                    (n == "typical").then_some(AtMost(goal)),
                );
            }
        }
    }
    rep.finish();
}
