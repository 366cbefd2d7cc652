//! A seeded, deterministic simulation of the active-active system on the embedded default.
//!
//! Regions accept TMF632 writes for the same parties; a model of Global Tables replicates each
//! region's items to the others (asynchronously, item by item, with delays, reordering,
//! duplication and partitions) and settles concurrent writes by last-writer-wins on the write
//! timestamp, as DynamoDB does; each region's reconcile step sees every overwrite (its stream)
//! and asks the tenant's policy, through the real host library and the real component, to
//! restore what was overwritten. Faults: partitions that heal, throttled writes (retried, then
//! dead-lettered), lost acknowledgements (the client retries with the same event id). At the
//! end everything heals and the run checks convergence, that no acknowledged update was lost,
//! one effect per idempotency key, and an empty dead-letter queue after redrive.
//!
//! Every random choice comes from one seed; the same seed replays the same run. The same
//! schedule run without reconciliation shows what plain Global Tables would have lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use party_model::{HlcClock, delete, new_party, tick, to_tmf, write_fields};
use policy_types::{FieldValue, Hlc, PartyVersion, ResourceType, VectorOrder, compare_vectors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::conflict_log::{ConflictLog, ConflictOutcome, ConflictRecord};
use crate::policy::Policy;
use crate::registry::{ActivePolicy, TenantPolicies};
use crate::resolver::{Decision, Resolver};

const TENANT: &str = "acme";

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
    /// Longest replication delay, in steps.
    pub max_delay: u64,
    /// Chance that a replicated item is delivered twice.
    pub duplicate_rate: f64,
    /// Chance that a client delivers the same event twice.
    pub redeliver_rate: f64,
    /// Chance that a write is throttled (each attempt; three attempts, then the dead-letter queue).
    pub throttle_rate: f64,
    /// Chance that a write commits but its acknowledgement is lost (the client retries).
    pub crash_rate: f64,
    /// Cut one region off replication for a while (chosen by the seed).
    pub partition: bool,
    /// Swap every region to the second policy at this step.
    pub swap_at: Option<usize>,
    /// Resolve conflicts (false: plain Global Tables, last writer wins on the whole item).
    pub reconcile: bool,
    /// Record every write, delivery and resolution in the report.
    pub trace: bool,
    /// Record every conflict resolved (or not) in this log, as the reconcile path does.
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
            max_delay: 6,
            duplicate_rate: 0.1,
            redeliver_rate: 0.08,
            throttle_rate: 0.05,
            crash_rate: 0.04,
            partition: true,
            swap_at: None,
            reconcile: true,
            trace: false,
            conflict_log: None,
        }
    }
}

/// The policies of a run: the first, and optionally the one swapped in at `swap_at`.
#[derive(Clone, Debug)]
pub struct SimPolicies {
    pub first: Arc<Policy>,
    pub second: Option<Arc<Policy>>,
    pub config: String,
}

/// One point of the timeline (per step).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub step: usize,
    pub conflicts: usize,
    /// Replicated items sent but not yet delivered.
    pub in_flight: usize,
    /// Parties whose copies differ between regions.
    pub diverged: usize,
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub events: usize,
    pub writes: usize,
    pub duplicates_suppressed: usize,
    pub stale_fields: usize,
    pub refused_deleted: usize,
    pub throttled_retries: usize,
    pub lost_acks_retried: usize,
    pub replicated: usize,
    pub overwrites: usize,
    pub conflicts: usize,
    pub dominated: usize,
    pub resolutions_by_policy: BTreeMap<String, usize>,
    pub rejected: usize,
    pub dead_lettered: usize,
    /// Why things were dead-lettered, with counts.
    pub dead_letter_reasons: BTreeMap<String, usize>,
    pub redriven: usize,
    pub partition: Option<(String, usize, usize)>,
    pub swapped_at: Option<usize>,
    pub converged: bool,
    pub settle_rounds: usize,
    /// Acknowledged updates that the final state neither holds nor superseded.
    pub lost: Vec<String>,
    pub acknowledged: usize,
    pub applied_twice_in_a_region: usize,
    pub dead_letters_left: usize,
    pub violations: Vec<String>,
    pub timeline: Vec<Sample>,
    /// What happened, step by step (when `SimConfig::trace` is set).
    pub trace: Vec<String>,
    pub elapsed: Duration,
}

