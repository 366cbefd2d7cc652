//! Applying TMF632 events to a region's parties, at most once per tenant and idempotency key.
//!
//! The storage is behind [`IngestStore`] (parties and idempotency records, committed together)
//! and [`DeadLetterSink`] ([`crate::store`], where the in-process implementations live too). The
//! flow per event: validate ([`crate::event`]); claim the idempotency key (a replay of the same
//! payload returns the first result, a different payload under the same key is refused with a
//! TMF630 409, a concurrent delivery gets a retryable "in progress"); stamp and apply the write
//! (a status that would go back in its lifecycle is refused with a 409: statuses only move
//! forward, which keeps the default merge associative);
//! commit the party and the completed record in one transaction, conditional on the version
//! read, retrying a bounded number of times when another writer got there first; and anything
//! that cannot be applied goes to the dead-letter sink with its reason.

use std::sync::{Arc, Mutex};

use party_model::{HlcClock, WriteOutcome, delete, is_stale, new_party, tick, write_fields};
use policy_types::writes::Writes;
use policy_types::{FieldValue, Hlc, PartyVersion, ResourceType, covers};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::conflict_log::{ConflictLog, ConflictOutcome, ConflictRecord};
use crate::event::{Action, PartyEvent, Tmf630Error, parse_event};
use crate::failure::Failure;
use crate::resolve::Resolver;
use crate::store::{
    Commit, DeadLetter, DeadLetterSink, IdempotencyRecord, IngestStore, Provenance, RecordStatus,
    StoreError, StoredParty,
};

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
    /// The first backoff between attempts, doubled each time (ms).
    pub retry_backoff_ms: u64,
}

impl IngestConfig {
    pub fn new(region: impl Into<String>) -> Self {
        IngestConfig {
            region: region.into(),
            record_ttl_s: 24 * 3600,
            max_attempts: 5,
            retry_backoff_ms: 10,
        }
    }
}

/// The ingest path of one region.
pub struct Ingest<S, D> {
    store: S,
    dead_letters: D,
    config: IngestConfig,
    clock: Mutex<HlcClock>,
    /// Resolves the catch-up of an overwritten own write with the tenant's policy; the default
    /// merge (native) when unset.
    resolver: Option<Arc<Resolver>>,
    /// Where a catch-up that the tenant's policy decided is recorded, as reconcile records its
    /// resolutions: a policy's decision to drop a write is then on record wherever it was made.
    log: Option<Arc<dyn ConflictLog>>,
}

/// One delivery of an event: for whom, what, under which key, when, whether a failure is
/// kept in the dead-letter queue (a redrive's is not: the original stays), and what must hold
/// of the party when it is written.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    tenant: &'a str,
    payload: &'a Value,
    key: Option<&'a str>,
    now_ms: u64,
    deadline_ms: u64,
    keep: bool,
    precondition: Option<&'a Precondition<'a>>,
}

