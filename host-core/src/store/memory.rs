//! The in-process stores of the embedded world (`serve`, the simulation, the tests): one
//! region's parties, own copies, idempotency records and dead letters in memory, with
//! DynamoDB's item size limit and conditional writes.
//!
//! A store made with [`MemoryStore::replica`] is also that region's replica of a global table,
//! the way DynamoDB Global Tables keeps one: every local write is stamped with the region's
//! clock and queued for the other replicas ([`MemoryStore::take_outbox`]); a replicated write
//! is applied only if its stamp is later than the item's (last writer wins on the whole item,
//! [`MemoryStore::apply_replicated`]); and every change of a party, local or replicated, is a
//! stream record with its old and new image ([`MemoryStore::take_stream`]), as DynamoDB Streams
//! (NEW_AND_OLD_IMAGES) hands the region's reconcile function. How and when the queued writes
//! and records travel — delays, partitions, redeliveries — is the driver's: `serve` in real
//! time, the simulation under its seeded scheduler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use policy_types::{Dot, PartyVersion, covers};
use serde::{Deserialize, Serialize};

use super::{
    Commit, DeadLetter, DeadLetterSink, IdempotencyRecord, IngestStore, PartyStore, StoreError,
    StoredParty, record_is_live,
};

/// DynamoDB's limit on one item.
pub const ITEM_LIMIT: usize = 400 * 1024;

/// A region's clock: milliseconds since the epoch (the simulation's is simulated).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// When and where an item was written, as Global Tables orders writes to one item: the
/// writing region's clock, then its write counter, then its name. Replicated writes keep the
/// stamp of the region that made them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteStamp {
    pub at_ms: u64,
    pub seq: u64,
    pub region: String,
}

/// The key of a replicated item: a party, or an idempotency record. (A region's own copy of
/// its last write is region-local here: no other region reads it.)
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    Party { tenant: String, party_id: String },
    Record { tenant: String, key: String },
}

/// A replicated item's value; `None` in [`Replicated::value`] is a deletion (a released claim).
#[derive(Clone, Debug, PartialEq)]
pub enum ItemValue {
    Party(StoredParty),
    Record(IdempotencyRecord),
}

/// One write on its way to the other replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct Replicated {
    pub key: ItemKey,
    pub value: Option<ItemValue>,
    pub stamp: WriteStamp,
}

impl Replicated {
    /// The write of a party.
    fn party(tenant: String, party_id: String, party: StoredParty, stamp: WriteStamp) -> Self {
        Replicated {
            key: ItemKey::Party { tenant, party_id },
            value: Some(ItemValue::Party(party)),
            stamp,
        }
    }

    /// The write of an idempotency record, or its deletion (`None`: a released claim).
    fn record(
        tenant: String,
        key: String,
        record: Option<IdempotencyRecord>,
        stamp: WriteStamp,
    ) -> Self {
        Replicated {
            key: ItemKey::Record { tenant, key },
            value: record.map(ItemValue::Record),
            stamp,
        }
    }
}

/// One stream record: a party's old image (none for an insert) and new image.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRecord {
    /// The record's sequence number in this region's stream (increasing).
    pub seq: u64,
    pub old: Option<StoredParty>,
    pub new: StoredParty,
    /// The stamp of the write that produced the new image.
    pub stamp: WriteStamp,
}

/// One change of a region's state, as a [`Journal`] sees it: the item's new value, whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Party {
        party: StoredParty,
        stamp: WriteStamp,
    },
    /// The region's own last write of a party.
    Own(OwnCopy),
    Record {
        record: IdempotencyRecord,
        stamp: WriteStamp,
    },
    /// A claim released (deleted), and when.
    Released {
        tenant: String,
        key: String,
        stamp: WriteStamp,
    },
    /// A record past its expiry, or a release older than a record's lifetime, forgotten.
    Expired { tenant: String, key: String },
}

/// A region's own copy as a journal holds it: the party as committed, or (journals written
/// before 7 December 2026) its version alone, whose writes are then unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OwnCopy {
    Party(StoredParty),
    Version(PartyVersion),
}

