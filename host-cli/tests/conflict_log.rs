//! The conflict log from the command line: a simulated run records its conflicts; `conflicts
//! export` writes captured conflicts that `dry-run` replays with the recorded outcomes;
//! `conflicts replay` reports exactly the conflicts on which another policy differs (as
//! `dry-run --compare` finds them); `conflicts resolve` appends a second outcome.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running host-cli")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Asserts that the command succeeded, showing its stderr when it did not.
fn succeeded(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `host-cli conflicts <args…>` on tenant acme's conflict log in `log`.
fn conflicts(dir: &Path, args: &[&str]) -> Output {
    let log = ["--tenant", "acme", "--log", "log"];
    cli(dir, &[&["conflicts"][..], args, &log].concat())
}

/// The simulated run that records its conflicts into `log`.
fn simulate(dir: &Path) -> Output {
    let args = ["simulate", "--seed", SEED, "--no-swap", "--quiet"];
    cli(dir, &[&args[..], &["--conflict-log", "log"]].concat())
}

const SEED: &str = "11";

#[test]
fn capture_export_dry_run_replay_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    eprintln!("simulation seed {SEED}");
    succeeded(&simulate(d));

    let listed = json(&conflicts(d, &["list", "--json"]));
    let listed = listed.as_array().unwrap();
    assert!(listed.len() > 3, "the run had conflicts: {}", listed.len());
    let mut ids: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "each conflict once");

    // The same run again into the same log: the same conflicts, nothing recorded twice.
    succeeded(&simulate(d));
    let relisted = json(&conflicts(d, &["list", "--json"]));
    assert_eq!(relisted.as_array().unwrap().len(), listed.len());

    // Export, then dry-run under the same policy: the recorded outcome and party, conflict by conflict.
    succeeded(&conflicts(d, &["export", "--out", "captured.jsonl"]));
    let dry = json(&cli(
        d,
        &[
            "dry-run",
            "--policy",
            "default",
            "--conflicts",
            "captured.jsonl",
            "--json",
            "--compare",
            "na-status",
        ],
    ));
    let replayed = dry["conflicts"].as_array().unwrap();
    assert_eq!(replayed.len(), listed.len());
    for c in replayed {
        let id = c["id"].as_str().unwrap();
        let record = json(&conflicts(d, &["show", id, "--json"]));
        let first = &record["outcomes"][0];
        assert_eq!(c["outcome"], first["decision"], "conflict {id}");
        assert_eq!(c["decidedBy"], first["policyDigest"], "conflict {id}");
        let written: policy_types::PartyVersion =
            serde_json::from_value(first["written"].clone()).unwrap();
        assert_eq!(
            c["result"],
            party_model::to_tmf(&written).unwrap_or(Value::Null),
            "conflict {id}"
        );
    }

    // Replay: none differ under the policy that decided; against another, exactly those that
    // dry-run --compare finds different.
    let same = conflicts(d, &["replay", "--policy", "default", "--json"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(json(&same)["different"], 0);
    let mut expected: Vec<&str> = replayed
        .iter()
        .filter(|c| c["compare"]["differs"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty(),
        "na-status differs somewhere on this seed"
    );
    let other = conflicts(d, &["replay", "--policy", "na-status", "--json"]);
    assert_eq!(other.status.code(), Some(1));
    let other = json(&other);
    let mut found: Vec<&str> = other["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, expected);

    // Resolve one again: the record carries both outcomes.
    let id = expected[0];
    let resolve = ["resolve", &id[..10], "--policy", "na-status", "--json"];
    succeeded(&conflicts(d, &resolve));
    let record = json(&conflicts(d, &["show", id, "--json"]));
    let outcomes = record["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[1]["by"], "host-cli");
    assert_ne!(outcomes[0]["policyDigest"], outcomes[1]["policyDigest"]);
    // Filters: by latest outcome's policy is not the point; by party narrows.
    let party = record["partyId"].as_str().unwrap();
    let by_party = json(&conflicts(d, &["list", "--party", party, "--json"]));
    assert!(
        by_party
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["partyId"] == party)
    );
    let none = json(&conflicts(d, &["list", "--outcome", "rejected", "--json"]));
    assert_eq!(none.as_array().unwrap().len(), 0);
}
