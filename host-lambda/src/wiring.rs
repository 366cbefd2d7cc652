//! What every function builds once per execution environment: its configuration, the SDK
//! clients, the tenants' policies (following the registry when one is configured) and a
//! resolver, and the stores over them.

use std::sync::Arc;
use std::time::Duration;

use host_aws::conflict_log::DynamoConflictLog;
use host_aws::dynamo::DynamoStore;
use host_aws::hub::DynamoHub;
use host_aws::registry::AwsRegistry;
use host_aws::s3_client;
use host_aws::sqs::SqsDeadLetters;
use host_core::conflict_log::ConflictLog;
use host_core::reconcile::Reconcile;
use host_core::{PolicyEngine, PolicyRegistry, RegistryFollower, Resolver};

use crate::config::FunctionConfig;

pub struct Wiring {
    pub config: FunctionConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    /// The Streams API (the redrive function reads given-up batches back through it).
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub engine: Arc<PolicyEngine>,
    pub resolver: Arc<Resolver>,
    rt: tokio::runtime::Handle,
}

impl Wiring {
    /// Reads the environment, loads the SDK configuration and the policies; call from `main`
    /// (inside the runtime).
    pub async fn from_env() -> anyhow::Result<Self> {
        crate::init_logs();
        let config = FunctionConfig::from_env()?;
        let started = std::time::Instant::now();
        let sdk = aws_config::load_from_env().await;
        tracing::info!(
            sdk_config_ms = started.elapsed().as_secs_f64() * 1e3,
            "host.init.sdk_config"
        );
        let (engine, policies, cache) = crate::policies::default_policies(
            &config.policies.cache_dir,
            config.policies.packaged_dir.as_deref(),
        )?;
        // The TMF632 validators, compiled here rather than by the first caller's event.
        let started = std::time::Instant::now();
        host_core::event::compile_validators();
        tracing::info!(
            schemas_ms = started.elapsed().as_secs_f64() * 1e3,
            "host.init.schemas"
        );
        let mut w = Wiring {
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3: s3_client(&sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
            resolver: Arc::new(Resolver::new(policies.clone(), &config.region)),
            engine,
            rt: tokio::runtime::Handle::current(),
            config,
        };
        if let Some(registry) = w.registry() {
            let source = RegistryFollower::new(
                registry,
                policies,
                (*w.engine).clone(),
                Some(cache),
                Duration::from_secs(w.config.policies.refresh_seconds),
            );
            w.resolver = Arc::new(Resolver::new(Arc::new(source), &w.config.region));
            tracing::info!(
                refresh_seconds = w.config.policies.refresh_seconds,
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
            self.config.tables.registry.as_ref()?,
            self.config.policies.bucket.as_ref()?,
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
        let table = self.config.tables.conflict.as_ref()?;
        Some(Arc::new(DynamoConflictLog::new(
            self.ddb.clone(),
            table,
            self.rt.clone(),
        )))
    }

    /// The hub's listeners, when the environment names their table (`LISTENER_TABLE`).
    pub fn hub(&self) -> Option<Arc<DynamoHub>> {
        let table = self.config.tables.listener.as_ref()?;
        Some(Arc::new(DynamoHub::new(
            self.ddb.clone(),
            table,
            self.rt.clone(),
        )))
    }

    /// The reconcile path of this region, recording into the conflict log when there is one.
    pub fn reconcile(&self) -> Reconcile<DynamoStore, SqsDeadLetters> {
        let r = Reconcile::new(
            self.store(),
            self.dead_letters(host_aws::sqs::KIND_RECONCILE),
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
            &self.config.tables.party,
            &self.config.region,
            self.rt.clone(),
        )
    }

    /// The dead-letter queue, for letters of `kind` (`sqs::KIND_INGEST`, `sqs::KIND_RECONCILE`).
    pub fn dead_letters(&self, kind: &'static str) -> SqsDeadLetters {
        SqsDeadLetters::new(
            self.sqs.clone(),
            &self.config.queues.dead_letter,
            kind,
            self.rt.clone(),
        )
    }
}
