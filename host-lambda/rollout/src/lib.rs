//! The registry function: the policy rollout workflow's steps (`deploy/statemachines/
//! policy-rollout.asl.json`) as one Lambda handler over the registry.
//!
//! Input `{"action", "tenant", "digest", "reason"?}`; actions `validate` (the stored component
//! verifies against its digest, loads under this host's limits and passes the law checks under
//! the tenant's configuration; the serving engine's artifact of it is then stored beside it, so
//! that the functions' first load compiles nothing), `shadow`, `shadow-report` (`{"disagreementRate", "compared",
//! "disagreed"}`), `activate`, `rollback` (takes the candidate out of service wherever it is).
//! Every action is idempotent: the workflow retries them. Storage trouble is `Retryable`;
//! anything else is `NonRetryable`, which makes the workflow roll back.

use std::sync::Arc;

use host_core::registry::{RegistryError, fetch_component};
use host_lambda::FunctionError;
use policy_admin::{Registry, check_laws, seed_from_digest, store_precompiled};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One workflow step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: String,
    pub tenant: String,
    pub digest: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Law-check cases the `validate` step runs per law.
pub const VALIDATE_CASES: u32 = 64;

#[derive(Clone, Debug)]
pub struct RegistryFunction {
    registry: Registry,
}

fn function_error(e: RegistryError) -> FunctionError {
    if e.is_transient() {
        FunctionError::Retryable(e.to_string())
    } else {
        FunctionError::NonRetryable(e.to_string())
    }
}

/// A registry change (shadow, activate, rollback) as the step's answer.
fn change_answer(change: Result<impl Serialize, RegistryError>) -> Result<Value, FunctionError> {
    change
        .map(|c| serde_json::to_value(c).expect("changes serialise"))
        .map_err(function_error)
}

impl RegistryFunction {
    pub fn new(registry: Registry) -> Self {
        RegistryFunction { registry }
    }

    /// Handles one invocation (on a blocking thread: the registry is synchronous).
    pub async fn handle(self: &Arc<Self>, payload: Value) -> Result<Value, FunctionError> {
        let step: Step = serde_json::from_value(payload).map_err(|e| {
            FunctionError::NonRetryable(format!(
                "the input is not a rollout step {{action, tenant, digest, reason?}}: {e}"
            ))
        })?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.run(&step))
            .await
            .map_err(|e| FunctionError::Retryable(format!("the step's thread failed: {e}")))?
    }

    /// Runs one step.
    pub fn run(&self, step: &Step) -> Result<Value, FunctionError> {
        let tenant = step.tenant.as_str();
        let result = match step.action.as_str() {
            "validate" => self.validate(tenant, &step.digest),
            "shadow" => change_answer(self.registry.shadow(tenant, &step.digest)),
            "shadow-report" => self
                .registry
                .shadow_report(tenant, Some(&step.digest))
                .map(|(digest, s)| {
                    json!({
                        "digest": digest,
                        "compared": s.compared,
                        "disagreed": s.disagreed,
                        "disagreementRate": s.rate(),
                    })
                })
                .map_err(function_error),
            "activate" => change_answer(self.registry.activate(tenant, &step.digest)),
            "rollback" => change_answer(self.registry.rollback(
                tenant,
                Some(&step.digest),
                step.reason.as_deref(),
            )),
            other => Err(FunctionError::NonRetryable(format!(
                "unknown action {other:?}; expected validate, shadow, shadow-report, activate or rollback"
            ))),
        };
        match &result {
            Ok(_) => {
                tracing::info!(tenant, action = %step.action, policy = %step.digest, outcome = "ok", "registry.step")
            }
            Err(e) => {
                tracing::warn!(tenant, action = %step.action, policy = %step.digest, outcome = "failed", error = %e, "registry.step")
            }
        }
        result
    }

    fn validate(&self, tenant: &str, selector: &str) -> Result<Value, FunctionError> {
        let version = self
            .registry
            .find(tenant, selector)
            .map_err(function_error)?;
        let bytes =
            fetch_component(&**self.registry.store(), &version.digest).map_err(function_error)?;
        let config = self
            .registry
            .store()
            .state(tenant)
            .map_err(function_error)?
            .map(|s| host_core::tenant::policy_view(&s.config))
            .unwrap_or_else(|| "{}".into());
        // The seed follows the digest: a retried step checks the same cases.
        let seed = seed_from_digest(&version.digest);
        let policy = check_laws(&bytes, &config, VALIDATE_CASES, seed).map_err(|e| {
            FunctionError::NonRetryable(format!("version {} is refused: {e}", version.digest))
        })?;
        // The hosts' first load of the version then deserializes instead of compiling: the
        // artifact compiled here, on the functions' architecture and engine settings, is kept
        // beside the component. Without it they compile, so a failure costs only that.
        let precompiled = self.registry.cache().is_some_and(|cache| {
            store_precompiled(&**self.registry.store(), cache, &bytes).unwrap_or_else(|e| {
                tracing::warn!(policy = %version.digest, error = %e, "registry.precompiled_not_stored");
                false
            })
        });
        Ok(json!({
            "digest": version.digest,
            "precompiled": precompiled,
            "name": policy.description().name,
            "version": policy.description().version,
            "valid": true,
            "lawCases": VALIDATE_CASES,
            "seed": seed,
        }))
    }
}
