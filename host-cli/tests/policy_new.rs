//! `policy new` and `policy build`, one project per language, as an author meets them: a new
//! project builds as it is written, is accepted, and uploads. And compile once: after `policy
//! build`, the commands that load the policy (validate, check, dry-run, simulate, upload)
//! compile nothing, and the upload leaves the hosts' compiled form in the registry, from which
//! a host's first load deserializes.
//!
//! Compilations are counted from the engine's one event per compilation (`sandbox.compiled`,
//! logged at info by host-sandbox, with or without the cache), in each command's stderr.
//!
//! The Python and JavaScript projects need the pinned componentize-py and componentize-js,
//! which `policy build` takes from the checkout where scripts/build-foreign-policies.sh
//! installed them: as tests/tests/foreign_policies.rs does, they run when `FOREIGN_POLICIES` is
//! set (scripts/test.sh runs that script and sets it) and fail, saying so, when it is not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::run_ok;

use host_core::registry::local::LocalRegistry;
use host_core::{ArtifactCache, Limits, Metering, PolicyEngine, RegistryFollower, TenantPolicies};

/// The event the engine logs once per compilation.
const COMPILED: &str = "sandbox.compiled";

/// host-cli with the engine's compilation events on stderr.
fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-cli"));
    cmd.env("RUST_LOG", "host_sandbox=info")
        .env("NO_COLOR", "1")
        .env_remove("TMF632_REGISTRY");
    cmd
}

