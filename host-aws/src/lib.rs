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

use std::sync::Arc;

use host_core::registry::PolicyRegistry;

/// DynamoDB's limit on one item (attribute names and values).
pub const ITEM_LIMIT: usize = 400 * 1024;

pub mod conflict_log;
pub mod dynamo;
pub mod error;
pub mod hub;
pub mod registry;
pub mod sqs;
pub mod streams;

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
