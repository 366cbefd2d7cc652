//! The policy registry's suite: `PolicyRegistry`, and the operator's operations
//! (`policy_admin::Registry`) over it.

use std::sync::Arc;
use std::time::Duration;

use host_core::registry::{
    HistoryEntry, PolicyVersion, RegistryError, ShadowComparison, ShadowOutcome, ShadowSummary,
    TenantState, VersionStatus, fetch_component,
};
use host_core::{
    ActivePolicy, Limits, Metering, Policy, PolicyEngine, PolicyRegistry, RegistryFollower,
    Resolver, TenantPolicies, resolve_with,
};
use policy_admin::Registry;
use policy_types::Relation;

use super::{Check, REGION, Suite};
use crate::upload_options as options;
use crate::{email_vs_status, guests, status_conflict};

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;
const NA: &[u8] = default_policy_artifact::NA_STATUS_POLICY;

/// The policy registry's contract, on the store and through `policy_admin::Registry`:
/// components by digest, verified on load; versions written once, a taken label refused
/// atomically; the tenant's state changed only by compare-and-swap, each change with its
/// history entry; shadow comparisons counted and disagreements kept; the tenants listed; and
/// over it uploads idempotent and labelled, activate, shadow, roll back and configure with
/// history, concurrent operators never overwriting each other, tampered bytes refused while
/// the active policy keeps serving, a retired version never rolled back to.
///
/// `tamper` replaces the bytes stored under a digest, behind the registry's back.
pub fn policy_registry(
    backend: &str,
    store: Arc<dyn PolicyRegistry>,
    tamper: impl Fn(&str, &[u8]),
) {
    let rig = RegistryRig {
        store: &*store,
        reg: Registry::new(store.clone(), "tester"),
        tamper: &tamper,
    };
    let checks: [Check<RegistryRig>; 12] = [
        (
            "components are stored by digest and verified",
            components_are_stored_by_digest,
        ),
        (
            "precompiled artifacts are kept per engine",
            precompiled_artifacts_are_kept_per_engine,
        ),
        ("versions are written once", versions_are_written_once),
        (
            "a taken label is refused by the store",
            a_taken_label_is_refused,
        ),
        (
            "the state changes by compare-and-swap, with history",
            state_changes_by_compare_and_swap,
        ),
        (
            "shadow comparisons are counted, disagreements kept",
            shadow_comparisons_are_counted,
        ),
        (
            "uploads are idempotent and labelled",
            uploads_are_idempotent_and_labelled,
        ),
        (
            "activate, shadow, roll back and configure, with history",
            activate_shadow_rollback_and_configure,
        ),
        (
            "concurrent operators never overwrite each other",
            concurrent_operators_never_overwrite_each_other,
        ),
        (
            "shadow records exactly the disagreements",
            shadow_records_exactly_the_disagreements,
        ),
        (
            "tampered bytes are refused; the active policy keeps serving",
            tampered_bytes_are_refused,
        ),
        (
            "a retired version is never rolled back to",
            a_retired_version_is_never_rolled_back_to,
        ),
    ];
    let mut suite = Suite::new("policy registry", backend);
    suite.run_all(&rig, &checks);
    // Last: every other check's tenant is known by now.
    let known = suite.tenants.clone();
    suite.check("the tenants are listed", |tenant| {
        tenants_are_listed(&rig, tenant, &known)
    });
    suite.finish();
}

/// A registry store, the operator's operations over it, and a way behind its back.
struct RegistryRig<'a> {
    store: &'a dyn PolicyRegistry,
    reg: Registry,
    tamper: &'a dyn Fn(&str, &[u8]),
}

/// The same component with a custom section appended: other bytes (another digest), the same
/// behaviour.
fn renamed(component: &[u8], note: &str) -> Vec<u8> {
    let name = b"registry-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 length");
    let mut out = component.to_vec();
    out.push(0x00);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

fn serving_engine() -> PolicyEngine {
    PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap()
}

