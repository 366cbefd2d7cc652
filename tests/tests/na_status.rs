//! The `na-status` example does what its doc comment says: of two different statuses, a
//! terminal state wins wherever it was written, then the one whose write had seen more of NA's
//! writes (NA's concurrent change), then the last writer; where a status's write is unknown
//! (the sample conflicts carry no writes), NA's status wins as before contract revision 1.3;
//! for a tenant configured `update-resurrects`, the default rules decide status too.
//! The tests on versions with their writes hold the Python and JavaScript ports (contract 1.3,
//! called through `writes-resolver`) to the same answers where `scripts/build-foreign-policies.sh`
//! built them (`FOREIGN_POLICIES`, which `scripts/test.sh` sets); `foreign_policies.rs` holds
//! them to the Rust answers on every sample conflict.

use std::sync::{Arc, OnceLock};

use host_core::conflict::parse_lines;
use host_core::{ActivePolicy, Policy, Resolver, TenantPolicies, resolve_with};
use integration_tests::samples::samples_path;
use integration_tests::{Recorded, created, written};
use policy_types::writes::Writes;
use policy_types::{FieldValue, PartyVersion};
use serde_json::{Value, json};

fn status_kept(sample: &str) -> String {
    status_kept_with(sample, None)
}

fn status_kept_with(sample: &str, config: Option<&str>) -> String {
    let engine = integration_tests::engine();
    let na = Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap();
    let text = std::fs::read_to_string(samples_path()).unwrap();
    let c = parse_lines(&text)
        .into_iter()
        .filter_map(|(_, c)| c.ok())
        .find(|c| c.id.as_deref() == Some(sample))
        .unwrap_or_else(|| panic!("no sample conflict {sample}"));
    let config = config.map_or_else(|| c.config_text(), str::to_owned);
    let resolved = resolve_with(&na, &config, c.region(), &c.local, &c.remote).unwrap();
    let party = resolved
        .written(&c.local, &c.remote)
        .expect("na-status merges");
    match &party
        .field("status")
        .expect("the merged party has a status")
        .value
    {
        FieldValue::Json(text) => text.clone(),
        other => panic!("status is not JSON text: {other:?}"),
    }
}

