//! Hot swap under load: threads resolve a tenant's conflicts while the tenant's policy is
//! swapped back and forth; no call fails, and every result is exactly what one of the two
//! versions produces, attributed to that version's digest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use host_core::{ActivePolicy, Policy, Resolver, TenantPolicies};
use integration_tests::{email_vs_status, engine, tmf};

#[test]
fn swaps_under_load_lose_no_call() {
    let engine = engine();
    let default =
        Arc::new(Policy::load(&engine, default_policy_artifact::DEFAULT_POLICY, None).unwrap());
    let na =
        Arc::new(Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap());

    // A conflict the two policies decide differently: EU moved the party to validated, NA
    // (later by the clock, earlier in the lifecycle) back to initialized.
    let (mut eu, mut na_v) = email_vs_status("acme");
    integration_tests::write(
        &mut eu,
        "eu",
        3_000,
        serde_json::json!({"status": "validated"}),
    );
    integration_tests::write(
        &mut na_v,
        "na",
        3_001,
        serde_json::json!({"status": "initialized"}),
    );

    let mut expected: HashMap<String, serde_json::Value> = HashMap::new();
    for p in [&default, &na] {
        let r = host_core::resolve_with(p, "{}", "eu", &eu, &na_v).unwrap();
        expected.insert(p.digest().to_owned(), tmf(r.party.as_ref().unwrap()));
    }
    assert_ne!(
        expected[default.digest()]["status"],
        expected[na.digest()]["status"],
        "the policies must differ"
    );

    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(default.clone()));
    let resolver = Resolver::new(policies.clone(), "eu");
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen: Vec<_> = (0..3)
        .map(|_| {
            let (resolver, stop, calls) = (resolver.clone(), stop.clone(), calls.clone());
            let (eu, na_v, expected) = (eu.clone(), na_v.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut by_digest: HashMap<String, usize> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = resolver
                        .resolve(&eu, &na_v)
                        .expect("no call fails during a swap");
                    let digest = r.policy_digest.clone().expect("a policy decided");
                    assert_eq!(
                        tmf(r.party.as_ref().unwrap()),
                        expected[&digest],
                        "result matches its policy"
                    );
                    *by_digest.entry(digest).or_default() += 1;
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                by_digest
            })
        })
        .collect();

    for i in 0..20 {
        let next = if i % 2 == 0 { &na } else { &default };
        policies.activate("acme", ActivePolicy::new(next.clone()));
        // The next call after the swap uses the new version.
        let r = resolver.resolve(&eu, &na_v).unwrap();
        assert_eq!(r.policy_digest.as_deref(), Some(next.digest()));
        std::thread::sleep(Duration::from_millis(15));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total: HashMap<String, usize> = HashMap::new();
    for h in seen {
        for (d, n) in h.join().expect("caller thread did not panic") {
            *total.entry(d).or_default() += n;
        }
    }
    assert_eq!(total.len(), 2, "both versions served calls: {total:?}");
    assert!(calls.load(Ordering::Relaxed) > 40);
}