/// A host following the registry, serving the default policy to tenants without one.
pub fn follower(store: Arc<dyn PolicyRegistry>, interval: Duration) -> Arc<RegistryFollower> {
    let policies = Arc::new(TenantPolicies::new());
    let engine = serving_engine();
    policies.set_default(ActivePolicy::new(Arc::new(
        Policy::load(&engine, DEFAULT, None).unwrap(),
    )));
    Arc::new(RegistryFollower::new(
        store, policies, engine, None, interval,
    ))
}

fn history_entry(tenant: &str, revision: u64, at_ms: u64, action: &str) -> HistoryEntry {
    HistoryEntry {
        tenant: tenant.into(),
        revision,
        at_ms,
        by: "conformance".into(),
        action: action.into(),
        digest: None,
        replaced: None,
        detail: None,
    }
}

fn components_are_stored_by_digest(rig: &RegistryRig, _tenant: &str) {
    let (store, tamper) = (rig.store, rig.tamper);
    let bytes = renamed(DEFAULT, "components");
    let digest = host_core::digest(&bytes);
    store.put_component(&digest, &bytes).unwrap();
    store.put_component(&digest, &bytes).unwrap();
    assert_eq!(store.component(&digest).unwrap(), bytes);
    assert_eq!(fetch_component(store, &digest).unwrap(), bytes);
    let absent = host_core::digest(b"never stored");
    match store.component(&absent) {
        Err(RegistryError::MissingComponent(d)) => assert_eq!(d, absent),
        other => panic!("expected a missing component, got {other:?}"),
    }
    tamper(&digest, DEFAULT);
    match fetch_component(store, &digest) {
        Err(RegistryError::DigestMismatch { expected, found }) => {
            assert_eq!(
                (expected.as_str(), found),
                (digest.as_str(), host_core::digest(DEFAULT))
            )
        }
        other => panic!("tampered bytes were not refused: {other:?}"),
    }
}

/// What an upload (or the registry function's validation) stores beside a component so that a
/// host's first load deserializes: kept per engine, absent for another engine, and the engine
/// and digest never become a path or a key outside the store's prefix.
fn precompiled_artifacts_are_kept_per_engine(rig: &RegistryRig, _tenant: &str) {
    let store = rig.store;
    let digest = host_core::digest(&renamed(DEFAULT, "precompiled"));
    let (engine, other) = ("00c0ffee00c0ffee", "0badc0de0badc0de");
    assert_eq!(store.precompiled(engine, &digest).unwrap(), None);
    assert!(
        store
            .put_precompiled(engine, &digest, b"native code")
            .unwrap()
    );
    assert_eq!(
        store.precompiled(engine, &digest).unwrap().as_deref(),
        Some(&b"native code"[..])
    );
    assert_eq!(store.precompiled(other, &digest).unwrap(), None);
    for (engine, digest) in [("../components", digest.as_str()), (engine, "../x")] {
        match store.put_precompiled(engine, digest, b"x") {
            Err(RegistryError::Refused(_)) => {}
            other => panic!("{engine:?} {digest:?} was not refused: {other:?}"),
        }
    }
}

fn versions_are_written_once(rig: &RegistryRig, tenant: &str) {
    let store = rig.store;
    let version = PolicyVersion {
        tenant: tenant.into(),
        digest: host_core::digest(DEFAULT),
        label: Some("first".into()),
        description: Policy::load(&serving_engine(), DEFAULT, None)
            .unwrap()
            .description()
            .clone(),
        size: DEFAULT.len() as u64,
        uploaded_at_ms: 1,
        uploaded_by: "conformance".into(),
        law_check: host_core::registry::LawCheckRecord { seed: 1, cases: 1 },
        // The signature is stored and read back whole.
        signature: Some(host_core::registry::PolicySignature {
            key_id: "0123456789abcdef".into(),
            signature: "ab".repeat(64),
        }),
    };
    assert!(store.versions(tenant).unwrap().is_empty());
    assert!(store.put_version(&version).unwrap(), "created");
    let again = PolicyVersion {
        uploaded_at_ms: 2,
        uploaded_by: "someone else".into(),
        ..version.clone()
    };
    assert!(!store.put_version(&again).unwrap(), "not created twice");
    assert_eq!(
        store.versions(tenant).unwrap(),
        std::slice::from_ref(&version),
        "the first record stands"
    );
    // Versions are per tenant: the same digest is another tenant's own record.
    let copy = PolicyVersion {
        tenant: format!("{tenant}-copy"),
        ..version.clone()
    };
    assert!(store.put_version(&copy).unwrap());
    assert_eq!(store.versions(&copy.tenant).unwrap(), [copy]);
    assert_eq!(store.versions(tenant).unwrap(), [version]);
}

