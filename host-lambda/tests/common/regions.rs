//! Three regions on three moto servers, with Global-Tables-style replication between their
//! party tables and each region's stream feeding its reconcile function.
//!
//! The replicator reads each region's DynamoDB stream (the real Streams protocol) and copies
//! every written item to the other regions the way Global Tables does: asynchronously, item by
//! item (not in transaction order), settling concurrent writes by last-writer-wins on the
//! write's timestamp, with a seeded schedule of delays, reordering and duplicates, and
//! partitions that hold a region's traffic until healed. A replicated write appears on the
//! receiving region's stream like any write, and is not replicated again.
//!
//! Where this differs from the real service: replication is pumped in rounds by the test (not
//! continuously); the write timestamp is the item's `writtenAtMs` (Global Tables uses its own
//! internal timestamp); and a region's stream is read by two independent readers (the
//! replicator and the reconcile function), where AWS gives the replicator its own channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use host_aws::dynamo::{DynamoStore, PARTY_SK, party_from_item};
use host_aws::sqs::{KIND_INGEST, KIND_RECONCILE, SqsDeadLetters};
use host_core::ingest::{Ingest, IngestConfig};
use host_core::reconcile::Reconcile;
use host_core::store::PartyStore;
use host_core::{ActivePolicy, Resolver, TenantPolicies};
use host_lambda::reconcile_fn::ReconcileFunction;
use policy_types::PartyVersion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::runtime::Runtime;

use super::*;

pub type AwsIngest = Ingest<DynamoStore, SqsDeadLetters>;
pub type AwsReconcile = ReconcileFunction<DynamoStore, SqsDeadLetters>;

pub struct RegionRig {
    pub name: String,
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub dlq: String,
    pub throttle: Throttle,
    pub ingest: Arc<AwsIngest>,
    pub reconcile: Arc<AwsReconcile>,
    stream_arn: String,
    /// Shard id → next iterator, for the replicator's reader and the reconcile reader.
    replicator_at: HashMap<String, Option<String>>,
    reconcile_at: HashMap<String, Option<String>>,
}

/// One delivery of an item from one region to another.
#[derive(Clone, Debug)]
struct Pending {
    from: usize,
    to: usize,
    item: HashMap<String, AttributeValue>,
    due: usize,
    /// Order of scheduling (for traces).
    #[allow(dead_code)]
    seq: usize,
}

pub struct World {
    pub rt: Runtime,
    pub regions: Vec<RegionRig>,
    pub seed: u64,
    rng: ChaCha8Rng,
    pending: Vec<Pending>,
    seq: usize,
    pub round: usize,
    /// Regions cut off from replication (their traffic is held, not lost).
    pub cut_off: Vec<bool>,
    pub reconcile_enabled: bool,
    /// Replicated items that overwrote an item last-writer-wins (what plain Global Tables loses
    /// data on when the overwritten version was concurrent).
    pub overwrites: usize,
    pub max_delay: usize,
    /// The conflict log every region's reconcile records into (one table, as the global
    /// table is one table: on the shared server).
    pub conflicts: Arc<host_aws::conflict_log::DynamoConflictLog>,
    pub duplicate_rate: f64,
}

pub const REGIONS: [(&str, &str); 3] =
    [("apac", "MOTO_APAC"), ("eu", "MOTO_EU"), ("na", "MOTO_NA")];

