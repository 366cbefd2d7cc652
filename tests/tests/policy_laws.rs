//! The default policy as a component gives exactly what the merge library gives natively, on
//! generated concurrent histories; and the component honours the laws itself.

use host_core::{Call, apply_resolution, relation};
use integration_tests::{default_policy, engine};
use party_model::generate::plan;
use policy_types::{Context, PartyVersion, Resolution};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

fn ctx(relation: policy_types::Relation, config: &str) -> Context {
    Context {
        tenant: "acme".into(),
        resolving_region: "eu".into(),
        relation,
        config: config.into(),
    }
}

fn party(local: &PartyVersion, remote: &PartyVersion, r: &Resolution) -> Option<PartyVersion> {
    let rel = relation(local, remote);
    let (_, p) = apply_resolution("eu", rel, local, remote, r).expect("valid result");
    p
}

/// A seeded runner: the seed is printed so that a failure can be replayed.
fn runner(cases: u32) -> TestRunner {
    let seed: u64 = integration_tests::env_seed("LAW_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("seed {seed} (rerun with LAW_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

#[test]
fn component_matches_native_merge() {
    let engine = engine();
    let policy = default_policy(&engine);
    let configs = ["{}", r#"{"deleteRule":"update-resurrects"}"#];
    runner(200)
        .run(&(plan(2, 5), 0usize..2), |(p, c)| {
            let v = p.build();
            let rel = relation(&v[0], &v[1]);
            let ctx = ctx(rel, configs[c]);
            let native = tmf632_merge::resolve(&ctx, &v[0], &v[1]);
            let wasm = policy.call((&ctx, &v[0], &v[1])).expect("call succeeds");
            prop_assert_eq!(&wasm, &native);
            Ok(())
        })
        .unwrap();
}

#[test]
fn component_is_commutative_and_associative() {
    let engine = engine();
    let policy = default_policy(&engine);
    let merge = |a: &PartyVersion, b: &PartyVersion| -> PartyVersion {
        let ctx = ctx(policy_types::Relation::Concurrent, "{}");
        let r = policy.call((&ctx, a, b)).expect("call succeeds");
        let mut p = party(a, b, &r).expect("not rejected");
        p.origin_region = "x".into();
        p
    };
    runner(100)
        .run(&plan(3, 4), |p| {
            let v = p.build();
            prop_assert_eq!(merge(&v[0], &v[1]), merge(&v[1], &v[0]));
            let left = merge(&merge(&v[0], &v[1]), &v[2]);
            let right = merge(&v[0], &merge(&v[1], &v[2]));
            prop_assert_eq!(left, right);
            Ok(())
        })
        .unwrap();
}

/// The merge's two delete rules.
const CONFIGS: [&str; 2] = ["{}", r#"{"deleteRule":"update-resurrects"}"#];

/// The two policies built with the Rust SDK: the default and the NA-status example.
fn rust_policies(engine: &host_core::PolicyEngine) -> [std::sync::Arc<host_core::Policy>; 2] {
    let na = host_core::Policy::load(engine, default_policy_artifact::NA_STATUS_POLICY, None);
    [default_policy(engine), std::sync::Arc::new(na.unwrap())]
}

/// Both Rust policies, each asserted to declare what a law is about (`declared`, said as
/// `what`): a policy that does not declare it would not be tested by the law.
fn rust_policies_declaring(
    engine: &host_core::PolicyEngine,
    what: &str,
    declared: impl Fn(&host_core::PolicyInfo) -> bool,
) -> [std::sync::Arc<host_core::Policy>; 2] {
    let policies = rust_policies(engine);
    for p in &policies {
        assert!(declared(p.info()), "{} {what}", p.description().name);
    }
    policies
}

/// Runs `check` on 300 generated histories of three regions, each under one of the delete
/// rules with one of `policies`, on each pair of the three versions in turn.
fn on_generated_conflicts(
    policies: &[std::sync::Arc<host_core::Policy>; 2],
    check: impl Fn(&host_core::Policy, &str, &PartyVersion, &PartyVersion) -> Result<(), TestCaseError>,
) {
    runner(300)
        .run(&(plan(3, 5), 0usize..2, 0usize..2), |(p, c, which)| {
            let v = p.build();
            for (l, r) in [(&v[0], &v[1]), (&v[1], &v[2]), (&v[2], &v[0])] {
                check(&policies[which], CONFIGS[c], l, r)?;
            }
            Ok(())
        })
        .unwrap();
}

/// Two resolutions of the same conflict decide alike and write the same party, or fail alike.
fn same_outcome(
    l: &PartyVersion,
    r: &PartyVersion,
    a: Result<host_core::Resolved, host_core::ResolveError>,
    b: Result<host_core::Resolved, host_core::ResolveError>,
) -> Result<(), TestCaseError> {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(&a.decision, &b.decision);
            prop_assert_eq!(a.written(l, r), b.written(l, r));
        }
        (Err(a), Err(b)) => prop_assert_eq!(a.failure.kind(), b.failure.kind()),
        (a, b) => prop_assert!(false, "{a:?} against {b:?}"),
    }
    Ok(())
}

/// Contract 1.1: sending only what differs changes nothing. On generated histories (two and
/// three regions, both resource types, every array field, tombstones), the default and the
/// NA-status policies write the same party, with the same decision, whether they are sent the
/// differences (`resolve_with`, as the hosts call them) or both versions whole.
#[test]
fn sending_only_the_differences_changes_no_result() {
    let engine = engine();
    let policies = rust_policies_declaring(&engine, "declares 1.1", |i| i.differences_only);
    on_generated_conflicts(&policies, |policy, config, l, r| {
        let sent = host_core::resolve_with(policy, config, "eu", l, r);
        let whole = host_core::resolve_with_whole_versions(policy, config, "eu", l, r);
        same_outcome(l, r, sent, whole)
    });
}

/// The packed call (`packed-resolver`, what hosts use for SDK policies) and the typed call
/// (`resolver.resolve`) of the same component answer exactly the same, on generated histories
/// in every relation, for both Rust policies; and the hosts do take the packed path.
#[test]
fn packed_and_typed_calls_answer_the_same() {
    let engine = engine();
    let policies = rust_policies_declaring(&engine, "takes packed calls", |i| i.packed);
    on_generated_conflicts(&policies, |policy, config, l, r| {
        let ctx = ctx(relation(l, r), config);
        let packed = policy.call((&ctx, l, r)).expect("packed call succeeds");
        let typed = policy
            .call(Call::new(&ctx, l, r).typed())
            .expect("typed call succeeds");
        prop_assert_eq!(packed, typed);
        Ok(())
    });
}

/// Packed format 1 still serves policies built before contract revision 1.2: a policy that
/// declares revision 1.1 is sent format 1 (the default policy, of revision 1.2, format 2), and
/// answers every generated conflict exactly as the default policy does, through the hosts'
/// path (only what differs) and with whole versions, packed and typed alike.
#[test]
fn a_policy_of_revision_1_1_is_called_in_format_1_and_answers_as_the_default() {
    use policy_packed::Format;
    let engine = engine();
    let default = default_policy(&engine);
    let old = integration_tests::load(&engine, integration_tests::guests::REVISION_1_1).unwrap();
    assert_eq!(default.info().packed_format, Format::V2);
    assert_eq!(old.info().packed_format, Format::V1);
    assert!(old.info().packed && old.info().differences_only);
    runner(200)
        .run(&(plan(3, 5), 0usize..2), |(p, c)| {
            let v = p.build();
            for (l, r) in [(&v[0], &v[1]), (&v[1], &v[2]), (&v[2], &v[0])] {
                let sent = host_core::resolve_with(&old, CONFIGS[c], "eu", l, r);
                let want = host_core::resolve_with(&default, CONFIGS[c], "eu", l, r);
                same_outcome(l, r, sent, want)?;
                let ctx = ctx(relation(l, r), CONFIGS[c]);
                let packed = old.call((&ctx, l, r)).expect("packed call succeeds");
                prop_assert_eq!(&packed, &default.call((&ctx, l, r)).expect("call succeeds"));
                prop_assert_eq!(
                    packed,
                    old.call(Call::new(&ctx, l, r).typed()).expect("typed call")
                );
            }
            Ok(())
        })
        .unwrap();
}

/// The SDK's call arena never reuses memory a policy still holds: a policy that keeps a
/// growing cache between calls (checked on every call) answers every generated conflict as the
/// default merge does, call after call on the same warm instance, while the conflicts' sizes
/// make the arena grow.
#[test]
fn a_policy_that_keeps_memory_between_calls_finds_it_intact() {
    let engine = engine();
    let policy = integration_tests::load(&engine, integration_tests::guests::CACHE).unwrap();
    assert!(policy.info().packed);
    let calls = std::cell::Cell::new(0);
    runner(200)
        .run(&plan(3, 6), |p| {
            let v = p.build();
            for (l, r) in [(&v[0], &v[1]), (&v[1], &v[2]), (&v[2], &v[0])] {
                let ctx = ctx(relation(l, r), "{}");
                let answer = policy.call((&ctx, l, r)).expect("call succeeds");
                calls.set(calls.get() + 1);
                let native = tmf632_merge::resolve(&ctx, l, r);
                prop_assert_eq!(answer, native, "call {}", calls.get());
            }
            Ok(())
        })
        .unwrap();
    assert!(calls.get() >= 600, "{} calls", calls.get());
}
