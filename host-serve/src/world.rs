//! The embedded world in real time: one region per name, each the same [`Ingest`] and
//! [`Reconcile`] the Lambda functions run, over a [`MemoryStore`] replica made durable by
//! [`Durable`]; the Global Tables model between them (every local write travels to every other
//! region after the replication lag, unless a partition cuts the link, and is applied last
//! writer wins); the Streams model (each region's stream records handed to its reconcile in
//! order, a failed record retried); the dead letters redriven; the tenants' policies followed
//! from the registry directory.
//!
//! One driver thread moves all of it every few milliseconds; requests run on the server's
//! threads against the same stores.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use host_core::conflict::CapturedConflict;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictQuery, ConflictRecord, DirConflictLog, LogError,
    LogObserver, Observed,
};
use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::registry::local::LocalRegistry;
use host_core::store::memory::{Clock, MemoryStore, Replicated, StreamRecord};
use host_core::{
    ActivePolicy, ArtifactCache, Limits, Metering, Policy, PolicyEngine, RegistryFollower,
    Resolver, TenantPolicies,
};

use crate::durable::{Durable, DurableLetters};
use crate::hub::{Hubs, Schedule};

/// How a `serve` world is laid out.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub regions: Vec<String>,
    pub data_dir: PathBuf,
    /// How long a write takes to reach the other regions.
    pub lag: Duration,
    /// The policy registry directory (followed like the Lambda functions follow theirs).
    pub registry_dir: PathBuf,
    /// The conflict log directory.
    pub log_dir: PathBuf,
    /// How stale a tenant's policy may be.
    pub refresh: Duration,
    /// Where precompiled policies are kept.
    pub cache_dir: Option<PathBuf>,
    /// Tenants whose policy is followed from the start (others from their first request).
    pub tenants: Vec<String>,
    /// How a hub delivery is retried before it is dead-lettered.
    pub hub: Schedule,
}

impl WorldConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        WorldConfig {
            regions: vec!["apac".into(), "eu".into(), "na".into()],
            registry_dir: data_dir.join("registry"),
            log_dir: data_dir.join("conflicts"),
            data_dir,
            lag: Duration::from_millis(200),
            refresh: Duration::from_secs(2),
            cache_dir: None,
            tenants: vec!["acme".into()],
            hub: Schedule::default(),
        }
    }
}

pub type RegionIngest = Ingest<Arc<MemoryStore>, Arc<DurableLetters>>;
pub type RegionReconcile = Reconcile<Arc<MemoryStore>, Arc<DurableLetters>>;

/// One region: its store, dead letters, ingest and reconcile.
pub struct Region {
    pub name: String,
    pub store: Arc<MemoryStore>,
    pub letters: Arc<DurableLetters>,
    pub ingest: RegionIngest,
    pub reconcile: RegionReconcile,
    /// Stream records not yet reconciled (a failed one stays first).
    stream: Mutex<VecDeque<StreamRecord>>,
    retry_at: Mutex<Option<Instant>>,
}

/// A write on its way from one region to another.
struct Flight {
    from: usize,
    to: usize,
    /// Shared by the flights of one write to each other region.
    write: Arc<Replicated>,
    due: Instant,
}

#[derive(Default)]
struct Net {
    flights: VecDeque<Flight>,
    /// Cut links, `(from, to)`: a partition cuts both directions, a one-way one a single one.
    cuts: BTreeSet<(usize, usize)>,
}

/// A policy swap seen by the world (the registry follower loaded a new active version).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Swap {
    pub at_ms: u64,
    pub tenant: String,
    pub from: Option<String>,
    pub to: String,
}

/// Counters for the page and the logs.
#[derive(Debug, Default)]
pub struct Counters {
    pub replicated: AtomicU64,
    pub stream_records: AtomicU64,
    pub reconciled: AtomicU64,
    pub redriven: AtomicU64,
}

