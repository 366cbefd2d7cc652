//! Three regions on three moto servers, with Global-Tables-style replication between their
//! party tables and each region's stream feeding its reconcile function.
//!
//! The replicator ([`super::global_tables`]) reads each region's DynamoDB stream (the real
//! Streams protocol) and copies every written item to the other regions the way Global Tables
//! does: asynchronously, item by item (not in transaction order), settling concurrent writes by
//! last-writer-wins on the write's stamp, here with a seeded schedule of delays, reordering and
//! duplicates, and partitions that hold a region's traffic until healed. A replicated write
//! appears on the receiving region's stream like any write, and is not replicated again.
//!
//! Where this differs from the real service: replication is pumped in rounds by the test (not
//! continuously); a write is stamped when the model reads it from the stream; and a region's
//! stream is read by two independent readers (the replicator and the reconcile function), where
//! AWS gives the replicator its own channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use host_aws::dynamo::{DynamoStore, party_from_item};
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

use super::global_tables::{Applied, Replica, StreamReader, Write};
use super::*;

pub type AwsIngest = Ingest<DynamoStore, SqsDeadLetters>;
pub type AwsReconcile = ReconcileFunction<DynamoStore, SqsDeadLetters>;

pub struct RegionRig {
    pub name: String,
    pub stores: Stores,
    pub ingest: Arc<AwsIngest>,
    pub reconcile: Arc<AwsReconcile>,
    /// Global Tables' end in this region, and the reconcile function's reader of the stream.
    replica: Replica,
    reconcile_stream: StreamReader,
}

/// One delivery of an item from one region to another.
#[derive(Clone, Debug)]
struct Pending {
    from: usize,
    to: usize,
    write: Write,
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

/// One region's clients of its moto server (`var` names the server's endpoint variable), its
/// party table `table` with its stream (created), and a new dead-letter queue.
pub struct RegionClients {
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dlq: String,
    pub stream_arn: String,
}

pub fn region_clients(
    rt: &Runtime,
    var: &str,
    table: &str,
    http: Option<aws_smithy_runtime_api::client::http::SharedHttpClient>,
) -> RegionClients {
    let _guard = rt.enter();
    let config = sdk_config(&endpoint(var), http);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (dlq, stream_arn) = rt.block_on(async {
        create_party_table(&ddb, table).await;
        let arn = stream_arn(&ddb, table).await;
        (create_queue(&sqs, &unique("dlq")).await, arn)
    });
    RegionClients {
        ddb,
        streams,
        sqs,
        dlq,
        stream_arn,
    }
}

impl World {
    pub fn new(seed: u64) -> Self {
        println!("multi-region world seed {seed} (replays this schedule)");
        let rt = runtime();
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
            let RegionClients {
                ddb,
                streams,
                sqs,
                dlq,
                stream_arn,
            } = region_clients(&rt, var, &table, Some(throttle.client()));
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
                stores: Stores {
                    ddb: ddb.clone(),
                    streams: streams.clone(),
                    sqs,
                    table: table.clone(),
                    dlq,
                    throttle,
                },
                ingest,
                reconcile: Arc::new(ReconcileFunction::new(reconcile, name)),
                replica: Replica::new(
                    name,
                    rt.handle().clone(),
                    ddb.clone(),
                    streams.clone(),
                    &table,
                    &stream_arn,
                    Arc::new(host_lambda::ingest_fn::now_ms),
                ),
                reconcile_stream: StreamReader::new(streams.clone(), &stream_arn),
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

    /// One round: stream records replicated (scheduled), due deliveries applied, each region's
    /// stream fed to its reconcile function. Returns how much happened.
    pub fn pump(&mut self) -> usize {
        self.round += 1;
        let mut activity = 0;
        for r in 0..self.regions.len() {
            for write in self.regions[r].replica.take_outbox() {
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
                            write: write.clone(),
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
                let records = self.regions[r].reconcile_stream.read(self.rt.handle());
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

    /// Global Tables in the receiving region: the incoming item is written unless the region
    /// holds a later write of it.
    fn deliver(&mut self, p: Pending) {
        match self.regions[p.to].replica.apply(&p.write) {
            Ok(Applied::Written {
                overwrote_party: true,
            }) => self.overwrites += 1,
            Ok(_) => {}
            Err(_) => {
                // Throttled or failed: Global Tables retries replication until it succeeds.
                self.seq += 1;
                self.pending.push(Pending {
                    due: self.round + 1,
                    seq: self.seq,
                    ..p
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
            self.regions[r].stores.ddb.clone(),
            &self.regions[r].stores.table,
            &self.regions[r].name,
            self.rt.handle().clone(),
        );
        store.party(tenant, id).unwrap().map(|p| p.version)
    }

    /// Every message in a region's dead-letter queue.
    pub fn dead_letters(&self, r: usize) -> Vec<aws_sdk_sqs::types::Message> {
        self.rt.block_on(peek_all(
            &self.regions[r].stores.sqs,
            &self.regions[r].stores.dlq,
        ))
    }
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