impl SimReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// A stored item: the party version and Global Tables' write timestamp (the writing region's
/// clock, unique per write).
#[derive(Clone, Debug)]
struct Item {
    version: PartyVersion,
    written_at: Hlc,
}

struct Region {
    name: String,
    clock: HlcClock,
    skew: u64,
    table: BTreeMap<String, Item>,
    /// Idempotency records: event id → payload digest.
    applied: HashMap<String, u64>,
    /// The last version this region wrote of each party, kept region-locally (not replicated).
    /// Last-writer-wins can overwrite a region's own write before its reconcile step has run;
    /// a later local write must not build on a version that lost it, or the region's entry in
    /// the version vector would claim a write the item no longer holds.
    own: HashMap<String, PartyVersion>,
    /// How many times each event id changed this region's table (must be at most once).
    effects: HashMap<String, usize>,
    resolver: Resolver,
}

struct Message {
    to: usize,
    party: String,
    item: Item,
    deliver_at: usize,
    seq: usize,
}

/// A client event: a TMF632 write of one party.
#[derive(Clone, Debug)]
struct Event {
    id: String,
    party: String,
    body: EventBody,
}

#[derive(Clone, Debug)]
enum EventBody {
    Create(Value),
    Change(Map<String, Value>),
    Delete,
}

enum DeadLetter {
    Event {
        region: usize,
        event: Event,
    },
    Conflict {
        region: usize,
        party: String,
        overwritten: Item,
    },
}

/// An acknowledged update, to check against the final state.
#[derive(Clone, Debug)]
struct Ack {
    party: String,
    field: String,
    element: Option<String>,
    value: String,
    stamp: Hlc,
}

struct World<'a> {
    config: &'a SimConfig,
    policies: &'a SimPolicies,
    registry: Arc<TenantPolicies>,
    /// Client traffic and its faults.
    rng: ChaCha8Rng,
    /// Replication of client writes.
    net: ChaCha8Rng,
    /// Everything the reconcile path draws (its faults, the replication of its writes), kept
    /// apart so a run without reconciliation sees the same client schedule.
    fix: ChaCha8Rng,
    regions: Vec<Region>,
    messages: Vec<Message>,
    seq: usize,
    partition: Option<(usize, usize, usize)>,
    dead: Vec<DeadLetter>,
    acks: Vec<Ack>,
    /// Stamps of every write applied to a field (key `None`) or an array element (`Some(key)`),
    /// acknowledged or not: what can supersede an acknowledged update.
    writes: HashMap<(String, String, Option<String>), Vec<Hlc>>,
    deletes: HashSet<String>,
    retries: Vec<(usize, usize, Event)>,
    report: SimReport,
    step: usize,
}

fn payload_digest(event: &Event) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    format!("{:?}", event.body).hash(&mut h);
    h.finish()
}

fn individual(id: &str, k: usize) -> Value {
    json!({
        "id": id, "@type": "Individual", "givenName": (["Jane", "Carlos", "Mei", "Ola"][k % 4]),
        "familyName": (["Lamborgizzia", "Mafalda", "Tan", "Nordmann"][k % 4]), "status": "initialized",
        "contactMedium": [{"id": "cm-0", "@type": "EmailContactMedium", "mediumType": "email", "emailAddress": format!("p{k}@example.com")}],
        "partyCharacteristic": [{"name": "hobby", "value": "Cinema"}],
    })
}

