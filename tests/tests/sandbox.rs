//! Hostile and broken policies against the host library: each is stopped or refused with a
//! typed error naming the tenant, the policy and the cause, and the same host then resolves a
//! normal conflict correctly.

use std::sync::Arc;
use std::time::Duration;

use host_core::{
    ActivePolicy, ArtifactCache, Budget, Call, CallFailure, Decision, LoadError, Policy,
    ResolveFailure, Resolver, TenantPolicies,
};
use integration_tests::{default_policy, email_vs_status, engine, guests, load, still_serves};

/// A resolver where tenant `acme` has the default policy and tenant `evil` has `hostile`.
fn host(hostile: Arc<Policy>) -> Resolver {
    let engine = engine();
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(default_policy(&engine)));
    policies.activate("evil", ActivePolicy::new(hostile));
    Resolver::new(policies, "eu")
}

fn failure_of(resolver: &Resolver) -> (String, CallFailure) {
    let (eu, na) = email_vs_status("evil");
    match resolver.resolve(&eu, &na) {
        Err(ResolveFailure::Policy(e)) => {
            assert_eq!(e.tenant, "evil");
            assert_eq!(e.digest.len(), 64, "the error names the policy digest");
            (e.to_string(), e.failure)
        }
        other => panic!("expected a policy failure, got {other:?}"),
    }
}

/// Tenant evil's `policy` behind a resolver: each of `calls` calls fails as `check` expects
/// (given the error's message and its failure), and after each the host still serves tenant
/// acme.
fn each_call_fails(policy: Arc<Policy>, calls: usize, check: impl Fn(&str, CallFailure)) {
    let resolver = host(policy);
    for _ in 0..calls {
        let (msg, failure) = failure_of(&resolver);
        check(&msg, failure);
        still_serves(&resolver);
    }
}

/// Tenant evil's `policy` behind a resolver: its one answer is refused as an invalid result
/// whose message says each of `says`, and the host still serves tenant acme.
fn answer_is_refused(policy: Arc<Policy>, says: &[&str]) {
    each_call_fails(policy, 1, |msg, failure| {
        assert!(matches!(failure, CallFailure::InvalidResult(_)), "{msg}");
        for said in says {
            assert!(msg.contains(said), "{said:?} in {msg}");
        }
    });
}

