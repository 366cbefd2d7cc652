//! The conflict log in DynamoDB (the `tmf632-conflicts` global table), behind the host
//! library's [`ConflictLog`].
//!
//! - a record: `pk = {tenant}`, `sk = {atMs, 13 digits}#{id}` ("this tenant, this time range"
//!   is one Query), `partyKey = {tenant}#{partyId}` (the `byParty` index: "this party"),
//!   `decision`, `policyDigest`, `outcomeCount` (what appending an outcome compares), `doc`
//!   (the record as JSON), `expiresAt` (the table's TTL);
//! - its id marker: `pk = {tenant}`, `sk = ID#{id}`, `recordSk`: written with the record in one
//!   transaction, on condition that it does not exist, so a conflict is recorded once however
//!   often and wherever it is seen. (`I` sorts after the digits: time-range queries never see
//!   the markers.)
//!
//! Keys start with the tenant, so `dynamodb:LeadingKeys` confines a tenant-scoped function.
//! A record over the 400 KB item limit drops the written party first, then the versions, and
//! says so in `truncated`; it is never cut silently.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictQuery, ConflictRecord, LogError,
};
use host_core::failure::Failure;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::ITEM_LIMIT;
use crate::error::AwsError;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoConflictLog {
    client: Client,
    table: String,
    rt: Handle,
}

/// A record's item as written (see the module documentation).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordItem<'a> {
    pk: &'a str,
    sk: String,
    party_key: String,
    decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    outcome_count: usize,
    /// The record as JSON, made to fit the item limit.
    doc: String,
}

/// A record's id marker as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MarkerItem<'a> {
    pk: &'a str,
    sk: String,
    record_sk: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

/// What reading a record takes from its item.
#[derive(Deserialize)]
struct RecordDoc {
    doc: String,
}

/// What reading a marker takes from its item.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    record_sk: String,
}

fn to_item(item: impl Serialize) -> Item {
    serde_dynamo::to_item(item).expect("strings and numbers make an item")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn sk(record: &ConflictRecord) -> String {
    format!("{:013}#{}", record.at_ms, record.id)
}

/// The record as stored: as JSON, made to fit the item limit.
fn doc(record: &ConflictRecord) -> String {
    let text = serde_json::to_string(record).expect("records serialise");
    if text.len() < ITEM_LIMIT - 8192 {
        return text;
    }
    let mut v = serde_json::to_value(record).expect("records serialise");
    v.as_object_mut().map(|o| {
        o.remove("localWrites");
        o.remove("remoteWrites")
    });
    for o in v["outcomes"].as_array_mut().into_iter().flatten() {
        o.as_object_mut().map(|o| o.remove("written"));
    }
    v["truncated"] =
        serde_json::json!("written parties and the versions' writes omitted: over the item limit");
    let text = v.to_string();
    if text.len() < ITEM_LIMIT - 8192 {
        return text;
    }
    v.as_object_mut().map(|o| {
        o.remove("local");
        o.remove("remote")
    });
    v["truncated"] = serde_json::json!(
        "versions, their writes and written parties omitted: over the item limit"
    );
    v.to_string()
}

fn from_item(item: Item) -> Result<ConflictRecord, LogError> {
    let text = serde_dynamo::from_item::<_, RecordDoc>(item)
        .map_err(|e| {
            LogError::Storage(Failure::caused_by(
                format!("a conflict item has no doc: {e}"),
                e,
            ))
        })?
        .doc;
    host_core::conflict_log::parse_record(text.as_bytes()).map_err(|e| {
        LogError::Storage(Failure::caused_by(
            format!("a conflict item cannot be read back (a truncated record?): {e}"),
            e,
        ))
    })
}

fn record_item(record: &ConflictRecord) -> Item {
    to_item(RecordItem {
        pk: &record.tenant,
        sk: sk(record),
        party_key: format!("{}#{}", record.tenant, record.party_id),
        decision: &record.latest().decision,
        policy_digest: record.first().policy_digest.as_deref(),
        expires_at: record.expires_at,
        outcome_count: record.outcomes.len(),
        doc: doc(record),
    })
}

impl DynamoConflictLog {
    pub fn new(client: Client, table: impl Into<String>, rt: Handle) -> Self {
        DynamoConflictLog {
            client,
            table: table.into(),
            rt,
        }
    }

    /// The log's error for a failed call on its table.
    fn failed<E>(&self, action: &str, err: SdkError<E, HttpResponse>) -> LogError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        AwsError::on_table(&self.client, &self.table, action, err).into()
    }

    /// One item of the log, read consistently; `what` names the read in errors.
    fn item(&self, tenant: &str, sk: String, what: &str) -> Result<Option<Item>, LogError> {
        let key = [("pk", tenant), ("sk", &sk)];
        self.rt
            .block_on(crate::read_item(
                self.client.get_item().table_name(&self.table),
                key,
            ))
            .map_err(|e| self.failed(what, e))
    }

    fn marker(&self, tenant: &str, id: &str) -> Result<Option<String>, LogError> {
        let what = format!("reading the id of conflict {id}");
        self.item(tenant, format!("ID#{id}"), &what)?
            .map(|item| {
                serde_dynamo::from_item::<_, Marker>(item)
                    .map(|m| m.record_sk)
                    .map_err(|e| {
                        LogError::Storage(Failure::caused_by(
                            format!("conflict {id}'s marker: {e}"),
                            e,
                        ))
                    })
            })
            .transpose()
    }

    fn query_items(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, LogError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression(key_condition);
        for (k, v) in values {
            q = q.expression_attribute_values(k, v);
        }
        self.rt
            .block_on(q.into_paginator().items().send().try_collect())
            .map_err(|e| self.failed("querying the conflict log", e))
    }
}

