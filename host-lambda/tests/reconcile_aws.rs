//! The reconcile function on one region's DynamoDB stream (moto): an overwritten concurrent
//! version is restored, the same stream record delivered again changes nothing, a policy that
//! traps sends the conflict to the dead-letter queue with both versions (and counts as handled,
//! not as a batch item failure), records that are not party overwrites are ignored, and the
//! first record to retry ends the batch. A sampled invocation sends X-Ray the policy call and
//! each DynamoDB call as subsegments.

mod common;

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use common::regions::record_json;
use common::*;
use host_aws::dynamo::{DynamoStore, party_item};
use host_aws::sqs::{KIND_RECONCILE, SqsDeadLetters};
use host_core::conflict::CapturedConflict;
use host_core::reconcile::Reconcile;
use host_core::store::{PartyStore, StoredParty};
use host_core::{ActivePolicy, Policy, Resolver, TenantPolicies};
use host_lambda::reconcile_fn::ReconcileFunction;
use integration_tests::samples::example;
use serde_json::{Value, json};

/// A stream batch as the function receives it, from the JSON Lambda delivers.
fn event(batch: &Value) -> DynamoDbEvent {
    serde_json::from_value(batch.clone()).expect("a DynamoDB stream event")
}

/// The function's answer as Lambda reads it.
fn answer(out: aws_lambda_events::streams::DynamoDbEventResponse) -> Value {
    serde_json::to_value(out).unwrap()
}

/// The reconcile function of region `eu` on a rig, with `policy` for every tenant.
trait ReconcileRig {
    fn function(&self, policy: Arc<Policy>) -> ReconcileFunction<DynamoStore, SqsDeadLetters>;
    fn stream_batch(&self) -> Value;
    fn overwrite(&self, party: &StoredParty);
    fn eu_item(&self) -> StoredParty;
}

impl ReconcileRig for Rig {
    fn function(&self, policy: Arc<Policy>) -> ReconcileFunction<DynamoStore, SqsDeadLetters> {
        let policies = Arc::new(TenantPolicies::new());
        policies.set_default(ActivePolicy::new(policy));
        let resolver = Arc::new(Resolver::new(policies, "eu"));
        ReconcileFunction::new(
            Reconcile::new(self.store("eu"), self.letters(KIND_RECONCILE), resolver),
            "eu",
        )
    }

    /// Every record of the table's stream so far, as a Lambda event batch.
    fn stream_batch(&self) -> Value {
        let arn = self.stream_arn();
        self.rt.block_on(async {
            let mut records = Vec::new();
            for shard in shards(&self.stores.streams, &arn).await {
                records.extend(read_shard(&self.stores.streams, &arn, &shard, None).await.0);
            }
            json!({"Records": records.iter().map(record_json).collect::<Vec<_>>()})
        })
    }

    /// Writes a party as another region's replicated write would: the whole item, last writer wins.
    fn overwrite(&self, party: &StoredParty) {
        let mut item = party_item(party).unwrap();
        item.insert("replicatedFrom".into(), AttributeValue::S("na".into()));
        self.rt
            .block_on(
                self.stores
                    .ddb
                    .put_item()
                    .table_name(&self.stores.table)
                    .set_item(Some(item))
                    .send(),
            )
            .unwrap();
    }

    /// Party 42 of tenant acme as EU's table holds it now.
    fn eu_item(&self) -> StoredParty {
        self.store("eu").party("acme", "42").unwrap().unwrap()
    }
}

/// EU creates the party and changes its marital status; NA's concurrent version (the create,
/// then the status) overwrites EU's item by last-writer-wins.
fn eu_overwritten_by_na(rig: &Rig) -> (StoredParty, StoredParty) {
    let (eu, na) = eu_and_concurrent_na(rig, "42");
    rig.overwrite(&na);
    (eu, na)
}

