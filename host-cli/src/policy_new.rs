//! `policy new`: a policy project to start from, in Rust, Python or JavaScript, that `policy
//! build` builds as it is. Its files come from the repository (the default merge of each
//! language, the contract, the sample conflicts, the pinned toolchain), so a project made from
//! a checkout builds against exactly what that checkout tests.

use crate::common::{self, CacheOpts};
use crate::toolchains::{self, checkout};
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};

/// The language of a policy project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with the policy SDK (resolver-wasm/sdk), built for wasm32-unknown-unknown.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    /// The file whose presence says a directory is a project of this language, and where the
    /// policy's rules go.
    pub fn source(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::Js => "index.js",
        }
    }
}

/// Writes a new policy project: the policy (the default merge, to change), its bindings or type
/// stubs, a README of the three commands that build, try and upload it, and sample conflicts.
///
/// The directory must be new (or empty) and outside the host-cli checkout. A Rust project
/// depends on the checkout's policy SDK by path and carries its Cargo.lock, so it builds
/// without the network. A Python or JavaScript project carries the default merge in its
/// language (default_merge.py, default-merge.js) and the contract (wit/policy.wit); its type
/// stubs (stubs/wit_world for Python, types/ for JavaScript) are generated with the pinned
/// toolchain, installed into the cache directory's tools/ when missing.
///
/// Examples:
///   host-cli policy new eu-contacts --lang rust
///   host-cli policy new eu-contacts --lang python --dir ~/policies/eu-contacts
///
/// Exit status: 0 when the project is written, 2 otherwise (the reason is printed).
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// The policy's name: lower-case letters, digits and '-', starting with a letter.
    pub name: String,
    /// The language the policy is written in.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where the project goes [default: ./NAME].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheOpts,
}

const README: &str = include_str!("../templates/README.md");
const CONFLICTS: &str = include_str!("../../samples/conflicts.jsonl");
const CONTRACT: &str = include_str!("../../wit/policy.wit");

const RUST_MANIFEST: &str = include_str!("../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../templates/rust/lib.rs");
const RUST_TOOLCHAIN: &str = include_str!("../../rust-toolchain.toml");
/// The checkout's lock: the project resolves the SDK's dependencies to the versions the
/// checkout builds (and has downloaded), so `cargo build --offline` finds them.
const RUST_LOCK: &str = include_str!("../../Cargo.lock");

const PY_APP: &str = include_str!("../templates/python/app.py");
const PY_MERGE: &str = include_str!("../../policies/python/na-status/default_merge.py");
const PY_PYRIGHT: &str = include_str!("../templates/python/pyrightconfig.json");

const JS_INDEX: &str = include_str!("../templates/js/index.js");
const JS_MERGE: &str = include_str!("../../policies/js/na-status/default-merge.js");
const JS_BOM: &str = include_str!("../../policies/js/na-status/bom-fix.js");

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    check_name(&o.name)?;
    let dir = o.dir.clone().unwrap_or_else(|| PathBuf::from(&o.name));
    check_place(&dir)?;
    let files = files(&o.name, o.lang);
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = format!(
        "created    {} ({} policy {})\n",
        dir.display(),
        o.lang.name(),
        o.name
    );
    for (path, _) in &files {
        out.push_str(&format!("           {path}\n"));
    }
    if let Some(stubs) = stubs(o.lang, &dir, &o.cache) {
        match stubs {
            Ok(what) => out.push_str(&format!("           {what}\n")),
            // The project builds without them: say why they are missing and go on.
            Err(e) => eprintln!(
                "warning: the type stubs were not generated ({e:#}); `policy build` does not \
                 need them"
            ),
        }
    }
    out.push_str(&format!(
        "\nnext: cd {} && host-cli policy build   (README.md has the three commands)\n",
        dir.display()
    ));
    common::emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// A policy name is a crate name, a file name and a description at once.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "{name:?} is not a policy name; use lower-case letters, digits and '-', starting \
             with a letter (at most 64), such as eu-contacts"
        );
    }
    Ok(())
}

/// The project's directory must be new or empty, and outside the checkout (a project there
/// would be taken for part of the repository's workspace, and committed with it).
fn check_place(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty; give a new directory (--dir PATH)",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    let absolute = resolved(dir)?;
    let repo = checkout();
    if absolute.starts_with(&repo) {
        bail!(
            "{} is inside the repository host-cli was built from ({}); a policy project \
             lives outside it: give --dir PATH elsewhere",
            absolute.display(),
            repo.display()
        );
    }
    Ok(())
}

/// `dir` as an absolute path with its existing part's links resolved: the nearest existing
/// ancestor canonicalized, the rest appended.
fn resolved(dir: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::env::current_dir()?.join(dir);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(parent) = existing.parent() else {
            break;
        };
        rest.push(existing.file_name().map(PathBuf::from).unwrap_or_default());
        existing = parent;
    }
    let mut path = existing
        .canonicalize()
        .with_context(|| format!("resolving {}", existing.display()))?;
    for part in rest.iter().rev() {
        for c in part.components() {
            if let Component::Normal(n) = c {
                path.push(n);
            }
        }
    }
    Ok(path)
}