/// Tenant evil's guest policy `path`, loaded by the test engine.
fn guest(path: &str) -> Arc<Policy> {
    load(&engine(), path).unwrap()
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline() {
    each_call_fails(guest(guests::LOOP), 2, |msg, failure| {
        assert!(matches!(failure, CallFailure::Timeout(_)), "{msg}");
        assert!(msg.contains("deadline"), "{msg}");
    });
}

#[test]
fn memory_bomb_is_stopped_by_the_cap() {
    each_call_fails(guest(guests::MEMBOMB), 1, |msg, failure| {
        assert!(matches!(failure, CallFailure::MemoryExhausted(_)), "{msg}");
        assert!(msg.contains("cap"), "{msg}");
    });
}

/// An instance whose memory creeps up (a MiB a call here; componentize-js's heap by a few KiB)
/// is retired before it reaches the cap: two hundred calls on one policy all resolve, where a
/// single reused instance would fail from about the sixtieth.
#[test]
fn an_instance_whose_memory_creeps_up_is_retired_before_the_cap() {
    let resolver = host(guest(guests::LEAK));
    let (eu, na) = email_vs_status("evil");
    for i in 0..200 {
        let resolved = resolver
            .resolve(&eu, &na)
            .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(resolved.decision, Decision::Merged, "call {i}");
    }
    still_serves(&resolver);
}

#[test]
fn panic_is_a_trap_and_the_next_call_gets_a_fresh_instance() {
    each_call_fails(guest(guests::PANIC), 3, |msg, failure| {
        // A Rust panic in the guest ends in `unreachable`: the engine's kind of trap is kept.
        assert!(
            matches!(
                failure,
                CallFailure::Trap {
                    code: Some(host_core::sandbox::TrapCode::UnreachableCodeReached),
                    ..
                }
            ),
            "{msg}"
        );
    });
}

#[test]
fn forged_party_id_is_refused() {
    answer_is_refused(guest(guests::FORGE_PARTY), &["42-stolen"]);
}

#[test]
fn a_packed_answer_that_is_not_a_resolution_is_refused() {
    let bad = guest(guests::BAD_PACKED);
    assert!(bad.info().packed);
    answer_is_refused(
        bad,
        &[
            "packed answer is not a resolution",
            "at byte 1: unknown resolution",
        ],
    );
    // The same policy through its typed interface answers as written.
    let (eu, na) = email_vs_status("evil");
    let ctx = policy_types::Context {
        tenant: "evil".into(),
        resolving_region: "eu".into(),
        relation: policy_types::Relation::Concurrent,
        config: "{}".into(),
    };
    let bad = guest(guests::BAD_PACKED);
    assert_eq!(
        bad.call(Call::new(&ctx, &eu, &na).typed()).unwrap(),
        policy_types::Resolution::KeepLocal
    );
}

/// The case: a policy sent only what differs refers to element 9999. The host remaps a
/// policy's indices to the original versions; the refusal (what dry-run prints, and a dead
/// letter's reason) names the index the policy wrote, not the one remapping left.
#[test]
fn an_entry_reference_out_of_range_is_reported_as_the_policy_wrote_it() {
    let bad = guest(guests::BAD_ENTRY_REF);
    assert!(bad.info().differences_only, "sent only what differs");
    each_call_fails(bad.clone(), 2, |msg, failure| {
        assert!(matches!(failure, CallFailure::InvalidResult(_)), "{msg}");
        assert!(
            msg.contains("does not exist in field \"contactMedium\"")
                && msg.contains("element: 9999,"),
            "{msg}"
        );
        assert!(!msg.contains(&u32::MAX.to_string()), "{msg}");
    });
    // What dry-run calls.
    let (eu, na) = email_vs_status("evil");
    let err = host_core::resolve_with(&bad, "{}", "eu", &eu, &na).unwrap_err();
    assert!(err.to_string().contains("element: 9999,"), "{err}");
}

/// `describe` runs once, at load, under the same budget as a call: a describe that never
/// returns fails the load with the deadline (or the fuel budget) named, and the engine loads
/// and serves the next policy.
#[test]
fn a_describe_that_never_returns_fails_the_load_naming_the_deadline() {
    let engine = engine();
    let err = load(&engine, guests::DESCRIBE_LOOP).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, LoadError::Describe(CallFailure::Timeout(Budget::Deadline(d))) if *d == Duration::from_millis(50)),
        "{msg}"
    );
    assert!(
        msg.contains("describe did not answer: the policy ran past its deadline (deadline 50ms)"),
        "{msg}"
    );
    assert!(!msg.contains("wasm trap"), "{msg}");
    // The same engine loads the next policy and serves with it.
    still_serves(&host(default_policy(&engine)));

    // The metered engine of law checks and uploads names its fuel budget.
    let metered =
        host_core::PolicyEngine::new(host_core::Limits::default(), host_core::Metering::Fuel)
            .unwrap();
    let err = load(&metered, guests::DESCRIBE_LOOP).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::Describe(CallFailure::Timeout(Budget::Fuel(_)))
        ),
        "{err}"
    );
}

#[test]
fn forged_clock_is_refused() {
    answer_is_refused(guest(guests::FORGE_CLOCK), &["not the join"]);
}

