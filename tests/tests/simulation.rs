//! The simulation runs the shipped pipeline (ingest, reconcile, redrive over the embedded
//! stores) under faults, and its oracle can fail: seeded schedules converge with nothing
//! acknowledged lost; without reconciliation the same schedules lose writes; a keep-local
//! policy and a prefer-local one fail; an authority policy's drops are attributed to it, not
//! counted as silent loss; a trapping policy fails the run unless it is the expected casualty
//! of a bad rollout, whose dead letters are redriven; a seed replays the same run.
//!
//! Seeds print; rerun one with `host-cli simulate --seed N` (the flags each test sets are in
//! its failure message).

use std::sync::Arc;

use host_core::{Policy, PolicyEngine};
use host_sim::{Faults, SimConfig, SimPolicies, SimReport, run};
use integration_tests::{engine, guests};

fn load(engine: &PolicyEngine, bytes: &[u8]) -> Arc<Policy> {
    Arc::new(Policy::load(engine, bytes, None).unwrap())
}

/// `policy` in every region for the whole run.
fn alone(policy: Arc<Policy>) -> SimPolicies {
    SimPolicies {
        first: policy,
        second: None,
        flaky: None,
        config: "{}".into(),
    }
}

/// `first`, then the NA status authority from the swap on.
fn policies(engine: &PolicyEngine, first: &[u8]) -> SimPolicies {
    SimPolicies {
        second: Some(load(engine, default_policy_artifact::NA_STATUS_POLICY)),
        ..alone(load(engine, first))
    }
}

/// The default policy, then the NA status authority from the swap on: what most runs serve.
fn default_then_na() -> SimPolicies {
    policies(&engine(), default_policy_artifact::DEFAULT_POLICY)
}

fn config(seed: u64, reconcile: bool) -> SimConfig {
    SimConfig {
        swap_at: Some(30),
        reconcile,
        ..SimConfig::new(seed)
    }
}

/// Runs the schedule `config` makes of each seed, asserts that the oracle passed it, and hands
/// the report on. `rerun` is how `host-cli simulate --seed N …` repeats a run, where it can.
fn each_passing(
    seeds: std::ops::Range<u64>,
    config: impl Fn(u64) -> SimConfig,
    p: &SimPolicies,
    rerun: &str,
    mut report: impl FnMut(u64, SimReport),
) {
    for seed in seeds {
        let r = run(&config(seed), p);
        assert!(
            r.ok(),
            "seed {seed}: {:?}; lost {:?}\nrerun: host-cli simulate --seed {seed} {rerun}",
            r.violations,
            r.lost
        );
        report(seed, r);
    }
}

fn first_seed() -> u64 {
    integration_tests::env_seed("SIM_SEED").unwrap_or(1)
}

#[test]
fn schedules_with_every_fault_converge_and_lose_nothing_silently() {
    let p = default_then_na();
    let first = first_seed();
    println!("seeds {first}..{} (SIM_SEED=N moves them)", first + 300);
    let (mut conflicts, mut swapped, mut crashes, mut races, mut acked) = (0, 0, 0, 0, 0);
    let (mut named, mut unknown) = (0, 0);
    let every_fault = |seed| config(seed, true);
    each_passing(
        first..first + 300,
        every_fault,
        &p,
        "--swap-at 30",
        |_, r| {
            assert_eq!(r.dead_letters_left, 0);
            conflicts += r.conflicts;
            crashes += r.claim_crashes + r.reconcile_crashes;
            races += r.races;
            acked += r.acknowledged;
            named += r.fields_named;
            unknown += r.fields_unknown;
            swapped += r
                .policies
                .get(p.second.as_ref().unwrap().digest())
                .map_or(0, |s| s.resolved);
        },
    );
    assert!(
        conflicts > 3_000,
        "the schedules produce conflicts: {conflicts}"
    );
    assert!(
        swapped > 500,
        "after the swap the new policy resolves: {swapped}"
    );
    assert!(
        crashes > 50 && races > 50,
        "faults happen: {crashes} crashes, {races} races"
    );
    assert!(acked > 30_000, "{acked}");
    // The final parties name, for most fields, the acknowledged write behind them (the
    // oracle checks each one it can); the rest came through a region's own copy or a write
    // whose acknowledgement was lost.
    assert!(
        named > 4 * unknown,
        "fields naming their write: {named}, of unknown write: {unknown}"
    );
}

/// A crash of reconcile fails its whole invocation: the batch is bisected and handed again,
/// records it had already reconciled included, as Lambda does with `BisectBatchOnFunctionError`
/// (a batch item failure is a checkpoint instead). Handling them twice changes nothing.
#[test]
fn a_reconcile_crash_bisects_its_batch_and_nothing_is_lost() {
    let p = default_then_na();
    let first = first_seed();
    let (mut bisected, mut crashes) = (0, 0);
    let crashing = |seed| {
        let mut c = config(seed, true);
        c.faults.reconcile_crash_rate = 0.3;
        c
    };
    let rerun = "--swap-at 30 (with the reconcile crash rate at 0.3, which has no flag)";
    each_passing(first..first + 20, crashing, &p, rerun, |seed, r| {
        assert_eq!(r.dead_letters_left, 0, "seed {seed}");
        bisected += r.stream_bisected;
        crashes += r.reconcile_crashes;
    });
    assert!(crashes > 20, "reconcile crashes: {crashes}");
    assert!(
        bisected > 0,
        "crashed batches are bisected: {bisected} of {crashes} crashes"
    );
}

