//! Precompiled artifacts on local disk, keyed by the engine's compatibility hash and the
//! component's sha256: the first load of a policy compiles it (upload time), later loads, in
//! this process or after a cold start, deserialize it.

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

    fn store(&self, path: &Path, component: &Component) -> Result<(), LoadError> {
        let artifact = component.serialize().map_err(LoadError::Precompile)?;
        // Written whole, so a concurrent reader never sees half an artifact.
        crate::files::write_atomically(path, &artifact).map_err(LoadError::Cache)
    }
}
