//! What Lambda tells of a DynamoDB stream batch it gave up on: the on-failure message an event
//! source mapping sends to its destination (`DDBStreamBatchInfo`: the shard and the first and
//! last sequence numbers, not the records). Read by the redrive function
//! (`host_lambda::stream_failures`), which reads the records back from the stream.

use serde::{Deserialize, Serialize};

/// Where a given-up batch is: the part of Lambda's on-failure message for a DynamoDB stream
/// that says it (`DDBStreamBatchInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    #[serde(default)]
    pub batch_size: Option<u64>,
}

#[derive(Deserialize)]
struct FailureMessage {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

/// The batch a failure message names; the error says what is missing.
pub fn batch_info(body: &str) -> Result<BatchInfo, String> {
    let message: FailureMessage = serde_json::from_str(body).map_err(|e| {
        format!("not a DynamoDB stream on-failure message (DDBStreamBatchInfo with shardId, startSequenceNumber, endSequenceNumber, streamArn): {e}")
    })?;
    let b = &message.batch;
    for (name, n) in [
        ("startSequenceNumber", &b.start_sequence_number),
        ("endSequenceNumber", &b.end_sequence_number),
    ] {
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{name} {n:?} is not a sequence number (digits)"));
        }
    }
    if sequence_order(&b.start_sequence_number, &b.end_sequence_number).is_gt() {
        return Err(format!(
            "startSequenceNumber {} is after endSequenceNumber {}",
            b.start_sequence_number, b.end_sequence_number
        ));
    }
    Ok(message.batch)
}

/// Sequence numbers are decimal numbers of up to 40 digits: longer is later.
pub fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{
        "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:eu-west-1:1:function:f", "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-12-06T10:00:00.000Z",
        "DDBStreamBatchInfo": {"shardId": "shardId-0001", "startSequenceNumber": "900", "endSequenceNumber": "1200",
          "approximateArrivalOfFirstRecord": "2026-12-06T09:59:00Z", "approximateArrivalOfLastRecord": "2026-12-06T09:59:01Z",
          "batchSize": 3, "streamArn": "arn:aws:dynamodb:eu-west-1:1:table/tmf632-parties/stream/2026-12-01T00:00:00.000"}
    }"#;

    #[test]
    fn lambdas_failure_message_names_the_batch() {
        let b = batch_info(MESSAGE).unwrap();
        assert_eq!(b.shard_id, "shardId-0001");
        assert_eq!(
            (
                b.start_sequence_number.as_str(),
                b.end_sequence_number.as_str()
            ),
            ("900", "1200")
        );
        assert_eq!(b.batch_size, Some(3));
    }

    #[test]
    fn what_is_not_a_batch_is_refused_with_what_is_wrong() {
        let e = batch_info(r#"{"Records": []}"#).unwrap_err();
        assert!(e.contains("DDBStreamBatchInfo"), "{e}");
        let reversed = MESSAGE.replace("\"900\"", "\"1300\"");
        assert!(batch_info(&reversed).unwrap_err().contains("after"));
        let words = MESSAGE.replace("\"900\"", "\"nine\"");
        assert!(
            batch_info(&words)
                .unwrap_err()
                .contains("not a sequence number")
        );
    }

    #[test]
    fn longer_sequence_numbers_are_later() {
        use std::cmp::Ordering::*;
        assert_eq!(sequence_order("900", "1200"), Less);
        assert_eq!(sequence_order("1200", "1200"), Equal);
        assert_eq!(sequence_order("0900", "900"), Equal);
        assert_eq!(sequence_order("1300", "1200"), Greater);
    }
}
