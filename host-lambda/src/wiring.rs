//! What every function builds once per execution environment: its configuration, the SDK
//! clients, the tenants' policies and a resolver, and the stores over them.

use std::sync::Arc;

use host_core::{PolicyEngine, Resolver};

use crate::config::FunctionConfig;
use crate::dynamo::DynamoStore;
use crate::sqs::SqsDeadLetters;

pub struct Wiring {
    pub config: FunctionConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
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
        let sdk = aws_config::load_from_env().await;
        let (engine, policies) = crate::policies::default_policies(&config.policy_cache_dir)?;
        let resolver = Arc::new(Resolver::new(policies, &config.region));
        Ok(Wiring {
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            engine,
            resolver,
            rt: tokio::runtime::Handle::current(),
            config,
        })
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