/// A write of an array field that adds, changes and removes no element still writes the field
/// (it stamps it): the field names that write, and the oracle accepts it. Seed 342942 sends
/// `contactMedium: []` to a region whose copy had no element left to remove.
#[test]
fn an_array_write_that_changes_no_element_is_the_fields_write() {
    let p = default_then_na();
    each_passing(
        342_942..342_943,
        |seed| config(seed, true),
        &p,
        "--swap-at 30",
        |seed, r| assert!(r.fields_named > 0, "seed {seed}"),
    );
}

#[test]
fn without_reconciliation_acknowledged_writes_are_lost() {
    let p = default_then_na();
    let lost: usize = (1..30)
        .map(|seed| run(&config(seed, false), &p).lost.len())
        .sum();
    assert!(
        lost > 100,
        "last-writer-wins alone loses writes on the same schedules: {lost}"
    );
}

/// A policy that keeps one side whole drops writes nothing contested: the oracle fails it.
#[test]
fn keep_local_and_prefer_local_policies_fail() {
    let engine = engine();
    for guest in [guests::KEEP_LOCAL, guests::PREFER_LOCAL] {
        let bytes = std::fs::read(guest).unwrap();
        let p = alone(load(&engine, &bytes));
        let failed: Vec<SimReport> = (1..11)
            .map(|seed| run(&SimConfig::new(seed), &p))
            .filter(|r| !r.ok())
            .collect();
        assert!(
            failed.len() >= 3,
            "{guest}: only {} of 10 runs failed",
            failed.len()
        );
        assert!(
            failed[0]
                .violations
                .iter()
                .any(|v| v.contains("lost silently")),
            "{guest}: {:?}",
            failed[0].violations
        );
    }
}

/// NA's status authority drops concurrent status writes by its rule: each such drop is on
/// record, attributed to the policy, and no run fails for it.
#[test]
fn an_authority_policys_drops_are_attributed_not_silent() {
    let engine = engine();
    let na = load(&engine, default_policy_artifact::NA_STATUS_POLICY);
    let p = alone(na.clone());
    let mut dropped = 0;
    let rerun = "--no-swap (with the na-status example policy as --policy)";
    each_passing(1..40, SimConfig::new, &p, rerun, |_, r| {
        dropped += r.policies.get(na.digest()).map_or(0, |s| s.dropped);
    });
    assert!(
        dropped > 0,
        "the authority rule dropped concurrent writes on record"
    );
}

/// The policy under test trapping fails the run; a bad rollout of a trapping policy in one
/// region, rolled back, ends with its dead letters redriven and everything merged.
#[test]
fn a_trapping_policy_fails_unless_it_is_a_rolled_back_rollout() {
    let engine = engine();
    let panics = load(&engine, &std::fs::read(guests::PANIC).unwrap());
    let r = run(&SimConfig::new(3), &alone(panics.clone()));
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("failed") && v.contains("calls")),
        "{:?}",
        r.violations
    );
    let rollout = SimPolicies {
        flaky: Some(panics.clone()),
        ..policies(&engine, default_policy_artifact::DEFAULT_POLICY)
    };
    let mut failed_calls = 0;
    let rerun = "--swap-at 30 (with a trapping policy rolled out, which has no flag)";
    each_passing(
        1..20,
        |seed| config(seed, true),
        &rollout,
        rerun,
        |seed, r| {
            assert_eq!(
                r.dead_letters_left, 0,
                "seed {seed}: redriven after the rollback"
            );
            failed_calls += r.policies.get(panics.digest()).map_or(0, |s| s.failed);
        },
    );
    assert!(
        failed_calls > 0,
        "the bad rollout trapped on conflicts, kept in the queue"
    );
}

#[test]
fn every_fault_has_a_switch() {
    let p = default_then_na();
    let quiet = SimConfig {
        faults: Faults::none(),
        ..config(5, true)
    };
    let r = run(&quiet, &p);
    assert!(r.ok(), "{:?}", r.violations);
    assert_eq!(
        (
            r.claim_crashes,
            r.reconcile_crashes,
            r.races,
            r.lost_acks_retried,
            r.stream_redelivered,
            r.stream_bisected
        ),
        (0, 0, 0, 0, 0, 0)
    );
    assert!(r.cuts.is_empty() && r.outage.is_none());
}

#[test]
fn a_seed_replays_the_same_run() {
    let p = default_then_na();
    let key = |r: &SimReport| {
        (
            r.events,
            r.writes,
            r.conflicts,
            r.dominated,
            r.replicated,
            r.stream_records,
            r.dead_lettered,
            r.acknowledged,
            r.policies.clone(),
            r.lost.clone(),
        )
    };
    let (a, b) = (run(&config(77, true), &p), run(&config(77, true), &p));
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&run(&config(78, true), &p)));
}
