//! Parties and idempotency records in one DynamoDB table (the region's replica of the global
//! table), behind the host library's [`PartyStore`] and [`IngestStore`].
//!
//! Item design (documented in the README):
//! - a party: `pk = T#{tenant}#P#{partyId}`, `sk = PARTY`; its stamped state as attributes
//!   (`state`: fields with their HLC stamps, array elements with their entries and dots, the
//!   tombstone), its version vector twice (`versionVector`, a map region → counter, and
//!   `vvKey`, the same as one canonical string that conditional writes compare), the greatest
//!   stamp (`clock`), and its provenance (`lastEventId`, `policyDigest`, `writtenBy`,
//!   `writtenAtMs`);
//! - an idempotency record: `pk = T#{tenant}#K#{key}`, `sk = IDEMPOTENCY`, with `payloadHash`,
//!   `status`, `inProgressUntil` (ms), `expiresAt` (s, the table's TTL attribute) and `result`.
//!
//! Keys start with the tenant, so an IAM policy can confine a function to one tenant with
//! `dynamodb:LeadingKeys`. Items over DynamoDB's 400 KB limit are refused before the request
//! with their size ([`StoreError::TooLarge`]); nothing is truncated.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use host_core::ingest::{
    IdempotencyRecord, IngestStore, PartyStore, Provenance, RecordStatus, StoreError, StoredParty,
    record_is_live,
};
use policy_types::{Dot, PartyVersion};
use serde_json::Value;
use tokio::runtime::Handle;

/// DynamoDB's limit on one item, in bytes.
pub const ITEM_LIMIT: usize = 400 * 1024;

type Item = HashMap<String, AttributeValue>;

/// The region's party table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Our name of the region this replica serves (its own copies are `OWN#{region}`).
    region: String,
    rt: Handle,
}

pub fn party_key(tenant: &str, party_id: &str) -> String {
    format!("T#{tenant}#P#{party_id}")
}

pub fn record_key(tenant: &str, key: &str) -> String {
    format!("T#{tenant}#K#{key}")
}

pub const PARTY_SK: &str = "PARTY";
pub const RECORD_SK: &str = "IDEMPOTENCY";

/// The sort key of a region's own copy of its last write of a party.
pub fn own_sk(region: &str) -> String {
    format!("OWN#{region}")
}

/// The version vector as one string, `apac:3,eu:5`: what a conditional write compares.
pub fn vv_key(vv: &[Dot]) -> String {
    let mut dots: Vec<_> = vv.iter().filter(|d| d.counter > 0).collect();
    dots.sort();
    dots.iter()
        .map(|d| format!("{}:{}", d.region, d.counter))
        .collect::<Vec<_>>()
        .join(",")
}

impl DynamoStore {
    /// `rt` is the runtime the SDK's futures run on; call the store from outside its workers.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        region: impl Into<String>,
        rt: Handle,
    ) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            region: region.into(),
            rt,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self.rt.block_on(
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk.to_owned()))
                .consistent_read(true)
                .send(),
        );
        Ok(out.map_err(store_error)?.item)
    }

    /// The party write, conditional on the stored version vector.
    fn party_put(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<Put, StoreError> {
        let item = party_item(party);
        let size = item_size(&item);
        if size > ITEM_LIMIT {
            return Err(StoreError::TooLarge {
                size,
                limit: ITEM_LIMIT,
            });
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None);
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(vv) => put
                .condition_expression("vvKey = :expected")
                .expression_attribute_values(":expected", AttributeValue::S(vv_key(vv))),
        };
        put.build().map_err(|e| StoreError::Fatal(e.to_string()))
    }
}

impl PartyStore for DynamoStore {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        self.get(party_key(tenant, party_id), PARTY_SK)?
            .map(|item| party_from_item(&item))
            .transpose()
    }

    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError> {
        let put = self.party_put(party, expected)?;
        let out = self.rt.block_on(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send(),
        );
        out.map(|_| ()).map_err(store_error)
    }
}

