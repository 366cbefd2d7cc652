//! The seeded, deterministic simulation: the embedded world under a scheduler that injects
//! faults, running the shipped pipeline and judged by an oracle that shares no code with it.
//!
//! Each region is the host core's own parts over a world's stores ([`backend`]: the embedded
//! world's [`MemoryStore::replica`](host_core::store::memory::MemoryStore::replica), or
//! DynamoDB, Streams and SQS in host-lambda's tests): its table (wrapped by
//! [`faults::FaultyStore`], which can crash a call or let another writer commit first), the
//! real [`Ingest`] with its idempotency records and conditional writes, the real [`Reconcile`]
//! fed the region's stream records, the conflict log, and the region's own tenant policies
//! (hot-swapped on the region's own schedule, as each region's registry follower would). The
//! scheduler moves the replicated writes between regions (delays, duplicates, reordering,
//! partitions — overlapping and one-way — and a region down for a long stretch) and hands each
//! region's stream records to its reconcile (in order per region, in batches, sometimes twice,
//! retried after a crash). Clients send TMF632 events (creates, attribute and state changes,
//! deletes) with duplicates, lost acknowledgements and fail-over retries. Nothing here applies an
//! event or resolves a conflict.
//!
//! At the end everything heals, the dead-letter queues are redriven, and [`oracle`] judges the
//! run. Every random choice comes from one seed; the same seed and flags replay the same run.

pub mod backend;
pub mod faults;
pub mod oracle;
pub mod workload;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_core::conflict::CapturedConflict;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictRecord, LogError, LogObserver, MemoryConflictLog,
    Observed,
};
use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::policies::TenantPolicies;
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::resolve::{ActivePolicy, Resolver};
use host_core::store::memory::StreamRecord;
use host_core::store::{DeadLetter, PartyStore};
use host_sandbox::Policy;
use policy_types::{Dot, FieldValue, PartyVersion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::backend::{Backend, Embedded, RegionStores};
use crate::faults::{Crash, FaultyStore};
use crate::oracle::{Ack, AckedDelete, Recorded, Target, Wrote};

const TENANT: &str = "acme";
/// Simulated time of step 0 (ms since the epoch).
const EPOCH_MS: u64 = 1_700_000_000_000;
/// Each step is this much simulated time.
const STEP_MS: u64 = 10;
/// How long a delivery may take before its idempotency claim lapses (a Lambda's timeout).
const DEADLINE_MS: u64 = 30;
/// Stream records handed to reconcile per batch.
const BATCH: usize = 10;

/// The faults a run injects, each with its own switch (`Faults::none()` turns all off).
#[derive(Clone, Debug)]
pub struct Faults {
    /// Longest replication delay, in steps (at least 1).
    pub max_delay: u64,
    /// Chance that a replicated write is delivered twice.
    pub duplicate_rate: f64,
    /// Chance that a client delivers the same event again (here or at another region).
    pub redeliver_rate: f64,
    /// Chance that a write commits but its acknowledgement is lost (the client retries,
    /// sometimes at another region).
    pub lost_ack_rate: f64,
    /// Chance that ingest crashes after claiming the idempotency key, before writing the item
    /// (the claim lapses at the deadline; the client's retry completes it).
    pub claim_crash_rate: f64,
    /// Chance that reconcile crashes between reading the item and writing the resolution (the
    /// stream record is handed to it again).
    pub reconcile_crash_rate: f64,
    /// Chance that another writer in the same region commits to the same party between
    /// ingest's read and its conditional write (which then fails and is retried).
    pub race_rate: f64,
    /// Chance that a stream batch is handed to reconcile twice.
    pub stream_redeliver_rate: f64,
    /// Longest wait of a stream record before reconcile sees it, in steps.
    pub stream_delay: u64,
    /// Partitions: each cuts replication between two regions for a while (some one way
    /// only); they may overlap.
    pub partitions: usize,
    /// One region down for a long stretch: no client reaches it, nothing replicates to or
    /// from it, its stream waits.
    pub outage: bool,
    /// Regions' clocks are up to this far apart (ms).
    pub skew_ms: u64,
    /// With a flaky policy ([`SimPolicies::flaky`]): one region serves it for a while (a bad
    /// rollout), then rolls back; what it failed on waits in the dead-letter queue for the
    /// redrive.
    pub bad_rollout: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            max_delay: 6,
            duplicate_rate: 0.1,
            redeliver_rate: 0.08,
            lost_ack_rate: 0.04,
            claim_crash_rate: 0.03,
            reconcile_crash_rate: 0.03,
            race_rate: 0.03,
            stream_redeliver_rate: 0.05,
            stream_delay: 3,
            partitions: 2,
            outage: true,
            skew_ms: 2_000,
            bad_rollout: true,
        }
    }
}

impl Faults {
    /// No fault at all: in-order, prompt delivery and nothing fails.
    pub fn none() -> Self {
        Faults {
            max_delay: 1,
            duplicate_rate: 0.0,
            redeliver_rate: 0.0,
            lost_ack_rate: 0.0,
            claim_crash_rate: 0.0,
            reconcile_crash_rate: 0.0,
            race_rate: 0.0,
            stream_redeliver_rate: 0.0,
            stream_delay: 0,
            partitions: 0,
            outage: false,
            skew_ms: 0,
            bad_rollout: false,
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub regions: Vec<String>,
    pub parties: usize,
    /// Steps of client traffic; each step is 10 ms of simulated time.
    pub steps: usize,
    /// Chance that a region receives a client event in a step.
    pub write_rate: f64,
    pub faults: Faults,
    /// The step from which regions swap to the second policy.
    pub swap_at: Option<usize>,
    /// Each region swaps on its own schedule, up to this many steps after `swap_at` (as each
    /// region's registry follower refreshes on its own).
    pub rollout_spread: usize,
    /// Resolve conflicts (false: plain Global Tables, last writer wins on the whole item).
    pub reconcile: bool,
    /// A policy's failed calls do not fail the run (they still end in the dead-letter queue).
    pub tolerate_policy_failures: bool,
    /// Record every write, delivery and resolution in the report.
    pub trace: bool,
    /// Record every conflict in this log too, as the reconcile path records production's.
    pub conflict_log: Option<Arc<dyn ConflictLog>>,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            regions: vec!["apac".into(), "eu".into(), "na".into()],
            parties: 4,
            steps: 60,
            write_rate: 0.5,
            faults: Faults::default(),
            swap_at: None,
            rollout_spread: 5,
            reconcile: true,
            tolerate_policy_failures: false,
            trace: false,
            conflict_log: None,
        }
    }
}