fn a_taken_label_is_refused(rig: &RegistryRig, tenant: &str) {
    let (_, taken) = rig.reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    let rival = std::fs::read(guests::KEEP_LOCAL).unwrap();
    a_taken_label_is_refused_by_the_store(rig.store, &taken, &rival);
}

/// What keeps two operators from uploading different policies under one label at the same
/// moment: both pass `upload`'s early check (neither version is recorded yet), so the store's
/// `put_version` must take the label atomically with the record. This plays the second
/// uploader, after the first one's version `taken` (labelled) was recorded.
fn a_taken_label_is_refused_by_the_store(
    store: &dyn PolicyRegistry,
    taken: &PolicyVersion,
    other_bytes: &[u8],
) {
    let label = taken.label.clone().expect("the first version has a label");
    let before = store.versions(&taken.tenant).unwrap().len();
    let rival = PolicyVersion {
        digest: host_core::digest(other_bytes),
        ..taken.clone()
    };
    store.put_component(&rival.digest, other_bytes).unwrap();
    match store.put_version(&rival) {
        Err(RegistryError::LabelTaken {
            digest, label: l, ..
        }) => {
            assert_eq!(
                (digest.as_str(), l.as_str()),
                (taken.digest.as_str(), label.as_str())
            )
        }
        other => panic!("a second version under label {label:?} was not refused: {other:?}"),
    }
    assert_eq!(
        store.versions(&taken.tenant).unwrap().len(),
        before,
        "the refused version was recorded anyway"
    );
    // The first version again (a retried upload) is no change and no error; a new label for
    // the other bytes is accepted.
    assert!(!store.put_version(taken).unwrap());
    let relabelled = PolicyVersion {
        label: Some(format!("{label}-other")),
        ..rival
    };
    assert!(store.put_version(&relabelled).unwrap());
    assert_eq!(store.versions(&taken.tenant).unwrap().len(), before + 1);
}