impl IngestStore for DynamoStore {
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<PartyVersion>, StoreError> {
        self.get(party_key(tenant, party_id), &own_sk(&self.region))?
            .map(|item| party_from_item(&item).map(|p| p.version))
            .transpose()
    }

    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(record_key(tenant, key), RECORD_SK)?
            .map(|item| record_from_item(&item))
            .transpose()
    }

    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
        // The same rule as `record_is_live`, as a condition: absent, expired (TTL deletion is
        // lazy), or in progress past its holder's deadline.
        let out = self.rt.block_on(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(record_item(record, &self.region)))
                .condition_expression(
                    "attribute_not_exists(pk) OR expiresAt <= :nowS \
                     OR (#status = :inProgress AND inProgressUntil <= :nowMs)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":nowS", n(now_ms / 1000))
                .expression_attribute_values(":nowMs", n(now_ms))
                .expression_attribute_values(":inProgress", s("in-progress"))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send(),
        );
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let existing = match e.err() {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                        c.item.clone()
                    }
                    _ => None,
                };
                let existing = match existing {
                    Some(item) => record_from_item(&item)?,
                    None => self.record(&record.tenant, &record.key)?.ok_or_else(|| {
                        StoreError::Transient(
                            "the claim was refused by a record that is gone; retry".into(),
                        )
                    })?,
                };
                debug_assert!(record_is_live(&existing, now_ms));
                Err(StoreError::AlreadyClaimed(Box::new(existing)))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    fn commit(
        &self,
        party: &StoredParty,
        expected: Option<&[Dot]>,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let party_put = self.party_put(party, expected)?;
        // The record must still be this delivery's claim: same payload, not completed by
        // another delivery meanwhile.
        let record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_item(record, &self.region)))
            .condition_expression("payloadHash = :hash AND #status = :inProgress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":hash", s(&record.payload_hash))
            .expression_attribute_values(":inProgress", s("in-progress"))
            .build()
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let mut own = party_item(party);
        own.insert("sk".into(), s(&own_sk(&self.region)));
        own.remove("vvKey");
        let own_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(own))
            .build()
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let out = self.rt.block_on(
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(party_put).build())
                .transact_items(TransactWriteItem::builder().put(record_put).build())
                .transact_items(TransactWriteItem::builder().put(own_put).build())
                .send(),
        );
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                let reasons: Vec<Option<String>> = match e.err() {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_owned))
                        .collect(),
                    _ => vec![],
                };
                let code = |i: usize| reasons.get(i).cloned().flatten().unwrap_or_default();
                if code(0) == "ConditionalCheckFailed" {
                    Err(StoreError::ConditionFailed)
                } else if code(1) == "ConditionalCheckFailed" {
                    // Another delivery completed the key (after this one's claim expired).
                    let existing = self.record(&record.tenant, &record.key)?.ok_or_else(|| {
                        StoreError::Transient(
                            "the idempotency record vanished during the commit; retry".into(),
                        )
                    })?;
                    Err(StoreError::AlreadyClaimed(Box::new(existing)))
                } else if reasons
                    .iter()
                    .flatten()
                    .any(|c| is_throttle(c) || c == "TransactionConflict")
                {
                    Err(StoreError::Transient(format!(
                        "transaction cancelled: {reasons:?}"
                    )))
                } else {
                    Err(StoreError::Fatal(format!(
                        "transaction cancelled: {reasons:?}"
                    )))
                }
            }
            Err(e) => Err(store_error(e)),
        }
    }

    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        let out = self.rt.block_on(
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&record_key(tenant, key)))
                .key("sk", s(RECORD_SK))
                .condition_expression("#status = :inProgress")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":inProgress", s("in-progress"))
                .send(),
        );
        match out {
            Ok(_) => Ok(()),
            // Completed meanwhile, or already gone: nothing to release.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceeded"
            | "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "ThrottlingError"
            | "RequestLimitExceeded"
            | "Throttling"
    )
}

/// Maps an SDK error (after the SDK's own retries) to the store's error.
pub fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or_default().to_owned();
    let message = err.message().unwrap_or_default().to_owned();
    match &err {
        SdkError::ServiceError(_) if code == "ConditionalCheckFailedException" => {
            StoreError::ConditionFailed
        }
        SdkError::ServiceError(_) if is_throttle(&code) || code == "InternalServerError" => {
            StoreError::Transient(format!("{code}: {message}"))
        }
        SdkError::ServiceError(_) if message.contains("Item size") => StoreError::TooLarge {
            size: 0,
            limit: ITEM_LIMIT,
        },
        SdkError::ServiceError(_) => StoreError::Fatal(format!("{code}: {message}")),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ))
        }
        _ => StoreError::Fatal(format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        )),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// JSON → attribute value: objects as maps, arrays as lists, so stamps and clocks are
/// attributes a console or a query can read.
pub fn to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(x) => AttributeValue::N(x.to_string()),
        Value::String(x) => AttributeValue::S(x.clone()),
        Value::Array(xs) => AttributeValue::L(xs.iter().map(to_attr).collect()),
        Value::Object(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
        }
    }
}

/// Attribute value → JSON (the inverse of [`to_attr`]).
pub fn from_attr(v: &AttributeValue) -> Result<Value, StoreError> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(x) => serde_json::from_str(x)
            .map_err(|e| StoreError::Fatal(format!("number attribute {x:?}: {e}")))?,
        AttributeValue::S(x) => Value::String(x.clone()),
        AttributeValue::L(xs) => Value::Array(xs.iter().map(from_attr).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_attr(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        other => {
            return Err(StoreError::Fatal(format!(
                "unexpected attribute type in a stored item: {other:?}"
            )));
        }
    })
}

