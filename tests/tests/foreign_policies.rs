//! Policies written in Python (componentize-py) and JavaScript (componentize-js) run unchanged
//! in the same sandbox as Rust ones: they validate, pass the law checks, decide every sample
//! conflict exactly as the Rust na-status policy does, and, swapped in mid-run, every seeded
//! simulation schedule too (with the writes sent; shown failing without them, on seed 1 already),
//! and their hostile versions (reading a
//! file, reading the environment, looping forever) are contained.
//!
//! The components are built by `scripts/build-foreign-policies.sh` (run by `scripts/test.sh`,
//! which sets `FOREIGN_POLICIES` to their folder). The hosts grant no WASI at all: a component
//! that imports a WASI interface is refused at load with the list of what it imports; built
//! with `--stub-wasi` (Python) or with every optional feature disabled (JavaScript), these
//! runtimes import nothing, and a WASI call in them traps.

use std::path::PathBuf;
use std::sync::Arc;

use host_core::conflict::parse_lines;
use host_core::{CallFailure, Limits, LoadError, Metering, Policy, PolicyEngine, resolve_with};
use host_sim::{SimConfig, SimPolicies, SimReport, run};
use integration_tests::samples::samples_path;
use policy_admin::laws::{CheckOptions, check};

fn dir() -> PathBuf {
    PathBuf::from(std::env::var("FOREIGN_POLICIES").unwrap_or_else(|_| {
        panic!(
            "FOREIGN_POLICIES is not set: these tests need the Python and JavaScript policies \
             built by scripts/build-foreign-policies.sh (node >= 20, python3); scripts/test.sh \
             builds them and sets it"
        )
    }))
}

fn bytes(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load(engine: &PolicyEngine, name: &str) -> Result<Arc<Policy>, LoadError> {
    Policy::load(engine, &bytes(name), None).map(Arc::new)
}

const PORTS: [&str; 2] = ["python-na-status-stub-wasi", "js-na-status"];

#[test]
fn the_ports_validate_and_describe_themselves() {
    let engine = integration_tests::engine();
    for (name, described) in PORTS.iter().zip(["na-status-python", "na-status-js"]) {
        let policy = load(&engine, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(policy.description().name, described);
        assert!(policy.info().imports.is_empty(), "{name} imports nothing");
    }
}

/// Big runtimes compile once (at validation or upload, off the hot path) into the artifact
/// cache; a host's cold start then deserializes them, and the policy answers the same.
#[test]
fn the_ports_load_from_the_precompiled_cache() {
    let engine = integration_tests::engine();
    let dir = tempfile::tempdir().unwrap();
    let cache = host_core::ArtifactCache::new(dir.path());
    let (local, remote) = integration_tests::email_vs_status("acme");
    for name in PORTS {
        let compiled = Policy::load(&engine, &bytes(name), Some(&cache)).unwrap();
        assert!(
            !compiled.info().from_cache,
            "{name}: compiled the first time"
        );
        let cold = Policy::load(&engine, &bytes(name), Some(&cache)).unwrap();
        assert!(
            cold.info().from_cache,
            "{name}: deserialized the second time"
        );
        assert_eq!(
            resolve_with(&compiled, "{}", "eu", &local, &remote).unwrap(),
            resolve_with(&cold, "{}", "eu", &local, &remote).unwrap()
        );
    }
}

#[test]
fn the_ports_decide_every_sample_conflict_as_the_rust_policy_does() {
    let engine = integration_tests::engine();
    let rust = Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap();
    let text = std::fs::read_to_string(samples_path()).unwrap();
    let conflicts: Vec<_> = parse_lines(&text)
        .into_iter()
        .filter_map(|(_, c)| c.ok())
        .collect();
    assert!(conflicts.len() >= 10);
    for name in PORTS {
        let port = load(&engine, name).unwrap();
        for c in &conflicts {
            let config = c.config_text();
            let want = resolve_with(&rust, &config, c.region(), &c.local, &c.remote).unwrap();
            let got = resolve_with(&port, &config, c.region(), &c.local, &c.remote)
                .unwrap_or_else(|e| panic!("{name} on {:?}: {e}", c.id));
            assert_eq!(
                (got.relation, &got.decision, &got.party),
                (want.relation, &want.decision, &want.party),
                "{name} on {:?}",
                c.id
            );
        }
    }
}

/// Swapped in mid-run, as `host-cli simulate --swap-to <port>.wasm` does, each port passes the
/// simulation's oracle on every schedule and decides as the Rust `na-status` does there: the
/// same conflicts resolved, the same acknowledged writes dropped by its decisions, the same
/// count of writes settled — on histories whose versions carry their writes.
#[test]
fn the_ports_swapped_in_run_the_simulation_as_the_rust_policy_does() {
    let engine = integration_tests::engine();
    let policy = |bytes: &[u8]| Arc::new(Policy::load(&engine, bytes, None).unwrap());
    let default = policy(default_policy_artifact::DEFAULT_POLICY);
    let with = |second: Arc<Policy>| SimPolicies {
        first: default.clone(),
        second: Some(second),
        flaky: None,
        config: "{}".into(),
    };
    let rust = with(policy(default_policy_artifact::NA_STATUS_POLICY));
    let first = integration_tests::env_seed("SIM_SEED").unwrap_or(1);
    let seeds = first..first + 20;
    let config = |seed| SimConfig {
        swap_at: Some(30),
        ..SimConfig::new(seed)
    };
    // Per policy by its part (the default, then the one swapped in), not by digest: the
    // ports' digests sort either side of the default's, and a build of the same source may
    // give another digest.
    let outcome = |r: &SimReport| {
        let part = |first: bool| -> Vec<_> {
            r.policies
                .iter()
                .filter(|(digest, _)| (*digest == default.digest()) == first)
                .map(|(_, stats)| stats.clone())
                .collect()
        };
        (
            r.conflicts,
            r.acknowledged,
            r.superseded,
            r.dead_lettered,
            part(true),
            part(false),
        )
    };
    let want: Vec<_> = seeds
        .clone()
        .map(|seed| outcome(&run(&config(seed), &rust)))
        .collect();
    for name in PORTS {
        let port = with(load(&engine, name).unwrap());
        for (seed, want) in seeds.clone().zip(&want) {
            let r = run(&config(seed), &port);
            let rerun = format!(
                "host-cli simulate --seed {seed} --swap-at 30 --swap-to $FOREIGN_POLICIES/{name}.wasm"
            );
            assert!(
                r.ok(),
                "{name}, seed {seed}: {:?}\nrerun: {rerun}",
                r.violations
            );
            assert_eq!(&outcome(&r), want, "{name}, seed {seed}\nrerun: {rerun}");
            assert!(
                r.swaps.len() == 3,
                "{name}, seed {seed}: swapped in every region"
            );
        }
    }
}

#[test]
fn the_ports_pass_the_law_checks() {
    let engine = PolicyEngine::new(Limits::default(), Metering::Fuel).unwrap();
    for name in PORTS {
        let policy = load(&engine, name).unwrap();
        let seed = 9;
        let report = check(
            &policy,
            &CheckOptions {
                cases: 24,
                seed,
                config: "{}".into(),
            },
        );
        assert!(
            report.passed(),
            "{name} (seed {seed}) broke {:?}",
            report.failed()
        );
    }
}

#[test]
fn components_that_import_wasi_are_refused_naming_the_imports() {
    let engine = integration_tests::engine();
    for (name, import) in [
        ("python-na-status", "wasi:filesystem/preopens"),
        ("python-hostile-fs", "wasi:filesystem/types"),
        ("python-hostile-env", "wasi:cli/environment"),
        ("js-hostile-fs", "wasi:filesystem/preopens"),
        ("js-hostile-env", "wasi:cli/environment"),
    ] {
        match load(&engine, name) {
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains(import), "{name}: {message}");
            }
            Ok(_) => panic!("{name} imports WASI and must be refused"),
        }
    }
}

