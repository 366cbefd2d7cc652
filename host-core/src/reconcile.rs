//! Restoring what last-writer-wins overwrote: one region's stream record (the item before and
//! after a write) in, the merged party written back.
//!
//! When a write replaces a version whose writes the new one has not seen (its version vector
//! is not covered by the new one's), those writes are lost unless something restores them.
//! [`Reconcile::handle`] reads the item as it is now, asks the tenant's policy to resolve it
//! against the overwritten version, and writes the result under the join of both vectors,
//! conditionally on the item it read (retrying when another writer got there first). A
//! re-delivered record finds the overwritten version already covered and does nothing.
//!
//! The merged version takes the *join* of the vectors and no new tick: regions resolving the
//! same conflict independently then write identical items (the merge is deterministic and
//! commutative), which replication settles as equal. A tick per region would make each
//! region's merge a new concurrent version, and the regions would resolve each other's merges
//! forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use policy_types::writes::Writes;
use policy_types::{PartyVersion, VectorOrder, compare_vectors};
use serde_json::json;

use crate::conflict::{CapturedConflict, CapturedContext};
use crate::conflict_log::{ConflictLog, ConflictOutcome, ConflictRecord, conflict_id};
use crate::resolve::{Decision, Resolver};
use crate::store::{DeadLetter, DeadLetterSink, PartyStore, Provenance, StoreError, StoredParty};

/// What one stream record came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconcileOutcome {
    /// The new version had seen everything the old one had: nothing was lost.
    NotAConflict,
    /// The overwritten writes are already in the stored item (a re-delivery, or another
    /// record's resolution restored them).
    AlreadyResolved,
    /// Written back: the decision, the relation and the policy that decided (`None` when one
    /// version dominated and the host decided alone).
    Resolved {
        decision: &'static str,
        concurrent: bool,
        policy_digest: Option<String>,
    },
    /// Kept in the dead-letter queue with the reason (policy rejection or failure, retries
    /// exhausted, item too large); `policy_failure` names a trap, timeout, memory exhaustion
    /// or invalid result of the policy (`CallFailure::kind`).
    DeadLettered {
        reason: String,
        policy_failure: Option<&'static str>,
    },
    /// Could not even be dead-lettered: the record must be retried (a batch item failure).
    Retry(String),
}

/// The reconcile path of one region.
pub struct Reconcile<S, D> {
    store: S,
    dead_letters: D,
    resolver: Arc<Resolver>,
    log: Option<Arc<dyn ConflictLog>>,
    /// Cases the host settled alone (one version dominated) that were counted, not logged.
    pub dominated: AtomicU64,
    /// Conflicts that could not be written to the log (logged as warnings).
    pub log_failures: AtomicU64,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
}

impl<S: PartyStore, D: DeadLetterSink> Reconcile<S, D> {
    pub fn new(store: S, dead_letters: D, resolver: Arc<Resolver>) -> Self {
        Reconcile {
            store,
            dead_letters,
            resolver,
            log: None,
            dominated: AtomicU64::new(0),
            log_failures: AtomicU64::new(0),
            max_attempts: 5,
            retry_backoff_ms: 10,
        }
    }

    /// Records every conflict in `log` (once per conflict; re-resolutions append outcomes).
    pub fn with_conflict_log(mut self, log: Arc<dyn ConflictLog>) -> Self {
        self.log = Some(log);
        self
    }

