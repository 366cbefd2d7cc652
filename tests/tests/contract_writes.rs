//! Contract revision 1.3: a policy that declares it is sent each version's writes (packed
//! format 3), and through them can tell, for every field, which side changed it since the
//! other saw it (`policy_sdk::fields::change`) and how much of a region a write had seen
//! (`policy_sdk::fields::seen`). The host sends them from the resolver and from reconcile,
//! which reads them from the stored item and the stream's old image.
//!
//! The guests (`tests/guests/guest-field-changes`, and `guest-typed-writes` for a policy called
//! through typed values as Python and JavaScript ones are) reject every conflict with what
//! they were told, so the tests read it from the reason.

use std::sync::Arc;

use host_core::conflict::CapturedConflict;
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
use host_core::store::{PartyStore, Provenance, StoredParty};
use host_core::{ActivePolicy, Decision, Resolver, TenantPolicies};
use integration_tests::{Recorded, created, engine, guests, load, written};
use policy_types::PartyVersion;
use policy_types::writes::Writes;
use serde_json::json;

/// EU creates the party; NA, having seen it, moves the status to validated; EU, not having
/// seen that, changes the family name; then both change the marital status concurrently.
/// Returns EU's and NA's versions with their writes.
fn history() -> (Recorded, Recorded) {
    let base = created(json!({"givenName": "Jane", "familyName": "Doe", "status": "initialized"}));
    let na = written(&base, "na", 2_000, json!({"status": "validated"}));
    let eu = written(&base, "eu", 2_001, json!({"familyName": "Smith"}));
    let eu = written(&eu, "eu", 2_002, json!({"maritalStatus": "married"}));
    let na = written(&na, "na", 2_003, json!({"maritalStatus": "divorced"}));
    (eu, na)
}

fn resolver() -> Arc<Resolver> {
    let policy = load(&engine(), guests::FIELD_CHANGES).expect("the guest loads");
    assert_eq!(policy.info().description.contract_version, "1.3.0");
    assert_eq!(policy.info().packed_format, policy_packed::Format::V3);
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(policy));
    Arc::new(Resolver::new(policies, "eu"))
}

fn reason(decision: Decision) -> String {
    match decision {
        Decision::Rejected(reason) => reason,
        other => panic!("the guest rejects every conflict, it answered {other:?}"),
    }
}

/// What the guest answers when told the writes of [`history`], EU local: the family name
/// changed only in EU, the status only in NA (EU's is the create, which NA had seen), the
/// marital status on both sides; NA's status write had seen its own one NA write, EU's none.
/// The given name, held identically, is not sent.
const TOLD: &str = "familyName=Local maritalStatus=Both status=Remote status seen na: 0/1";

#[test]
fn a_policy_of_revision_1_3_is_told_which_side_changed_each_field() {
    let ((eu, ew), (na, nw)) = history();
    let resolver = resolver();
    let told = resolver
        .resolve_with_writes((&eu, &ew), (&na, &nw))
        .unwrap();
    assert_eq!(reason(told.decision), TOLD);

    // From NA's side the same writes, the other way round.
    let told = resolver
        .resolve_with_writes((&na, &nw), (&eu, &ew))
        .unwrap();
    assert_eq!(
        reason(told.decision),
        "familyName=Remote maritalStatus=Both status=Local status seen na: 1/0"
    );

    // Without writes (a conflict captured before they were recorded) every write is unknown.
    let told = resolver.resolve(&eu, &na).unwrap();
    assert_eq!(
        reason(told.decision),
        "familyName=Unknown maritalStatus=Unknown status=Unknown status seen na: -/-"
    );
}

/// Reconcile sends the writes it holds: the stored item's (local) and the stream's old
/// image's (the version that was overwritten); the conflict it dead-letters keeps them for
/// the redrive.
#[test]
fn reconcile_sends_the_stored_items_and_the_old_images_writes() {
    let ((eu, ew), (na, nw)) = history();
    let mut reconcile =
        Reconcile::new(MemoryStore::new(), MemoryDeadLetters::default(), resolver());
    reconcile.max_attempts = 1;
    let stored = |version: PartyVersion, writes: Writes| StoredParty {
        version,
        provenance: Provenance::default(),
        writes,
    };
    reconcile
        .store()
        .put_party(&stored(eu.clone(), ew.clone()), None)
        .unwrap();
    match reconcile.handle(&stored(na, nw.clone()), &eu, 10_000) {
        ReconcileOutcome::DeadLettered { reason, .. } => {
            assert!(reason.contains(TOLD), "{reason}")
        }
        other => panic!("expected the guest's rejection, got {other:?}"),
    }

    // The dead letter keeps both sides' writes, and a redrive of it sends them again.
    let letters = reconcile.dead_letters().take();
    assert_eq!(letters.len(), 1);
    let conflict: CapturedConflict = serde_json::from_value(letters[0].payload.clone()).unwrap();
    assert_eq!(
        (&conflict.local_writes, &conflict.remote_writes),
        (&ew, &nw)
    );
    match reconcile.redrive_conflict(&conflict, 20_000) {
        ReconcileOutcome::DeadLettered { reason, .. } => {
            assert!(reason.contains(TOLD), "{reason}")
        }
        other => panic!("expected the guest's rejection on redrive, got {other:?}"),
    }
}

