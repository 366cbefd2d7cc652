//! The policy registry on AWS: records in a DynamoDB table, component bytes in an S3 bucket,
//! behind the host library's [`PolicyRegistry`].
//!
//! Table (`tenant` hash key, `entry` range key, as `deploy/template.yaml` creates it):
//! - `entry = STATE`: the tenant's state (`doc`, JSON) and its `revision`, which every change
//!   compares and increments (a transaction with the history entry);
//! - `entry = V#{sha256}`: one uploaded version (`doc`), written only if absent;
//! - `entry = H#{atMs, 13 digits}#{revision, 10 digits}#{nonce}`: the history;
//! - `entry = S#{sha256}`: a candidate's shadow counters (`compared`, `disagreed`, atomic adds);
//! - `entry = D#{sha256}#{atMs}#{nonce}`: one disagreement in full (`doc`).
//!
//! Bucket: `components/{sha256}.wasm`, content-addressed, so uploading the same bytes again
//! (to any region's bucket) is idempotent. Every read is verified against the digest by the
//! callers ([`host_core::registry::fetch_component`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_core::failure::Failure;
use host_core::registry::{
    HistoryEntry, PolicyRegistry, PolicyVersion, RegistryError, ShadowComparison, ShadowSummary,
    TenantState, check_digest, check_engine,
};
use host_core::tenant::check_tenant;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::ITEM_LIMIT;
use crate::error::{AwsError, Call, Resource};

type Item = HashMap<String, AttributeValue>;

const STATE: &str = "STATE";

/// Which of the registry's two stores a call was on, for its error.
#[derive(Clone, Copy)]
enum Store {
    Table,
    Bucket,
}

/// The registry in a DynamoDB table and an S3 bucket of one region.
#[derive(Clone, Debug)]
pub struct AwsRegistry {
    ddb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    table: String,
    bucket: String,
    rt: Handle,
}

/// A registry item as written: the document as JSON text, and on the state its `revision`,
/// which every change compares.
#[derive(Serialize)]
struct DocItem<'a> {
    tenant: &'a str,
    entry: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    doc: &'a str,
}

impl<'a> DocItem<'a> {
    /// An item without a revision (everything but the state).
    fn new(tenant: &'a str, entry: &'a str, doc: &'a str) -> Self {
        DocItem {
            tenant,
            entry,
            revision: None,
            doc,
        }
    }

    fn item(&self) -> Item {
        serde_dynamo::to_item(self).expect("strings and a number make an item")
    }

    /// A put of the item into `table`, for a transaction.
    fn put(&self, table: &str) -> PutBuilder {
        Put::builder().table_name(table).set_item(Some(self.item()))
    }
}

/// What reading a registry item takes from it.
#[derive(Deserialize)]
struct Doc {
    doc: String,
}

/// A candidate's shadow counters (absent until the first comparison).
#[derive(Deserialize)]
struct ShadowCounters {
    #[serde(default)]
    compared: u64,
    #[serde(default)]
    disagreed: u64,
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> RegistryError {
    RegistryError::Corrupt(Failure::caused_by(
        format!("a registry item is corrupt: {e}"),
        e,
    ))
}

fn doc_text(item: Item) -> Result<String, RegistryError> {
    serde_dynamo::from_item::<_, Doc>(item)
        .map(|d| d.doc)
        .map_err(corrupt)
}

fn doc<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, RegistryError> {
    serde_json::from_str(&doc_text(item)?).map_err(corrupt)
}

/// Distinguishes items written in the same millisecond by this process.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // Random per process (RandomState's keys), so that two execution environments with the
    // same pid and counter never write the same key.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

fn component_key(digest: &str) -> String {
    format!("components/{digest}.wasm")
}

/// Where a component compiled for engines of one compatibility hash is kept: beside the
/// components, under a prefix of its own (the functions' roles may read it; only the registry
/// function writes it).
fn precompiled_key(engine: &str, digest: &str) -> String {
    format!("precompiled/{engine}/{digest}.cwasm")
}

impl AwsRegistry {
    /// `rt` is the runtime the SDK's futures run on; call the registry from outside its
    /// workers (a blocking thread, or a thread of your own).
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        table: impl Into<String>,
        bucket: impl Into<String>,
        rt: Handle,
    ) -> Self {
        AwsRegistry {
            ddb,
            s3,
            table: table.into(),
            bucket: bucket.into(),
            rt,
        }
    }

