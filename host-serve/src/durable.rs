//! The durable store under `serve`'s regions: every change a region's [`MemoryStore`] makes
//! (parties, own copies, idempotency records) and every dead letter, in one redb database in
//! the data directory, committed in groups.
//!
//! The stores stay in memory — the same [`MemoryStore`] the simulation runs — and hand each
//! change to this journal ([`Journal`]) under their lock. A flusher thread commits what has
//! queued since its last commit in one write transaction (fsync'd), then publishes how far it
//! got; a request is answered only once everything queued before its answer is durable
//! ([`Durable::synced`]), so an acknowledged event survives `kill -9`. A restart reads the
//! latest value of every item back ([`Durable::open`]).
//!
//! What is not kept: writes in flight between regions and unread stream records. A restart
//! redoes both from what is kept (`world::World::start`): every region catches up from the
//! others' items (last writer wins keeps the later one), and a stream record is queued again
//! for every own write that the stored party lacks.
//!
//! The hub's outbox is kept here too ([`Owed`]): a region's own write of a party that a
//! listener of the region and tenant may want is recorded as owed in the same transaction as
//! the write itself, so nothing acknowledged can be committed without it and the
//! acknowledgement waits for no extra commit; the hub replaces it with the change's event and
//! removes it once delivered or dead-lettered (`hub`). The hub's dead letters are kept as well;
//! one that is redriven is owed again in the transaction that drops it.
//!
//! redb, not SQLite: pure Rust (no C toolchain, nothing to link), a single file, ACID write
//! transactions with a choice of durability, and one writer at a time, which is what a group
//! commit wants.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use host_core::store::memory::{Change, Journal, WriteStamp};
use host_core::store::{DeadLetter, DeadLetterSink, StoreError, StoredParty};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("letters");
const OWED: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_owed");
const HUB_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("hub_letters");

enum Entry {
    /// The changes of one store operation, and the notifications they owe: committed in one
    /// transaction.
    Items(Vec<(String, Change)>, Vec<(String, Owed)>),
    Letter(u64, Option<DeadLetter>),
    Owed(String, Option<Owed>),
    HubLetter(u64, Option<Vec<u8>>),
    /// A hub dead letter sent again: owed again and dropped, in one transaction.
    HubRedrive(u64, String, Owed),
}

/// A notification owed to a region's hub listeners, kept until it is delivered or
/// dead-lettered. Its key ([`owed_key`]) names the change: the region that notifies and the
/// stamp of the write, the same across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Owed {
    /// A region's own write of a party, recorded with the write: its event is not made yet
    /// (the hub makes it from the stream record, or at a restart from this new image alone).
    Change {
        region: String,
        party: Box<StoredParty>,
        stamp: WriteStamp,
    },
    /// The event of a change, and the ids of the listeners it is still owed to.
    Event {
        region: String,
        tenant: String,
        event: Value,
        listeners: Vec<String>,
    },
}

/// The key of what `region` owes its listeners for the write stamped `stamp`.
pub fn owed_key(region: &str, stamp: &WriteStamp) -> String {
    format!(
        "{region}\u{0}{}\u{0}{:020}\u{0}{:020}",
        stamp.region, stamp.seq, stamp.at_ms
    )
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    /// The sequence number of the last entry queued.
    queued: u64,
}

/// The database and its group-commit queue.
pub struct Durable {
    db: Database,
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<u64>,
    stopped: AtomicBool,
    failed: Mutex<Option<String>>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Region → tenants whose own party writes there are recorded as owed (see
    /// [`Durable::owe_for`]).
    owing: RwLock<HashMap<String, HashSet<String>>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").finish_non_exhaustive()
    }
}

/// What a restart reads back: each region's changes (latest per item) and the dead letters.
#[derive(Debug, Default)]
pub struct Loaded {
    pub changes: BTreeMap<String, Vec<Change>>,
    pub letters: Vec<(u64, DeadLetter)>,
}

/// Calls `f` with every row of `table` as committed in `tx`, in key order; a table nothing was
/// ever written to does not exist yet, and has no rows.
fn for_each_row<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
    mut f: impl FnMut(redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let table = match tx.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        let (key, value) = row?;
        f(key, value)?;
    }
    Ok(())
}

fn item_key(region: &str, change: &Change) -> String {
    let (kind, tenant, id) = change.key();
    format!("{region}\u{0}{kind}\u{0}{tenant}\u{0}{id}")
}

