//! The conflict log in memory and in a directory: the log's conformance suite (a record written
//! once and read back by id, time and party, outcomes appended, query filters, and on the
//! reconcile path a failed conflict redriven after a fix ending resolved in its record: see
//! `integration_tests::conformance`); then the reconcile path's records (in-process stores):
//! each conflict recorded once with what the policy saw and decided, host-settled cases
//! counted and stored only under full capture, retention from the tenant's configuration; a
//! three-region simulation whose every record reproduces under the policy that decided it; and
//! the directory log shared by concurrent writers losing no record and no outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictRecord, DirConflictLog, LogError, LogObserver,
    MemoryConflictLog, Observed, conflict_id,
};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::PartyStore;
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
use host_core::tenant::LogSettings;
use host_core::{ActivePolicy, Policy, Resolver, TenantPolicies, resolve_with};
use host_sim::{SimConfig, SimPolicies, run};
use integration_tests::{
    assert_each_conflict_once, assert_first_outcome_reproduces, conformance, email_vs_status,
    engine, put_new_party, write,
};
use serde_json::json;

#[test]
fn the_memory_log_conforms() {
    conformance::conflict_log("memory", &MemoryConflictLog::new());
    conformance::conflict_log_on_the_reconcile_path(
        "memory",
        |_region| (MemoryStore::new(), MemoryDeadLetters::default()),
        |sink| sink.letters.lock().unwrap().clone(),
        Arc::new(MemoryConflictLog::new()),
    );
}

#[test]
fn the_directory_log_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::conflict_log("directory", &DirConflictLog::new(dir.path().join("log")));
    conformance::conflict_log_on_the_reconcile_path(
        "directory",
        |_region| (MemoryStore::new(), MemoryDeadLetters::default()),
        |sink| sink.letters.lock().unwrap().clone(),
        Arc::new(DirConflictLog::new(dir.path().join("reconcile"))),
    );
}

/// What an observer of a log was told: each record offered (with whether it was stored anew)
/// and each outcome appended.
#[derive(Debug, Default)]
struct Told {
    recorded: Mutex<Vec<(String, bool)>>,
    appended: Mutex<Vec<(String, String)>>,
}

impl LogObserver for Told {
    fn recorded(&self, record: &ConflictRecord, stored: &Result<bool, LogError>) {
        let created = matches!(stored, Ok(true));
        self.recorded
            .lock()
            .unwrap()
            .push((record.id.clone(), created));
    }

    fn outcome_added(&self, record: &ConflictRecord, outcome: &ConflictOutcome, appended: bool) {
        if appended {
            let decision = outcome.decision.clone();
            self.appended
                .lock()
                .unwrap()
                .push((record.id.clone(), decision));
        }
    }
}

/// The wrapper `serve`'s page and the simulation's oracle watch the log through: it conforms
/// like the log it wraps, and its observer is told of every record stored and every outcome
/// appended, as the log holds them afterwards.
#[test]
fn an_observed_log_conforms_and_tells_its_observer_every_write() {
    let observed = Observed {
        log: MemoryConflictLog::new(),
        observer: Told::default(),
    };
    conformance::conflict_log("observed memory", &observed);
    let stored = observed.log.all();
    assert!(!stored.is_empty(), "the conformance suite stored no record");
    // A record offered again is not stored again, and the observer is told so (the
    // simulation's oracle keeps every resolution, stored or not).
    assert!(matches!(observed.record(&stored[0]), Ok(false)));
    assert_eq!(
        observed.observer.recorded.lock().unwrap().last(),
        Some(&(stored[0].id.clone(), false))
    );
    let told = observed.observer.recorded.lock().unwrap();
    for record in &stored {
        let created = told.iter().filter(|(id, c)| id == &record.id && *c).count();
        assert_eq!(
            created, 1,
            "record {} was told stored {created} times",
            record.id
        );
    }
    let mut appended: Vec<(String, String)> = stored
        .iter()
        .flat_map(|r| {
            r.outcomes[1..]
                .iter()
                .map(|o| (r.id.clone(), o.decision.clone()))
        })
        .collect();
    assert!(
        !appended.is_empty(),
        "the conformance suite appended no outcome"
    );
    let mut told = observed.observer.appended.lock().unwrap().clone();
    told.sort();
    appended.sort();
    assert_eq!(told, appended);
}

fn rig(
    policy: Arc<Policy>,
    config: &str,
) -> (
    Reconcile<MemoryStore, MemoryDeadLetters>,
    Arc<MemoryConflictLog>,
) {
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(policy).with_config(config));
    let log = Arc::new(MemoryConflictLog::new());
    let reconcile = Reconcile::new(
        MemoryStore::new(),
        MemoryDeadLetters::default(),
        Arc::new(Resolver::new(policies.clone(), "eu")),
    )
    .with_conflict_log(log.clone());
    (reconcile, log)
}

