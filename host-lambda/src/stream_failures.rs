//! Stream batches reconcile gave up on, read back and handled again.
//!
//! The reconcile function's event source mapping retries a failing batch five times
//! (`MaximumRetryAttempts`) and then sends to `ReconcileFailureQueue` not the records but
//! where they are: the shard and the first and last sequence numbers
//! (`DDBStreamBatchInfo`). The records — and with them the versions last-writer-wins
//! overwrote — are kept by the stream for 24 hours only. Reconcile already keeps in the
//! dead-letter queue every conflict it could not resolve; a batch is given up only when even
//! that failed (the queue unreachable, the function timing out or crashing). So each failure
//! message is read back here while the stream still has its records, and the batch is handed
//! to the same [`ReconcileFunction::handle`] as the stream would hand it: its conflicts are
//! resolved or dead-lettered, and the redrive workflow's rounds then redrive those. A message
//! leaves the failure queue once its whole batch was handled. One whose records the stream no
//! longer has is moved to the review queue with that reason: what those records overwrote is
//! lost, and the operator must hear it.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_sqs::types::Message;
use serde::Serialize;
use serde_json::{Value, json};

use host_aws::streams::sequence_order;
pub use host_aws::streams::{BatchInfo, batch_info};

use crate::reconcile_fn::ReconcileFunction;
use host_core::store::{DeadLetterSink, PartyStore};

/// Why a batch could not be read back.
#[derive(Debug)]
pub enum ReadFailure {
    /// The stream no longer has the records (past its 24 hours, or the stream is gone).
    Expired(String),
    /// Worth trying again later.
    Transient(String),
}

/// Pages read at most for one batch: a batch is at most 10,000 records, 1,000 a page.
const MAX_PAGES: usize = 20;

/// The party table's stream, read back where a failure message says.
pub struct PartyStream {
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    /// In a tenant-scoped stack, the only tenant whose records are handled (as the event
    /// source mapping's filter hands reconcile only those).
    tenant: Option<String>,
}

impl PartyStream {
    pub fn new(
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
        tenant: Option<&str>,
    ) -> Self {
        PartyStream {
            streams,
            table: table.to_owned(),
            tenant: tenant.map(str::to_owned),
        }
    }

    /// The records of a given-up batch, read back from the stream, in order; only the stack's
    /// tenant's when it is tenant-scoped. A batch of another table's stream is refused.
    pub async fn read_given_up_batch(&self, batch: &BatchInfo) -> Result<Vec<Record>, ReadFailure> {
        if !batch
            .stream_arn
            .contains(&format!(":table/{}/stream/", self.table))
        {
            return Err(ReadFailure::Expired(format!(
                "{} is not a stream of the party table {}",
                batch.stream_arn, self.table
            )));
        }
        let mut records = self.read_range(batch).await?;
        if let Some(tenant) = &self.tenant {
            let prefix = format!("T#{tenant}#");
            records.retain(|r| {
                let pk = r.dynamodb.as_ref().and_then(|d| d.keys.as_ref()?.get("pk"));
                matches!(pk, Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(pk)) if pk.starts_with(&prefix))
            });
        }
        Ok(records)
    }

    async fn read_range(&self, batch: &BatchInfo) -> Result<Vec<Record>, ReadFailure> {
        fn failed<E: ProvideErrorMetadata + std::fmt::Display>(what: &str, e: E) -> ReadFailure {
            let message = format!("{what}: {}", e.message().unwrap_or(&e.to_string()));
            match e.code() {
                Some("TrimmedDataAccessException" | "ResourceNotFoundException") => {
                    ReadFailure::Expired(message)
                }
                _ => ReadFailure::Transient(message),
            }
        }
        let mut iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await
            .map_err(|e| {
                failed(
                    &format!("reading shard {} of {}", batch.shard_id, batch.stream_arn),
                    e.into_service_error(),
                )
            })?
            .shard_iterator;
        let mut records = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(at) = iterator.take() else { break };
            let page = self
                .streams
                .get_records()
                .shard_iterator(at)
                .limit(1000)
                .send()
                .await
                .map_err(|e| failed("reading the batch's records", e.into_service_error()))?;
            let got = page.records.unwrap_or_default();
            let empty = got.is_empty();
            for record in got {
                let sequence = record
                    .dynamodb
                    .as_ref()
                    .and_then(|d| d.sequence_number.as_deref())
                    .unwrap_or_default()
                    .to_owned();
                if sequence_order(&sequence, &batch.end_sequence_number).is_gt() {
                    return Ok(records);
                }
                let last = sequence_order(&sequence, &batch.end_sequence_number).is_eq();
                records.push(record);
                if last {
                    return Ok(records);
                }
            }
            if empty {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        if records.is_empty() {
            return Err(ReadFailure::Expired(format!(
                "the stream has no records from {} on shard {}",
                batch.start_sequence_number, batch.shard_id
            )));
        }
        Ok(records)
    }
}