// By hand, not `untagged`: a party's JSON values are raw JSON, which only serde_json's own
// deserializer can hand out (not serde's buffered content an untagged enum reads from).
impl<'de> Deserialize<'de> for OwnCopy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        serde_json::from_str(raw.get())
            .map(OwnCopy::Party)
            .or_else(|e| {
                serde_json::from_str(raw.get())
                    .map(OwnCopy::Version)
                    .map_err(|_| e)
            })
            .map_err(serde::de::Error::custom)
    }
}

impl OwnCopy {
    pub fn version(&self) -> &PartyVersion {
        match self {
            OwnCopy::Party(p) => &p.version,
            OwnCopy::Version(v) => v,
        }
    }

    /// The copy as a stored party (a bare version with no provenance and unknown writes).
    pub fn into_party(self) -> StoredParty {
        match self {
            OwnCopy::Party(p) => p,
            OwnCopy::Version(version) => StoredParty {
                version,
                provenance: super::Provenance::default(),
                writes: Default::default(),
            },
        }
    }
}

impl Change {
    /// The item it changes: a later change of the same key replaces it.
    pub fn key(&self) -> (&'static str, &str, &str) {
        match self {
            Change::Party { party, .. } => {
                ("party", &party.version.tenant, &party.version.party_id)
            }
            Change::Own(own) => {
                let v = own.version();
                ("own", &v.tenant, &v.party_id)
            }
            Change::Record { record, .. } => ("record", &record.tenant, &record.key),
            Change::Released { tenant, key, .. } | Change::Expired { tenant, key } => {
                ("record", tenant, key)
            }
        }
    }
}

/// Where a durable world writes a region's changes (`serve`'s store on disk). It is called
/// with the store's lock held, so it sees the changes of one region in the order they were
/// made; it must not block on I/O (queue, and make durable elsewhere).
///
/// It sees the region's own writes only, not the writes replicated to it: each of those is in
/// the journal of the region that made it, and a restart catches every region up from the
/// others' items ([`MemoryStore::items`]), which is also what redoes the writes that were in
/// flight.
pub trait Journal: Send + Sync {
    /// The changes of one operation, all or nothing (a commit's party, own copy and record).
    fn write(&self, region: &str, changes: Vec<Change>);
}

/// The store's lock; changes journaled while it is held go to the journal together when it
/// is released.
struct Locked<'a> {
    store: &'a MemoryStore,
    inner: std::sync::MutexGuard<'a, Inner>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(journal) = &self.store.journal
            && !self.inner.pending.is_empty()
        {
            let changes = std::mem::take(&mut self.inner.pending);
            journal.write(self.store.region().unwrap_or_default(), changes);
        }
    }
}

/// Parties, own copies and idempotency records of one region in memory.
pub struct MemoryStore {
    /// `Some` for a replica of a global table: its region and clock.
    replica: Option<(String, Clock)>,
    journal: Option<Arc<dyn Journal>>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("region", &self.replica.as_ref().map(|(r, _)| r))
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Default)]
struct Inner {
    parties: HashMap<(String, String), (StoredParty, WriteStamp)>,
    own: HashMap<(String, String), StoredParty>,
    records: HashMap<(String, String), (IdempotencyRecord, WriteStamp)>,
    /// Deleted records' stamps, so that an older replicated write does not bring one back.
    released: HashMap<(String, String), WriteStamp>,
    writes: u64,
    stream_seq: u64,
    outbox: Vec<Replicated>,
    stream: Vec<StreamRecord>,
    /// Changes for the journal, written together when the lock is released.
    pending: Vec<Change>,
}

