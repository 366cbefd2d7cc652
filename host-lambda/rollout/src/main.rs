//! The registry Lambda function: the policy rollout workflow's steps (validate, shadow,
//! shadow-report, activate, rollback) on the registry table and the policy bucket.

use std::sync::Arc;

use anyhow::Context;
use host_core::ArtifactCache;
use host_lambda::wiring::Wiring;
use lambda_runtime::{LambdaEvent, service_fn};
use policy_admin::Registry;
use rollout_lambda::RegistryFunction;
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = Wiring::from_env().await?;
    let store = w
        .registry()
        .context("the registry function needs REGISTRY_TABLE and POLICY_BUCKET")?;
    // Validation compiles through this cache and stores the artifact in the registry.
    let cache = ArtifactCache::new(&w.config.policies.cache_dir);
    let function = Arc::new(RegistryFunction::new(
        Registry::new(store, "policy-rollout-workflow").with_cache(cache),
    ));
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        function.handle(event.payload).await
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime stopped")
}