impl<'a> World<'a> {
    fn new(config: &'a SimConfig, policies: &'a SimPolicies) -> Self {
        let registry = Arc::new(TenantPolicies::new());
        registry.activate(
            TENANT,
            ActivePolicy::new(policies.first.clone()).with_config(policies.config.clone()),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let regions = config
            .regions
            .iter()
            .map(|name| Region {
                name: name.clone(),
                clock: HlcClock::new(name.clone()),
                skew: rng.random_range(0..5),
                table: BTreeMap::new(),
                applied: HashMap::new(),
                own: HashMap::new(),
                effects: HashMap::new(),
                resolver: Resolver::new(registry.clone(), name.clone()),
            })
            .collect::<Vec<_>>();
        let partition = (config.partition && regions.len() > 1).then(|| {
            let r = rng.random_range(0..regions.len());
            let start = rng.random_range(config.steps / 6..config.steps / 2 + 1);
            let end = (start + config.steps / 3).min(config.steps);
            (r, start, end)
        });
        World {
            config,
            policies,
            registry,
            rng,
            net: ChaCha8Rng::seed_from_u64(config.seed ^ 0x6e65_7477_6f72_6b00),
            fix: ChaCha8Rng::seed_from_u64(config.seed ^ 0x7265_636f_6e63_696c),
            regions,
            messages: Vec::new(),
            seq: 0,
            partition,
            dead: Vec::new(),
            acks: Vec::new(),
            writes: HashMap::new(),
            deletes: HashSet::new(),
            retries: Vec::new(),
            report: SimReport {
                seed: config.seed,
                ..SimReport::default()
            },
            step: 0,
        }
    }

    fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.config.trace {
            let line = format!("step {:>3}: {}", self.step, what());
            self.report.trace.push(line);
        }
    }

    fn now(&self, region: usize) -> u64 {
        1_700_000_000_000 + self.step as u64 * 10 + self.regions[region].skew
    }

    /// A client event for `party`, drawn with the same number of random draws whatever the
    /// region holds, so that runs with and without reconciliation see the same schedule.
    fn draw_event(&mut self, region: usize, party: &str, n: usize) -> Event {
        let kind = self.rng.random_range(0..100u32);
        let a = self.rng.random_range(0..6u32);
        let b = self.rng.random_range(0..4u32);
        let id = format!("ev-{}-{n}", self.config.seed);
        let current = self.regions[region]
            .table
            .get(party)
            .and_then(|i| to_tmf(&i.version));
        let body = match (kind, current) {
            (0..=1, Some(_)) => EventBody::Delete,
            (_, None) => EventBody::Create(individual(party, a as usize)),
            (3..25, Some(_)) => {
                let status = ["initialized", "validated", "validated", "deceased"][b as usize];
                EventBody::Change(json!({"status": status}).as_object().unwrap().clone())
            }
            (25..60, Some(cur)) => {
                let mut media = cur
                    .get("contactMedium")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let id = format!("cm-{}", a % 4);
                let at = media.iter().position(|m| m["id"] == id.as_str());
                match (b, at) {
                    (0, Some(i)) => {
                        media.remove(i);
                    }
                    (_, Some(i)) => media[i]["emailAddress"] = json!(format!("{id}-{n}@example.com")),
                    (_, None) => media.push(json!({"id": id, "@type": "EmailContactMedium", "mediumType": "email", "emailAddress": format!("{id}-{n}@example.com")})),
                }
                EventBody::Change(json!({"contactMedium": media}).as_object().unwrap().clone())
            }
            (_, Some(_)) => {
                let field = [
                    "givenName",
                    "familyName",
                    "maritalStatus",
                    "nationality",
                    "gender",
                    "preferredGivenName",
                ][a as usize];
                EventBody::Change(
                    json!({ field: format!("{field}-{n}") })
                        .as_object()
                        .unwrap()
                        .clone(),
                )
            }
        };
        Event {
            id,
            party: party.to_owned(),
            body,
        }
    }

