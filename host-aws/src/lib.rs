//! The host core's stores on AWS, used by both hosts (the Lambda functions and the CLI):
//!
//! - [`dynamo`]: a region's parties and idempotency records on DynamoDB
//!   ([`host_core::store::IngestStore`]);
//! - [`sqs`]: dead letters on SQS ([`host_core::store::DeadLetterSink`]);
//! - [`registry`]: the policy registry on DynamoDB and S3 ([`host_core::registry::PolicyRegistry`]);
//! - [`conflict_log`]: the conflict log on DynamoDB ([`host_core::conflict_log::ConflictLog`]);
//! - [`hub`]: the listeners registered through `POST hub` on DynamoDB ([`host_core::api::Hub`]);
//! - [`streams`]: Lambda's on-failure message of a DynamoDB stream batch it gave up on;
//! - [`error`]: one reading of the SDK's errors, which all of them report through, and the
//!   check of the credentials that names them missing before any call.
//!
//! The host core's traits are synchronous (policy calls are CPU-bound wasm calls); these stores
//! bridge to the async SDK with a runtime handle, so callers run them on blocking threads
//! (`tokio::task::spawn_blocking`), never on the runtime's own workers.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use host_core::registry::PolicyRegistry;

/// DynamoDB's limit on one item (attribute names and values).
pub const ITEM_LIMIT: usize = 400 * 1024;

/// A DynamoDB item, by attribute name.
type Item = HashMap<String, AttributeValue>;

pub mod conflict_log;
pub mod dynamo;
pub mod error;
pub mod hub;
pub mod registry;
pub mod sqs;
pub mod streams;

/// What `get` (a GetItem on the caller's table) reads under `key` (its hash and range key, names
/// and string values), read consistently; `None` when there is none. The caller names the table,
/// which is where scripts/iam-permissions.py looks for it.
async fn read_item(
    get: GetItemFluentBuilder,
    key: [(&str, &str); 2],
) -> Result<Option<Item>, SdkError<GetItemError, HttpResponse>> {
    let mut get = get.consistent_read(true);
    for (name, value) in key {
        get = get.key(name, AttributeValue::S(value.to_owned()));
    }
    Ok(get.send().await?.item)
}

/// An S3 client; path-style addressing when an endpoint is set (moto, LocalStack), where
/// bucket subdomains of 127.0.0.1 do not resolve.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = sdk.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build(),
    )
}

/// The policy registry on AWS (its table and bucket), with clients built from `sdk`.
pub fn registry_from(
    sdk: &aws_config::SdkConfig,
    table: &str,
    bucket: &str,
    rt: tokio::runtime::Handle,
) -> Arc<dyn PolicyRegistry> {
    Arc::new(registry::AwsRegistry::new(
        aws_sdk_dynamodb::Client::new(sdk),
        s3_client(sdk),
        table,
        bucket,
        rt,
    ))
}