impl MemoryStore {
    /// A store of its own (tests, one-region tools): nothing is queued for replication.
    pub fn new() -> Self {
        MemoryStore {
            replica: None,
            journal: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// `region`'s replica of a global table, its writes stamped with `clock`.
    pub fn replica(region: impl Into<String>, clock: Clock) -> Self {
        MemoryStore {
            replica: Some((region.into(), clock)),
            journal: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Hands every change of this store to `journal` from now on.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            store: self,
            inner: self.inner.lock().unwrap(),
        }
    }

    /// Queues a change for the journal; it is written when the lock is released.
    fn journal(&self, inner: &mut Inner, change: impl FnOnce() -> Change) {
        if self.journal.is_some() {
            inner.pending.push(change());
        }
    }

    /// Loads a change read back from a journal (a restart): the item's value and stamp, as
    /// they were; nothing is queued for replication or streamed (see
    /// [`MemoryStore::requeue_unmerged`] and [`MemoryStore::items`] for what a restart redoes).
    pub fn load(&self, change: Change) {
        let mut inner = self.inner.lock().unwrap();
        let seen =
            |inner: &mut Inner, stamp: &WriteStamp| inner.writes = inner.writes.max(stamp.seq);
        match change {
            Change::Party { party, stamp } => {
                seen(&mut inner, &stamp);
                let k = (party.version.tenant.clone(), party.version.party_id.clone());
                inner.parties.insert(k, (party, stamp));
            }
            Change::Own(own) => {
                let own = own.into_party();
                let k = (own.version.tenant.clone(), own.version.party_id.clone());
                inner.own.insert(k, own);
            }
            Change::Record { record, stamp } => {
                seen(&mut inner, &stamp);
                let k = (record.tenant.clone(), record.key.clone());
                inner.released.remove(&k);
                inner.records.insert(k, (record, stamp));
            }
            Change::Released { tenant, key, stamp } => {
                seen(&mut inner, &stamp);
                let k = (tenant, key);
                inner.records.remove(&k);
                inner.released.insert(k, stamp);
            }
            Change::Expired { tenant, key } => {
                let k = (tenant, key);
                inner.records.remove(&k);
                inner.released.remove(&k);
            }
        }
    }

    /// Forgets the idempotency records whose expiry (`expires_at`, the table's TTL) has passed
    /// at `now_ms`, and the releases older than `keep_ms` — what DynamoDB's TTL deletes, here
    /// done by the driver that calls it. Each region forgets its own copies. Returns how many.
    pub fn sweep(&self, now_ms: u64, keep_ms: u64) -> usize {
        let mut inner = self.lock();
        let expired: Vec<(String, String)> = inner
            .records
            .iter()
            .filter(|(_, (r, _))| r.expires_at.saturating_mul(1000) <= now_ms)
            .map(|(k, _)| k.clone())
            .chain(
                inner
                    .released
                    .iter()
                    .filter(|(_, s)| s.at_ms.saturating_add(keep_ms) <= now_ms)
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        for (tenant, key) in &expired {
            let k = (tenant.clone(), key.clone());
            inner.records.remove(&k);
            inner.released.remove(&k);
            self.journal(&mut inner, || Change::Expired {
                tenant: tenant.clone(),
                key: key.clone(),
            });
        }
        expired.len()
    }

    /// Every item of this replica as a replicated write with its stamp: what another replica
    /// applies to catch up after writes in flight were lost (a restart). Applying them is
    /// harmless where they are already known: last writer wins keeps the later stamp.
    pub fn items(&self) -> Vec<Replicated> {
        let inner = self.inner.lock().unwrap();
        let parties = inner
            .parties
            .iter()
            .map(|((tenant, party_id), (p, stamp))| {
                Replicated::party(tenant.clone(), party_id.clone(), p.clone(), stamp.clone())
            });
        let records = inner.records.iter().map(|((tenant, key), (r, stamp))| {
            Replicated::record(tenant.clone(), key.clone(), Some(r.clone()), stamp.clone())
        });
        let released = inner.released.iter().map(|((tenant, key), stamp)| {
            Replicated::record(tenant.clone(), key.clone(), None, stamp.clone())
        });
        parties.chain(records).chain(released).collect()
    }

    /// Queues a stream record for every party whose stored item lacks this region's own last
    /// write (last-writer-wins overwrote it and its reconcile had not written the merge back
    /// when the stream records were lost: a restart). Returns how many.
    pub fn requeue_unmerged(&self) -> usize {
        let Some(region) = self.region().map(str::to_owned) else {
            return 0;
        };
        let mut inner = self.inner.lock().unwrap();
        let mut lost = Vec::new();
        for (k, own) in &inner.own {
            let Some((stored, stamp)) = inner.parties.get(k) else {
                continue;
            };
            let mine = own
                .version
                .version_vector
                .iter()
                .find(|d| d.region == region);
            if mine.is_some_and(|d| !covers(&stored.version.version_vector, d)) {
                lost.push((own.clone(), stored.clone(), stamp.clone()));
            }
        }
        let n = lost.len();
        for (old, new, stamp) in lost {
            Self::record_change(&mut inner, Some(old), new, stamp);
        }
        n
    }

    /// The region this replica belongs to (`None` for a store of its own).
    pub fn region(&self) -> Option<&str> {
        self.replica.as_ref().map(|(r, _)| r.as_str())
    }

    /// The stamp of a local write that replaces an item stamped `replaced`: the region's
    /// clock, but always after what it replaces. A replica whose clock runs behind another's
    /// would otherwise stamp its write of an item earlier than the write it read, and the
    /// other replicas would keep the older write: the replicas would never agree.
    fn stamp(&self, inner: &mut Inner, replaced: Option<&WriteStamp>) -> WriteStamp {
        inner.writes += 1;
        let (region, at_ms) = match &self.replica {
            Some((region, clock)) => (region.clone(), clock()),
            None => (String::new(), 0),
        };
        WriteStamp {
            at_ms: at_ms.max(replaced.map_or(0, |r| r.at_ms + 1)),
            seq: inner.writes,
            region,
        }
    }

    /// Writes a party (its size and condition checked) and queues what a replica queues.
    fn put(
        &self,
        inner: &mut Inner,
        party: &StoredParty,
        expected: Option<&[Dot]>,
    ) -> Result<(), StoreError> {
        let size = super::json_size(&party.version);
        if size > ITEM_LIMIT {
            return Err(StoreError::TooLarge {
                size,
                limit: ITEM_LIMIT,
            });
        }
        let trimmed;
        let party = if size + super::json_size(&party.writes) > ITEM_LIMIT {
            trimmed = party.without_writes();
            &trimmed
        } else {
            party
        };
        let k = (party.version.tenant.clone(), party.version.party_id.clone());
        let current = inner
            .parties
            .get(&k)
            .map(|(p, _)| p.version.version_vector.as_slice());
        if current != expected {
            return Err(StoreError::ConditionFailed);
        }
        let replaced = inner.parties.get(&k).map(|(_, s)| s.clone());
        let stamp = self.stamp(inner, replaced.as_ref());
        let old = inner
            .parties
            .insert(k.clone(), (party.clone(), stamp.clone()))
            .map(|(p, _)| p);
        self.journal(inner, || Change::Party {
            party: party.clone(),
            stamp: stamp.clone(),
        });
        if self.replica.is_some() {
            inner
                .outbox
                .push(Replicated::party(k.0, k.1, party.clone(), stamp.clone()));
            Self::record_change(inner, old, party.clone(), stamp);
        }
        Ok(())
    }

    fn record_change(
        inner: &mut Inner,
        old: Option<StoredParty>,
        new: StoredParty,
        stamp: WriteStamp,
    ) {
        inner.stream_seq += 1;
        inner.stream.push(StreamRecord {
            seq: inner.stream_seq,
            old,
            new,
            stamp,
        });
    }

    fn put_record(&self, inner: &mut Inner, record: &IdempotencyRecord) {
        let k = (record.tenant.clone(), record.key.clone());
        let replaced = inner
            .records
            .get(&k)
            .map(|(_, s)| s)
            .or(inner.released.get(&k))
            .cloned();
        let stamp = self.stamp(inner, replaced.as_ref());
        inner.released.remove(&k);
        inner
            .records
            .insert(k.clone(), (record.clone(), stamp.clone()));
        self.journal(inner, || Change::Record {
            record: record.clone(),
            stamp: stamp.clone(),
        });
        if self.replica.is_some() {
            inner
                .outbox
                .push(Replicated::record(k.0, k.1, Some(record.clone()), stamp));
        }
    }

    /// The writes made here since the last call, for the other replicas (in write order).
    pub fn take_outbox(&self) -> Vec<Replicated> {
        std::mem::take(&mut self.inner.lock().unwrap().outbox)
    }

    /// The stream records since the last call (in order).
    pub fn take_stream(&self) -> Vec<StreamRecord> {
        std::mem::take(&mut self.inner.lock().unwrap().stream)
    }

    /// Applies a write replicated from another region: kept if its stamp is later than the
    /// item's (last writer wins on the whole item), dropped otherwise. Returns whether it was
    /// kept. A kept party write is a stream record here, as in DynamoDB.
    pub fn apply_replicated(&self, write: &Replicated) -> bool {
        let mut inner = self.inner.lock().unwrap();
        match (&write.key, &write.value) {
            (ItemKey::Party { tenant, party_id }, Some(ItemValue::Party(party))) => {
                let k = (tenant.clone(), party_id.clone());
                if inner
                    .parties
                    .get(&k)
                    .is_some_and(|(_, s)| *s >= write.stamp)
                {
                    return false;
                }
                let old = inner
                    .parties
                    .insert(k, (party.clone(), write.stamp.clone()))
                    .map(|(p, _)| p);
                Self::record_change(&mut inner, old, party.clone(), write.stamp.clone());
                true
            }
            (ItemKey::Record { tenant, key }, value) => {
                let k = (tenant.clone(), key.clone());
                let newer = |s: Option<&WriteStamp>| s.is_none_or(|s| *s < write.stamp);
                if !newer(inner.records.get(&k).map(|(_, s)| s)) || !newer(inner.released.get(&k)) {
                    return false;
                }
                match value {
                    Some(ItemValue::Record(r)) => {
                        inner.released.remove(&k);
                        inner.records.insert(k, (r.clone(), write.stamp.clone()));
                    }
                    _ => {
                        inner.records.remove(&k);
                        inner.released.insert(k, write.stamp.clone());
                    }
                }
                true
            }
            // A party key carries a party; anything else is not a write this model makes.
            (ItemKey::Party { .. }, _) => false,
        }
    }

    /// Every party stored, in key order (for comparing replicas and for listings).
    pub fn parties(&self) -> Vec<StoredParty> {
        let inner = self.inner.lock().unwrap();
        let mut all: Vec<_> = inner.parties.values().map(|(p, _)| p.clone()).collect();
        all.sort_by(|a, b| {
            (&a.version.tenant, &a.version.party_id).cmp(&(&b.version.tenant, &b.version.party_id))
        });
        all
    }
}

impl PartyStore for MemoryStore {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .parties
            .get(&(tenant.to_owned(), party_id.to_owned()))
            .map(|(p, _)| p.clone()))
    }

    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.put(&mut inner, party, expected)
    }