#[test]
fn hostile_ports_are_contained_and_the_host_keeps_serving() {
    let engine = integration_tests::engine();
    let (local, remote) = integration_tests::email_vs_status("acme");
    let honest = load(&engine, "js-na-status").unwrap();
    for (name, expect) in [
        ("python-hostile-fs-stub-wasi", "trap-or-reject"),
        ("python-hostile-env-stub-wasi", "trap-or-reject"),
        ("python-hostile-loop-stub-wasi", "timeout"),
        ("js-hostile-loop", "timeout"),
    ] {
        let policy = load(&engine, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = resolve_with(&policy, "{}", "eu", &local, &remote);
        match (expect, &out) {
            ("timeout", Err(e)) => {
                assert!(matches!(e.failure, CallFailure::Timeout(_)), "{name}: {e}")
            }
            // Under --stub-wasi a file open or an environment read traps; a policy that
            // catches the trap's Python exception can only reject. Neither reads anything.
            ("trap-or-reject", Err(e)) => {
                assert!(matches!(e.failure, CallFailure::Trap { .. }), "{name}: {e}")
            }
            ("trap-or-reject", Ok(r)) => {
                let host_core::Decision::Rejected(reason) = &r.decision else {
                    panic!("{name} decided {:?}", r.decision)
                };
                assert!(
                    !reason.contains("root:") && !reason.contains("PATH="),
                    "{name} read something: {reason}"
                );
            }
            _ => panic!("{name}: expected {expect}, got {out:?}"),
        }
        // The host keeps serving: the next call, on another policy, succeeds.
        assert!(resolve_with(&honest, "{}", "eu", &local, &remote).is_ok());
    }
}
