//! The functions' configuration, from their environment (set by `deploy/template.yaml`).

use anyhow::{Context, Result};

#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// Our name of the region (`apac`, `eu`, `na`): the version vectors' and stamps' region.
    pub region: String,
    pub party_table: String,
    pub dead_letter_queue_url: String,
    pub registry_table: Option<String>,
    pub policy_bucket: Option<String>,
    pub conflict_table: Option<String>,
    /// The hub's listeners (`LISTENER_TABLE`): without it the API answers `hub` with 501, and
    /// the notifier does not start.
    pub listener_table: Option<String>,
    /// Where the notifier keeps the notifications a callback kept refusing
    /// (`NOTIFY_DEAD_LETTER_QUEUE_URL`; the notifier's only).
    pub notify_dead_letter_queue_url: Option<String>,
    /// Where the reconcile stream's event source mapping sends the batches it gave up on
    /// (`RECONCILE_FAILURE_QUEUE_URL`; the redrive function's only).
    pub reconcile_failure_queue_url: Option<String>,
    /// Where what the workflows cannot settle goes (`REVIEW_QUEUE_URL`; the redrive
    /// function's: a given-up batch whose records the stream no longer has).
    pub review_queue_url: Option<String>,
    /// The stack's tenant when it is tenant-scoped (`TENANT_SCOPE`; empty: every tenant).
    pub tenant_scope: Option<String>,
    pub policy_refresh_seconds: u64,
    pub policy_cache_dir: String,
    /// Policies compiled for this host and shipped in its package (`POLICY_PACKAGED_DIR`, by
    /// default `$LAMBDA_TASK_ROOT/precompiled` on Lambda): read when the cache has none, so a
    /// fresh execution environment does not compile the default policy.
    pub policy_packaged_dir: Option<String>,
    /// The JWT claim naming the caller's tenant (`TENANT_CLAIM`, default `tenant`).
    pub tenant_claim: String,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("the environment variable {name} is not set"))
}

impl FunctionConfig {
    pub fn from_env() -> Result<Self> {
        Ok(FunctionConfig {
            region: var("REGION_NAME")?.to_ascii_lowercase(),
            party_table: var("PARTY_TABLE")?,
            dead_letter_queue_url: var("DEAD_LETTER_QUEUE_URL")?,
            registry_table: var("REGISTRY_TABLE").ok(),
            policy_bucket: var("POLICY_BUCKET").ok(),
            conflict_table: var("CONFLICT_TABLE").ok(),
            listener_table: var("LISTENER_TABLE").ok(),
            notify_dead_letter_queue_url: var("NOTIFY_DEAD_LETTER_QUEUE_URL").ok(),
            reconcile_failure_queue_url: var("RECONCILE_FAILURE_QUEUE_URL").ok(),
            review_queue_url: var("REVIEW_QUEUE_URL").ok(),
            tenant_scope: var("TENANT_SCOPE").ok().filter(|t| !t.is_empty()),
            policy_refresh_seconds: var("POLICY_REFRESH_SECONDS")
                .ok()
                .map(|s| {
                    s.parse()
                        .context("POLICY_REFRESH_SECONDS must be a number of seconds")
                })
                .transpose()?
                .unwrap_or(10)
                .clamp(1, 10),
            policy_cache_dir: var("POLICY_CACHE_DIR")
                .unwrap_or_else(|_| "/tmp/policy-cache".into()),
            policy_packaged_dir: var("POLICY_PACKAGED_DIR").ok().or_else(|| {
                var("LAMBDA_TASK_ROOT")
                    .ok()
                    .map(|root| format!("{root}/precompiled"))
            }),
            tenant_claim: var("TENANT_CLAIM").unwrap_or_else(|_| "tenant".into()),
        })
    }
}