    fn list(&self, tenant: &str) -> Result<Vec<StoredParty>, StoreError> {
        let inner = self.inner.lock().unwrap();
        let mut all: Vec<_> = inner
            .parties
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, (p, _))| p.clone())
            .collect();
        all.sort_by(|a, b| a.version.party_id.cmp(&b.version.party_id));
        Ok(all)
    }
}

impl IngestStore for MemoryStore {
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .own
            .get(&(tenant.to_owned(), party_id.to_owned()))
            .cloned())
    }

    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .records
            .get(&(tenant.to_owned(), key.to_owned()))
            .map(|(r, _)| r.clone()))
    }

    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let k = (record.tenant.clone(), record.key.clone());
        if let Some((existing, _)) = inner.records.get(&k)
            && record_is_live(existing, now_ms)
        {
            return Err(StoreError::AlreadyClaimed(Box::new(existing.clone())));
        }
        self.put_record(&mut inner, record);
        Ok(())
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let party = commit.party;
        let mut inner = self.lock();
        self.put(&mut inner, party, commit.expected)?;
        inner.own.insert(
            (party.version.tenant.clone(), party.version.party_id.clone()),
            party.clone(),
        );
        self.journal(&mut inner, || Change::Own(OwnCopy::Party(party.clone())));
        self.put_record(&mut inner, commit.record);
        Ok(())
    }

    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let k = (tenant.to_owned(), key.to_owned());
        // Only a claim: a completed record (another delivery's, or one replicated from another
        // region since the claim) stays, as DynamoDB's conditional delete leaves it.
        let claimed = inner
            .records
            .get(&k)
            .is_some_and(|(r, _)| r.status == super::RecordStatus::InProgress);
        if claimed && let Some((_, replaced)) = inner.records.remove(&k) {
            let stamp = self.stamp(&mut inner, Some(&replaced));
            inner.released.insert(k.clone(), stamp.clone());
            self.journal(&mut inner, || Change::Released {
                tenant: k.0.clone(),
                key: k.1.clone(),
                stamp: stamp.clone(),
            });
            if self.replica.is_some() {
                inner.outbox.push(Replicated::record(k.0, k.1, None, stamp));
            }
        }
        Ok(())
    }
}

