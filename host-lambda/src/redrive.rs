//! Redriving the dead-letter queue: each kept event is read back with its reason and handed to
//! the path that produced it; it leaves the queue only when that path has applied it.

use std::future::Future;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_aws::error::{AwsError, Call, Resource};
use host_core::store::DeadLetter;
use serde::Serialize;
use serde_json::Value;

use crate::FunctionError;

/// A dead letter as read back from the queue.
#[derive(Clone, Debug)]
pub struct Kept {
    pub message_id: String,
    pub kind: String,
    pub letter: DeadLetter,
    /// How many times the queue has handed this message out.
    pub receive_count: u32,
}

/// A message that could not be redriven: everything the redrive workflow needs to retry it
/// alone (`{"action": "resubmit", "message": …}`) or escalate it to the review queue.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// Why it failed now (the original reason is in `originalReason`).
    pub reason: String,
    pub original_reason: String,
    pub tenant: String,
    pub region: String,
    pub kind: String,
    #[serde(default)]
    pub idempotency_key: String,
}

impl Failed {
    /// The dead letter the message holds.
    pub fn kept(&self) -> Kept {
        Kept {
            message_id: self.message_id.clone(),
            kind: self.kind.clone(),
            receive_count: 0,
            letter: DeadLetter {
                tenant: self.tenant.clone(),
                region: self.region.clone(),
                reason: self.original_reason.clone(),
                idempotency_key: Some(self.idempotency_key.clone()).filter(|k| !k.is_empty()),
                payload: serde_json::from_str(&self.body)
                    .unwrap_or(Value::String(self.body.clone())),
            },
        }
    }
}

/// What one redrive pass did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    pub received: usize,
    pub redriven: usize,
    /// Still failing; they stay in the queue (visible again after its visibility timeout) for
    /// the workflow's per-message retries, the next pass, or the review queue.
    pub failed: Vec<Failed>,
}

/// Messages handed out more often than this are not applied again but reported failed with
/// reason `redrive-limit`, so a poison message ends in the review queue instead of cycling.
pub const REDRIVE_LIMIT: u32 = 3;

/// SQS refuses empty attribute values; the workflow forwards these fields as attributes.
fn or_unknown(s: String) -> String {
    if s.is_empty() { "unknown".into() } else { s }
}

/// A failed call on the dead-letter queue, read as every AWS failure is (`host_aws::error`).
fn queue_failed<E>(
    client: &Client,
    queue_url: &str,
    action: &str,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let call = Call {
        action,
        resource: Resource::Queue(queue_url),
        region: client.config().region().map(|r| r.as_ref()),
    };
    AwsError::new(call, err)
}

/// Reads up to `max` messages and hands each to `apply`; deletes those it applied. Fails only
/// when the queue cannot be read or an applied message cannot be deleted.
pub async fn redrive<F, Fut>(
    client: &Client,
    queue_url: &str,
    max: usize,
    mut apply: F,
) -> Result<RedriveReport, AwsError>
where
    F: FnMut(Kept) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut report = RedriveReport::default();
    while report.received < max {
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages((max - report.received).min(10) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| queue_failed(client, queue_url, "reading the dead-letter queue", e))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            report.received += 1;
            let id = m.message_id.clone().unwrap_or_default();
            let attr = |name: &str| {
                m.message_attributes
                    .as_ref()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default()
            };
            let body = m.body.clone().unwrap_or_default();
            let failed = |reason: String| Failed {
                message_id: id.clone(),
                receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                body: body.clone(),
                reason: or_unknown(reason),
                original_reason: or_unknown(attr("reason")),
                tenant: or_unknown(attr("tenant")),
                region: or_unknown(attr("region")),
                kind: or_unknown(attr("kind")),
                idempotency_key: attr("idempotencyKey"),
            };
            let kept = Kept {
                message_id: id.clone(),
                kind: attr("kind"),
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                letter: DeadLetter {
                    tenant: attr("tenant"),
                    region: attr("region"),
                    reason: attr("reason"),
                    idempotency_key: Some(attr("idempotencyKey")).filter(|k| !k.is_empty()),
                    payload: serde_json::from_str(&body)
                        .unwrap_or_else(|_| Value::String(body.clone())),
                },
            };
            if kept.receive_count > REDRIVE_LIMIT {
                report.failed.push(failed("redrive-limit".into()));
                continue;
            }
            match apply(kept).await {
                Ok(()) => {
                    if let Some(handle) = &m.receipt_handle {
                        client
                            .delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| {
                                queue_failed(
                                    client,
                                    queue_url,
                                    &format!("deleting redriven message {id}"),
                                    e,
                                )
                            })?;
                    }
                    report.redriven += 1;
                }
                Err(reason) => report.failed.push(failed(reason)),
            }
        }
    }
    Ok(report)
}

/// Applies one failed message again (the workflow's per-message retry) and deletes it from the
/// queue when applied. Still failing is `Retryable` (the workflow retries, then escalates).
pub async fn resubmit<F, Fut>(
    client: &Client,
    queue_url: &str,
    message: &Failed,
    apply: F,
) -> Result<(), FunctionError>
where
    F: FnOnce(Kept) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    apply(message.kept())
        .await
        .map_err(FunctionError::Retryable)?;
    client
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(&message.receipt_handle)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let action = format!("deleting redriven message {}", message.message_id);
            queue_failed(client, queue_url, &action, e).into()
        })
}