#[test]
fn an_overwritten_version_is_restored_and_a_redelivery_changes_nothing() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = integration_tests::engine();
    let f = rig.function(integration_tests::default_policy(&engine));
    let (eu, na) = eu_overwritten_by_na(&rig);
    let batch = rig.stream_batch();
    let out = rig.rt.block_on(f.handle(event(&batch)));
    assert_eq!(answer(out), json!({"batchItemFailures": []}));
    let merged = rig.eu_item();
    let tmf = integration_tests::tmf(&merged.version);
    assert_eq!(
        tmf["maritalStatus"],
        json!("divorced"),
        "EU's change restored"
    );
    assert_eq!(tmf["status"], json!("validated"), "NA's change kept");
    assert_eq!(
        merged.version.version_vector,
        policy_types::join_vectors(&eu.version.version_vector, &na.version.version_vector),
        "the join of both vectors"
    );
    assert!(
        merged.provenance.policy_digest.is_some(),
        "the item names the policy that resolved it"
    );

    // The same records again (at-least-once delivery): nothing is written.
    let again = rig.rt.block_on(f.handle(event(&batch)));
    assert_eq!(answer(again), json!({"batchItemFailures": []}));
    let after = rig.eu_item();
    assert_eq!(after, merged, "a re-delivered record changes nothing");
    assert!(rig.dead_letters().is_empty());
}

#[test]
fn a_policy_that_traps_sends_the_conflict_to_the_dead_letter_queue_with_both_versions() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = integration_tests::engine();
    let panics = integration_tests::load(&engine, integration_tests::guests::PANIC).unwrap();
    let f = rig.function(panics);
    let (eu, na) = eu_overwritten_by_na(&rig);
    let out = rig.rt.block_on(f.handle(event(&rig.stream_batch())));
    assert_eq!(
        answer(out),
        json!({"batchItemFailures": []}),
        "kept, so the shard moves on"
    );
    let kept = rig.dead_letters();
    assert_eq!(kept.len(), 1);
    assert_eq!(attribute(&kept[0], "kind"), Some("reconcile"));
    assert_eq!(attribute(&kept[0], "tenant"), Some("acme"));
    let reason = attribute(&kept[0], "reason").unwrap();
    assert!(reason.contains("trapped"), "{reason}");
    let conflict: CapturedConflict =
        serde_json::from_str(kept[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(conflict.remote, eu.version, "the overwritten version");
    assert_eq!(conflict.local, na.version, "the version that overwrote it");
    // Nothing was written: the item is still NA's.
    assert_eq!(rig.eu_item().version, na.version);
}

#[test]
fn records_that_are_not_party_overwrites_are_ignored() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = integration_tests::engine();
    let f = rig.function(integration_tests::default_policy(&engine));
    let ingest = rig.ingest("eu");
    let mut create = example("IndividualCreateEvent_request");
    create["eventId"] = json!("only");
    ingest.handle("acme", &create, None, 1, u64::MAX);
    // Inserts, idempotency records and own copies only; and a garbled record is kept, not retried.
    let mut batch = rig.stream_batch();
    let n = batch["Records"].as_array().unwrap().len();
    assert!(n >= 3, "{batch}");
    batch["Records"].as_array_mut().unwrap().push(json!({
        "awsRegion": "eu-west-1", "eventID": "garbled", "eventName": "MODIFY",
        "dynamodb": {"Keys": {"sk": {"S": "PARTY"}}, "OldImage": {"state": {"S": "garbage"}}, "NewImage": {}, "SequenceNumber": "9", "SizeBytes": 40}
    }));
    let out = rig.rt.block_on(f.handle(event(&batch)));
    assert_eq!(answer(out), json!({"batchItemFailures": []}));
    let kept = rig.dead_letters();
    assert_eq!(kept.len(), 1, "only the garbled record is kept");
}

