//! Shared set-up of the tests against moto in server mode: SDK clients pointed at the servers
//! `scripts/test.sh` starts (`MOTO_ENDPOINT`, and one per region in `MOTO_APAC`, `MOTO_EU`,
//! `MOTO_NA`), tables and queues with unique names per test, and a fault injector in front of
//! the SDK's HTTP client.

#![allow(dead_code)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use host_aws::dynamo::DynamoStore;
use host_aws::sqs::{KIND_INGEST, SqsDeadLetters};
use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::store::{PartyStore, Provenance, StoredParty};
use integration_tests::samples::example;
use policy_types::PartyVersion;
use serde_json::json;

/// The endpoint of a moto server started by the test script.
pub fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests run against moto in server mode; run scripts/test.sh \
             (it installs moto in .venv, starts the servers and sets {var})"
        )
    })
}

/// The runtime the SDK's futures run on (the stores are called from outside its workers).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A unique name for this test's tables and queues (tests share a server and run in parallel).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// SDK configuration for one moto server: dummy credentials, a fast retry policy (the
/// standard one, 3 attempts, with millisecond backoff), and the given HTTP client.
pub fn sdk_config(endpoint: &str, http: Option<SharedHttpClient>) -> SdkConfig {
    let mut b = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(2))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"))
        .time_source(aws_smithy_async::time::SystemTimeSource::new());
    if let Some(http) = http {
        b = b.http_client(http);
    }
    b.build()
}

/// One region's stores on one moto server, with fresh names: a runtime for the SDK and the
/// region's [`Stores`].
pub struct Rig {
    pub rt: tokio::runtime::Runtime,
    pub stores: Stores,
}

/// One region's clients (behind a throttle injector), its party table with its stream, and its
/// dead-letter queue.
pub struct Stores {
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub dlq: String,
    pub throttle: Throttle,
}

impl Rig {
    /// On the moto server named by the environment variable `var`.
    pub fn new(var: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let throttle = Throttle::new(&["TransactWriteItems", "PutItem"]);
        let _guard = rt.enter();
        let config = sdk_config(&endpoint(var), Some(throttle.client()));
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let streams = aws_sdk_dynamodbstreams::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let table = unique("parties");
        let dlq = rt.block_on(async {
            create_party_table(&ddb, &table).await;
            create_queue(&sqs, &unique("dlq")).await
        });
        Rig {
            rt,
            stores: Stores {
                ddb,
                streams,
                sqs,
                table,
                dlq,
                throttle,
            },
        }
    }

    pub fn store(&self, region: &str) -> host_aws::dynamo::DynamoStore {
        host_aws::dynamo::DynamoStore::new(
            self.stores.ddb.clone(),
            &self.stores.table,
            region,
            self.rt.handle().clone(),
        )
    }

    pub fn letters(&self, kind: &'static str) -> host_aws::sqs::SqsDeadLetters {
        host_aws::sqs::SqsDeadLetters::new(
            self.stores.sqs.clone(),
            &self.stores.dlq,
            kind,
            self.rt.handle().clone(),
        )
    }

    /// Region `region`'s ingest on this rig's stores, with the default configuration.
    pub fn ingest(&self, region: &str) -> Ingest<DynamoStore, SqsDeadLetters> {
        Ingest::new(
            self.store(region),
            self.letters(KIND_INGEST),
            IngestConfig::new(region),
        )
    }

    /// Every message in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.rt
            .block_on(peek_all(&self.stores.sqs, &self.stores.dlq))
    }

    /// Every letter in the dead-letter queue, read back as the sink was given it (the payload
    /// is the body; tenant, region, reason and key are attributes).
    pub fn letters_kept(&self) -> Vec<host_core::store::DeadLetter> {
        self.dead_letters().iter().map(letter_of).collect()
    }

    /// The ARN of the party table's stream.
    pub fn stream_arn(&self) -> String {
        self.rt
            .block_on(stream_arn(&self.stores.ddb, &self.stores.table))
    }
}

/// A dead letter read back as the sink was given it (the payload is the body; tenant, region,
/// reason and key are attributes).
pub fn letter_of(m: &aws_sdk_sqs::types::Message) -> host_core::store::DeadLetter {
    let attr = |name: &str| attribute(m, name).map(str::to_owned);
    host_core::store::DeadLetter {
        tenant: attr("tenant").unwrap_or_default(),
        region: attr("region").unwrap_or_default(),
        reason: attr("reason").unwrap_or_default(),
        idempotency_key: attr("idempotencyKey"),
        payload: serde_json::from_str(m.body().unwrap_or_default())
            .expect("a dead letter's body is its JSON payload"),
    }
}

/// A string attribute of a dead letter (`kind`, `tenant`, `region`, `reason`, ...).
pub fn attribute<'a>(m: &'a aws_sdk_sqs::types::Message, name: &str) -> Option<&'a str> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
}