/// What `guest-typed-writes` prints of [`history`]'s versions, EU's and NA's: the fields sent
/// (the given name, held identically, is not), the write behind each, and those writes'
/// contexts. EU created the party (eu:1) and then wrote the family name (eu:2) and the
/// marital status (eu:3); NA, having seen the create, wrote the status (na:1) and the marital
/// status (na:2).
const EU_SENT: &str = "sent [familyName maritalStatus status] \
    fields [familyName@eu:2 maritalStatus@eu:3 status@eu:1] tombstone - \
    writes [eu:1<[] eu:2<[eu:1] eu:3<[eu:2]]";
const NA_SENT: &str = "sent [familyName maritalStatus status] \
    fields [familyName@eu:1 maritalStatus@na:2 status@na:1] tombstone - \
    writes [eu:1<[] na:1<[eu:1] na:2<[eu:1 na:1]]";

/// A policy called through typed values (as Python and JavaScript ones are) reads the writes
/// by exporting `writes-resolver` and declaring 1.3: it is sent what differs of each version
/// and the part of each version's writes table that names it, local first.
#[test]
fn a_typed_policy_of_revision_1_3_is_sent_each_versions_writes() {
    let ((eu, ew), (na, nw)) = history();
    let policy = load(&engine(), guests::TYPED_WRITES).expect("the guest loads");
    assert!(policy.info().typed_writes, "{:?}", policy.info());
    assert!(!policy.info().packed);
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(policy));
    let resolver = Resolver::new(policies, "eu");
    let (eu_sent, na_sent) = (((&eu, &ew), EU_SENT), ((&na, &nw), NA_SENT));
    for ((local, local_sent), (remote, remote_sent)) in [(eu_sent, na_sent), (na_sent, eu_sent)] {
        let told = resolver.resolve_with_writes(local, remote).unwrap();
        assert_eq!(
            reason(told.decision),
            format!("local: {local_sent}; remote: {remote_sent}")
        );
    }
    // Without writes the tables are empty, and it is still the writes call.
    let told = resolver.resolve(&eu, &na).unwrap();
    let empty = "sent [familyName maritalStatus status] fields [] tombstone - writes []";
    assert_eq!(
        reason(told.decision),
        format!("local: {empty}; remote: {empty}")
    );

    // A field neither side changed since the fork is not sent, and neither is its own write.
    let base = created(json!({"givenName": "Jane", "status": "initialized"}));
    let base = written(&base, "eu", 1_500, json!({"birthDate": "1990-01-01"}));
    let (eu, ew) = written(&base, "eu", 2_000, json!({"givenName": "Janet"}));
    let (na, nw) = written(&base, "na", 2_001, json!({"status": "validated"}));
    let told = resolver
        .resolve_with_writes((&eu, &ew), (&na, &nw))
        .unwrap();
    assert_eq!(
        reason(told.decision),
        "local: sent [givenName status] fields [givenName@eu:3 status@eu:1] tombstone - \
         writes [eu:1<[] eu:3<[eu:2]]; \
         remote: sent [givenName status] fields [givenName@eu:1 status@na:1] tombstone - \
         writes [eu:1<[] na:1<[eu:2]]"
    );
}

/// The law gate holds a typed 1.3 policy's two calls to one answer: `guest-typed-writes`
/// answers `resolver.resolve` ("called without writes") otherwise than `writes-resolver` told
/// no writes, so a host that does not know `writes-resolver` would write another party.
#[test]
fn the_gate_refuses_a_typed_policy_whose_call_without_the_writes_interface_answers_otherwise() {
    use host_core::{Limits, Metering, Policy, PolicyEngine};
    use policy_admin::laws::{CheckOptions, Law, check};
    let metered = PolicyEngine::new(Limits::default(), Metering::Fuel).unwrap();
    let bytes = std::fs::read(guests::TYPED_WRITES).unwrap();
    let policy = Policy::load(&metered, &bytes, None).unwrap();
    let report = check(
        &policy,
        &CheckOptions {
            cases: 0,
            seed: 1,
            config: "{}".into(),
        },
    );
    let determinism = report
        .outcomes
        .iter()
        .find(|o| o.law == Law::Determinism)
        .and_then(|o| o.failure.as_ref())
        .expect("determinism fails");
    assert!(
        determinism
            .message
            .contains("writes-resolver told no writes and resolver.resolve answered differently"),
        "{}",
        determinism.message
    );
}

/// Old revision, old shape: the same component declaring 1.2 (its describe's text changed in
/// the component's bytes, nothing else) exports `writes-resolver` still, and is called at
/// `resolver.resolve`, as every policy of 1.2 or earlier is.
#[test]
fn a_typed_policy_declaring_an_earlier_revision_is_called_without_the_writes() {
    let mut bytes = std::fs::read(guests::TYPED_WRITES).unwrap();
    let at: Vec<usize> = bytes
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"1.3.0")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        at.len(),
        1,
        "the declared revision stands once in the component"
    );
    bytes[at[0]..at[0] + 5].copy_from_slice(b"1.2.0");
    let policy = host_core::Policy::load(&engine(), &bytes, None).expect("the guest loads");
    assert_eq!(policy.info().description.contract_version, "1.2.0");
    assert!(!policy.info().typed_writes, "{:?}", policy.info());
    let policies = Arc::new(TenantPolicies::new());
    policies.activate("acme", ActivePolicy::new(Arc::new(policy)));
    let resolver = Resolver::new(policies, "eu");
    let ((eu, ew), (na, nw)) = history();
    let told = resolver
        .resolve_with_writes((&eu, &ew), (&na, &nw))
        .unwrap();
    assert_eq!(reason(told.decision), "called without writes");
}