/// A check of the party as the region answers for it (`None`: nothing stored) made at the
/// moment of a write: `Err` is the refusal to answer with.
pub type Precondition<'a> = dyn Fn(Option<&PartyVersion>) -> Result<(), Tmf630Error> + Sync + 'a;

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
            resolver: None,
            log: None,
        }
    }

    /// Records the catch-ups the tenant's policy decides in `log`.
    pub fn with_conflict_log(mut self, log: Arc<dyn ConflictLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Resolves catch-ups with the tenants' policies.
    pub fn resolver(&self) -> Option<&Arc<Resolver>> {
        self.resolver.as_ref()
    }

    pub fn with_resolver(mut self, resolver: Arc<Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The region this ingest writes in.
    pub fn region(&self) -> &str {
        &self.config.region
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
        self.deliver(Delivery {
            tenant,
            payload,
            key,
            now_ms,
            deadline_ms,
            keep: true,
            precondition: None,
        })
    }

    /// Like [`Ingest::handle`], applied only if `precondition` holds for the party as this
    /// region answers for it ([`Ingest::read`]) at the moment of the write: the write is
    /// conditional on the version checked, so a write that lands in between makes the check run
    /// again (HTTP's `If-Match`). Refused with the precondition's answer otherwise; a replay of
    /// the key is answered from its record before any check.
    pub fn handle_if(
        &self,
        tenant: &str,
        payload: &Value,
        key: Option<&str>,
        now_ms: u64,
        deadline_ms: u64,
        precondition: &Precondition<'_>,
    ) -> Outcome {
        self.deliver(Delivery {
            tenant,
            payload,
            key,
            now_ms,
            deadline_ms,
            keep: true,
            precondition: Some(precondition),
        })
    }

    /// A redrive of an event already in the dead-letter queue: like [`Ingest::handle`], but
    /// what still fails is answered `DeadLettered` without sending a second copy (the original
    /// stays in the queue until it is applied or escalated).
    pub fn redeliver(
        &self,
        tenant: &str,
        payload: &Value,
        key: Option<&str>,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Outcome {
        self.deliver(Delivery {
            tenant,
            payload,
            key,
            now_ms,
            deadline_ms,
            keep: false,
            precondition: None,
        })
    }

    fn deliver(&self, delivery: Delivery<'_>) -> Outcome {
        let Delivery {
            tenant,
            payload,
            key,
            now_ms,
            deadline_ms,
            keep,
            precondition,
        } = delivery;
        let event = match parse_event(payload) {
            Ok(e) => e,
            Err(e) => return Outcome::Refused(e),
        };
        let explicit_key = key;
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
                    keep,
                    tenant,
                    explicit_key,
                    payload,
                    &format!("claiming the idempotency key: {e}"),
                );
            }
        }
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                // Exponential backoff with jitter from the key, so two contending writers in
                // one region do not retry in lockstep.
                let base = self.config.retry_backoff_ms << (attempt - 1).min(6);
                let jitter = u64::from(hash.as_bytes()[attempt as usize % hash.len()]) % (base + 1);
                std::thread::sleep(std::time::Duration::from_millis(base / 2 + jitter / 2));
            }
            match self.apply_once(tenant, &event, &record, now_ms, precondition) {
                Ok(result) => {
                    return Outcome::Applied {
                        result,
                        replay: false,
                    };
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(StoreError::PreconditionFailed(answer)) => {
                    let _ = self.store.release(tenant, &key);
                    return Outcome::Refused(*answer);
                }
                // Another delivery of the key completed after this one's claim had lapsed.
                Err(StoreError::AlreadyClaimed(existing)) => {
                    return self.answer_replay(&existing, &hash);
                }
                Err(StoreError::TooLarge { size, limit }) => {
                    let _ = self.store.release(tenant, &key);
                    return self.dead_letter(
                        keep,
                        tenant,
                        explicit_key,
                        payload,
                        &format!("the party would be {size} bytes, over the store's {limit}-byte item limit; nothing was truncated"),
                    );
                }
                Err(e) => {
                    let _ = self.store.release(tenant, &key);
                    return self.dead_letter(keep, tenant, explicit_key, payload, &e.to_string());
                }
            }
        }
        let _ = self.store.release(tenant, &key);
        self.dead_letter(
            keep,
            tenant,
            explicit_key,
            payload,
            &format!(
                "the party kept changing: {} conditional writes failed",
                self.config.max_attempts
            ),
        )
    }

    /// Merges the region's own last write back into the stored version that overwrote it.
    fn catch_up(
        &self,
        (own, own_writes): (&PartyVersion, &Writes),
        (stored, stored_writes): (&PartyVersion, &Writes),
        now_ms: u64,
        record: bool,
    ) -> Result<(PartyVersion, Option<String>), StoreError> {
        let region = &self.config.region;
        tracing::info!(tenant = %own.tenant, party = %own.party_id, region = %region, "ingest.catch_up");
        match &self.resolver {
            Some(resolver) => {
                let resolved = resolver
                    .resolve_with_writes((stored, stored_writes), (own, own_writes))
                    .map_err(|e| {
                        StoreError::Fatal(Failure::caused_by(
                            format!("merging this region's overwritten write back: {e}"),
                            e,
                        ))
                    })?;
                if let Some(log) = self.log.as_ref().filter(|_| record) {
                    let outcome =
                        ConflictOutcome::from_resolved("ingest", now_ms, &resolved, stored, own);
                    if let Some(record) =
                        ConflictRecord::for_resolver(resolver, stored, own, now_ms, outcome)
                            .map(|r| r.with_writes(stored_writes, own_writes))
                        && let Err(e) = log.record(&record)
                    {
                        tracing::warn!(tenant = %own.tenant, party = %own.party_id, error = %e, "ingest.log_failed");
                    }
                }
                let digest = resolved.policy_digest.clone();
                let party = resolved.written(stored, own).cloned().ok_or_else(|| {
                    StoreError::Fatal(Failure::new(format!(
                        "merging this region's overwritten write back: the policy decided {}",
                        resolved.decision.kind()
                    )))
                })?;
                Ok((party, digest))
            }
            None => {
                let relation = crate::resolve::relation(stored, own);
                let ctx = policy_types::Context {
                    tenant: own.tenant.clone(),
                    resolving_region: region.clone(),
                    relation,
                    config: "{}".into(),
                };
                let resolution = tmf632_merge::resolve(&ctx, stored, own);
                let (_, party) =
                    crate::resolve::apply_resolution(region, relation, stored, own, &resolution)
                        .map_err(|e| StoreError::Fatal(Failure::caused_by(e.to_string(), e)))?;
                let party = party.ok_or_else(|| {
                    StoreError::Fatal("the default merge rejected the catch-up".into())
                })?;
                Ok((party, None))
            }
        }
    }

    /// The party as this region answers for it: the stored item, with this region's own last
    /// write merged back when last-writer-wins overwrote it and reconcile has not restored it
    /// yet — a region never answers a read without a write it acknowledged (the merge is the
    /// one the next write would make; it is not written here). `None` when nothing is stored.
    pub fn read(
        &self,
        tenant: &str,
        party_id: &str,
        now_ms: u64,
    ) -> Result<Option<PartyVersion>, StoreError> {
        let Some(stored) = self.store.party(tenant, party_id)? else {
            return Ok(None);
        };
        let region = &self.config.region;
        match self.store.own(tenant, party_id)? {
            Some(own)
                if own
                    .version
                    .version_vector
                    .iter()
                    .find(|d| &d.region == region)
                    .is_some_and(|d| !covers(&stored.version.version_vector, d)) =>
            {
                let own = (&own.version, &own.writes);
                let stored = (&stored.version, &stored.writes);
                Ok(Some(self.catch_up(own, stored, now_ms, false)?.0))
            }
            _ => Ok(Some(stored.version)),
        }
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
        precondition: Option<&Precondition<'_>>,
    ) -> Result<Value, StoreError> {
        let stored = self.store.party(tenant, &event.party_id)?;
        let expected = stored.as_ref().map(|p| p.version.version_vector.clone());
        let region = &self.config.region;
        let (mut version, mut policy_digest, mut writes) = match stored {
            Some(s) => (s.version, s.provenance.policy_digest, s.writes),
            None => (
                new_party(tenant, &event.party_id, event.resource, region),
                None,
                Writes::default(),
            ),
        };
        if let Some(own) = self.store.own(tenant, &event.party_id)? {
            let mine = own
                .version
                .version_vector
                .iter()
                .find(|d| &d.region == region);
            if mine.is_some_and(|d| !covers(&version.version_vector, d)) {
                let own = (&own.version, &own.writes);
                let (merged, digest) = self.catch_up(own, (&version, &writes), now_ms, true)?;
                writes = Writes::merged(own, (&version, &writes), &merged);
                version = merged;
                policy_digest = digest.or(policy_digest);
            }
        }
        if let Some(check) = precondition {
            // What this region answers for the party: `version`, its own write merged back.
            let current = (expected.is_some()).then_some(&version);
            check(current).map_err(|e| StoreError::PreconditionFailed(Box::new(e)))?;
        }
        // Stamped with when the event happened (its eventTime), not when it arrived: a late
        // delivery of an older event then changes nothing for fields written after it, and
        // the same event applied in two regions carries the same time in both. Without an
        // eventTime, the region's hybrid logical clock stamps it.
        let stamp = match event_time_ms(event) {
            Some(at) => Hlc::new(at, 0, region.clone()),
            None => {
                let mut clock = self.clock.lock().unwrap();
                if let Some(seen) = version.max_stamp() {
                    clock.observe(seen, now_ms);
                }
                clock.now(now_ms)
            }
        };
        forward_in_lifecycle(&version, event, &stamp)?;
        // An event that changes nothing (every field already stamped later: a late or second
        // delivery) writes no new version: a tick would be a write without content, and a
        // redelivery would then change the version vector every time.
        let untouched = version.clone();
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
        if outcome.applied.is_empty() {
            version = untouched;
        } else {
            let deleted = event.action == Action::Delete;
            let fields: &[String] = if deleted { &[] } else { &outcome.applied };
            writes.record(&version, fields, deleted, &dot, &untouched.version_vector);
        }
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
        let stored = StoredParty {
            version,
            provenance: Provenance {
                last_event_id: Some(event.event_id.clone()),
                policy_digest,
                written_by: region.clone(),
                written_at_ms: now_ms,
            },
            writes,
        };
        self.store.commit(&Commit {
            party: &stored,
            expected: expected.as_deref(),
            record: &completed,
        })?;
        tracing::info!(tenant, party = %event.party_id, event = %event.event_id, region = %region, outcome = "applied", "ingest.apply");
        Ok(result)
    }

    fn dead_letter(
        &self,
        keep: bool,
        tenant: &str,
        key: Option<&str>,
        payload: &Value,
        reason: &str,
    ) -> Outcome {
        let letter = DeadLetter {
            tenant: tenant.to_owned(),
            region: self.config.region.clone(),
            reason: reason.to_owned(),
            idempotency_key: key.map(str::to_owned),
            payload: payload.clone(),
        };
        tracing::warn!(tenant, region = %self.config.region, reason, "ingest.dead_letter");
        if !keep {
            return Outcome::DeadLettered(reason.to_owned());
        }
        match self.dead_letters.send(&letter) {
            Ok(()) => Outcome::DeadLettered(reason.to_owned()),
            // Not even the dead-letter queue took it: the caller must not acknowledge the event.
            Err(e) => {
                Outcome::DeadLettered(format!("{reason}; and the dead-letter send failed: {e}"))
            }
        }
    }
}

