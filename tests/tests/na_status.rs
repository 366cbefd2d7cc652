//! The `na-status` example does what its doc comment says: of two different statuses, a
//! terminal state wins wherever it was written, otherwise NA's, otherwise the last writer; for
//! a tenant configured `update-resurrects`, the default rules decide status too.
//! (The Python and JavaScript ports are held to the same answers on every sample conflict by
//! `foreign_policies.rs`.)

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
