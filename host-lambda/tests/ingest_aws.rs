//! The ingest path on DynamoDB and SQS (moto in server mode, through the AWS SDK): the ingest
//! stores' conformance suite (every official event type, duplicates with the same and a
//! different payload, concurrent duplicates and writers, out-of-order changes, conditional
//! writes, the 400 KB item limit: see `integration_tests::conformance`), the party item's
//! attributes, throttling injected in front of the SDK's HTTP client (retried by the SDK, then
//! dead-lettered and redriven), the SQS and API Gateway entry points, and one event delivered
//! to two regions.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use host_aws::dynamo::{DynamoStore, PARTY_SK, party_key};
use host_aws::sqs::{KIND_INGEST, SqsDeadLetters};
use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::store::PartyStore;
use host_lambda::ingest_fn::IngestFunction;
use host_lambda::redrive::redrive;
use integration_tests::conformance;
use integration_tests::samples::event;
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

#[test]
fn dynamodb_and_sqs_conform() {
    let r = Region::new("MOTO_ENDPOINT");
    conformance::ingest_store(
        "DynamoDB and SQS",
        |region| (r.store(region), r.letters(KIND_INGEST)),
        |_sink| r.letters_kept(),
    );
}

#[test]
fn the_party_item_carries_the_clock_and_stamps_as_attributes() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = ingest(&r, "eu");
    for (n, kind) in [
        "CreateEvent",
        "AttributeValueChangeEvent",
        "StateChangeEvent",
        "DeleteEvent",
    ]
    .iter()
    .enumerate()
    {
        let e = event(
            &format!("Individual{kind}_request"),
            &format!("e{n}"),
            n as u32 + 1,
        );
        let out = i.handle("acme", &e, None, NOW + n as u64, NOW + 60_000);
        assert!(matches!(out, Outcome::Applied { .. }), "{kind}: {out:?}");
    }
    // The item carries the clock and stamps as attributes, keyed by tenant.
    let item =
        r.rt.block_on(
            r.stores
                .ddb
                .get_item()
                .table_name(&r.stores.table)
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
    assert!(item["state"].as_s().unwrap().contains("\"fields\""));
    assert!(r.dead_letters().is_empty());
}