#[test]
fn a_conflict_is_recorded_once_with_what_the_policy_saw_and_decided() {
    let engine = engine();
    let policy = integration_tests::default_policy(&engine);
    let (r, log) = rig(policy.clone(), r#"{"conflictLog":{"retentionDays":7}}"#);
    let (eu, na) = email_vs_status("acme");
    put_new_party(r.store(), &eu);
    let expected = resolve_with(&policy, "{}", "eu", &eu, &na).unwrap();
    assert_eq!(
        r.restore(&na, 1_000_000),
        ReconcileOutcome::Resolved {
            decision: expected.decision.kind(),
            concurrent: true,
            policy_digest: Some(policy.digest().to_owned()),
        }
    );
    // Delivered again: already resolved, nothing new recorded.
    assert_eq!(r.restore(&na, 1_000_500), ReconcileOutcome::AlreadyResolved);

    let records = log.all();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.id, conflict_id("acme", &eu, &na));
    assert_eq!(
        rec.id,
        conflict_id("acme", &na, &eu),
        "the same conflict from either side"
    );
    assert_eq!(
        (rec.local.clone(), rec.remote.clone()),
        (eu.clone(), na.clone())
    );
    assert_eq!(rec.regions, ["eu", "na"]);
    assert_eq!(rec.region, "eu");
    assert_eq!(
        rec.config, None,
        "the policy saw no configuration: conflictLog is the host's"
    );
    assert_eq!(rec.expires_at, Some(1_000 + 7 * 86_400));
    let first = rec.first();
    assert_eq!(first.by, "reconcile");
    assert_eq!(first.policy_digest.as_deref(), Some(policy.digest()));
    assert_eq!(first.decision, expected.decision.kind());
    assert_eq!(first.written.as_ref(), expected.written(&eu, &na));
    // What was written is what the record says was written.
    let stored = r.store().party("acme", &eu.party_id).unwrap().unwrap();
    assert_eq!(Some(&stored.version), first.written.as_ref());
}

#[test]
fn host_settled_cases_are_counted_unless_the_tenant_asks_for_full_capture() {
    let engine = engine();
    let policy = integration_tests::default_policy(&engine);
    for (config, stored) in [("{}", 0), (r#"{"conflictLog":{"capture":"all"}}"#, 1)] {
        let (r, log) = rig(policy.clone(), config);
        // Last-writer-wins put an older version over a newer one: the host restores the newer.
        let (old, _) = email_vs_status("acme");
        let mut newer = old.clone();
        write(&mut newer, "eu", 5_000, json!({"givenName": "Janet"}));
        put_new_party(r.store(), &old);
        let outcome = r.restore(&newer, 1_000_000);
        assert!(
            matches!(
                outcome,
                ReconcileOutcome::Resolved {
                    concurrent: false,
                    policy_digest: None,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(log.all().len(), stored, "config {config}");
        assert_eq!(
            r.dominated.load(Ordering::Relaxed),
            1 - stored as u64,
            "config {config}"
        );
        if stored == 1 {
            assert_eq!(log.all()[0].first().policy_digest, None);
        }
    }
}

#[test]
fn a_three_region_run_records_each_conflict_once_reproducibly() {
    let engine = engine();
    let first = integration_tests::default_policy(&engine);
    let second =
        Arc::new(Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap());
    let policies = SimPolicies {
        first: first.clone(),
        second: Some(second.clone()),
        flaky: None,
        config: "{}".into(),
    };
    for seed in [1u64, 2, 3] {
        eprintln!("simulation seed {seed}");
        let log = Arc::new(MemoryConflictLog::new());
        let config = SimConfig {
            swap_at: Some(30),
            conflict_log: Some(log.clone()),
            ..SimConfig::new(seed)
        };
        let report = run(&config, &policies);
        assert!(report.ok(), "seed {seed}");
        let records = log.all();
        assert!(!records.is_empty(), "seed {seed} had conflicts");
        assert_each_conflict_once(&records, &format!("seed {seed}"));
        for rec in &records {
            let o = rec.first();
            let policy = [&first, &second]
                .into_iter()
                .find(|p| Some(p.digest()) == o.policy_digest.as_deref())
                .unwrap_or_else(|| {
                    panic!(
                        "seed {seed}: decided by an unknown policy {:?}",
                        o.policy_digest
                    )
                });
            assert_first_outcome_reproduces(policy, rec, &format!("seed {seed}"));
        }
        // The same run again: every conflict is already recorded.
        let rerun = run(&config, &policies);
        assert_eq!(rerun.conflicts, report.conflicts);
        assert_eq!(
            log.all().len(),
            records.len(),
            "seed {seed}: nothing recorded twice"
        );
    }
}

/// Several processes (two `host-cli conflicts resolve`, say) may write one directory log at
/// once; each writer here has its own `DirConflictLog`, as separate processes would. Without the
/// tenant's lock, read-modify-write loses outcomes (and `record` may answer "new" twice).
#[test]
fn concurrent_writers_of_a_directory_log_lose_no_outcome() {
    const WRITERS: usize = 6;
    const EACH: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let (eu, na) = email_vs_status("acme");
    let outcome = |n: usize| ConflictOutcome::failed("test", n as u64, "failed", "x", None);
    let record = ConflictRecord::new("eu", &eu, &na, "{}", 0, &LogSettings::default(), outcome(0));
    let recorded: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| s.spawn(|| DirConflictLog::new(dir.path()).record(&record).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum()
    });
    assert_eq!(
        recorded, 1,
        "exactly one writer records the conflict as new"
    );
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (dir, id) = (dir.path(), &record.id);
            s.spawn(move || {
                let log = DirConflictLog::new(dir);
                for i in 0..EACH {
                    log.append("acme", id, &outcome(1 + w * EACH + i)).unwrap();
                }
            });
        }
    });
    let stored = DirConflictLog::new(dir.path())
        .get("acme", &record.id)
        .unwrap()
        .unwrap();
    let mut seen: Vec<u64> = stored.outcomes.iter().map(|o| o.at_ms).collect();
    seen.sort();
    let want: Vec<u64> = (0..=(WRITERS * EACH) as u64).collect();
    assert_eq!(seen, want, "every outcome of every writer is kept, once");
}
