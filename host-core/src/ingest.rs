//! Applying TMF632 events to a region's parties, at most once per tenant and idempotency key.
//!
//! The storage is behind [`IngestStore`] (parties and idempotency records, committed together)
//! and [`DeadLetterSink`]; [`memory`] implements both in-process (the embedded default). The
//! flow per event: validate ([`crate::event`]); claim the idempotency key (a replay of the same
//! payload returns the first result, a different payload under the same key is refused with a
//! TMF630 409, a concurrent delivery gets a retryable "in progress"); stamp and apply the write;
//! commit the party and the completed record in one transaction, conditional on the version
//! read, retrying a bounded number of times when another writer got there first; and anything
//! that cannot be applied goes to the dead-letter sink with its reason.

use std::sync::Mutex;

use party_model::{HlcClock, WriteOutcome, delete, new_party, tick, write_fields};
use policy_types::{Dot, PartyVersion};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::event::{Action, PartyEvent, Tmf630Error, parse_event};

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
    Transient(String),
    #[error("store failure: {0}")]
    Fatal(String),
}

/// Parties and idempotency records of one region.
pub trait IngestStore: Send + Sync {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<PartyVersion>, StoreError>;
    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Writes an in-progress record if none is live for its key at `now_ms`: absent, expired, or
    /// an in-progress claim whose holder ran out of time.
    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError>;
    /// Writes the party (if `expected` is the version vector stored, or nothing is stored when
    /// `None`) and the completed record, in one transaction.
    fn commit(
        &self,
        party: &PartyVersion,
        expected: Option<&[Dot]>,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Drops a claim that will not complete (the event went to the dead-letter queue).
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError>;
}

/// An event (or a conflict) that could not be applied, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub tenant: String,
    pub region: String,
    pub reason: String,
    /// The original payload, unchanged.
    pub payload: Value,
}

pub trait DeadLetterSink: Send + Sync {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError>;
}

/// The outcome of one delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Applied now, or a replay answered with the first result.
    Applied { result: Value, replay: bool },
    /// Refused with a TMF630 body (not retryable: the same request would fail again).
    Refused(Tmf630Error),
    /// Another delivery of the same key is in progress: retry later.
    InProgress,
    /// Kept in the dead-letter queue with this reason.
    DeadLettered(String),
}

/// How an event is stamped and retried.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub region: String,
    /// How long a completed record lives (TTL), in seconds.
    pub record_ttl_s: u64,
    /// Attempts of the conditional write before the event goes to the dead-letter queue.
    pub max_attempts: u32,
}

impl IngestConfig {
    pub fn new(region: impl Into<String>) -> Self {
        IngestConfig {
            region: region.into(),
            record_ttl_s: 24 * 3600,
            max_attempts: 5,
        }
    }
}

/// The ingest path of one region.
pub struct Ingest<S, D> {
    store: S,
    dead_letters: D,
    config: IngestConfig,
    clock: Mutex<HlcClock>,
}

/// The hash a replay must match: sha256 of the payload's canonical JSON.
pub fn payload_hash(payload: &Value) -> String {
    hex::encode(Sha256::digest(
        party_model::canonical_json(payload).as_bytes(),
    ))
}

