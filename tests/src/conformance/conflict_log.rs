//! The conflict log's suite: `ConflictLog` on its own, and on the reconcile path.

use std::sync::Arc;

use host_core::conflict::CapturedConflict;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictQuery, ConflictRecord, LogError,
};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::{DeadLetter, DeadLetterSink, PartyStore};
use host_core::tenant::LogSettings;
use host_core::{ActivePolicy, Resolver, TenantPolicies};
use serde_json::json;

use super::{Check, REGION, Suite};
use crate::{email_vs_status, guests, write};

/// The conflict log's contract: a record is written once however often its conflict is seen,
/// and read back by id, by time range and by party; later outcomes are appended in order, to a
/// known record only; queries select by tenant, party, time, latest outcome and policy.
///
/// `log` may hold other records: each check uses a tenant of its own.
pub fn conflict_log(backend: &str, log: &dyn ConflictLog) {
    let checks: [Check<dyn ConflictLog + '_>; 3] = [
        (
            "a record is written once and read back by id, time and party",
            a_record_is_written_once_and_read_back,
        ),
        (
            "outcomes are appended in order",
            outcomes_are_appended_in_order,
        ),
        (
            "queries filter by outcome and policy, combined",
            queries_filter_by_outcome_and_policy,
        ),
    ];
    Suite::run("conflict log", backend, log, &checks);
}

/// The conflict log on the reconcile path: a conflict whose policy traps is recorded as failed
/// and dead-lettered naming its record; redriven after a fix it ends resolved, the resolution
/// appended to the same record and the party stored as the record says.
///
/// `stores` and `letters` as for [`super::ingest_store`] (the reconcile path needs only the
/// party store).
pub fn conflict_log_on_the_reconcile_path<S, D>(
    backend: &str,
    stores: impl Fn(&str) -> (S, D),
    letters: impl Fn(&D) -> Vec<DeadLetter>,
    log: Arc<dyn ConflictLog>,
) where
    S: PartyStore,
    D: DeadLetterSink,
{
    let mut suite = Suite::new("conflict log", backend);
    suite.check(
        "a failed conflict redriven after a fix ends resolved in its record",
        |tenant| a_failed_conflict_redriven_ends_resolved(&stores, &letters, log, tenant),
    );
    suite.finish();
}

/// A record of a conflict on party `p{n % 2}` of `tenant`, first seen at `at_ms`, decided by
/// `policy`; distinct per `n`.
fn conflict(tenant: &str, n: u32, at_ms: u64, policy: Option<&str>) -> ConflictRecord {
    let (mut eu, mut na) = email_vs_status(tenant);
    eu.party_id = format!("p{}", n % 2);
    na.party_id = eu.party_id.clone();
    // A distinct version per record: n + 1 writes in NA.
    for i in 0..=n {
        write(
            &mut na,
            "na",
            3_000 + i as u64,
            json!({"givenName": format!("J{i}")}),
        );
    }
    ConflictRecord::new(
        "eu",
        &eu,
        &na,
        "{}",
        at_ms,
        &LogSettings::default(),
        ConflictOutcome::failed(
            "reconcile",
            at_ms,
            "rejected",
            "test",
            policy.map(str::to_owned),
        ),
    )
}

