//! The policy registry on DynamoDB and S3 (moto in server mode): the registry's conformance
//! suite (components in the bucket verified on every load; versions, labels, state, history and
//! shadow counters in the registry table; uploads, activation, rollback and shadow over them:
//! see `integration_tests::conformance`); the reconcile path following the registry (hot swap
//! on real tables); and the registry function's rollout steps.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{BillingMode, KeyType};
use common::*;
use host_aws::sqs::KIND_RECONCILE;
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::PartyStore;
use host_core::{PolicyRegistry, RegistryFollower, Resolver};
use integration_tests::conformance;
use integration_tests::upload_options as options;
use policy_admin::Registry;
use rollout_lambda::{RegistryFunction, Step};

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;
const NA: &[u8] = default_policy_artifact::NA_STATUS_POLICY;

/// A registry table and a policy bucket on the shared moto server.
struct RegistryRig {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    bucket: String,
    store: Arc<dyn PolicyRegistry>,
}

impl RegistryRig {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let sdk = sdk_config(&endpoint("MOTO_ENDPOINT"), None);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = host_aws::s3_client(&sdk);
        let table = unique("registry");
        let bucket = unique("policies").to_lowercase();
        rt.block_on(async {
            ddb.create_table()
                .table_name(&table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attr("tenant"))
                .attribute_definitions(attr("entry"))
                .key_schema(key("tenant", KeyType::Hash))
                .key_schema(key("entry", KeyType::Range))
                .send()
                .await
                .expect("creating the registry table");
            s3.create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .expect("creating the policy bucket");
        });
        let store = host_aws::registry_from(&sdk, &table, &bucket, rt.handle().clone());
        RegistryRig {
            rt,
            s3,
            bucket,
            store,
        }
    }

    fn registry(&self) -> Registry {
        Registry::new(self.store.clone(), "tester")
    }

    /// Replaces a component's bytes in the bucket, behind the registry's back.
    fn tamper(&self, digest: &str, bytes: &[u8]) {
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(format!("components/{digest}.wasm"))
                    .body(bytes.to_vec().into())
                    .send(),
            )
            .unwrap();
    }

    fn source(&self, interval: Duration) -> Arc<RegistryFollower> {
        conformance::follower(self.store.clone(), interval)
    }
}

#[test]
fn dynamodb_and_s3_conform() {
    let rig = RegistryRig::new();
    conformance::policy_registry("DynamoDB and S3", rig.store.clone(), |digest, bytes| {
        rig.tamper(digest, bytes)
    });
}

/// The reconcile path on a real party table follows the registry: a conflict resolved before
/// an activation is written under v1's digest, one resolved a refresh interval after it under
/// v2's, with v2's decision.
#[test]
fn the_reconcile_path_follows_the_registry() {
    let rig = RegistryRig::new();
    let parties = Rig::new("MOTO_ENDPOINT");
    let reg = rig.registry();
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v1").unwrap();

    let interval = Duration::from_millis(300);
    let resolver = Arc::new(Resolver::new(rig.source(interval), "eu"));
    let reconcile = Reconcile::new(
        parties.store("eu"),
        parties.letters(KIND_RECONCILE),
        resolver,
    );
    let resolve = |n: u32| {
        let (eu, na) = integration_tests::status_conflict("acme", n);
        integration_tests::put_new_party(reconcile.store(), &eu);
        match reconcile.restore(&na, 10_000) {
            ReconcileOutcome::Resolved {
                policy_digest: Some(d),
                ..
            } => {
                let stored = reconcile
                    .store()
                    .party("acme", &format!("p{n}"))
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.provenance.policy_digest.as_deref(), Some(d.as_str()));
                (d, integration_tests::tmf(&stored.version)["status"].clone())
            }
            other => panic!("conflict {n}: {other:?}"),
        }
    };
    let (d1, s1) = resolve(1);
    assert_eq!(d1, v1.digest);
    reg.activate("acme", "v2").unwrap();
    std::thread::sleep(interval + Duration::from_millis(50));
    let (d2, s2) = resolve(2);
    assert_eq!(d2, v2.digest, "one interval after the activation");
    assert_ne!(s1, s2, "and with v2's decision");
    assert!(parties.dead_letters().is_empty());
}

#[test]
fn the_registry_function_runs_the_rollout_steps() {
    let rig = RegistryRig::new();
    let reg = rig.registry();
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v1").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let function = RegistryFunction::new(
        Registry::new(rig.store.clone(), "workflow")
            .with_cache(host_core::ArtifactCache::new(cache.path())),
    );
    let step = |action: &str, digest: &str| Step {
        action: action.into(),
        tenant: "acme".into(),
        digest: digest.into(),
        reason: None,
    };

    let valid = function.run(&step("validate", &v2.digest)).unwrap();
    assert_eq!(valid["valid"], true);
    // The functions' engine finds the version compiled in the bucket.
    assert_eq!(valid["precompiled"], true);
    let serving = host_core::PolicyEngine::new(Default::default(), host_core::Metering::Epoch)
        .unwrap()
        .compatibility_hash();
    assert!(
        rig.store
            .precompiled(&serving, &v2.digest)
            .unwrap()
            .is_some()
    );
    function.run(&step("shadow", &v2.digest)).unwrap();
    function.run(&step("shadow", &v2.digest)).unwrap(); // retried: idempotent
    let report = function.run(&step("shadow-report", &v2.digest)).unwrap();
    assert_eq!(report["compared"], 0);
    assert_eq!(report["disagreementRate"], 0.0);
    function.run(&step("activate", &v2.digest)).unwrap();
    assert_eq!(
        rig.store.state("acme").unwrap().unwrap().active.as_deref(),
        Some(v2.digest.as_str())
    );
    // The workflow's rollback of an activated candidate restores the previous version.
    function
        .run(&Step {
            reason: Some("rollout step failed".into()),
            ..step("rollback", &v2.digest)
        })
        .unwrap();
    assert_eq!(
        rig.store.state("acme").unwrap().unwrap().active.as_deref(),
        Some(v1.digest.as_str())
    );

    // A component that got into the registry without the CLI's checks fails validation.
    let bad = std::fs::read(integration_tests::guests::PREFER_LOCAL).unwrap();
    let bad_digest = host_core::digest(&bad);
    rig.store.put_component(&bad_digest, &bad).unwrap();
    let mut record = rig.store.versions("acme").unwrap().remove(0);
    record.digest = bad_digest.clone();
    record.label = Some("sneaked-in".into());
    rig.store.put_version(&record).unwrap();
    match function.run(&step("validate", &bad_digest)) {
        Err(host_lambda::FunctionError::NonRetryable(msg)) => {
            assert!(msg.contains("commutativity"), "{msg}")
        }
        other => panic!("expected a non-retryable failure, got {other:?}"),
    }
    match function.run(&step("deploy", &bad_digest)) {
        Err(host_lambda::FunctionError::NonRetryable(msg)) => {
            assert!(msg.contains("unknown action"), "{msg}")
        }
        other => panic!("expected a non-retryable failure, got {other:?}"),
    }
    match function.run(&step("activate", "0000000")) {
        Err(host_lambda::FunctionError::NonRetryable(msg)) => {
            assert!(msg.contains("no version matching"), "{msg}")
        }
        other => panic!("expected a non-retryable failure, got {other:?}"),
    }
}
