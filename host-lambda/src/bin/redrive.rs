//! The redrive Lambda function, run by the dead-letter redrive state machine: reads a batch
//! from the dead-letter queue and hands each message back to the path that produced it
//! (ingest events to the ingest, conflicts to the reconcile). Applied messages leave the queue;
//! the answer lists what still fails, for the state machine to retry or escalate.
//! Input: `{"action": "receive", "max": 10}` → the redrive report (`received`, `redriven`,
//! `failed`: each failed message whole); `{"action": "resubmit", "message": <a failed one>}`
//! → applies that one message again and deletes it (error type `Retryable` when it still
//! fails, `NonRetryable` when it never will). Messages handed out more than three times are
//! reported failed with reason `redrive-limit` for the workflow to escalate.
//! `{"action": "stream-failures", "max": 10}` → the batches the reconcile stream gave up on
//! (`ReconcileFailureQueue`), read back from the stream and handled again, before the rounds
//! (`host_lambda::stream_failures`): `{received, replayed, records, reviewed, retry}`.

use std::sync::Arc;

use anyhow::Context;
use host_aws::dynamo::DynamoStore;
use host_aws::sqs::{KIND_INGEST, KIND_RECONCILE, SqsDeadLetters};
use host_core::conflict::CapturedConflict;
use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_lambda::FunctionError;
use host_lambda::ingest_fn::now_ms;
use host_lambda::reconcile_fn::ReconcileFunction;
use host_lambda::redrive::{Failed, Kept, REDRIVE_LIMIT, redrive, resubmit};
use host_lambda::stream_failures::{FailureQueue, PartyStream, ReviewQueue, replay};
use host_lambda::wiring::Wiring;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

type AwsIngest = Ingest<DynamoStore, SqsDeadLetters>;
type AwsReconcile = Reconcile<DynamoStore, SqsDeadLetters>;

/// Where given-up stream batches are read from and what they are read with; `None` when the
/// environment names no failure queue. (Each queue is made in a function of its own, naming
/// its one queue, which is how scripts/iam-permissions.py tells the resources apart.)
struct StreamFailures {
    failures: FailureQueue,
    review: ReviewQueue,
    stream: PartyStream,
    reconcile: ReconcileFunction<DynamoStore, SqsDeadLetters>,
}

fn failure_queue(w: &Wiring) -> Option<FailureQueue> {
    let url = w.config.queues.reconcile_failure.as_deref()?;
    Some(FailureQueue::new(w.sqs.clone(), url))
}

fn review_queue(w: &Wiring) -> Option<ReviewQueue> {
    let url = w.config.queues.review.as_deref()?;
    Some(ReviewQueue::new(w.sqs.clone(), url))
}

fn party_stream(w: &Wiring) -> PartyStream {
    PartyStream::new(
        w.streams.clone(),
        &w.config.tables.party,
        w.config.tenant_scope.as_deref(),
    )
}

fn stream_failures(w: &Wiring) -> Option<StreamFailures> {
    Some(StreamFailures {
        failures: failure_queue(w)?,
        review: review_queue(w)?,
        stream: party_stream(w),
        reconcile: ReconcileFunction::new(w.reconcile(), &w.config.region),
    })
}

/// Hands a dead letter back to the path that produced it.
async fn apply(
    ingest: Arc<AwsIngest>,
    reconcile: Arc<AwsReconcile>,
    kept: Kept,
    deadline: u64,
) -> Result<(), String> {
    host_lambda::blocking(move || match kept.kind.as_str() {
        KIND_INGEST => match ingest.redeliver(
            &kept.letter.tenant,
            &kept.letter.payload,
            kept.letter.idempotency_key.as_deref(),
            now_ms(),
            deadline,
        ) {
            Outcome::Applied { .. } => Ok(()),
            Outcome::Refused(e) => Err(format!("refused: {}", e.message)),
            Outcome::InProgress => Err("another delivery of the key is in progress".into()),
            Outcome::DeadLettered(reason) => Err(reason),
        },
        KIND_RECONCILE => {
            let conflict: CapturedConflict = serde_json::from_value(kept.letter.payload)
                .map_err(|e| format!("not a captured conflict: {e}"))?;
            match reconcile.redrive_conflict(&conflict, now_ms()) {
                ReconcileOutcome::Resolved { .. } | ReconcileOutcome::AlreadyResolved => Ok(()),
                ReconcileOutcome::DeadLettered { reason, .. } | ReconcileOutcome::Retry(reason) => {
                    Err(reason)
                }
                ReconcileOutcome::NotAConflict => Ok(()),
            }
        }
        other => Err(format!("unknown dead-letter kind {other:?}")),
    })
    .await
    .map_err(|e| e.to_string())?
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = Wiring::from_env().await?;
    let ingest = Arc::new(
        Ingest::new(
            w.store(),
            w.dead_letters(KIND_INGEST),
            IngestConfig::new(&w.config.region),
        )
        .with_resolver(w.resolver.clone()),
    );
    let reconcile = Arc::new(w.reconcile());
    let given_up = stream_failures(&w);
    let given_up = &given_up;
    let (sqs, url) = (&w.sqs, &w.config.queues.dead_letter);
    let (ingest, reconcile) = (&ingest, &reconcile);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let payload = event.payload;
        let deadline = event.context.deadline;
        let apply = |kept: Kept| apply(ingest.clone(), reconcile.clone(), kept, deadline);
        match payload["action"].as_str().unwrap_or("receive") {
            "receive" => {
                let max = payload["max"].as_u64().unwrap_or(10) as usize;
                let report = redrive(sqs, url, max, apply).await?;
                Ok(serde_json::to_value(report).unwrap_or_default())
            }
            "resubmit" => {
                let message: Failed =
                    serde_json::from_value(payload["message"].clone()).map_err(|e| {
                        FunctionError::NonRetryable(format!(
                            "resubmit needs the failed message: {e}"
                        ))
                    })?;
                if message.reason == "redrive-limit" {
                    return Err(FunctionError::NonRetryable(format!(
                        "message {} was redriven {REDRIVE_LIMIT} times already",
                        message.message_id
                    )));
                }
                resubmit(sqs, url, &message, apply).await?;
                Ok(json!({"resubmitted": message.message_id}))
            }
            "stream-failures" => {
                let Some(s) = given_up else {
                    return Err(FunctionError::NonRetryable(
                        "stream-failures needs RECONCILE_FAILURE_QUEUE_URL and REVIEW_QUEUE_URL"
                            .into(),
                    ));
                };
                let max = payload["max"].as_u64().unwrap_or(10) as usize;
                let report = replay(&s.failures, &s.review, &s.stream, &s.reconcile, max)
                    .await
                    .map_err(FunctionError::Retryable)?;
                Ok(serde_json::to_value(report).unwrap_or_default())
            }
            other => Err(FunctionError::NonRetryable(format!(
                "unknown action {other:?}: expected receive, resubmit or stream-failures"
            ))),
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