/// Runs host-cli `args` in `dir` with its own cache directory (artifacts and toolchains),
/// asserting success; returns its output and how many times it compiled a component.
fn ok(dir: &Path, cache: &Path, args: &[&str]) -> (Output, usize) {
    let out = run_ok(
        cli()
            .current_dir(dir)
            .args(args)
            .arg("--cache-dir")
            .arg(cache),
    );
    let compiled = String::from_utf8_lossy(&out.stderr)
        .matches(COMPILED)
        .count();
    (out, compiled)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Python and JavaScript toolchains are the ones the test script installs.
fn foreign_toolchains() {
    if std::env::var_os("FOREIGN_POLICIES").is_none() {
        panic!(
            "FOREIGN_POLICIES is not set: the Python and JavaScript projects need the pinned \
             componentize-py and componentize-js that scripts/build-foreign-policies.sh installs \
             (node >= 20, python3); scripts/test.sh runs it and sets FOREIGN_POLICIES"
        );
    }
}

/// `policy new NAME --lang LANG` in a temporary directory, then `policy build`, the commands
/// that load the built policy, and `policy upload` to a local registry; returns the project
/// and the registry.
fn new_build_upload(lang: &str, expected: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let name = format!("my-{lang}-policy");
    let project = tmp.path().join(&name);

    let (out, _) = ok(
        tmp.path(),
        &cache,
        &["policy", "new", &name, "--lang", lang],
    );
    let listed = stdout(&out);
    for file in ["README.md", "conflicts.jsonl"].iter().chain(expected) {
        assert!(
            project.join(file).exists(),
            "{lang}: policy new wrote no {file}:\n{listed}"
        );
    }
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("host-cli "))
        .collect();
    assert_eq!(commands.len(), 3, "{lang}: a README of three commands");

    // Built from the project's directory, as its README says (`host-cli policy build`).
    let (out, compiled) = ok(&project, &cache, &["policy", "build"]);
    let text = stdout(&out);
    let wasm = project.join("build/policy.wasm");
    let bytes = std::fs::read(&wasm).expect("policy build writes build/policy.wasm");
    let digest = host_core::digest(&bytes);
    assert!(text.contains("accepted"), "{lang}: {text}");
    assert!(
        text.contains(&format!("digest     sha256:{digest}")),
        "{lang}: policy build prints the digest:\n{text}"
    );
    assert!(
        text.contains(&format!("name       {name} 0.1.0")),
        "{lang}: {text}"
    );
    assert_eq!(
        compiled, 2,
        "{lang}: policy build compiles once per engine (serving, law-checking)"
    );

    // Every later command loads what the build compiled.
    let policy = wasm.to_str().unwrap();
    let registry = tmp.path().join("policy-registry");
    let registry_arg = registry.to_str().unwrap().to_owned();
    let conflicts = project.join("conflicts.jsonl");
    let conflicts = conflicts.to_str().unwrap();
    let commands: [Vec<&str>; 4] = [
        vec!["validate", policy],
        vec!["dry-run", "--policy", policy, "--conflicts", conflicts],
        vec!["simulate", "--policy", policy, "--no-swap", "--seed", "1"],
        vec![
            "policy",
            "upload",
            policy,
            "--tenant",
            "acme",
            "--registry",
            &registry_arg,
            "--cases",
            "2",
        ],
    ];
    // The law checks of a Python or JavaScript policy take minutes; the upload's gate runs on
    // the same engine and cache as `policy check`, which runs here for Rust.
    let check = ["policy", "check", policy, "--cases", "2", "--seed", "1"];
    let commands = commands
        .iter()
        .map(Vec::as_slice)
        .chain((lang == "rust").then_some(&check[..]));
    for args in commands {
        let (out, compiled) = ok(&project, &cache, args);
        assert_eq!(
            compiled,
            0,
            "{lang}: `{}` compiled the policy again:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (tmp, registry, digest)
}

/// The upload stored the hosts' compiled form beside the component, and a host whose cache is
/// empty (a cold start elsewhere) loads the activated version from it without compiling.
fn a_host_loads_it_precompiled(tmp: &Path, registry: &Path, digest: &str) {
    let engine = PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap();
    let artifact = registry
        .join("precompiled")
        .join(engine.compatibility_hash())
        .join(format!("{digest}.cwasm"));
    assert!(
        artifact.is_file(),
        "the upload stored no artifact at {}",
        artifact.display()
    );
    let out = run_ok(
        cli()
            .args([
                "policy",
                "activate",
                digest,
                "--tenant",
                "acme",
                "--registry",
            ])
            .arg(registry),
    );
    assert!(stdout(&out).contains("active"), "{}", stdout(&out));
    let host_cache = tmp.join("host-cache");
    let policies = Arc::new(TenantPolicies::new());
    let follower = RegistryFollower::new(
        Arc::new(LocalRegistry::new(registry)),
        policies.clone(),
        engine,
        Some(ArtifactCache::new(&host_cache)),
        Duration::from_secs(1),
    );
    follower
        .refresh("acme")
        .expect("the host loads the version");
    let active = policies.get("acme").expect("the tenant has a policy");
    assert_eq!(active.policy.digest(), digest);
    assert!(
        active.policy.info().from_cache,
        "the host compiled the version instead of loading the uploaded artifact"
    );
}

#[test]
fn a_rust_project_builds_and_uploads() {
    let (tmp, registry, digest) =
        new_build_upload("rust", &["Cargo.toml", "Cargo.lock", "src/lib.rs"]);
    let manifest = std::fs::read_to_string(tmp.path().join("my-rust-policy/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("resolver-wasm/sdk"),
        "the SDK by path:\n{manifest}"
    );
    a_host_loads_it_precompiled(tmp.path(), &registry, &digest);
}

#[test]
fn a_python_project_builds_and_uploads() {
    foreign_toolchains();
    let (tmp, registry, digest) = new_build_upload(
        "python",
        &[
            "app.py",
            "default_merge.py",
            "wit/policy.wit",
            "stubs/wit_world",
        ],
    );
    // The type names the contract gives, where an author (and an editor) finds them.
    let stubs = std::fs::read_to_string(
        tmp.path()
            .join("my-python-policy/stubs/wit_world/exports/resolver.py"),
    )
    .unwrap();
    for name in ["class MergedElements", "class EntryRef", "LOCAL_DOMINATES"] {
        assert!(stubs.contains(name), "the stubs lack {name}");
    }
    a_host_loads_it_precompiled(tmp.path(), &registry, &digest);
}

#[test]
fn a_javascript_project_builds_and_uploads() {
    foreign_toolchains();
    let (tmp, registry, digest) = new_build_upload(
        "js",
        &[
            "index.js",
            "default-merge.js",
            "bom-fix.js",
            "wit/policy.wit",
            "types/interfaces/tmf632-conflict-resolver.d.ts",
        ],
    );
    a_host_loads_it_precompiled(tmp.path(), &registry, &digest);
}

#[test]
fn a_project_is_not_written_over_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let out = cli()
        .args(["policy", "new", "p", "--lang", "rust", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn a_project_is_not_written_inside_the_repository() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo
        .join("target")
        .join(format!("policy-new-{}", std::process::id()));
    let out = cli()
        .args(["policy", "new", "p", "--lang", "python", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inside the repository"), "{stderr}");
    assert!(!dir.exists());
}

/// The README's commands for starting a policy, as printed (the CLI this test was built with
/// stands for the `cargo build` of the first line).
#[test]
fn the_readmes_policy_commands_work() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("`host-cli/tests/policy_new.rs` runs these")
        .expect("the README's Writing a policy section");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let mut lines = block.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with("cargo build -p host-cli"), "{first}");
    let script: String = lines.map(|l| format!("{l}\n")).collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_host-cli")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TMPDIR", tmp.path())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env_remove("TMF632_REGISTRY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the README's commands failed:\n{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepted"), "{stdout}");
    assert!(
        stdout.contains("email-vs-marital-status"),
        "dry-run prints the samples: {stdout}"
    );
}