#[test]
fn wasi_filesystem_import_is_refused_at_load() {
    let engine = engine();
    match load(&engine, guests::FS) {
        Err(LoadError::ForbiddenImports { imports, .. }) => {
            assert!(
                imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
                "{imports:?}"
            );
            let msg = LoadError::ForbiddenImports {
                imports,
                allowed: "nothing".into(),
            }
            .to_string();
            assert!(msg.contains("wasi:filesystem"), "{msg}");
        }
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

#[test]
fn not_a_component_and_oversized_are_refused() {
    let engine = engine();
    let core_module = b"\0asm\x01\0\0\0";
    assert!(matches!(
        Policy::load(&engine, core_module, None),
        Err(LoadError::NotAComponent { .. })
    ));
    assert!(matches!(
        Policy::load(&engine, b"hello", None),
        Err(LoadError::NotAComponent { .. })
    ));
    let small = host_core::Limits {
        max_component_bytes: 1000,
        ..host_core::Limits::default()
    };
    let tiny_engine = host_core::PolicyEngine::new(small, host_core::Metering::Epoch).unwrap();
    let err =
        Policy::load(&tiny_engine, default_policy_artifact::DEFAULT_POLICY, None).unwrap_err();
    assert!(err.to_string().contains("the limit is 1000 bytes"), "{err}");
}

#[test]
fn default_policy_imports_nothing_and_describes_itself() {
    let engine = engine();
    let policy = default_policy(&engine);
    let info = policy.info();
    assert!(info.imports.is_empty(), "{:?}", info.imports);
    assert_eq!(
        info.exports,
        vec![
            policy_types::RESOLVER_INTERFACE.to_owned(),
            policy_types::PACKED_INTERFACE.to_owned()
        ]
    );
    assert!(info.packed);
    assert_eq!(info.description.name, "tmf632-default");
    assert_eq!(
        info.description.contract_version,
        policy_types::CONTRACT_REVISION
    );
    assert!(
        info.differences_only,
        "revision 1.1 and later: sent only what differs"
    );
    assert_eq!(
        info.packed_format,
        policy_packed::Format::V2,
        "revision 1.2 and later: packed format 2"
    );
    assert_eq!(
        info.digest,
        host_core::digest(default_policy_artifact::DEFAULT_POLICY)
    );
}

#[test]
fn second_load_deserializes_from_the_cache() {
    let engine = engine();
    let dir = std::env::temp_dir().join(format!("policy-cache-test-{}", std::process::id()));
    let cache = ArtifactCache::new(&dir);
    let bytes = default_policy_artifact::DEFAULT_POLICY;
    let first = Policy::load(&engine, bytes, Some(&cache)).unwrap();
    assert!(!first.info().from_cache);
    assert!(cache.contains(&engine, first.digest()));
    let second = Policy::load(&engine, bytes, Some(&cache)).unwrap();
    assert!(second.info().from_cache);
    let (eu, na) = email_vs_status("acme");
    let a = host_core::resolve_with(&first, "{}", "eu", &eu, &na).unwrap();
    let b = host_core::resolve_with(&second, "{}", "eu", &eu, &na).unwrap();
    assert_eq!(a, b);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn dominated_versions_are_decided_by_the_host_without_a_call_or_a_copy() {
    // A policy that traps on every call: a dominated pair must not reach it.
    let engine = engine();
    let panicking = load(&engine, guests::PANIC).unwrap();
    let (eu, _) = email_vs_status("acme");
    let mut later = eu.clone();
    integration_tests::write(
        &mut later,
        "na",
        3_000,
        serde_json::json!({"givenName": "Janet"}),
    );
    let r = host_core::resolve_with(&panicking, "{}", "eu", &eu, &later).expect("no policy call");
    assert_eq!(r.relation, policy_types::Relation::RemoteDominates);
    assert_eq!(r.decision, Decision::TakeRemote);
    assert!(r.policy_digest.is_none() && r.party.is_none());
    assert!(
        std::ptr::eq(r.written(&eu, &later).unwrap(), &later),
        "the winner is the input itself"
    );
    // A resolver decides them before it looks for the tenant's policy: a tenant without one
    // still settles dominated pairs, and only a concurrent pair needs the policy.
    let resolver = Resolver::new(Arc::new(host_core::TenantPolicies::new()), "eu");
    let r = resolver
        .resolve(&later, &eu)
        .expect("decided without a policy");
    assert_eq!(r.decision, Decision::KeepLocal);
    let (a, b) = email_vs_status("acme");
    assert!(matches!(
        resolver.resolve(&a, &b),
        Err(host_core::ResolveFailure::NoPolicy(_))
    ));
}
