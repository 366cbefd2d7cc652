//! The hub's listeners in a DynamoDB table of the region (`tmf632-hub-listeners`), behind the
//! host library's [`Hub`]: the API function registers, lists and removes them (`POST hub`,
//! `GET hub[/{id}]`, `DELETE hub/{id}`), the notifier function lists a tenant's to deliver
//! each change to.
//!
//! Item design: `pk = T#{tenant}#HUB`, `sk = {listenerId}`, with `callback`, `query` (the
//! TMF630 filter as the caller gave it) and `createdAtMs`. A tenant's listeners are one
//! partition (one Query for the notifier), and the key starts like the party table's
//! (`T#{tenant}#`), so the same `dynamodb:LeadingKeys` condition confines a tenant-scoped
//! function; a tenant can neither list nor remove another tenant's listener, since its key is
//! not one the tenant can name. The table is regional, not global: a listener hears the changes
//! of the region it registered in (its writes and what replication brought), as on `serve`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_core::api::Hub;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::error::AwsError;

/// A registered listener, as its item holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Its id (the item's sort key).
    #[serde(rename = "sk")]
    pub id: String,
    pub callback: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// A listener's item as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListenerItem<'a> {
    pk: String,
    #[serde(flatten)]
    listener: &'a Listener,
    created_at_ms: u64,
}

/// The partition of a tenant's listeners.
pub fn hub_key(tenant: &str) -> String {
    format!("T#{tenant}#HUB")
}

/// The region's listener table.
#[derive(Clone, Debug)]
pub struct DynamoHub {
    client: Client,
    table: String,
    rt: Handle,
}

/// A new listener id: 128 random bits, hex (from the standard library's per-process random
/// hash keys; an id is a name, not a secret).
fn new_id() -> String {
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        id.push_str(&format!("{:016x}", h.finish()));
    }
    id
}

impl DynamoHub {
    /// `rt` runs the SDK's futures for the synchronous [`Hub`] calls.
    pub fn new(client: Client, table: impl Into<String>, rt: Handle) -> Self {
        DynamoHub {
            client,
            table: table.into(),
            rt,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn failed<E>(&self, action: &str, err: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        AwsError::on_table(&self.client, &self.table, action, err)
    }

    /// The listeners of `tenant` (asynchronous: the notifier calls it on its runtime).
    pub async fn listeners(&self, tenant: &str) -> Result<Vec<Listener>, AwsError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(hub_key(tenant)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.failed(&format!("listing the listeners of tenant {tenant}"), e))?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| {
                    AwsError::malformed(format!(
                        "a listener of tenant {tenant} in table {} does not parse: {e}",
                        self.table
                    ))
                })
            })
            .collect()
    }

    /// Registers a listener of `tenant`; its id.
    pub async fn add(
        &self,
        tenant: &str,
        callback: &str,
        query: Option<&str>,
    ) -> Result<String, AwsError> {
        let listener = Listener {
            id: new_id(),
            callback: callback.to_owned(),
            query: query.map(str::to_owned),
        };
        let item = ListenerItem {
            pk: hub_key(tenant),
            listener: &listener,
            created_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
        };
        let item = serde_dynamo::to_item(item).map_err(|e| {
            AwsError::malformed(format!("a listener does not convert to an item: {e}"))
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Never replaces a listener (the ids are random; a collision is refused, not merged).
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| self.failed(&format!("registering a listener of tenant {tenant}"), e))?;
        Ok(listener.id)
    }

    /// Removes a listener of `tenant`; false when the tenant has none with that id.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<bool, AwsError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(hub_key(tenant)))
            .key("sk", AttributeValue::S(id.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.failed(&format!("removing listener {id} of tenant {tenant}"), e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl Hub for DynamoHub {
    fn register(
        &self,
        tenant: &str,
        callback: &str,
        query: Option<&str>,
    ) -> Result<String, String> {
        self.rt
            .block_on(self.add(tenant, callback, query))
            .map_err(|e| e.to_string())
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, String> {
        self.rt
            .block_on(self.delete(tenant, id))
            .map_err(|e| e.to_string())
    }

    fn list(&self, tenant: &str) -> Result<Vec<host_core::api::Listener>, String> {
        let listeners = self
            .rt
            .block_on(self.listeners(tenant))
            .map_err(|e| e.to_string())?;
        Ok(listeners
            .into_iter()
            .map(|l| host_core::api::Listener {
                id: l.id,
                callback: l.callback,
                query: l.query,
            })
            .collect())
    }
}
