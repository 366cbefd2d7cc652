//! The reconcile Lambda function: the region's DynamoDB stream; every version last-writer-wins
//! overwrote is resolved with the tenant's policy and written back.

use anyhow::Context;
use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use host_lambda::FunctionError;
use host_lambda::reconcile_fn::ReconcileFunction;
use host_lambda::wiring::Wiring;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = Wiring::from_env().await?;
    let function = ReconcileFunction::new(w.reconcile(), &w.config.region);
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<DynamoDbEvent>| async move {
            Ok::<_, FunctionError>(function.handle(event.payload).await)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
