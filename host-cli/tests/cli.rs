//! The CLI on the shipped sample conflicts, checked against expected output
//! (`BLESS=1 cargo test -p host-cli` rewrites the expected files).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cli(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join(format!("host-cli-test-cache-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(args)
        .arg("--cache-dir")
        .arg(&cache)
        .current_dir(root())
        .output()
        .expect("running host-cli")
}

/// `dry-run` of the default policy on the captured conflicts in `conflicts`, then `extra`.
fn dry_run(conflicts: &str, extra: &[&str]) -> Output {
    let args = ["dry-run", "--policy", "default", "--conflicts", conflicts];
    cli(&[&args[..], extra].concat())
}

/// `dry-run` of the default policy on the shipped sample conflicts, then `extra`.
fn dry_run_samples(extra: &[&str]) -> Output {
    dry_run("samples/conflicts.jsonl", extra)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Replaces what legitimately varies between builds (the policy digest) with a placeholder.
fn normalize(text: &str) -> String {
    text.split('\n')
        .map(|l| match l.find("sha256:") {
            Some(i) => format!("{}sha256:<digest>", &l[..i]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn expect(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "output differs from {} (BLESS=1 to accept):\n{actual}",
        path.display()
    );
}

#[test]
fn dry_run_on_the_samples() {
    let out = dry_run_samples(&["--no-timing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect("dry-run-samples.txt", &normalize(&stdout(&out)));
}

#[test]
fn dry_run_json_summary() {
    let out = dry_run_samples(&["--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["outcomes"]["merged"], 12);
    assert_eq!(
        doc["summary"]["outcomes"]["take-remote (host: not concurrent)"],
        1
    );
    let terminal = doc["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "terminal-status-stays")
        .unwrap();
    assert_eq!(terminal["result"]["status"], "deceased");
    assert!(doc["summary"]["microsPerConflict"].as_f64().unwrap() > 0.0);
}

#[test]
fn dry_run_compare_lists_disagreements() {
    let na = std::env::temp_dir().join(format!("na-status-{}.wasm", std::process::id()));
    std::fs::write(&na, default_policy_artifact::NA_STATUS_POLICY).unwrap();
    let out = dry_run_samples(&["--json", "--compare", na.to_str().unwrap()]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut differ: Vec<&str> = doc["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["compare"]["differs"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    differ.sort();
    // na-status keeps NA's status where the default's lifecycle keeps the other, except that a
    // terminal state wins under both (`terminal-status-stays`, `organization-closed-stays`).
    assert_eq!(differ, ["status-vs-attribute"]);
    std::fs::remove_file(na).ok();
}

#[test]
fn malformed_line_is_reported_and_the_run_continues() {
    let file = std::env::temp_dir().join(format!("bad-{}.jsonl", std::process::id()));
    let sample = std::fs::read_to_string(root().join("samples/conflicts.jsonl")).unwrap();
    let first = sample.lines().next().unwrap();
    std::fs::write(&file, format!("{{not json\n{first}\n")).unwrap();
    let out = dry_run(file.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("line 1: skipped: not a captured conflict"),
        "{text}"
    );
    assert!(text.contains("[2] email-vs-marital-status"), "{text}");
    std::fs::remove_file(file).ok();
}

#[test]
fn validate_accepts_the_default_and_refuses_a_core_module() {
    let out = cli(&["validate", "default"]);
    assert!(out.status.success());
    let text = normalize(&stdout(&out));
    expect(
        "validate-default.txt",
        &text
            .lines()
            .filter(|l| !l.starts_with("size"))
            .collect::<Vec<_>>()
            .join("\n"),
    );

    let module = std::env::temp_dir().join(format!("core-{}.wasm", std::process::id()));
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let out = cli(&["validate", module.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not a WebAssembly component (a core wasm module)"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(module).ok();
}

#[test]
fn policy_check_passes_the_default_and_prints_its_seed() {
    let out = cli(&["policy", "check", "default", "--cases", "16", "--seed", "3"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("seed     3  (rerun: host-cli policy check default --seed 3 --cases 16)"),
        "{text}"
    );
    assert!(text.contains("all laws hold"), "{text}");
    assert!(
        text.contains(" enumerated (the small scopes"),
        "the report says the small scopes ran: {text}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "seed 3");
}

#[test]
fn simulate_demo_passes_and_draws_the_run() {
    let svg = std::env::temp_dir().join(format!("sim-{}.svg", std::process::id()));
    let out = cli(&[
        "simulate",
        "--seed",
        "42",
        "--report",
        svg.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for part in [
        "partition",
        "hot swap      → na-status",
        "na-status (sha256:",
        "all 3 regions identical",
        "0 of",
        "OK: every check passed",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawing.starts_with("<svg")
            && drawing.contains("swaps policy")
            && drawing.contains(" cut")
            && drawing.contains("step (10 ms"),
        "{drawing}"
    );
    std::fs::remove_file(svg).ok();
}

/// A policy of the author's own is simulated alone, start to end: no swap to the example
/// unless one is named (`--swap-to`).
#[test]
fn simulate_with_a_policy_of_ones_own_swaps_only_when_asked() {
    let na = std::env::temp_dir().join(format!("own-{}.wasm", std::process::id()));
    std::fs::write(&na, default_policy_artifact::NA_STATUS_POLICY).unwrap();
    let path = na.to_str().unwrap();
    let alone = cli(&[
        "simulate", "--seed", "42", "--steps", "30", "--policy", path,
    ]);
    let text = stdout(&alone);
    assert!(alone.status.success(), "{text}");
    assert!(!text.contains("hot swap"), "{text}");
    let swapped = cli(&[
        "simulate",
        "--seed",
        "42",
        "--steps",
        "30",
        "--policy",
        path,
        "--swap-to",
        "default",
    ]);
    let text = stdout(&swapped);
    assert!(swapped.status.success(), "{text}");
    assert!(text.contains("hot swap      → "), "{text}");
    std::fs::remove_file(na).ok();
}

/// A report in a format it cannot write is an error naming the formats, not HTML under
/// another name.
#[test]
fn a_report_in_an_unknown_format_is_refused() {
    let png = std::env::temp_dir().join(format!("sim-{}.png", std::process::id()));
    let out = cli(&["simulate", "--seed", "9", "--report", png.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains(".html") && err.contains(".svg"),
        "{err}"
    );
    assert!(!png.exists());
}

#[test]
fn simulate_json_gives_seeds_as_strings_and_a_rerun_per_failure() {
    let out = cli(&[
        "simulate",
        "--seed",
        "5",
        "--seeds",
        "2",
        "--json",
        "--no-swap",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["seed"], "5");
    assert_eq!(doc["runs"][1]["seed"], "6");
    assert_eq!(doc["runs"][0]["ok"], true);
    assert!(doc["runs"][0]["policies"][0]["resolved"].as_u64().unwrap() > 0);
}

/// Without the `aws` feature the CLI says how to get the AWS backends, and creates nothing.
#[test]
fn an_aws_location_without_the_aws_feature_says_which_flag_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .current_dir(dir.path())
        .args([
            "policy",
            "list",
            "--tenant",
            "acme",
            "--registry",
            "aws",
            "--bucket",
            "b",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if cfg!(feature = "aws") {
        return; // built with the feature: the AWS backend is there
    }
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--features aws"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn simulate_many_seeds_reports_a_summary() {
    let out = cli(&["simulate", "--seed", "100", "--seeds", "25", "--quiet"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("25 runs from seed 100: 25 passed, 0 failed;"),
        "{text}"
    );
}