    /// The ingest path in one region: idempotency, throttling, stamped write, replication.
    /// Returns whether the client got an acknowledgement.
    fn ingest(&mut self, region: usize, event: &Event, faults: bool) -> bool {
        let digest = payload_digest(event);
        if let Some(first) = self.regions[region].applied.get(&event.id) {
            self.report.duplicates_suppressed += 1;
            return *first == digest; // same payload: the first result again
        }
        // Throttling: three attempts, each throttled with some chance; then the dead-letter queue.
        let mut attempts = 0;
        while faults && self.rng.random_bool(self.config.throttle_rate) {
            attempts += 1;
            self.report.throttled_retries += 1;
            if attempts == 3 {
                self.dead_letter(
                    DeadLetter::Event {
                        region,
                        event: event.clone(),
                    },
                    "ingest write throttled beyond retries",
                );
                return false;
            }
        }
        // Drawn before anything that depends on replicated state, so that runs with and
        // without reconciliation draw the same numbers.
        let crash = faults && self.rng.random_bool(self.config.crash_rate);
        let failover = self.rng.random_bool(0.3);
        let failover_to = self.rng.random_range(0..self.regions.len());
        let now = self.now(region);
        let existing = self.catch_up(region, &event.party);
        let r = &mut self.regions[region];
        let mut version = match (&existing, &event.body) {
            (Some(item), _)
                if item.version.tombstone.is_none()
                    || matches!(event.body, EventBody::Create(_)) =>
            {
                item.version.clone()
            }
            (Some(_), _) => {
                self.report.refused_deleted += 1;
                r.applied.insert(event.id.clone(), digest);
                return true; // acknowledged as refused: the party is deleted (nothing to check)
            }
            (None, EventBody::Create(_)) => {
                new_party(TENANT, &event.party, ResourceType::Individual, &r.name)
            }
            (None, _) => {
                self.report.refused_deleted += 1;
                return true;
            }
        };
        let stamp = r.clock.now(now);
        let dot = tick(&mut version, &r.name);
        let mut acks = Vec::new();
        let mut recorded = Vec::new();
        match &event.body {
            EventBody::Create(_) | EventBody::Change(_) => {
                let members = match &event.body {
                    EventBody::Create(body) => {
                        body.as_object().expect("a created party is an object")
                    }
                    EventBody::Change(members) => members,
                    EventBody::Delete => unreachable!(),
                };
                let before = version.clone();
                let out = write_fields(&mut version, members, &stamp, &dot);
                self.report.stale_fields += out.stale.len();
                for f in &out.applied {
                    acks.push((f.clone(), members[f].clone()));
                    recorded.push((
                        f.clone(),
                        before.field(f).cloned(),
                        version.field(f).cloned(),
                    ));
                }
            }
            EventBody::Delete => {
                delete(&mut version, &stamp);
                self.deletes.insert(event.party.clone());
            }
        }
        let item = Item {
            version,
            written_at: stamp.clone(),
        };
        r.table.insert(event.party.clone(), item.clone());
        r.own.insert(event.party.clone(), item.version.clone());
        r.applied.insert(event.id.clone(), digest);
        *r.effects.entry(event.id.clone()).or_default() += 1;
        let name = r.name.clone();
        for (f, before, after) in recorded {
            self.record_writes(
                &event.party,
                &f,
                before.as_ref(),
                after.as_ref(),
                &stamp,
                &dot,
            );
        }
        self.trace(|| {
            format!(
                "{name} applies {} to {} at {stamp}: {:?} → {}",
                event.id,
                event.party,
                event.body,
                show(&item.version)
            )
        });
        self.report.writes += 1;
        self.replicate(region, &event.party, &item, false);
        if crash {
            // Committed, but the acknowledgement is lost: the client retries the same event,
            // at the same region or, failing over, at another one.
            let to = if failover { failover_to } else { region };
            self.retries.push((self.step + 2, to, event.clone()));
            self.report.lost_acks_retried += 1;
            return false;
        }
        let written = self.regions[region].table[&event.party].version.clone();
        for (field, value) in acks {
            self.ack(&written, &field, &value, &stamp, &dot);
        }
        true
    }

    /// Records the writes a client write made: the field, and each element it added, changed
    /// or removed.
    fn record_writes(
        &mut self,
        party: &str,
        field: &str,
        before: Option<&policy_types::Field>,
        after: Option<&policy_types::Field>,
        stamp: &Hlc,
        dot: &policy_types::Dot,
    ) {
        let mut keys: Vec<Option<String>> = vec![None];
        let elements = |f: Option<&policy_types::Field>| match f.map(|f| &f.value) {
            Some(FieldValue::Elements(e)) => e.clone(),
            _ => Vec::new(),
        };
        let (old, new) = (elements(before), elements(after));
        keys.extend(
            old.iter()
                .filter(|e| !new.iter().any(|n| n.key == e.key))
                .map(|e| Some(e.key.clone())),
        );
        keys.extend(
            new.iter()
                .filter(|e| e.entries.iter().any(|x| &x.dot == dot))
                .map(|e| Some(e.key.clone())),
        );
        for key in keys {
            self.writes
                .entry((party.to_owned(), field.to_owned(), key))
                .or_default()
                .push(stamp.clone());
        }
    }

