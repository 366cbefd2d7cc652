//! The reconcile Lambda function: the region's DynamoDB stream; every version last-writer-wins
//! overwrote is resolved with the tenant's policy and written back.

use host_lambda::reconcile_fn::ReconcileFunction;
use host_lambda::wiring::Wiring;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = Wiring::from_env().await?;
    let function = ReconcileFunction::new(w.reconcile(), &w.config.region);
    host_lambda::run_stream_function(|event| function.handle(event)).await
}