impl<S: IngestStore, D: DeadLetterSink> Ingest<S, D> {
    pub fn new(store: S, dead_letters: D, config: IngestConfig) -> Self {
        let clock = Mutex::new(HlcClock::new(config.region.clone()));
        Ingest {
            store,
            dead_letters,
            config,
            clock,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// Handles one delivery of `payload` for `tenant` at `now_ms`, with the caller's idempotency
    /// key (the event id when `None`); `deadline_ms` is when the caller must have answered.
    pub fn handle(
        &self,
        tenant: &str,
        payload: &Value,
        key: Option<&str>,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Outcome {
        let event = match parse_event(payload) {
            Ok(e) => e,
            Err(e) => return Outcome::Refused(e),
        };
        let key = key.unwrap_or(&event.event_id).to_owned();
        let hash = payload_hash(payload);
        let now_s = now_ms / 1000;
        let record = IdempotencyRecord {
            tenant: tenant.to_owned(),
            key: key.clone(),
            payload_hash: hash.clone(),
            status: RecordStatus::InProgress,
            in_progress_until: deadline_ms,
            expires_at: now_s + self.config.record_ttl_s,
            result: None,
        };
        match self.store.claim(&record, now_ms) {
            Ok(()) => {}
            Err(StoreError::AlreadyClaimed(existing)) => {
                return self.answer_replay(&existing, &hash);
            }
            Err(e) => {
                return self.dead_letter(
                    tenant,
                    payload,
                    &format!("claiming the idempotency key: {e}"),
                );
            }
        }
        for _attempt in 0..self.config.max_attempts {
            match self.apply_once(tenant, &event, &record, now_ms) {
                Ok(result) => {
                    return Outcome::Applied {
                        result,
                        replay: false,
                    };
                }
                Err(StoreError::ConditionFailed) | Err(StoreError::AlreadyClaimed(_)) => continue,
                Err(StoreError::TooLarge { size, limit }) => {
                    let _ = self.store.release(tenant, &key);
                    return self.dead_letter(
                        tenant,
                        payload,
                        &format!("the party would be {size} bytes, over the store's {limit}-byte item limit; nothing was truncated"),
                    );
                }
                Err(e) => {
                    let _ = self.store.release(tenant, &key);
                    return self.dead_letter(tenant, payload, &e.to_string());
                }
            }
        }
        let _ = self.store.release(tenant, &key);
        self.dead_letter(
            tenant,
            payload,
            &format!(
                "the party kept changing: {} conditional writes failed",
                self.config.max_attempts
            ),
        )
    }

    fn answer_replay(&self, existing: &IdempotencyRecord, hash: &str) -> Outcome {
        if existing.payload_hash != hash {
            // 409: the key names an earlier, different request; the client must use a new key.
            return Outcome::Refused(Tmf630Error::new(
                409,
                "idempotencyKeyReused",
                "Conflict",
                format!(
                    "idempotency key {:?} was used for a different payload; a retry must resend the same payload, a new request needs a new key",
                    existing.key
                ),
            ));
        }
        match (existing.status, &existing.result) {
            (RecordStatus::Completed, Some(result)) => Outcome::Applied {
                result: result.clone(),
                replay: true,
            },
            _ => Outcome::InProgress,
        }
    }

    fn apply_once(
        &self,
        tenant: &str,
        event: &PartyEvent,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Value, StoreError> {
        let stored = self.store.party(tenant, &event.party_id)?;
        let expected = stored.as_ref().map(|p| p.version_vector.clone());
        let region = &self.config.region;
        let mut version =
            stored.unwrap_or_else(|| new_party(tenant, &event.party_id, event.resource, region));
        // Stamped with when the event happened (its eventTime), not when it arrived: a late
        // delivery of an older event then changes nothing for fields written after it, and
        // the same event applied in two regions carries the same time in both. Without an
        // eventTime, the region's hybrid logical clock stamps it.
        let stamp = match event_time_ms(event) {
            Some(at) => policy_types::Hlc::new(at, 0, region.clone()),
            None => {
                let mut clock = self.clock.lock().unwrap();
                if let Some(seen) = version.max_stamp() {
                    clock.observe(seen, now_ms);
                }
                clock.now(now_ms)
            }
        };
        let dot = tick(&mut version, region);
        let outcome = match event.action {
            Action::Delete => {
                let applied = delete(&mut version, &stamp);
                WriteOutcome {
                    applied: if applied {
                        vec!["(deleted)".into()]
                    } else {
                        vec![]
                    },
                    stale: vec![],
                }
            }
            Action::StateChange => {
                let mut status = serde_json::Map::new();
                status.insert("status".into(), event.party["status"].clone());
                write_fields(&mut version, &status, &stamp, &dot)
            }
            Action::Create | Action::AttributeValueChange => {
                write_fields(&mut version, &event.party, &stamp, &dot)
            }
        };
        let result = json!({
            "eventId": event.event_id,
            "partyId": event.party_id,
            "action": event.action.as_str(),
            "applied": outcome.applied,
            "stale": outcome.stale,
            "stamp": stamp.to_string(),
            "versionVector": version.version_vector.iter().map(|d| format!("{}:{}", d.region, d.counter)).collect::<Vec<_>>(),
        });
        let completed = IdempotencyRecord {
            status: RecordStatus::Completed,
            result: Some(result.clone()),
            ..record.clone()
        };
        self.store
            .commit(&version, expected.as_deref(), &completed)?;
        tracing::info!(tenant, party = %event.party_id, event = %event.event_id, region = %region, outcome = "applied", "ingest.apply");
        Ok(result)
    }

    fn dead_letter(&self, tenant: &str, payload: &Value, reason: &str) -> Outcome {
        let letter = DeadLetter {
            tenant: tenant.to_owned(),
            region: self.config.region.clone(),
            reason: reason.to_owned(),
            payload: payload.clone(),
        };
        tracing::warn!(tenant, region = %self.config.region, reason, "ingest.dead_letter");
        match self.dead_letters.send(&letter) {
            Ok(()) => Outcome::DeadLettered(reason.to_owned()),
            // Not even the dead-letter queue took it: the caller must not acknowledge the event.
            Err(e) => {
                Outcome::DeadLettered(format!("{reason}; and the dead-letter send failed: {e}"))
            }
        }
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

/// The event's `eventTime` in milliseconds since the epoch, when it has a valid one.
pub fn event_time_ms(event: &PartyEvent) -> Option<u64> {
    let text = event.event_time.as_deref()?;
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// The in-process stores of the embedded default.
pub mod memory {
    use super::*;
    use std::collections::HashMap;

    /// Parties and idempotency records in memory, with DynamoDB's item size limit enforced.
    #[derive(Debug, Default)]
    pub struct MemoryStore {
        inner: Mutex<Inner>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        parties: HashMap<(String, String), PartyVersion>,
        records: HashMap<(String, String), IdempotencyRecord>,
    }

    /// DynamoDB's limit on one item.
    pub const ITEM_LIMIT: usize = 400 * 1024;

    impl MemoryStore {
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl IngestStore for MemoryStore {
        fn party(&self, tenant: &str, party_id: &str) -> Result<Option<PartyVersion>, StoreError> {
            Ok(self
                .inner
                .lock()
                .unwrap()
                .parties
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
                .cloned())
        }

        fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().unwrap();
            let k = (record.tenant.clone(), record.key.clone());
            if let Some(existing) = inner.records.get(&k)
                && record_is_live(existing, now_ms)
            {
                return Err(StoreError::AlreadyClaimed(Box::new(existing.clone())));
            }
            inner.records.insert(k, record.clone());
            Ok(())
        }

        fn commit(
            &self,
            party: &PartyVersion,
            expected: Option<&[Dot]>,
            record: &IdempotencyRecord,
        ) -> Result<(), StoreError> {
            let size = serde_json::to_vec(party).map(|v| v.len()).unwrap_or(0);
            if size > ITEM_LIMIT {
                return Err(StoreError::TooLarge {
                    size,
                    limit: ITEM_LIMIT,
                });
            }
            let mut inner = self.inner.lock().unwrap();
            let k = (party.tenant.clone(), party.party_id.clone());
            let current = inner.parties.get(&k).map(|p| p.version_vector.as_slice());
            if current != expected {
                return Err(StoreError::ConditionFailed);
            }
            inner.parties.insert(k, party.clone());
            inner
                .records
                .insert((record.tenant.clone(), record.key.clone()), record.clone());
            Ok(())
        }

        fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
            self.inner
                .lock()
                .unwrap()
                .records
                .remove(&(tenant.to_owned(), key.to_owned()));
            Ok(())
        }
    }

    /// Dead letters kept in memory, in order.
    #[derive(Debug, Default)]
    pub struct MemoryDeadLetters {
        pub letters: Mutex<Vec<DeadLetter>>,
    }

    impl DeadLetterSink for MemoryDeadLetters {
        fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
            self.letters.lock().unwrap().push(letter.clone());
            Ok(())
        }
    }
}
