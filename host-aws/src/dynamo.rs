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
//! with their size ([`StoreError::TooLarge`]); nothing is truncated. Items convert with
//! `serde_dynamo` from the structs below, which are the format of the deployed tables.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_core::failure::Failure;
use host_core::store::{
    Commit, IdempotencyRecord, IngestStore, PartyStore, Provenance, RecordStatus, StoreError,
    StoredParty, record_is_live,
};
use policy_types::writes::Writes;
use policy_types::{Dot, PartyVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Handle;

use crate::error::{AwsError, is_transient_reason};

pub use crate::ITEM_LIMIT;

/// An item as the SDK sends and returns it.
pub type Item = HashMap<String, AttributeValue>;

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

/// A party item as written: the party (`sk = PARTY`) or a region's own copy of it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartyItem<'a> {
    pk: String,
    sk: String,
    tenant: &'a str,
    party_id: &'a str,
    resource_type: &'a str,
    /// Region → counter, readable in the console.
    version_vector: BTreeMap<&'a str, u64>,
    /// The vector as conditional writes compare it; only on the party itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    vv_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock: Option<String>,
    /// The stamped state as its JSON text. Not as DynamoDB maps: a map's numbers go through
    /// `serde_json::Value` and come back changed (`680.0` as `680`, digits past an `f64`'s
    /// lost), where a party's values must be kept as written. Its clock, vector and provenance
    /// are attributes of their own for the console and the conditions.
    state: String,
    /// The writes behind the state's fields (`policy_types::writes`) as JSON text, for the
    /// same reason; absent on items written before they were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_digest: Option<&'a str>,
    written_by: &'a str,
    written_at_ms: u64,
}

/// The `state` attribute: JSON text, or the maps of items written before it was text (read as
/// they were; their numbers went through `f64` when they were written).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredState {
    Text(String),
    Maps(Value),
}

/// What reading a party takes from its item (keys and the vector's copies are for DynamoDB).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartyAttributes {
    state: StoredState,
    #[serde(default)]
    writes: Option<String>,
    #[serde(default)]
    last_event_id: Option<String>,
    #[serde(default)]
    policy_digest: Option<String>,
    #[serde(default)]
    written_by: String,
    #[serde(default)]
    written_at_ms: u64,
}

/// An idempotency record item as written; `writtenAtMs`/`writtenBy` order its writes for
/// replication, as on parties.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordItem<'a> {
    pk: String,
    sk: &'static str,
    tenant: &'a str,
    key: &'a str,
    payload_hash: &'a str,
    status: RecordStatus,
    in_progress_until: u64,
    expires_at: u64,
    /// The first result, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    written_at_ms: u64,
    written_by: &'a str,
}

/// What reading a record takes from its item.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordAttributes {
    tenant: String,
    key: String,
    payload_hash: String,
    status: RecordStatus,
    #[serde(default)]
    in_progress_until: u64,
    #[serde(default)]
    expires_at: u64,
    #[serde(default)]
    result: Option<String>,
}

/// The party's item under sort key `sk`; `vvKey` only on the party itself (`sk = PARTY`),
/// `writes` on the party and on the region's own copy.
fn item_with_sk(party: &StoredParty, sk: String) -> Result<Item, StoreError> {
    let v = &party.version;
    let p = &party.provenance;
    let state = serde_json::to_string(v).map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("party {} does not serialise: {e}", v.party_id),
            e,
        ))
    })?;
    let writes = (!party.writes.is_empty())
        .then(|| serde_json::to_string(&party.writes).expect("writes serialise"));
    let item = PartyItem {
        pk: party_key(&v.tenant, &v.party_id),
        vv_key: (sk == PARTY_SK).then(|| vv_key(&v.version_vector)),
        sk,
        tenant: &v.tenant,
        party_id: &v.party_id,
        resource_type: v.resource_type.as_str(),
        version_vector: v
            .version_vector
            .iter()
            .map(|d| (d.region.as_str(), d.counter))
            .collect(),
        clock: v.max_stamp().map(ToString::to_string),
        state,
        writes,
        last_event_id: p.last_event_id.as_deref(),
        policy_digest: p.policy_digest.as_deref(),
        written_by: &p.written_by,
        written_at_ms: p.written_at_ms,
    };
    serde_dynamo::to_item(item).map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("party {} as an item: {e}", v.party_id),
            e,
        ))
    })
}

