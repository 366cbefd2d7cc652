//! The simulation's schedules on the wire: the seeded schedules `host-cli simulate` runs in the
//! embedded world run here on DynamoDB, DynamoDB Streams and SQS (three moto servers, one per
//! region), and the oracle gives the same verdicts.
//!
//! Only the world differs ([`host_sim::backend`]): each region's table is a `DynamoStore` on
//! its region's server, its dead letters an SQS queue, its stream the table's DynamoDB stream
//! read through the Streams API, and Global Tables the model the multi-region tests replicate
//! with (`common::global_tables`: writes stamped as the embedded world stamps them, the later
//! stamp wins the whole item). The clients, faults, schedule, ingest, reconcile, redrive and
//! oracle are the simulation's own, unchanged.
//!
//! Where the wire differs from the embedded world (so a seed's figures, not its verdict, may
//! differ): a write is stamped when the model reads it from the stream, not when it is made;
//! the order of a commit's items on the stream is DynamoDB's.
//!
//! Seeds print; `SIM_SEED=N` moves them.

mod common;

use std::sync::Arc;

use common::global_tables::{Applied, Replica, StreamReader, Write, text, to_item};
use common::regions::{REGIONS, RegionClients, region_clients};
use common::*;
use host_aws::conflict_log::DynamoConflictLog;
use host_aws::dynamo::{DynamoStore, PARTY_SK, party_from_item};
use host_aws::sqs::{KIND_INGEST, KIND_RECONCILE, SqsDeadLetters};
use host_core::conflict::CapturedConflict;
use host_core::store::DeadLetter;
use host_core::store::memory::Clock;
use host_core::{Policy, PolicyEngine};
use host_sim::backend::{Backend, RegionStores, StreamRecord, WriteStamp};
use host_sim::{SimConfig, SimPolicies, SimReport, run, run_on};
use tokio::runtime::Runtime;

/// The AWS world on the moto servers: a party table with its stream and a dead-letter queue per
/// region, created afresh for each run.
struct Aws {
    rt: Arc<Runtime>,
    table: String,
}

impl Aws {
    fn new(rt: Arc<Runtime>) -> Self {
        Aws {
            rt,
            table: unique("sim-parties"),
        }
    }
}

/// One region on its moto server: its end of the Global Tables model and reconcile's reader of
/// its stream.
struct AwsRegion {
    rt: Arc<Runtime>,
    sqs: aws_sdk_sqs::Client,
    dlq: String,
    store: Arc<DynamoStore>,
    replica: Replica,
    stream: StreamReader,
    seq: u64,
}

impl Backend for Aws {
    type Region = AwsRegion;

    fn region(&self, name: &str, clock: Clock) -> AwsRegion {
        let var = REGIONS
            .iter()
            .find(|(region, _)| *region == name)
            .map(|(_, var)| *var)
            .unwrap_or_else(|| panic!("no moto server for region {name}"));
        let RegionClients {
            ddb,
            streams,
            sqs,
            dlq,
            stream_arn: arn,
        } = region_clients(&self.rt, var, &self.table, None);
        let rt = self.rt.handle().clone();
        AwsRegion {
            rt: self.rt.clone(),
            store: Arc::new(DynamoStore::new(ddb.clone(), &self.table, name, rt.clone())),
            replica: Replica::new(name, rt, ddb, streams.clone(), &self.table, &arn, clock),
            stream: StreamReader::new(streams, &arn),
            sqs,
            dlq,
            seq: 0,
        }
    }
}

impl AwsRegion {
    fn letters(&self, kind: &'static str) -> SqsDeadLetters {
        SqsDeadLetters::new(self.sqs.clone(), &self.dlq, kind, self.rt.handle().clone())
    }
}

impl RegionStores for AwsRegion {
    type Table = DynamoStore;
    type Letters = SqsDeadLetters;
    type Write = Write;

    fn table(&self) -> Arc<DynamoStore> {
        self.store.clone()
    }

    fn ingest_letters(&self) -> SqsDeadLetters {
        self.letters(KIND_INGEST)
    }

    fn reconcile_letters(&self) -> SqsDeadLetters {
        self.letters(KIND_RECONCILE)
    }

    fn take_outbox(&mut self) -> Vec<Write> {
        self.replica.take_outbox()
    }

    fn party_of(write: &Write) -> Option<&str> {
        (text(&write.item, "sk") == PARTY_SK)
            .then(|| write.item.get("partyId").and_then(|v| v.as_s().ok()))
            .flatten()
            .map(String::as_str)
    }

    fn apply_replicated(&mut self, write: &Write) -> bool {
        match self.replica.apply(write) {
            Ok(applied) => applied != Applied::Stale,
            Err(e) => panic!("{e}"),
        }
    }

    fn take_stream(&mut self) -> Vec<StreamRecord> {
        let mut out = Vec::new();
        for record in self.stream.read(self.rt.handle()) {
            let Some(data) = record.dynamodb else {
                continue;
            };
            let Some(new) = data.new_image.map(|image| to_item(&image)) else {
                continue;
            };
            if text(&new, "sk") != PARTY_SK {
                continue;
            }
            let new = party_from_item(new).expect("a party image reads");
            let old = data
                .old_image
                .map(|image| party_from_item(to_item(&image)).expect("a party image reads"));
            self.seq += 1;
            // The record's stamp is the item's own write time and region: the simulation reads
            // only the two images (the replication stamps are the model's, in `Replica`).
            out.push(StreamRecord {
                seq: self.seq,
                old,
                stamp: WriteStamp {
                    at_ms: new.provenance.written_at_ms,
                    seq: self.seq,
                    region: new.provenance.written_by.clone(),
                },
                new,
            });
        }
        out
    }