    /// The registry's error for a failed call on its table or its bucket, in the region of the
    /// client that made it.
    fn failed<E>(&self, store: Store, action: &str, err: SdkError<E, HttpResponse>) -> RegistryError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (resource, region) = match store {
            Store::Table => (Resource::Table(&self.table), self.ddb.config().region()),
            Store::Bucket => (Resource::Bucket(&self.bucket), self.s3.config().region()),
        };
        let call = Call {
            action,
            resource,
            region: region.map(|r| r.as_ref()),
        };
        AwsError::new(call, err).into()
    }

    /// The object under `key` in the bucket; `None` when there is none.
    fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let out = self
            .rt
            .block_on(self.s3.get_object().bucket(&self.bucket).key(key).send());
        let out = match out {
            Ok(o) => o,
            Err(e) if e.code() == Some("NoSuchKey") || e.code() == Some("NotFound") => {
                return Ok(None);
            }
            Err(e) => return Err(self.failed(Store::Bucket, &format!("reading {key}"), e)),
        };
        // The body streams after the response: a connection lost here is worth a retry.
        let bytes = self.rt.block_on(out.body.collect()).map_err(|e| {
            RegistryError::Storage(Failure::caused_by(
                format!("reading {key} (bucket {}): {e}", self.bucket),
                e,
            ))
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    /// Writes `bytes` under `key` in the bucket, with their digest as the `sha256` metadata
    /// when given.
    fn write_object(
        &self,
        key: &str,
        content_type: &str,
        sha256: Option<&str>,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let metadata = sha256.map(|d| HashMap::from([("sha256".to_owned(), d.to_owned())]));
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type(content_type)
                    .set_metadata(metadata)
                    .body(bytes.to_vec().into())
                    .send(),
            )
            .map_err(|e| self.failed(Store::Bucket, &format!("uploading {key}"), e))?;
        Ok(())
    }

    fn query_prefix(&self, tenant: &str, prefix: &str) -> Result<Vec<Item>, RegistryError> {
        check_tenant(tenant)?;
        self.rt
            .block_on(
                self.ddb
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("tenant = :t AND begins_with(entry, :p)")
                    .expression_attribute_values(":t", AttributeValue::S(tenant.to_owned()))
                    .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()))
                    .consistent_read(true)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect(),
            )
            .map_err(|e| {
                self.failed(
                    Store::Table,
                    &format!("listing the {prefix} entries of tenant {tenant}"),
                    e,
                )
            })
    }

    fn put_doc(
        &self,
        tenant: &str,
        entry: String,
        text: String,
        if_absent: bool,
    ) -> Result<bool, RegistryError> {
        let req = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(DocItem::new(tenant, &entry, &text).item()));
        let req = if if_absent {
            req.condition_expression("attribute_not_exists(entry)")
        } else {
            req
        };
        match self.rt.block_on(req.send()) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.failed(
                Store::Table,
                &format!("writing entry {entry} of tenant {tenant}"),
                e,
            )),
        }
    }

    /// One registry item, read consistently; `what` names the read in errors.
    fn item(&self, tenant: &str, entry: &str, what: &str) -> Result<Option<Item>, RegistryError> {
        let key = [("tenant", tenant), ("entry", entry)];
        self.rt
            .block_on(crate::read_item(
                self.ddb.get_item().table_name(&self.table),
                key,
            ))
            .map_err(|e| self.failed(Store::Table, &format!("{what} of tenant {tenant}"), e))
    }

    fn history_entry(entry: &HistoryEntry) -> String {
        format!("H#{:013}#{:010}#{}", entry.at_ms, entry.revision, nonce())
    }
}

/// How often [`AwsRegistry::put_version`] retries a transaction cancelled by a concurrent one.
const CANCELLED_ATTEMPTS: u32 = 8;

fn transact_put(put: PutBuilder) -> Result<TransactWriteItem, RegistryError> {
    put.build()
        .map(|p| TransactWriteItem::builder().put(p).build())
        .map_err(|e| RegistryError::Storage(Failure::caused_by(e.to_string(), e)))
}

