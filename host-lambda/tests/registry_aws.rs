//! The policy registry on DynamoDB and S3 (moto in server mode): uploads, activation,
//! rollback, shadow counters and history in the registry table, components in the bucket
//! verified on every load; the reconcile path following the registry (hot swap on real
//! tables); and the registry function's rollout steps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use common::*;
use host_core::ingest::{PartyStore, Provenance, StoredParty};
use host_core::policy_registry::{
    HistoryEntry, Registry, RegistryError, UploadOptions, VersionStatus,
};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::{
    ActivePolicy, Limits, Metering, Policy, PolicyEngine, PolicyRegistry, PolicySource, Resolver,
    TenantPolicies,
};
use host_lambda::registry_fn::{RegistryFunction, Step};
use host_lambda::sqs::KIND_RECONCILE;

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
        let s3 = host_lambda::wiring::s3_client(&sdk);
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
        let store =
            host_lambda::wiring::registry_from(&sdk, &table, &bucket, rt.handle().clone()).unwrap();
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

    fn source(&self, interval: Duration) -> Arc<PolicySource> {
        let engine = PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap();
        let policies = Arc::new(TenantPolicies::new());
        policies.set_default(ActivePolicy::new(Arc::new(
            Policy::load(&engine, DEFAULT, None).unwrap(),
        )));
        Arc::new(PolicySource::new(
            self.store.clone(),
            policies,
            engine,
            None,
            interval,
        ))
    }
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn options(label: &str) -> UploadOptions {
    UploadOptions {
        label: Some(label.to_owned()),
        law_cases: 32,
        seed: 11,
    }
}

#[test]
fn the_registry_on_dynamodb_and_s3() {
    let rig = RegistryRig::new();
    let reg = rig.registry();

    let (c, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    assert!(c.changed);
    let (c, _) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    assert!(!c.changed, "the same bytes twice change nothing");
    assert_eq!(rig.store.component(&v1.digest).unwrap(), DEFAULT);
    // Two uploads under one label that race past `upload`'s check: one is refused.
    let rival = std::fs::read(integration_tests::guests::KEEP_LOCAL).unwrap();
    integration_tests::a_taken_label_is_refused_by_the_store(&*rig.store, &v1, &rival);
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    assert_eq!(rig.store.versions("acme").unwrap().len(), 3);

    reg.activate("acme", "v1").unwrap();
    reg.shadow("acme", "v2").unwrap();
    let (listed, state) = reg.list("acme").unwrap();
    assert_eq!(state.revision, 2);
    let status = |d: &str| {
        listed
            .iter()
            .find(|v| v.version.digest == d)
            .unwrap()
            .status
    };
    assert_eq!(status(&v1.digest), VersionStatus::Active);
    assert_eq!(status(&v2.digest), VersionStatus::Shadow);

    // Shadow comparisons land in the table: counters and the disagreements in full.
    let src = rig.source(Duration::from_secs(3600));
    src.refresh("acme").unwrap();
    let resolver = Resolver::from_source(src, "eu");
    for n in 0..3 {
        let (eu, na) = integration_tests::status_conflict("acme", n);
        resolver.resolve(&eu, &na).unwrap();
        let (eu, na) = integration_tests::email_vs_status("acme");
        resolver.resolve(&eu, &na).unwrap();
    }
    let (digest, summary) = reg.shadow_report("acme", None).unwrap();
    assert_eq!(digest, v2.digest);
    assert_eq!((summary.compared, summary.disagreed), (6, 3));
    assert_eq!(summary.disagreements.len(), 3);
    assert!(summary.disagreements.iter().all(|d| d.conflict.is_some()));

    // Promote, roll back.
    let c = reg.activate("acme", "v2").unwrap();
    assert_eq!(c.previously_active.as_deref(), Some(v1.digest.as_str()));
    let c = reg.rollback("acme", None, Some("test")).unwrap();
    assert_eq!(c.active.as_deref(), Some(v1.digest.as_str()));

    // A stale writer is refused by the condition on the revision.
    let state = rig.store.state("acme").unwrap().unwrap();
    let entry = HistoryEntry {
        tenant: "acme".into(),
        revision: state.revision,
        at_ms: 1,
        by: "stale".into(),
        action: "config".into(),
        digest: None,
        replaced: None,
        detail: None,
    };
    match rig.store.put_state(&state, state.revision - 1, &entry) {
        Err(RegistryError::Conflict { found, .. }) => assert_eq!(found, state.revision),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let actions: Vec<String> = reg
        .history("acme")
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "upload", "upload", "activate", "shadow", "activate", "rollback"
        ]
    );
    assert_eq!(rig.store.tenants().unwrap(), ["acme"]);
}

#[test]
fn tampered_bytes_are_refused_and_the_active_policy_keeps_serving() {
    let rig = RegistryRig::new();
    let reg = rig.registry();
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v1").unwrap();
    let src = rig.source(Duration::from_secs(3600));
    src.refresh("acme").unwrap();

    rig.tamper(&v2.digest, DEFAULT);
    let err = reg.activate("acme", "v2").unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // The state moved behind the registry's back: the host refuses the bytes too.
    let mut state = rig.store.state("acme").unwrap().unwrap();
    let expected = state.revision;
    state.revision += 1;
    state.active = Some(v2.digest.clone());
    let entry = HistoryEntry {
        tenant: "acme".into(),
        revision: state.revision,
        at_ms: 1,
        by: "intruder".into(),
        action: "activate".into(),
        digest: Some(v2.digest.clone()),
        replaced: None,
        detail: None,
    };
    rig.store.put_state(&state, expected, &entry).unwrap();
    let err = src.refresh("acme").unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(
        src.policies().get("acme").unwrap().policy.digest(),
        v1.digest
    );
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
    let resolver = Arc::new(Resolver::from_source(rig.source(interval), "eu"));
    let reconcile = Reconcile::new(
        parties.store("eu"),
        parties.letters(KIND_RECONCILE),
        resolver,
    );
    let resolve = |n: u32| {
        let (eu, na) = integration_tests::status_conflict("acme", n);
        reconcile
            .store()
            .put_party(
                &StoredParty {
                    version: eu,
                    provenance: Provenance::default(),
                },
                None,
            )
            .unwrap();
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
    let function = RegistryFunction::new(Registry::new(rig.store.clone(), "workflow"));
    let step = |action: &str, digest: &str| Step {
        action: action.into(),
        tenant: "acme".into(),
        digest: digest.into(),
        reason: None,
    };

    let valid = function.run(&step("validate", &v2.digest)).unwrap();
    assert_eq!(valid["valid"], true);
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
