//! The ingest Lambda function: TMF632 listener events (API Gateway and SQS) applied once per
//! idempotency key to the region's party table; what cannot be applied goes to the dead-letter
//! queue. Configuration: see `host_lambda::config`.

use anyhow::Context;
use host_aws::sqs::KIND_INGEST;
use host_core::ingest::{Ingest, IngestConfig};
use host_lambda::FunctionError;
use host_lambda::ingest_fn::{IngestEvent, IngestFunction};
use host_lambda::wiring::Wiring;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The SDK clients and policies are built once per execution environment.
    let w = Wiring::from_env().await?;
    let ingest = Ingest::new(
        w.store(),
        w.dead_letters(KIND_INGEST),
        IngestConfig::new(&w.config.region),
    )
    .with_resolver(w.resolver.clone());
    let function =
        IngestFunction::new(ingest, &w.config.region).with_tenant_claim(&w.config.tenant_claim);
    // The hub's routes, when the stack has a listener table (501 otherwise).
    let function = match w.hub() {
        Some(hub) => function.with_hub(hub),
        None => function,
    };
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<IngestEvent>| async move {
            let deadline = event.context.deadline;
            Ok::<_, FunctionError>(function.handle(event.payload, deadline).await)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
