//! Policies whose answers follow every structural rule but are not parties the host may write:
//! values the TMF632 schema does not allow (`tests/guests/guest-schema-break`), and a result over
//! the store's item limit. Each is refused with a typed error naming the member or the limit,
//! the conflict is dead-lettered with that reason, the law checker reports it under validity,
//! and the same host keeps serving. And a policy whose packed answer is not its typed one
//! (`tests/guests/guest-two-faced`), which the law check refuses.

use std::sync::Arc;
use std::time::Duration;

use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::resolve::RESULT_LIMIT;
use host_core::store::PartyStore;
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
use host_core::{
    ActivePolicy, Call, CallFailure, Limits, Metering, Policy, PolicyEngine, ResolveFailure,
    Resolver, TenantPolicies, apply_resolution, relation,
};
use integration_tests::{
    default_policy, email_vs_status, guests, load, put_new_party, still_serves, write,
};
use policy_admin::laws::{CheckOptions, Law, check};
use policy_types::PartyVersion;
use serde_json::json;

/// The serving limits, with a deadline far above what a 12 MiB answer takes even in a debug
/// build on a loaded machine: these tests are about the size of an answer, not its time.
fn engine() -> PolicyEngine {
    let limits = Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    };
    PolicyEngine::new(limits, Metering::Epoch).unwrap()
}

/// A resolver where tenant `acme` has the default policy and tenant `evil` the schema-breaking
/// guest under `config`.
fn host(config: &str) -> Arc<Resolver> {
    let engine = engine();
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(default_policy(&engine)));
    let hostile = load(&engine, guests::SCHEMA_BREAK).unwrap();
    policies.activate("evil", ActivePolicy::new(hostile).with_config(config));
    Arc::new(Resolver::new(policies, "eu"))
}

/// The issue's case: EU changes the email, NA marks the customer deceased, and the policy
/// answers with a bogus status and a contact medium that is a string.
fn deceased_conflict(tenant: &str) -> (PartyVersion, PartyVersion) {
    let (eu, mut na) = email_vs_status(tenant);
    write(&mut na, "na", 2_500, json!({"status": "deceased"}));
    (eu, na)
}

/// A conflict on the given name, which the oversizing policy then computes.
fn given_name_conflict(tenant: &str) -> (PartyVersion, PartyVersion) {
    let (mut eu, na) = email_vs_status(tenant);
    write(&mut eu, "eu", 2_500, json!({"givenName": "Janet"}));
    (eu, na)
}

fn failure(resolver: &Resolver, (eu, na): (PartyVersion, PartyVersion)) -> (String, CallFailure) {
    match resolver.resolve(&eu, &na) {
        Err(ResolveFailure::Policy(e)) => {
            assert_eq!(e.tenant, "evil");
            (e.to_string(), e.failure)
        }
        // Not the party: it may be megabytes.
        Ok(r) => panic!("expected a policy failure, got {}", r.decision.kind()),
        Err(e) => panic!("expected a policy failure, got {e}"),
    }
}

#[test]
fn a_computed_value_the_schema_refuses_is_refused_naming_the_member() {
    let resolver = host("{}");
    for _ in 0..2 {
        let (msg, failure) = failure(&resolver, deceased_conflict("evil"));
        assert_eq!(failure.kind(), "invalid-party", "{msg}");
        let CallFailure::InvalidParty {
            resource,
            member,
            error,
        } = &failure
        else {
            panic!("{msg}");
        };
        // Both members are invalid; the first by name is named.
        assert_eq!(
            (resource.as_str(), member.as_str()),
            ("Individual", "contactMedium")
        );
        assert!(
            error.contains("/contactMedium") && error.contains("is not of type \"array\""),
            "{msg}"
        );
        assert!(msg.contains("not valid TMF632"), "{msg}");
        still_serves(&resolver);
    }
    // Without a contact medium on either side (the policy computes only members the merge
    // kept), the status is what is refused.
    let (mut eu, mut na) = deceased_conflict("evil");
    eu.fields.retain(|f| f.name != "contactMedium");
    na.fields.retain(|f| f.name != "contactMedium");
    let (msg, failure) = failure(&resolver, (eu, na));
    assert!(
        matches!(&failure, CallFailure::InvalidParty { member, error, .. }
            if member == "status" && error.contains("/status") && error.contains("is not one of")),
        "{msg}"
    );
}