pub struct World {
    pub config: WorldConfig,
    pub regions: Vec<Region>,
    pub durable: Arc<Durable>,
    pub log: Arc<RecentLog>,
    pub follower: Arc<RegistryFollower>,
    pub hubs: Arc<Hubs>,
    pub counters: Counters,
    net: Mutex<Net>,
    tenants: Mutex<BTreeSet<String>>,
    swaps: Mutex<Vec<Swap>>,
    stop: AtomicBool,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Ticks of the driver that panicked (each is logged; the next tick runs again).
    pub driver_panics: AtomicU64,
    /// When the driver last finished a tick (ms since the epoch).
    pub driver_tick_ms: AtomicU64,
    started_ms: u64,
}

/// The most tenants followed: a tenant is followed from its first request, so that a stream
/// of made-up tenant names cannot grow the refresh work without bound.
pub const MAX_TENANTS: usize = 256;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl World {
    /// Opens the data directory, restores every region, catches the regions up with each
    /// other, and starts the driver thread.
    pub fn start(config: WorldConfig) -> anyhow::Result<Arc<World>> {
        if config.regions.is_empty() {
            anyhow::bail!("at least one region is needed");
        }
        let mut seen = HashSet::new();
        for r in &config.regions {
            if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                anyhow::bail!("region name {r:?}: use letters, digits and '-'");
            }
            if !seen.insert(r) {
                anyhow::bail!("region {r} is named twice");
            }
        }
        let (durable, loaded) = Durable::open(&config.data_dir)?;
        std::fs::create_dir_all(&config.registry_dir).with_context(|| {
            format!(
                "creating the registry directory {}",
                config.registry_dir.display()
            )
        })?;
        let engine = PolicyEngine::new(Limits::default(), Metering::Epoch)
            .context("building the policy engine")?;
        let cache = config.cache_dir.as_ref().map(ArtifactCache::new);
        let default = Policy::load(
            &engine,
            default_policy_artifact::DEFAULT_POLICY,
            cache.as_ref(),
        )
        .context("loading the embedded default policy")?;
        let policies = Arc::new(TenantPolicies::new());
        policies.set_default(ActivePolicy::new(Arc::new(default)));
        let follower = Arc::new(RegistryFollower::new(
            Arc::new(LocalRegistry::new(&config.registry_dir)),
            policies,
            engine,
            cache,
            config.refresh,
        ));
        let log = Arc::new(RecentLog {
            log: DirConflictLog::new(&config.log_dir),
            observer: Recent::default(),
        });
        let mut letters_by_region: std::collections::HashMap<String, Vec<_>> = Default::default();
        for (id, letter) in loaded.letters {
            letters_by_region
                .entry(letter.region.clone())
                .or_default()
                .push((id, letter));
        }
        let mut changes = loaded.changes;
        let clock: Clock = Arc::new(now_ms);
        let mut regions = Vec::new();
        for name in &config.regions {
            let store =
                MemoryStore::replica(name.clone(), clock.clone()).with_journal(durable.clone());
            let restored = changes.remove(name).unwrap_or_default();
            for change in restored {
                store.load(change);
            }
            let store = Arc::new(store);
            let letters = Arc::new(DurableLetters::new(
                durable.clone(),
                letters_by_region.remove(name).unwrap_or_default(),
            ));
            let resolver = Arc::new(Resolver::new(follower.clone(), name));
            let ingest = Ingest::new(store.clone(), letters.clone(), IngestConfig::new(name))
                .with_resolver(resolver.clone())
                .with_conflict_log(log.clone());
            let reconcile = Reconcile::new(store.clone(), letters.clone(), resolver)
                .with_conflict_log(log.clone());
            regions.push(Region {
                name: name.clone(),
                store,
                letters,
                ingest,
                reconcile,
                stream: Mutex::new(VecDeque::new()),
                retry_at: Mutex::new(None),
            });
        }
        for (region, left) in &changes {
            tracing::warn!(
                region,
                items = left.len(),
                "serve.restore.region_not_served"
            );
        }
        // What was in flight when the process stopped is lost: each region catches up from
        // the others' items, and an own write that the stored party lacks is reconciled again.
        for to in &regions {
            for from in &regions {
                if from.name != to.name {
                    for item in from.store.items() {
                        to.store.apply_replicated(&item);
                    }
                }
            }
        }
        for r in &regions {
            let n = r.store.requeue_unmerged();
            if n > 0 {
                tracing::info!(region = %r.name, parties = n, "serve.restore.requeued");
            }
        }
        let hubs = Arc::new(Hubs::open(config.data_dir.join("hubs.json"), config.hub)?);
        // Before the driver notices a stream record or a request writes, the hub keeps what it
        // owes in the store, and queues again what it owed when the process stopped (sent once
        // its deliverer runs: `crate::start`). An unreadable outbox is logged, not fatal: the
        // regions serve, the hub delivers without keeping what it owes.
        if let Err(e) = hubs.attach(durable.clone()) {
            tracing::error!(error = %format!("{e:#}"), "serve.hub.restore_failed");
        }
        let tenants = config.tenants.iter().cloned().collect();
        let world = Arc::new(World {
            config,
            regions,
            durable,
            log,
            follower,
            hubs,
            counters: Counters::default(),
            net: Mutex::new(Net::default()),
            tenants: Mutex::new(tenants),
            swaps: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            driver: Mutex::new(None),
            driver_panics: AtomicU64::new(0),
            driver_tick_ms: AtomicU64::new(now_ms()),
            started_ms: now_ms(),
        });
        world
            .log
            .observer
            .warm(&world.log.log, &world.config.tenants);
        let driver = world.clone();
        let handle = std::thread::Builder::new()
            .name("serve-driver".into())
            .spawn(move || driver.drive())
            .context("starting the driver")?;
        *world.driver.lock().unwrap() = Some(handle);
        Ok(world)
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Follows `tenant`'s policy from now on (its first request).
    pub fn saw_tenant(&self, tenant: &str) {
        let mut t = self.tenants.lock().unwrap();
        if !t.contains(tenant) {
            if t.len() >= MAX_TENANTS {
                tracing::warn!(tenant, "serve.tenants.not_followed");
                return;
            }
            t.insert(tenant.to_owned());
        }
    }

    pub fn tenants(&self) -> Vec<String> {
        self.tenants.lock().unwrap().iter().cloned().collect()
    }

    /// Cuts the link from `a` to `b`, and back unless `one_way`.
    pub fn partition(&self, a: &str, b: &str, one_way: bool) -> Result<(), String> {
        let (Some(i), Some(j)) = (self.index(a), self.index(b)) else {
            return Err(format!(
                "unknown region in {a}/{b}; regions: {}",
                self.config.regions.join(", ")
            ));
        };
        if i == j {
            return Err(format!("{a} cannot be cut from itself"));
        }
        let mut net = self.net.lock().unwrap();
        net.cuts.insert((i, j));
        if !one_way {
            net.cuts.insert((j, i));
        }
        tracing::info!(from = a, to = b, one_way, "serve.partition");
        Ok(())
    }

    /// Heals every partition: the writes held back drain.
    pub fn heal(&self) {
        self.net.lock().unwrap().cuts.clear();
        tracing::info!("serve.heal");
    }

    /// The cut links, by name.
    pub fn cuts(&self) -> Vec<(String, String)> {
        let net = self.net.lock().unwrap();
        net.cuts
            .iter()
            .map(|(a, b)| (self.regions[*a].name.clone(), self.regions[*b].name.clone()))
            .collect()
    }

    /// Writes in flight per link `(from, to, count)`.
    pub fn backlog(&self) -> Vec<(String, String, usize)> {
        let net = self.net.lock().unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for f in &net.flights {
            *counts.entry((f.from, f.to)).or_insert(0usize) += 1;
        }
        counts
            .into_iter()
            .map(|((a, b), n)| {
                (
                    self.regions[a].name.clone(),
                    self.regions[b].name.clone(),
                    n,
                )
            })
            .collect()
    }

    /// Stream records waiting for each region's reconcile.
    pub fn stream_backlog(&self) -> Vec<(String, usize)> {
        self.regions
            .iter()
            .map(|r| (r.name.clone(), r.stream.lock().unwrap().len()))
            .collect()
    }

    pub fn swaps(&self) -> Vec<Swap> {
        self.swaps.lock().unwrap().clone()
    }

    /// Whether nothing is in flight, unreconciled or dead-lettered (tests wait for it).
    pub fn quiet(&self) -> bool {
        self.net.lock().unwrap().flights.is_empty()
            && self
                .regions
                .iter()
                .all(|r| r.stream.lock().unwrap().is_empty() && r.letters.is_empty())
    }

    /// Stops the driver (its tick in progress finishes) and commits what is queued.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(driver) = self.driver.lock().unwrap().take() {
            let _ = driver.join();
        }
        self.durable.close();
    }

    fn drive(&self) {
        let mut last_redrive = Instant::now();
        let mut last_policy = Instant::now() - Duration::from_secs(3600);
        let mut last_sweep = Instant::now();
        let mut active: std::collections::HashMap<String, String> = Default::default();
        while !self.stop.load(Ordering::SeqCst) {
            // A tick that panics (a bug) is logged and counted, and the next one runs: the
            // regions keep replicating and reconciling whatever one record did.
            let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.send();
                self.receive();
                self.pump();
                if last_redrive.elapsed() >= Duration::from_secs(1) {
                    self.redrive();
                    last_redrive = Instant::now();
                }
                if last_policy.elapsed() >= Duration::from_millis(250) {
                    self.follow(&mut active);
                    last_policy = Instant::now();
                }
                if last_sweep.elapsed() >= Duration::from_secs(60) {
                    let ttl_ms = IngestConfig::new("").record_ttl_s * 1000;
                    for r in &self.regions {
                        r.store.sweep(now_ms(), ttl_ms);
                    }
                    last_sweep = Instant::now();
                }
            }));
            if tick.is_err() {
                self.driver_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!("serve.driver.panicked");
                std::thread::sleep(Duration::from_millis(100));
            }
            self.driver_tick_ms.store(now_ms(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Every region's new writes leave for every other region.
    fn send(&self) {
        let due = Instant::now() + self.config.lag;
        for (from, region) in self.regions.iter().enumerate() {
            let writes = region.store.take_outbox();
            if writes.is_empty() {
                continue;
            }
            let mut net = self.net.lock().unwrap();
            for write in writes {
                let write = Arc::new(write);
                for to in 0..self.regions.len() {
                    if to != from {
                        net.flights.push_back(Flight {
                            from,
                            to,
                            write: write.clone(),
                            due,
                        });
                    }
                }
            }
        }
    }

    /// Global Tables: each due write on an uncut link is applied, last writer wins. Writes on
    /// one link arrive in the order they were made.
    fn receive(&self) {
        let now = Instant::now();
        let ready: Vec<Flight> = {
            let mut net = self.net.lock().unwrap();
            let cuts = net.cuts.clone();
            let mut blocked: HashSet<(usize, usize)> = HashSet::new();
            let mut ready = Vec::new();
            let mut keep = VecDeque::new();
            for f in std::mem::take(&mut net.flights) {
                let link = (f.from, f.to);
                if f.due <= now && !cuts.contains(&link) && !blocked.contains(&link) {
                    ready.push(f);
                } else {
                    blocked.insert(link);
                    keep.push_back(f);
                }
            }
            net.flights = keep;
            ready
        };
        for f in ready {
            self.regions[f.to].store.apply_replicated(&f.write);
            self.counters.replicated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Streams: each region's records to its reconcile, in order; a record that must be
    /// retried stops the region's stream for a moment.
    fn pump(&self) {
        for region in &self.regions {
            let new = region.store.take_stream();
            self.counters
                .stream_records
                .fetch_add(new.len() as u64, Ordering::Relaxed);
            for record in &new {
                self.hubs.notice(&region.name, record);
            }
            let mut stream = region.stream.lock().unwrap();
            stream.extend(new);
            if region
                .retry_at
                .lock()
                .unwrap()
                .is_some_and(|at| Instant::now() < at)
            {
                continue;
            }
            while let Some(record) = stream.front() {
                let outcome = match &record.old {
                    None => ReconcileOutcome::NotAConflict,
                    Some(old) => region.reconcile.handle(old, &record.new.version, now_ms()),
                };
                if let ReconcileOutcome::Retry(why) = outcome {
                    tracing::warn!(region = %region.name, why, "serve.reconcile.retry");
                    *region.retry_at.lock().unwrap() =
                        Some(Instant::now() + Duration::from_millis(500));
                    break;
                }
                if matches!(outcome, ReconcileOutcome::Resolved { .. }) {
                    self.counters.reconciled.fetch_add(1, Ordering::Relaxed);
                }
                stream.pop_front();
            }
        }
    }

    /// Every region's dead letters, redriven; what fails again stays.
    fn redrive(&self) {
        for region in &self.regions {
            for (id, letter) in region.letters.pending() {
                let now = now_ms();
                let applied =
                    match serde_json::from_value::<CapturedConflict>(letter.payload.clone()) {
                        Ok(conflict) => matches!(
                            region.reconcile.redrive_conflict(&conflict, now),
                            ReconcileOutcome::Resolved { .. }
                                | ReconcileOutcome::AlreadyResolved
                                | ReconcileOutcome::NotAConflict
                        ),
                        Err(_) => matches!(
                            region.ingest.redeliver(
                                &letter.tenant,
                                &letter.payload,
                                letter.idempotency_key.as_deref(),
                                now,
                                now + 30_000,
                            ),
                            Outcome::Applied { .. }
                        ),
                    };
                if applied {
                    region.letters.remove(id);
                    self.counters.redriven.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Keeps every known tenant's policy at most one refresh interval stale, and records the
    /// swaps it sees.
    fn follow(&self, active: &mut std::collections::HashMap<String, String>) {
        for tenant in self.tenants() {
            if let Err(e) = self.follower.ensure(&tenant) {
                tracing::warn!(tenant, error = %e, "serve.policy.refresh_failed");
                continue;
            }
            let Ok(current) = self.follower.policies().get(&tenant) else {
                continue;
            };
            let digest = current.policy.digest().to_owned();
            let before = active.insert(tenant.clone(), digest.clone());
            if before.as_ref() != Some(&digest) {
                let swap = Swap {
                    at_ms: now_ms(),
                    tenant: tenant.clone(),
                    from: before,
                    to: digest,
                };
                tracing::info!(tenant, to = %swap.to, "serve.policy.active");
                self.swaps.lock().unwrap().push(swap);
            }
        }
    }

    /// The conflict log's latest records (newest first), from memory.
    pub fn conflicts(
        &self,
        tenant: &str,
        party: Option<&str>,
        limit: usize,
    ) -> Vec<ConflictRecord> {
        self.log.observer.recent(tenant, party, limit)
    }
}

/// The conflict log on its directory, with the latest records also kept in memory for the
/// page (which polls every second: reading every record file each time would grow with the
/// log).
pub type RecentLog = Observed<DirConflictLog, Recent>;

/// The latest records of the log, newest last.
#[derive(Debug, Default)]
pub struct Recent {
    records: Mutex<VecDeque<ConflictRecord>>,
}

/// Records kept in memory.
const RECENT: usize = 500;

impl Recent {
    fn keep(&self, record: ConflictRecord) {
        let mut recent = self.records.lock().unwrap();
        recent.retain(|r| !(r.tenant == record.tenant && r.id == record.id));
        recent.push_back(record);
        while recent.len() > RECENT {
            recent.pop_front();
        }
    }

    /// The latest records of `tenant` (of `party` when given), newest first.
    pub fn recent(&self, tenant: &str, party: Option<&str>, limit: usize) -> Vec<ConflictRecord> {
        let recent = self.records.lock().unwrap();
        let mut found: Vec<ConflictRecord> = recent
            .iter()
            .filter(|r| r.tenant == tenant && party.is_none_or(|p| r.party_id == p))
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));
        found.truncate(limit);
        found
    }

    /// Reads the latest records of `tenants` from `dir` (at start).
    pub fn warm(&self, dir: &DirConflictLog, tenants: &[String]) {
        for tenant in tenants {
            let mut records = dir
                .query(&ConflictQuery::tenant(tenant))
                .unwrap_or_default();
            records.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
            let skip = records.len().saturating_sub(RECENT);
            for r in records.into_iter().skip(skip) {
                self.keep(r);
            }
        }
    }
}

impl LogObserver for Recent {
    fn recorded(&self, record: &ConflictRecord, stored: &Result<bool, LogError>) {
        if matches!(stored, Ok(true)) {
            self.keep(record.clone());
        }
    }

    fn outcome_added(&self, record: &ConflictRecord, _: &ConflictOutcome, appended: bool) {
        if appended {
            self.keep(record.clone());
        }
    }
}
