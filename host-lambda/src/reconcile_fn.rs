//! The reconcile function: the region's DynamoDB stream (NEW_AND_OLD_IMAGES) onto the host
//! library's [`Reconcile`]. Each MODIFY of a party item whose old image was not seen by the new
//! one is a version last-writer-wins overwrote; it is resolved and written back. Records it
//! cannot resolve go to the dead-letter queue; only a record that could not even be kept is
//! reported as a batch item failure, so one bad record never blocks the shard.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use host_core::ingest::{DeadLetterSink, PartyStore, StoreError};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use serde_json::{Value, json};

use crate::dynamo::{PARTY_SK, party_from_item};
use crate::ingest_fn::now_ms;
use crate::metrics::Metrics;

/// DynamoDB JSON (`{"S": "…"}`, `{"M": {…}}`, …), as stream records carry images, to an item.
pub fn item_from_json(image: &Value) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let obj = image
        .as_object()
        .ok_or_else(|| StoreError::Fatal("an image that is not an object".into()))?;
    obj.iter()
        .map(|(k, v)| Ok((k.clone(), attr_from_json(v)?)))
        .collect()
}

fn attr_from_json(v: &Value) -> Result<AttributeValue, StoreError> {
    let bad = || StoreError::Fatal(format!("not a DynamoDB attribute value: {v}"));
    let (kind, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(bad)?;
    Ok(match (kind.as_str(), inner) {
        ("S", Value::String(s)) => AttributeValue::S(s.clone()),
        ("N", Value::String(n)) => AttributeValue::N(n.clone()),
        ("BOOL", Value::Bool(b)) => AttributeValue::Bool(*b),
        ("NULL", _) => AttributeValue::Null(true),
        ("L", Value::Array(xs)) => {
            AttributeValue::L(xs.iter().map(attr_from_json).collect::<Result<_, _>>()?)
        }
        ("M", Value::Object(m)) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attr_from_json(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        ("SS", Value::Array(xs)) => AttributeValue::Ss(
            xs.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => return Err(bad()),
    })
}

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

    /// One stream batch; answers `{"batchItemFailures": [{"itemIdentifier": sequenceNumber}]}`.
    pub async fn handle(&self, event: Value) -> Value {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let mut failures = Vec::new();
        for record in records {
            let sequence = record["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
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
                        failures.push(json!({"itemIdentifier": sequence}));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // A record whose images do not parse cannot be resolved; it is kept whole.
                    tracing::warn!(region = %self.region, sequence, error = %e, "reconcile.unreadable");
                    let letter = host_core::ingest::DeadLetter {
                        tenant: String::new(),
                        region: self.region.clone(),
                        reason: format!("an unreadable stream record: {e}"),
                        idempotency_key: None,
                        payload: record.clone(),
                    };
                    let r = self.reconcile.clone();
                    let sent =
                        tokio::task::spawn_blocking(move || r.dead_letters().send(&letter)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        failures.push(json!({"itemIdentifier": sequence}));
                    }
                }
            }
        }
        crate::metrics::emit_policy_stats(
            "reconcile",
            &self.region,
            Some(self.reconcile.resolver()),
        );
        json!({"batchItemFailures": failures})
    }

    /// `None` when the record is not a party overwrite (inserts, other items).
    async fn record(&self, record: &Value) -> Result<Option<ReconcileOutcome>, StoreError> {
        if record["eventName"].as_str() != Some("MODIFY") {
            return Ok(None);
        }
        let d = &record["dynamodb"];
        if d["Keys"]["sk"]["S"].as_str() != Some(PARTY_SK) {
            return Ok(None);
        }
        let old = party_from_item(&item_from_json(&d["OldImage"])?)?;
        let new = party_from_item(&item_from_json(&d["NewImage"])?)?;
        let r = self.reconcile.clone();
        let outcome =
            tokio::task::spawn_blocking(move || r.handle(&old.version, &new.version, now_ms()))
                .await
                .map_err(|e| StoreError::Transient(format!("the reconcile task failed: {e}")))?;
        Ok(Some(outcome))
    }
}