fn a_record_is_written_once_and_read_back(log: &dyn ConflictLog, tenant: &str) {
    let records: Vec<ConflictRecord> = (0..4)
        .map(|n| conflict(tenant, n, 1_000_000 + n as u64 * 1_000, None))
        .collect();
    for r in &records {
        assert!(log.record(r).unwrap(), "{} is new", r.id);
    }
    // Seen again later (a retry, the other region): the same id, not recorded again.
    let mut again = records[0].clone();
    again.at_ms += 50_000;
    assert!(!log.record(&again).unwrap());
    // The same conflict in another tenant is another record.
    let elsewhere = format!("{tenant}-other");
    assert!(
        log.record(&conflict(&elsewhere, 0, 1_000_000, None))
            .unwrap()
    );

    assert_eq!(
        log.get(tenant, &records[2].id).unwrap().as_ref(),
        Some(&records[2])
    );
    assert_eq!(log.get(tenant, "00000000").unwrap(), None);

    let all = log.query(&ConflictQuery::tenant(tenant)).unwrap();
    assert_eq!(all, records, "oldest first, once each, of this tenant only");
    let range = ConflictQuery {
        from_ms: Some(1_001_000),
        to_ms: Some(1_003_000),
        ..ConflictQuery::tenant(tenant)
    };
    assert_eq!(
        log.query(&range).unwrap(),
        records[1..3],
        "from inclusive, to exclusive"
    );
    let party = ConflictQuery {
        party: Some("p1".into()),
        ..ConflictQuery::tenant(tenant)
    };
    assert_eq!(
        log.query(&party).unwrap(),
        [records[1].clone(), records[3].clone()]
    );
    let party_in_range = ConflictQuery {
        from_ms: Some(1_002_000),
        ..party
    };
    assert_eq!(log.query(&party_in_range).unwrap(), [records[3].clone()]);
    let none = log
        .query(&ConflictQuery::tenant(&format!("{tenant}-none")))
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

fn outcomes_are_appended_in_order(log: &dyn ConflictLog, tenant: &str) {
    let record = conflict(tenant, 0, 1_000_000, None);
    let other = conflict(tenant, 1, 1_001_000, None);
    assert!(log.record(&record).unwrap());
    assert!(log.record(&other).unwrap());
    let merged = ConflictOutcome::failed("host-cli", 2_000_000, "merged", "fixed", None);
    log.append(tenant, &record.id, &merged).unwrap();
    let back = log.get(tenant, &record.id).unwrap().unwrap();
    assert_eq!(back.outcomes, [record.first().clone(), merged.clone()]);
    assert_eq!(back.latest(), &merged);
    let kept = ConflictOutcome::failed("redrive", 3_000_000, "keep-local", "again", None);
    log.append(tenant, &record.id, &kept).unwrap();
    let back = log.get(tenant, &record.id).unwrap().unwrap();
    let decisions: Vec<(&str, &str)> = back
        .outcomes
        .iter()
        .map(|o| (o.by.as_str(), o.decision.as_str()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("reconcile", "rejected"),
            ("host-cli", "merged"),
            ("redrive", "keep-local")
        ]
    );
    assert_eq!(
        ConflictRecord {
            outcomes: record.outcomes.clone(),
            ..back
        },
        record,
        "appending changes nothing else"
    );
    assert_eq!(
        log.get(tenant, &other.id).unwrap().as_ref(),
        Some(&other),
        "nor any other record"
    );
    // A query by outcome reads the latest.
    let by_outcome = |o: &str| {
        log.query(&ConflictQuery {
            outcome: Some(o.into()),
            ..ConflictQuery::tenant(tenant)
        })
        .unwrap()
        .len()
    };
    assert_eq!(
        (
            by_outcome("keep-local"),
            by_outcome("merged"),
            by_outcome("rejected")
        ),
        (1, 0, 1)
    );
    match log.append(tenant, "0123456789abcdef0123456789abcdef", &merged) {
        Err(LogError::NotFound { .. }) => {}
        other => panic!("an outcome for an unknown record was accepted: {other:?}"),
    }
}

fn queries_filter_by_outcome_and_policy(log: &dyn ConflictLog, tenant: &str) {
    let a = "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000";
    let b = "bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000";
    let records = [
        conflict(tenant, 0, 1_000_000, Some(a)),
        conflict(tenant, 1, 1_001_000, Some(b)),
        conflict(tenant, 2, 1_002_000, Some(a)),
        conflict(tenant, 3, 1_003_000, None),
    ];
    for r in &records {
        assert!(log.record(r).unwrap());
    }
    let resolved = ConflictOutcome::failed("host-cli", 2_000_000, "merged", "fixed", None);
    log.append(tenant, &records[2].id, &resolved).unwrap();
    let query = |policy: Option<&str>, outcome: Option<&str>, party: Option<&str>| ConflictQuery {
        policy: policy.map(str::to_owned),
        outcome: outcome.map(str::to_owned),
        party: party.map(str::to_owned),
        ..ConflictQuery::tenant(tenant)
    };
    let cases = [
        // A prefix of the deciding (first) policy's digest.
        (query(Some("aaaa00"), None, None), vec![0, 2]),
        (query(Some("aaaa00"), Some("rejected"), None), vec![0]),
        (query(None, Some("merged"), Some("p0")), vec![2]),
        (query(Some("bbbb"), Some("rejected"), Some("p1")), vec![1]),
        (query(Some("cccc"), None, None), vec![]),
    ];
    for (q, expected) in cases {
        // Which of the records, oldest first.
        let found: Vec<usize> = log
            .query(&q)
            .unwrap()
            .iter()
            .map(|r| records.iter().position(|x| x.id == r.id).unwrap())
            .collect();
        assert_eq!(found, expected, "{q:?}");
    }
}

/// The one record of `tenant`'s conflicts in `log`; `what` says why there is one.
fn only_record(log: &dyn ConflictLog, tenant: &str, what: &str) -> ConflictRecord {
    let mut all = log.query(&ConflictQuery::tenant(tenant)).unwrap();
    assert_eq!(all.len(), 1, "{what}: {all:?}");
    all.remove(0)
}

fn a_failed_conflict_redriven_ends_resolved<S: PartyStore, D: DeadLetterSink>(
    stores: &dyn Fn(&str) -> (S, D),
    letters: &dyn Fn(&D) -> Vec<DeadLetter>,
    log: Arc<dyn ConflictLog>,
    tenant: &str,
) {
    let engine = crate::engine();
    let broken = crate::load(&engine, guests::PANIC).unwrap();
    let fixed = crate::default_policy(&engine);
    let policies = Arc::new(TenantPolicies::new());
    policies.activate(tenant, ActivePolicy::new(broken.clone()));
    let (store, sink) = stores(REGION);
    let reconcile = Reconcile::new(
        store,
        sink,
        Arc::new(Resolver::new(policies.clone(), REGION)),
    )
    .with_conflict_log(log.clone());

    let (eu, na) = email_vs_status(tenant);
    crate::put_new_party(reconcile.store(), &eu);
    let outcome = reconcile.restore(&na, 1_000_000);
    let ReconcileOutcome::DeadLettered {
        policy_failure: Some("trap"),
        ..
    } = outcome
    else {
        panic!("expected the trap dead-lettered, got {outcome:?}")
    };
    let rec = only_record(&*log, tenant, "the failed conflict");
    assert_eq!(rec.first().decision, "failed");
    assert_eq!(rec.first().policy_digest.as_deref(), Some(broken.digest()));
    assert!(rec.first().written.is_none());
    assert!(
        rec.first().reason.as_deref().unwrap().contains("trapped"),
        "{:?}",
        rec.first().reason
    );

    // The dead letter names the record.
    let kept: Vec<DeadLetter> = letters(reconcile.dead_letters())
        .into_iter()
        .filter(|l| l.tenant == tenant)
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let captured: CapturedConflict = serde_json::from_value(kept[0].payload.clone()).unwrap();
    assert_eq!(captured.id.as_deref(), Some(rec.id.as_str()));

    // The policy is fixed; the redrive resolves it and appends to the same record.
    policies.activate(tenant, ActivePolicy::new(fixed.clone()));
    let outcome = reconcile.redrive_conflict(&captured, 2_000_000);
    let ReconcileOutcome::Resolved {
        concurrent: true, ..
    } = outcome
    else {
        panic!("expected the concurrent conflict resolved, got {outcome:?}")
    };
    let rec = only_record(&*log, tenant, "no second record");
    let decisions: Vec<(&str, &str)> = rec
        .outcomes
        .iter()
        .map(|o| (o.by.as_str(), o.decision.as_str()))
        .collect();
    assert_eq!(decisions, [("reconcile", "failed"), ("redrive", "merged")]);
    assert_eq!(rec.latest().policy_digest.as_deref(), Some(fixed.digest()));
    let stored = reconcile
        .store()
        .party(tenant, &eu.party_id)
        .unwrap()
        .unwrap();
    assert_eq!(Some(&stored.version), rec.latest().written.as_ref());
    assert_eq!(
        stored.provenance.policy_digest.as_deref(),
        Some(fixed.digest())
    );
    // Queryable by outcome: it now reads as merged.
    let q = ConflictQuery {
        outcome: Some("merged".into()),
        ..ConflictQuery::tenant(tenant)
    };
    assert_eq!(log.query(&q).unwrap().len(), 1);
}