impl World {
    pub fn new(seed: u64) -> Self {
        println!("multi-region world seed {seed} (replays this schedule)");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Arc::new(integration_tests::engine());
        let policies = Arc::new(TenantPolicies::new());
        policies.set_default(ActivePolicy::new(integration_tests::default_policy(
            &engine,
        )));
        let table = unique("parties");
        let conflicts = {
            let _guard = rt.enter();
            let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint("MOTO_ENDPOINT"), None));
            let name = unique("conflicts");
            rt.block_on(create_conflict_table(&ddb, &name));
            Arc::new(host_aws::conflict_log::DynamoConflictLog::new(
                ddb,
                name,
                rt.handle().clone(),
            ))
        };
        let mut regions = Vec::new();
        for (name, var) in REGIONS {
            let throttle = Throttle::new(&["TransactWriteItems", "PutItem"]);
            let _guard = rt.enter();
            let config = sdk_config(&endpoint(var), Some(throttle.client()));
            let ddb = aws_sdk_dynamodb::Client::new(&config);
            let streams = aws_sdk_dynamodbstreams::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            let (dlq, stream_arn) = rt.block_on(async {
                create_party_table(&ddb, &table).await;
                let arn = stream_arn(&ddb, &table).await;
                (create_queue(&sqs, &unique("dlq")).await, arn)
            });
            let store = || DynamoStore::new(ddb.clone(), &table, name, rt.handle().clone());
            let letters = |kind| SqsDeadLetters::new(sqs.clone(), &dlq, kind, rt.handle().clone());
            let resolver = Arc::new(Resolver::new(policies.clone(), name));
            let mut config = IngestConfig::new(name);
            config.retry_backoff_ms = 2;
            let ingest = Arc::new(
                Ingest::new(store(), letters(KIND_INGEST), config).with_resolver(resolver.clone()),
            );
            let mut reconcile = Reconcile::new(store(), letters(KIND_RECONCILE), resolver)
                .with_conflict_log(conflicts.clone());
            reconcile.retry_backoff_ms = 2;
            regions.push(RegionRig {
                name: name.to_owned(),
                ddb,
                streams,
                sqs,
                table: table.clone(),
                dlq,
                throttle,
                ingest,
                reconcile: Arc::new(ReconcileFunction::new(reconcile, name)),
                stream_arn,
                replicator_at: HashMap::new(),
                reconcile_at: HashMap::new(),
            });
        }
        World {
            rt,
            regions,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            pending: Vec::new(),
            seq: 0,
            round: 0,
            cut_off: vec![false; 3],
            reconcile_enabled: true,
            overwrites: 0,
            max_delay: 3,
            conflicts,
            duplicate_rate: 0.1,
        }
    }

    /// New stream records of region `r` for one of its two readers.
    fn read_stream(
        &mut self,
        r: usize,
        replicator: bool,
    ) -> Vec<aws_sdk_dynamodbstreams::types::Record> {
        let region = &mut self.regions[r];
        let streams = region.streams.clone();
        let arn = region.stream_arn.clone();
        let at = if replicator {
            &mut region.replicator_at
        } else {
            &mut region.reconcile_at
        };
        self.rt.block_on(async {
            // moto keeps one shard per table: the shards are listed once per reader.
            if at.is_empty() {
                for id in shards(&streams, &arn).await {
                    at.insert(id, None);
                }
            }
            let mut out = Vec::new();
            for (shard, iterator) in at.iter_mut() {
                let (records, next) = read_shard(&streams, &arn, shard, iterator.take()).await;
                out.extend(records);
                *iterator = next;
            }
            out
        })
    }

    /// One round: stream records replicated (scheduled), due deliveries applied, each region's
    /// stream fed to its reconcile function. Returns how much happened.
    pub fn pump(&mut self) -> usize {
        self.round += 1;
        let mut activity = 0;
        for r in 0..self.regions.len() {
            for record in self.read_stream(r, true) {
                let Some(image) = record.dynamodb.and_then(|d| d.new_image) else {
                    continue;
                };
                if image.contains_key("replicatedFrom") {
                    continue; // a replicated write is not replicated again
                }
                let item = to_item(&image);
                for to in 0..self.regions.len() {
                    if to == r {
                        continue;
                    }
                    let copies = if self.rng.random_bool(self.duplicate_rate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        self.seq += 1;
                        let due = self.round + self.rng.random_range(0..=self.max_delay);
                        self.pending.push(Pending {
                            from: r,
                            to,
                            item: item.clone(),
                            due,
                            seq: self.seq,
                        });
                    }
                }
                activity += 1;
            }
        }
        // Due deliveries in a shuffled order (replication is not in write order across items).
        let mut due: Vec<Pending> = Vec::new();
        let mut held = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.due <= self.round && !self.cut_off[p.from] && !self.cut_off[p.to] {
                due.push(p);
            } else {
                held.push(p);
            }
        }
        self.pending = held;
        for i in (1..due.len()).rev() {
            let j = self.rng.random_range(0..=i);
            due.swap(i, j);
        }
        activity += due.len();
        for p in due {
            self.deliver(p);
        }
        if self.reconcile_enabled {
            for r in 0..self.regions.len() {
                let records = self.read_stream(r, false);
                if records.is_empty() {
                    continue;
                }
                activity += records.len();
                let batch = host_lambda::stream_failures::stream_event(&records).unwrap();
                let f = self.regions[r].reconcile.clone();
                let out = self.rt.block_on(f.handle(batch));
                assert_eq!(
                    out.batch_item_failures,
                    vec![],
                    "every record is resolved or kept"
                );
            }
        }
        activity
    }

    /// Global Tables in the receiving region: the incoming item is written unless the stored
    /// one was written later (last writer wins on the write timestamp, then on the region).
    fn deliver(&mut self, p: Pending) {
        let to = &self.regions[p.to];
        let original = p.item.clone();
        let mut item = p.item;
        let ts = item
            .get("writtenAtMs")
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or("0".into());
        let by = item
            .get("writtenBy")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        item.insert(
            "replicatedFrom".into(),
            AttributeValue::S(self.regions[p.from].name.clone()),
        );
        let out = self.rt.block_on(
            to.ddb
                .put_item()
                .table_name(&to.table)
                .set_item(Some(item))
                .condition_expression(
                    "attribute_not_exists(pk) OR writtenAtMs < :ts OR (writtenAtMs = :ts AND writtenBy < :by)",
                )
                .expression_attribute_values(":ts", AttributeValue::N(ts))
                .expression_attribute_values(":by", AttributeValue::S(by))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send(),
        );
        match out {
            Ok(o) => {
                if o.attributes.is_some_and(|a| {
                    a.get("sk").and_then(|s| s.as_s().ok()).map(String::as_str) == Some(PARTY_SK)
                }) {
                    self.overwrites += 1;
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => {
                // Throttled or failed: Global Tables retries replication until it succeeds.
                let _ = e;
                self.seq += 1;
                self.pending.push(Pending {
                    from: p.from,
                    to: p.to,
                    item: original,
                    due: self.round + 1,
                    seq: self.seq,
                });
            }
        }
    }

    /// Pumps until nothing moves for a few rounds (everything replicated and reconciled).
    pub fn settle(&mut self) {
        let mut quiet = 0;
        for _ in 0..400 {
            let activity = self.pump();
            if std::env::var("TRACE").is_ok() {
                println!(
                    "round {}: activity {activity}, pending {}",
                    self.round,
                    self.pending.len()
                );
            }
            if activity == 0 && self.pending.is_empty() {
                quiet += 1;
                if quiet >= 3 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!(
            "seed {}: the regions did not settle in 400 rounds",
            self.seed
        );
    }

    pub fn party(&self, r: usize, tenant: &str, id: &str) -> Option<PartyVersion> {
        let store = DynamoStore::new(
            self.regions[r].ddb.clone(),
            &self.regions[r].table,
            &self.regions[r].name,
            self.rt.handle().clone(),
        );
        store.party(tenant, id).unwrap().map(|p| p.version)
    }

    /// Every message in a region's dead-letter queue.
    pub fn dead_letters(&self, r: usize) -> Vec<aws_sdk_sqs::types::Message> {
        self.rt
            .block_on(peek_all(&self.regions[r].sqs, &self.regions[r].dlq))
    }
}

/// A stream image (the Streams API's attribute type) as a DynamoDB item.
pub fn to_item(image: &HashMap<String, StreamValue>) -> HashMap<String, AttributeValue> {
    serde_dynamo::Item::from(image.clone()).into()
}

/// Stream records as the Lambda event source delivers them: the redrive function's reading of
/// given-up batches does the same.
#[allow(unused_imports)]
pub use host_lambda::stream_failures::record_json;

/// Parses a stored party item (for checks).
pub fn party_of(item: &HashMap<String, AttributeValue>) -> PartyVersion {
    party_from_item(item.clone()).unwrap().version
}

pub type Shared<T> = Arc<Mutex<T>>;