#[test]
fn throttled_writes_are_retried_by_the_sdk_then_dead_lettered_and_redriven() {
    let r = Region::new("MOTO_ENDPOINT");
    let i = Arc::new(ingest(&r, "eu"));
    // Two throttles: the SDK's standard retries (3 attempts) absorb them.
    r.stores.throttle.arm(2);
    let e1 = event("IndividualCreateEvent_request", "t1", 1);
    assert!(matches!(
        i.handle("acme", &e1, None, NOW, NOW + 60_000),
        Outcome::Applied { .. }
    ));
    assert_eq!(r.stores.throttle.injected.load(Ordering::SeqCst), 2);

    // Throttled beyond the SDK's retries: kept in the dead-letter queue with the reason.
    r.stores.throttle.arm(1000);
    let e2 = event("IndividualAttributeValueChangeEvent_request", "t2", 2);
    match i.handle("acme", &e2, None, NOW + 1, NOW + 60_000) {
        Outcome::DeadLettered(reason) => {
            assert!(reason.contains("ProvisionedThroughputExceeded"), "{reason}")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    r.stores.throttle.arm(0);
    let kept = r.dead_letters();
    assert_eq!(kept.len(), 1);
    assert_eq!(attribute(&kept[0], "tenant"), Some("acme"));
    assert!(
        attribute(&kept[0], "reason")
            .unwrap()
            .contains("ProvisionedThroughputExceeded")
    );
    let body: Value = serde_json::from_str(kept[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body, e2, "the original payload, unchanged");

    // The redrive applies it once the throttling is over, and empties the queue.
    let ing = i.clone();
    let report =
        r.rt.block_on(redrive(&r.stores.sqs, &r.stores.dlq, 10, move |k| {
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
    let event = serde_json::from_value(batch).expect("an SQS event");
    let out =
        r.rt.block_on(f.handle(event, host_lambda::ingest_fn::now_ms() + 60_000));
    assert_eq!(
        serde_json::to_value(out).unwrap(),
        json!({"batchItemFailures": []}),
        "nothing needs a retry"
    );
    let kept = r.dead_letters();
    // m2 (not JSON), m3 (schema), m4 (no tenant) kept with their reasons; m1 applied; m5 replayed.
    assert_eq!(kept.len(), 3, "{kept:?}");
    let reasons: Vec<String> = kept
        .iter()
        .map(|m| attribute(m, "reason").unwrap().to_owned())
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
    // The tenant is the JWT authorizer's claim (None: no authorizer context at all).
    let request = |path: &str, tenant: Option<&str>, body: &Value| {
        let mut context = json!({"http": {"method": "POST", "path": path}, "requestId": "r", "routeKey": "POST", "stage": "$default"});
        if let Some(t) = tenant {
            context["authorizer"] = json!({"jwt": {"claims": {"tenant": t}, "scopes": null}});
        }
        json!({
            "version": "2.0", "routeKey": format!("POST {path}"), "rawPath": path,
            "headers": {}, "body": body.to_string(), "isBase64Encoded": false,
            "requestContext": context
        })
    };
    let call = |v: Value| {
        let event = serde_json::from_value(v).expect("an API Gateway request");
        let out =
            r.rt.block_on(f.handle(event, host_lambda::ingest_fn::now_ms() + 60_000));
        // What API Gateway reads.
        let out = serde_json::to_value(out).unwrap();
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
        (401, Some("unauthenticated"))
    );
    // A header naming another tenant than the caller's is refused, whatever the caller sends.
    let mut other = request(v5, Some("acme"), &e);
    other["headers"]["x-tenant-id"] = json!("globex");
    let (status, body) = call(other);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("wrongTenant")),
        "{body}"
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

/// The resource routes of the shared API (`host_core::api`) through API Gateway, on DynamoDB:
/// create, read with its ETag, patch with If-Match, list with a filter and a projection (a scan
/// on DynamoDB), delete.
#[test]
fn api_gateway_resource_routes_read_and_write_parties_on_dynamodb() {
    let r = Region::new("MOTO_ENDPOINT");
    let f = IngestFunction::new(ingest(&r, "eu"), "eu");
    let call = |method: &str, path: &str, headers: Value, body: Option<Value>| {
        // API Gateway hands the path and the query apart.
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let v = json!({
            "version": "2.0", "routeKey": "ANY /tmf-api/party/{proxy+}", "rawPath": path,
            "rawQueryString": query,
            "headers": headers, "body": body.map(|b| b.to_string()), "isBase64Encoded": false,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "r", "routeKey": "ANY", "stage": "$default",
                               "authorizer": {"jwt": {"claims": {"tenant": "acme"}, "scopes": null}}}
        });
        let event = serde_json::from_value(v).expect("an API Gateway request");
        let out =
            r.rt.block_on(f.handle(event, host_lambda::ingest_fn::now_ms() + 60_000));
        let out = serde_json::to_value(out).unwrap();
        let body = out["body"]
            .as_str()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap_or(Value::Null);
        let etag = out["headers"]["etag"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (out["statusCode"].as_u64().unwrap(), body, etag)
    };
    let item = "/tmf-api/party/v5/individual/api-7";
    let (status, created, _) = call(
        "POST",
        "/tmf-api/party/v5/individual",
        json!({"idempotency-key": "create-7"}),
        Some(json!({"id": "api-7", "givenName": "Jane", "familyName": "Doe"})),
    );
    assert_eq!(status, 201, "{created}");
    let (status, read, etag) = call("GET", item, json!({}), None);
    assert_eq!((status, &read), (200, &created));
    assert_eq!(etag, "\"eu.1\"");
    let (status, patched, _) = call(
        "PATCH",
        item,
        json!({"if-match": etag}),
        Some(json!({"givenName": "Janet"})),
    );
    assert_eq!((status, &patched["givenName"]), (200, &json!("Janet")));
    let (status, refused, _) = call(
        "PATCH",
        item,
        json!({"if-match": etag}),
        Some(json!({"givenName": "Stale"})),
    );
    assert_eq!(
        (status, refused["code"].as_str()),
        (412, Some("preconditionFailed"))
    );
    let (status, listed, _) = call(
        "GET",
        "/tmf-api/party/v5/individual?givenName=Janet&fields=givenName",
        json!({}),
        None,
    );
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed,
        json!([{"id": "api-7", "@type": "Individual", "givenName": "Janet",
                "href": "/tmf-api/party/v5/individual/api-7"}])
    );
    assert_eq!(call("DELETE", item, json!({}), None).0, 204);
    assert_eq!(call("GET", item, json!({}), None).0, 404);
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