#[test]
fn the_first_record_to_retry_ends_the_batch() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = integration_tests::engine();
    let policies = Arc::new(TenantPolicies::new());
    policies.set_default(ActivePolicy::new(integration_tests::default_policy(
        &engine,
    )));
    // A dead-letter queue that does not exist: keeping the garbled record fails, so it must be
    // retried.
    let nowhere = SqsDeadLetters::new(
        rig.stores.sqs.clone(),
        format!("{}-missing", rig.stores.dlq),
        KIND_RECONCILE,
        rig.rt.handle().clone(),
    );
    let f = ReconcileFunction::new(
        Reconcile::new(
            rig.store("eu"),
            nowhere,
            Arc::new(Resolver::new(policies, "eu")),
        ),
        "eu",
    );
    let (_eu, na) = eu_overwritten_by_na(&rig);
    let mut batch = rig.stream_batch();
    let records = batch["Records"].as_array_mut().unwrap();
    records.insert(
        0,
        json!({
            "awsRegion": "eu-west-1", "eventID": "garbled", "eventName": "MODIFY",
            "dynamodb": {"Keys": {"sk": {"S": "PARTY"}}, "OldImage": {"state": {"S": "garbage"}}, "NewImage": {}, "SequenceNumber": "1", "SizeBytes": 40}
        }),
    );
    let out = rig.rt.block_on(f.handle(event(&batch)));
    assert_eq!(
        answer(out),
        json!({"batchItemFailures": [{"itemIdentifier": "1"}]}),
        "Lambda delivers the batch again from the record that failed"
    );
    // The overwrite after it was left for that delivery: NA's version is still the item.
    assert_eq!(
        rig.eu_item().version,
        na.version,
        "a record after the one to retry was handled"
    );
}

#[test]
fn a_sampled_invocation_sends_the_policy_call_and_each_dynamodb_call_to_x_ray() {
    use tracing::Instrument as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    // The X-Ray daemon Lambda runs beside the function: a UDP socket here.
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let layer =
        host_lambda::xray::XRayLayer::new(&daemon.local_addr().unwrap().to_string()).unwrap();
    // Process-wide, as in a function: the calls run on blocking threads. Other tests' calls
    // run in no invocation and send nothing.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(layer.with_filter(host_lambda::xray::filter())),
    )
    .unwrap();

    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = integration_tests::engine();
    let policy = integration_tests::default_policy(&engine);
    let digest = policy.digest().to_owned();
    let f = rig.function(policy);
    eu_overwritten_by_na(&rig);
    let batch = event(&rig.stream_batch());
    let root = "1-67891233-abcdef012345678912345678";
    let segment = "53995c3f42cd8ad8";
    let invocation = tracing::info_span!(
        "Lambda runtime invoke",
        requestId = "r-1",
        xrayTraceId = format!("Root={root};Parent={segment};Sampled=1")
    );
    let out = rig.rt.block_on(f.handle(batch).instrument(invocation));
    assert_eq!(answer(out), json!({"batchItemFailures": []}));

    let mut documents = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let (header, body) = text
            .split_once('\n')
            .expect("a header line, then the document");
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        documents.push(serde_json::from_str::<Value>(body).unwrap());
    }
    for d in &documents {
        assert_eq!(d["type"], "subsegment", "{d}");
        assert_eq!(d["trace_id"], root, "{d}");
        assert_eq!(
            d["parent_id"], segment,
            "a call of the invocation itself: {d}"
        );
        assert!(d["end_time"].as_f64() >= d["start_time"].as_f64(), "{d}");
    }
    let policy_calls: Vec<&Value> = documents
        .iter()
        .filter(|d| d["name"] == "policy.call")
        .collect();
    assert_eq!(
        policy_calls.len(),
        1,
        "one conflict, one policy call: {documents:?}"
    );
    assert_eq!(
        policy_calls[0]["annotations"]["policy_digest"],
        digest.as_str()
    );
    assert_eq!(policy_calls[0]["annotations"]["tenant"], "acme");
    let operations: Vec<&str> = documents
        .iter()
        .filter(|d| d["name"] == "DynamoDB")
        .map(|d| {
            assert_eq!(d["namespace"], "aws", "{d}");
            d["aws"]["operation"].as_str().unwrap()
        })
        .collect();
    assert!(
        operations.contains(&"GetItem") && operations.len() >= 2,
        "the reconcile's reads and its conditional write: {operations:?}"
    );
}