/// EU creates party `id` of the official example and changes its marital status; NA's
/// concurrent version is the create, then NA's status. Returns (EU's stored version, NA's),
/// NA's not written anywhere yet.
pub fn eu_and_concurrent_na(rig: &Rig, id: &str) -> (StoredParty, StoredParty) {
    let ingest = rig.ingest("eu");
    let mut create = example("IndividualCreateEvent_request");
    create["eventId"] = json!(format!("c1-{id}"));
    create["eventTime"] = json!("2025-01-01T00:00:00.000Z");
    create["event"]["individual"]["id"] = json!(id);
    let applied = ingest.handle("acme", &create, None, 1, u64::MAX);
    assert!(matches!(applied, Outcome::Applied { .. }), "{applied:?}");
    let created = ingest.store().party("acme", id).unwrap().unwrap();
    let mut change = example("IndividualAttributeValueChangeEvent_request");
    change["eventId"] = json!(format!("c2-{id}"));
    change["eventTime"] = json!("2025-01-01T00:00:05.000Z");
    change["event"]["individual"] =
        json!({"@type": "Individual", "id": id, "maritalStatus": "divorced"});
    let applied = ingest.handle("acme", &change, None, 2, u64::MAX);
    assert!(matches!(applied, Outcome::Applied { .. }), "{applied:?}");
    let eu = ingest.store().party("acme", id).unwrap().unwrap();
    (eu, na_validates(&created.version))
}

/// NA's version concurrent with everything after `base`: NA sets the status on it, and
/// stores it as NA's write.
pub fn na_validates(base: &PartyVersion) -> StoredParty {
    let mut na = base.clone();
    integration_tests::write(
        &mut na,
        "na",
        1_735_689_603_000,
        json!({"status": "validated"}),
    );
    StoredParty {
        version: na,
        provenance: Provenance {
            written_by: "na".into(),
            written_at_ms: 10,
            ..Provenance::default()
        },
        writes: Default::default(),
    }
}

/// The ARN of a table's stream.
pub async fn stream_arn(ddb: &aws_sdk_dynamodb::Client, table: &str) -> String {
    ddb.describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap()
}

/// Reads one shard from `iterator` (or from its start when `None`): the records and where to
/// go on from.
pub async fn read_shard(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
    iterator: Option<String>,
) -> (Vec<aws_sdk_dynamodbstreams::types::Record>, Option<String>) {
    let iterator = match iterator {
        Some(it) => it,
        None => streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap(),
    };
    let page = streams
        .get_records()
        .shard_iterator(iterator)
        .limit(1000)
        .send()
        .await
        .unwrap();
    (page.records.unwrap_or_default(), page.next_shard_iterator)
}

/// The shard ids of a stream.
pub async fn shards(streams: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Vec<String> {
    streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.shard_id)
        .collect()
}

/// One element of a table's key.
pub fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

/// A string attribute of a table's keys.
pub fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

/// A table keyed as the template's party and listener tables are: string `pk` and `sk`, billed
/// per request; the caller adds the rest and sends it.
pub fn pk_sk_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    client
        .create_table()
        .table_name(name)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .billing_mode(BillingMode::PayPerRequest)
}

/// A party table as the template defines it: `pk`/`sk`, streams with both images, TTL on
/// `expiresAt`.
pub async fn create_party_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    pk_sk_table(client, name)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("creating the party table");
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enabling TTL");
}

/// A conflict table like the template's: `pk`, `sk`, and the `byParty` index.
pub async fn create_conflict_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("partyKey"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name("byParty")
                .key_schema(key("partyKey", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .projection(
                    aws_sdk_dynamodb::types::Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("creating the conflict table");
}

pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("creating a queue")
        .queue_url
        .unwrap()
}

/// Every message in a queue (received and made visible again at once: a count, not a drain).
pub async fn peek_all(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let all = receive_all(client, url).await;
    for m in &all {
        client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    all
}

/// Every message of a queue, received: hidden from other receivers for 30 s.
pub async fn receive_all(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .send()
            .await
            .unwrap();
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
    }
    all
}

/// Answers the matching requests with a throttling error instead of sending them, while its
/// budget lasts: the SDK's own retry layer sees a real `ProvisionedThroughputExceededException`.
#[derive(Clone)]
pub struct Throttle {
    inner: SharedHttpClient,
    /// `X-Amz-Target` suffixes to throttle (e.g. `TransactWriteItems`).
    targets: Arc<Vec<String>>,
    remaining: Arc<AtomicU32>,
    pub injected: Arc<AtomicU32>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle").finish()
    }
}

impl Throttle {
    pub fn new(targets: &[&str]) -> Self {
        Throttle {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            targets: Arc::new(targets.iter().map(|t| t.to_string()).collect()),
            remaining: Arc::new(AtomicU32::new(0)),
            injected: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Throttles the next `n` matching requests.
    pub fn arm(&self, n: u32) {
        self.remaining.store(n, Ordering::SeqCst);
    }

    pub fn client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

#[derive(Debug)]
struct ThrottleConnector {
    throttle: Throttle,
    inner: SharedHttpConnector,
}

impl HttpClient for Throttle {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ThrottleConnector {
            throttle: self.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

impl HttpConnector for ThrottleConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let t = &self.throttle;
        let matches = t.targets.iter().any(|x| target.ends_with(x.as_str()));
        if matches
            && t.remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            t.injected.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded (injected by the test)"}"#,
                ),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            return HttpConnectorFuture::ready(Ok(response));
        }
        self.inner.call(request)
    }
}
pub mod global_tables;
pub mod regions;
