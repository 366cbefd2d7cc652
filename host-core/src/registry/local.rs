//! The policy registry in a local directory: what the CLI uses with no AWS, and the hosts'
//! tests. Plain files, readable by people:
//!
//! ```text
//! {root}/components/{sha256}.wasm
//! {root}/precompiled/{engine}/{sha256}.cwasm      the component compiled for an engine
//! {root}/tenants/{tenant}/state.json          the tenant's state (revision, active, shadow, config)
//! {root}/tenants/{tenant}/versions/{sha256}.json
//! {root}/tenants/{tenant}/history.jsonl
//! {root}/tenants/{tenant}/shadow/{sha256}.jsonl   one line per comparison
//! ```
//!
//! Writers of one tenant take an exclusive lock on `{tenant}/.lock`, so separate processes
//! (two operators, a host recording shadow results) never interleave; files are replaced by
//! write-then-rename, so a reader never sees half a file.

use host_sandbox::files;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::failure::Failure;
use crate::registry::{
    HistoryEntry, PolicyRegistry, PolicyVersion, RegistryError, ShadowComparison, ShadowSummary,
    TenantState, check_digest, check_engine,
};
use crate::tenant::check_tenant;

#[derive(Clone, Debug)]
pub struct LocalRegistry {
    root: PathBuf,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |e| RegistryError::Storage(Failure::caused_by(format!("{what}: {e}"), e))
}

impl LocalRegistry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalRegistry { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn component_path(&self, digest: &str) -> PathBuf {
        self.root.join("components").join(format!("{digest}.wasm"))
    }

    fn precompiled_path(&self, engine: &str, digest: &str) -> PathBuf {
        self.root
            .join("precompiled")
            .join(engine)
            .join(format!("{digest}.cwasm"))
    }

    fn tenant_dir(&self, tenant: &str) -> Result<PathBuf, RegistryError> {
        check_tenant(tenant)?;
        Ok(self.root.join("tenants").join(tenant))
    }

    /// Holds the tenant's lock for the duration of `f`.
    fn locked<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&Path) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let dir = self.tenant_dir(tenant)?;
        let _lock = files::lock_dir(&dir).map_err(storage)?;
        f(&dir)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    files::write_atomically(path, bytes).map_err(storage)
}

fn storage(e: std::io::Error) -> RegistryError {
    RegistryError::Storage(Failure::caused_by(e.to_string(), e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RegistryError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            RegistryError::Corrupt(Failure::caused_by(
                format!("{} is corrupt: {e}", path.display()),
                e,
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, RegistryError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                RegistryError::Corrupt(Failure::caused_by(
                    format!("a line of {} is corrupt: {e}", path.display()),
                    e,
                ))
            })
        })
        .collect()
}

fn append_line(path: &Path, value: &impl serde::Serialize) -> Result<(), RegistryError> {
    let dir = path.parent().expect("registry files have a parent");
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut line = serde_json::to_string(value).expect("registry records serialise");
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    file.write_all(line.as_bytes())
        .map_err(io(format!("appending to {}", path.display())))
}

impl PolicyRegistry for LocalRegistry {
    fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        check_digest(digest)?;
        let path = self.component_path(digest);
        if path.is_file() && host_sandbox::digest(&fs::read(&path).unwrap_or_default()) == digest {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }

    fn put_precompiled(
        &self,
        engine: &str,
        digest: &str,
        artifact: &[u8],
    ) -> Result<bool, RegistryError> {
        check_digest(digest)?;
        check_engine(engine)?;
        write_atomically(&self.precompiled_path(engine, digest), artifact)?;
        Ok(true)
    }

