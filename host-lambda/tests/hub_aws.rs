//! The hub on AWS (moto): a listener registered through the API function's `POST hub` (kept in
//! the DynamoDB listener table) receives, from the notifier function fed the party table's
//! stream, the TMF632 event of each change written through the API, at a callback served here
//! on 127.0.0.1; another tenant neither hears it nor can remove it; after `DELETE hub/{id}`
//! nothing more is delivered; a callback that keeps failing is tried a few times and the
//! notification ends in the notifier's dead-letter queue with the reason.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use common::regions::record_json;
use common::*;
use host_aws::dynamo::DynamoStore;
use host_aws::hub::DynamoHub;
use host_aws::sqs::{KIND_INGEST, KIND_NOTIFY, SqsDeadLetters};
use host_core::ingest::{Ingest, IngestConfig};
use host_lambda::ingest_fn::{IngestFunction, now_ms};
use host_lambda::notify_fn::{Callbacks, NotifyFunction};
use serde_json::{Value, json};

/// A listener table as the template defines it: `pk`, `sk`.
async fn create_listener_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    pk_sk_table(client, name)
        .send()
        .await
        .expect("creating the listener table");
}

/// What the callback server received: the bodies POSTed to `/ok/{name}`, and how many times
/// `/fail` was called (it always answers 500).
#[derive(Default)]
struct Received {
    events: Mutex<Vec<(String, Value)>>,
    failed_calls: AtomicU32,
}

