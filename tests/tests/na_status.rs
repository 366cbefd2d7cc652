//! The `na-status` example does what its doc comment says: of two different statuses, a
//! terminal state wins wherever it was written, then the one whose write had seen more of NA's
//! writes (NA's concurrent change), then the last writer; where a status's write is unknown
//! (the sample conflicts carry no writes), NA's status wins as before contract revision 1.3;
//! for a tenant configured `update-resurrects`, the default rules decide status too.
//! (The Python and JavaScript ports, which are not sent writes, are held to the same answers on
//! every sample conflict by `foreign_policies.rs`.)

use host_core::conflict::parse_lines;
use host_core::{Policy, resolve_with};
use integration_tests::samples::samples_path;
use policy_types::FieldValue;

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

/// `na-status` on versions whose writes are known, from either side: the status kept.
fn status_with_writes(
    a: (&policy_types::PartyVersion, &policy_types::writes::Writes),
    b: (&policy_types::PartyVersion, &policy_types::writes::Writes),
) -> String {
    let engine = integration_tests::engine();
    let na = Policy::load(&engine, default_policy_artifact::NA_STATUS_POLICY, None).unwrap();
    let policies = std::sync::Arc::new(host_core::TenantPolicies::new());
    policies.activate(
        "acme",
        host_core::ActivePolicy::new(std::sync::Arc::new(na)),
    );
    let resolver = host_core::Resolver::new(policies, "eu");
    let mut kept = Vec::new();
    for (local, remote) in [(a, b), (b, a)] {
        let resolved = resolver.resolve_with_writes(local, remote).unwrap();
        let party = resolved
            .written(local.0, remote.0)
            .expect("na-status merges");
        kept.push(integration_tests::tmf(party)["status"].to_string());
    }
    assert_eq!(
        kept[0], kept[1],
        "the answer depends on which side is local"
    );
    kept.remove(0)
}

/// EU creates the party with `members`; the versions fork there, each with the writes.
fn created(
    members: serde_json::Value,
) -> (policy_types::PartyVersion, policy_types::writes::Writes) {
    let mut base =
        party_model::new_party("acme", "42", policy_types::ResourceType::Individual, "eu");
    let mut writes = Default::default();
    party_model::Writer::new("eu").write_recorded(&mut base, &mut writes, 1_000, &members);
    (base, writes)
}

#[test]
fn a_status_na_wrote_before_the_fork_does_not_beat_a_later_change_that_saw_it() {
    let (mut na, mut nw) = created(serde_json::json!({"givenName": "Jane"}));
    party_model::Writer::new("na").write_recorded(
        &mut na,
        &mut nw,
        2_000,
        &serde_json::json!({"status": "validated"}),
    );
    // EU has NA's status, then sets it back to initialized; NA concurrently changes a name.
    let (mut eu, mut ew) = (na.clone(), nw.clone());
    party_model::Writer::new("eu").write_recorded(
        &mut eu,
        &mut ew,
        3_000,
        &serde_json::json!({"status": "initialized"}),
    );
    party_model::Writer::new("na").write_recorded(
        &mut na,
        &mut nw,
        3_001,
        &serde_json::json!({"givenName": "Janet"}),
    );
    assert_eq!(
        status_with_writes((&eu, &ew), (&na, &nw)),
        r#""initialized""#
    );
    // The same versions without their writes: NA's status wins, as before revision 1.3.
    let none = policy_types::writes::Writes::default();
    assert_eq!(
        status_with_writes((&eu, &none), (&na, &none)),
        r#""validated""#
    );
}

#[test]
fn nas_concurrent_change_of_status_beats_a_later_one_made_without_seeing_it() {
    let (base, bw) = created(serde_json::json!({"givenName": "Jane"}));
    let (mut eu, mut ew) = (base.clone(), bw.clone());
    let (mut na, mut nw) = (base, bw);
    party_model::Writer::new("na").write_recorded(
        &mut na,
        &mut nw,
        2_000,
        &serde_json::json!({"status": "initialized"}),
    );
    party_model::Writer::new("eu").write_recorded(
        &mut eu,
        &mut ew,
        2_500,
        &serde_json::json!({"status": "validated"}),
    );
    assert_eq!(
        status_with_writes((&eu, &ew), (&na, &nw)),
        r#""initialized""#
    );
}

#[test]
fn a_terminal_state_beats_nas_concurrent_change() {
    let (base, bw) = created(serde_json::json!({"status": "validated"}));
    let (mut eu, mut ew) = (base.clone(), bw.clone());
    let (mut na, mut nw) = (base, bw);
    party_model::Writer::new("eu").write_recorded(
        &mut eu,
        &mut ew,
        2_000,
        &serde_json::json!({"status": "deceased"}),
    );
    party_model::Writer::new("na").write_recorded(
        &mut na,
        &mut nw,
        2_500,
        &serde_json::json!({"status": "initialized"}),
    );
    assert_eq!(status_with_writes((&eu, &ew), (&na, &nw)), r#""deceased""#);
}