impl PolicyRegistry for AwsRegistry {
    fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let key = component_key(digest);
        let head = self
            .rt
            .block_on(self.s3.head_object().bucket(&self.bucket).key(&key).send());
        if head.is_ok()
            && self
                .component(digest)
                .is_ok_and(|b| host_core::digest(&b) == digest)
        {
            return Ok(());
        }
        self.write_object(&key, "application/wasm", Some(digest), bytes)
    }

    fn put_precompiled(
        &self,
        engine: &str,
        digest: &str,
        artifact: &[u8],
    ) -> Result<bool, RegistryError> {
        check_digest(digest)?;
        check_engine(engine)?;
        let key = precompiled_key(engine, digest);
        self.write_object(&key, "application/octet-stream", None, artifact)?;
        Ok(true)
    }

    fn precompiled(&self, engine: &str, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        check_digest(digest)?;
        check_engine(engine)?;
        self.read_object(&precompiled_key(engine, digest))
    }

    fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        self.read_object(&component_key(digest))?
            .ok_or_else(|| RegistryError::MissingComponent(digest.to_owned()))
    }

    fn put_version(&self, version: &PolicyVersion) -> Result<bool, RegistryError> {
        check_tenant(&version.tenant)?;
        let tenant = version.tenant.as_str();
        let entry = format!("V#{}", version.digest);
        let text = serde_json::to_string(version).expect("versions serialise");
        let Some(label) = &version.label else {
            return self.put_doc(tenant, entry, text, true);
        };
        // The record and the label's item `L#<label>` (holding the digest) in one transaction,
        // each on condition: no record for this digest yet, and the label free or already
        // this digest's.
        let label_entry = format!("L#{label}");
        let put_version = DocItem::new(tenant, &entry, &text)
            .put(&self.table)
            .condition_expression("attribute_not_exists(entry)");
        let put_label = DocItem::new(tenant, &label_entry, &version.digest)
            .put(&self.table)
            .condition_expression("attribute_not_exists(entry) OR doc = :digest")
            .expression_attribute_values(":digest", AttributeValue::S(version.digest.clone()));
        for attempt in 0..CANCELLED_ATTEMPTS {
            let out = self.rt.block_on(
                self.ddb
                    .transact_write_items()
                    .transact_items(transact_put(put_version.clone())?)
                    .transact_items(transact_put(put_label.clone())?)
                    .send(),
            );
            match out {
                Ok(_) => return Ok(true),
                // Cancelled: find out which condition failed by reading, since the reasons
                // are not in every implementation's error.
                Err(e) if e.code() == Some("TransactionCanceledException") => {
                    let read = "reading a version and its label";
                    if self.item(tenant, &entry, read)?.is_some() {
                        return Ok(false);
                    }
                    let holder = self
                        .item(tenant, &label_entry, read)?
                        .map(doc_text)
                        .transpose()?;
                    if let Some(digest) = holder.filter(|digest| *digest != version.digest) {
                        return Err(RegistryError::LabelTaken {
                            tenant: version.tenant.clone(),
                            label: label.clone(),
                            digest,
                        });
                    }
                    // Neither: another transaction touched the items at the same moment.
                    std::thread::sleep(std::time::Duration::from_millis(10 << attempt.min(5)));
                }
                Err(e) => {
                    return Err(self.failed(
                        Store::Table,
                        &format!("recording version {} of tenant {tenant}", version.digest),
                        e,
                    ));
                }
            }
        }
        Err(RegistryError::Storage(
            format!(
                "recording version {} of tenant {}: the transaction was cancelled \
                 {CANCELLED_ATTEMPTS} times without a failed condition",
                version.digest, version.tenant
            )
            .into(),
        ))
    }

    fn versions(&self, tenant: &str) -> Result<Vec<PolicyVersion>, RegistryError> {
        self.query_prefix(tenant, "V#")?
            .into_iter()
            .map(doc)
            .collect()
    }

    fn state(&self, tenant: &str) -> Result<Option<TenantState>, RegistryError> {
        check_tenant(tenant)?;
        self.item(tenant, STATE, "reading the state")?
            .map(doc)
            .transpose()
    }

    fn put_state(
        &self,
        state: &TenantState,
        expected: u64,
        entry: &HistoryEntry,
    ) -> Result<(), RegistryError> {
        check_tenant(&state.tenant)?;
        let tenant = state.tenant.as_str();
        let text = serde_json::to_string(state).expect("states serialise");
        let put_state = DocItem {
            revision: Some(state.revision),
            ..DocItem::new(tenant, STATE, &text)
        }
        .put(&self.table);
        let put_state = if expected == 0 {
            put_state.condition_expression("attribute_not_exists(entry)")
        } else {
            put_state
                .condition_expression("revision = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        let history_text = serde_json::to_string(entry).expect("history serialises");
        let put_history =
            DocItem::new(tenant, &Self::history_entry(entry), &history_text).put(&self.table);
        let out = self.rt.block_on(
            self.ddb
                .transact_write_items()
                .transact_items(transact_put(put_state)?)
                .transact_items(transact_put(put_history)?)
                .send(),
        );
        match out {
            Ok(_) => Ok(()),
            // Cancelled: the revision moved, or another transaction touched the item at the
            // same time (TransactionConflict); either way the operation re-reads and retries.
            Err(e) if e.code() == Some("TransactionCanceledException") => {
                let found = self.state(tenant)?.map_or(0, |s| s.revision);
                Err(RegistryError::Conflict {
                    tenant: state.tenant.clone(),
                    expected,
                    found,
                })
            }
            Err(e) => Err(self.failed(
                Store::Table,
                &format!("changing the state of tenant {tenant}"),
                e,
            )),
        }
    }

    fn append_history(&self, entry: &HistoryEntry) -> Result<(), RegistryError> {
        check_tenant(&entry.tenant)?;
        self.put_doc(
            &entry.tenant,
            Self::history_entry(entry),
            serde_json::to_string(entry).expect("history serialises"),
            false,
        )
        .map(|_| ())
    }

    fn history(&self, tenant: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        self.query_prefix(tenant, "H#")?
            .into_iter()
            .map(doc)
            .collect()
    }

    fn tenants(&self) -> Result<Vec<String>, RegistryError> {
        let items = self
            .rt
            .block_on(
                self.ddb
                    .scan()
                    .table_name(&self.table)
                    .projection_expression("tenant")
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect(),
            )
            .map_err(|e| self.failed(Store::Table, "listing the registry's tenants", e))?;
        let tenants: BTreeSet<String> = items
            .iter()
            .filter_map(|item| item.get("tenant")?.as_s().ok().cloned())
            .collect();
        Ok(tenants.into_iter().collect())
    }

    fn record_shadow(&self, comparison: &ShadowComparison) -> Result<(), RegistryError> {
        check_tenant(&comparison.tenant)?;
        let candidate = &comparison.candidate;
        self.rt
            .block_on(
                self.ddb
                    .update_item()
                    .table_name(&self.table)
                    .key("tenant", AttributeValue::S(comparison.tenant.clone()))
                    .key("entry", AttributeValue::S(format!("S#{candidate}")))
                    .update_expression("ADD compared :one, disagreed :d")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(
                        ":d",
                        AttributeValue::N(if comparison.agreed { "0" } else { "1" }.into()),
                    )
                    .send(),
            )
            .map_err(|e| {
                self.failed(
                    Store::Table,
                    &format!(
                        "counting a shadow comparison of {candidate} for tenant {}",
                        comparison.tenant
                    ),
                    e,
                )
            })?;
        if comparison.agreed {
            return Ok(());
        }
        let mut kept = comparison.clone();
        let mut text = serde_json::to_string(&kept).expect("comparisons serialise");
        if text.len() > ITEM_LIMIT - 4096 {
            // Two large parties and both answers do not fit one item: keep who, when and
            // what was decided; the conflict itself is in the conflict log.
            kept.conflict = None;
            for o in [&mut kept.active_outcome, &mut kept.candidate_outcome]
                .into_iter()
                .flatten()
            {
                o.party = None;
            }
            text = serde_json::to_string(&kept).expect("comparisons serialise");
        }
        self.put_doc(
            &comparison.tenant,
            format!("D#{candidate}#{:013}#{}", comparison.at_ms, nonce()),
            text,
            false,
        )
        .map(|_| ())
    }

    fn shadow_summary(
        &self,
        tenant: &str,
        candidate: &str,
    ) -> Result<ShadowSummary, RegistryError> {
        check_tenant(tenant)?;
        let counters = self
            .item(tenant, &format!("S#{candidate}"), "reading shadow counters")?
            .map(serde_dynamo::from_item::<_, ShadowCounters>)
            .transpose()
            .map_err(corrupt)?;
        let disagreements = self
            .query_prefix(tenant, &format!("D#{candidate}#"))?
            .into_iter()
            .map(doc)
            .collect::<Result<Vec<ShadowComparison>, _>>()?;
        Ok(ShadowSummary {
            compared: counters.as_ref().map_or(0, |c| c.compared),
            disagreed: counters.as_ref().map_or(0, |c| c.disagreed),
            disagreements,
        })
    }
}