/// The party's item (`sk = PARTY`).
pub fn party_item(party: &StoredParty) -> Result<Item, StoreError> {
    item_with_sk(party, PARTY_SK.to_owned())
}

/// A party from its item: one the SDK read, or a stream image (`serde_dynamo::Item`).
pub fn party_from_item(item: impl Into<serde_dynamo::Item>) -> Result<StoredParty, StoreError> {
    let a: PartyAttributes = serde_dynamo::from_item(item).map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("a party item does not parse: {e}"),
            e,
        ))
    })?;
    let version: Result<PartyVersion, _> = match a.state {
        StoredState::Text(text) => serde_json::from_str(&text),
        StoredState::Maps(maps) => serde_json::from_value(maps),
    };
    let version = version.map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("a party item's state does not parse: {e}"),
            e,
        ))
    })?;
    // Advisory: writes that do not parse are unknown, never a party that cannot be read.
    let writes = match a.writes.as_deref().map(serde_json::from_str::<Writes>) {
        Some(Ok(writes)) => writes,
        Some(Err(e)) => {
            tracing::warn!(party = %version.party_id, error = %e, "store.writes_unreadable");
            Writes::default()
        }
        None => Writes::default(),
    };
    Ok(StoredParty {
        version,
        provenance: Provenance {
            last_event_id: a.last_event_id,
            policy_digest: a.policy_digest,
            written_by: a.written_by,
            written_at_ms: a.written_at_ms,
        },
        writes,
    })
}

fn record_item(r: &IdempotencyRecord, region: &str) -> Result<Item, StoreError> {
    let written_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    serde_dynamo::to_item(RecordItem {
        pk: record_key(&r.tenant, &r.key),
        sk: RECORD_SK,
        tenant: &r.tenant,
        key: &r.key,
        payload_hash: &r.payload_hash,
        status: r.status,
        in_progress_until: r.in_progress_until,
        expires_at: r.expires_at,
        result: r.result.as_ref().map(Value::to_string),
        written_at_ms,
        written_by: region,
    })
    .map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("idempotency record {} as an item: {e}", r.key),
            e,
        ))
    })
}

