//! The toolchains `policy build` runs, found or installed: cargo for Rust (the checkout's
//! pinned toolchain), componentize-py for Python and componentize-js for JavaScript at exactly
//! the versions the repository's own builds pin (scripts/build-foreign-policies.sh,
//! policies/js/package.json). A Python or JavaScript toolchain is taken from the checkout when
//! its build script installed it there, else installed once into the tools cache.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout host-cli was built from: the SDK a Rust project depends on, and where the
/// repository's scripts install the Python and JavaScript toolchains.
pub fn checkout() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// componentize-py's version, as scripts/build-foreign-policies.sh pins it (a unit test keeps
/// the two equal).
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The JavaScript toolchain's pins: the repository's own package files, so `npm ci` installs
/// exactly what the repository's JavaScript policies are built with.
const JS_PACKAGE: &str = include_str!("../../policies/js/package.json");
const JS_LOCK: &str = include_str!("../../policies/js/package-lock.json");
/// The componentize-js version that package.json pins (a unit test keeps the two equal).
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// The build script run with node: componentize-js's Node API (its CLI fails here).
const JS_BUILD: &str = include_str!("../templates/js/build.mjs");
/// The type generator run with node: jco's, on the contract's text.
const JS_TYPES: &str = include_str!("../templates/js/types.mjs");

/// Where installed toolchains are kept: `tools/` in the cache directory.
pub fn tools_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("tools")
}

/// Runs `cmd`, failing with its output when it fails; `what` names it in messages.
pub fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("running {what} ({:?})", cmd.get_program()))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// componentize-py at the pinned version: the checkout's .venv (where the repository's build
/// script installs it), else a virtualenv of its own in the tools cache, created with `python3
/// -m venv` and `pip install componentize-py==VERSION` when missing.
pub fn componentize_py(tools: &Path) -> anyhow::Result<PathBuf> {
    let own = tools.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let candidates = [
        checkout().join(".venv/bin/componentize-py"),
        own.join("bin/componentize-py"),
    ];
    for c in &candidates {
        if py_version(c).as_deref() == Some(COMPONENTIZE_PY) {
            return Ok(c.clone());
        }
    }
    eprintln!(
        "installing componentize-py {COMPONENTIZE_PY} into {}",
        own.display()
    );
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&own),
        "python3 -m venv (Python 3 with venv is needed to build a Python policy)",
    )?;
    run(
        Command::new(own.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]),
        "pip install componentize-py",
    )?;
    let installed = &candidates[1];
    match py_version(installed).as_deref() {
        Some(COMPONENTIZE_PY) => Ok(installed.clone()),
        other => bail!(
            "componentize-py in {} reports version {other:?}, not {COMPONENTIZE_PY}",
            own.display()
        ),
    }
}

/// `componentize-py --version` prints `componentize-py 0.25.1`.
fn py_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// The `node_modules` holding componentize-js at the pinned version: the checkout's
/// policies/js (where the repository's build script runs `npm ci`), else its own in the tools
/// cache, installed with `npm ci` from the repository's package files when missing.
pub fn componentize_js(tools: &Path) -> anyhow::Result<PathBuf> {
    let own = tools.join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let candidates = [
        checkout().join("policies/js/node_modules"),
        own.join("node_modules"),
    ];
    for c in &candidates {
        if js_version(c).as_deref() == Some(COMPONENTIZE_JS) {
            return Ok(c.clone());
        }
    }
    which(
        "node",
        "node >= 20 and npm are needed to build a JavaScript policy",
    )?;
    eprintln!(
        "installing componentize-js {COMPONENTIZE_JS} into {}",
        own.display()
    );
    std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
    std::fs::write(own.join("package.json"), JS_PACKAGE)?;
    std::fs::write(own.join("package-lock.json"), JS_LOCK)?;
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
            .current_dir(&own),
        "npm ci (componentize-js)",
    )?;
    match js_version(&candidates[1]).as_deref() {
        Some(COMPONENTIZE_JS) => Ok(candidates[1].clone()),
        other => bail!(
            "componentize-js in {} is version {other:?}, not {COMPONENTIZE_JS}",
            own.display()
        ),
    }
}

fn js_version(modules: &Path) -> Option<String> {
    let text =
        std::fs::read_to_string(modules.join("@bytecodealliance/componentize-js/package.json"))
            .ok()?;
    let pkg: serde_json::Value = serde_json::from_str(&text).ok()?;
    // componentize-js loads preview2-shim at run time without declaring it: both must be there.
    modules
        .join("@bytecodealliance/preview2-shim/package.json")
        .is_file()
        .then(|| pkg["version"].as_str().map(str::to_owned))?
}

/// Builds a JavaScript policy: `entry` against the contract in `wit`, into `out`.
pub fn js_build(
    modules: &Path,
    tools: &Path,
    entry: &Path,
    wit: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(tools)?;
    let script = tools.join("build-js-policy.mjs");
    std::fs::write(&script, JS_BUILD).with_context(|| format!("writing {}", script.display()))?;
    run(
        Command::new("node")
            .arg(&script)
            .arg(modules)
            .arg(entry)
            .arg(wit)
            .arg(out),
        "componentize-js",
    )
}

/// Writes the TypeScript declarations of the contract `wit` (a file) into `out`.
pub fn js_types(modules: &Path, tools: &Path, wit: &Path, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(tools)?;
    let script = tools.join("policy-types.mjs");
    std::fs::write(&script, JS_TYPES).with_context(|| format!("writing {}", script.display()))?;
    run(
        Command::new("node")
            .arg(&script)
            .arg(modules)
            .arg(wit)
            .arg(out),
        "jco's type generator",
    )
}

/// Fails with `hint` when `program` is not on the PATH.
fn which(program: &str, hint: &str) -> anyhow::Result<()> {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("{program} was not found: {hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pins are the repository's: a policy built by `policy build` is built with the tools
    /// the repository's own Python and JavaScript policies are built and tested with.
    #[test]
    fn the_pins_are_the_repositorys() {
        let script = include_str!("../../scripts/build-foreign-policies.sh");
        assert!(
            script.contains(&format!("\"componentize-py=={COMPONENTIZE_PY}\"")),
            "scripts/build-foreign-policies.sh pins another componentize-py than {COMPONENTIZE_PY}"
        );
        let pkg: serde_json::Value = serde_json::from_str(JS_PACKAGE).unwrap();
        assert_eq!(
            pkg["devDependencies"]["@bytecodealliance/componentize-js"],
            COMPONENTIZE_JS
        );
    }
}