    fn take_letters(&mut self) -> Vec<DeadLetter> {
        let (sqs, dlq) = (&self.sqs, &self.dlq);
        self.rt.block_on(async {
            let messages = receive_all(sqs, dlq).await;
            for m in &messages {
                let handle = m.receipt_handle.clone().unwrap_or_default();
                let deleted = sqs.delete_message().queue_url(dlq).receipt_handle(handle);
                deleted.send().await.unwrap();
            }
            messages.iter().map(letter_of).collect()
        })
    }

    fn keep_letter(&mut self, letter: DeadLetter) {
        use host_core::store::DeadLetterSink;
        let conflict = serde_json::from_value::<CapturedConflict>(letter.payload.clone()).is_ok();
        let kind = if conflict {
            KIND_RECONCILE
        } else {
            KIND_INGEST
        };
        self.letters(kind).send(&letter).unwrap();
    }

    fn letters_left(&self) -> usize {
        self.rt.block_on(peek_all(&self.sqs, &self.dlq)).len()
    }
}

fn load(engine: &PolicyEngine, bytes: &[u8]) -> Arc<Policy> {
    Arc::new(Policy::load(engine, bytes, None).unwrap())
}

/// A run's verdict and headline figures, one line.
fn summary(r: &SimReport) -> String {
    format!(
        "{} — events {}, applied {}, conflicts {}, dominated {}, acknowledged {}, superseded {}, \
         lost {}, dead-lettered {}, redriven {}, crashes {}+{}, races {}",
        if r.ok() { "ok" } else { "FAILED" },
        r.events,
        r.writes,
        r.conflicts,
        r.dominated,
        r.acknowledged,
        r.superseded,
        r.lost.len(),
        r.dead_lettered,
        r.redriven,
        r.claim_crashes,
        r.reconcile_crashes,
        r.races,
    )
}

/// Runs a schedule in both worlds and returns both reports (embedded, AWS).
fn both(
    rt: &Arc<Runtime>,
    config: &SimConfig,
    policies: &SimPolicies,
    with_log: bool,
) -> (SimReport, SimReport) {
    let embedded = run(config, policies);
    let mut config = config.clone();
    if with_log {
        // Conflicts recorded on DynamoDB too, as reconcile records production's.
        let _guard = rt.enter();
        let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint("MOTO_ENDPOINT"), None));
        let name = unique("sim-conflicts");
        rt.block_on(create_conflict_table(&ddb, &name));
        config.conflict_log = Some(Arc::new(DynamoConflictLog::new(
            ddb,
            name,
            rt.handle().clone(),
        )));
    }
    let aws = run_on(&Aws::new(rt.clone()), &config, policies);
    println!("seed {}: embedded {}", config.seed, summary(&embedded));
    println!("seed {}: aws      {}", config.seed, summary(&aws));
    (embedded, aws)
}

fn first_seed() -> u64 {
    integration_tests::env_seed("SIM_SEED").unwrap_or(1)
}

/// Seeded schedules with every fault, the default policy swapped for NA's status authority
/// half-way, pass in both worlds: the regions converge and nothing acknowledged is lost.
#[test]
fn seeded_schedules_pass_on_the_wire_as_in_the_embedded_world() {
    let rt = Arc::new(runtime());
    let engine = integration_tests::engine();
    let policies = SimPolicies {
        first: load(&engine, default_policy_artifact::DEFAULT_POLICY),
        second: Some(load(&engine, default_policy_artifact::NA_STATUS_POLICY)),
        flaky: None,
        config: "{}".into(),
    };
    let first = first_seed();
    println!("seeds {first}..{} (SIM_SEED=N moves them)", first + 4);
    for seed in first..first + 4 {
        let config = SimConfig {
            swap_at: Some(30),
            ..SimConfig::new(seed)
        };
        let (embedded, aws) = both(&rt, &config, &policies, seed == first);
        for (world, r) in [("embedded", &embedded), ("aws", &aws)] {
            assert!(
                r.ok(),
                "seed {seed} in the {world} world: {:?}; lost {:?}\nrerun: SIM_SEED={seed} \
                 scripts/with-moto.sh cargo test -p host-lambda --test simulation_aws",
                r.violations,
                r.lost
            );
        }
        assert!(aws.converged && aws.acknowledged > 0 && aws.writes > 0);
    }
}

/// A keep-local policy drops what it does not keep: the schedules the embedded world fails it
/// on fail on the wire too, for the same reason.
#[test]
fn a_keep_local_policy_fails_on_the_wire_as_in_the_embedded_world() {
    let rt = Arc::new(runtime());
    let engine = integration_tests::engine();
    let policies = SimPolicies {
        first: integration_tests::load(&engine, integration_tests::guests::KEEP_LOCAL).unwrap(),
        second: None,
        flaky: None,
        config: "{}".into(),
    };
    let first = first_seed();
    let failing = (first..first + 10)
        .find(|&seed| !run(&SimConfig::new(seed), &policies).ok())
        .unwrap_or_else(|| panic!("keep-local passed seeds {first}..{}", first + 10));
    let (embedded, aws) = both(&rt, &SimConfig::new(failing), &policies, false);
    assert!(!embedded.ok());
    assert!(
        !aws.ok(),
        "seed {failing}: keep-local passed on the wire\nrerun: SIM_SEED={failing} \
         scripts/with-moto.sh cargo test -p host-lambda --test simulation_aws"
    );
    assert!(
        aws.violations.iter().any(|v| v.contains("lost silently")),
        "seed {failing}: {:?}",
        aws.violations
    );
}