fn record_from_item(item: Item) -> Result<IdempotencyRecord, StoreError> {
    let a: RecordAttributes = serde_dynamo::from_item(item).map_err(|e| {
        StoreError::Fatal(Failure::caused_by(
            format!("an idempotency record does not parse: {e}"),
            e,
        ))
    })?;
    Ok(IdempotencyRecord {
        tenant: a.tenant,
        key: a.key,
        payload_hash: a.payload_hash,
        status: a.status,
        in_progress_until: a.in_progress_until,
        expires_at: a.expires_at,
        result: a
            .result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| {
                StoreError::Fatal(Failure::caused_by(
                    format!("a record's result does not parse: {e}"),
                    e,
                ))
            })?,
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
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

    /// The store's error for a failed call on its table.
    fn failed<E>(&self, action: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        AwsError::on_table(&self.client, &self.table, action, err).into()
    }

    fn get(
        &self,
        pk: String,
        sk: &str,
        what: impl Fn() -> String,
    ) -> Result<Option<Item>, StoreError> {
        let key = [("pk", pk.as_str()), ("sk", sk)];
        self.rt
            .block_on(crate::read_item(
                self.client.get_item().table_name(&self.table),
                key,
            ))
            .map_err(|e| self.failed(&what(), e))
    }

    /// The party item of `party_id` under sort key `sk` (the party, or this region's own copy).
    fn stored_party(
        &self,
        tenant: &str,
        party_id: &str,
        sk: &str,
        what: impl Fn() -> String,
    ) -> Result<Option<StoredParty>, StoreError> {
        self.get(party_key(tenant, party_id), sk, what)?
            .map(party_from_item)
            .transpose()
    }

    /// The party write, conditional on the stored version vector.
    /// The conditional put of the party's item, and whether it keeps the party's writes.
    fn party_put(
        &self,
        party: &StoredParty,
        expected: Option<&[Dot]>,
    ) -> Result<(Put, bool), StoreError> {
        let mut item = party_item(party)?;
        let mut size = item_size(&item);
        let mut with_writes = true;
        if size > ITEM_LIMIT && !party.writes.is_empty() {
            // The writes behind the fields are advisory: dropped rather than refuse a party
            // that fits without them.
            item = party_item(&party.without_writes())?;
            size = item_size(&item);
            with_writes = false;
        }
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
        put.build()
            .map(|put| (put, with_writes))
            .map_err(|e| StoreError::Fatal(Failure::caused_by(e.to_string(), e)))
    }
}

impl PartyStore for DynamoStore {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        self.stored_party(tenant, party_id, PARTY_SK, || {
            format!("reading party {party_id} of tenant {tenant}")
        })
    }

    /// A scan of the table for the tenant's parties (the listing routes of the API): it reads
    /// the whole table, page by page, so it costs read units in proportion to the table, not to
    /// the tenant. A production table that lists often wants a global secondary index on the
    /// tenant instead.
    fn list(&self, tenant: &str) -> Result<Vec<StoredParty>, StoreError> {
        let mut parties = Vec::new();
        let mut start = None;
        loop {
            let out = self.rt.block_on(
                self.client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(pk, :prefix) AND sk = :party")
                    .expression_attribute_values(":prefix", s(&format!("T#{tenant}#P#")))
                    .expression_attribute_values(":party", s(PARTY_SK))
                    .set_exclusive_start_key(start)
                    .send(),
            );
            let out = out
                .map_err(|e| self.failed(&format!("listing the parties of tenant {tenant}"), e))?;
            for item in out.items.unwrap_or_default() {
                parties.push(party_from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        parties.sort_by(|a, b| a.version.party_id.cmp(&b.version.party_id));
        Ok(parties)
    }

    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError> {
        let (put, _) = self.party_put(party, expected)?;
        let out = self.rt.block_on(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send(),
        );
        out.map(|_| ()).map_err(|e| {
            let v = &party.version;
            self.failed(
                &format!("writing party {} of tenant {}", v.party_id, v.tenant),
                e,
            )
        })
    }
}

impl IngestStore for DynamoStore {
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        self.stored_party(tenant, party_id, &own_sk(&self.region), || {
            format!("reading this region's own copy of party {party_id} of tenant {tenant}")
        })
    }

    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(record_key(tenant, key), RECORD_SK, || {
            format!("reading idempotency key {key} of tenant {tenant}")
        })?
        .map(record_from_item)
        .transpose()
    }

    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
        // The same rule as `record_is_live`, as a condition: absent, expired (TTL deletion is
        // lazy), or in progress past its holder's deadline.
        let out = self.rt.block_on(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(record_item(record, &self.region)?))
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
                let existing = match e.into_err() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let existing = match existing {
                    Some(item) => record_from_item(item)?,
                    None => self.record(&record.tenant, &record.key)?.ok_or_else(|| {
                        StoreError::Transient(
                            "the claim was refused by a record that is gone; retry".into(),
                        )
                    })?,
                };
                debug_assert!(record_is_live(&existing, now_ms));
                Err(StoreError::AlreadyClaimed(Box::new(existing)))
            }
            Err(e) => Err(self.failed(
                &format!(
                    "claiming idempotency key {} of tenant {}",
                    record.key, record.tenant
                ),
                e,
            )),
        }
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let Commit {
            party,
            expected,
            record,
        } = *commit;
        let (party_put, with_writes) = self.party_put(party, expected)?;
        // The record must still be this delivery's claim: same payload, not completed by
        // another delivery meanwhile.
        let record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_item(record, &self.region)?))
            .condition_expression("payloadHash = :hash AND #status = :inProgress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":hash", s(&record.payload_hash))
            .expression_attribute_values(":inProgress", s("in-progress"))
            .build()
            .map_err(|e| StoreError::Fatal(Failure::caused_by(e.to_string(), e)))?;
        let own_put = Put::builder()
            .table_name(&self.table)
            // The own copy keeps the writes where the party's item does (it is the smaller item).
            .set_item(Some(if with_writes {
                item_with_sk(party, own_sk(&self.region))?
            } else {
                item_with_sk(&party.without_writes(), own_sk(&self.region))?
            }))
            .build()
            .map_err(|e| StoreError::Fatal(Failure::caused_by(e.to_string(), e)))?;
        let out = self.rt.block_on(
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(party_put).build())
                .transact_items(TransactWriteItem::builder().put(record_put).build())
                .transact_items(TransactWriteItem::builder().put(own_put).build())
                .send(),
        );
        let v = &party.version;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                // One reason per item, in the order above.
                let reasons: Vec<String> = match e.err() {
                    TransactWriteItemsError::TransactionCanceledException(t) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect(),
                    _ => vec![],
                };
                let code = |i: usize| reasons.get(i).map(String::as_str).unwrap_or("None");
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
                } else {
                    let said = format!(
                        "committing party {} of tenant {} (table {}): the transaction was \
                         cancelled (party {}, idempotency record {}, own copy {})",
                        v.party_id,
                        v.tenant,
                        self.table,
                        code(0),
                        code(1),
                        code(2)
                    );
                    if reasons.iter().any(|c| is_transient_reason(c)) {
                        Err(StoreError::Transient(Failure::new(said)))
                    } else {
                        Err(StoreError::Fatal(Failure::new(said)))
                    }
                }
            }
            Err(e) => Err(self.failed(
                &format!("committing party {} of tenant {}", v.party_id, v.tenant),
                e,
            )),
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
            Err(e) => Err(self.failed(
                &format!("releasing idempotency key {key} of tenant {tenant}"),
                e,
            )),
        }
    }
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
            writes: Default::default(),
        };
        let item = party_item(&stored).unwrap();
        assert_eq!(party_from_item(item.clone()).unwrap(), stored);
        assert_eq!(item["vvKey"].as_s().unwrap(), "eu:1");
        assert!(item_size(&item) > 0);
    }

    /// Items as the deployed tables hold them, written by the hand-made conversion this module
    /// had before `serde_dynamo`: they read back to what was written, and writing that again
    /// gives the same item, attribute for attribute.
    #[test]
    fn items_keep_the_deployed_format() {
        let fixtures: Value =
            serde_json::from_str(include_str!("../tests/fixtures/items.json")).unwrap();
        let item = |v: &Value| -> Item {
            serde_json::from_value::<serde_dynamo::Item>(v.clone())
                .unwrap()
                .into()
        };
        for name in ["party", "deletedParty"] {
            let f = &fixtures[name];
            let stored = StoredParty {
                version: serde_json::from_value(f["stored"]["version"].clone()).unwrap(),
                provenance: serde_json::from_value(f["stored"]["provenance"].clone()).unwrap(),
                writes: Default::default(),
            };
            assert_eq!(
                party_from_item(item(&f["item"])).unwrap(),
                stored,
                "{name} reads"
            );
            // Written again, every attribute is as deployed but the state, which is now its
            // JSON text (`state_is_kept_as_written`), and reads back as the same party.
            let alike = |written: Item, deployed: Item, what: &str| {
                let text = written["state"]
                    .as_s()
                    .expect("the state is written as text");
                assert_eq!(
                    serde_json::from_str::<PartyVersion>(text).unwrap(),
                    stored.version,
                    "{what}'s state"
                );
                let (mut written, mut deployed) = (written, deployed);
                written.remove("state");
                deployed.remove("state");
                assert_eq!(written, deployed, "{what} is written alike");
            };
            alike(party_item(&stored).unwrap(), item(&f["item"]), name);
            assert_eq!(
                party_from_item(party_item(&stored).unwrap()).unwrap(),
                stored
            );
            if !f["own"].is_null() {
                alike(
                    item_with_sk(&stored, own_sk("eu")).unwrap(),
                    item(&f["own"]),
                    &format!("{name}'s own copy"),
                );
            }
        }
        for (name, region) in [("completedRecord", "eu"), ("inProgressRecord", "na")] {
            let f = &fixtures[name];
            let record: IdempotencyRecord = serde_json::from_value(f["record"].clone()).unwrap();
            let stored = item(&f["item"]);
            assert_eq!(
                record_from_item(stored.clone()).unwrap(),
                record,
                "{name} reads"
            );
            let mut written = record_item(&record, region).unwrap();
            // The write time is the clock's.
            written.insert("writtenAtMs".into(), stored["writtenAtMs"].clone());
            assert_eq!(written, stored, "{name} is written alike");
        }
    }

    /// The writes behind a party's fields round-trip through the item; a table this release
    /// cannot read (a later one's, or damaged) leaves them unknown, never the party unreadable,
    /// and members it does not know are ignored.
    #[test]
    fn writes_round_trip_and_an_unreadable_table_leaves_them_unknown() {
        let mut v = new_party("acme", "7", ResourceType::Individual, "eu");
        let mut writes = policy_types::writes::Writes::default();
        Writer::new("eu").write_recorded(
            &mut v,
            &mut writes,
            1_700_000_000_000,
            &json!({"givenName": "Jo"}),
        );
        let stored = StoredParty {
            version: v,
            provenance: Provenance::default(),
            writes,
        };
        let item = party_item(&stored).unwrap();
        assert_eq!(party_from_item(item.clone()).unwrap(), stored);
        let mut later = serde_json::to_value(&stored.writes).unwrap();
        later["fromALaterRelease"] = json!(1);
        let mut with = item.clone();
        with.insert("writes".into(), AttributeValue::S(later.to_string()));
        assert_eq!(
            party_from_item(with).unwrap(),
            stored,
            "unknown members ignored"
        );
        let mut damaged = item;
        damaged.insert("writes".into(), AttributeValue::S("{\"fields\": 5}".into()));
        let read = party_from_item(damaged).unwrap();
        assert_eq!(read.version, stored.version);
        assert!(read.writes.is_empty());
    }

    /// A party's values are JSON text in the contract, and the item keeps them as they were
    /// written: a float with an integral value stays `680.0` (the map form stored `680`). An
    /// item of the earlier map form reads once (its numbers went through `f64`) and then
    /// round-trips unchanged: the `party_item` fuzzer's finding, replayed from its corpus by
    /// tests/tests/fuzz_smoke.rs.
    #[test]
    fn state_is_kept_as_written() {
        let mut v = new_party("acme", "7", ResourceType::Individual, "eu");
        let mut w = Writer::new("eu");
        let values: Value = serde_json::from_str(
            r#"{"givenName": "Jo", "partyCharacteristic": [{"name": "score", "valueType": "number",
                "value": 680.0}]}"#,
        )
        .unwrap();
        w.write(&mut v, 1_700_000_000_000, &values);
        let stored = StoredParty {
            version: v,
            provenance: Provenance {
                written_by: "eu".into(),
                written_at_ms: 5,
                ..Provenance::default()
            },
            writes: Default::default(),
        };
        let item = party_item(&stored).unwrap();
        let read = party_from_item(item).unwrap();
        assert_eq!(read, stored);
        let text = serde_json::to_string(&read.version).unwrap();
        assert!(text.contains("680.0"), "{text}");
    }

    #[test]
    fn vv_key_is_canonical() {
        let a = vec![Dot::new("na", 2), Dot::new("apac", 1), Dot::new("eu", 0)];
        assert_eq!(vv_key(&a), "apac:1,na:2");
    }
}
