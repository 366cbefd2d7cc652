//! Build-script helper: builds policy crates of this workspace for wasm and wraps each as a
//! component, so that `cargo build` of a host needs no extra step.
//!
//! Guests for `wasm32-unknown-unknown` come out as core modules carrying their WIT in a custom
//! section; `wit-component` turns them into components in-process. Such a guest imports nothing
//! at all, which is what a policy must be. Guests for `wasm32-wasip2` are components already
//! (and import WASI); only hostile test guests are built that way.
//!
//! The guests are built by a nested `cargo build` into their own target directory (the outer
//! build holds the lock on the main one), with the `guest` profile of the workspace.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target a guest is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// No WASI at all: the target for policies.
    Unknown,
    /// WASI preview 2: the standard library imports WASI interfaces.
    Wasip2,
}

impl Target {
    pub fn triple(self) -> &'static str {
        match self {
            Target::Unknown => "wasm32-unknown-unknown",
            Target::Wasip2 => "wasm32-wasip2",
        }
    }
}

/// What an outer build sets for itself and must not leak into a policy's build: its flags
/// (e.g. -D warnings from CI, coverage instrumentation), clippy's wrapper, its target.
pub const OUTER_BUILD_VARS: [&str; 7] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PROFILE_RELEASE_DEBUG",
];

/// Builds `packages` (crates of the workspace at `workspace`) for `target` and writes one
/// component per package into `out_dir` as `<package>.wasm`. Returns the paths, in order.
pub fn build(workspace: &Path, packages: &[&str], target: Target, out_dir: &Path) -> Vec<PathBuf> {
    for dir in [
        "wit",
        "resolver-wasm/types",
        "resolver-wasm/merge",
        "resolver-wasm/packed",
        "resolver-wasm/sdk",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    ensure_target(workspace, target);

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            target.triple(),
            "--target-dir",
        ])
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the policy guests: {e}"));
    assert!(
        status.success(),
        "building the policy guests {packages:?} for {} failed",
        target.triple()
    );

    packages
        .iter()
        .map(|package| {
            let file = package.replace('-', "_");
            let built = target_dir
                .join(target.triple())
                .join("guest")
                .join(format!("{file}.wasm"));
            println!("cargo:rerun-if-changed={}", built.display());
            let bytes = std::fs::read(&built)
                .unwrap_or_else(|e| panic!("reading the built guest {}: {e}", built.display()));
            let component = component_of(bytes)
                .unwrap_or_else(|e| panic!("turning {package} into a component: {e}"));
            let out = out_dir.join(format!("{package}.wasm"));
            std::fs::write(&out, component)
                .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
            out
        })
        .collect()
}

/// The component a build produced: `bytes` as they are when they are one already (a
/// `wasm32-wasip2` build), otherwise the core module wrapped as one, validated.
pub fn component_of(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if wasmparser::Parser::is_component(&bytes) {
        return Ok(bytes);
    }
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// Installs the wasm target through rustup when the toolchain lacks it: a `rust-toolchain.toml`
/// lists it, but rustup does not add targets to a toolchain that is already installed.
fn ensure_target(workspace: &Path, target: Target) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target.triple()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|d| d.is_dir()) {
        return;
    }
    println!(
        "cargo:warning=installing the {} target with rustup",
        target.triple()
    );
    let status = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", target.triple()])
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the {} target is missing and rustup cannot run: {e}",
                target.triple()
            )
        });
    assert!(
        status.success(),
        "rustup target add {} failed",
        target.triple()
    );
}
