//! The conflict log in DynamoDB (moto in server mode), with the table design the deployment
//! creates (`pk`, `sk`, the `byParty` index): a conflict recorded once however often it is
//! seen, read back by id, by time range and by party; the reconcile path on a real party table
//! recording a failure, and the redrive after a fix appending the resolution to the same record.

mod common;

use std::sync::Arc;

use common::*;
use host_core::conflict::CapturedConflict;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictQuery, ConflictRecord, LogSettings,
};
use host_core::ingest::{PartyStore, Provenance, StoredParty};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::{ActivePolicy, Policy, Resolver, TenantPolicies};
use host_lambda::conflict_log_aws::DynamoConflictLog;
use host_lambda::sqs::KIND_RECONCILE;

/// A conflict table like the template's, on the rig's server.
fn conflict_log(rig: &Rig) -> DynamoConflictLog {
    let table = unique("conflicts");
    rig.rt.block_on(create_conflict_table(&rig.ddb, &table));
    DynamoConflictLog::new(rig.ddb.clone(), table, rig.rt.handle().clone())
}

fn record(n: u32, at_ms: u64) -> ConflictRecord {
    let (mut eu, mut na) = integration_tests::email_vs_status("acme");
    eu.party_id = format!("p{}", n % 2);
    na.party_id = eu.party_id.clone();
    // A distinct version per record: n + 1 writes in NA.
    for i in 0..=n {
        integration_tests::write(
            &mut na,
            "na",
            3_000 + i as u64,
            serde_json::json!({"givenName": format!("J{i}")}),
        );
    }
    ConflictRecord::new(
        "eu",
        &eu,
        &na,
        "{}",
        at_ms,
        &LogSettings::default(),
        ConflictOutcome::failed("reconcile", at_ms, "rejected", "test", None),
    )
}

#[test]
fn records_once_and_reads_back_by_id_time_and_party() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let log = conflict_log(&rig);
    let records: Vec<ConflictRecord> = (0..4)
        .map(|n| record(n, 1_000_000 + n as u64 * 1_000))
        .collect();
    for r in &records {
        assert!(log.record(r).unwrap());
    }
    // Seen again later (a retry, the other region): the same id, not recorded again.
    let mut again = records[0].clone();
    again.at_ms += 50_000;
    assert!(!log.record(&again).unwrap());

    let back = log.get("acme", &records[2].id).unwrap().unwrap();
    assert_eq!(back, records[2]);
    assert!(log.get("acme", "00000000").unwrap().is_none());

    let all = log.query(&ConflictQuery::tenant("acme")).unwrap();
    assert_eq!(all, records, "oldest first, no id markers, no duplicate");
    let range = ConflictQuery {
        from_ms: Some(1_001_000),
        to_ms: Some(1_003_000),
        ..ConflictQuery::tenant("acme")
    };
    assert_eq!(log.query(&range).unwrap(), records[1..3].to_vec());
    let party = ConflictQuery {
        party: Some("p1".into()),
        ..ConflictQuery::tenant("acme")
    };
    let by_party = log.query(&party).unwrap();
    assert_eq!(by_party.len(), 2);
    assert!(by_party.iter().all(|r| r.party_id == "p1"));
    assert!(
        log.query(&ConflictQuery::tenant("other"))
            .unwrap()
            .is_empty()
    );

    let later = ConflictOutcome::failed("host-cli", 2_000_000, "merged", "fixed", None);
    log.add_outcome("acme", &records[1].id, &later).unwrap();
    let back = log.get("acme", &records[1].id).unwrap().unwrap();
    assert_eq!(back.outcomes.len(), 2);
    assert_eq!(back.latest(), &later);
    let merged = ConflictQuery {
        outcome: Some("merged".into()),
        ..ConflictQuery::tenant("acme")
    };
    assert_eq!(log.query(&merged).unwrap().len(), 1);
}

#[test]
fn a_failed_conflict_redriven_on_real_tables_ends_resolved_in_its_record() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let log = Arc::new(conflict_log(&rig));
    let engine = integration_tests::engine();
    let broken = integration_tests::load(&engine, integration_tests::guests::PANIC).unwrap();
    let fixed =
        Arc::new(Policy::load(&engine, default_policy_artifact::DEFAULT_POLICY, None).unwrap());
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(broken));
    let reconcile = Reconcile::new(
        rig.store("eu"),
        rig.letters(KIND_RECONCILE),
        Arc::new(Resolver::new(policies.clone(), "eu")),
    )
    .with_conflict_log(log.clone());

    let (eu, na) = integration_tests::email_vs_status("acme");
    reconcile
        .store()
        .put_party(
            &StoredParty {
                version: eu.clone(),
                provenance: Provenance::default(),
            },
            None,
        )
        .unwrap();
    let outcome = reconcile.restore(&na, 1_000_000);
    assert!(
        matches!(outcome, ReconcileOutcome::DeadLettered { .. }),
        "{outcome:?}"
    );
    let letters = rig.dead_letters();
    assert_eq!(letters.len(), 1);
    let captured: CapturedConflict = serde_json::from_str(letters[0].body().unwrap()).unwrap();
    let id = captured
        .id
        .clone()
        .expect("the dead letter names the record");
    assert_eq!(
        log.get("acme", &id).unwrap().unwrap().first().decision,
        "failed"
    );

    policies.activate("acme", ActivePolicy::new(fixed.clone()));
    let outcome = reconcile.redrive_conflict(&captured, 2_000_000);
    assert!(
        matches!(outcome, ReconcileOutcome::Resolved { .. }),
        "{outcome:?}"
    );
    let rec = log.get("acme", &id).unwrap().unwrap();
    let decisions: Vec<&str> = rec.outcomes.iter().map(|o| o.decision.as_str()).collect();
    assert_eq!(decisions, ["failed", "merged"]);
    let stored = reconcile
        .store()
        .party("acme", &eu.party_id)
        .unwrap()
        .unwrap();
    assert_eq!(Some(&stored.version), rec.latest().written.as_ref());
    assert_eq!(
        stored.provenance.policy_digest.as_deref(),
        Some(fixed.digest())
    );
    assert_eq!(log.query(&ConflictQuery::tenant("acme")).unwrap().len(), 1);
}
