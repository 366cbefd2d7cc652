//! `policy build`: a policy project (as `policy new` writes it) into a component that a host
//! accepts, compiled once into the precompiled cache so that the commands after it (validate,
//! check, dry-run, simulate, upload) load it instead of compiling it again.

use crate::common::{self, CacheOpts};
use crate::policy_new::Lang;
use crate::toolchains::{self, checkout};
use anyhow::{Context as _, bail};
use clap::Args;
use host_core::{Metering, Policy};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Builds a policy project into a component, checks it as a host would (the checks and output
/// of `validate`), compiles it for the serving and the law-checking engines into the
/// precompiled cache, and prints its digest.
///
/// The language is told by the project's files: Cargo.toml (Rust: cargo, for
/// wasm32-unknown-unknown with the repository's `guest` profile, offline, then wrapped as a
/// component), app.py (Python: componentize-py --stub-wasi) or index.js (JavaScript:
/// componentize-js, every optional feature off). componentize-py and componentize-js are the
/// versions the repository pins, taken from the checkout or installed into the cache
/// directory's tools/ when missing.
///
/// Examples:
///   host-cli policy build
///   host-cli policy build ~/policies/eu-contacts --out eu-contacts.wasm
///
/// Exit status: 0 when built and accepted, 1 when built but refused (the reason is printed),
/// 2 when the build fails.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// The project's directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where the component is written [default: DIR/build/policy.wasm].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Cargo's target directory for a Rust project [default: the checkout's
    /// target/wasm-guests, where the repository builds its own policies, so the SDK and its
    /// dependencies are compiled once for all].
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Let cargo use the network (a dependency you added that is not downloaded yet); a Rust
    /// project is otherwise built with --offline.
    #[arg(long)]
    pub online: bool,
    /// Print one JSON object instead of text (validate's).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let lang = detect(&o.dir)?;
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| o.dir.join("build").join("policy.wasm"));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let started = Instant::now();
    let tools = || {
        o.cache
            .dir()
            .map(|d| toolchains::tools_dir(&d))
            .context("no cache directory for the toolchains: give --cache-dir")
    };
    let bytes = match lang {
        Lang::Rust => rust(&o, &out)?,
        Lang::Python => {
            let py = toolchains::componentize_py(&tools()?)?;
            let tmp = tmp_of(&out);
            // -p .: the project's folder; VIRTUAL_ENV unset so that no other environment's
            // packages are bundled; --stub-wasi: the component imports nothing, as the hosts
            // require (a WASI call traps).
            toolchains::run(
                Command::new(py)
                    .env_remove("VIRTUAL_ENV")
                    .args(["-q", "-d", "wit", "-w", "policy", "componentize", "app"])
                    .args(["-p", ".", "--stub-wasi", "-o"])
                    .arg(absolute(&tmp)?)
                    .current_dir(&o.dir),
                "componentize-py",
            )?;
            take(&tmp, &out)?
        }
        Lang::Js => {
            let tools = tools()?;
            let modules = toolchains::componentize_js(&tools)?;
            let tmp = tmp_of(&out);
            toolchains::js_build(
                &modules,
                &tools,
                &o.dir.join("index.js"),
                &o.dir.join("wit"),
                &absolute(&tmp)?,
            )?;
            take(&tmp, &out)?
        }
    };
    eprintln!(
        "built      {} ({} policy, {:.1} s)",
        out.display(),
        lang.name(),
        started.elapsed().as_secs_f64()
    );
    let label = out.display().to_string();
    let code = crate::validate::report(&label, &bytes, &o.cache, o.json)?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    // The law checks (`policy check`, the upload's gate) run on the metered engine, whose
    // compiled code differs: compiled now too, so neither compiles.
    if let Some(cache) = o.cache.cache() {
        let engine = common::engine(Metering::Fuel)?;
        Policy::load(&engine, &bytes, Some(&cache))
            .context("compiling for the law checks' metered engine")?;
        if !o.json {
            common::emit(&format!(
                "cached     {} (serving and law-checking engines)\n",
                cache.dir().display()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The project's language, by the file that only it has.
fn detect(dir: &Path) -> anyhow::Result<Lang> {
    let found: Vec<Lang> = [
        ("Cargo.toml", Lang::Rust),
        ("app.py", Lang::Python),
        ("index.js", Lang::Js),
    ]
    .into_iter()
    .filter(|(file, _)| dir.join(file).is_file())
    .map(|(_, lang)| lang)
    .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "{} is not a policy project: it has no Cargo.toml (Rust), app.py (Python) or \
             index.js (JavaScript); `host-cli policy new NAME --lang rust|python|js` makes one",
            dir.display()
        ),
        many => bail!(
            "{} has the files of more than one language ({}); keep one of Cargo.toml, app.py, \
             index.js",
            dir.display(),
            many.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Builds a Rust project as the repository builds its own policies (resolver-wasm/guest-build):
/// for wasm32-unknown-unknown, which imports nothing, with the `guest` profile, then wrapped
/// as a component.
fn rust(o: &Opts, out: &Path) -> anyhow::Result<Vec<u8>> {
    const TARGET: &str = "wasm32-unknown-unknown";
    let target_dir = match &o.target_dir {
        Some(d) => d.clone(),
        None => checkout().join("target").join("wasm-guests"),
    };
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&o.dir)
        .args([
            "build",
            "--lib",
            "--message-format",
            "json-render-diagnostics",
        ])
        .args(["--profile", "guest", "--target", TARGET, "--target-dir"])
        .arg(absolute(&target_dir)?);
    if !o.online {
        cmd.arg("--offline");
    }
    for var in guest_build::OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    cmd.stderr(std::process::Stdio::inherit());
    let output = cmd.output().context("running cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}){}",
            output.status,
            match o.online {
                false => "; if it needs a crate that is not downloaded, run again with --online",
                true => "",
            }
        );
    }
    // The cdylib cargo reports for this project: its name is the crate's.
    let module = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .context("cargo built no .wasm library: is the crate a cdylib ([lib] crate-type)?")?;
    let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    let component = guest_build::component_of(bytes)
        .map_err(|e| anyhow::anyhow!("turning {} into a component: {e}", module.display()))?;
    std::fs::write(out, &component).with_context(|| format!("writing {}", out.display()))?;
    Ok(component)
}

/// The file a tool writes before it is renamed over `out`: a failed build leaves the previous
/// component in place.
fn tmp_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    out.with_file_name(name)
}

fn take(tmp: &Path, out: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::rename(tmp, out).with_context(|| format!("renaming {}", tmp.display()))?;
    std::fs::read(out).with_context(|| format!("reading {}", out.display()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_dir()?.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_a_project_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = detect(dir.path()).unwrap_err().to_string();
        assert!(e.contains("policy new"), "{e}");
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Python);
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        assert!(detect(dir.path()).is_err());
    }
}