impl Received {
    fn of(&self, name: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

/// The region `eu` on a rig: the API function with the hub, the notifier, the callback server.
struct Hub {
    rig: Rig,
    listeners: String,
    api: IngestFunction<DynamoStore, SqsDeadLetters>,
    notifier: NotifyFunction<SqsDeadLetters>,
    notify_dlq: String,
    callbacks: String,
    received: Arc<Received>,
    /// The stream records already fed to the notifier.
    fed: HashSet<String>,
}

impl Hub {
    fn new() -> Self {
        let rig = Rig::new("MOTO_ENDPOINT");
        let table = unique("listeners");
        let notify_dlq = rig.rt.block_on(async {
            create_listener_table(&rig.stores.ddb, &table).await;
            create_queue(&rig.stores.sqs, &unique("notify-dlq")).await
        });
        let hub = DynamoHub::new(rig.stores.ddb.clone(), &table, rig.rt.handle().clone());
        let mut config = IngestConfig::new("eu");
        config.retry_backoff_ms = 1;
        let ingest = Ingest::new(rig.store("eu"), rig.letters(KIND_INGEST), config);
        let api = IngestFunction::new(ingest, "eu").with_hub(Arc::new(hub.clone()));
        let letters = SqsDeadLetters::new(
            rig.stores.sqs.clone(),
            &notify_dlq,
            KIND_NOTIFY,
            rig.rt.handle().clone(),
        );
        let callbacks = {
            let _guard = rig.rt.enter();
            Callbacks::new(Duration::from_secs(2)).expect("an HTTP client")
        };
        let mut notifier = NotifyFunction::new(hub, letters, callbacks, "eu");
        notifier.backoff = Duration::from_millis(1);
        notifier.attempts = 3;

        let received = Arc::new(Received::default());
        let app = {
            use axum::extract::{Path, State};
            use axum::http::StatusCode;
            use axum::routing::post;
            axum::Router::new()
                .route(
                    "/ok/{name}",
                    post(
                        |State(r): State<Arc<Received>>,
                         Path(name): Path<String>,
                         axum::Json(event): axum::Json<Value>| async move {
                            r.events.lock().unwrap().push((name, event));
                            StatusCode::NO_CONTENT
                        },
                    ),
                )
                .route(
                    "/fail",
                    post(|State(r): State<Arc<Received>>| async move {
                        r.failed_calls.fetch_add(1, Ordering::SeqCst);
                        StatusCode::INTERNAL_SERVER_ERROR
                    }),
                )
                .with_state(received.clone())
        };
        let listener = rig
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let callbacks = format!("http://{}", listener.local_addr().unwrap());
        rig.rt
            .spawn(async move { axum::serve(listener, app).await });
        Hub {
            listeners: table,
            rig,
            api,
            notifier,
            notify_dlq,
            callbacks,
            received,
            fed: HashSet::new(),
        }
    }

    /// One API Gateway request for `tenant`: (status, body).
    fn call(&self, tenant: &str, method: &str, path: &str, body: Option<Value>) -> (u64, Value) {
        let v = json!({
            "version": "2.0", "routeKey": "ANY /tmf-api/party/{proxy+}", "rawPath": path,
            "headers": {}, "body": body.map(|b| b.to_string()), "isBase64Encoded": false,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "r",
                               "routeKey": "ANY", "stage": "$default",
                               "authorizer": {"jwt": {"claims": {"tenant": tenant}, "scopes": null}}}
        });
        let event = serde_json::from_value(v).expect("an API Gateway request");
        let out = self
            .rig
            .rt
            .block_on(self.api.handle(event, now_ms() + 60_000));
        let out = serde_json::to_value(out).unwrap();
        let body = out["body"]
            .as_str()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap_or(Value::Null);
        (out["statusCode"].as_u64().unwrap(), body)
    }

    /// Registers a listener of `tenant` calling back `path` on the server here; its id.
    fn register(&self, tenant: &str, path: &str) -> String {
        let (status, body) = self.call(
            tenant,
            "POST",
            "/tmf-api/party/v5/hub",
            Some(json!({"callback": format!("{}{path}", self.callbacks)})),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates acme's party hub-1 (Jane) through the API.
    fn create_jane(&self) {
        let (status, _) = self.call(
            "acme",
            "POST",
            "/tmf-api/party/v5/individual",
            Some(json!({"id": "hub-1", "givenName": "Jane"})),
        );
        assert_eq!(status, 201);
    }

    /// Feeds the stream records written since the last call to the notifier; its answer.
    fn notify(&mut self) -> Value {
        self.notify_records().0
    }

    /// The same, with the records fed (as Lambda delivers them).
    fn notify_records(&mut self) -> (Value, Vec<Value>) {
        let arn = self.rig.stream_arn();
        let records = self.rig.rt.block_on(async {
            let mut records = Vec::new();
            for shard in shards(&self.rig.stores.streams, &arn).await {
                records.extend(
                    read_shard(&self.rig.stores.streams, &arn, &shard, None)
                        .await
                        .0,
                );
            }
            records
        });
        let fresh: Vec<Value> = records
            .iter()
            .map(record_json)
            .filter(|r| {
                self.fed
                    .insert(r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
            })
            .collect();
        let batch: DynamoDbEvent =
            serde_json::from_value(json!({"Records": fresh})).expect("a stream batch");
        let out = self.rig.rt.block_on(self.notifier.handle(batch));
        (serde_json::to_value(out).unwrap(), fresh)
    }

    fn dead_letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.rig
            .rt
            .block_on(peek_all(&self.rig.stores.sqs, &self.notify_dlq))
    }
}

const ITEM: &str = "/tmf-api/party/v5/individual/hub-1";

#[test]
fn a_listener_receives_the_event_of_each_change_until_it_is_removed() {
    let mut h = Hub::new();
    let acme = h.register("acme", "/ok/acme");
    let globex = h.register("globex", "/ok/globex");
    assert_ne!(acme, globex);

    let (status, created) = h.call(
        "acme",
        "POST",
        "/tmf-api/party/v5/individual",
        Some(json!({"id": "hub-1", "givenName": "Jane", "familyName": "Doe"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(h.notify(), json!({"batchItemFailures": []}));
    let got = h.received.of("acme");
    assert_eq!(got.len(), 1, "one write, one notification: {got:?}");
    let e = &got[0];
    assert_eq!(e["@type"], json!("IndividualCreateEvent"));
    assert_eq!(e["eventType"], json!("IndividualCreateEvent"));
    assert!(e["eventId"].as_str().unwrap().starts_with("eu-"), "{e}");
    assert!(
        humantime::parse_rfc3339(e["eventTime"].as_str().unwrap()).is_ok(),
        "{e}"
    );
    let party = &e["event"]["individual"];
    assert_eq!(
        (&party["id"], &party["givenName"], &party["familyName"]),
        (&json!("hub-1"), &json!("Jane"), &json!("Doe"))
    );
    assert_eq!(party["@type"], json!("Individual"));
    assert!(
        h.received.of("globex").is_empty(),
        "another tenant's listener hears nothing of acme's parties"
    );

    let (status, _) = h.call("acme", "PATCH", ITEM, Some(json!({"givenName": "Janet"})));
    assert_eq!(status, 200);
    assert_eq!(h.notify(), json!({"batchItemFailures": []}));
    let got = h.received.of("acme");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[1]["eventType"],
        json!("IndividualAttributeValueChangeEvent")
    );
    assert_eq!(got[1]["event"]["individual"]["givenName"], json!("Janet"));

    // Another tenant cannot remove acme's listener: to globex, it does not exist.
    let (status, body) = h.call(
        "globex",
        "DELETE",
        &format!("/tmf-api/party/v5/hub/{acme}"),
        None,
    );
    assert_eq!((status, body["code"].as_str()), (404, Some("notFound")));
    let (status, _) = h.call("acme", "PATCH", ITEM, Some(json!({"givenName": "Janine"})));
    assert_eq!(status, 200);
    h.notify();
    assert_eq!(h.received.of("acme").len(), 3, "still registered");

    // Removed by its tenant: nothing more is delivered to it.
    let path = format!("/tmf-api/party/v5/hub/{acme}");
    assert_eq!(h.call("acme", "DELETE", &path, None).0, 204);
    assert_eq!(h.call("acme", "DELETE", ITEM, None).0, 204);
    assert_eq!(h.notify(), json!({"batchItemFailures": []}));
    assert_eq!(
        h.received.of("acme").len(),
        3,
        "no delivery after DELETE hub"
    );
    assert_eq!(h.call("acme", "DELETE", &path, None).0, 404, "gone");
    assert!(h.received.of("globex").is_empty());
    assert!(h.dead_letters().is_empty());
}

#[test]
fn a_callback_that_keeps_failing_ends_in_the_dead_letter_queue_with_the_reason() {
    let mut h = Hub::new();
    let failing = h.register("acme", "/fail");
    h.register("acme", "/ok/acme");
    h.create_jane();
    // Kept, so the shard moves on.
    assert_eq!(h.notify(), json!({"batchItemFailures": []}));
    assert_eq!(
        h.received.failed_calls.load(Ordering::SeqCst),
        3,
        "tried as many times as the notifier's attempts"
    );
    assert_eq!(h.received.of("acme").len(), 1, "the other listener got it");

    let kept = h.dead_letters();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let attr = |name: &str| attribute(&kept[0], name).unwrap();
    assert_eq!(attr("kind"), "notify");
    assert_eq!(attr("tenant"), "acme");
    assert_eq!(attr("region"), "eu");
    let reason = attr("reason");
    assert!(reason.contains(&failing), "names the listener: {reason}");
    assert!(
        reason.contains("500") && reason.contains("3 attempts"),
        "says why: {reason}"
    );
    let body: Value = serde_json::from_str(kept[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["listener"], json!(failing));
    assert_eq!(body["event"]["eventType"], json!("IndividualCreateEvent"));
    assert_eq!(body["event"]["event"]["individual"]["id"], json!("hub-1"));
    assert!(
        body["callback"].as_str().unwrap().ends_with("/fail"),
        "{body}"
    );
}

/// When the listeners cannot be read, the record is reported by its sequence number (the first
/// party record: the batch ends there) for Lambda to deliver again, and nothing is dead-lettered.
#[test]
fn a_record_whose_listeners_cannot_be_read_is_reported_by_its_sequence_number() {
    let mut h = Hub::new();
    h.register("acme", "/ok/acme");
    h.create_jane();
    h.rig
        .rt
        .block_on(
            h.rig
                .stores
                .ddb
                .delete_table()
                .table_name(&h.listeners)
                .send(),
        )
        .unwrap();
    let (answer, fed) = h.notify_records();
    let first_party = fed
        .iter()
        .find(|r| r["dynamodb"]["Keys"]["sk"]["S"] == json!("PARTY"))
        .expect("the party's record");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [
            {"itemIdentifier": first_party["dynamodb"]["SequenceNumber"]}
        ]})
    );
    assert!(h.received.of("acme").is_empty());
    assert!(h.dead_letters().is_empty());
}