/// Refuses a status that goes back in its resource's TMF632 lifecycle (initialized →
/// validated → deceased or closed) from the one the region holds: `validated` once the region
/// has `deceased`, or the status removed. The API's rule for every tenant, and the reason for
/// it: the default merge ranks concurrent statuses by that lifecycle while a write that saw
/// another replaces it; with statuses only moving forward the two orders agree, and merges in
/// any order end the same (docs/per-field-causality.md, "A status only moves forward"). A
/// write that would be stale anyway (the held status is stamped later, or the party was
/// deleted later) is let through to change nothing, as any late delivery.
fn forward_in_lifecycle(
    version: &PartyVersion,
    event: &PartyEvent,
    stamp: &Hlc,
) -> Result<(), StoreError> {
    let written = match event.action {
        Action::Delete => None,
        _ => event.party.get("status"),
    };
    let Some(written) = written else {
        return Ok(());
    };
    let Ok(at) = version
        .fields
        .binary_search_by(|f| f.name.as_str().cmp("status"))
    else {
        return Ok(());
    };
    let held = &version.fields[at];
    let FieldValue::Json(text) = &held.value else {
        return Ok(());
    };
    if is_stale(version, Some(held), stamp) {
        return Ok(());
    }
    let kind = version.resource_type;
    let rank = |json: &str| tmf632_merge::lifecycle_rank(kind, json);
    let written_text = written.to_string();
    if rank(&written_text) >= rank(text) {
        return Ok(());
    }
    let change = if written.is_null() {
        "this write removes it".to_owned()
    } else {
        format!("this write sets {written_text}")
    };
    let lifecycle = match kind {
        ResourceType::Individual => "initialized, validated, deceased",
        ResourceType::Organization => "initialized, validated, closed",
    };
    let create = if event.action == Action::Create {
        "; a create after a delete made in another region is refused here until that delete has arrived"
    } else {
        ""
    };
    Err(StoreError::PreconditionFailed(Box::new(Tmf630Error::new(
        409,
        "statusGoesBack",
        "Conflict",
        format!(
            "the status cannot go back in the lifecycle: the party is {text}, {change} ({lifecycle}: a status only moves forward{create})"
        ),
    ))))
}

/// The event's `eventTime` in milliseconds since the epoch, when it has a valid one.
pub fn event_time_ms(event: &PartyEvent) -> Option<u64> {
    let text = event.event_time.as_deref()?;
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}
