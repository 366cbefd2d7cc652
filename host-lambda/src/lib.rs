//! The serving Lambda functions: the handlers that the binaries in `src/bin/` (ingest,
//! reconcile, redrive, notify) wire to `lambda_runtime`, over the host core's pipeline and the AWS
//! stores of `host-aws`. The policy rollout workflow's function, which runs the law checker,
//! is the `rollout-lambda` crate beside this one, so that these link no law checker.
//!
//! The host core's traits are synchronous (policy calls are CPU-bound wasm calls); handlers
//! run them on blocking threads (`tokio::task::spawn_blocking`), never on the runtime's own
//! workers.

pub mod config;
pub mod ingest_fn;
pub mod metrics;
pub mod notify_fn;
pub mod policies;
pub mod reconcile_fn;
pub mod redrive;
pub mod stream_failures;
pub mod wiring;
pub mod xray;

/// A function's error as Lambda reports it: `Retryable` (the same invocation may succeed
/// later: throttling, a dependency down) or `NonRetryable` (it will fail again: bad input).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    NonRetryable(String),
}

/// An AWS call's failure: `Retryable` only when a retry can fix it (throttling, the service's
/// own failure, a dropped connection), not for a missing queue or a missing region.
impl From<host_aws::error::AwsError> for FunctionError {
    fn from(e: host_aws::error::AwsError) -> Self {
        if e.is_transient() {
            FunctionError::Retryable(e.to_string())
        } else {
            FunctionError::NonRetryable(e.to_string())
        }
    }
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

/// `tokio::task::spawn_blocking`, run inside the caller's span: the store and policy calls
/// made on the blocking thread belong to the invocation (its logs' span, its X-Ray trace).
pub fn blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

/// JSON logs for Lambda (CloudWatch Logs parses them), filtered by `RUST_LOG` (default info),
/// and X-Ray subsegments ([`xray`]) when the function's tracing is active.
pub fn init_logs() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    let traces = xray::daemon_address().and_then(|address| match xray::XRayLayer::new(&address) {
        Ok(layer) => Some(layer.with_filter(xray::filter())),
        Err(e) => {
            eprintln!("X-Ray daemon at {address} unreachable, no subsegments: {e}");
            None
        }
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
}

/// A stream batch's answer to Lambda: the records to deliver again, by sequence number.
pub fn batch_failures(sequences: Vec<String>) -> aws_lambda_events::streams::DynamoDbEventResponse {
    let mut answer = aws_lambda_events::streams::DynamoDbEventResponse::default();
    answer.batch_item_failures = sequences
        .into_iter()
        .map(|sequence| {
            let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    answer
}

/// Serves a function of the region's DynamoDB stream (reconcile, notify) on the Lambda runtime
/// until the runtime stops: `answer` answers each batch with the records to deliver again.
pub async fn run_stream_function<F, Fut>(answer: F) -> anyhow::Result<()>
where
    F: Fn(aws_lambda_events::dynamodb::Event) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::streams::DynamoDbEventResponse>,
{
    use anyhow::Context as _;
    let answer = &answer;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, FunctionError>(answer(event.payload).await)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