fn state_changes_by_compare_and_swap(rig: &RegistryRig, tenant: &str) {
    let store = rig.store;
    assert_eq!(store.state(tenant).unwrap(), None);
    assert!(store.history(tenant).unwrap().is_empty());
    let state = |revision: u64, config: &str| TenantState {
        revision,
        config: config.into(),
        // The trusted keys are part of the state, read back whole.
        trusted_keys: vec![host_core::registry::TrustedKey {
            key_id: "0123456789abcdef".into(),
            public_key: "cd".repeat(32),
            added_at_ms: revision,
            added_by: "conformance".into(),
        }],
        updated_at_ms: revision,
        updated_by: "conformance".into(),
        ..TenantState::new(tenant)
    };
    let (s1, e1) = (
        state(1, r#"{"n":1}"#),
        history_entry(tenant, 1, 10, "config"),
    );
    store.put_state(&s1, 0, &e1).unwrap();
    assert_eq!(store.state(tenant).unwrap().as_ref(), Some(&s1));
    // A writer that read `read` while `stored` is stored is refused, and told what it found.
    let refused = |read: u64, stored: u64| {
        let rival = state(read + 1, r#"{"rival":true}"#);
        let entry = history_entry(tenant, read + 1, 10 * stored + 1, "config");
        match store.put_state(&rival, read, &entry) {
            Err(RegistryError::Conflict {
                expected, found, ..
            }) => assert_eq!((expected, found), (read, stored)),
            other => panic!("a writer that read revision {read} was not refused: {other:?}"),
        }
    };
    refused(0, 1);
    let (s2, e2) = (
        state(2, r#"{"n":2}"#),
        history_entry(tenant, 2, 20, "config"),
    );
    store.put_state(&s2, 1, &e2).unwrap();
    refused(1, 2);
    refused(0, 2);
    assert_eq!(store.state(tenant).unwrap().as_ref(), Some(&s2));
    assert_eq!(
        store.history(tenant).unwrap(),
        [e1.clone(), e2.clone()],
        "one entry per change; none for the refused ones"
    );
    // An upload's entry changes no state.
    let upload = history_entry(tenant, 0, 30, "upload");
    store.append_history(&upload).unwrap();
    assert_eq!(store.history(tenant).unwrap(), [e1, e2, upload]);
    assert_eq!(store.state(tenant).unwrap(), Some(s2));
}

fn shadow_comparisons_are_counted(rig: &RegistryRig, tenant: &str) {
    let store = rig.store;
    let (active, candidate, other) = (
        host_core::digest(b"active"),
        host_core::digest(b"candidate"),
        host_core::digest(b"other"),
    );
    // Something in the tenant's records besides the comparisons.
    store
        .append_history(&history_entry(tenant, 0, 1, "upload"))
        .unwrap();
    let comparison = |n: u64, agreed: bool| ShadowComparison {
        tenant: tenant.into(),
        party_id: format!("p{n}"),
        region: REGION.into(),
        at_ms: n,
        active: active.clone(),
        candidate: candidate.clone(),
        relation: Relation::Concurrent,
        agreed,
        active_outcome: (!agreed).then(|| ShadowOutcome {
            decision: "keep-local".into(),
            party: None,
            reason: None,
        }),
        candidate_outcome: (!agreed).then(|| ShadowOutcome {
            decision: "rejected".into(),
            party: None,
            reason: Some("the candidate refused".into()),
        }),
        conflict: None,
    };
    let disagreement = comparison(2, false);
    for c in [
        comparison(1, true),
        disagreement.clone(),
        comparison(3, true),
    ] {
        store.record_shadow(&c).unwrap();
    }
    assert_eq!(
        store.shadow_summary(tenant, &candidate).unwrap(),
        ShadowSummary {
            compared: 3,
            disagreed: 1,
            disagreements: vec![disagreement],
        }
    );
    assert_eq!(
        store.shadow_summary(tenant, &other).unwrap(),
        ShadowSummary::default(),
        "another candidate has its own counters"
    );
}

fn tenants_are_listed(rig: &RegistryRig, tenant: &str, known: &[String]) {
    let store = rig.store;
    let (a, b) = (format!("{tenant}-a"), format!("{tenant}-b"));
    store
        .append_history(&history_entry(&a, 0, 1, "upload"))
        .unwrap();
    let state = TenantState {
        revision: 1,
        ..TenantState::new(&b)
    };
    store
        .put_state(&state, 0, &history_entry(&b, 1, 1, "config"))
        .unwrap();
    let listed = store.tenants().unwrap();
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "sorted, each once");
    for t in [&a, &b] {
        assert!(listed.contains(t), "{t} is missing: {listed:?}");
    }
    // Only tenants with records: those of the checks (some derive a second one from theirs).
    assert!(
        listed.iter().all(|l| known
            .iter()
            .chain([&tenant.to_owned()])
            .any(|k| l.starts_with(k.as_str()))),
        "a tenant without records is listed: {listed:?} (the checks' tenants: {known:?})"
    );
}

fn uploads_are_idempotent_and_labelled(rig: &RegistryRig, tenant: &str) {
    let reg = &rig.reg;
    let (change, v1) = reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    assert!(change.changed);
    assert_eq!(v1.digest, host_core::digest(DEFAULT));
    assert_eq!(
        v1.description.name,
        Policy::load(&serving_engine(), DEFAULT, None)
            .unwrap()
            .description()
            .name
    );
    assert_eq!(v1.uploaded_by, "tester");
    assert_eq!(reg.store().component(&v1.digest).unwrap(), DEFAULT);

    // The same bytes again: nothing changes, no second history entry.
    let (again, _) = reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    assert!(!again.changed, "the same bytes twice change nothing");
    assert_eq!(reg.store().versions(tenant).unwrap().len(), 1);
    let uploads = || {
        reg.history(tenant)
            .unwrap()
            .iter()
            .filter(|e| e.action == "upload")
            .count()
    };
    assert_eq!(uploads(), 1);

    // A label names one version.
    match reg.upload(tenant, NA, &options("v1")) {
        Err(RegistryError::LabelTaken { digest, .. }) => assert_eq!(digest, v1.digest),
        other => panic!("expected the label to be refused, got {other:?}"),
    }
    assert_eq!(reg.store().versions(tenant).unwrap().len(), 1);
    let (_, v2) = reg.upload(tenant, NA, &options("v2")).unwrap();
    assert_eq!(reg.store().versions(tenant).unwrap().len(), 2);
    assert_eq!(uploads(), 2);

    // Found by label, digest and prefix; a short or unknown selector is refused with the versions.
    assert_eq!(reg.find(tenant, "v1").unwrap().digest, v1.digest);
    assert_eq!(reg.find(tenant, &v2.digest).unwrap().digest, v2.digest);
    assert_eq!(reg.find(tenant, &v1.digest[..8]).unwrap().digest, v1.digest);
    let err = reg.find(tenant, "v9").unwrap_err().to_string();
    assert!(err.contains("v1 ("), "{err}");

    // Tenants are names, not paths.
    assert!(matches!(
        reg.upload("../etc", DEFAULT, &options("x")),
        Err(RegistryError::BadTenant { .. })
    ));
}

/// The status of each version, by digest, as `list` shows it.
fn statuses(reg: &Registry, tenant: &str) -> (impl Fn(&str) -> VersionStatus, TenantState) {
    let (listed, state) = reg.list(tenant).unwrap();
    let status = move |d: &str| {
        listed
            .iter()
            .find(|v| v.version.digest == d)
            .unwrap_or_else(|| panic!("{d} is listed"))
            .status
    };
    (status, state)
}

fn activate_shadow_rollback_and_configure(rig: &RegistryRig, tenant: &str) {
    let reg = &rig.reg;
    let (_, v1) = reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload(tenant, NA, &options("v2")).unwrap();

    // Nothing active yet: shadow has nothing to compare with.
    assert!(matches!(
        reg.shadow(tenant, "v2"),
        Err(RegistryError::Refused(_))
    ));
    // Nothing to roll back to.
    assert!(matches!(
        reg.rollback(tenant, None, None),
        Err(RegistryError::Refused(_))
    ));

    let c = reg.activate(tenant, "v1").unwrap();
    assert!(c.changed);
    assert_eq!(
        (c.previously_active.as_deref(), c.active.as_deref()),
        (None, Some(v1.digest.as_str()))
    );
    assert!(
        !reg.activate(tenant, "v1").unwrap().changed,
        "activating twice is a no-op"
    );

    let c = reg.shadow(tenant, "v2").unwrap();
    assert_eq!(c.shadow.as_deref(), Some(v2.digest.as_str()));
    let (status, state) = statuses(reg, tenant);
    assert_eq!(state.revision, 2, "two changes so far");
    assert_eq!(status(&v1.digest), VersionStatus::Active);
    assert_eq!(status(&v2.digest), VersionStatus::Shadow);

    // Promoting the candidate ends its shadow run.
    let c = reg.activate(tenant, &v2.digest[..10]).unwrap();
    assert_eq!(c.previously_active.as_deref(), Some(v1.digest.as_str()));
    assert_eq!(c.shadow, None);

    // Rollback restores the previous version and retires the rolled-back one.
    let c = reg.rollback(tenant, None, Some("test")).unwrap();
    assert_eq!(c.active.as_deref(), Some(v1.digest.as_str()));
    let (status, state) = statuses(reg, tenant);
    assert_eq!(status(&v2.digest), VersionStatus::Retired);
    assert_eq!(status(&v1.digest), VersionStatus::Active);

    // The workflow's rollback of a candidate that is not serving retires it once.
    let (_, v3) = reg
        .upload(tenant, &renamed(DEFAULT, "v3"), &options("v3"))
        .unwrap();
    reg.shadow(tenant, "v3").unwrap();
    let c = reg
        .rollback(
            tenant,
            Some(&v3.digest),
            Some("disagreement above threshold"),
        )
        .unwrap();
    assert!(c.changed);
    assert_eq!(c.shadow, None);
    assert_eq!(
        c.active.as_deref(),
        Some(v1.digest.as_str()),
        "the active version is untouched"
    );
    assert!(
        !reg.rollback(tenant, Some(&v3.digest), None)
            .unwrap()
            .changed
    );

    // Configuration: a JSON object, normalised; anything else refused.
    assert!(reg.set_config(tenant, "[1]").is_err());
    assert!(reg.set_config(tenant, "{not json").is_err());
    let c = reg
        .set_config(tenant, r#"{ "statusAuthority": "na" }"#)
        .unwrap();
    assert!(c.changed);
    assert!(
        !reg.set_config(tenant, r#"{"statusAuthority":"na"}"#)
            .unwrap()
            .changed
    );

    // A stale writer is refused by the condition on the revision.
    let current = reg.store().state(tenant).unwrap().unwrap();
    let entry = history_entry(tenant, current.revision, 1, "config");
    match reg
        .store()
        .put_state(&current, current.revision - 1, &entry)
    {
        Err(RegistryError::Conflict { found, .. }) => assert_eq!(found, current.revision),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let actions: Vec<String> = reg
        .history(tenant)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "upload", "upload", "activate", "shadow", "activate", "rollback", "upload", "shadow",
            "rollback", "config"
        ]
    );
    let revisions: Vec<u64> = reg
        .history(tenant)
        .unwrap()
        .into_iter()
        .filter(|e| e.revision > 0)
        .map(|e| e.revision)
        .collect();
    assert_eq!(revisions, (1..=state.revision + 3).collect::<Vec<_>>());
}

fn concurrent_operators_never_overwrite_each_other(rig: &RegistryRig, tenant: &str) {
    let reg = &rig.reg;
    reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    reg.activate(tenant, "v1").unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            s.spawn(move || {
                for j in 0..5 {
                    let config = format!(r#"{{"writer":{i},"n":{j}}}"#);
                    reg.set_config(tenant, &config).unwrap();
                }
            });
        }
    });
    let history = reg.history(tenant).unwrap();
    let configs = history.iter().filter(|e| e.action == "config").count();
    assert_eq!(
        configs, 20,
        "every change made it, each under its own revision"
    );
    let state = reg.store().state(tenant).unwrap().unwrap();
    assert_eq!(state.revision, 21);
}

/// Known conflicts resolved with a candidate in shadow: the recorded disagreements are exactly
/// the conflicts on which the two versions decide differently (computed by calling both
/// directly), the data is the active version's, and a candidate that behaves identically
/// records none.
fn shadow_records_exactly_the_disagreements(rig: &RegistryRig, tenant: &str) {
    let reg = &rig.reg;
    reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    let (_, na) = reg.upload(tenant, NA, &options("na")).unwrap();
    let (_, same) = reg
        .upload(tenant, &renamed(DEFAULT, "same"), &options("same"))
        .unwrap();
    reg.activate(tenant, "v1").unwrap();

    // Conflicts: status conflicts (the versions differ) and email-vs-status ones (they agree).
    let mut conflicts = Vec::new();
    for n in 0..6 {
        conflicts.push(status_conflict(tenant, n));
        let (mut eu, mut na_v) = email_vs_status(tenant);
        eu.party_id = format!("q{n}");
        na_v.party_id = format!("q{n}");
        conflicts.push((eu, na_v));
    }
    let engine = serving_engine();
    let p_default = Policy::load(&engine, DEFAULT, None).unwrap();
    let p_na = Policy::load(&engine, NA, None).unwrap();
    let differ = conflicts
        .iter()
        .filter(|(l, r)| {
            let a = resolve_with(&p_default, "{}", REGION, l, r).unwrap();
            let b = resolve_with(&p_na, "{}", REGION, l, r).unwrap();
            a.written(l, r) != b.written(l, r)
        })
        .count();
    assert!(
        differ > 0 && differ < conflicts.len(),
        "a mixed set: {differ} of {}",
        conflicts.len()
    );

    for (candidate, expected_disagreements) in [(&na, differ), (&same, 0)] {
        reg.shadow(tenant, &candidate.digest).unwrap();
        let src = follower(reg.store().clone(), Duration::from_secs(3600));
        src.refresh(tenant).unwrap();
        let resolver = Resolver::new(src, REGION);
        for (l, r) in &conflicts {
            let resolved = resolver.resolve(l, r).unwrap();
            // The data is the active policy's.
            let active = resolve_with(&p_default, "{}", REGION, l, r).unwrap();
            assert_eq!(resolved.written(l, r), active.written(l, r));
        }
        let (digest, summary) = reg.shadow_report(tenant, None).unwrap();
        assert_eq!(digest, candidate.digest);
        assert_eq!(summary.compared, conflicts.len() as u64);
        let label = candidate.label.as_deref().unwrap();
        assert_eq!(
            summary.disagreed, expected_disagreements as u64,
            "candidate {label}"
        );
        assert_eq!(
            summary.disagreements.len(),
            expected_disagreements,
            "candidate {label}: each disagreement is kept in full"
        );
        for d in &summary.disagreements {
            let c = d.conflict.as_ref().expect("the conflict is kept");
            assert!(
                c.local.party_id.starts_with('p'),
                "only status conflicts differ"
            );
            assert_ne!(d.active_outcome, d.candidate_outcome);
        }
        reg.stop_shadow(tenant).unwrap();
    }
}

fn tampered_bytes_are_refused(rig: &RegistryRig, tenant: &str) {
    let (reg, tamper) = (&rig.reg, rig.tamper);
    let (_, v1) = reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    // Bytes of this check's own, since components are shared by digest across tenants.
    let (_, v2) = reg
        .upload(tenant, &renamed(NA, "tampered"), &options("v2"))
        .unwrap();
    reg.activate(tenant, "v1").unwrap();
    let src = follower(reg.store().clone(), Duration::from_secs(3600));
    src.refresh(tenant).unwrap();
    assert_eq!(
        src.policies().get(tenant).unwrap().policy.digest(),
        v1.digest
    );

    // Someone replaces v2's bytes in storage with v1's.
    tamper(&v2.digest, DEFAULT);
    // Activation checks the bytes first and refuses.
    let err = reg.activate(tenant, "v2").unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // Were the state changed behind the registry's back, the host refuses the bytes too.
    let mut state = reg.store().state(tenant).unwrap().unwrap();
    let expected = state.revision;
    state.active = Some(v2.digest.clone());
    state.revision += 1;
    let entry = HistoryEntry {
        digest: Some(v2.digest.clone()),
        ..history_entry(tenant, state.revision, 1, "activate")
    };
    reg.store().put_state(&state, expected, &entry).unwrap();
    let err = src.refresh(tenant).unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(
        src.policies().get(tenant).unwrap().policy.digest(),
        v1.digest,
        "the old version keeps serving"
    );
    assert_eq!(src.stats().take()[2], ("PolicyLoadFailures", 1));
}

fn a_retired_version_is_never_rolled_back_to(rig: &RegistryRig, tenant: &str) {
    let reg = &rig.reg;
    let (_, v1) = reg.upload(tenant, DEFAULT, &options("v1")).unwrap();
    reg.upload(tenant, NA, &options("v2")).unwrap();
    reg.upload(tenant, &renamed(DEFAULT, "v3"), &options("v3"))
        .unwrap();
    reg.activate(tenant, "v1").unwrap();
    reg.activate(tenant, "v2").unwrap();
    // v1 is taken out of service while it waits as the rollback target.
    assert!(reg.rollback(tenant, Some("v1"), None).unwrap().changed);
    let err = reg.rollback(tenant, None, None).unwrap_err();
    assert!(matches!(err, RegistryError::Refused(_)), "{err}");

    // Rolling back to a version that runs in shadow ends its shadow run.
    reg.activate(tenant, "v1").unwrap(); // explicitly reactivated: in service again
    reg.activate(tenant, "v3").unwrap();
    reg.shadow(tenant, "v1").unwrap();
    let c = reg.rollback(tenant, None, None).unwrap();
    assert_eq!(c.active.as_deref(), Some(v1.digest.as_str()));
    assert_eq!(c.shadow, None);
}
