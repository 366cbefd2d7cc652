//! The dead-letter queue on SQS: the original payload as the body, why and for whom as message
//! attributes. Nothing the functions cannot apply is dropped; this is where it is kept.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use host_core::store::{DeadLetter, DeadLetterSink, StoreError};
use tokio::runtime::Handle;

use crate::error::{AwsError, Call, Resource};

/// What produced a dead letter, so a redrive knows where to send it back.
pub const KIND_INGEST: &str = "ingest";
pub const KIND_RECONCILE: &str = "reconcile";
/// A hub notification no callback took (the notifier's own queue; not redriven).
pub const KIND_NOTIFY: &str = "notify";

/// SQS's limit on one message (body and attributes), in bytes.
pub const MESSAGE_LIMIT: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    kind: &'static str,
    rt: Handle,
}

impl SqsDeadLetters {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        kind: &'static str,
        rt: Handle,
    ) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
            kind,
            rt,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn attr(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type and value are set")
}

/// SQS refuses empty attribute values: a letter without a tenant (an unreadable stream record,
/// a message that named none) says `unknown`.
fn or_unknown(value: &str) -> &str {
    if value.is_empty() { "unknown" } else { value }
}

impl DeadLetterSink for SqsDeadLetters {
    fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let body = letter.payload.to_string();
        // A reason can quote a long error; the payload is what must survive whole.
        let reason: String = letter.reason.chars().take(4096).collect();
        if body.len() + reason.len() + 512 > MESSAGE_LIMIT {
            return Err(StoreError::TooLarge {
                size: body.len(),
                limit: MESSAGE_LIMIT,
            });
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", attr(or_unknown(&reason)))
            .message_attributes("tenant", attr(or_unknown(&letter.tenant)))
            .message_attributes("region", attr(or_unknown(&letter.region)))
            .message_attributes("kind", attr(self.kind));
        if let Some(key) = &letter.idempotency_key {
            request = request.message_attributes("idempotencyKey", attr(key));
        }
        let out = self.rt.block_on(request.send());
        out.map(|_| ()).map_err(|e| {
            let call = Call {
                action: "sending to the dead-letter queue",
                resource: Resource::Queue(&self.queue_url),
                region: self.client.config().region().map(|r| r.as_ref()),
            };
            AwsError::new(call, e).into()
        })
    }
}
