//! The policy registry on a local directory, and hosts following it: the registry's
//! conformance suite (components by digest, versions written once, labels, state
//! compare-and-swap with history, shadow records, tenants, and over them the operator's upload,
//! activate, roll back, shadow and configure; see `integration_tests::conformance`); then what
//! the directory shows: broken uploads refused with nothing stored, the artifact cache on a
//! cold start, and hot swap within one refresh interval while events and conflicts flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::registry::RegistryError;
use host_core::registry::local::LocalRegistry;
use host_core::store::PartyStore;
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
use host_core::{
    ArtifactCache, Limits, Metering, Policy, PolicyEngine, PolicyRegistry, RegistryFollower,
    Resolver, TenantPolicies, resolve_with,
};
use integration_tests::conformance::{self, follower};
use integration_tests::samples::example;
use integration_tests::upload_options as options;
use integration_tests::{guests, status_conflict};
use policy_admin::registry::Registry;
use serde_json::json;

const DEFAULT: &[u8] = default_policy_artifact::DEFAULT_POLICY;
const NA: &[u8] = default_policy_artifact::NA_STATUS_POLICY;

#[test]
fn the_directory_registry_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    conformance::policy_registry(
        "directory",
        Arc::new(LocalRegistry::new(&root)),
        |digest, bytes| {
            std::fs::write(
                root.join("components").join(format!("{digest}.wasm")),
                bytes,
            )
            .unwrap()
        },
    );
}

fn registry(dir: &tempfile::TempDir) -> (Registry, Arc<LocalRegistry>) {
    let store = Arc::new(LocalRegistry::new(dir.path()));
    (Registry::new(store.clone(), "tester"), store)
}

fn serving_engine() -> PolicyEngine {
    PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap()
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
fn a_cold_start_deserializes_the_cached_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let (reg, store) = registry(&dir);
    let (_, v2) = reg.upload("acme", NA, &options("v2")).unwrap();
    reg.activate("acme", "v2").unwrap();
    let start = |store: Arc<LocalRegistry>| {
        let policies = Arc::new(TenantPolicies::new());
        let src = RegistryFollower::new(
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
    let reconcile_src = follower(store.clone(), INTERVAL);
    let conflicts = {
        let stop = stop.clone();
        let resolver = Arc::new(Resolver::new(reconcile_src, "eu"));
        std::thread::spawn(move || {
            let reconcile =
                Reconcile::new(MemoryStore::new(), MemoryDeadLetters::default(), resolver);
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (eu, na) = status_conflict("acme", n);
                integration_tests::put_new_party(reconcile.store(), &eu);
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
    let ingest_src = follower(store.clone(), INTERVAL);
    let events = {
        let stop = stop.clone();
        let resolver = Arc::new(Resolver::new(ingest_src, "eu"));
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