    pub fn conflict_log(&self) -> Option<&Arc<dyn ConflictLog>> {
        self.log.as_ref()
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// One stream record: `old` was replaced by `new` in this region's table at `now_ms`.
    pub fn handle(&self, old: &StoredParty, new: &PartyVersion, now_ms: u64) -> ReconcileOutcome {
        match compare_vectors(&old.version.version_vector, &new.version_vector) {
            VectorOrder::DominatedBy | VectorOrder::Equal => return ReconcileOutcome::NotAConflict,
            VectorOrder::Dominates | VectorOrder::Concurrent => {}
        }
        self.restore_with((&old.version, &old.writes), now_ms, true, None)
    }

    /// Resolves `lost` (a version that is no longer stored) against the stored item.
    pub fn restore(&self, lost: &PartyVersion, now_ms: u64) -> ReconcileOutcome {
        self.restore_with((lost, &Writes::default()), now_ms, true, None)
    }

    /// A redrive of a conflict already in the dead-letter queue: like [`Reconcile::restore`],
    /// but what still fails is answered without sending a second copy.
    pub fn redrive(&self, lost: &PartyVersion, now_ms: u64) -> ReconcileOutcome {
        self.restore_with((lost, &Writes::default()), now_ms, false, None)
    }

    /// A redrive of a dead-lettered conflict (its captured form, as the queue keeps it): the
    /// outcome is appended to the conflict's record in the log, which then carries both.
    pub fn redrive_conflict(&self, conflict: &CapturedConflict, now_ms: u64) -> ReconcileOutcome {
        self.restore_with(
            (&conflict.remote, &conflict.remote_writes),
            now_ms,
            false,
            conflict.id.as_deref(),
        )
    }

    /// Writes one outcome to the log: a new record, or (for a redrive) an appended outcome.
    /// Host-settled cases are counted, not stored, unless the tenant asks for full capture.
    fn log_outcome(
        &self,
        (local, local_writes): (&PartyVersion, &Writes),
        (lost, lost_writes): (&PartyVersion, &Writes),
        redriven: Option<&str>,
        now_ms: u64,
        outcome: ConflictOutcome,
    ) {
        let Some(log) = &self.log else { return };
        let by = if redriven.is_some() {
            "redrive"
        } else {
            "reconcile"
        };
        let outcome = ConflictOutcome {
            by: by.to_owned(),
            ..outcome
        };
        let written = match redriven {
            Some(id) => log.append(&lost.tenant, id, &outcome),
            None => {
                match ConflictRecord::for_resolver(&self.resolver, local, lost, now_ms, outcome) {
                    Some(record) => {
                        let record = record.with_writes(local_writes, lost_writes);
                        log.record(&record).map(|_| ())
                    }
                    None => {
                        self.dominated.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        };
        if let Err(e) = written {
            self.log_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %lost.tenant, party = %lost.party_id, error = %e, "reconcile.log_failed");
        }
    }

    /// Resolves `lost` and the writes behind it against the stored item.
    fn restore_with(
        &self,
        (lost, lost_writes): (&PartyVersion, &Writes),
        now_ms: u64,
        keep: bool,
        redriven: Option<&str>,
    ) -> ReconcileOutcome {
        let region = self.resolver.region().to_owned();
        let mut last_error = String::new();
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                let base = self.retry_backoff_ms << (attempt - 1).min(6);
                std::thread::sleep(std::time::Duration::from_millis(base));
            }
            let current = match self.store.party(&lost.tenant, &lost.party_id) {
                Ok(Some(c)) => c,
                // Items are never deleted (deletes are tombstones): the lost version is all there is.
                Ok(None) => {
                    let restored = StoredParty {
                        version: lost.clone(),
                        provenance: Provenance {
                            written_by: region.clone(),
                            written_at_ms: now_ms,
                            ..Provenance::default()
                        },
                        writes: lost_writes.clone(),
                    };
                    match self.store.put_party(&restored, None) {
                        Ok(()) => {
                            return ReconcileOutcome::Resolved {
                                decision: "restored",
                                concurrent: false,
                                policy_digest: None,
                            };
                        }
                        Err(StoreError::ConditionFailed) => continue,
                        Err(e) => {
                            last_error = e.to_string();
                            continue;
                        }
                    }
                }
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let order = compare_vectors(&current.version.version_vector, &lost.version_vector);
            if matches!(order, VectorOrder::Dominates | VectorOrder::Equal) {
                return ReconcileOutcome::AlreadyResolved;
            }
            let resolved = match self
                .resolver
                .resolve_with_writes((&current.version, &current.writes), (lost, lost_writes))
            {
                Ok(r) => r,
                Err(e) => {
                    let (failure, digest) = match &e {
                        crate::resolve::ResolveFailure::Policy(p) => {
                            (Some(p.failure.kind()), Some(p.digest.clone()))
                        }
                        crate::resolve::ResolveFailure::NoPolicy(_)
                        | crate::resolve::ResolveFailure::Registry(_) => (None, None),
                    };
                    self.log_outcome(
                        (&current.version, &current.writes),
                        (lost, lost_writes),
                        redriven,
                        now_ms,
                        ConflictOutcome::failed("", now_ms, "failed", &e.to_string(), digest),
                    );
                    return match self.dead_letter(
                        keep,
                        (&current.version, &current.writes),
                        (lost, lost_writes),
                        &e.to_string(),
                    ) {
                        ReconcileOutcome::DeadLettered { reason, .. } => {
                            ReconcileOutcome::DeadLettered {
                                reason,
                                policy_failure: failure,
                            }
                        }
                        other => other,
                    };
                }
            };
            if let Decision::Rejected(reason) = &resolved.decision {
                self.log_outcome(
                    (&current.version, &current.writes),
                    (lost, lost_writes),
                    redriven,
                    now_ms,
                    ConflictOutcome::from_resolved("", now_ms, &resolved, &current.version, lost),
                );
                return self.dead_letter(
                    keep,
                    (&current.version, &current.writes),
                    (lost, lost_writes),
                    &format!("the policy rejected the conflict: {reason}"),
                );
            }
            let Some(written) = resolved.written(&current.version, lost) else {
                return self.dead_letter(
                    keep,
                    (&current.version, &current.writes),
                    (lost, lost_writes),
                    "the resolution wrote no party",
                );
            };
            let stored = StoredParty {
                version: written.clone(),
                provenance: Provenance {
                    last_event_id: current.provenance.last_event_id.clone(),
                    policy_digest: resolved
                        .policy_digest
                        .clone()
                        .or(current.provenance.policy_digest.clone()),
                    written_by: region.clone(),
                    written_at_ms: now_ms,
                },
                writes: Writes::merged(
                    (&current.version, &current.writes),
                    (lost, lost_writes),
                    written,
                ),
            };
            match self
                .store
                .put_party(&stored, Some(&current.version.version_vector))
            {
                Ok(()) => {
                    self.log_outcome(
                        (&current.version, &current.writes),
                        (lost, lost_writes),
                        redriven,
                        now_ms,
                        ConflictOutcome::from_resolved(
                            "",
                            now_ms,
                            &resolved,
                            &current.version,
                            lost,
                        ),
                    );
                    tracing::info!(
                        tenant = %lost.tenant,
                        party = %lost.party_id,
                        region = %region,
                        policy = resolved.policy_digest.as_deref().unwrap_or("-"),
                        outcome = resolved.decision.kind(),
                        "reconcile.resolved"
                    );
                    return ReconcileOutcome::Resolved {
                        decision: resolved.decision.kind(),
                        concurrent: resolved.policy_digest.is_some(),
                        policy_digest: resolved.policy_digest,
                    };
                }
                Err(StoreError::ConditionFailed) => {
                    last_error = "the item kept changing".into();
                    continue;
                }
                Err(StoreError::TooLarge { size, limit }) => {
                    let reason = format!(
                        "the merged party would be {size} bytes, over the {limit}-byte item limit"
                    );
                    self.log_outcome(
                        (&current.version, &current.writes),
                        (lost, lost_writes),
                        redriven,
                        now_ms,
                        ConflictOutcome::failed(
                            "",
                            now_ms,
                            "failed",
                            &reason,
                            resolved.policy_digest.clone(),
                        ),
                    );
                    return self.dead_letter(
                        keep,
                        (&current.version, &current.writes),
                        (lost, lost_writes),
                        &reason,
                    );
                }
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            }
        }
        let (current, current_writes) = self
            .store
            .party(&lost.tenant, &lost.party_id)
            .ok()
            .flatten()
            .map(|c| (c.version, c.writes))
            .unwrap_or_else(|| (lost.clone(), lost_writes.clone()));
        let reason = format!(
            "{} attempts to write the resolution failed: {last_error}",
            self.max_attempts
        );
        self.log_outcome(
            (&current, &current_writes),
            (lost, lost_writes),
            redriven,
            now_ms,
            ConflictOutcome::failed("", now_ms, "failed", &reason, None),
        );
        self.dead_letter(
            keep,
            (&current, &current_writes),
            (lost, lost_writes),
            &reason,
        )
    }

    /// Keeps the conflict (both versions, the tenant, why) in the dead-letter queue, as a
    /// captured conflict that `dry-run` replays and a redrive resolves again.
    fn dead_letter(
        &self,
        keep: bool,
        (local, local_writes): (&PartyVersion, &Writes),
        (lost, lost_writes): (&PartyVersion, &Writes),
        reason: &str,
    ) -> ReconcileOutcome {
        let region = self.resolver.region().to_owned();
        tracing::warn!(tenant = %lost.tenant, party = %lost.party_id, region = %region, reason, "reconcile.dead_letter");
        if !keep {
            return ReconcileOutcome::DeadLettered {
                reason: reason.to_owned(),
                policy_failure: None,
            };
        }
        let conflict = CapturedConflict {
            // The conflict log's id: a redrive appends its outcome to the same record.
            id: Some(conflict_id(&lost.tenant, local, lost)),
            tenant: lost.tenant.clone(),
            note: Some(reason.to_owned()),
            local: local.clone(),
            remote: lost.clone(),
            context: Some(CapturedContext {
                resolving_region: Some(region.clone()),
                config: None,
            }),
            local_writes: local_writes.clone(),
            remote_writes: lost_writes.clone(),
        };
        let letter = DeadLetter {
            tenant: lost.tenant.clone(),
            region,
            reason: reason.to_owned(),
            idempotency_key: None,
            payload: serde_json::to_value(&conflict)
                .unwrap_or_else(|e| json!({"error": e.to_string()})),
        };
        match self.dead_letters.send(&letter) {
            Ok(()) => ReconcileOutcome::DeadLettered {
                reason: reason.to_owned(),
                policy_failure: None,
            },
            Err(e) => {
                ReconcileOutcome::Retry(format!("{reason}; and the dead-letter send failed: {e}"))
            }
        }
    }
}
