//! Per-conflict costs: the default policy as WASM against the same merge natively and as a
//! Rhai script; the host's decision on dominated versions; instantiation. Every WASM figure is
//! measured through the host's own `Policy::call`. Prints the ratios of this run at the end.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use host_core::{
    ActivePolicy, Call, CallFailure, Policy, Resolver, TenantPolicies, relation, resolve_with,
    resolve_with_writes,
};
use policy_benches::fixtures::{
    REGION, Size, TENANT, boundary_strings, concurrent, dominated, empty,
};
use policy_benches::report::Bound::{AtLeast, AtMost};
use policy_benches::report::Report;
use policy_benches::script::ScriptPolicy;
use policy_benches::strip::{resolve_whole, strip};
use policy_benches::{
    KEEP_LOCAL_POLICY, PANIC_POLICY, interleaved, load, native_resolve, native_resolve_stripped,
    serving_engine,
};
use policy_types::{Context, PartyVersion, Resolution, compare_vectors};
use std::collections::HashMap;
use std::sync::Arc;

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;

fn conflicts(c: &mut Criterion) {
    let engine = serving_engine();
    let policy = load(&engine, DEFAULT);
    let trivial = load(&engine, KEEP_LOCAL_POLICY);
    let panics = load(&engine, PANIC_POLICY);
    let script = ScriptPolicy::new();

    let mut g = c.benchmark_group("floor");
    let pair = empty();
    let ctx = pair.context();
    g.bench_function("empty-trivial-call", |b| {
        b.iter(|| {
            trivial
                .call((
                    black_box(&ctx),
                    black_box(&pair.local),
                    black_box(&pair.remote),
                ))
                .unwrap()
        })
    });
    g.bench_function("empty-native-merge", |b| {
        b.iter(|| {
            tmf632_merge::resolve(
                black_box(&ctx),
                black_box(&pair.local),
                black_box(&pair.remote),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("conflict");
    for size in Size::ALL {
        let pair = concurrent(size);
        let ctx = pair.context();
        let (l, r) = (&pair.local, &pair.remote);
        let n = size.name();
        g.bench_function(format!("{n}-native-merge"), |b| {
            b.iter(|| tmf632_merge::resolve(black_box(&ctx), black_box(l), black_box(r)))
        });
        g.bench_function(format!("{n}-native-full"), |b| {
            b.iter(|| native_resolve(REGION, black_box(l), black_box(r)).unwrap())
        });
        g.bench_function(format!("{n}-native-stripped-full"), |b| {
            b.iter(|| native_resolve_stripped(REGION, black_box(l), black_box(r)).unwrap())
        });
        g.bench_function(format!("{n}-wasm-call"), |b| {
            b.iter(|| packed_call(&policy, &ctx, l, r).unwrap())
        });
        g.bench_function(format!("{n}-wasm-typed-call"), |b| {
            b.iter(|| {
                policy
                    .call(Call::new(black_box(&ctx), black_box(l), black_box(r)).typed())
                    .unwrap()
            })
        });
        g.bench_function(format!("{n}-wasm-full"), |b| {
            b.iter(|| resolve_with(&policy, "{}", REGION, black_box(l), black_box(r)).unwrap())
        });
        g.bench_function(format!("{n}-trivial-call"), |b| {
            b.iter(|| packed_call(&trivial, &ctx, l, r).unwrap())
        });
        g.bench_function(format!("{n}-whole-versions-full"), |b| {
            b.iter(|| resolve_whole(&policy, REGION, black_box(l), black_box(r)).unwrap())
        });
        g.bench_function(format!("{n}-script-call"), |b| {
            b.iter(|| {
                script
                    .call(black_box(&ctx), black_box(l), black_box(r))
                    .unwrap()
            })
        });
    }
    g.finish();

    // Where `resolve_with`'s time goes on each size: leaving out what both versions hold,
    // the call on what is left, putting it back, and validating and materialising the answer.
    let mut g = c.benchmark_group("parts");
    for size in Size::ALL {
        let pair = concurrent(size);
        let ctx = pair.context();
        let (l, r) = (&pair.local, &pair.remote);
        let n = size.name();
        let stripped = host_core::sandbox::strip::strip(l, r).expect("no tombstones");
        let answer = policy
            .call(Call::stripped((&ctx).into(), &stripped))
            .unwrap();
        let restored = host_core::sandbox::strip::restore(&stripped, answer.clone()).unwrap();
        g.bench_function(format!("{n}-strip"), |b| {
            b.iter(|| host_core::sandbox::strip::strip(black_box(l), black_box(r)))
        });
        g.bench_function(format!("{n}-stripped-call"), |b| {
            b.iter(|| {
                policy
                    .call(Call::stripped(black_box(&ctx).into(), black_box(&stripped)))
                    .unwrap()
            })
        });
        g.bench_function(format!("{n}-restore"), |b| {
            b.iter(|| {
                host_core::sandbox::strip::restore(&stripped, black_box(&answer).clone()).unwrap()
            })
        });
        g.bench_function(format!("{n}-answer-clone"), |b| {
            b.iter(|| black_box(&answer).clone())
        });
        let native_answer = tmf632_merge::resolve(&ctx, l, r);
        g.bench_function(format!("{n}-apply-native-answer"), |b| {
            b.iter(|| {
                host_core::apply_resolution(
                    REGION,
                    policy_types::Relation::Concurrent,
                    black_box(l),
                    black_box(r),
                    black_box(&native_answer),
                )
                .unwrap()
            })
        });
        g.bench_function(format!("{n}-apply"), |b| {
            b.iter(|| {
                host_core::apply_resolution_with(
                    REGION,
                    policy_types::Relation::Concurrent,
                    black_box(l),
                    black_box(r),
                    black_box(&restored),
                    stripped.identical_fields(),
                )
                .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("dominated");
    for size in [Size::Small, Size::Typical] {
        let pair = dominated(size);
        let (l, r) = (&pair.local, &pair.remote);
        let n = size.name();
        if size == Size::Typical {
            g.bench_function("compare-vectors", |b| {
                b.iter(|| {
                    compare_vectors(black_box(&l.version_vector), black_box(&r.version_vector))
                })
            });
            g.bench_function("host-relation", |b| {
                b.iter(|| relation(black_box(l), black_box(r)))
            });
        }
        g.bench_function(format!("{n}-decide-by-host"), |b| {
            b.iter(|| host_core::decide_by_host(black_box(l), black_box(r)))
        });
        g.bench_function(format!("{n}-resolve-with"), |b| {
            b.iter(|| resolve_with(&policy, "{}", REGION, black_box(l), black_box(r)).unwrap())
        });
        g.bench_function(format!("{n}-native-compare-clone"), |b| {
            b.iter(|| {
                let order =
                    compare_vectors(black_box(&l.version_vector), black_box(&r.version_vector));
                (order, black_box(r).clone())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("instantiation");
    for size in [Size::Small, Size::Typical] {
        let pair = concurrent(size);
        let ctx = pair.context();
        let (l, r) = (&pair.local, &pair.remote);
        let n = size.name();
        g.bench_function(format!("{n}-call-fresh"), |b| {
            b.iter(|| {
                policy
                    .call(Call::new(black_box(&ctx), black_box(l), black_box(r)).fresh())
                    .unwrap()
            })
        });
        g.bench_function(format!("{n}-call-warm"), |b| {
            b.iter(|| packed_call(&policy, &ctx, l, r).unwrap())
        });
        // What a trap costs the host: the trapped instance is discarded, so every call here
        // also instantiates afresh (the host's strategy after a trap).
        g.bench_function(format!("{n}-trap"), |b| {
            b.iter(|| packed_call(&panics, &ctx, l, r).unwrap_err())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(1));
    let policies = Arc::new(TenantPolicies::new());
    policies.activate(TENANT, ActivePolicy::new(Arc::new(load(&engine, DEFAULT))));
    let resolver = Resolver::new(policies, REGION);
    let pair = concurrent(Size::Typical);
    g.bench_function("typical-resolver", |b| {
        b.iter(|| {
            resolver
                .resolve(black_box(&pair.local), black_box(&pair.remote))
                .unwrap()
        })
    });
    g.finish();
}

/// The ratios held to a target, measured again in interleaved blocks
/// ([`policy_benches::interleaved`]) so that a drift of the shared machine's speed cannot fall
/// between the two figures of a ratio: `resolve_with` against its native peer for each size
/// (`"{size}-resolve"`), and `decide_by_host` on dominated versions against `compare_vectors`
/// (`"dominated-{size}"`). Beside them, held to no target, what the writes add to a contract
/// 1.3 policy's conflict (`"{size}-writes"`). Only under `cargo bench` (criterion's test mode
/// runs every benchmark once and measures nothing).
fn interleaved_ratios() -> HashMap<String, policy_benches::Interleaved> {
    let mut out = HashMap::new();
    if !std::env::args().any(|a| a == "--bench") {
        return out;
    }
    let engine = serving_engine();
    let policy = load(&engine, DEFAULT);
    for size in Size::ALL {
        let pair = concurrent(size);
        let (l, r) = (&pair.local, &pair.remote);
        let m = interleaved(
            || {
                black_box(resolve_with(&policy, "{}", REGION, black_box(l), black_box(r)).unwrap());
            },
            || {
                black_box(native_resolve(REGION, black_box(l), black_box(r)).unwrap());
            },
            500,
        );
        out.insert(format!("{}-resolve", size.name()), m);
    }
    // What knowing which write set each field costs a contract 1.3 policy (`na-status`, which
    // reads them): the same conflict resolved with the writes behind both versions, and
    // without (each field of unknown write).
    let na_status = load(&engine, default_policy_artifact::NA_STATUS_POLICY);
    for size in Size::ALL {
        let pair = concurrent(size);
        let (l, r) = (&pair.local, &pair.remote);
        let [lw, rw] = &pair.writes;
        let m = interleaved(
            || {
                black_box(resolve_with_writes(&na_status, "{}", REGION, (l, lw), (r, rw)).unwrap());
            },
            || {
                black_box(resolve_with(&na_status, "{}", REGION, l, r).unwrap());
            },
            500,
        );
        out.insert(format!("{}-writes", size.name()), m);
    }
    // The vectors `dominated/compare-vectors` compares: the typical pair's.
    let typical = dominated(Size::Typical);
    for size in [Size::Small, Size::Typical] {
        let pair = dominated(size);
        let (l, r) = (&pair.local, &pair.remote);
        let m = interleaved(
            || {
                black_box(host_core::decide_by_host(black_box(l), black_box(r)));
            },
            || {
                black_box(compare_vectors(
                    black_box(&typical.local.version_vector),
                    black_box(&typical.remote.version_vector),
                ));
            },
            500,
        );
        out.insert(format!("dominated-{}", size.name()), m);
    }
    out
}

fn report(mut rep: Report, interleaved: &HashMap<String, policy_benches::Interleaved>) {
    let id = |s: Size, what: &str| format!("{}-{what}", s.name());
    rep.figure(
        "floor: trivial guest, versions without fields",
        "floor",
        "empty-trivial-call",
    );
    rep.figure(
        "floor: native merge, versions without fields",
        "floor",
        "empty-native-merge",
    );
    for size in Size::ALL {
        let pair = concurrent(size);
        let count = boundary_strings(&pair.local) + boundary_strings(&pair.remote);
        let per_string = rep
            .median("conflict", &id(size, "trivial-call"))
            .zip(rep.median("floor", "empty-trivial-call"))
            .map_or("–".to_owned(), |(t, f)| {
                format!(
                    "; (trivial call − floor) / strings = {:.0} ns",
                    (t - f) / count.strings as f64
                )
            });
        if let Some(st) = strip(&pair.local, &pair.remote) {
            let (sl, sr) = st.versions();
            let sc = boundary_strings(&sl) + boundary_strings(&sr);
            rep.line(
                &format!("{}: lowered per stripped call (both versions)", size.name()),
                &format!(
                    "{} strings ({} region names, {} JSON values), {} KB",
                    sc.strings,
                    sc.regions,
                    sc.values,
                    sc.bytes / 1024
                ),
            );
        }
        let ctx = pair.context();
        let mut packed = Vec::new();
        policy_packed::pack_call(&mut packed, &ctx, &pair.local, &pair.remote);
        let whole = packed.len();
        if let Some(st) = strip(&pair.local, &pair.remote) {
            st.pack(&mut packed, policy_packed::Format::LATEST, (&ctx).into());
        }
        rep.line(
            &format!("{}: packed call (whole / only what differs)", size.name()),
            &format!("{whole} / {} bytes", packed.len()),
        );
        rep.line(
            &format!("{}: lowered per call (both versions)", size.name()),
            &format!(
                "{} strings ({} region names, {} JSON values), {} KB; TMF JSON {} bytes a version{per_string}",
                count.strings,
                count.regions,
                count.values,
                count.bytes / 1024,
                policy_benches::fixtures::tmf_bytes(&pair.local)
            ),
        );
    }
    for size in Size::ALL {
        let target = match size {
            Size::Small => Some(2.0),
            Size::Typical => Some(1.5),
            Size::Large => None,
        };
        let mut rows = SizeRows {
            rep: &mut rep,
            size,
        };
        rows.figure("native merge", "native-merge");
        rows.figure("WASM raw call", "wasm-call");
        rows.ratio(
            "WASM raw call / native merge",
            "wasm-call",
            "native-merge",
            target,
        );
        rows.figure("WASM typed call (resolver.resolve)", "wasm-typed-call");
        rows.ratio(
            "typed call / packed call (Policy::call)",
            "wasm-typed-call",
            "wasm-call",
            None,
        );
        for part in ["strip", "stripped-call", "restore", "answer-clone", "apply"] {
            let label = rows.label(&format!("resolve_with part: {part}"));
            rows.rep.figure(&label, "parts", &id(size, part));
        }
        rows.figure("WASM resolve_with", "wasm-full");
        rows.figure("native merge + materialize", "native-full");
        rows.ratio(
            "WASM resolve_with / native merge + materialize",
            "wasm-full",
            "native-full",
            target,
        );
        if let Some(m) = interleaved.get(&id(size, "resolve")) {
            let label = rows.label(&format!(
                "the same, interleaved (median of {} adjacent pairs of 1 ms blocks)",
                m.pairs
            ));
            rows.rep.interleaved(&label, m, target);
        }
        if let Some(m) = interleaved.get(&id(size, "writes")) {
            let label = rows.label(&format!(
                "na-status (contract 1.3) resolve_with, the writes sent / none known \
                 (interleaved, {} pairs)",
                m.pairs
            ));
            rows.rep.interleaved(&label, m, None);
        }
        rows.figure(
            "native merge through the 1.1 path (strip, copy, merge, restore, materialise)",
            "native-stripped-full",
        );
        rows.ratio(
            "WASM resolve_with / native merge through the same 1.1 path",
            "wasm-full",
            "native-stripped-full",
            None,
        );
        rows.ratio(
            "boundary (trivial guest call) / WASM raw call",
            "trivial-call",
            "wasm-call",
            None,
        );
        let n = size.name();
        rows.rep.extra_ratio(
            &format!("{n}: (WASM call − trivial call) / native merge"),
            ("conflict", &id(size, "wasm-call")),
            ("conflict", &id(size, "trivial-call")),
            ("conflict", &id(size, "native-merge")),
            None,
        );
        rows.ratio(
            "contract 1.0 path (whole versions) / resolve_with (1.1: differences)",
            "whole-versions-full",
            "wasm-full",
            None,
        );
        rows.rep.ratio(
            &format!("{n}: script call / WASM raw call (WASM speed-up)"),
            ("conflict", &id(size, "script-call")),
            ("conflict", &id(size, "wasm-call")),
            (size == Size::Typical).then_some(AtLeast(1.0)),
        );
    }
    rep.ratio(
        "dominated: host relation() / compare_vectors",
        ("dominated", "host-relation"),
        ("dominated", "compare-vectors"),
        Some(AtMost(2.0)),
    );
    for size in [Size::Small, Size::Typical] {
        rep.ratio(
            &format!(
                "dominated {}: decide_by_host / compare_vectors",
                size.name()
            ),
            ("dominated", &id(size, "decide-by-host")),
            ("dominated", "compare-vectors"),
            Some(AtMost(2.0)),
        );
        if let Some(m) = interleaved.get(&format!("dominated-{}", size.name())) {
            rep.interleaved(
                &format!(
                    "dominated {}: the same, interleaved (median of {} adjacent pairs of 1 ms blocks)",
                    size.name(),
                    m.pairs
                ),
                m,
                Some(2.0),
            );
        }
        rep.ratio(
            &format!("dominated {}: resolve_with / compare_vectors", size.name()),
            ("dominated", &id(size, "resolve-with")),
            ("dominated", "compare-vectors"),
            None,
        );
        rep.ratio(
            &format!(
                "dominated {}: resolve_with / compare_vectors + clone",
                size.name()
            ),
            ("dominated", &id(size, "resolve-with")),
            ("dominated", &id(size, "native-compare-clone")),
            None,
        );
    }
    for size in [Size::Small, Size::Typical] {
        rep.extra_ratio(
            &format!(
                "instantiation ({}: call_fresh − call) / typical WASM call",
                size.name()
            ),
            ("instantiation", &id(size, "call-fresh")),
            ("instantiation", &id(size, "call-warm")),
            ("instantiation", &id(Size::Typical, "call-warm")),
            None,
        );
    }
    rep.extra_ratio(
        "instantiation (typical: call_fresh − call) / typical resolve_with",
        ("instantiation", &id(Size::Typical, "call-fresh")),
        ("instantiation", &id(Size::Typical, "call-warm")),
        ("conflict", &id(Size::Typical, "wasm-full")),
        Some(1.0),
    );
    rep.ratio(
        "a trapping call (fresh instance, panic, unwind; typical) / typical resolve_with",
        ("instantiation", &id(Size::Typical, "trap")),
        ("conflict", &id(Size::Typical, "wasm-full")),
        None,
    );
    if let Some(t) = rep.figure(
        "Resolver::resolve, typical conflict",
        "throughput",
        "typical-resolver",
    ) {
        rep.line(
            "conflicts resolved per second, one core (typical, WASM)",
            &format!("{:.0}", 1e9 / t),
        );
    }
    rep.finish();
}

/// A call of `policy` on a pair as `Policy::call` takes it (context, local, remote), its
/// inputs hidden from the optimiser.
fn packed_call(
    policy: &Policy,
    ctx: &Context,
    l: &PartyVersion,
    r: &PartyVersion,
) -> Result<Resolution, CallFailure> {
    policy.call((black_box(ctx), black_box(l), black_box(r)))
}

/// One size's rows of the `conflict` group: each label starts with the size's name, and each
/// benchmark id with the size (`typical-wasm-call`).
struct SizeRows<'a> {
    rep: &'a mut Report,
    size: Size,
}

impl SizeRows<'_> {
    fn label(&self, label: &str) -> String {
        format!("{}: {label}", self.size.name())
    }

    fn id(&self, what: &str) -> String {
        format!("{}-{what}", self.size.name())
    }

    fn figure(&mut self, label: &str, what: &str) {
        let (label, id) = (self.label(label), self.id(what));
        self.rep.figure(&label, "conflict", &id);
    }

    /// `a / b`, held to `at_most` if given.
    fn ratio(&mut self, label: &str, a: &str, b: &str, at_most: Option<f64>) {
        let (label, a, b) = (self.label(label), self.id(a), self.id(b));
        self.rep.ratio(
            &label,
            ("conflict", &a),
            ("conflict", &b),
            at_most.map(AtMost),
        );
    }
}

fn main() {
    let rep = Report::run("Conflicts", conflicts);
    let interleaved = interleaved_ratios();
    report(rep, &interleaved);
}