impl Durable {
    /// Opens (or creates) `dir/serve.redb`, reads back what it holds, and starts the flusher.
    pub fn open(dir: &Path) -> anyhow::Result<(Arc<Durable>, Loaded)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let path = dir.join("serve.redb");
        let db = Database::create(&path)
            .with_context(|| format!("opening the store {}", path.display()))?;
        let loaded = Self::load(&db).with_context(|| format!("reading {}", path.display()))?;
        let next_letter = loaded.letters.last().map_or(0, |(id, _)| *id);
        let durable = Arc::new(Durable {
            db,
            queue: Mutex::new(Queue {
                entries: Vec::new(),
                queued: next_letter,
            }),
            wake: Condvar::new(),
            durable: watch::channel(next_letter).0,
            stopped: AtomicBool::new(false),
            failed: Mutex::new(None),
            flusher: Mutex::new(None),
            owing: RwLock::new(HashMap::new()),
        });
        let flusher = durable.clone();
        let handle = std::thread::Builder::new()
            .name("serve-flush".into())
            .spawn(move || flusher.flush_loop())
            .context("starting the flusher")?;
        *durable.flusher.lock().unwrap() = Some(handle);
        Ok((durable, loaded))
    }

    fn load(db: &Database) -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::default();
        let tx = db.begin_read()?;
        for_each_row(&tx, ITEMS, |key, value| {
            let region = key.value().split('\u{0}').next().unwrap_or_default();
            let change: Change = serde_json::from_slice(value.value())
                .with_context(|| format!("item {:?}", key.value()))?;
            loaded
                .changes
                .entry(region.to_owned())
                .or_default()
                .push(change);
            Ok(())
        })?;
        for_each_row(&tx, LETTERS, |id, value| {
            let letter: DeadLetter = serde_json::from_slice(value.value())
                .with_context(|| format!("dead letter {}", id.value()))?;
            loaded.letters.push((id.value(), letter));
            Ok(())
        })?;
        Ok(loaded)
    }

    /// From now on, every own write of a party of `tenant` in `region` is recorded as owed in
    /// the transaction that commits it (the hub calls it for every pair it has a listener for;
    /// the set only grows while the process runs, so that a listener removed meanwhile leaves
    /// nothing owed behind: the hub settles every record of a pair it was told of).
    pub fn owe_for(&self, region: &str, tenant: &str) {
        if !self.owes_for(region, tenant) {
            let mut owing = self.owing.write().unwrap();
            owing
                .entry(region.to_owned())
                .or_default()
                .insert(tenant.to_owned());
        }
    }

    /// Whether own writes of `tenant` in `region` are recorded as owed (called under a
    /// store's lock for every party write: no allocation).
    pub fn owes_for(&self, region: &str, tenant: &str) -> bool {
        let owing = self.owing.read().unwrap();
        owing.get(region).is_some_and(|t| t.contains(tenant))
    }

    /// What the hub owes, as committed (oldest write first within a region).
    pub fn owed(&self) -> anyhow::Result<Vec<(String, Owed)>> {
        let mut owed = Vec::new();
        for_each_row(&self.db.begin_read()?, OWED, |key, value| {
            let o: Owed = serde_json::from_slice(value.value())
                .with_context(|| format!("owed notification {:?}", key.value()))?;
            owed.push((key.value().to_owned(), o));
            Ok(())
        })?;
        Ok(owed)
    }

    /// Records (or, with `None`, settles) what is owed under `key`; committed with the next
    /// group.
    pub fn owe(&self, key: String, owed: Option<Owed>) {
        self.push(Entry::Owed(key, owed));
    }

    /// The hub's dead letters, as committed (by id).
    pub fn hub_letters(&self) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let mut letters = Vec::new();
        for_each_row(&self.db.begin_read()?, HUB_LETTERS, |id, value| {
            letters.push((id.value(), value.value().to_vec()));
            Ok(())
        })?;
        Ok(letters)
    }

    /// Keeps (or, with `None`, drops) the hub's dead letter `id`.
    pub fn hub_letter(&self, id: u64, letter: Option<Vec<u8>>) {
        self.push(Entry::HubLetter(id, letter));
    }

    /// Records `owed` under `key` and drops the hub's dead letter `letter` it was made from,
    /// committed together: a stop finds the notification either still dead-lettered or owed
    /// again, never lost between the two.
    pub fn redrive_hub_letter(&self, letter: u64, key: String, owed: Owed) {
        self.push(Entry::HubRedrive(letter, key, owed));
    }

    fn push(&self, entry: Entry) -> u64 {
        self.push_with(|_| entry)
    }

    /// Queues the entry made from its sequence number.
    fn push_with(&self, entry: impl FnOnce(u64) -> Entry) -> u64 {
        let mut q = self.queue.lock().unwrap();
        q.queued += 1;
        let seq = q.queued;
        q.entries.push(entry(seq));
        self.wake.notify_one();
        seq
    }

    /// The sequence number of the last change queued: everything up to it is durable once
    /// [`Durable::synced`] returns for it.
    pub fn queued(&self) -> u64 {
        self.queue.lock().unwrap().queued
    }

    /// Waits until everything queued up to `seq` is committed.
    pub async fn synced(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.durable.subscribe();
        let waited = rx.wait_for(|d| *d >= seq).await.map(|_| ());
        if let Some(e) = self.failed.lock().unwrap().clone() {
            return Err(e);
        }
        waited.map_err(|_| "the store is closed".to_owned())
    }

    /// Waits, blocking the thread, until everything queued so far is committed.
    pub fn sync_blocking(&self) {
        let target = self.queued();
        let mut rx = self.durable.subscribe();
        while *rx.borrow_and_update() < target && self.failed.lock().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Commits what is queued and stops the flusher (the database closes when the last
    /// reference to it goes).
    pub fn close(&self) {
        self.sync_blocking();
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if let Some(flusher) = self.flusher.lock().unwrap().take() {
            let _ = flusher.join();
        }
    }

    fn flush_loop(&self) {
        loop {
            let (entries, upto) = {
                let mut q = self.queue.lock().unwrap();
                while q.entries.is_empty() && !self.stopped.load(Ordering::SeqCst) {
                    q = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(50))
                        .unwrap()
                        .0;
                }
                if q.entries.is_empty() {
                    return;
                }
                (std::mem::take(&mut q.entries), q.queued)
            };
            match self.commit(entries) {
                Ok(()) => {
                    self.durable.send_replace(upto);
                }
                Err(e) => {
                    // Nothing more is acknowledged: every waiter gets the error.
                    tracing::error!(error = %e, "serve.store.commit_failed");
                    *self.failed.lock().unwrap() = Some(format!("the store failed: {e:#}"));
                    self.durable.send_replace(u64::MAX);
                    return;
                }
            }
        }
    }

    fn commit(&self, entries: Vec<Entry>) -> anyhow::Result<()> {
        // The latest value of each item is what a restart needs: an item written several
        // times since the last commit is written once.
        // The same for what is owed: recorded, replaced by its event, settled — the last wins.
        let mut latest: HashMap<String, Change> = Default::default();
        let mut owed_ops: HashMap<String, Option<Owed>> = Default::default();
        let mut letter_ops = Vec::new();
        let mut hub_letter_ops = Vec::new();
        for entry in entries {
            match entry {
                Entry::Items(changes, owed) => {
                    latest.extend(changes);
                    owed_ops.extend(owed.into_iter().map(|(k, o)| (k, Some(o))));
                }
                Entry::Letter(id, letter) => letter_ops.push((id, letter)),
                Entry::Owed(key, owed) => {
                    owed_ops.insert(key, owed);
                }
                Entry::HubLetter(id, letter) => hub_letter_ops.push((id, letter)),
                Entry::HubRedrive(id, key, owed) => {
                    owed_ops.insert(key, Some(owed));
                    hub_letter_ops.push((id, None));
                }
            }
        }
        let tx = self.db.begin_write()?;
        {
            if !owed_ops.is_empty() {
                let mut table = tx.open_table(OWED)?;
                for (key, owed) in owed_ops {
                    match owed {
                        Some(o) => {
                            table.insert(key.as_str(), serde_json::to_vec(&o)?.as_slice())?;
                        }
                        None => {
                            table.remove(key.as_str())?;
                        }
                    }
                }
            }
            if !hub_letter_ops.is_empty() {
                let mut table = tx.open_table(HUB_LETTERS)?;
                for (id, letter) in hub_letter_ops {
                    match letter {
                        Some(bytes) => {
                            table.insert(id, bytes.as_slice())?;
                        }
                        None => {
                            table.remove(id)?;
                        }
                    }
                }
            }
            let mut items = tx.open_table(ITEMS)?;
            let mut letters = tx.open_table(LETTERS)?;
            for (key, change) in latest {
                if matches!(change, Change::Expired { .. }) {
                    items.remove(key.as_str())?;
                } else {
                    items.insert(key.as_str(), serde_json::to_vec(&change)?.as_slice())?;
                }
            }
            for (id, letter) in letter_ops {
                match letter {
                    Some(letter) => {
                        letters.insert(id, serde_json::to_vec(&letter)?.as_slice())?;
                    }
                    None => {
                        letters.remove(id)?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Journal for Durable {
    fn write(&self, region: &str, changes: Vec<Change>) {
        let mut owed = Vec::new();
        for c in &changes {
            if let Change::Party { party, stamp } = c
                && self.owes_for(region, &party.version.tenant)
            {
                owed.push((
                    owed_key(region, stamp),
                    Owed::Change {
                        region: region.to_owned(),
                        party: Box::new(party.clone()),
                        stamp: stamp.clone(),
                    },
                ));
            }
        }
        let items = changes
            .into_iter()
            .map(|c| (item_key(region, &c), c))
            .collect();
        self.push(Entry::Items(items, owed));
    }
}

/// A region's dead-letter queue, kept in the durable store until redriven.
#[derive(Debug)]
pub struct DurableLetters {
    durable: Arc<Durable>,
    letters: Mutex<BTreeMap<u64, DeadLetter>>,
}

impl DurableLetters {
    pub fn new(durable: Arc<Durable>, loaded: impl IntoIterator<Item = (u64, DeadLetter)>) -> Self {
        DurableLetters {
            durable,
            letters: Mutex::new(loaded.into_iter().collect()),
        }
    }

    /// The letters kept, oldest first, with their ids (they stay until [`Self::remove`]).
    pub fn pending(&self) -> Vec<(u64, DeadLetter)> {
        self.letters
            .lock()
            .unwrap()
            .iter()
            .map(|(id, l)| (*id, l.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.letters.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops a letter that was applied.
    pub fn remove(&self, id: u64) {
        if self.letters.lock().unwrap().remove(&id).is_some() {
            self.durable.push(Entry::Letter(id, None));
        }
    }
}

impl DeadLetterSink for DurableLetters {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut letters = self.letters.lock().unwrap();
        // The id is the queue's sequence number: unique and increasing across restarts.
        let id = self
            .durable
            .push_with(|seq| Entry::Letter(seq, Some(letter.clone())));
        letters.insert(id, letter.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_types::ResourceType;

    fn party_change(tenant: &str, seq: u64) -> Change {
        let mut version = party_model::new_party(tenant, "42", ResourceType::Individual, "eu");
        party_model::Writer::new("eu").write(
            &mut version,
            1_000,
            &serde_json::json!({"givenName": "Jane"}),
        );
        Change::Party {
            party: StoredParty {
                version,
                provenance: Default::default(),
                writes: Default::default(),
            },
            stamp: WriteStamp {
                at_ms: 1_000,
                seq,
                region: "eu".into(),
            },
        }
    }

    #[test]
    fn an_own_write_a_listener_may_want_is_owed_in_its_own_commit_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (durable, _) = Durable::open(dir.path()).unwrap();
        durable.write("eu", vec![party_change("acme", 1)]);
        durable.owe_for("eu", "acme");
        durable.write(
            "eu",
            vec![party_change("acme", 2), party_change("other", 3)],
        );
        durable.sync_blocking();
        let owed = durable.owed().unwrap();
        assert_eq!(
            owed.len(),
            1,
            "only the write made once acme's eu listeners were owed"
        );
        let Change::Party { party, stamp } = party_change("acme", 2) else {
            unreachable!()
        };
        assert_eq!(owed[0].0, owed_key("eu", &stamp));
        assert_eq!(
            owed[0].1,
            Owed::Change {
                region: "eu".into(),
                party: Box::new(party),
                stamp
            }
        );
        durable.close();
        drop(durable);

        // A restart reads it back; settling it removes it.
        let (durable, loaded) = Durable::open(dir.path()).unwrap();
        assert_eq!(loaded.changes["eu"].len(), 2, "the two parties");
        let owed = durable.owed().unwrap();
        assert_eq!(owed.len(), 1);
        durable.owe(owed[0].0.clone(), None);
        durable.hub_letter(3, Some(b"{}".to_vec()));
        durable.sync_blocking();
        assert!(durable.owed().unwrap().is_empty());
        assert_eq!(durable.hub_letters().unwrap(), vec![(3, b"{}".to_vec())]);

        // A redriven letter is owed again as it leaves the hub dead letters.
        let again = Owed::Event {
            region: "eu".into(),
            tenant: "acme".into(),
            event: serde_json::json!({"eventId": "e"}),
            listeners: vec!["l1".into()],
        };
        durable.redrive_hub_letter(3, "k".into(), again.clone());
        durable.sync_blocking();
        assert_eq!(durable.owed().unwrap(), vec![("k".to_owned(), again)]);
        assert!(durable.hub_letters().unwrap().is_empty());
        durable.close();
    }
}
