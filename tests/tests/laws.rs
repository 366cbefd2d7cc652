//! `policy_admin::laws` on the default policy and on the broken example policies: the default
//! passes, each broken one is caught with a counterexample that parses as captured conflicts.

use host_core::conflict::{parse_lines, to_line};
use host_core::{Limits, Metering, Policy, PolicyEngine};
use integration_tests::guests;
use policy_admin::laws::{CheckOptions, Law, LawReport, check};

fn metered() -> PolicyEngine {
    PolicyEngine::new(Limits::default(), Metering::Fuel).unwrap()
}

fn run(bytes: &[u8], config: &str) -> LawReport {
    let engine = metered();
    let policy = Policy::load(&engine, bytes, None).unwrap();
    let seed = 20261127;
    println!("seed {seed}");
    check(
        &policy,
        &CheckOptions {
            cases: 48,
            seed,
            config: config.to_owned(),
        },
    )
}

fn counterexample_replays(report: &LawReport, law: Law) {
    let f = report
        .outcomes
        .iter()
        .find(|o| o.law == law)
        .unwrap()
        .failure
        .as_ref()
        .unwrap();
    assert!(!f.conflicts.is_empty(), "{law:?} has a counterexample");
    let text: String = f.conflicts.iter().map(|c| to_line(c) + "\n").collect();
    for (n, parsed) in parse_lines(&text) {
        assert!(parsed.is_ok(), "counterexample line {n} parses: {parsed:?}");
    }
}

#[test]
fn default_policy_holds_every_law_under_both_delete_rules() {
    for config in ["{}", r#"{"deleteRule":"update-resurrects"}"#] {
        let report = run(default_policy_artifact::DEFAULT_POLICY, config);
        assert!(report.passed(), "{config}: {:?}", report.outcomes);
        assert!(
            report.budget.samples.len() > 100,
            "fuel is measured per call"
        );
        assert!(report.budget.max_fuel() > 0);
    }
}

/// Checks the guest at `path` under `config` and expects `law` to fail with a replayable
/// counterexample.
fn caught(path: &str, config: &str, law: Law) {
    let report = run(&std::fs::read(path).unwrap(), config);
    assert!(
        report.failed().contains(&law),
        "{path}: {:?}",
        report.failed()
    );
    counterexample_replays(&report, law);
}

#[test]
fn keep_local_is_caught() {
    caught(guests::KEEP_LOCAL, "{}", Law::Commutativity);
}

#[test]
fn prefer_local_is_caught() {
    caught(guests::PREFER_LOCAL, "{}", Law::Commutativity);
}

#[test]
fn state_kept_between_calls_is_caught_through_the_configuration() {
    caught(guests::STATEFUL, r#"{"rotate": true}"#, Law::Determinism);
    // Without that configuration the same policy behaves.
    assert!(run(&std::fs::read(guests::STATEFUL).unwrap(), "{}").passed());
}