    /// Records what a write acknowledged: a scalar field, or the array elements it added or
    /// changed (elements it carried unchanged keep their earlier write and are not updates).
    fn ack(
        &mut self,
        written: &PartyVersion,
        field: &str,
        value: &Value,
        stamp: &Hlc,
        dot: &policy_types::Dot,
    ) {
        self.report.acknowledged += 1;
        let party = written.party_id.as_str();
        let produced = |key: &str| match written.field(field).map(|f| &f.value) {
            Some(FieldValue::Elements(els)) => els
                .iter()
                .any(|e| e.key == key && e.entries.iter().any(|x| &x.dot == dot)),
            _ => false,
        };
        match value.as_array().filter(|a| a.iter().all(Value::is_object)) {
            Some(items) => {
                for e in items
                    .iter()
                    .filter(|e| produced(&party_model::element_key(e)))
                {
                    self.acks.push(Ack {
                        party: party.to_owned(),
                        field: field.to_owned(),
                        element: Some(party_model::element_key(e)),
                        value: party_model::canonical_json(e),
                        stamp: stamp.clone(),
                    });
                }
            }
            None => self.acks.push(Ack {
                party: party.to_owned(),
                field: field.to_owned(),
                element: None,
                value: party_model::canonical_json(value),
                stamp: stamp.clone(),
            }),
        }
    }

    fn replicate(&mut self, from: usize, party: &str, item: &Item, resolved: bool) {
        for to in 0..self.regions.len() {
            if to == from {
                continue;
            }
            let rng = if resolved {
                &mut self.fix
            } else {
                &mut self.net
            };
            let copies = if rng.random_bool(self.config.duplicate_rate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let rng = if resolved {
                    &mut self.fix
                } else {
                    &mut self.net
                };
                let delay = rng.random_range(1..=self.config.max_delay) as usize;
                self.seq += 1;
                self.messages.push(Message {
                    to,
                    party: party.to_owned(),
                    item: item.clone(),
                    deliver_at: self.step + delay,
                    seq: self.seq,
                });
                self.report.replicated += 1;
            }
        }
    }

    /// Global Tables in the receiving region: last writer wins on the write timestamp; an
    /// overwrite appears on the region's stream, and the reconcile step resolves it.
    fn receive(&mut self, m: Message) {
        let region = m.to;
        let local = self.regions[region].table.get(&m.party).cloned();
        if local
            .as_ref()
            .is_some_and(|l| m.item.written_at <= l.written_at)
        {
            return; // the incoming write loses; nothing reaches this region's stream
        }
        // The region's clock moves past every stamp it stores, so its next write follows them.
        if let Some(s) = m.item.version.max_stamp() {
            let now = self.now(region);
            self.regions[region].clock.observe(s, now);
        }
        self.regions[region]
            .table
            .insert(m.party.clone(), m.item.clone());
        let name = self.regions[region].name.clone();
        self.trace(|| {
            format!(
                "{name} takes replicated {} from {} (overwrites: {})",
                m.party,
                m.item.written_at.region,
                local.is_some()
            )
        });
        let Some(local) = local else { return };
        self.report.overwrites += 1;
        if !self.config.reconcile {
            return;
        }
        self.reconcile(region, &m.party, local);
    }

