//! The pipeline's stores, as traits: a region's parties (written conditionally on the version
//! read), its idempotency records, and its dead letters. Ingest, reconcile and redrive are
//! written once over these; each world supplies its own implementations ([`memory`] here,
//! DynamoDB and SQS in `host-aws`). The conflict log's trait is [`crate::conflict_log`]'s.

use crate::failure::Failure;
use policy_types::writes::Writes;
use policy_types::{Dot, PartyVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod memory;

/// An idempotency record: per tenant and key, the payload's hash, its state and expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    pub tenant: String,
    pub key: String,
    pub payload_hash: String,
    pub status: RecordStatus,
    /// Until when an in-progress record blocks other deliveries (ms since the epoch), tied to
    /// the function's remaining time.
    pub in_progress_until: u64,
    /// When the record expires (seconds since the epoch: the table's TTL attribute). Expiry is
    /// checked in code too, since TTL deletion is lazy.
    pub expires_at: u64,
    /// The first result, returned to replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    InProgress,
    Completed,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The condition on the version read no longer holds: another writer committed first.
    #[error("the party changed since it was read")]
    ConditionFailed,
    /// The idempotency key is already claimed (the current record is returned).
    #[error("the idempotency key is already claimed")]
    AlreadyClaimed(Box<IdempotencyRecord>),
    #[error("the item is {size} bytes; the store's limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Throttling or another transient failure that outlived the client's own retries.
    #[error("transient store failure: {0}")]
    Transient(#[source] Failure),
    /// What a retry cannot fix: an item that does not parse, a table that does not exist,
    /// access denied.
    #[error("store failure: {0}")]
    Fatal(#[source] Failure),
    /// A caller's condition on the party did not hold (HTTP's `If-Match`, a change of a
    /// party that does not exist, a status that goes back in its lifecycle): the answer to
    /// give.
    #[error("precondition failed: {0}")]
    PreconditionFailed(Box<crate::event::Tmf630Error>),
    /// The store cannot do this at all (e.g. list a tenant's parties).
    #[error("this store cannot {0}")]
    Unsupported(&'static str),
}

/// Who last wrote a stored party and how: kept on the item beside the party's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The event whose write produced this version (the last one applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    /// The digest of the policy that last resolved a conflict on this party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    /// The region that wrote this version.
    pub written_by: String,
    /// When (ms since the epoch, the writer's clock).
    pub written_at_ms: u64,
}

/// A party as stored: its stamped state, its provenance, and the writes behind its fields
/// (`policy_types::writes`; empty for an item stored before they were recorded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredParty {
    pub version: PartyVersion,
    pub provenance: Provenance,
    #[serde(default, skip_serializing_if = "Writes::is_empty")]
    pub writes: Writes,
}

impl StoredParty {
    /// The party without the writes behind its fields (they become unknown). The table is
    /// advisory: a store drops it rather than refuse a party that fits its item limit only
    /// without it.
    pub fn without_writes(&self) -> StoredParty {
        StoredParty {
            version: self.version.clone(),
            provenance: self.provenance.clone(),
            writes: Writes::default(),
        }
    }
}

/// The parties of one region, written conditionally on the version read.
pub trait PartyStore: Send + Sync {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError>;
    /// Writes the party if `expected` is the version vector stored (nothing stored when `None`).
    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError>;
    /// Every party of `tenant`, in id order (the listing routes of the API). A store that
    /// cannot list answers [`StoreError::Unsupported`].
    fn list(&self, tenant: &str) -> Result<Vec<StoredParty>, StoreError> {
        let _ = tenant;
        Err(StoreError::Unsupported("list a tenant's parties"))
    }
}

/// Parties and idempotency records of one region.
///
/// Besides the party, a commit keeps a copy of the region's own last write of it (its *own*
/// version). Last-writer-wins may overwrite that write with another region's concurrent
/// version before the reconcile function restores it; the next local write must not build on
/// the overwriting version alone, or it would reuse the region's counter and claim to have seen
/// a write it never merged. [`crate::ingest::Ingest`] merges the own version back first.
pub trait IngestStore: PartyStore {
    /// This region's own last write of the party, as committed (with the writes behind its
    /// fields: what only this copy holds keeps its write when it is merged back).
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError>;
    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Writes an in-progress record if none is live for its key at `now_ms`: absent, expired, or
    /// an in-progress claim whose holder ran out of time.
    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError>;
    /// Writes the party (if `expected` is the version vector stored, or nothing is stored when
    /// `None`), the region's own copy of it, and the completed record, in one transaction.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;
    /// Drops a claim that will not complete (the event went to the dead-letter queue, or was
    /// refused); a completed record under the key stays.
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError>;
}

/// What [`IngestStore::commit`] writes in one transaction: an applied event's party, on the
/// condition that `expected` is the version vector stored (nothing stored when `None`), and its
/// completed idempotency record.
#[derive(Clone, Copy, Debug)]
pub struct Commit<'a> {
    pub party: &'a StoredParty,
    pub expected: Option<&'a [Dot]>,
    pub record: &'a IdempotencyRecord,
}

/// An event (or a conflict) that could not be applied, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub tenant: String,
    pub region: String,
    pub reason: String,
    /// The caller's idempotency key, when it was not the event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The original payload, unchanged.
    pub payload: Value,
}

pub trait DeadLetterSink: Send + Sync {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError>;
}

/// The bytes of `party` (or of what else an item holds) as JSON, counted as they are written,
/// kept nowhere: what the in-memory store measures against its item limit
/// ([`memory::ITEM_LIMIT`]; DynamoDB's store measures the item it writes) and the resolver its
/// results against near the limit.
pub fn json_size(party: &impl Serialize) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, party) {
        Ok(()) => counter.0,
        // A party always serialises; were it not to, it could not be stored either.
        Err(_) => usize::MAX,
    }
}

/// Whether a record still holds its key at `now_ms`: a completed one until it expires (checked
/// here because TTL deletion is lazy), an in-progress one until its holder's deadline.
pub fn record_is_live(record: &IdempotencyRecord, now_ms: u64) -> bool {
    match record.status {
        RecordStatus::Completed => record.expires_at.saturating_mul(1000) > now_ms,
        RecordStatus::InProgress => {
            record.in_progress_until > now_ms && record.expires_at.saturating_mul(1000) > now_ms
        }
    }
}

// A store shared by several parts of one region (ingest, reconcile, an HTTP API, the world that
// replicates it) is the same store behind an `Arc`.
impl<T: PartyStore + ?Sized> PartyStore for std::sync::Arc<T> {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        (**self).party(tenant, party_id)
    }

    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError> {
        (**self).put_party(party, expected)
    }

    fn list(&self, tenant: &str) -> Result<Vec<StoredParty>, StoreError> {
        (**self).list(tenant)
    }
}

impl<T: IngestStore + ?Sized> IngestStore for std::sync::Arc<T> {
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        (**self).own(tenant, party_id)
    }

    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        (**self).record(tenant, key)
    }

    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
        (**self).claim(record, now_ms)
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        (**self).commit(commit)
    }

    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        (**self).release(tenant, key)
    }
}

impl<T: DeadLetterSink + ?Sized> DeadLetterSink for std::sync::Arc<T> {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        (**self).send(letter)
    }
}
