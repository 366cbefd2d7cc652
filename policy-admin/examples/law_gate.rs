//! Times the upload's law gate on components: the enumerated small scopes and the random
//! cases apart, on the gate's metered engine. How BENCHMARKS.md's "The law gate" was measured.
//!
//! ```sh
//! cargo run -p policy-admin --example law_gate -- default target/foreign-policies/js-na-status.wasm
//! ```

use std::time::{Duration, Instant};

use host_sandbox::{Limits, Metering, Policy, PolicyEngine};
use policy_admin::laws::{CheckOptions, check_with};

/// CPU time this process has used (Linux: `/proc/self/stat`, in clock ticks of 10 ms), so
/// that a measurement on a shared machine can be told from the waiting.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let engine = PolicyEngine::new(Limits::default(), Metering::Fuel).expect("engine");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = if args.is_empty() {
        vec!["default".to_owned()]
    } else {
        args
    };
    for source in args {
        let bytes = match source.as_str() {
            "default" => default_policy_artifact::DEFAULT_POLICY.to_vec(),
            "na-status" => default_policy_artifact::NA_STATUS_POLICY.to_vec(),
            path => std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}")),
        };
        let start = Instant::now();
        let policy = Policy::load(&engine, &bytes, None).expect("the component loads");
        let loaded = start.elapsed();
        let options = CheckOptions {
            cases: 64,
            seed: policy_admin::seed_from_digest(policy.digest()),
            config: "{}".to_owned(),
        };
        let start = Instant::now();
        let random = check_with(&policy, &options, false);
        let random_time = start.elapsed();
        // A policy of its own, as upload loads one: the calls above must not count.
        let policy = Policy::load(&engine, &bytes, None).expect("the component loads");
        let (start, start_cpu) = (Instant::now(), cpu());
        let both = check_with(&policy, &options, true);
        let (both_time, both_cpu) = (start.elapsed(), cpu() - start_cpu);
        println!(
            "{source}: load {loaded:.1?}; random cases alone {random_time:.1?} (passed: {}); small scopes ({} cases) and random {both_time:.1?}, {both_cpu:.1?} of CPU (passed: {})",
            random.passed(),
            both.enumerated,
            both.passed()
        );
        for o in both.outcomes.iter().filter(|o| o.failure.is_some()) {
            let f = o.failure.as_ref().unwrap();
            println!("  {} FAILED: {}", o.law.name(), f.message);
        }
    }
}
