//! Signed policies: a tenant that trusts keys takes only versions one of them signed — at
//! upload, at activation and, last, in the hosts that would load it (a version written into
//! the registry by other means, or whose signature was altered, is refused there and the
//! version served before keeps serving) — and a tenant that trusts no key takes any version.

use std::sync::Arc;
use std::time::Duration;

use host_core::registry::local::LocalRegistry;
use host_core::registry::{HistoryEntry, PolicySignature, RegistryError};
use host_core::signing::{self, SigningKey};
use host_core::{Limits, Metering, PolicyEngine, PolicyRegistry, RegistryFollower, TenantPolicies};
use integration_tests::upload_options;
use policy_admin::UploadOptions;
use policy_admin::registry::Registry;

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;
const NA: &[u8] = default_policy_artifact::NA_STATUS_POLICY;

fn signed(label: &str, key: &SigningKey) -> UploadOptions {
    UploadOptions {
        signer: Some(key.clone()),
        ..upload_options(label)
    }
}

fn follower(store: Arc<LocalRegistry>) -> RegistryFollower {
    RegistryFollower::new(
        store,
        Arc::new(TenantPolicies::new()),
        PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap(),
        None,
        Duration::from_secs(10),
    )
}

/// A registry in `dir` in which tenant acme trusts `key`, and its store (what the hosts follow).
fn trusting(dir: &std::path::Path, key: &SigningKey) -> (Arc<LocalRegistry>, Registry) {
    let store = Arc::new(LocalRegistry::new(dir));
    let reg = Registry::new(store.clone(), "tester");
    reg.trust("acme", &key.verifying_key()).unwrap();
    (store, reg)
}

fn served(f: &RegistryFollower, tenant: &str) -> String {
    f.policies().get(tenant).unwrap().policy.digest().to_owned()
}

#[test]
fn a_tenant_that_trusts_a_key_takes_only_versions_it_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing::signing_key([1; 32]);
    let stranger = signing::signing_key([2; 32]);
    let (store, reg) = trusting(dir.path(), &key);
    // Unsigned, or signed by a key the tenant does not trust: refused at upload.
    for (options, why) in [
        (upload_options("v1"), "is not signed"),
        (signed("v1", &stranger), "does not trust"),
    ] {
        match reg.upload("acme", DEFAULT, &options) {
            Err(RegistryError::Refused(reason)) => assert!(reason.contains(why), "{reason}"),
            other => panic!("expected a refusal ({why}), got {other:?}"),
        }
    }
    // Signed by the trusted key: stored with its signature, recorded as the key's upload.
    let (_, v1) = reg.upload("acme", DEFAULT, &signed("v1", &key)).unwrap();
    let id = signing::key_id(&key.verifying_key());
    assert_eq!(v1.signature.as_ref().unwrap().key_id, id);
    assert_eq!(v1.uploaded_by, format!("key:{id}"));
    reg.activate("acme", "v1").unwrap();
    let f = follower(store.clone());
    f.refresh("acme").unwrap();
    assert_eq!(served(&f, "acme"), v1.digest);
    // The trust change is in the tenant's history.
    let history = reg.history("acme").unwrap();
    assert!(history.iter().any(|e| e.action == "trust"), "{history:?}");

    // A tenant that trusts no key takes an unsigned version.
    reg.upload("globex", NA, &upload_options("v1")).unwrap();
    reg.activate("globex", "v1").unwrap();
    f.refresh("globex").unwrap();
    assert_eq!(served(&f, "globex"), host_core::digest(NA));
}

#[test]
fn the_hosts_refuse_a_version_whose_signature_was_altered_and_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing::signing_key([1; 32]);
    let (store, reg) = trusting(dir.path(), &key);
    let (_, v1) = reg.upload("acme", DEFAULT, &signed("v1", &key)).unwrap();
    reg.activate("acme", "v1").unwrap();
    let f = follower(store.clone());
    f.refresh("acme").unwrap();
    let failures_before = f
        .stats()
        .failures
        .load(std::sync::atomic::Ordering::Relaxed);

    // v2 reaches the registry with a signature that does not match its bytes (written by
    // other means than the operator's tools), and the state is pointed at it directly.
    let na = host_core::digest(NA);
    store.put_component(&na, NA).unwrap();
    let mut v2 = v1.clone();
    v2.digest = na.clone();
    v2.label = Some("v2".into());
    v2.signature = Some(PolicySignature {
        key_id: v1.signature.as_ref().unwrap().key_id.clone(),
        signature: v1.signature.as_ref().unwrap().signature.clone(),
    });
    assert!(store.put_version(&v2).unwrap());
    // The operator's activation refuses it ...
    match reg.activate("acme", "v2") {
        Err(RegistryError::Refused(reason)) => {
            assert!(reason.contains("does not match"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // ... and so does a host, when the state names it anyway.
    let mut state = store.state("acme").unwrap().unwrap();
    let expected = state.revision;
    state.revision += 1;
    state.active = Some(na.clone());
    let entry = HistoryEntry {
        tenant: "acme".into(),
        revision: state.revision,
        at_ms: 1,
        by: "someone".into(),
        action: "activate".into(),
        digest: Some(na.clone()),
        replaced: None,
        detail: None,
    };
    store.put_state(&state, expected, &entry).unwrap();
    let refused = f.refresh("acme").unwrap_err().to_string();
    assert!(refused.contains("does not match"), "{refused}");
    assert_eq!(
        served(&f, "acme"),
        v1.digest,
        "the signed version keeps serving"
    );
    assert!(
        f.stats()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > failures_before
    );

    // Untrusting the last key makes signatures optional again: the host takes v2.
    let id = signing::key_id(&key.verifying_key());
    // (v1, signed by the key, is no longer active: untrusting is allowed.)
    reg.untrust("acme", &id).unwrap();
    f.refresh("acme").unwrap();
    assert_eq!(served(&f, "acme"), na);
}

#[test]
fn trusting_a_key_that_did_not_sign_the_served_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalRegistry::new(dir.path()));
    let reg = Registry::new(store, "tester");
    reg.upload("acme", DEFAULT, &upload_options("v1")).unwrap();
    reg.activate("acme", "v1").unwrap();
    let key = signing::signing_key([3; 32]);
    match reg.trust("acme", &key.verifying_key()) {
        Err(RegistryError::Refused(reason)) => {
            assert!(reason.contains("the hosts would refuse it"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
