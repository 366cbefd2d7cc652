//! The ingest path on DynamoDB and SQS (moto in server mode, through the AWS SDK): every
//! official event type, duplicates with the same and a different payload, concurrent
//! duplicates, out-of-order changes, two concurrent writers, throttling injected in front of
//! the SDK's HTTP client (retried by the SDK, then dead-lettered and redriven), the 400 KB item
//! limit, the SQS and API Gateway entry points, and one event delivered to two regions.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use host_core::ingest::{Ingest, IngestConfig, IngestStore, Outcome, PartyStore};
use host_lambda::dynamo::{DynamoStore, PARTY_SK, party_key};
use host_lambda::ingest_fn::IngestFunction;
use host_lambda::redrive::redrive;
use host_lambda::sqs::{KIND_INGEST, SqsDeadLetters};
use integration_tests::samples::example;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000_000;

type AwsIngest = Ingest<DynamoStore, SqsDeadLetters>;

type Region = Rig;

/// The ingest of `region` on a rig's stores, with a short conditional-write backoff.
fn ingest(r: &Rig, region: &str) -> AwsIngest {
    let mut config = IngestConfig::new(region);
    config.retry_backoff_ms = 1;
    Ingest::new(r.store(region), r.letters(KIND_INGEST), config)
}

/// Applies the official create event of party 42.
fn create(i: &AwsIngest) {
    let out = i.handle(
        "acme",
        &event("IndividualCreateEvent_request", "c", 1),
        None,
        NOW,
        NOW + 60_000,
    );
    assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
}

/// An official example with a fresh event id and the given second of event time.
fn event(name: &str, id: &str, second: u32) -> Value {
    let mut e = example(name);
    e["eventId"] = json!(id);
    e["eventTime"] = json!(format!(
        "2025-01-01T00:{:02}:{:02}.000Z",
        second / 60,
        second % 60
    ));
    e
}

fn applied(o: &Outcome) -> &Value {
    match o {
        Outcome::Applied { result, .. } => result,
        other => panic!("expected applied, got {other:?}"),
    }
}

#[test]
fn every_official_event_type_applies_to_dynamodb() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = ingest(&r, "eu");
    for (resource, id) in [("Individual", "42"), ("Organization", "128")] {
        let mut second = 0;
        for (n, kind) in [
            "CreateEvent",
            "AttributeValueChangeEvent",
            "StateChangeEvent",
            "DeleteEvent",
        ]
        .iter()
        .enumerate()
        {
            second += 1;
            let e = event(
                &format!("{resource}{kind}_request"),
                &format!("{resource}-{n}"),
                second,
            );
            let out = i.handle("acme", &e, None, NOW + n as u64, NOW + 60_000);
            let result = applied(&out);
            assert_eq!(result["partyId"], json!(id));
            let stored = i.store().party("acme", id).unwrap().expect("stored");
            // One tick of this region per write; the item records the event that wrote it.
            assert_eq!(
                stored.version.version_vector,
                vec![policy_types::Dot::new("eu", n as u64 + 1)],
                "{resource} {kind}"
            );
            assert_eq!(
                stored.provenance.last_event_id.as_deref(),
                Some(format!("{resource}-{n}").as_str())
            );
        }
        let stored = i.store().party("acme", id).unwrap().unwrap();
        assert!(stored.version.tombstone.is_some(), "{resource} deleted");
    }
    // The item carries the clock and stamps as attributes, keyed by tenant.
    let item =
        r.rt.block_on(
            r.ddb
                .get_item()
                .table_name(&r.table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(party_key("acme", "42")),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(PARTY_SK.into()),
                )
                .send(),
        )
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["vvKey"].as_s().unwrap(), "eu:4");
    assert!(item["versionVector"].as_m().unwrap().contains_key("eu"));
    assert!(item["clock"].as_s().unwrap().ends_with("@eu"));
    assert!(item["state"].as_m().unwrap().contains_key("fields"));
    assert!(r.dead_letters().is_empty());
}