fn reconcile(resolver: Arc<Resolver>) -> Reconcile<MemoryStore, MemoryDeadLetters> {
    let mut r = Reconcile::new(MemoryStore::new(), MemoryDeadLetters::default(), resolver);
    r.max_attempts = 1;
    r
}

/// Stores `local`, restores `lost` against it, and expects a dead letter naming `expected`
/// with the policy failure `kind`; nothing is written over `local`.
fn dead_lettered(
    resolver: Arc<Resolver>,
    (local, lost): (PartyVersion, PartyVersion),
    kind: &str,
    expected: &str,
) {
    let r = reconcile(resolver);
    put_new_party(r.store(), &local);
    match r.restore(&lost, 1_000_000) {
        ReconcileOutcome::DeadLettered {
            reason,
            policy_failure,
        } => {
            assert_eq!(policy_failure, Some(kind), "{reason}");
            assert!(reason.contains(expected), "{reason}");
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let letters = r.dead_letters().take();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains(expected),
        "{}",
        letters[0].reason
    );
    let stored = r
        .store()
        .party(&local.tenant, &local.party_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, local, "nothing was written");
}

#[test]
fn the_schema_breaking_conflict_is_dead_lettered_with_the_reason() {
    let resolver = host("{}");
    dead_lettered(
        resolver.clone(),
        deceased_conflict("evil"),
        "invalid-party",
        "member contactMedium of the Individual, which is not valid TMF632",
    );
    still_serves(&resolver);
}

/// The configuration that makes the guest compute a given name of `n` bytes.
fn oversize(n: usize) -> String {
    format!(r#"{{"oversize": {n}}}"#)
}

#[test]
fn an_oversized_result_is_refused_with_the_limit_named() {
    // 600 KB: within what a packed answer may be (1 MiB and four times the call), over the item
    // limit.
    let resolver = host(&oversize(600_000));
    let (msg, failure) = failure(&resolver, given_name_conflict("evil"));
    let CallFailure::TooLarge { size, limit } = failure else {
        panic!("{msg}");
    };
    assert_eq!(limit, RESULT_LIMIT);
    assert!(size > 600_000, "{msg}");
    assert!(
        msg.contains(&format!("over the {RESULT_LIMIT}-byte item limit")),
        "{msg}"
    );
    still_serves(&resolver);
    dead_lettered(
        resolver.clone(),
        given_name_conflict("evil"),
        "too-large",
        "409600-byte item limit",
    );
    still_serves(&resolver);
}

/// The issue's 12 MiB given name. Packed, the sandbox refuses the answer before reading it;
/// through the typed interface (which components without the packed export answer through) it
/// reaches the host whole, and the item limit refuses it.
#[test]
fn a_twelve_mib_given_name_is_refused_either_way() {
    let twelve = oversize(12 << 20);
    let resolver = host(&twelve);
    let (msg, failure) = failure(&resolver, given_name_conflict("evil"));
    assert_eq!(failure.kind(), "invalid-result", "{msg}");
    assert!(msg.contains("answers are limited to"), "{msg}");
    still_serves(&resolver);

    let policy = load(&engine(), guests::SCHEMA_BREAK).unwrap();
    let (eu, na) = given_name_conflict("evil");
    let ctx = policy_types::Context {
        tenant: "evil".into(),
        resolving_region: "eu".into(),
        relation: relation(&eu, &na),
        config: twelve,
    };
    let answer = policy.call(Call::new(&ctx, &eu, &na).typed()).unwrap();
    let Err(err) = apply_resolution("eu", ctx.relation, &eu, &na, &answer) else {
        panic!("a 12 MiB party was accepted");
    };
    assert!(
        matches!(err, CallFailure::TooLarge { size, limit: RESULT_LIMIT } if size > 12 << 20),
        "{err}"
    );
}

/// A given name of `n` bytes on EU's side against NA's status change.
fn large_conflict(n: usize) -> (PartyVersion, PartyVersion) {
    let (mut eu, na) = email_vs_status("acme");
    write(&mut eu, "eu", 2_500, json!({"givenName": "a".repeat(n)}));
    (eu, na)
}

#[test]
fn the_default_policy_resolves_the_largest_party_that_fits() {
    let resolver = host("{}");
    let size = |n| {
        let (eu, na) = large_conflict(n);
        resolver.resolve(&eu, &na).map(|r| {
            let party = r.party.expect("merged");
            serde_json::to_vec(&*party).unwrap().len()
        })
    };
    // The party grows byte for byte with the given name: aim at the limit exactly.
    let probe = 300_000;
    let n = probe + (RESULT_LIMIT - size(probe).unwrap());
    assert_eq!(size(n), Ok(RESULT_LIMIT), "the largest party that fits");
    match size(n + 1) {
        Err(ResolveFailure::Policy(e)) => assert_eq!(
            e.failure,
            CallFailure::TooLarge {
                size: RESULT_LIMIT + 1,
                limit: RESULT_LIMIT
            }
        ),
        other => panic!("one byte more: {other:?}"),
    }
    // What the host writes fits the in-memory store (DynamoDB's count of the item is smaller).
    let (eu, na) = large_conflict(n);
    let r = reconcile(resolver.clone());
    put_new_party(r.store(), &eu);
    assert!(
        matches!(
            r.restore(&na, 1_000_000),
            ReconcileOutcome::Resolved {
                concurrent: true,
                ..
            }
        ),
        "written"
    );
}

fn metered() -> PolicyEngine {
    PolicyEngine::new(Limits::default(), Metering::Fuel).unwrap()
}

/// Checks the guest at `path` on 64 cases from `seed` (printed), as upload does: `law` alone
/// fails, with a replayable counterexample whose message says each of `says`, and upload's
/// law gate refuses the guest naming `gate_says`. The policy checked.
fn only_law_fails(path: &str, seed: u64, law: Law, says: &[&str], gate_says: &str) -> Policy {
    let bytes = std::fs::read(path).unwrap();
    let policy = Policy::load(&metered(), &bytes, None).unwrap();
    println!("seed {seed}");
    let report = check(
        &policy,
        &CheckOptions {
            cases: 64,
            seed,
            config: "{}".to_owned(),
        },
    );
    assert_eq!(report.failed(), [law], "{:?}", report.outcomes);
    let failure = report
        .outcomes
        .iter()
        .find(|o| o.law == law)
        .and_then(|o| o.failure.as_ref())
        .unwrap();
    for part in says {
        assert!(failure.message.contains(part), "{}", failure.message);
    }
    assert!(!failure.conflicts.is_empty(), "a replayable counterexample");
    let Err(err) = policy_admin::check_laws(&bytes, "{}", 64, seed) else {
        panic!("{path} passed the upload's law gate");
    };
    assert!(err.to_string().contains(gate_says), "{err}");
    policy
}

#[test]
fn the_law_check_reports_the_schema_breaking_policy_under_validity() {
    // Symmetric and the same in every order: validity alone fails. Upload is behind the same
    // check.
    only_law_fails(
        guests::SCHEMA_BREAK,
        20261127,
        Law::Validity,
        &["invalid-party", "not valid TMF632"],
        "validity",
    );
}

/// A policy with two faces: its packed interface merges as the default policy does, its typed
/// one keeps the local version. Hosts call the packed one, so the same host keeps serving the
/// merge; but a host that does not know the packed interface calls the typed one, and regions
/// would write different parties. The law check compares the two under determinism, and
/// upload is refused.
#[test]
fn the_law_check_refuses_a_policy_whose_packed_and_typed_answers_differ() {
    // Every other law holds on the packed path the checks take.
    let policy = only_law_fails(
        guests::TWO_FACED,
        20261206,
        Law::Determinism,
        &["the packed and the typed interface answered differently"],
        "determinism",
    );
    assert!(policy.info().packed);

    // Served, it answers through the packed interface, as checked; the typed one differs.
    let engine = engine();
    let two_faced = load(&engine, guests::TWO_FACED).unwrap();
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(two_faced.clone()));
    let resolver = Resolver::new(policies, "eu");
    still_serves(&resolver);
    let (eu, na) = email_vs_status("acme");
    let ctx = policy_types::Context {
        tenant: "acme".into(),
        resolving_region: "eu".into(),
        relation: relation(&eu, &na),
        config: "{}".into(),
    };
    assert_eq!(
        two_faced.call(Call::new(&ctx, &eu, &na).typed()).unwrap(),
        policy_types::Resolution::KeepLocal
    );
}
