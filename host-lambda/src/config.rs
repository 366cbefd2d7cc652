//! The functions' configuration, from their environment (set by `deploy/template.yaml`).

use anyhow::{Context, Result};

#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// Our name of the region (`apac`, `eu`, `na`): the version vectors' and stamps' region.
    pub region: String,
    /// The region's DynamoDB tables.
    pub tables: Tables,
    /// The region's SQS queues.
    pub queues: Queues,
    /// Where the tenants' policies come from.
    pub policies: PolicySettings,
    /// The stack's tenant when it is tenant-scoped (`TENANT_SCOPE`; empty: every tenant).
    pub tenant_scope: Option<String>,
    /// The JWT claim naming the caller's tenant (`TENANT_CLAIM`, default `tenant`).
    pub tenant_claim: String,
}

/// The region's DynamoDB tables; only the party table is required.
#[derive(Clone, Debug)]
pub struct Tables {
    /// `PARTY_TABLE`.
    pub party: String,
    /// The policy registry's records (`REGISTRY_TABLE`; used with [`PolicySettings::bucket`]).
    pub registry: Option<String>,
    /// The conflict log (`CONFLICT_TABLE`).
    pub conflict: Option<String>,
    /// The hub's listeners (`LISTENER_TABLE`): without it the API answers `hub` with 501, and
    /// the notifier does not start.
    pub listener: Option<String>,
}

/// The region's SQS queues, by URL; only the dead-letter queue is required.
#[derive(Clone, Debug)]
pub struct Queues {
    /// `DEAD_LETTER_QUEUE_URL`.
    pub dead_letter: String,
    /// Where the notifier keeps the notifications a callback kept refusing
    /// (`NOTIFY_DEAD_LETTER_QUEUE_URL`; the notifier's only).
    pub notify_dead_letter: Option<String>,
    /// Where the reconcile stream's event source mapping sends the batches it gave up on
    /// (`RECONCILE_FAILURE_QUEUE_URL`; the redrive function's only).
    pub reconcile_failure: Option<String>,
    /// Where what the workflows cannot settle goes (`REVIEW_QUEUE_URL`; the redrive
    /// function's: a given-up batch whose records the stream no longer has).
    pub review: Option<String>,
}

/// Where the tenants' policies come from and where their compiled forms are kept.
#[derive(Clone, Debug)]
pub struct PolicySettings {
    /// The registry's component bytes (`POLICY_BUCKET`; used with [`Tables::registry`]).
    pub bucket: Option<String>,
    /// How often the registry is followed (`POLICY_REFRESH_SECONDS`, 1 to 10, default 10).
    pub refresh_seconds: u64,
    /// `POLICY_CACHE_DIR`, default `/tmp/policy-cache`.
    pub cache_dir: String,
    /// Policies compiled for this host and shipped in its package (`POLICY_PACKAGED_DIR`, by
    /// default `$LAMBDA_TASK_ROOT/precompiled` on Lambda): read when the cache has none, so a
    /// fresh execution environment does not compile the default policy.
    pub packaged_dir: Option<String>,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("the environment variable {name} is not set"))
}

impl FunctionConfig {
    pub fn from_env() -> Result<Self> {
        Ok(FunctionConfig {
            region: var("REGION_NAME")?.to_ascii_lowercase(),
            tables: Tables {
                party: var("PARTY_TABLE")?,
                registry: var("REGISTRY_TABLE").ok(),
                conflict: var("CONFLICT_TABLE").ok(),
                listener: var("LISTENER_TABLE").ok(),
            },
            queues: Queues {
                dead_letter: var("DEAD_LETTER_QUEUE_URL")?,
                notify_dead_letter: var("NOTIFY_DEAD_LETTER_QUEUE_URL").ok(),
                reconcile_failure: var("RECONCILE_FAILURE_QUEUE_URL").ok(),
                review: var("REVIEW_QUEUE_URL").ok(),
            },
            policies: PolicySettings {
                bucket: var("POLICY_BUCKET").ok(),
                refresh_seconds: var("POLICY_REFRESH_SECONDS")
                    .ok()
                    .map(|s| {
                        s.parse()
                            .context("POLICY_REFRESH_SECONDS must be a number of seconds")
                    })
                    .transpose()?
                    .unwrap_or(10)
                    .clamp(1, 10),
                cache_dir: var("POLICY_CACHE_DIR").unwrap_or_else(|_| "/tmp/policy-cache".into()),
                packaged_dir: var("POLICY_PACKAGED_DIR").ok().or_else(|| {
                    var("LAMBDA_TASK_ROOT")
                        .ok()
                        .map(|root| format!("{root}/precompiled"))
                }),
            },
            tenant_scope: var("TENANT_SCOPE").ok().filter(|t| !t.is_empty()),
            tenant_claim: var("TENANT_CLAIM").unwrap_or_else(|_| "tenant".into()),
        })
    }
}