    fn precompiled(&self, engine: &str, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        check_digest(digest)?;
        check_engine(engine)?;
        let path = self.precompiled_path(engine, digest);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
        }
    }

    fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        check_digest(digest)?;
        let path = self.component_path(digest);
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(RegistryError::MissingComponent(digest.to_owned()))
            }
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
        }
    }

    fn put_version(&self, version: &PolicyVersion) -> Result<bool, RegistryError> {
        check_digest(&version.digest)?;
        self.locked(&version.tenant, |dir| {
            let path = dir
                .join("versions")
                .join(format!("{}.json", version.digest));
            if path.is_file() {
                return Ok(false);
            }
            // Under the tenant's lock, so two uploads cannot both take one label.
            if let Some(label) = &version.label
                && let Some(other) = self
                    .versions(&version.tenant)?
                    .into_iter()
                    .find(|v| v.label.as_ref() == Some(label))
            {
                return Err(RegistryError::LabelTaken {
                    tenant: version.tenant.clone(),
                    label: label.clone(),
                    digest: other.digest,
                });
            }
            let text = serde_json::to_vec_pretty(version).expect("versions serialise");
            write_atomically(&path, &text)?;
            Ok(true)
        })
    }

    fn versions(&self, tenant: &str) -> Result<Vec<PolicyVersion>, RegistryError> {
        let dir = self.tenant_dir(tenant)?.join("versions");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(io(format!("listing {}", dir.display())))?
                .path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(v) = read_json::<PolicyVersion>(&path)?
            {
                versions.push(v);
            }
        }
        Ok(versions)
    }

    fn state(&self, tenant: &str) -> Result<Option<TenantState>, RegistryError> {
        read_json(&self.tenant_dir(tenant)?.join("state.json"))
    }

    fn put_state(
        &self,
        state: &TenantState,
        expected: u64,
        entry: &HistoryEntry,
    ) -> Result<(), RegistryError> {
        self.locked(&state.tenant, |dir| {
            let path = dir.join("state.json");
            let found = read_json::<TenantState>(&path)?.map_or(0, |s| s.revision);
            if found != expected {
                return Err(RegistryError::Conflict {
                    tenant: state.tenant.clone(),
                    expected,
                    found,
                });
            }
            // History first: a crash between the two leaves an entry for a change that did not
            // happen (its revision is never reached), never a change without its entry.
            append_line(&dir.join("history.jsonl"), entry)?;
            let text = serde_json::to_vec_pretty(state).expect("states serialise");
            write_atomically(&path, &text)
        })
    }

    fn append_history(&self, entry: &HistoryEntry) -> Result<(), RegistryError> {
        self.locked(&entry.tenant, |dir| {
            append_line(&dir.join("history.jsonl"), entry)
        })
    }

    fn history(&self, tenant: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        let dir = self.tenant_dir(tenant)?;
        let entries: Vec<HistoryEntry> = read_lines(&dir.join("history.jsonl"))?;
        // Entries of changes whose state write never happened (see put_state) are dropped.
        let reached = self.state(tenant)?.map_or(0, |s| s.revision);
        Ok(entries
            .into_iter()
            .filter(|e| e.revision <= reached)
            .collect())
    }

    fn tenants(&self) -> Result<Vec<String>, RegistryError> {
        let dir = self.root.join("tenants");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
        };
        let mut tenants: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|t| check_tenant(t).is_ok())
            .collect();
        tenants.sort();
        Ok(tenants)
    }

    fn record_shadow(&self, comparison: &ShadowComparison) -> Result<(), RegistryError> {
        check_digest(&comparison.candidate)?;
        self.locked(&comparison.tenant, |dir| {
            let path = dir
                .join("shadow")
                .join(format!("{}.jsonl", comparison.candidate));
            if comparison.agreed {
                // Agreements are counted, not kept: the line carries no party data.
                let mut counted = comparison.clone();
                counted.active_outcome = None;
                counted.candidate_outcome = None;
                counted.conflict = None;
                append_line(&path, &counted)
            } else {
                append_line(&path, comparison)
            }
        })
    }

    fn shadow_summary(
        &self,
        tenant: &str,
        candidate: &str,
    ) -> Result<ShadowSummary, RegistryError> {
        check_digest(candidate)?;
        let path = self
            .tenant_dir(tenant)?
            .join("shadow")
            .join(format!("{candidate}.jsonl"));
        let lines: Vec<ShadowComparison> = read_lines(&path)?;
        let mut summary = ShadowSummary::default();
        for c in lines {
            summary.compared += 1;
            if !c.agreed {
                summary.disagreed += 1;
                summary.disagreements.push(c);
            }
        }
        Ok(summary)
    }
}

/// Opens (creating) the registry's directory; a path that exists and is not a directory is
/// refused with what it is.
pub fn open(root: impl Into<PathBuf>) -> Result<LocalRegistry, RegistryError> {
    let root = root.into();
    if root.exists() && !root.is_dir() {
        return Err(RegistryError::Refused(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    fs::create_dir_all(&root).map_err(io(format!("creating {}", root.display())))?;
    Ok(LocalRegistry::new(root))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_corrupt_file_is_named_keeps_its_cause_and_is_not_worth_a_retry() {
        let root = tempfile::tempdir().unwrap();
        let registry = LocalRegistry::new(root.path());
        let dir = root.path().join("tenants").join("acme");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("state.json"), b"{\"revision\": ").unwrap();

        let e = registry.state("acme").unwrap_err();
        assert!(matches!(e, RegistryError::Corrupt(_)), "{e:?}");
        assert!(
            !e.is_transient(),
            "reading the same bytes again cannot help"
        );
        assert!(e.to_string().contains("state.json is corrupt"), "{e}");
        let cause = e
            .source()
            .and_then(|f| f.source())
            .expect("the parser's error is kept");
        assert!(
            cause.downcast_ref::<serde_json::Error>().is_some(),
            "{cause:?}"
        );
    }
}