impl ConflictLog for DynamoConflictLog {
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError> {
        let marker = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(MarkerItem {
                pk: &record.tenant,
                sk: format!("ID#{}", record.id),
                record_sk: sk(record),
                expires_at: record.expires_at,
            })))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| {
                LogError::Storage(Failure::caused_by(
                    format!("building the id marker: {e}"),
                    e,
                ))
            })?;
        let item = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_item(record)))
            .build()
            .map_err(|e| {
                LogError::Storage(Failure::caused_by(format!("building the record: {e}"), e))
            })?;
        let out = self.rt.block_on(
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(marker).build())
                .transact_items(TransactWriteItem::builder().put(item).build())
                .send(),
        );
        let action = || {
            format!(
                "recording conflict {} of tenant {}",
                record.id, record.tenant
            )
        };
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("TransactionCanceledException") => {
                // Cancelled: the id marker exists (recorded before), or a transient conflict.
                if self.marker(&record.tenant, &record.id)?.is_some() {
                    Ok(false)
                } else {
                    Err(self.failed(&action(), e))
                }
            }
            Err(e) => Err(self.failed(&action(), e)),
        }
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError> {
        let Some(record_sk) = self.marker(tenant, id)? else {
            return Ok(None);
        };
        let what = format!("reading conflict {id} of tenant {tenant}");
        self.item(tenant, record_sk, &what)?
            .map(from_item)
            .transpose()
    }

    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError> {
        let from = format!("{:013}#", query.from_ms.unwrap_or(0));
        let to = format!("{:013}#", query.to_ms.unwrap_or(9_999_999_999_999));
        let items = match &query.party {
            Some(party) => self.query_items(
                Some("byParty"),
                "partyKey = :p AND sk BETWEEN :from AND :to",
                vec![
                    (":p", s(format!("{}#{party}", query.tenant))),
                    (":from", s(from)),
                    (":to", s(to)),
                ],
            )?,
            None => self.query_items(
                None,
                "pk = :t AND sk BETWEEN :from AND :to",
                vec![(":t", s(&query.tenant)), (":from", s(from)), (":to", s(to))],
            )?,
        };
        let mut records = Vec::new();
        for item in items {
            // One unreadable item (a record truncated to fit the item limit) does not hide the
            // others: it is skipped with a warning naming its key.
            let key = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_else(|| "?".into());
            match from_item(item) {
                Ok(r) if query.matches(&r) => records.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!(sk = %key, error = %e, "conflicts.unreadable"),
            }
        }
        host_core::conflict_log::sort_records(&mut records);
        Ok(records)
    }

    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError> {
        // Read, append, write back on condition that no other outcome was appended meanwhile.
        for _ in 0..5 {
            let mut record = self.get(tenant, id)?.ok_or_else(|| LogError::NotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            })?;
            let before = record.outcomes.len();
            record.outcomes.push(outcome.clone());
            let out = self.rt.block_on(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(record_item(&record)))
                    .condition_expression("outcomeCount = :before")
                    .expression_attribute_values(":before", AttributeValue::N(before.to_string()))
                    .send(),
            );
            match out {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => continue,
                Err(e) => {
                    return Err(self.failed(
                        &format!("appending an outcome to conflict {id} of tenant {tenant}"),
                        e,
                    ));
                }
            }
        }
        Err(LogError::Storage(
            format!("conflict {id} kept changing while an outcome was appended").into(),
        ))
    }
}