pub fn party_item(party: &StoredParty) -> Item {
    let v = &party.version;
    let p = &party.provenance;
    let state = serde_json::to_value(v).expect("a party version serializes");
    let mut item = Item::new();
    item.insert("pk".into(), s(&party_key(&v.tenant, &v.party_id)));
    item.insert("sk".into(), s(PARTY_SK));
    item.insert("tenant".into(), s(&v.tenant));
    item.insert("partyId".into(), s(&v.party_id));
    item.insert("resourceType".into(), s(v.resource_type.as_str()));
    item.insert(
        "versionVector".into(),
        AttributeValue::M(
            v.version_vector
                .iter()
                .map(|d| (d.region.clone(), n(d.counter)))
                .collect(),
        ),
    );
    item.insert("vvKey".into(), s(&vv_key(&v.version_vector)));
    if let Some(clock) = v.max_stamp() {
        item.insert("clock".into(), s(&clock.to_string()));
    }
    item.insert("state".into(), to_attr(&state));
    if let Some(id) = &p.last_event_id {
        item.insert("lastEventId".into(), s(id));
    }
    if let Some(d) = &p.policy_digest {
        item.insert("policyDigest".into(), s(d));
    }
    item.insert("writtenBy".into(), s(&p.written_by));
    item.insert("writtenAtMs".into(), n(p.written_at_ms));
    item
}

fn str_attr(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn num_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse().ok())
}

pub fn party_from_item(item: &Item) -> Result<StoredParty, StoreError> {
    let state = item
        .get("state")
        .ok_or_else(|| StoreError::Fatal("a party item without its state attribute".into()))?;
    let version: PartyVersion = serde_json::from_value(from_attr(state)?)
        .map_err(|e| StoreError::Fatal(format!("a party item's state does not parse: {e}")))?;
    Ok(StoredParty {
        version,
        provenance: Provenance {
            last_event_id: str_attr(item, "lastEventId"),
            policy_digest: str_attr(item, "policyDigest"),
            written_by: str_attr(item, "writtenBy").unwrap_or_default(),
            written_at_ms: num_attr(item, "writtenAtMs").unwrap_or_default(),
        },
    })
}

/// A record item; `writtenAtMs`/`writtenBy` order its writes for replication, as on parties.
fn record_item(r: &IdempotencyRecord, region: &str) -> Item {
    let mut item = Item::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    item.insert("writtenAtMs".into(), n(now));
    item.insert("writtenBy".into(), s(region));
    item.insert("pk".into(), s(&record_key(&r.tenant, &r.key)));
    item.insert("sk".into(), s(RECORD_SK));
    item.insert("tenant".into(), s(&r.tenant));
    item.insert("key".into(), s(&r.key));
    item.insert("payloadHash".into(), s(&r.payload_hash));
    item.insert(
        "status".into(),
        s(match r.status {
            RecordStatus::InProgress => "in-progress",
            RecordStatus::Completed => "completed",
        }),
    );
    item.insert("inProgressUntil".into(), n(r.in_progress_until));
    item.insert("expiresAt".into(), n(r.expires_at));
    if let Some(result) = &r.result {
        item.insert("result".into(), s(&result.to_string()));
    }
    item
}

fn record_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let bad = |what: &str| StoreError::Fatal(format!("an idempotency record without {what}"));
    Ok(IdempotencyRecord {
        tenant: str_attr(item, "tenant").ok_or_else(|| bad("tenant"))?,
        key: str_attr(item, "key").ok_or_else(|| bad("key"))?,
        payload_hash: str_attr(item, "payloadHash").ok_or_else(|| bad("payloadHash"))?,
        status: match str_attr(item, "status").as_deref() {
            Some("in-progress") => RecordStatus::InProgress,
            Some("completed") => RecordStatus::Completed,
            _ => return Err(bad("a valid status")),
        },
        in_progress_until: num_attr(item, "inProgressUntil").unwrap_or_default(),
        expires_at: num_attr(item, "expiresAt").unwrap_or_default(),
        result: str_attr(item, "result")
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Fatal(format!("a record's result does not parse: {e}")))?,
    })
}

/// An item's size as DynamoDB counts it (attribute names plus values; an upper bound for
/// numbers and nested types).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(x) => x.len(),
        AttributeValue::N(x) => x.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(xs) => 3 + xs.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(xs) => xs.iter().map(String::len).sum(),
        AttributeValue::Ns(xs) => xs.iter().map(|x| x.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(xs) => xs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use party_model::{Writer, new_party};
    use policy_types::ResourceType;
    use serde_json::json;

    #[test]
    fn a_party_round_trips_through_its_item() {
        let mut v = new_party("acme", "42", ResourceType::Individual, "eu");
        let mut w = Writer::new("eu");
        w.write(
            &mut v,
            1_700_000_000_000,
            &json!({"givenName": "Jane", "contactMedium": [{"id": "1", "mediumType": "email"}]}),
        );
        let stored = StoredParty {
            version: v,
            provenance: Provenance {
                last_event_id: Some("e1".into()),
                policy_digest: None,
                written_by: "eu".into(),
                written_at_ms: 5,
            },
        };
        let item = party_item(&stored);
        assert_eq!(party_from_item(&item).unwrap(), stored);
        assert_eq!(item["vvKey"].as_s().unwrap(), "eu:1");
        assert!(item_size(&item) > 0);
    }

    #[test]
    fn vv_key_is_canonical() {
        let a = vec![Dot::new("na", 2), Dot::new("apac", 1), Dot::new("eu", 0)];
        assert_eq!(vv_key(&a), "apac:1,na:2");
    }
}
