//! The policy registry on a local directory, and hosts following it: uploads validated and
//! law-checked, idempotent, labelled; activate, roll back, shadow and configure with history;
//! broken uploads and corrupted bytes refused while the active policy keeps serving; hot swap
//! within one refresh interval while events and conflicts flow; shadow disagreements recorded
//! for a candidate that differs, none for one that behaves identically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use host_core::ingest::memory::{MemoryDeadLetters, MemoryStore};
use host_core::ingest::{Ingest, IngestConfig, Outcome, PartyStore, Provenance, StoredParty};
use host_core::local_registry::LocalRegistry;
use host_core::policy_registry::{Registry, RegistryError, UploadOptions, VersionStatus};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::{
    ActivePolicy, ArtifactCache, Limits, Metering, Policy, PolicyEngine, PolicyRegistry,
    PolicySource, Resolver, TenantPolicies, resolve_with,
};
use integration_tests::samples::example;
use integration_tests::{guests, status_conflict};
use serde_json::json;

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;
const NA: &[u8] = default_policy_artifact::NA_STATUS_POLICY;

fn options(label: &str) -> UploadOptions {
    UploadOptions {
        label: Some(label.to_owned()),
        law_cases: 32,
        seed: 7,
    }
}

fn registry(dir: &tempfile::TempDir) -> (Registry, Arc<LocalRegistry>) {
    let store = Arc::new(LocalRegistry::new(dir.path()));
    (Registry::new(store.clone(), "tester"), store)
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

fn source(store: Arc<dyn PolicyRegistry>, interval: Duration) -> Arc<PolicySource> {
    let policies = Arc::new(TenantPolicies::new());
    let engine = serving_engine();
    policies.set_default(ActivePolicy::new(Arc::new(
        Policy::load(&engine, DEFAULT, None).unwrap(),
    )));
    Arc::new(PolicySource::new(store, policies, engine, None, interval))
}

#[test]
fn uploads_are_validated_idempotent_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);

    let (change, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
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
    assert_eq!(store.component(&v1.digest).unwrap(), DEFAULT);

    // The same bytes again: nothing changes, no second history entry.
    let (again, _) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    assert!(!again.changed);
    assert_eq!(reg.store().versions("acme").unwrap().len(), 1);
    assert_eq!(
        reg.history("acme")
            .unwrap()
            .iter()
            .filter(|e| e.action == "upload")
            .count(),
        1
    );

    // A label names one version.
    match reg.upload("acme", NA, &options("v1")) {
        Err(RegistryError::LabelTaken { digest, .. }) => assert_eq!(digest, v1.digest),
        other => panic!("expected the label to be refused, got {other:?}"),
    }
    // ... also when two uploads race past that check: the store takes the label atomically.
    let rival = std::fs::read(integration_tests::guests::KEEP_LOCAL).unwrap();
    integration_tests::a_taken_label_is_refused_by_the_store(&*store, &v1, &rival);
    // Found by label, digest and prefix; a short or unknown selector is refused with the versions.
    assert_eq!(reg.find("acme", "v1").unwrap().digest, v1.digest);
    assert_eq!(reg.find("acme", &v1.digest[..8]).unwrap().digest, v1.digest);
    let err = reg.find("acme", "v9").unwrap_err().to_string();
    assert!(err.contains("v1 ("), "{err}");

    // Tenants are names, not paths.
    assert!(matches!(
        reg.upload("../etc", DEFAULT, &options("x")),
        Err(RegistryError::BadTenant { .. })
    ));
}

