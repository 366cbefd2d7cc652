//! The reconcile function: the region's DynamoDB stream (NEW_AND_OLD_IMAGES) onto the host
//! library's [`Reconcile`]. Each MODIFY of a party item whose old image was not seen by the new
//! one is a version last-writer-wins overwrote; it is resolved and written back. Records it
//! cannot resolve go to the dead-letter queue; only a record that could not even be kept is
//! reported as a batch item failure, so one bad record never blocks the shard.

use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use host_aws::dynamo::{PARTY_SK, party_from_item};
use host_core::failure::Failure;
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::{DeadLetterSink, PartyStore, StoreError};
use serde_dynamo::AttributeValue;

use crate::ingest_fn::now_ms;
use crate::metrics::Metrics;

pub struct ReconcileFunction<S, D> {
    reconcile: Arc<Reconcile<S, D>>,
    region: String,
}

impl<S, D> ReconcileFunction<S, D>
where
    S: PartyStore + 'static,
    D: DeadLetterSink + 'static,
{
    pub fn new(reconcile: Reconcile<S, D>, region: impl Into<String>) -> Self {
        ReconcileFunction {
            reconcile: Arc::new(reconcile),
            region: region.into(),
        }
    }

    pub fn reconcile(&self) -> &Reconcile<S, D> {
        &self.reconcile
    }

    /// One stream batch. The first record that must be retried ends the batch and is reported
    /// by its sequence number: Lambda checkpoints before the lowest reported record and delivers
    /// everything from it again, so handling the records after it would apply a party's later
    /// changes before its earlier one and do their work twice.
    pub async fn handle(&self, event: DynamoDbEvent) -> DynamoDbEventResponse {
        let mut failures = Vec::new();
        for record in event.records {
            if !failures.is_empty() {
                break;
            }
            let sequence = record.change.sequence_number.clone().unwrap_or_default();
            match self.record(&record).await {
                Ok(Some(outcome)) => {
                    let m = Metrics::new("reconcile", &self.region);
                    let m = match &outcome {
                        ReconcileOutcome::Resolved {
                            concurrent: true,
                            policy_digest,
                            ..
                        } => m
                            .count("ConflictsDetected", 1)
                            .count("ConflictsResolved", 1)
                            .property("policyDigest", policy_digest.clone().unwrap_or_default()),
                        ReconcileOutcome::Resolved { .. } => m.count("OverwritesRestored", 1),
                        ReconcileOutcome::DeadLettered { policy_failure, .. } => {
                            let m = m.count("ConflictsDetected", 1).count("DeadLetterSends", 1);
                            match policy_failure {
                                Some("timeout") => m.count("PolicyTimeouts", 1),
                                Some(_) => m.count("PolicyTraps", 1),
                                None => m.count("ConflictsRejected", 1),
                            }
                        }
                        ReconcileOutcome::Retry(_) => m.count("ReconcileRetries", 1),
                        _ => m,
                    };
                    m.emit();
                    if let ReconcileOutcome::Retry(reason) = outcome {
                        tracing::warn!(region = %self.region, sequence, reason, "reconcile.retry");
                        failures.push(sequence);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // A record whose images do not parse cannot be resolved; it is kept whole.
                    tracing::warn!(region = %self.region, sequence, error = %e, "reconcile.unreadable");
                    let letter = host_core::store::DeadLetter {
                        tenant: String::new(),
                        region: self.region.clone(),
                        reason: format!("an unreadable stream record: {e}"),
                        idempotency_key: None,
                        payload: serde_json::to_value(&record).unwrap_or_default(),
                    };
                    let r = self.reconcile.clone();
                    let sent = crate::blocking(move || r.dead_letters().send(&letter)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        failures.push(sequence);
                    }
                }
            }
        }
        crate::metrics::emit_policy_stats(
            "reconcile",
            &self.region,
            Some(self.reconcile.resolver()),
        );
        crate::batch_failures(failures)
    }

    /// `None` when the record is not a party overwrite (inserts, other items).
    async fn record(&self, record: &EventRecord) -> Result<Option<ReconcileOutcome>, StoreError> {
        let change = &record.change;
        let is_party =
            matches!(change.keys.get("sk"), Some(AttributeValue::S(sk)) if sk == PARTY_SK);
        if record.event_name != "MODIFY" || !is_party {
            return Ok(None);
        }
        let old = party_from_item(change.old_image.clone())?;
        let new = party_from_item(change.new_image.clone())?;
        let r = self.reconcile.clone();
        let outcome = crate::blocking(move || r.handle(&old, &new.version, now_ms()))
            .await
            .map_err(|e| {
                StoreError::Transient(Failure::caused_by(
                    format!("the reconcile task failed: {e}"),
                    e,
                ))
            })?;
        Ok(Some(outcome))
    }
}
