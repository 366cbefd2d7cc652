//! Shared helpers of the integration tests, and the paths of the test guests built from
//! source by `build.rs` (hostile and broken policies).

/// Paths of the test guest components.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

use host_core::{Limits, Metering, Policy, PolicyEngine};
use std::sync::Arc;

/// A serving engine with the default limits but a short deadline, so hostile guests fail fast.
pub fn engine() -> PolicyEngine {
    let limits = Limits {
        deadline: std::time::Duration::from_millis(50),
        ..Limits::default()
    };
    PolicyEngine::new(limits, Metering::Epoch).expect("engine")
}

/// Loads a guest by path.
pub fn load(engine: &PolicyEngine, path: &str) -> Result<Arc<Policy>, host_core::LoadError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    Policy::load(engine, &bytes, None).map(Arc::new)
}

/// The default policy.
pub fn default_policy(engine: &PolicyEngine) -> Arc<Policy> {
    Arc::new(
        Policy::load(engine, default_policy_artifact::DEFAULT_POLICY, None)
            .expect("default policy loads"),
    )
}

use party_model::new_party;
use policy_types::{PartyVersion, ResourceType};
use serde_json::{Value, json};

/// Writes `members` to `version` as `region` at physical time `now_ms`.
pub fn write(version: &mut PartyVersion, region: &str, now_ms: u64, members: Value) {
    party_model::Writer::new(region).write(version, now_ms, &members);
}

/// A version and the writes behind it (contract revision 1.3).
pub type Recorded = (PartyVersion, policy_types::writes::Writes);

/// EU creates tenant acme's party 42, an Individual, with `members` at 1,000 ms.
pub fn created(members: Value) -> Recorded {
    let base = new_party("acme", "42", ResourceType::Individual, "eu");
    written(&(base, Default::default()), "eu", 1_000, members)
}

/// `region` writes `members` over `from` at `now_ms`, recording the write: the new version and
/// its writes.
pub fn written(from: &Recorded, region: &str, now_ms: u64, members: Value) -> Recorded {
    let (mut v, mut w) = from.clone();
    party_model::Writer::new(region).write_recorded(&mut v, &mut w, now_ms, &members);
    (v, w)
}

/// The seed's scenario: EU changes the customer's email while NA changes the status.
/// Returns (EU's version, NA's version), concurrent.
pub fn email_vs_status(tenant: &str) -> (PartyVersion, PartyVersion) {
    let mut base = new_party(tenant, "42", ResourceType::Individual, "eu");
    write(
        &mut base,
        "eu",
        1_000,
        json!({"givenName": "Jane", "status": "initialized", "contactMedium": [
            {"id": "1", "mediumType": "email", "characteristic": {"emailAddress": "jane@old.example"}}]}),
    );
    let (mut eu, mut na) = (base.clone(), base);
    write(
        &mut eu,
        "eu",
        2_000,
        json!({"contactMedium": [
        {"id": "1", "mediumType": "email", "characteristic": {"emailAddress": "jane@new.example"}}]}),
    );
    write(&mut na, "na", 2_001, json!({"status": "validated"}));
    (eu, na)
}

/// A status conflict the default and the NA-status policies decide differently: EU moved the
/// party to validated, NA (later by the clock, earlier in the lifecycle) back to initialized.
/// `n` names the party (`p{n}`).
pub fn status_conflict(tenant: &str, n: u32) -> (PartyVersion, PartyVersion) {
    let (mut eu, mut na) = email_vs_status(tenant);
    eu.party_id = format!("p{n}");
    na.party_id = format!("p{n}");
    write(&mut eu, "eu", 3_000, json!({"status": "validated"}));
    write(&mut na, "na", 3_001, json!({"status": "initialized"}));
    (eu, na)
}

/// Stores `version` as its party's item where none is stored yet, with no provenance: the
/// version a conflict then meets on the reconcile path.
pub fn put_new_party(store: &impl host_core::store::PartyStore, version: &PartyVersion) {
    let party = host_core::store::StoredParty {
        version: version.clone(),
        provenance: host_core::store::Provenance::default(),
        writes: Default::default(),
    };
    store.put_party(&party, None).unwrap_or_else(|e| {
        panic!(
            "storing party {} of {}: {e}",
            version.party_id, version.tenant
        )
    });
}

/// How the tests upload a policy: under `label`, law-checked on 32 cases of a fixed seed.
pub fn upload_options(label: &str) -> policy_admin::UploadOptions {
    policy_admin::UploadOptions {
        label: Some(label.to_owned()),
        law_cases: 32,
        seed: 7,
        signer: None,
    }
}

/// The visible TMF JSON of a party.
pub fn tmf(version: &PartyVersion) -> Value {
    party_model::to_tmf(version).unwrap_or(Value::Null)
}

/// Asserts that `resolver` still merges tenant acme's [`email_vs_status`] conflict as the
/// default policy does: after a hostile policy of another tenant was stopped or refused.
pub fn still_serves(resolver: &host_core::Resolver) {
    let (eu, na) = email_vs_status("acme");
    let resolved = resolver
        .resolve(&eu, &na)
        .expect("the default policy still resolves");
    assert_eq!(resolved.decision, host_core::Decision::Merged);
    let merged = tmf(resolved.party.as_ref().unwrap());
    assert_eq!(merged["status"], "validated");
    assert_eq!(
        merged["contactMedium"][0]["characteristic"]["emailAddress"],
        "jane@new.example"
    );
}
/// The seed a seeded test was asked to replay, from `$var`; `None` when it is not set. A value
/// that is not a number fails the test rather than running another seed.
pub fn env_seed(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{var} must be an unsigned integer, found {value:?}")),
    )
}

/// Asserts that `records` hold each conflict once: no two share an id.
pub fn assert_each_conflict_once(records: &[host_core::conflict_log::ConflictRecord], what: &str) {
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "{what}: each conflict once");
}

/// Asserts that `record`'s first outcome reproduces: `policy` on the recorded versions and
/// region decides and writes what the outcome says.
pub fn assert_first_outcome_reproduces(
    policy: &Policy,
    record: &host_core::conflict_log::ConflictRecord,
    what: &str,
) {
    let first = record.first();
    let (local, remote) = (
        (&record.local, &record.local_writes),
        (&record.remote, &record.remote_writes),
    );
    let again =
        host_core::resolve_with_writes(policy, "{}", &record.region, local, remote).unwrap();
    assert_eq!(
        first.decision,
        again.decision.kind(),
        "{what}, {}",
        record.id
    );
    assert_eq!(
        first.written.as_ref(),
        again.written(&record.local, &record.remote),
        "{what}, {}",
        record.id
    );
}

pub mod conformance;
pub mod samples;
mod specs;