/// The project's files, by path relative to its directory.
fn files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let fill = |t: &str| t.replace("{{name}}", name);
    let mut files: Vec<(String, String)> = Vec::new();
    let listing = match lang {
        Lang::Rust => {
            let sdk = checkout().join("resolver-wasm/sdk");
            files.push((
                "Cargo.toml".into(),
                fill(RUST_MANIFEST).replace("{{sdk}}", &toml_string(&sdk)),
            ));
            files.push(("Cargo.lock".into(), RUST_LOCK.into()));
            files.push(("rust-toolchain.toml".into(), RUST_TOOLCHAIN.into()));
            files.push(("src/lib.rs".into(), fill(RUST_LIB)));
            files.push((".gitignore".into(), "/build\n/target\n".into()));
            "- `src/lib.rs`: the policy (`policy_sdk::merge::resolve` is the default merge; \
             `policy_sdk::types` the contract's types, `policy_sdk::fields` helpers for fields \
             and entries).\n\
             - `Cargo.toml`, `Cargo.lock`, `rust-toolchain.toml`: the SDK by path, and the \
             versions and toolchain of the checkout."
        }
        Lang::Python => {
            files.push(("app.py".into(), fill(PY_APP)));
            files.push(("default_merge.py".into(), PY_MERGE.into()));
            files.push(("wit/policy.wit".into(), CONTRACT.into()));
            files.push(("pyrightconfig.json".into(), PY_PYRIGHT.into()));
            files.push((".gitignore".into(), "/build\n__pycache__/\n".into()));
            "- `app.py`: the policy (class `Resolver`).\n\
             - `default_merge.py`: the default merge in Python (`merge.resolve`, `merge.field`, \
             `merge.last_writer`, `merge.set_field`, ...).\n\
             - `stubs/wit_world/`: the contract's types as componentize-py generates them \
             (`MergedElements`, `EntryRef`, `Relation.LOCAL_DOMINATES`, `Resolution_Merged`, \
             ...), for your editor (pyrightconfig.json points at them).\n\
             - `wit/policy.wit`: the contract."
        }
        Lang::Js => {
            files.push(("index.js".into(), fill(JS_INDEX)));
            files.push(("default-merge.js".into(), JS_MERGE.into()));
            files.push(("bom-fix.js".into(), JS_BOM.into()));
            files.push(("wit/policy.wit".into(), CONTRACT.into()));
            files.push((
                "package.json".into(),
                format!(
                    "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\"\n}}\n"
                ),
            ));
            files.push((".gitignore".into(), "/build\n".into()));
            "- `index.js`: the policy (export `resolver`).\n\
             - `default-merge.js`: the default merge in JavaScript; `bom-fix.js` keeps strings \
             exactly as the host sent them (import it first).\n\
             - `types/`: the contract's types as TypeScript declarations (jco types).\n\
             - `wit/policy.wit`: the contract."
        }
    };
    let readme = fill(README)
        .replace("{{language}}", lang.name())
        .replace("{{source}}", &format!("`{}`", lang.source()))
        .replace("{{checkout}}", &checkout().display().to_string())
        .replace(
            "{{files}}",
            &format!(
                "{listing}\n- `conflicts.jsonl`: sample conflicts (the repository's \
                 samples/conflicts.jsonl)."
            ),
        );
    files.push(("README.md".into(), readme));
    files.push(("conflicts.jsonl".into(), CONFLICTS.into()));
    files
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Generates the type stubs of a Python or JavaScript project with its pinned toolchain;
/// `None` for Rust, whose types are the SDK's.
fn stubs(lang: Lang, dir: &Path, cache: &CacheOpts) -> Option<anyhow::Result<&'static str>> {
    let tools = || {
        cache
            .dir()
            .map(|d| toolchains::tools_dir(&d))
            .context("no cache directory for the toolchains: give --cache-dir")
    };
    match lang {
        Lang::Rust => None,
        Lang::Python => Some((|| {
            let py = toolchains::componentize_py(&tools()?)?;
            toolchains::run(
                Command::new(py)
                    .args(["-d", "wit", "-w", "policy", "bindings", "stubs"])
                    .current_dir(dir),
                "componentize-py bindings",
            )?;
            Ok("stubs/wit_world/ (componentize-py bindings)")
        })()),
        Lang::Js => Some((|| {
            let tools = tools()?;
            let modules = toolchains::componentize_js(&tools)?;
            toolchains::js_types(
                &modules,
                &tools,
                &dir.join("wit/policy.wit"),
                &dir.join("types"),
            )?;
            Ok("types/ (TypeScript declarations, from jco)")
        })()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_crate_and_file_name() {
        for good in ["eu-contacts", "p1", "a"] {
            check_name(good).unwrap();
        }
        for bad in ["", "EU", "1st", "eu_contacts", "../x", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_project_is_refused_inside_the_checkout() {
        let inside = checkout().join("target").join("some-policy");
        let e = check_place(&inside).unwrap_err().to_string();
        assert!(e.contains("inside the repository"), "{e}");
    }
}
