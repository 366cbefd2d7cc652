//! What every function builds once per execution environment: its configuration, the SDK
//! clients, the tenants' policies (following the registry when one is configured) and a
//! resolver, and the stores over them.

use std::sync::Arc;
use std::time::Duration;

use host_core::conflict_log::ConflictLog;
use host_core::reconcile::Reconcile;
use host_core::{PolicyEngine, PolicyRegistry, PolicySource, Resolver};

use crate::config::FunctionConfig;
use crate::conflict_log_aws::DynamoConflictLog;
use crate::dynamo::DynamoStore;
use crate::registry_aws::AwsRegistry;
use crate::sqs::SqsDeadLetters;

pub struct Wiring {
    pub config: FunctionConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub engine: Arc<PolicyEngine>,
    pub resolver: Arc<Resolver>,
    rt: tokio::runtime::Handle,
}

/// An S3 client; path-style addressing when an endpoint is set (moto, LocalStack), where
/// bucket subdomains of 127.0.0.1 do not resolve.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = sdk.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build(),
    )
}

impl Wiring {
    /// Reads the environment, loads the SDK configuration and the policies; call from `main`
    /// (inside the runtime).
    pub async fn from_env() -> anyhow::Result<Self> {
        crate::init_logs();
        let config = FunctionConfig::from_env()?;
        let sdk = aws_config::load_from_env().await;
        let (engine, policies, cache) =
            crate::policies::default_policies(&config.policy_cache_dir)?;
        let mut w = Wiring {
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3: s3_client(&sdk),
            resolver: Arc::new(Resolver::new(policies.clone(), &config.region)),
            engine,
            rt: tokio::runtime::Handle::current(),
            config,
        };
        if let Some(registry) = w.registry() {
            let source = PolicySource::new(
                registry,
                policies,
                (*w.engine).clone(),
                Some(cache),
                Duration::from_secs(w.config.policy_refresh_seconds),
            );
            w.resolver = Arc::new(Resolver::from_source(Arc::new(source), &w.config.region));
            tracing::info!(
                refresh_seconds = w.config.policy_refresh_seconds,
                "host.policy.registry"
            );
        } else {
            tracing::warn!(
                "REGISTRY_TABLE or POLICY_BUCKET is not set: every tenant is served the embedded default policy"
            );
        }
        Ok(w)
    }

    /// The policy registry, when the environment names its table and bucket.
    pub fn registry(&self) -> Option<Arc<dyn PolicyRegistry>> {
        let (table, bucket) = (
            self.config.registry_table.as_ref()?,
            self.config.policy_bucket.as_ref()?,
        );
        Some(Arc::new(AwsRegistry::new(
            self.ddb.clone(),
            self.s3.clone(),
            table,
            bucket,
            self.rt.clone(),
        )))
    }

    /// The conflict log, when the environment names its table (`CONFLICT_TABLE`).
    pub fn conflict_log(&self) -> Option<Arc<dyn ConflictLog>> {
        let table = self.config.conflict_table.as_ref()?;
        Some(Arc::new(DynamoConflictLog::new(
            self.ddb.clone(),
            table,
            self.rt.clone(),
        )))
    }

    /// The reconcile path of this region, recording into the conflict log when there is one.
    pub fn reconcile(&self) -> Reconcile<DynamoStore, SqsDeadLetters> {
        let r = Reconcile::new(
            self.store(),
            self.dead_letters(crate::sqs::KIND_RECONCILE),
            self.resolver.clone(),
        );
        match self.conflict_log() {
            Some(log) => r.with_conflict_log(log),
            None => r,
        }
    }

    /// The region's party table.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(
            self.ddb.clone(),
            &self.config.party_table,
            &self.config.region,
            self.rt.clone(),
        )
    }

    /// The dead-letter queue, for letters of `kind` (`sqs::KIND_INGEST`, `sqs::KIND_RECONCILE`).
    pub fn dead_letters(&self, kind: &'static str) -> SqsDeadLetters {
        SqsDeadLetters::new(
            self.sqs.clone(),
            &self.config.dead_letter_queue_url,
            kind,
            self.rt.clone(),
        )
    }
}

/// The registry on AWS for tools that are not functions (the CLI).
pub fn registry_from(
    sdk: &aws_config::SdkConfig,
    table: &str,
    bucket: &str,
    rt: tokio::runtime::Handle,
) -> anyhow::Result<Arc<dyn PolicyRegistry>> {
    anyhow::ensure!(!table.is_empty(), "the registry table name is empty");
    anyhow::ensure!(!bucket.is_empty(), "the policy bucket name is empty");
    Ok(Arc::new(AwsRegistry::new(
        aws_sdk_dynamodb::Client::new(sdk),
        s3_client(sdk),
        table,
        bucket,
        rt,
    )))
}