#[test]
fn duplicates_replay_and_a_reused_key_is_refused() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = ingest(&r, "eu");
    let e = event("IndividualCreateEvent_request", "dup-1", 1);
    let first = i.handle("acme", &e, None, NOW, NOW + 60_000);
    let again = i.handle("acme", &e, None, NOW + 5, NOW + 60_000);
    match (&first, &again) {
        (
            Outcome::Applied {
                result: a,
                replay: false,
            },
            Outcome::Applied {
                result: b,
                replay: true,
            },
        ) => {
            assert_eq!(a, b)
        }
        other => panic!("expected applied then replayed, got {other:?}"),
    }
    let vv = i
        .store()
        .party("acme", "42")
        .unwrap()
        .unwrap()
        .version
        .version_vector;
    assert_eq!(vv, vec![policy_types::Dot::new("eu", 1)], "applied once");

    let mut changed = e.clone();
    changed["event"]["individual"]["givenName"] = json!("Janet");
    match i.handle("acme", &changed, None, NOW + 10, NOW + 60_000) {
        Outcome::Refused(err) => {
            assert_eq!(err.status(), 409);
            assert!(err.message.contains("dup-1"), "{}", err.message);
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    // An explicit key names its own request, independent of the event id.
    let keyed = i.handle(
        "acme",
        &changed,
        Some("client-key-7"),
        NOW + 20,
        NOW + 60_000,
    );
    assert!(matches!(keyed, Outcome::Applied { replay: false, .. }));
    let record = i.store().record("acme", "client-key-7").unwrap().unwrap();
    assert!(record.expires_at > NOW / 1000, "the record carries its TTL");
}

#[test]
fn concurrent_duplicates_apply_once() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = Arc::new(ingest(&r, "eu"));
    let e = event("IndividualCreateEvent_request", "race-1", 1);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let i = i.clone();
                let e = e.clone();
                s.spawn(move || i.handle("acme", &e, None, NOW, NOW + 60_000))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Applied { replay: false, .. }))
        .count();
    assert_eq!(fresh, 1, "exactly one delivery applies: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Applied { .. } | Outcome::InProgress)),
        "the others replay or are told to retry: {outcomes:?}"
    );
    let vv = i
        .store()
        .party("acme", "42")
        .unwrap()
        .unwrap()
        .version
        .version_vector;
    assert_eq!(vv, vec![policy_types::Dot::new("eu", 1)]);
}

#[test]
fn an_older_change_arriving_late_changes_nothing_it_does_not_win() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = ingest(&r, "eu");
    create(&i);
    let mut newer = event("IndividualAttributeValueChangeEvent_request", "new", 30);
    newer["event"]["individual"]["maritalStatus"] = json!("divorced");
    let mut older = event("IndividualAttributeValueChangeEvent_request", "old", 20);
    older["event"]["individual"]["maritalStatus"] = json!("married");
    applied(&i.handle("acme", &newer, None, NOW + 10, NOW + 60_000));
    let late = i.handle("acme", &older, None, NOW + 20, NOW + 60_000);
    let stale: Vec<String> = serde_json::from_value(applied(&late)["stale"].clone()).unwrap();
    assert!(
        stale.contains(&"maritalStatus".to_owned()),
        "the result says what was stale: {stale:?}"
    );
    let v = i.store().party("acme", "42").unwrap().unwrap().version;
    assert_eq!(
        integration_tests::tmf(&v)["maritalStatus"],
        json!("divorced")
    );
}

#[test]
fn two_writers_in_one_region_both_land_through_conditional_retries() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = Arc::new(ingest(&r, "eu"));
    create(&i);
    // Each failed attempt means another writer committed, so with three writers nobody fails
    // more than twice (five attempts are allowed before the dead-letter queue).
    let n = 3;
    std::thread::scope(|s| {
        for w in 0..n {
            let i = i.clone();
            s.spawn(move || {
                let mut e = event(
                    "IndividualAttributeValueChangeEvent_request",
                    &format!("w{w}"),
                    10 + w,
                );
                e["event"]["individual"] =
                    json!({"@type": "Individual", "id": "42", format!("nickname{w}"): "x"});
                let out = i.handle("acme", &e, None, NOW + 1, NOW + 60_000);
                assert!(
                    matches!(out, Outcome::Applied { .. }),
                    "writer {w}: {out:?}"
                );
            });
        }
    });
    let v = i.store().party("acme", "42").unwrap().unwrap().version;
    assert_eq!(
        v.version_vector,
        vec![policy_types::Dot::new("eu", 1 + n as u64)]
    );
    let tmf = integration_tests::tmf(&v);
    for w in 0..n {
        assert_eq!(
            tmf[format!("nickname{w}")],
            json!("x"),
            "writer {w}'s change is kept"
        );
    }
}

