//! The reconcile Lambda function: the region's DynamoDB stream; every version last-writer-wins
//! overwrote is resolved with the tenant's policy and written back.

use anyhow::Context;
use host_lambda::reconcile_fn::ReconcileFunction;
use host_lambda::wiring::Wiring;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = Wiring::from_env().await?;
    let function = ReconcileFunction::new(w.reconcile(), &w.config.region);
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, host_lambda::FunctionError>(function.handle(event.payload).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
