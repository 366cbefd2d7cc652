//! Precompiled artifacts on local disk, keyed by the engine's compatibility hash and the
//! component's sha256: the first load of a policy compiles it (upload time), later loads, in
//! this process or after a cold start, deserialize it. An artifact can also come from
//! elsewhere ([`ArtifactCache::install`]: the one the registry keeps beside the component),
//! so that a host's first load of a version compiles nothing.

use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::engine::PolicyEngine;
use crate::error::LoadError;

#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, engine: &PolicyEngine, digest: &str) -> PathBuf {
        self.dir
            .join(engine.compatibility_hash())
            .join(format!("{digest}.cwasm"))
    }

    /// Whether an artifact for this component exists for this engine.
    pub fn contains(&self, engine: &PolicyEngine, digest: &str) -> bool {
        self.path(engine, digest).is_file()
    }

    /// The component compiled from `bytes` (whose sha256 is `digest`): deserialized from the
    /// cache when present, otherwise compiled and stored. Returns whether it came from the cache.
    pub fn load_or_compile(
        &self,
        engine: &PolicyEngine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, bool), LoadError> {
        let path = self.path(engine, digest);
        if path.is_file() {
            // SAFETY: artifacts in this directory are written only by `store` below, from
            // components this host compiled with an engine of the same compatibility hash (the
            // directory name). The digest names the source bytes, which the caller verified.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(&engine.engine, &path) };
            match loaded {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "host.cache.corrupt: recompiling");
                }
            }
        }
        let component = engine.compile(bytes)?;
        self.store(&path, &component)?;
        Ok((component, false))
    }

    /// The stored artifact of a component for this engine, as bytes (what an upload puts into
    /// the registry beside the component); `None` when there is none.
    pub fn artifact(&self, engine: &PolicyEngine, digest: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(engine, digest)).ok()
    }

    /// Adds an artifact compiled elsewhere (the registry's, stored at upload) for the
    /// component `digest`, so that the next load deserializes it instead of compiling.
    ///
    /// An artifact is native code, run as it is: it must come from a place written only by
    /// those who may run code in this host (the operators' registry), which is a stronger
    /// trust than a component needs (its bytes are verified against the digest and run
    /// sandboxed). An artifact for another engine, or not one at all, is refused by wasmtime
    /// at load time (header and compatibility checks) and the component is then compiled.
    pub fn install(
        &self,
        engine: &PolicyEngine,
        digest: &str,
        artifact: &[u8],
    ) -> Result<(), LoadError> {
        crate::files::write_atomically(&self.path(engine, digest), artifact)
            .map_err(LoadError::Cache)
    }

    fn store(&self, path: &Path, component: &Component) -> Result<(), LoadError> {
        let artifact = component.serialize().map_err(LoadError::Precompile)?;
        // Written whole, so a concurrent reader never sees half an artifact.
        crate::files::write_atomically(path, &artifact).map_err(LoadError::Cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Metering, Policy};

    /// An artifact read from one cache and installed into another is loaded, not compiled.
    #[test]
    fn an_installed_artifact_is_loaded_without_compiling() {
        let engine = PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap();
        let bytes = default_policy_artifact::DEFAULT_POLICY;
        let digest = crate::digest(bytes);
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (here, there) = (
            ArtifactCache::new(first.path()),
            ArtifactCache::new(second.path()),
        );
        assert!(
            !Policy::load(&engine, bytes, Some(&here))
                .unwrap()
                .info()
                .from_cache
        );
        let artifact = here.artifact(&engine, &digest).expect("the load stored it");
        assert!(!there.contains(&engine, &digest));
        there.install(&engine, &digest, &artifact).unwrap();
        assert!(
            Policy::load(&engine, bytes, Some(&there))
                .unwrap()
                .info()
                .from_cache
        );
    }
}
