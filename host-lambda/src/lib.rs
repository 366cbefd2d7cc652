//! The AWS side of the hosts: the host library's stores on DynamoDB, SQS and S3, and the
//! handlers the Lambda binaries in `src/bin/` wire to `lambda_runtime`.
//!
//! The host library's traits are synchronous (policy calls are CPU-bound wasm calls); the AWS
//! stores bridge to the async SDK with the runtime's handle, so handlers run them on blocking
//! threads (`tokio::task::spawn_blocking`), never on the runtime's own workers.

pub mod config;
pub mod conflict_log_aws;
pub mod dynamo;
pub mod ingest_fn;
pub mod metrics;
pub mod policies;
pub mod reconcile_fn;
pub mod redrive;
pub mod registry_aws;
pub mod registry_fn;
pub mod sqs;
pub mod wiring;

/// A function's error as Lambda reports it: `Retryable` (the same invocation may succeed
/// later: throttling, a dependency down) or `NonRetryable` (it will fail again: bad input).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    NonRetryable(String),
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        let error_type = match e {
            FunctionError::Retryable(_) => "Retryable",
            FunctionError::NonRetryable(_) => "NonRetryable",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// JSON logs for Lambda (CloudWatch Logs parses them), filtered by `RUST_LOG` (default info).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}
