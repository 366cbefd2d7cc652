//! `host-cli policy upload | list | history | activate | rollback | shadow | shadow-report |
//! config` on a local registry directory: what each prints, exit statuses, idempotence, and
//! refusals with their reasons.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn cli(registry: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(args)
        .arg("--registry")
        .arg(registry)
        .args(["--tenant", "acme", "--as", "ops"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running host-cli")
}

fn json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_operator_publishes_shadows_activates_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path();

    let up = json(&cli(
        reg,
        &[
            "policy", "upload", "default", "--label", "v1", "--cases", "16", "--json",
        ],
    ));
    assert_eq!(up["changed"], true);
    let v1 = up["digest"].as_str().unwrap().to_owned();
    let again = json(&cli(
        reg,
        &[
            "policy", "upload", "default", "--label", "v1", "--cases", "16", "--json",
        ],
    ));
    assert_eq!(
        again["changed"], false,
        "the same bytes twice change nothing"
    );

    // Upload and activate in one go; the text says what changed.
    let out = cli(
        reg,
        &[
            "policy",
            "upload",
            "na-status",
            "--label",
            "v2",
            "--cases",
            "16",
            "--activate",
        ],
    );
    assert!(out.status.success());
    let said = text(&out);
    assert!(said.contains("uploaded v2"), "{said}");
    assert!(said.contains("active none -> "), "{said}");

    let out = json(&cli(reg, &["policy", "activate", "v1", "--json"]));
    assert_eq!(out["active"], v1.as_str());
    let v2 = out["previouslyActive"].as_str().unwrap().to_owned();

    let out = json(&cli(reg, &["policy", "shadow", "v2", "--json"]));
    assert_eq!(out["shadow"], v2.as_str());
    let list = json(&cli(reg, &["policy", "list", "--json"]));
    let status: Vec<(String, String)> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["label"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("v1".to_owned(), "active".to_owned()),
            ("v2".to_owned(), "shadow".to_owned())
        ]
    );

    let report = json(&cli(reg, &["policy", "shadow-report", "--json"]));
    assert_eq!(report["candidate"], v2.as_str());
    assert_eq!(report["compared"], 0);

    let out = json(&cli(reg, &["policy", "shadow", "--stop", "--json"]));
    assert_eq!(out["changed"], true);
    assert!(out.get("shadow").is_none());

    json(&cli(reg, &["policy", "activate", &v2[..8], "--json"]));
    let out = json(&cli(
        reg,
        &["policy", "rollback", "--reason", "test", "--json"],
    ));
    assert_eq!(out["active"], v1.as_str());
    assert_eq!(out["previouslyActive"], v2.as_str());

    let out = json(&cli(
        reg,
        &[
            "policy",
            "config",
            "--set",
            r#"{"statusAuthority": "na"}"#,
            "--json",
        ],
    ));
    assert_eq!(out["changed"], true);
    let out = json(&cli(reg, &["policy", "config", "--json"]));
    assert_eq!(out["config"]["statusAuthority"], "na");

    let history = json(&cli(reg, &["policy", "history", "--json"]));
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "upload",
            "upload",
            "activate",
            "activate",
            "shadow",
            "shadow-stop",
            "activate",
            "rollback",
            "config"
        ]
    );
    assert!(history.as_array().unwrap().iter().all(|e| e["by"] == "ops"));
    let listing = text(&cli(reg, &["policy", "list"]));
    assert!(
        listing.contains("active") && listing.contains("retired"),
        "{listing}"
    );
}

#[test]
fn refusals_say_why_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();

    let out = cli(&reg, &["policy", "upload", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && err.contains("core wasm module"),
        "{err}"
    );

    let out = cli(
        &reg,
        &["policy", "upload", junk.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["refused"], true);

    let out = cli(&reg, &["policy", "rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no active version"));

    let out = cli(&reg, &["policy", "activate", "v7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no version matching \"v7\""));

    let out = cli(&reg, &["policy", "config", "--set", "[]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
}

/// `policy precompile` writes the artifact a host's packaged directory holds, named by the
/// component's digest; a host with an empty cache loads it instead of compiling. Another
/// architecture without its backend, and a file that is not a policy, are refused.
#[test]
fn precompile_writes_what_a_cold_start_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("precompiled"), dir.path().join("cache"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_host-cli"))
            .args(["policy", "precompile"])
            .args(args)
            .args(["--out", out.to_str().unwrap(), "--no-cache"])
            .output()
            .expect("running host-cli")
    };
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let o = run(&["default", "--target", &target]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let digest = host_core::digest(default_policy_artifact::DEFAULT_POLICY);
    assert!(text(&o).starts_with(&digest), "{}", text(&o));
    assert!(out.join(format!("{digest}.cwasm")).is_file());
    let engine =
        host_core::PolicyEngine::new(Default::default(), host_core::Metering::Epoch).unwrap();
    let host = host_core::ArtifactCache::new(&cache).with_packaged(&out);
    let policy = host_core::Policy::load(
        &engine,
        default_policy_artifact::DEFAULT_POLICY,
        Some(&host),
    )
    .unwrap();
    assert!(policy.info().from_cache, "the host compiled the policy");

    let not_a_policy = dir.path().join("notes.txt");
    std::fs::write(&not_a_policy, "not wasm").unwrap();
    let o = run(&[not_a_policy.to_str().unwrap(), "--target", &target]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a WebAssembly component"));
    if cfg!(target_arch = "x86_64") {
        let o = run(&["default", "--target", "aarch64-unknown-linux-gnu"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--features cross"));
    }
}