/// A record of the Streams API as the Lambda event source delivers it (images in DynamoDB
/// JSON).
pub fn record_json(r: &Record) -> Value {
    let d = r
        .dynamodb
        .clone()
        .unwrap_or_else(|| aws_sdk_dynamodbstreams::types::StreamRecord::builder().build());
    let image = |i: Option<std::collections::HashMap<_, _>>| {
        i.map(|m| serde_json::to_value(serde_dynamo::Item::from(m)).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    json!({
        "awsRegion": r.aws_region.clone().unwrap_or_default(),
        "eventID": r.event_id.clone().unwrap_or_default(),
        "eventName": r.event_name.as_ref().map(|e| e.as_str()).unwrap_or_default(),
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "dynamodb": {
            "Keys": image(d.keys),
            "OldImage": image(d.old_image),
            "NewImage": image(d.new_image),
            "SequenceNumber": d.sequence_number.unwrap_or_default(),
            "SizeBytes": d.size_bytes.unwrap_or_default(),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    })
}

/// Records of the Streams API as the reconcile function's event, through their JSON as Lambda
/// delivers them.
pub fn stream_event(records: &[Record]) -> Result<DynamoDbEvent, String> {
    serde_json::from_value(json!({"Records": records.iter().map(record_json).collect::<Vec<_>>()}))
        .map_err(|e| format!("the records do not make a stream event: {e}"))
}

/// What one pass over the failure queue did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Failure messages read.
    pub received: usize,
    /// Batches read back and handled whole (their messages deleted).
    pub replayed: usize,
    /// Records those batches held.
    pub records: usize,
    /// Messages moved to the review queue: their records are gone, or the message is not one.
    pub reviewed: Vec<String>,
    /// Messages left for a later pass, with why.
    pub retry: Vec<String>,
}

/// The reconcile failure queue (`ReconcileFailureQueue`): Lambda's on-failure messages.
pub struct FailureQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl FailureQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: &str) -> Self {
        FailureQueue {
            sqs,
            url: url.to_owned(),
        }
    }

    async fn receive_failures(&self, max: usize) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| format!("reading {}: {}", self.url, e.into_service_error()))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn delete_failure(&self, message: &Message) -> Result<(), String> {
        let Some(handle) = &message.receipt_handle else {
            return Ok(());
        };
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "deleting a message from {}: {}",
                    self.url,
                    e.into_service_error()
                )
            })
    }
}

/// The review queue: what the workflows cannot settle, for an operator.
pub struct ReviewQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl ReviewQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: &str) -> Self {
        ReviewQueue {
            sqs,
            url: url.to_owned(),
        }
    }

    async fn send_to_review(&self, body: &str, reason: &str) -> Result<(), String> {
        let attribute = |value: &str| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(if value.is_empty() { "unknown" } else { value })
                .build()
                .expect("a string attribute has its two members")
        };
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("reason", attribute(reason))
            .message_attributes("kind", attribute("stream-failure"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("sending to {}: {}", self.url, e.into_service_error()))
    }
}

/// Reads up to `max` messages of the reconcile failure queue and handles each batch again
/// through `reconcile`; see the module's documentation. Fails only when a queue cannot be used.
pub async fn replay<S, D>(
    failures: &FailureQueue,
    review: &ReviewQueue,
    stream: &PartyStream,
    reconcile: &ReconcileFunction<S, D>,
    max: usize,
) -> Result<ReplayReport, String>
where
    S: PartyStore + 'static,
    D: DeadLetterSink + 'static,
{
    let mut report = ReplayReport::default();
    while report.received < max {
        let messages = failures.receive_failures(max - report.received).await?;
        if messages.is_empty() {
            break;
        }
        for m in messages {
            report.received += 1;
            let id = m.message_id.clone().unwrap_or_default();
            let body = m.body.clone().unwrap_or_default();
            match handle_batch(&body, stream, reconcile).await {
                Ok(n) => {
                    report.replayed += 1;
                    report.records += n;
                }
                Err(ReadFailure::Transient(why)) => {
                    // Left in the queue: visible again after its visibility timeout.
                    tracing::warn!(message = %id, reason = %why, "redrive.stream_failure.retry");
                    report.retry.push(format!("{id}: {why}"));
                    continue;
                }
                Err(ReadFailure::Expired(why)) => {
                    tracing::error!(message = %id, reason = %why, "redrive.stream_failure.lost");
                    review.send_to_review(&body, &why).await?;
                    report.reviewed.push(format!("{id}: {why}"));
                }
            }
            failures.delete_failure(&m).await?;
        }
    }
    Ok(report)
}

/// One failure message's batch, read back and handed to reconcile: the number of records, once
/// every one was handled.
async fn handle_batch<S, D>(
    body: &str,
    stream: &PartyStream,
    reconcile: &ReconcileFunction<S, D>,
) -> Result<usize, ReadFailure>
where
    S: PartyStore + 'static,
    D: DeadLetterSink + 'static,
{
    let batch = batch_info(body).map_err(ReadFailure::Expired)?;
    let records = stream.read_given_up_batch(&batch).await?;
    let event = stream_event(&records).map_err(ReadFailure::Expired)?;
    let n = event.records.len();
    let answer = reconcile.handle(event).await;
    if answer.batch_item_failures.is_empty() {
        Ok(n)
    } else {
        Err(ReadFailure::Transient(format!(
            "reconcile could not handle every record of the batch yet ({} of {n} left)",
            answer.batch_item_failures.len()
        )))
    }
}