    /// The reconcile function for one stream record: the overwritten version against the new one.
    fn reconcile(&mut self, region: usize, party: &str, overwritten: Item) {
        let current = self.regions[region].table[party].clone();
        match compare_vectors(
            &current.version.version_vector,
            &overwritten.version.version_vector,
        ) {
            VectorOrder::Dominates | VectorOrder::Equal => {
                self.report.dominated += 1;
                return;
            }
            // Last-writer-wins put an older version over a newer one: the host restores it.
            VectorOrder::DominatedBy => self.report.dominated += 1,
            VectorOrder::Concurrent => {
                self.report.conflicts += 1;
                if let Some(s) = self.report.timeline.last_mut() {
                    s.conflicts += 1;
                }
            }
        }
        let resolved = self.regions[region]
            .resolver
            .resolve(&overwritten.version, &current.version);
        self.log_conflict(region, &overwritten.version, &current.version, &resolved);
        let reason = match resolved {
            Ok(r) => {
                if let Some(d) = &r.policy_digest {
                    *self
                        .report
                        .resolutions_by_policy
                        .entry(d.clone())
                        .or_default() += 1;
                }
                let written = r.written(&overwritten.version, &current.version).cloned();
                match (r.decision, written) {
                    (Decision::Rejected(reason), _) => {
                        self.report.rejected += 1;
                        Some(reason)
                    }
                    (_, Some(party_version)) => {
                        if self
                            .fix
                            .random_bool(self.config.throttle_rate * self.config.throttle_rate)
                        {
                            Some("reconcile write throttled beyond retries".to_owned())
                        } else {
                            self.write_resolved(region, party, party_version);
                            None
                        }
                    }
                    (_, None) => Some("no party in the resolution".to_owned()),
                }
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = reason {
            self.dead_letter(
                DeadLetter::Conflict {
                    region,
                    party: party.to_owned(),
                    overwritten,
                },
                &reason,
            );
        }
    }

    /// Records a conflict the policy decided (or failed on) in the configured log.
    fn log_conflict(
        &self,
        region: usize,
        local: &PartyVersion,
        remote: &PartyVersion,
        resolved: &Result<crate::resolver::Resolved, crate::resolver::ResolveFailure>,
    ) {
        let Some(log) = &self.config.conflict_log else {
            return;
        };
        let now = self.now(region);
        let outcome = match resolved {
            Ok(r) => ConflictOutcome::from_resolved("simulation", now, r, local, remote),
            Err(e) => ConflictOutcome::failed("simulation", now, "failed", &e.to_string(), None),
        };
        let resolver = &self.regions[region].resolver;
        if let Some(record) = ConflictRecord::for_resolver(resolver, local, remote, now, outcome)
            && let Err(e) = log.record(&record)
        {
            tracing::warn!(error = %e, "sim.log_failed");
        }
    }

    /// The item a local write builds on: the stored one, merged first with this region's own
    /// last write if last-writer-wins overwrote that write and no reconcile has restored it yet.
    fn catch_up(&mut self, region: usize, party: &str) -> Option<Item> {
        let r = &self.regions[region];
        let current = r.table.get(party).cloned()?;
        if !self.config.reconcile {
            return Some(current); // plain Global Tables: nothing restores a lost write
        }
        let Some(own) = r.own.get(party) else {
            return Some(current);
        };
        let mine = own
            .version_vector
            .iter()
            .find(|d| d.region == r.name)
            .cloned();
        if mine.is_none_or(|d| policy_types::covers(&current.version.version_vector, &d)) {
            return Some(current);
        }
        let (name, own) = (r.name.clone(), own.clone());
        self.trace(|| format!("{name} catches up {party}: its own last write was overwritten"));
        match self.regions[region]
            .resolver
            .resolve(&own, &current.version)
        {
            Ok(resolved) => {
                if let Some(d) = &resolved.policy_digest {
                    *self
                        .report
                        .resolutions_by_policy
                        .entry(d.clone())
                        .or_default() += 1;
                    self.report.conflicts += 1;
                }
                resolved
                    .written(&own, &current.version)
                    .cloned()
                    .map(|version| Item {
                        version,
                        written_at: current.written_at.clone(),
                    })
                    .or(Some(current))
            }
            Err(_) => Some(current),
        }
    }

    fn dead_letter(&mut self, letter: DeadLetter, reason: &str) {
        self.dead.push(letter);
        self.report.dead_lettered += 1;
        *self
            .report
            .dead_letter_reasons
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    fn write_resolved(&mut self, region: usize, party: &str, version: PartyVersion) {
        let name = self.regions[region].name.clone();
        self.trace(|| format!("{name} writes resolved {party}: {}", show(&version)));
        let now = self.now(region);
        let r = &mut self.regions[region];
        let stamp = r.clock.now(now);
        let item = Item {
            version,
            written_at: stamp,
        };
        r.table.insert(party.to_owned(), item.clone());
        // The region's own last write stays the reference until a version that holds it is written.
        let holds_own = r.own.get(party).is_some_and(|own| {
            own.version_vector
                .iter()
                .filter(|d| d.region == r.name)
                .all(|d| policy_types::covers(&item.version.version_vector, d))
        });
        if holds_own {
            r.own.insert(party.to_owned(), item.version.clone());
        }
        self.replicate(region, party, &item, true);
    }

    fn deliver_due(&mut self, all: bool) {
        let step = self.step;
        let partition = self.partition;
        let held = |m: &Message, from_cut: bool| !all && (m.deliver_at > step || from_cut);
        let mut due: Vec<Message> = Vec::new();
        let mut keep = Vec::new();
        for m in self.messages.drain(..) {
            let cut = partition.is_some_and(|(r, s, e)| {
                step >= s
                    && step < e
                    && (r == m.to || m.item.written_at.region == self.regions[r].name)
            });
            if held(&m, cut) {
                keep.push(m)
            } else {
                due.push(m)
            }
        }
        self.messages = keep;
        due.sort_by_key(|m| (m.deliver_at, m.seq));
        for m in due {
            self.receive(m);
        }
    }

    fn sample(&mut self) {
        let diverged = (0..self.config.parties)
            .filter(|p| {
                let id = format!("p{p}");
                let copies: Vec<Option<&PartyVersion>> = self
                    .regions
                    .iter()
                    .map(|r| r.table.get(&id).map(|i| &i.version))
                    .collect();
                copies.windows(2).any(|w| !same(w[0], w[1]))
            })
            .count();
        self.report.timeline.push(Sample {
            step: self.step,
            conflicts: 0,
            in_flight: self.messages.len(),
            diverged,
        });
    }

    fn run(mut self) -> SimReport {
        let start = Instant::now();
        let mut n = 0;
        for step in 0..self.config.steps {
            self.step = step;
            self.sample();
            if self.config.swap_at == Some(step)
                && let Some(second) = &self.policies.second
            {
                self.registry.activate(
                    TENANT,
                    ActivePolicy::new(second.clone()).with_config(self.policies.config.clone()),
                );
                self.report.swapped_at = Some(step);
            }
            let retries: Vec<_> = self
                .retries
                .iter()
                .filter(|(at, _, _)| *at == step)
                .cloned()
                .collect();
            for (_, region, event) in retries {
                self.report.events += 1;
                self.ingest(region, &event, true);
            }
            for region in 0..self.regions.len() {
                if !self.rng.random_bool(self.config.write_rate) {
                    continue;
                }
                let party = format!("p{}", self.rng.random_range(0..self.config.parties));
                n += 1;
                let event = self.draw_event(region, &party, n);
                self.report.events += 1;
                self.ingest(region, &event, true);
                if self.rng.random_bool(self.config.redeliver_rate) {
                    // The client (or SQS) delivers the same event again, here or elsewhere.
                    let again = self.rng.random_range(0..self.regions.len());
                    self.report.events += 1;
                    self.ingest(again, &event, true);
                }
            }
            self.deliver_due(false);
        }
        // Heal: retries still pending, every message delivered, the dead-letter queue redriven.
        self.step = self.config.steps;
        for (_, region, event) in std::mem::take(&mut self.retries) {
            self.report.events += 1;
            self.ingest(region, &event, false);
        }
        let partition = self.partition.take();
        let mut rounds = 0;
        loop {
            rounds += 1;
            self.step += 1;
            self.deliver_due(true);
            let dead = std::mem::take(&mut self.dead);
            let redrive = !dead.is_empty();
            for d in dead {
                self.report.redriven += 1;
                match d {
                    // A redrive runs once the throttling has cleared.
                    DeadLetter::Event { region, event, .. } => {
                        self.ingest(region, &event, false);
                    }
                    DeadLetter::Conflict {
                        region,
                        party,
                        overwritten,
                        ..
                    } => self.reconcile(region, &party, overwritten),
                }
            }
            if (self.messages.is_empty() && !redrive) || rounds > 200 {
                break;
            }
        }
        self.report.settle_rounds = rounds;
        self.report.partition = partition.map(|(x, s, e)| (self.regions[x].name.clone(), s, e));
        self.sample();
        self.finish(start)
    }

    fn finish(mut self, start: Instant) -> SimReport {
        let r = &mut self.report;
        // 1. Convergence.
        let first = &self.regions[0];
        r.converged = self.regions.iter().all(|other| {
            first.table.len() == other.table.len()
                && first.table.iter().all(|(k, v)| {
                    other
                        .table
                        .get(k)
                        .is_some_and(|o| same(Some(&v.version), Some(&o.version)))
                })
        });
        if !r.converged {
            r.violations.push("the regions did not converge".to_owned());
        }
        // 2. Nothing acknowledged lost.
        let lost: Vec<String> = self
            .acks
            .iter()
            .filter(|a| !survives(a, &first.table, &self.writes))
            .map(describe_ack)
            .collect();
        if self.config.reconcile && !lost.is_empty() {
            r.violations
                .push(format!("{} acknowledged updates lost", lost.len()));
        }
        r.lost = lost;
        // 3. One effect per idempotency key in each region.
        r.applied_twice_in_a_region = self
            .regions
            .iter()
            .map(|region| region.effects.values().filter(|n| **n > 1).count())
            .sum();
        if r.applied_twice_in_a_region > 0 {
            r.violations.push(format!(
                "{} events applied more than once in one region",
                r.applied_twice_in_a_region
            ));
        }
        // 4. Dead-letter queue empty after redrive.
        r.dead_letters_left = self.dead.len();
        if r.dead_letters_left > 0 {
            r.violations.push(format!(
                "{} dead letters left after redrive",
                r.dead_letters_left
            ));
        }
        r.elapsed = start.elapsed();
        self.report
    }
}

fn show(v: &PartyVersion) -> String {
    let vv: Vec<String> = v
        .version_vector
        .iter()
        .map(|d| format!("{}:{}", d.region, d.counter))
        .collect();
    let body = to_tmf(v)
        .map(|t| t.to_string())
        .unwrap_or_else(|| "(deleted)".into());
    format!("[{}] {body}", vv.join(" "))
}

fn same(a: Option<&PartyVersion>, b: Option<&PartyVersion>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            x.fields == y.fields
                && x.tombstone == y.tombstone
                && x.version_vector == y.version_vector
        }
        (None, None) => true,
        _ => false,
    }
}

fn describe_ack(a: &Ack) -> String {
    match &a.element {
        Some(k) => format!("{}.{}[{k}] = {} at {}", a.party, a.field, a.value, a.stamp),
        None => format!("{}.{} = {} at {}", a.party, a.field, a.value, a.stamp),
    }
}

/// Whether an acknowledged update is in the final state or was superseded: by a later write
/// to the same field (or element), by a delete, or under the policy's own rules (a status later
/// in the lifecycle; with the NA system-of-record policy, NA's status).
fn survives(
    a: &Ack,
    table: &BTreeMap<String, Item>,
    writes: &HashMap<(String, String, Option<String>), Vec<Hlc>>,
) -> bool {
    let Some(item) = table.get(&a.party) else {
        return false;
    };
    let v = &item.version;
    if v.tombstone.is_some() {
        return true; // deleted: every update the delete did not see lost to it by rule
    }
    let later = writes
        .get(&(a.party.clone(), a.field.clone(), a.element.clone()))
        .is_some_and(|stamps| stamps.iter().any(|s| *s > a.stamp));
    if later {
        return true;
    }
    let Some(field) = v.field(&a.field) else {
        return false;
    };
    match (&a.element, &field.value) {
        (None, FieldValue::Json(text)) => {
            let rank = |t: &str| tmf632_merge::lifecycle_rank(v.resource_type, t);
            *text == a.value
                || (a.field == "status"
                    && (rank(text) > rank(&a.value) || field.stamp.region == "na"))
        }
        (Some(key), FieldValue::Elements(elements)) => {
            elements.iter().find(|e| &e.key == key).is_some_and(|e| {
                e.entries
                    .iter()
                    .any(|x| x.value == a.value || x.stamp > a.stamp)
            })
        }
        _ => false,
    }
}

/// Runs one simulation.
pub fn run(config: &SimConfig, policies: &SimPolicies) -> SimReport {
    World::new(config, policies).run()
}