/// The policies of a run: the first, the one swapped in at `swap_at`, and a flaky one a bad
/// rollout serves for a while.
#[derive(Clone, Debug)]
pub struct SimPolicies {
    pub first: Arc<Policy>,
    pub second: Option<Arc<Policy>>,
    pub flaky: Option<Arc<Policy>>,
    pub config: String,
}

/// One point of the timeline (per step).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub step: usize,
    /// Conflicts resolved by a policy in this step.
    pub conflicts: usize,
    /// Replicated writes sent but not yet delivered.
    pub in_flight: usize,
    /// Per region (in the order of the configuration): replicated writes on their way to it.
    pub in_flight_to: Vec<usize>,
    /// Parties whose copies differ between regions.
    pub diverged: usize,
    /// Per region (in the order of the configuration): stream records waiting for reconcile.
    pub stream_backlog: Vec<usize>,
}

/// What one policy did in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Conflicts it decided (merged, kept or took a side).
    pub resolved: usize,
    pub rejected: usize,
    /// Calls that trapped, timed out or answered an invalid result.
    pub failed: usize,
    /// Acknowledged writes its recorded decisions dropped.
    pub dropped: usize,
}

/// A cut of replication: writes from `from` to `to` wait during steps `start..end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub from: String,
    pub to: String,
    pub start: usize,
    pub end: usize,
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub events: usize,
    /// Events applied (first deliveries).
    pub writes: usize,
    /// Deliveries answered from the idempotency record (replays).
    pub duplicates_suppressed: usize,
    /// Deliveries told another one of the same key was in progress (retried later).
    pub in_progress: usize,
    pub refused: usize,
    pub lost_acks_retried: usize,
    pub claim_crashes: usize,
    pub reconcile_crashes: usize,
    pub races: usize,
    pub replicated: usize,
    pub overwrites: usize,
    pub stream_records: usize,
    pub stream_redelivered: usize,
    /// Stream batches split in two after reconcile crashed on them (Lambda's
    /// `BisectBatchOnFunctionError`): each half is handed again, what was handled included.
    pub stream_bisected: usize,
    /// Concurrent versions resolved by a policy (reconcile and ingest's catch-ups).
    pub conflicts: usize,
    /// Overwrites one side of which dominated: settled by the host.
    pub dominated: usize,
    pub policies: BTreeMap<String, PolicyStats>,
    pub dead_lettered: usize,
    pub dead_letter_reasons: BTreeMap<String, usize>,
    pub redriven: usize,
    pub cuts: Vec<Cut>,
    pub outage: Option<(String, usize, usize)>,
    /// When each region swapped policies.
    pub swaps: Vec<(String, usize)>,
    pub bad_rollout: Option<(String, usize, usize)>,
    pub converged: bool,
    pub settle_rounds: usize,
    pub acknowledged: usize,
    /// Acknowledged writes nothing accounts for.
    pub lost: Vec<String>,
    pub superseded: usize,
    /// Events applied in two regions before their idempotency record replicated.
    pub applied_in_two_regions: usize,
    /// Fields of the final parties whose named write checks out against the acknowledged
    /// writes (`oracle::judge_writes`), and those whose write is not named or was never
    /// acknowledged.
    pub fields_named: usize,
    pub fields_unknown: usize,
    pub applied_twice_in_a_region: usize,
    pub dead_letters_left: usize,
    pub violations: Vec<String>,
    pub timeline: Vec<Sample>,
    pub trace: Vec<String>,
    pub elapsed: Duration,
}