/// Dead letters kept in memory, in order.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    pub letters: Mutex<Vec<DeadLetter>>,
}

impl MemoryDeadLetters {
    /// The letters kept since the last call, oldest first.
    pub fn take(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.letters.lock().unwrap())
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.letters.lock().unwrap().push(letter.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Provenance;

    fn party(id: &str, region: &str, counter: u64) -> StoredParty {
        let mut version =
            party_model::new_party("acme", id, policy_types::ResourceType::Individual, region);
        version.version_vector = vec![Dot {
            region: region.to_owned(),
            counter,
        }];
        StoredParty {
            version,
            provenance: Provenance {
                written_by: region.to_owned(),
                ..Provenance::default()
            },
            writes: Default::default(),
        }
    }

    fn clock(at: u64) -> Clock {
        Arc::new(move || at)
    }

    /// An own copy journaled with its writes reads back with them; one journaled before own
    /// copies kept writes (the version alone) still loads, its writes unknown.
    #[test]
    fn own_copies_read_back_from_journals_old_and_new() {
        let mut kept = party("7", "eu", 3);
        kept.writes.tombstone = Some(Dot::new("eu", 3));
        let new = serde_json::to_string(&Change::Own(OwnCopy::Party(kept.clone()))).unwrap();
        let old = format!(
            r#"{{"own":{}}}"#,
            serde_json::to_string(&kept.version).unwrap()
        );
        let store = MemoryStore::new();
        let key = ("acme", "7");
        for (journaled, expected) in [(new, kept.clone()), (old, kept.without_writes())] {
            let change: Change = serde_json::from_str(&journaled).unwrap();
            store.load(change);
            let own = store.own(key.0, key.1).unwrap().unwrap();
            assert_eq!(own.version, expected.version, "{journaled}");
            assert_eq!(own.writes, expected.writes, "{journaled}");
        }
    }

    #[test]
    fn the_later_write_wins_on_every_replica_whatever_the_arrival_order() {
        let eu = MemoryStore::replica("eu", clock(10));
        let na = MemoryStore::replica("na", clock(20));
        eu.put_party(&party("p1", "eu", 1), None).unwrap();
        na.put_party(&party("p1", "na", 1), None).unwrap();
        let (from_eu, from_na) = (eu.take_outbox(), na.take_outbox());
        assert!(!na.apply_replicated(&from_eu[0]), "eu's write is older");
        assert!(eu.apply_replicated(&from_na[0]), "na's write is newer");
        let stored = |s: &MemoryStore| s.party("acme", "p1").unwrap().unwrap().version;
        assert_eq!(stored(&eu), stored(&na));
        // The overwrite is on eu's stream with both images; na's stream has only its write.
        let records = eu.take_stream();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].old.as_ref().unwrap().provenance.written_by, "eu");
        assert_eq!(records[1].new.provenance.written_by, "na");
        assert_eq!(na.take_stream().len(), 1);
    }

    #[test]
    fn a_released_claim_does_not_come_back_from_an_older_replicated_write() {
        let eu = MemoryStore::replica("eu", clock(10));
        let na = MemoryStore::replica("na", clock(20));
        let record = IdempotencyRecord {
            tenant: "acme".into(),
            key: "k".into(),
            payload_hash: "h".into(),
            status: super::super::RecordStatus::InProgress,
            in_progress_until: 100,
            expires_at: 1000,
            result: None,
        };
        eu.claim(&record, 0).unwrap();
        let claim = eu.take_outbox();
        na.claim(&record, 0).unwrap();
        na.release("acme", "k").unwrap();
        assert!(!na.apply_replicated(&claim[0]));
        assert_eq!(na.record("acme", "k").unwrap(), None);
    }
}