#[test]
fn a_terminal_state_written_elsewhere_beats_nas_status() {
    // EU records the death; NA re-validates concurrently, later by the clock.
    assert_eq!(status_kept("terminal-status-stays"), r#""deceased""#);
}

#[test]
fn otherwise_nas_status_wins_whatever_the_clock_and_the_lifecycle_say() {
    // EU re-validates; NA resets to initialized: earlier in the lifecycle, and NA's.
    assert_eq!(status_kept("status-vs-attribute"), r#""initialized""#);
}

#[test]
fn under_update_resurrects_the_last_writer_decides_status() {
    // Only the stamps' order is associative where a delete keeps the writes after it: NA's
    // later "validated" beats EU's earlier "deceased" there.
    let resurrects = Some(r#"{"deleteRule":"update-resurrects"}"#);
    assert_eq!(
        status_kept_with("terminal-status-stays", resurrects),
        r#""validated""#
    );
}

/// The `na-status` implementations: the Rust example, then the Python and JavaScript ports
/// where they were built. Loaded once for the tests of this file (a port takes seconds to
/// compile).
fn implementations() -> &'static [(String, Arc<Policy>)] {
    static LOADED: OnceLock<Vec<(String, Arc<Policy>)>> = OnceLock::new();
    LOADED.get_or_init(load_implementations)
}

fn load_implementations() -> Vec<(String, Arc<Policy>)> {
    let engine = integration_tests::engine();
    let rust = Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap();
    let mut out = vec![("rust".to_owned(), Arc::new(rust))];
    match std::env::var_os("FOREIGN_POLICIES") {
        Some(dir) => {
            for port in ["python-na-status-stub-wasi", "js-na-status"] {
                let path = std::path::Path::new(&dir).join(format!("{port}.wasm"));
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                let policy =
                    Policy::load(&engine, &bytes, None).unwrap_or_else(|e| panic!("{port}: {e}"));
                assert!(policy.info().typed_writes, "{port} is sent the writes");
                out.push((port.to_owned(), Arc::new(policy)));
            }
        }
        // Under CI the ports must be there (scripts/test.sh builds them and sets it).
        None if std::env::var_os("CI").is_some() => {
            panic!("FOREIGN_POLICIES is not set under CI: the ports would go unchecked")
        }
        None => eprintln!(
            "FOREIGN_POLICIES is not set: the Rust na-status alone (scripts/test.sh builds the \
             Python and JavaScript ports and sets it)"
        ),
    }
    out
}

/// `na-status` on versions whose writes are known, from either side: the status kept, the
/// same for every implementation.
fn status_with_writes(a: (&PartyVersion, &Writes), b: (&PartyVersion, &Writes)) -> String {
    let mut kept = Vec::new();
    for (name, policy) in implementations() {
        let policies = Arc::new(TenantPolicies::new());
        policies.activate("acme", ActivePolicy::new(policy.clone()));
        let resolver = Resolver::new(policies, "eu");
        for (local, remote) in [(a, b), (b, a)] {
            let resolved = resolver
                .resolve_with_writes(local, remote)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let party = resolved
                .written(local.0, remote.0)
                .expect("na-status merges");
            kept.push((
                name.clone(),
                integration_tests::tmf(party)["status"].to_string(),
            ));
        }
    }
    assert!(
        kept.iter().all(|(_, status)| *status == kept[0].1),
        "the implementations, each with either side local, keep different statuses: {kept:?}"
    );
    kept.remove(0).1
}

/// The same version with its writes unknown: stored before writes were recorded, or a conflict
/// captured without them.
fn untold(r: &Recorded) -> Recorded {
    (r.0.clone(), Writes::default())
}

fn status_of(a: &Recorded, b: &Recorded) -> String {
    status_with_writes((&a.0, &a.1), (&b.0, &b.1))
}

/// The status kept when EU and NA each write a status over a party created with `base`,
/// concurrently: EU's status at `eu.0` ms, NA's at `na.0`.
fn concurrent_statuses(base: Value, eu: (u64, &str), na: (u64, &str)) -> String {
    let base = created(base);
    let eu = written(&base, "eu", eu.0, json!({"status": eu.1}));
    let na = written(&base, "na", na.0, json!({"status": na.1}));
    status_of(&eu, &na)
}

/// NA writes `na_status` at 2,000 ms over a party created with `base`; EU, having seen it,
/// writes `eu_status` at 3,000 while NA concurrently changes a name at 3,001. EU's and NA's versions:
/// EU's status write has seen every NA write, and NA's write is the later.
fn eu_writes_status_after_nas(
    base: Value,
    na_status: &str,
    eu_status: &str,
) -> (Recorded, Recorded) {
    let seen = written(&created(base), "na", 2_000, json!({"status": na_status}));
    let eu = written(&seen, "eu", 3_000, json!({"status": eu_status}));
    let na = written(&seen, "na", 3_001, json!({"givenName": "Janet"}));
    (eu, na)
}

#[test]
fn a_status_na_wrote_before_the_fork_does_not_beat_a_later_change_that_saw_it() {
    // EU has NA's status, then sets it back to initialized; NA concurrently changes a name.
    let (eu, na) =
        eu_writes_status_after_nas(json!({"givenName": "Jane"}), "validated", "initialized");
    assert_eq!(status_of(&eu, &na), r#""initialized""#);
    // The same versions without their writes: NA's status wins, as before revision 1.3; and
    // so it does where only one side's write is known.
    assert_eq!(status_of(&untold(&eu), &untold(&na)), r#""validated""#);
    assert_eq!(status_of(&eu, &untold(&na)), r#""validated""#);
    assert_eq!(status_of(&untold(&eu), &na), r#""validated""#);
}

#[test]
fn nas_concurrent_change_of_status_beats_a_later_one_made_without_seeing_it() {
    let base = json!({"givenName": "Jane"});
    let kept = concurrent_statuses(base, (2_500, "validated"), (2_000, "initialized"));
    assert_eq!(kept, r#""initialized""#);
}

#[test]
fn a_terminal_state_beats_nas_concurrent_change() {
    let base = json!({"status": "validated"});
    let kept = concurrent_statuses(base, (2_000, "deceased"), (2_500, "initialized"));
    assert_eq!(kept, r#""deceased""#);
}

#[test]
fn the_same_state_written_again_after_seeing_nas_is_the_later_write() {
    // EU has NA's `deceased` and writes the state again in v4's spelling; NA concurrently
    // changes a name. Both writes have seen NA's status: the later one is kept.
    let (eu, na) =
        eu_writes_status_after_nas(json!({"status": "validated"}), "deceased", "deceaded");
    assert_eq!(status_of(&eu, &na), r#""deceaded""#);
    // Without the writes, NA's status wins (the rule before revision 1.3).
    assert_eq!(status_of(&untold(&eu), &untold(&na)), r#""deceased""#);
}