#[test]
fn throttled_writes_are_retried_by_the_sdk_then_dead_lettered_and_redriven() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = Arc::new(ingest(&r, "eu"));
    // Two throttles: the SDK's standard retries (3 attempts) absorb them.
    r.throttle.arm(2);
    let e1 = event("IndividualCreateEvent_request", "t1", 1);
    assert!(matches!(
        i.handle("acme", &e1, None, NOW, NOW + 60_000),
        Outcome::Applied { .. }
    ));
    assert_eq!(r.throttle.injected.load(Ordering::SeqCst), 2);

    // Throttled beyond the SDK's retries: kept in the dead-letter queue with the reason.
    r.throttle.arm(1000);
    let e2 = event("IndividualAttributeValueChangeEvent_request", "t2", 2);
    match i.handle("acme", &e2, None, NOW + 1, NOW + 60_000) {
        Outcome::DeadLettered(reason) => {
            assert!(reason.contains("ProvisionedThroughputExceeded"), "{reason}")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    r.throttle.arm(0);
    let kept = r.dead_letters();
    assert_eq!(kept.len(), 1);
    let attrs = kept[0].message_attributes.as_ref().unwrap();
    assert_eq!(attrs["tenant"].string_value.as_deref(), Some("acme"));
    assert!(
        attrs["reason"]
            .string_value
            .as_deref()
            .unwrap()
            .contains("ProvisionedThroughputExceeded")
    );
    let body: Value = serde_json::from_str(kept[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body, e2, "the original payload, unchanged");

    // The redrive applies it once the throttling is over, and empties the queue.
    let ing = i.clone();
    let report =
        r.rt.block_on(redrive(&r.sqs, &r.dlq, 10, move |k| {
            let ing = ing.clone();
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    ing.redeliver(
                        &k.letter.tenant,
                        &k.letter.payload,
                        k.letter.idempotency_key.as_deref(),
                        NOW + 2,
                        NOW + 60_000,
                    )
                })
                .await
                .unwrap();
                match out {
                    Outcome::Applied { .. } => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        }))
        .unwrap();
    assert_eq!((report.received, report.redriven), (1, 1), "{report:?}");
    assert!(r.dead_letters().is_empty());
    let v = i.store().party("acme", "42").unwrap().unwrap().version;
    assert_eq!(v.version_vector, vec![policy_types::Dot::new("eu", 2)]);
}

#[test]
fn a_party_growing_past_400_kb_is_dead_lettered_not_truncated() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = ingest(&r, "eu");
    create(&i);
    // Each change adds ~100 KB of characteristics (as stored); the fourth takes the item past 400 KB.
    let mut outcomes = Vec::new();
    for n in 0..4u32 {
        let mut e = event(
            "IndividualAttributeValueChangeEvent_request",
            &format!("big{n}"),
            10 + n,
        );
        let chars: Vec<Value> = (0..90)
            .map(|k| json!({"id": format!("{n}-{k}"), "name": format!("c{n}-{k}"), "value": "x".repeat(1000)}))
            .collect();
        e["event"]["individual"] =
            json!({"@type": "Individual", "id": "42", format!("extra{n}"): chars});
        outcomes.push(i.handle("acme", &e, None, NOW + 1 + n as u64, NOW + 60_000));
    }
    assert!(
        outcomes[..3]
            .iter()
            .all(|o| matches!(o, Outcome::Applied { .. })),
        "{outcomes:?}"
    );
    match &outcomes[3] {
        Outcome::DeadLettered(reason) => {
            assert!(
                reason.contains("item limit") && reason.contains("nothing was truncated"),
                "{reason}"
            )
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let kept = r.dead_letters();
    assert_eq!(kept.len(), 1);
    let body: Value = serde_json::from_str(kept[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["eventId"], json!("big3"));
    // The stored party is the last one that fit, whole.
    let v = i.store().party("acme", "42").unwrap().unwrap().version;
    assert_eq!(v.version_vector, vec![policy_types::Dot::new("eu", 4)]);
    // The key was released: once the party is trimmed, the same event may be redriven.
    assert!(i.store().record("acme", "big3").unwrap().is_none());
}

#[test]
fn an_sqs_batch_reports_only_what_must_be_retried_and_keeps_the_rest() {
    let r = Region::new("MOTO_ENDPOINT");
    let f = IngestFunction::new(ingest(&r, "eu"), "eu");
    let msg = |id: &str, body: String, tenant: Option<&str>| {
        let mut attrs = serde_json::Map::new();
        if let Some(t) = tenant {
            attrs.insert(
                "tenant".into(),
                json!({"stringValue": t, "dataType": "String"}),
            );
        }
        json!({"messageId": id, "body": body, "messageAttributes": attrs, "eventSource": "aws:sqs"})
    };
    let good = event("IndividualCreateEvent_request", "sqs-1", 1).to_string();
    let mut invalid = event("IndividualCreateEvent_request", "sqs-2", 2);
    invalid["event"]["individual"]["birthDate"] = json!(12);
    let batch = json!({"Records": [
        msg("m1", good.clone(), Some("acme")),
        msg("m2", "{not json".into(), Some("acme")),
        msg("m3", invalid.to_string(), Some("acme")),
        msg("m4", good.clone(), None),
        msg("m5", good, Some("acme")),
    ]});
    let out =
        r.rt.block_on(f.handle(batch, host_lambda::ingest_fn::now_ms() + 60_000))
            .unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": []}),
        "nothing needs a retry"
    );
    let kept = r.dead_letters();
    // m2 (not JSON), m3 (schema), m4 (no tenant) kept with their reasons; m1 applied; m5 replayed.
    assert_eq!(kept.len(), 3, "{kept:?}");
    let reasons: Vec<String> = kept
        .iter()
        .map(|m| {
            m.message_attributes.as_ref().unwrap()["reason"]
                .string_value
                .clone()
                .unwrap()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("birthDate")),
        "the schema error names the path: {reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("tenant")), "{reasons:?}");
    assert!(f.ingest().store().party("acme", "42").unwrap().is_some());
}

#[test]
fn api_gateway_routes_answer_with_tmf630_bodies() {
    let r = Region::new("MOTO_ENDPOINT");
    let f = IngestFunction::new(ingest(&r, "eu"), "eu");
    let request = |path: &str, tenant: Option<&str>, body: &Value| {
        let mut headers = serde_json::Map::new();
        if let Some(t) = tenant {
            headers.insert("x-tenant-id".into(), json!(t));
        }
        json!({
            "version": "2.0", "routeKey": format!("POST {path}"), "rawPath": path,
            "headers": headers, "body": body.to_string(), "isBase64Encoded": false,
            "requestContext": {"http": {"method": "POST", "path": path}, "requestId": "r", "routeKey": "POST", "stage": "$default"}
        })
    };
    let call = |v: Value| {
        let out =
            r.rt.block_on(f.handle(v, host_lambda::ingest_fn::now_ms() + 60_000))
                .unwrap();
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        (out["statusCode"].as_u64().unwrap(), body)
    };
    let e = event("IndividualCreateEvent_request", "api-1", 1);
    let v5 = "/tmf-api/party/v5/listener/individualCreateEvent";
    assert_eq!(call(request(v5, Some("acme"), &e)).0, 201);
    let (status, body) = call(request(v5, Some("acme"), &e));
    assert_eq!(status, 200, "a replay answers with the first result");
    assert_eq!(body["eventId"], json!("api-1"));
    let (status, body) = call(request(v5, None, &e));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missingTenant"))
    );
    let (status, body) = call(request(
        "/tmf-api/party/v5/listener/organizationCreateEvent",
        Some("acme"),
        &e,
    ));
    assert_eq!((status, body["@type"].as_str()), (400, Some("Error")));
    let mut bad = event("IndividualCreateEvent_request", "api-2", 2);
    bad["eventType"] = json!("IndividualMergeEvent");
    let (status, body) = call(request(
        "/tmf-api/party/v4/listener/individualCreateEvent",
        Some("acme"),
        &bad,
    ));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("eventType"),
        "{body}"
    );
}

#[test]
fn one_event_delivered_to_two_regions_ends_as_one_effect() {
    let eu = Region::new("MOTO_EU");
    let na = Region::new("MOTO_NA");
    let (ieu, ina) = (ingest(&eu, "eu"), ingest(&na, "na"));
    let create = event("IndividualCreateEvent_request", "c", 1);
    let change = event("IndividualAttributeValueChangeEvent_request", "twice", 5);
    ieu.handle("acme", &create, None, NOW, NOW + 60_000);
    ina.handle("acme", &create, None, NOW + 3, NOW + 60_000);
    ieu.handle("acme", &change, None, NOW + 7, NOW + 60_000);
    ina.handle("acme", &change, None, NOW + 9, NOW + 60_000);
    let a = ieu.store().party("acme", "42").unwrap().unwrap().version;
    let b = ina.store().party("acme", "42").unwrap().unwrap().version;
    // Stamps derive from the event (its eventTime), not from the receipt: both regions stamped
    // the change alike, so the merged party is the change applied once.
    let engine = integration_tests::engine();
    let policy = integration_tests::default_policy(&engine);
    let resolved = host_core::resolve_with(&policy, "{}", "eu", &a, &b).unwrap();
    let merged = resolved.written(&a, &b).expect("resolved").clone();
    let single = {
        let one = Region::new("MOTO_ENDPOINT");
        let i = ingest(&one, "apac");
        i.handle("acme", &create, None, NOW, NOW + 60_000);
        i.handle("acme", &change, None, NOW + 7, NOW + 60_000);
        i.store().party("acme", "42").unwrap().unwrap().version
    };
    assert_eq!(
        integration_tests::tmf(&merged),
        integration_tests::tmf(&single)
    );
}
