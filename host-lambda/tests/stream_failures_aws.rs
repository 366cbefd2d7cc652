//! The batches the reconcile stream gave up on (moto): Lambda's on-failure message names a
//! batch by shard and sequence numbers; the redrive function's `stream-failures` reads the
//! records back from the stream and hands them to reconcile, so the version last-writer-wins
//! overwrote is merged back although the stream's own delivery gave up. What cannot be read
//! back goes to the review queue with the reason; nothing is silently dropped.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use host_aws::dynamo::{DynamoStore, party_item};
use host_aws::sqs::{KIND_RECONCILE, SqsDeadLetters};
use host_core::reconcile::Reconcile;
use host_core::store::{PartyStore, StoredParty};
use host_core::{ActivePolicy, Policy, PolicyEngine, Resolver, TenantPolicies};
use host_lambda::reconcile_fn::ReconcileFunction;
use host_lambda::stream_failures::{FailureQueue, PartyStream, ReplayReport, ReviewQueue, replay};
use serde_json::json;

struct Queues {
    failures: String,
    review: String,
}

fn queues(rig: &Rig) -> Queues {
    rig.rt.block_on(async {
        Queues {
            failures: create_queue(&rig.stores.sqs, &unique("reconcile-failures")).await,
            review: create_queue(&rig.stores.sqs, &unique("review")).await,
        }
    })
}

fn reconcile(rig: &Rig) -> ReconcileFunction<DynamoStore, SqsDeadLetters> {
    let engine = PolicyEngine::new(Default::default(), host_core::Metering::Epoch).unwrap();
    let policy = Policy::load(&engine, default_policy_artifact::DEFAULT_POLICY, None).unwrap();
    let policies = Arc::new(TenantPolicies::new());
    policies.set_default(ActivePolicy::new(Arc::new(policy)));
    let resolver = Arc::new(Resolver::new(policies, "eu"));
    ReconcileFunction::new(
        Reconcile::new(rig.store("eu"), rig.letters(KIND_RECONCILE), resolver),
        "eu",
    )
}

/// NA's concurrent version replicated over EU's, last writer wins: the stream's last record is
/// the overwrite. Returns its shard and sequence number.
fn overwrite_eu_with_na(rig: &Rig, id: &str) -> (String, String) {
    let (_, na) = eu_and_concurrent_na(rig, id);
    let mut item = party_item(&na).unwrap();
    item.insert("replicatedFrom".into(), AttributeValue::S("na".into()));
    let arn = rig.stream_arn();
    rig.rt.block_on(async {
        rig.stores
            .ddb
            .put_item()
            .table_name(&rig.stores.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        let shard = shards(&rig.stores.streams, &arn).await.remove(0);
        let records = read_shard(&rig.stores.streams, &arn, &shard, None).await.0;
        let last = records.last().unwrap().dynamodb.as_ref().unwrap();
        assert_eq!(
            last.new_image.as_ref().unwrap()["pk"].as_s().unwrap(),
            &format!("T#acme#P#{id}")
        );
        (shard, last.sequence_number.clone().unwrap())
    })
}

/// What Lambda sends to the on-failure destination after the last retry of a batch.
fn failure_message(arn: &str, shard: &str, first: &str, last: &str) -> String {
    json!({
        "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:reconcile",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-06T10:00:00.000Z",
        "DDBStreamBatchInfo": {"shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last,
                               "approximateArrivalOfFirstRecord": "2026-12-06T09:59:00Z",
                               "approximateArrivalOfLastRecord": "2026-12-06T09:59:00Z",
                               "batchSize": 1, "streamArn": arn}
    })
    .to_string()
}

/// The redrive function's `stream-failures` over the rig's table and queues.
fn replay_all(rig: &Rig, q: &Queues) -> ReplayReport {
    let failures = FailureQueue::new(rig.stores.sqs.clone(), &q.failures);
    let review = ReviewQueue::new(rig.stores.sqs.clone(), &q.review);
    let stream = PartyStream::new(rig.stores.streams.clone(), &rig.stores.table, None);
    let function = reconcile(rig);
    rig.rt
        .block_on(replay(&failures, &review, &stream, &function, 10))
        .unwrap()
}

fn send(rig: &Rig, queue: &str, body: &str) {
    rig.rt
        .block_on(
            rig.stores
                .sqs
                .send_message()
                .queue_url(queue)
                .message_body(body)
                .send(),
        )
        .unwrap();
}

fn stored(rig: &Rig, id: &str) -> StoredParty {
    rig.store("eu").party("acme", id).unwrap().unwrap()
}

#[test]
fn a_given_up_batch_is_read_back_and_its_overwrite_merged() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let q = queues(&rig);
    let id = unique("given-up");
    let (shard, sequence) = overwrite_eu_with_na(&rig, &id);
    // The stream gave up: EU's divorce is gone from the item, only in the stream's old image.
    let before = party_model::to_tmf(&stored(&rig, &id).version).unwrap();
    assert_ne!(before["maritalStatus"], json!("divorced"), "{before}");
    send(
        &rig,
        &q.failures,
        &failure_message(&rig.stream_arn(), &shard, &sequence, &sequence),
    );

    let report = replay_all(&rig, &q);
    assert_eq!(
        (report.received, report.replayed, report.records),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(
        report.reviewed.is_empty() && report.retry.is_empty(),
        "{report:?}"
    );

    // Both regions' writes are in the item: EU's divorce came back from the stream.
    let after = party_model::to_tmf(&stored(&rig, &id).version).unwrap();
    assert_eq!(after["maritalStatus"], json!("divorced"), "{after}");
    assert_eq!(after["status"], json!("validated"), "{after}");
    assert!(
        rig.rt
            .block_on(peek_all(&rig.stores.sqs, &q.failures))
            .is_empty()
    );
    assert!(
        rig.rt
            .block_on(peek_all(&rig.stores.sqs, &q.review))
            .is_empty()
    );
}

#[test]
fn what_cannot_be_read_back_goes_to_review_with_the_reason() {
    let rig = Rig::new("MOTO_ENDPOINT");
    let q = queues(&rig);
    let (shard, sequence) = overwrite_eu_with_na(&rig, &unique("lost"));
    let other_table = rig.stream_arn().replace(
        &format!("table/{}/", rig.stores.table),
        "table/someone-elses/",
    );
    send(
        &rig,
        &q.failures,
        &failure_message(&other_table, &shard, &sequence, &sequence),
    );
    send(&rig, &q.failures, r#"{"Records": []}"#);

    let report = replay_all(&rig, &q);
    assert_eq!((report.received, report.replayed), (2, 0), "{report:?}");
    let reviewed = rig.rt.block_on(peek_all(&rig.stores.sqs, &q.review));
    let reasons: Vec<&str> = reviewed
        .iter()
        .map(|m| attribute(m, "reason").unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    for expected in [
        "not a DynamoDB stream on-failure message",
        "is not a stream of the party table",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected}: {reasons:?}"
        );
    }
    assert!(
        reviewed
            .iter()
            .all(|m| attribute(m, "kind") == Some("stream-failure"))
    );
    assert!(
        rig.rt
            .block_on(peek_all(&rig.stores.sqs, &q.failures))
            .is_empty()
    );
}