#[test]
fn broken_uploads_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);

    let err = reg
        .upload("acme", b"not wasm", &options("junk"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("not a WebAssembly component"),
        "{err}"
    );

    let fs_guest = std::fs::read(guests::FS).unwrap();
    let err = reg.upload("acme", &fs_guest, &options("fs")).unwrap_err();
    assert!(err.to_string().contains("imports"), "{err}");

    // Loads fine, but always keeps the local side: not commutative.
    let keep_local = std::fs::read(guests::PREFER_LOCAL).unwrap();
    match reg.upload("acme", &keep_local, &options("prefer-local")) {
        Err(RegistryError::LawFailed {
            law,
            counterexample,
            ..
        }) => {
            assert_eq!(law, "commutativity");
            assert!(!counterexample.is_empty(), "a replayable counterexample");
        }
        other => panic!("expected a law failure, got {other:?}"),
    }
    // Nothing of the refused uploads was stored.
    assert!(store.versions("acme").unwrap().is_empty());
    assert!(
        !dir.path().join("components").exists()
            || std::fs::read_dir(dir.path().join("components"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn activate_rollback_shadow_and_config_change_state_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = registry(&dir);
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();

    // Nothing active yet: shadow has nothing to compare with.
    assert!(matches!(
        reg.shadow("acme", "v2"),
        Err(RegistryError::Refused(_))
    ));
    // Nothing to roll back to.
    assert!(matches!(
        reg.rollback("acme", None, None),
        Err(RegistryError::Refused(_))
    ));

    let c = reg.activate("acme", "v1").unwrap();
    assert!(c.changed);
    assert_eq!(
        (c.previously_active.as_deref(), c.active.as_deref()),
        (None, Some(v1.digest.as_str()))
    );
    assert!(
        !reg.activate("acme", "v1").unwrap().changed,
        "activating twice is a no-op"
    );

    let c = reg.shadow("acme", "v2").unwrap();
    assert_eq!(c.shadow.as_deref(), Some(v2.digest.as_str()));
    let (listed, _) = reg.list("acme").unwrap();
    let status = |d: &str| {
        listed
            .iter()
            .find(|v| v.version.digest == d)
            .unwrap()
            .status
    };
    assert_eq!(status(&v1.digest), VersionStatus::Active);
    assert_eq!(status(&v2.digest), VersionStatus::Shadow);

    // Promoting the candidate ends its shadow run.
    let c = reg.activate("acme", &v2.digest[..10]).unwrap();
    assert_eq!(c.previously_active.as_deref(), Some(v1.digest.as_str()));
    assert_eq!(c.shadow, None);

    // Rollback restores the previous version and retires the rolled-back one.
    let c = reg.rollback("acme", None, Some("test")).unwrap();
    assert_eq!(c.active.as_deref(), Some(v1.digest.as_str()));
    let (listed, state) = reg.list("acme").unwrap();
    let status = |d: &str| {
        listed
            .iter()
            .find(|v| v.version.digest == d)
            .unwrap()
            .status
    };
    assert_eq!(status(&v2.digest), VersionStatus::Retired);
    assert_eq!(status(&v1.digest), VersionStatus::Active);

    // The workflow's rollback of a candidate that is not serving retires it once.
    let (_, v3) = reg
        .upload("acme", &renamed(DEFAULT, "v3"), &options("v3"))
        .unwrap();
    reg.shadow("acme", "v3").unwrap();
    let c = reg
        .rollback(
            "acme",
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
        !reg.rollback("acme", Some(&v3.digest), None)
            .unwrap()
            .changed
    );

    // Configuration: a JSON object, normalised; anything else refused.
    assert!(reg.set_config("acme", "[1]").is_err());
    assert!(reg.set_config("acme", "{not json").is_err());
    let c = reg
        .set_config("acme", r#"{ "statusAuthority": "na" }"#)
        .unwrap();
    assert!(c.changed);
    assert!(
        !reg.set_config("acme", r#"{"statusAuthority":"na"}"#)
            .unwrap()
            .changed
    );

    let actions: Vec<String> = reg
        .history("acme")
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
        .history("acme")
        .unwrap()
        .into_iter()
        .filter(|e| e.revision > 0)
        .map(|e| e.revision)
        .collect();
    assert_eq!(revisions, (1..=state.revision + 3).collect::<Vec<_>>());
}

#[test]
fn concurrent_operators_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = registry(&dir);
    reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    reg.activate("acme", "v1").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                for j in 0..5 {
                    let config = format!(r#"{{"writer":{i},"n":{j}}}"#);
                    reg.set_config("acme", &config).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let history = reg.history("acme").unwrap();
    let configs = history.iter().filter(|e| e.action == "config").count();
    assert_eq!(
        configs, 20,
        "every change made it, each under its own revision"
    );
    let state = reg.store().state("acme").unwrap().unwrap();
    assert_eq!(state.revision, 21);
}

#[test]
fn corrupted_bytes_are_refused_and_the_active_policy_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v1").unwrap();
    let src = source(store.clone(), Duration::from_secs(3600));
    assert!(src.refresh("acme").is_ok());
    assert_eq!(
        src.policies().get("acme").unwrap().policy.digest(),
        v1.digest
    );

    // Someone replaces v2's bytes in storage with v1's.
    std::fs::write(
        dir.path()
            .join("components")
            .join(format!("{}.wasm", v2.digest)),
        DEFAULT,
    )
    .unwrap();
    // Activation checks the bytes first and refuses.
    let err = reg.activate("acme", "v2").unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // Were the state changed behind the registry's back, the host refuses the bytes too.
    let mut state = store.state("acme").unwrap().unwrap();
    let expected = state.revision;
    state.active = Some(v2.digest.clone());
    state.revision += 1;
    store
        .put_state(
            &state,
            expected,
            &host_core::policy_registry::HistoryEntry {
                tenant: "acme".into(),
                revision: state.revision,
                at_ms: 0,
                by: "intruder".into(),
                action: "activate".into(),
                digest: Some(v2.digest.clone()),
                replaced: None,
                detail: None,
            },
        )
        .unwrap();
    let err = src.refresh("acme").unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(
        src.policies().get("acme").unwrap().policy.digest(),
        v1.digest,
        "the old version keeps serving"
    );
    assert_eq!(src.stats().take()[2], ("PolicyLoadFailures", 1));
}

#[test]
fn a_cold_start_deserializes_the_cached_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v2").unwrap();
    let start = |store: Arc<LocalRegistry>| {
        let policies = Arc::new(TenantPolicies::new());
        let src = PolicySource::new(
            store,
            policies,
            serving_engine(),
            Some(ArtifactCache::new(cache_dir.path())),
            Duration::from_secs(10),
        );
        src.refresh("acme").unwrap();
        src
    };
    let first = start(store.clone());
    let p = first.policies().get("acme").unwrap();
    assert_eq!(p.policy.digest(), v2.digest);
    assert!(!p.policy.info().from_cache, "the first load compiles");
    let second = start(store);
    assert!(
        second
            .policies()
            .get("acme")
            .unwrap()
            .policy
            .info()
            .from_cache,
        "a second process deserializes"
    );
}

/// Events through the ingest path and conflicts through the reconcile path, each on its own
/// thread, while v2 is activated and then rolled back: no event fails, every conflict is
/// resolved by the version that was active (by its digest and by its decision), and one
/// refresh interval after each change every call uses the new version.
#[test]
fn hot_swap_while_events_and_conflicts_flow() {
    const INTERVAL: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v1").unwrap();

    // What each version writes for the status conflict.
    let engine = serving_engine();
    let expected_status = |bytes: &[u8]| {
        let p = Policy::load(&engine, bytes, None).unwrap();
        let (eu, na) = status_conflict("acme", 0);
        let r = resolve_with(&p, "{}", "eu", &eu, &na).unwrap();
        integration_tests::tmf(r.party.as_ref().unwrap())["status"].clone()
    };
    let (status_v1, status_v2) = (expected_status(DEFAULT), expected_status(NA));
    assert_ne!(status_v1, status_v2, "the versions must decide differently");

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // Conflicts: the stored item is EU's version; NA's overwritten version is restored.
    let reconcile_src = source(store.clone(), INTERVAL);
    let conflicts = {
        let stop = stop.clone();
        let resolver = Arc::new(Resolver::from_source(reconcile_src, "eu"));
        std::thread::spawn(move || {
            let reconcile =
                Reconcile::new(MemoryStore::new(), MemoryDeadLetters::default(), resolver);
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (eu, na) = status_conflict("acme", n);
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
                let at = started.elapsed();
                let outcome = reconcile.restore(&na, 10_000);
                let digest = match outcome {
                    ReconcileOutcome::Resolved {
                        policy_digest: Some(d),
                        ..
                    } => d,
                    other => panic!("conflict {n} was not resolved by a policy: {other:?}"),
                };
                let stored = reconcile
                    .store()
                    .party("acme", &format!("p{n}"))
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    stored.provenance.policy_digest.as_deref(),
                    Some(digest.as_str())
                );
                seen.push((
                    at,
                    digest,
                    integration_tests::tmf(&stored.version)["status"].clone(),
                ));
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, reconcile.dead_letters().letters.lock().unwrap().len())
        })
    };
    // Events: creates and changes of parties of the same tenant, through ingest with a
    // resolver of its own that follows the registry.
    let ingest_src = source(store.clone(), INTERVAL);
    let events = {
        let stop = stop.clone();
        let resolver = Arc::new(Resolver::from_source(ingest_src, "eu"));
        std::thread::spawn(move || {
            let ingest = Ingest::new(
                MemoryStore::new(),
                MemoryDeadLetters::default(),
                IngestConfig::new("eu"),
            )
            .with_resolver(resolver);
            let mut applied = 0;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut e = example("IndividualCreateEvent_request");
                e["eventId"] = json!(format!("evt-{n}"));
                e["event"]["individual"]["id"] = json!(format!("i{n}"));
                match ingest.handle("acme", &e, None, 1_700_000_000_000 + n, u64::MAX) {
                    Outcome::Applied { replay: false, .. } => applied += 1,
                    other => panic!("event {n} was not applied: {other:?}"),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let stored = (1..=n)
                .filter(|i| {
                    ingest
                        .store()
                        .party("acme", &format!("i{i}"))
                        .unwrap()
                        .is_some()
                })
                .count();
            (
                n,
                applied,
                stored,
                ingest.dead_letters().letters.lock().unwrap().len(),
            )
        })
    };

    std::thread::sleep(INTERVAL * 2);
    reg.activate("acme", "v2").unwrap();
    let activated = started.elapsed();
    std::thread::sleep(INTERVAL * 3);
    reg.rollback("acme", None, Some("test")).unwrap();
    let rolled_back = started.elapsed();
    std::thread::sleep(INTERVAL * 3);
    stop.store(true, Ordering::Relaxed);

    let (seen, letters) = conflicts.join().unwrap();
    let (sent, applied, stored, event_letters) = events.join().unwrap();
    assert_eq!(
        (applied, stored as u64, event_letters),
        (sent, sent, 0),
        "no event failed or was lost"
    );
    assert_eq!(letters, 0, "no conflict was dead-lettered");

    for (at, digest, status) in &seen {
        // Each result is exactly what the version named by its digest writes.
        let expected = if *digest == v1.digest {
            &status_v1
        } else {
            assert_eq!(digest, &v2.digest);
            &status_v2
        };
        assert_eq!(status, expected, "conflict at {at:?} decided by {digest}");
        // One interval after a change, only the new version serves.
        if *at >= activated + INTERVAL && *at < rolled_back {
            assert_eq!(digest, &v2.digest, "at {at:?}, activated at {activated:?}");
        }
        if *at >= rolled_back + INTERVAL {
            assert_eq!(
                digest, &v1.digest,
                "at {at:?}, rolled back at {rolled_back:?}"
            );
        }
        if *at < activated {
            assert_eq!(digest, &v1.digest, "before the activation at {activated:?}");
        }
    }
    let by = |d: &str| seen.iter().filter(|(_, x, _)| x == d).count();
    assert!(
        by(&v1.digest) > 0 && by(&v2.digest) > 0,
        "both versions served: {} / {}",
        by(&v1.digest),
        by(&v2.digest)
    );
}

/// Known conflicts resolved with a candidate in shadow: the recorded disagreements are exactly
/// the conflicts on which the two versions decide differently (computed by calling both
/// directly), the data is the active version's, and a candidate that behaves identically
/// records none.
#[test]
fn shadow_records_exactly_the_disagreements() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);
    reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    let (_, na) = reg.upload("acme", NA, &options("na")).unwrap();
    let (_, same) = reg
        .upload("acme", &renamed(DEFAULT, "same"), &options("same"))
        .unwrap();
    reg.activate("acme", "v1").unwrap();

    // Conflicts: status conflicts (the versions differ) and email-vs-status ones (they agree).
    let mut conflicts = Vec::new();
    for n in 0..6 {
        conflicts.push(status_conflict("acme", n));
        let (mut eu, mut na_v) = integration_tests::email_vs_status("acme");
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
            let a = resolve_with(&p_default, "{}", "eu", l, r).unwrap();
            let b = resolve_with(&p_na, "{}", "eu", l, r).unwrap();
            a.written(l, r) != b.written(l, r)
        })
        .count();
    assert!(
        differ > 0 && differ < conflicts.len(),
        "a mixed set: {differ} of {}",
        conflicts.len()
    );

    for (candidate, expected_disagreements) in [(&na, differ), (&same, 0)] {
        reg.shadow("acme", &candidate.digest).unwrap();
        let src = source(store.clone(), Duration::from_secs(3600));
        src.refresh("acme").unwrap();
        let resolver = Resolver::from_source(src, "eu");
        for (l, r) in &conflicts {
            let resolved = resolver.resolve(l, r).unwrap();
            // The data is the active policy's.
            let active = resolve_with(&p_default, "{}", "eu", l, r).unwrap();
            assert_eq!(resolved.written(l, r), active.written(l, r));
        }
        let (digest, summary) = reg.shadow_report("acme", None).unwrap();
        assert_eq!(digest, candidate.digest);
        assert_eq!(summary.compared, conflicts.len() as u64);
        assert_eq!(
            summary.disagreed,
            expected_disagreements as u64,
            "candidate {}",
            candidate.label.as_deref().unwrap()
        );
        for d in &summary.disagreements {
            let c = d.conflict.as_ref().expect("the conflict is kept");
            assert!(
                c.local.party_id.starts_with('p'),
                "only status conflicts differ"
            );
            assert_ne!(d.active_outcome, d.candidate_outcome);
        }
        reg.stop_shadow("acme").unwrap();
    }
}

#[test]
fn a_retired_version_is_never_rolled_back_to() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = registry(&dir);
    let (_, v1) = reg.upload("acme", DEFAULT, &options("v1")).unwrap();
    reg.upload("acme", NA, &options("v2")).unwrap();
    reg.upload("acme", &renamed(DEFAULT, "v3"), &options("v3"))
        .unwrap();
    reg.activate("acme", "v1").unwrap();
    reg.activate("acme", "v2").unwrap();
    // v1 is taken out of service while it waits as the rollback target.
    assert!(reg.rollback("acme", Some("v1"), None).unwrap().changed);
    let err = reg.rollback("acme", None, None).unwrap_err();
    assert!(matches!(err, RegistryError::Refused(_)), "{err}");

    // Rolling back to a version that runs in shadow ends its shadow run.
    reg.activate("acme", "v1").unwrap(); // explicitly reactivated: in service again
    reg.activate("acme", "v3").unwrap();
    reg.shadow("acme", "v1").unwrap();
    let c = reg.rollback("acme", None, None).unwrap();
    assert_eq!(c.active.as_deref(), Some(v1.digest.as_str()));
    assert_eq!(c.shadow, None);
}