impl SimReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Keeps every resolution offered to the conflict log, as the oracle needs it (the log itself
/// stores a conflict once).
#[derive(Debug, Default)]
struct Resolutions {
    seen: Mutex<Vec<Recorded>>,
}

impl Resolutions {
    fn keep(&self, record: &ConflictRecord, outcome: &ConflictOutcome) {
        self.seen.lock().unwrap().push(Recorded {
            conflict: record.id.clone(),
            region: record.region.clone(),
            policy: outcome.policy_digest.clone(),
            inputs: [record.local.clone(), record.remote.clone()],
            written: outcome.written.clone(),
            failed: outcome.decision == "failed",
        });
    }
}

impl LogObserver for Resolutions {
    fn recorded(&self, record: &ConflictRecord, _stored: &Result<bool, LogError>) {
        self.keep(record, record.first());
    }

    fn outcome_added(&self, record: &ConflictRecord, outcome: &ConflictOutcome, _appended: bool) {
        self.keep(record, outcome);
    }
}

/// The conflict log every region records into.
type RecordingLog = Observed<Arc<dyn ConflictLog>, Resolutions>;

type RegionIngest<R> =
    Ingest<FaultyStore<<R as RegionStores>::Table>, <R as RegionStores>::Letters>;

struct Region<R: RegionStores> {
    name: String,
    /// The region's stores, and its table as the pipeline sees it (with its fault plan).
    stores: R,
    store: Arc<R::Table>,
    faulty: FaultyStore<R::Table>,
    policies: Arc<TenantPolicies>,
    ingest: Arc<RegionIngest<R>>,
    reconcile: Reconcile<FaultyStore<R::Table>, R::Letters>,
    /// Stream records waiting for reconcile, with the step from which each may be handed.
    stream: VecDeque<(StreamRecord, usize)>,
    /// The sizes of the next batches, after a batch was bisected; empty: up to [`BATCH`].
    halves: VecDeque<usize>,
    swap_at: Option<usize>,
    skew: u64,
    /// First deliveries applied here, per event id.
    effects: HashMap<String, usize>,
}

struct Message<W> {
    from: usize,
    to: usize,
    write: W,
    due: usize,
    seq: usize,
}

/// A client event: a TMF632 event for one party.
#[derive(Clone, Debug)]
struct Event {
    id: String,
    party: String,
    payload: Value,
}

struct Retry {
    at: usize,
    region: usize,
    event: Event,
}

/// What one delivery came to, as the client and the oracle see it.
struct Delivered {
    outcome: Outcome,
    before: Option<PartyVersion>,
    after: Option<PartyVersion>,
}

struct World<'a, B: Backend> {
    config: &'a SimConfig,
    policies: &'a SimPolicies,
    now: Arc<AtomicU64>,
    /// Client traffic and its faults.
    rng: ChaCha8Rng,
    /// Replication and the streams.
    net: ChaCha8Rng,
    /// The faults of ingest (crashes, races).
    crashes: ChaCha8Rng,
    /// The faults of reconcile, apart so that a run without reconcile sees the same client
    /// schedule and the same ingest faults.
    fix: ChaCha8Rng,
    regions: Vec<Region<B::Region>>,
    log: Arc<RecordingLog>,
    messages: Vec<Message<<B::Region as RegionStores>::Write>>,
    seq: usize,
    cuts: Vec<(usize, usize, usize, usize)>,
    outage: Option<(usize, usize, usize)>,
    bad_rollout: Option<(usize, usize, usize)>,
    retries: Vec<Retry>,
    acks: Vec<Ack>,
    wrote: Vec<Wrote>,
    deletes: Vec<AckedDelete>,
    report: SimReport,
    step: usize,
    events: usize,
    healing: bool,
}

fn parse_dot(text: &str) -> Option<Dot> {
    let (region, counter) = text.rsplit_once(':')?;
    Some(Dot {
        region: region.to_owned(),
        counter: counter.parse().ok()?,
    })
}

/// The element keys an array field shows.
fn element_keys(version: Option<&PartyVersion>, field: &str) -> Vec<String> {
    match version.and_then(|v| v.field(field)).map(|f| &f.value) {
        Some(FieldValue::Elements(elements)) => elements.iter().map(|e| e.key.clone()).collect(),
        _ => Vec::new(),
    }
}

/// What an applied delivery acknowledged: each field it wrote (each element an array write
/// added, changed or removed) and the write as a whole, or the delete.
fn acknowledged(
    event: &Event,
    region: &str,
    step: usize,
    result: &Value,
    d: &Delivered,
) -> (Vec<Ack>, Option<Wrote>, Option<AckedDelete>) {
    let seen: Vec<Dot> = result["versionVector"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(parse_dot))
        .collect();
    let Some(dot) = seen.iter().find(|d| d.region == region).cloned() else {
        return (Vec::new(), None, None);
    };
    let applied: Vec<&str> = result["applied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if applied.contains(&"(deleted)") {
        return (
            Vec::new(),
            None,
            Some(AckedDelete {
                party: event.party.clone(),
                seen,
            }),
        );
    }
    // A write all of whose fields were stale made no version: the vector's dot is an older
    // write's.
    let wrote = (!applied.is_empty()).then(|| Wrote {
        party: event.party.clone(),
        fields: applied.iter().map(|f| (*f).to_owned()).collect(),
        dot: dot.clone(),
        seen: seen.clone(),
    });
    let party = &event.payload["event"]["individual"];
    let mut acks = Vec::new();
    let mut ack = |field: &str, element: Option<String>, value: Option<Value>| {
        acks.push(Ack {
            event: event.id.clone(),
            region: region.to_owned(),
            target: Target {
                party: event.party.clone(),
                field: field.to_owned(),
                element,
            },
            value,
            dot: dot.clone(),
            seen: seen.clone(),
            step,
        })
    };
    for field in applied {
        let value = &party[field];
        match value.as_array().filter(|a| a.iter().all(Value::is_object)) {
            Some(items) => {
                let written = match d
                    .after
                    .as_ref()
                    .and_then(|v| v.field(field))
                    .map(|f| &f.value)
                {
                    Some(FieldValue::Elements(e)) => e.clone(),
                    _ => Vec::new(),
                };
                // The client wrote the whole array: every element it sent is what it
                // acknowledges, changed or carried as it read it.
                let mut sent = Vec::new();
                for item in items {
                    let key = party_model::element_key(item);
                    let stored = written.iter().any(|e| e.key == key);
                    if stored {
                        ack(field, Some(key.clone()), Some(item.clone()));
                    }
                    sent.push(key);
                }
                for key in element_keys(d.before.as_ref(), field) {
                    if !sent.contains(&key) {
                        ack(field, Some(key), None);
                    }
                }
            }
            None => ack(field, None, Some(value.clone())),
        }
    }
    (acks, wrote, None)
}

