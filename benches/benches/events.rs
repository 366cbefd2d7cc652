//! Event application on one core: parse, idempotency check, stamp, version vector, write.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use policy_benches::events::{EventStore, event_stream};
use policy_benches::fixtures::TENANT;
use policy_benches::report::Report;

const PARTIES: usize = 100;
const EVENTS: usize = 1_000;

fn events(c: &mut Criterion) {
    let stream = event_stream(PARTIES, EVENTS);
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("apply-1000", |b| {
        b.iter_batched(
            || EventStore::new("eu"),
            |mut store| {
                for e in &stream {
                    store.apply(TENANT, black_box(e)).unwrap();
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("parse-only-1000", |b| {
        b.iter(|| {
            for e in &stream {
                black_box(serde_json::from_str::<serde_json::Value>(black_box(e)).unwrap());
            }
        })
    });
    g.finish();
}

fn main() {
    let mut rep = Report::run("Events", events);
    let stream = event_stream(PARTIES, EVENTS);
    let bytes: usize = stream.iter().map(String::len).sum();
    if let Some(t) = rep.figure("apply 1000 events (100 parties)", "events", "apply-1000") {
        rep.line(
            "events applied per second, one core",
            &format!("{:.0}", EVENTS as f64 * 1e9 / t),
        );
    }
    rep.ratio(
        "JSON parse share of event application",
        ("events", "parse-only-1000"),
        ("events", "apply-1000"),
        None,
    );
    rep.line(
        "mean event size",
        &format!("{} bytes", bytes / stream.len()),
    );
    rep.finish();
}