impl<'a, B: Backend> World<'a, B> {
    fn new(config: &'a SimConfig, policies: &'a SimPolicies, backend: &B) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut net = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6e65_7477_6f72_6b00);
        let fix = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7265_636f_6e63_696c);
        let crashes = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6372_6173_6865_7300);
        let now = Arc::new(AtomicU64::new(EPOCH_MS));
        let inner: Arc<dyn ConflictLog> = match &config.conflict_log {
            Some(log) => log.clone(),
            None => Arc::new(MemoryConflictLog::new()),
        };
        let log = Arc::new(RecordingLog {
            log: inner,
            observer: Resolutions::default(),
        });
        let n = config.regions.len();
        let faults = &config.faults;
        let regions = config
            .regions
            .iter()
            .map(|name| {
                let skew = if faults.skew_ms > 0 {
                    rng.random_range(0..=faults.skew_ms)
                } else {
                    0
                };
                let clock_now = now.clone();
                let stores = backend.region(
                    name,
                    Arc::new(move || clock_now.load(Ordering::Relaxed) + skew),
                );
                let store = stores.table();
                let faulty = FaultyStore::new(store.clone());
                let tenants = Arc::new(TenantPolicies::new());
                tenants.activate(
                    TENANT,
                    ActivePolicy::new(policies.first.clone()).with_config(policies.config.clone()),
                );
                let resolver = Arc::new(Resolver::new(tenants.clone(), name.clone()));
                let mut ingest_config = IngestConfig::new(name.clone());
                // Simulated time does not sleep: retries follow at once.
                ingest_config.retry_backoff_ms = 0;
                let mut ingest =
                    Ingest::new(faulty.clone(), stores.ingest_letters(), ingest_config);
                if config.reconcile {
                    ingest = ingest
                        .with_resolver(resolver.clone())
                        .with_conflict_log(log.clone());
                }
                let mut reconcile =
                    Reconcile::new(faulty.clone(), stores.reconcile_letters(), resolver)
                        .with_conflict_log(log.clone());
                reconcile.retry_backoff_ms = 0;
                let spread = config.rollout_spread;
                Region {
                    name: name.clone(),
                    stores,
                    store,
                    faulty,
                    policies: tenants,
                    ingest: Arc::new(ingest),
                    reconcile,
                    stream: VecDeque::new(),
                    halves: VecDeque::new(),
                    swap_at: config.swap_at.map(|s| s + rng.random_range(0..=spread)),
                    skew,
                    effects: HashMap::new(),
                }
            })
            .collect::<Vec<_>>();
        let steps = config.steps.max(6);
        let mut cuts = Vec::new();
        if n > 1 {
            for _ in 0..faults.partitions {
                let a = net.random_range(0..n);
                let b = (a + net.random_range(1..n)) % n;
                let start = net.random_range(steps / 6..steps / 2 + 1);
                let end = (start + net.random_range(steps / 8..steps / 3 + 1)).min(steps);
                cuts.push((a, b, start, end));
                if net.random_bool(0.6) {
                    cuts.push((b, a, start, end)); // both ways
                }
            }
        }
        let outage = (faults.outage && n > 2).then(|| {
            let r = net.random_range(0..n);
            let start = net.random_range(steps / 4..steps / 2 + 1);
            (r, start, (start + steps / 3).min(steps))
        });
        let bad_rollout = (faults.bad_rollout && policies.flaky.is_some()).then(|| {
            let r = net.random_range(0..n);
            let start = net.random_range(steps / 8..steps / 3 + 1);
            (r, start, (start + steps / 4).min(steps))
        });
        let report = SimReport {
            seed: config.seed,
            cuts: cuts
                .iter()
                .map(|&(a, b, start, end)| Cut {
                    from: config.regions[a].clone(),
                    to: config.regions[b].clone(),
                    start,
                    end,
                })
                .collect(),
            outage: outage.map(|(r, s, e)| (config.regions[r].clone(), s, e)),
            bad_rollout: bad_rollout.map(|(r, s, e)| (config.regions[r].clone(), s, e)),
            ..SimReport::default()
        };
        World {
            config,
            policies,
            now,
            rng,
            net,
            crashes,
            fix,
            regions,
            log,
            messages: Vec::new(),
            seq: 0,
            cuts,
            outage,
            bad_rollout,
            retries: Vec::new(),
            acks: Vec::new(),
            wrote: Vec::new(),
            deletes: Vec::new(),
            report,
            step: 0,
            events: 0,
            healing: false,
        }
    }

    fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.config.trace {
            let line = format!("step {:>3}: {}", self.step, what());
            self.report.trace.push(line);
        }
    }

    /// A region's clock now.
    fn time(&self, region: usize) -> u64 {
        EPOCH_MS + self.step as u64 * STEP_MS + self.regions[region].skew
    }

    fn down(&self, region: usize) -> bool {
        !self.healing
            && self
                .outage
                .is_some_and(|(r, s, e)| r == region && (s..e).contains(&self.step))
    }

    fn cut(&self, from: usize, to: usize) -> bool {
        !self.healing
            && (self.down(from)
                || self.down(to)
                || self
                    .cuts
                    .iter()
                    .any(|&(a, b, s, e)| a == from && b == to && (s..e).contains(&self.step)))
    }

    /// A client event for `party`, drawn with the same number of random draws whatever the
    /// region holds, so that runs with and without reconciliation see the same schedule.
    fn draw_event(&mut self, region: usize, party: &str) -> Event {
        let draw = workload::Draw::new(&mut self.rng);
        self.events += 1;
        let n = self.events;
        let id = format!("ev-{}-{n}", self.config.seed);
        // The client reads what the region answers (its API's read), and writes back from it.
        let now = self.time(region);
        let current = self.regions[region]
            .ingest
            .read(TENANT, party, now)
            .ok()
            .flatten()
            .and_then(|p| party_model::to_tmf(&p));
        let at = self.time(region);
        Event {
            id: id.clone(),
            party: party.to_owned(),
            payload: workload::client_event(&draw, &id, n, party, current.as_ref(), at),
        }
    }

    /// One delivery of `event` to `region`'s ingest, with the faults drawn for it. Returns
    /// whether the client got its answer (false: it retries).
    fn deliver(&mut self, region: usize, event: &Event, faults: bool) -> bool {
        self.report.events += 1;
        let f = &self.config.faults;
        let faults = faults && !self.healing;
        // Drawn whatever happens next, so that the schedule does not depend on the outcome.
        let lost_ack = faults && self.rng.random_bool(f.lost_ack_rate);
        let failover = self.rng.random_range(0..self.regions.len());
        let fail_over = self.rng.random_bool(0.3);
        let crash = faults && self.crashes.random_bool(f.claim_crash_rate);
        let race = faults && self.crashes.random_bool(f.race_rate);
        let now = self.time(region);
        let deadline = now + DEADLINE_MS;
        let rival = race.then(|| self.draw_event(region, &event.party));
        let r = &self.regions[region];
        let raced: Arc<Mutex<Option<Delivered>>> = Arc::default();
        {
            let mut plan = r.faulty.plan.lock().unwrap();
            plan.crash_on_commit = crash;
            if let Some(rival) = &rival {
                let (ingest, store, slot) = (r.ingest.clone(), r.store.clone(), raced.clone());
                let (payload, party) = (rival.payload.clone(), rival.party.clone());
                plan.race = Some(Box::new(move || {
                    let before = ingest.read(TENANT, &party, now).ok().flatten();
                    let outcome = ingest.handle(TENANT, &payload, None, now, deadline);
                    let after = store
                        .party(TENANT, &party)
                        .ok()
                        .flatten()
                        .map(|p| p.version);
                    *slot.lock().unwrap() = Some(Delivered {
                        outcome,
                        before,
                        after,
                    });
                }));
            }
        }
        let before = r.ingest.read(TENANT, &event.party, now).ok().flatten();
        let ingest = r.ingest.clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            ingest.handle(TENANT, &event.payload, None, now, deadline)
        }));
        r.faulty.clear();
        let after = r
            .store
            .party(TENANT, &event.party)
            .ok()
            .flatten()
            .map(|p| p.version);
        let mut before = before;
        if let (Some(rival), Some(d)) = (rival, raced.lock().unwrap().take()) {
            self.report.races += 1;
            self.report.events += 1;
            // This write's retry built on what the rival committed: that is what it replaced.
            before = d.after.clone();
            self.answer(region, &rival, d, false);
        }
        match result {
            Err(payload) if payload.is::<Crash>() => {
                self.report.claim_crashes += 1;
                let name = self.regions[region].name.clone();
                self.trace(|| format!("{name} crashes applying {} after claiming it", event.id));
                // The client times out and retries once the claim has lapsed.
                let at = self.step + (DEADLINE_MS / STEP_MS) as usize + 1;
                self.retry(at, if fail_over { failover } else { region }, event);
                false
            }
            Err(other) => std::panic::resume_unwind(other),
            Ok(outcome) => {
                let d = Delivered {
                    outcome,
                    before,
                    after,
                };
                let answered = self.answer(region, event, d, lost_ack);
                if !answered {
                    let at = self.step + 2;
                    self.retry(at, if fail_over { failover } else { region }, event);
                }
                answered
            }
        }
    }

    fn retry(&mut self, at: usize, region: usize, event: &Event) {
        self.retries.push(Retry {
            at,
            region,
            event: event.clone(),
        });
    }

    /// What the client makes of an answer; false when it will retry.
    fn answer(&mut self, region: usize, event: &Event, d: Delivered, lost_ack: bool) -> bool {
        let name = self.regions[region].name.clone();
        match &d.outcome {
            Outcome::Applied {
                result,
                replay: false,
            } => {
                self.report.writes += 1;
                // An effect is a change: a second application whose every field was already
                // stamped later (the idempotency record was replaced meanwhile by another
                // region's claim, which last-writer-wins allows) changes nothing.
                if result["applied"].as_array().is_some_and(|a| !a.is_empty()) {
                    *self.regions[region]
                        .effects
                        .entry(event.id.clone())
                        .or_default() += 1;
                }
                self.trace(|| format!("{name} applies {} to {}: {result}", event.id, event.party));
                // What this application acknowledges: now, or to the retry that a lost
                // acknowledgement brings (it is answered from the idempotency record, which
                // holds this result), which the heal always lets through.
                let (acks, wrote, delete) = acknowledged(event, &name, self.step, result, &d);
                if self.config.trace {
                    for a in &acks {
                        let line = format!(
                            "step {:>3}:   acknowledged {}.{}{} = {} ({}:{})",
                            self.step,
                            a.target.party,
                            a.target.field,
                            a.target
                                .element
                                .as_deref()
                                .map_or(String::new(), |k| format!("[{k}]")),
                            a.value
                                .as_ref()
                                .map_or("(removed)".to_owned(), Value::to_string),
                            a.dot.region,
                            a.dot.counter
                        );
                        self.report.trace.push(line);
                    }
                }
                self.report.acknowledged += acks.len() + usize::from(delete.is_some());
                self.acks.extend(acks);
                self.wrote.extend(wrote);
                self.deletes.extend(delete);
                if lost_ack {
                    // Committed, but the acknowledgement is lost: the client retries.
                    self.report.lost_acks_retried += 1;
                    return false;
                }
                true
            }
            Outcome::Applied { replay: true, .. } => {
                self.report.duplicates_suppressed += 1;
                true
            }
            Outcome::InProgress => {
                self.report.in_progress += 1;
                false
            }
            Outcome::Refused(e) => {
                self.report.refused += 1;
                let e = e.to_string();
                self.trace(|| format!("{name} refuses {}: {e}", event.id));
                true
            }
            Outcome::DeadLettered(reason) => {
                self.report.dead_lettered += 1;
                *self
                    .report
                    .dead_letter_reasons
                    .entry(short_reason(reason))
                    .or_default() += 1;
                // Kept with its reason; the redrive applies it.
                true
            }
        }
    }

    /// Moves every region's new writes into flight.
    fn send(&mut self) {
        for from in 0..self.regions.len() {
            for write in self.regions[from].stores.take_outbox() {
                for to in 0..self.regions.len() {
                    if to == from {
                        continue;
                    }
                    let f = &self.config.faults;
                    let copies = if self.net.random_bool(f.duplicate_rate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let delay = self.net.random_range(1..=f.max_delay.max(1)) as usize;
                        self.seq += 1;
                        self.messages.push(Message {
                            from,
                            to,
                            write: write.clone(),
                            due: self.step + delay,
                            seq: self.seq,
                        });
                        self.report.replicated += 1;
                    }
                }
            }
        }
    }

    /// Global Tables: each due write is applied in its region, last writer wins.
    fn receive(&mut self, all: bool) {
        let mut due = Vec::new();
        let mut keep = Vec::new();
        for m in std::mem::take(&mut self.messages) {
            if (all || m.due <= self.step) && !self.cut(m.from, m.to) {
                due.push(m);
            } else {
                keep.push(m);
            }
        }
        self.messages = keep;
        due.sort_by_key(|m| (m.due, m.seq));
        for m in due {
            let kept = self.regions[m.to].stores.apply_replicated(&m.write);
            if let (true, Some(party)) = (kept, B::Region::party_of(&m.write)) {
                let party = party.to_owned();
                let (to, from) = (
                    self.regions[m.to].name.clone(),
                    self.regions[m.from].name.clone(),
                );
                self.trace(|| format!("{to} takes {from}'s write of {party}"));
            }
        }
    }

    /// Each region's new stream records join its queue, each after a delay.
    fn collect_streams(&mut self) {
        for region in 0..self.regions.len() {
            for record in self.regions[region].stores.take_stream() {
                self.report.stream_records += 1;
                let wait = if self.config.faults.stream_delay > 0 {
                    self.net.random_range(0..=self.config.faults.stream_delay) as usize
                } else {
                    0
                };
                let ready = self.step + wait;
                self.regions[region].stream.push_back((record, ready));
            }
        }
    }

    /// Hands each region's ready stream records to its reconcile, in order, in batches, as
    /// Lambda's event source mapping does with the template's settings. A record reported as a
    /// batch item failure (`Retry`) is a checkpoint: the batch is handed again from that record
    /// on a later step. A crash fails the whole invocation: nothing of the batch counts as
    /// handled, and the batch is bisected — its first half is handed again, then its second,
    /// the records reconcile had already handled included (`BisectBatchOnFunctionError`).
    fn pump(&mut self, all: bool) {
        if !self.config.reconcile {
            for r in &mut self.regions {
                r.stream.clear();
            }
            return;
        }
        for region in 0..self.regions.len() {
            if self.down(region) {
                continue;
            }
            loop {
                let size = self.regions[region]
                    .halves
                    .front()
                    .copied()
                    .unwrap_or(BATCH);
                let ready: Vec<StreamRecord> = self.regions[region]
                    .stream
                    .iter()
                    .take_while(|(_, at)| all || *at <= self.step)
                    .take(size)
                    .map(|(r, _)| r.clone())
                    .collect();
                if ready.is_empty() {
                    break;
                }
                let (done, crashed) = self.handle_batch(region, &ready);
                if crashed {
                    let halves = &mut self.regions[region].halves;
                    halves.pop_front();
                    if ready.len() > 1 {
                        let first = ready.len() / 2;
                        halves.push_front(ready.len() - first);
                        halves.push_front(first);
                        self.report.stream_bisected += 1;
                    }
                    break; // handed again on a later step
                }
                if done == ready.len() {
                    self.regions[region].halves.pop_front();
                }
                let twice = done == ready.len()
                    && !self.healing
                    && self
                        .net
                        .random_bool(self.config.faults.stream_redeliver_rate);
                if twice {
                    self.report.stream_redelivered += 1;
                    self.handle_batch(region, &ready);
                }
                for _ in 0..done {
                    self.regions[region].stream.pop_front();
                }
                if done < ready.len() {
                    break; // retried from that record on a later step
                }
            }
        }
    }

    /// Reconciles records in order; returns how many were handled before one must be retried,
    /// and whether reconcile crashed (then none of the batch counts as handled).
    fn handle_batch(&mut self, region: usize, records: &[StreamRecord]) -> (usize, bool) {
        for (i, record) in records.iter().enumerate() {
            let Some(old) = &record.old else {
                continue; // an insert overwrote nothing
            };
            let crash = !self.healing
                && self
                    .fix
                    .random_bool(self.config.faults.reconcile_crash_rate);
            let r = &self.regions[region];
            r.faulty.plan.lock().unwrap().crash_on_put = crash;
            let now = self.time(region);
            let reconcile = &r.reconcile;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                reconcile.handle(old, &record.new.version, now)
            }));
            r.faulty.clear();
            let name = r.name.clone();
            match outcome {
                Err(payload) if payload.is::<Crash>() => {
                    self.report.reconcile_crashes += 1;
                    self.trace(|| format!("{name} reconcile crashes before writing"));
                    return (0, true);
                }
                Err(other) => std::panic::resume_unwind(other),
                Ok(ReconcileOutcome::Retry(why)) => {
                    self.trace(|| format!("{name} reconcile must retry: {why}"));
                    return (i, false);
                }
                Ok(ReconcileOutcome::NotAConflict | ReconcileOutcome::AlreadyResolved) => {}
                Ok(ReconcileOutcome::Resolved {
                    concurrent,
                    decision,
                    ..
                }) => {
                    self.report.overwrites += 1;
                    if concurrent {
                        self.report.conflicts += 1;
                        if let Some(s) = self.report.timeline.last_mut() {
                            s.conflicts += 1;
                        }
                    } else {
                        self.report.dominated += 1;
                    }
                    let party = record.new.version.party_id.clone();
                    self.trace(|| format!("{name} reconciles {party}: {decision}"));
                }
                Ok(ReconcileOutcome::DeadLettered { reason, .. }) => {
                    self.report.overwrites += 1;
                    self.report.dead_lettered += 1;
                    *self
                        .report
                        .dead_letter_reasons
                        .entry(short_reason(&reason))
                        .or_default() += 1;
                }
            }
        }
        (records.len(), false)
    }

    /// Redrives every region's dead-letter queue; what fails again stays in it. Returns
    /// whether anything was applied.
    fn redrive(&mut self) -> bool {
        let mut any = false;
        for region in 0..self.regions.len() {
            let letters = self.regions[region].stores.take_letters();
            let now = self.time(region);
            let mut left: Vec<DeadLetter> = Vec::new();
            for letter in letters {
                self.report.redriven += 1;
                let r = &self.regions[region];
                let applied =
                    match serde_json::from_value::<CapturedConflict>(letter.payload.clone()) {
                        Ok(conflict) => matches!(
                            r.reconcile.redrive_conflict(&conflict, now),
                            ReconcileOutcome::Resolved { .. }
                                | ReconcileOutcome::AlreadyResolved
                                | ReconcileOutcome::NotAConflict
                        ),
                        Err(_) => {
                            let outcome = r.ingest.redeliver(
                                &letter.tenant,
                                &letter.payload,
                                letter.idempotency_key.as_deref(),
                                now,
                                now + DEADLINE_MS,
                            );
                            match outcome {
                                Outcome::Applied { .. } => {
                                    let id = letter.payload["eventId"].as_str().unwrap_or_default();
                                    let event = Event {
                                        id: id.to_owned(),
                                        party: letter.payload["event"]["individual"]["id"]
                                            .as_str()
                                            .unwrap_or_default()
                                            .to_owned(),
                                        payload: letter.payload.clone(),
                                    };
                                    let after = self.regions[region]
                                        .store
                                        .party(TENANT, &event.party)
                                        .ok()
                                        .flatten()
                                        .map(|p| p.version);
                                    self.answer(
                                        region,
                                        &event,
                                        Delivered {
                                            outcome,
                                            before: None,
                                            after,
                                        },
                                        false,
                                    );
                                    true
                                }
                                Outcome::Refused(_) => true,
                                _ => false,
                            }
                        }
                    };
                if applied {
                    any = true;
                } else {
                    left.push(letter);
                }
            }
            for letter in left {
                self.regions[region].stores.keep_letter(letter);
            }
        }
        any
    }

    fn sample(&mut self) {
        let diverged = (0..self.config.parties)
            .filter(|p| {
                let id = format!("p{p}");
                let copies: Vec<Option<PartyVersion>> = self
                    .regions
                    .iter()
                    .map(|r| r.store.party(TENANT, &id).ok().flatten().map(|p| p.version))
                    .collect();
                copies.windows(2).any(|w| match (&w[0], &w[1]) {
                    (Some(a), Some(b)) => !oracle::same(a, b),
                    (None, None) => false,
                    _ => true,
                })
            })
            .count();
        let stream_backlog = self.regions.iter().map(|r| r.stream.len()).collect();
        let mut in_flight_to = vec![0; self.regions.len()];
        for m in &self.messages {
            in_flight_to[m.to] += 1;
        }
        self.report.timeline.push(Sample {
            step: self.step,
            conflicts: 0,
            in_flight: self.messages.len(),
            in_flight_to,
            diverged,
            stream_backlog,
        });
    }

    /// Swaps and rollbacks due now, each region on its own schedule.
    fn rollouts(&mut self) {
        let step = self.step;
        for region in 0..self.regions.len() {
            let active = |p: &Arc<Policy>| {
                ActivePolicy::new(p.clone()).with_config(self.policies.config.clone())
            };
            if self.regions[region].swap_at == Some(step)
                && let Some(second) = &self.policies.second
            {
                self.regions[region]
                    .policies
                    .activate(TENANT, active(second));
                self.report
                    .swaps
                    .push((self.regions[region].name.clone(), step));
            }
            if let (Some((r, start, end)), Some(flaky)) = (self.bad_rollout, &self.policies.flaky)
                && r == region
            {
                if step == start {
                    self.regions[region]
                        .policies
                        .activate(TENANT, active(flaky));
                } else if step == end {
                    // Rolled back to what the region served before.
                    let back = match (&self.policies.second, self.regions[region].swap_at) {
                        (Some(second), Some(at)) if at <= step => second.clone(),
                        _ => self.policies.first.clone(),
                    };
                    self.regions[region]
                        .policies
                        .activate(TENANT, active(&back));
                }
            }
        }
    }

    fn run(mut self) -> SimReport {
        let start = Instant::now();
        for step in 0..self.config.steps {
            self.step = step;
            self.now
                .store(EPOCH_MS + step as u64 * STEP_MS, Ordering::Relaxed);
            self.sample();
            self.rollouts();
            let due: Vec<Retry> = {
                let (due, later) = std::mem::take(&mut self.retries)
                    .into_iter()
                    .partition(|r| r.at <= step);
                self.retries = later;
                due
            };
            for retry in due {
                let region = self.up_region(retry.region);
                self.deliver(region, &retry.event, true);
            }
            for region in 0..self.regions.len() {
                if !self.rng.random_bool(self.config.write_rate) {
                    continue;
                }
                let party = format!("p{}", self.rng.random_range(0..self.config.parties));
                // A client whose region is down fails over to another.
                let region = self.up_region(region);
                let event = self.draw_event(region, &party);
                self.deliver(region, &event, true);
                if self.rng.random_bool(self.config.faults.redeliver_rate) {
                    let again = self.rng.random_range(0..self.regions.len());
                    let again = self.up_region(again);
                    self.deliver(again, &event, true);
                }
            }
            self.send();
            self.receive(false);
            self.collect_streams();
            self.pump(false);
        }
        // Heal: no more faults, every retry and message delivered, every stream drained, the
        // dead-letter queues redriven, until nothing moves.
        self.healing = true;
        for region in 0..self.regions.len() {
            self.regions[region].faulty.clear();
        }
        // The bad rollout, if still on, is rolled back before the redrive.
        if let (Some((r, _, _)), Some(_)) = (self.bad_rollout, &self.policies.flaky) {
            let back = match &self.policies.second {
                Some(second) if self.config.swap_at.is_some() => second.clone(),
                _ => self.policies.first.clone(),
            };
            self.regions[r].policies.activate(
                TENANT,
                ActivePolicy::new(back).with_config(self.policies.config.clone()),
            );
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            self.step += 1;
            self.now
                .store(EPOCH_MS + self.step as u64 * STEP_MS, Ordering::Relaxed);
            let retries = std::mem::take(&mut self.retries);
            let mut moved = !retries.is_empty();
            for retry in retries {
                self.deliver(retry.region, &retry.event, false);
            }
            self.send();
            moved |= !self.messages.is_empty();
            self.receive(true);
            self.collect_streams();
            moved |= self.regions.iter().any(|r| !r.stream.is_empty());
            self.pump(true);
            if self.config.reconcile {
                moved |= self.redrive();
            }
            self.send();
            moved |= !self.messages.is_empty();
            if !moved || rounds > 200 {
                break;
            }
        }
        self.report.settle_rounds = rounds;
        self.sample();
        self.finish(start)
    }

    /// `region`, or the next one up when it is down.
    fn up_region(&self, region: usize) -> usize {
        (0..self.regions.len())
            .map(|i| (region + i) % self.regions.len())
            .find(|&r| !self.down(r))
            .unwrap_or(region)
    }

    fn finish(mut self, start: Instant) -> SimReport {
        let mut unread = Vec::new();
        let stored: oracle::FinalWrites = self
            .regions
            .iter()
            .map(|r| {
                let parties = r.store.list(TENANT).unwrap_or_else(|e| {
                    unread.push(format!("{}'s parties could not be read: {e}", r.name));
                    Vec::new()
                });
                (
                    r.name.clone(),
                    parties
                        .into_iter()
                        .map(|p| (p.version.party_id.clone(), (p.version, p.writes)))
                        .collect(),
                )
            })
            .collect();
        let writes = oracle::judge_writes(&self.wrote, &stored);
        let finals: Vec<(String, HashMap<String, PartyVersion>)> = stored
            .into_iter()
            .map(|(name, parties)| {
                let versions = parties.into_iter().map(|(id, (v, _))| (id, v)).collect();
                (name, versions)
            })
            .collect();
        let recorded = std::mem::take(&mut *self.log.observer.seen.lock().unwrap());
        let verdict = oracle::judge(&self.acks, &self.deletes, &recorded, &finals);
        let r = &mut self.report;
        r.violations.extend(unread);
        r.fields_named = writes.named;
        r.fields_unknown = writes.unknown + writes.unjudged;
        if !writes.wrong.is_empty() {
            r.violations.push(format!(
                "{} fields name the wrong write, e.g. {}",
                writes.wrong.len(),
                writes.wrong[0]
            ));
        }
        r.converged = verdict.converged;
        if !verdict.converged {
            r.violations.push("the regions did not converge".to_owned());
        }
        for d in verdict.settled_differently.iter().take(3) {
            r.violations.push(d.clone());
        }
        r.superseded = verdict.superseded;
        r.lost = verdict.lost;
        if self.config.reconcile && !r.lost.is_empty() {
            r.violations.push(format!(
                "{} acknowledged updates lost silently",
                r.lost.len()
            ));
        }
        for rec in &recorded {
            if let Some(p) = &rec.policy {
                let stats = r.policies.entry(p.clone()).or_default();
                match (rec.failed, &rec.written) {
                    (true, _) => stats.failed += 1,
                    (false, Some(_)) => stats.resolved += 1,
                    (false, None) => stats.rejected += 1,
                }
            }
        }
        for (p, n) in verdict.dropped_by {
            r.policies.entry(p).or_default().dropped += n;
        }
        let flaky = self.policies.flaky.as_ref().map(|p| p.digest().to_owned());
        if !self.config.tolerate_policy_failures {
            for (digest, stats) in &r.policies {
                if stats.failed > 0 && Some(digest) != flaky.as_ref() {
                    r.violations.push(format!(
                        "policy {} failed {} calls",
                        &digest[..12.min(digest.len())],
                        stats.failed
                    ));
                }
            }
        }
        let mut regions_of: HashMap<&str, usize> = HashMap::new();
        for region in &self.regions {
            for (id, n) in &region.effects {
                *regions_of.entry(id).or_default() += 1;
                if *n > 1 {
                    r.applied_twice_in_a_region += 1;
                }
            }
        }
        r.applied_in_two_regions = regions_of.values().filter(|n| **n > 1).count();
        if r.applied_twice_in_a_region > 0 {
            r.violations.push(format!(
                "{} events applied more than once in one region",
                r.applied_twice_in_a_region
            ));
        }
        r.dead_letters_left = self
            .regions
            .iter()
            .map(|region| region.stores.letters_left())
            .sum();
        if self.config.reconcile && r.dead_letters_left > 0 {
            r.violations.push(format!(
                "{} dead letters left after redrive",
                r.dead_letters_left
            ));
        }
        r.elapsed = start.elapsed();
        self.report
    }
}

/// A dead-letter reason without its particulars, for counting.
fn short_reason(reason: &str) -> String {
    let cut = reason.find([':', '(']).unwrap_or(reason.len());
    reason[..cut].trim().to_owned()
}

/// Runs one simulation in the embedded world.
pub fn run(config: &SimConfig, policies: &SimPolicies) -> SimReport {
    run_on(&Embedded, config, policies)
}

/// Runs one simulation on `backend`'s stores: the same schedule, faults and oracle in every
/// world.
pub fn run_on<B: Backend>(backend: &B, config: &SimConfig, policies: &SimPolicies) -> SimReport {
    World::new(config, policies, backend).run()
}
