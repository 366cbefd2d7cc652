//! Precompiled artifacts on local disk, keyed by the engine's compatibility hash and the
//! component's sha256: the first load of a policy compiles it (upload time), later loads, in
//! this process or after a cold start, deserialize it. An artifact can also come from
//! elsewhere ([`ArtifactCache::install`]: the one the registry keeps beside the component),
//! so that a host's first load of a version compiles nothing — or from a read-only directory
//! shipped with the host ([`ArtifactCache::with_packaged`]: the Lambda package's artifacts,
//! made by `host-cli policy precompile --target` for the deployed architecture), so that a cold
//! start in a fresh execution environment, whose cache directory is empty, compiles nothing.

use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::engine::PolicyEngine;
use crate::error::LoadError;

#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// Artifacts shipped with the host, `{digest}.cwasm`, read when `dir` has none.
    packaged: Option<PathBuf>,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactCache {
            dir: dir.into(),
            packaged: None,
        }
    }

    /// Also reads `{packaged}/{digest}.cwasm` when this engine's directory has no artifact for
    /// a component: artifacts compiled elsewhere for this host's architecture
    /// ([`PolicyEngine::precompile_for`]). They are keyed by digest alone, because the
    /// compatibility hash of the engine that loads them names the CPU features this host
    /// detected, which the machine that compiled them could not know; wasmtime checks at load
    /// that every feature an artifact uses is present, and one that does not load is compiled
    /// instead. Like [`ArtifactCache::install`], they are native code: the directory must be
    /// as trusted as the host's own binary (it ships in the same package).
    pub fn with_packaged(mut self, packaged: impl Into<PathBuf>) -> Self {
        self.packaged = Some(packaged.into());
        self
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
        if let Some(component) = self.packaged(engine, digest) {
            return Ok((component, true));
        }
        let component = engine.compile(bytes)?;
        self.store(&path, &component)?;
        Ok((component, false))
    }

    /// The component from the packaged directory, when it has an artifact this host can run.
    fn packaged(&self, engine: &PolicyEngine, digest: &str) -> Option<Component> {
        let path = self.packaged.as_ref()?.join(format!("{digest}.cwasm"));
        if !path.is_file() {
            return None;
        }
        // SAFETY: the packaged directory ships with the host binary and is as trusted as it
        // (`with_packaged`); wasmtime refuses an artifact of another version, target or
        // configuration, or one using CPU features this host lacks.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&engine.engine, &path) };
        match loaded {
            Ok(component) => {
                tracing::info!(path = %path.display(), "host.cache.packaged");
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "host.cache.packaged_incompatible: compiling");
                None
            }
        }
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

    /// An engine with the default limits, and the default policy with its digest.
    fn default_policy() -> (PolicyEngine, &'static [u8], String) {
        let engine = PolicyEngine::new(Limits::default(), Metering::Epoch).unwrap();
        let bytes = default_policy_artifact::DEFAULT_POLICY;
        (engine, bytes, crate::digest(bytes))
    }

    /// A cache with an empty directory (a fresh execution environment) whose packaged
    /// directory ships `artifact` as the compiled `digest`; the directories are removed when
    /// the returned guards drop.
    fn cache_with_packaged(
        digest: &str,
        artifact: &[u8],
    ) -> (ArtifactCache, [tempfile::TempDir; 2]) {
        let (cache_dir, packaged) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(packaged.path().join(format!("{digest}.cwasm")), artifact).unwrap();
        let cache = ArtifactCache::new(cache_dir.path()).with_packaged(packaged.path());
        (cache, [cache_dir, packaged])
    }

    /// An artifact read from one cache and installed into another is loaded, not compiled.
    #[test]
    fn an_installed_artifact_is_loaded_without_compiling() {
        let (engine, bytes, digest) = default_policy();
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

    /// This machine's target, as `policy precompile --target` names it.
    fn host_target() -> String {
        format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
    }

    /// A policy compiled for this host's target by another engine (as `policy precompile`
    /// does for a Lambda package) and shipped in the packaged directory is loaded, not
    /// compiled, though the cache directory is empty (a fresh execution environment).
    #[test]
    fn a_packaged_artifact_is_loaded_when_the_cache_is_empty() {
        let (engine, bytes, digest) = default_policy();
        let artifact = engine.precompile_for(bytes, &host_target()).unwrap();
        let (cache, _dirs) = cache_with_packaged(&digest, &artifact);
        let policy = Policy::load(&engine, bytes, Some(&cache)).unwrap();
        assert!(
            policy.info().from_cache,
            "the packaged artifact was not used"
        );
        // Nothing was compiled, so nothing was stored in the cache either.
        assert!(!cache.contains(&engine, &digest));
    }

    /// A packaged artifact this host cannot run (here: not an artifact at all) is not trusted
    /// or fatal: the policy is compiled, and the cache keeps the result.
    #[test]
    fn a_packaged_artifact_that_does_not_load_is_compiled_instead() {
        let (engine, bytes, digest) = default_policy();
        let (cache, _dirs) = cache_with_packaged(&digest, b"\x7fELF not one");
        let policy = Policy::load(&engine, bytes, Some(&cache)).unwrap();
        assert!(!policy.info().from_cache);
        assert!(cache.contains(&engine, &digest));
    }

    /// The default policy compiled for the Lambda functions' aarch64.
    #[cfg(target_arch = "x86_64")]
    fn precompile_for_aarch64() -> Result<Vec<u8>, LoadError> {
        let (engine, bytes, _) = default_policy();
        engine.precompile_for(bytes, "aarch64-unknown-linux-gnu")
    }

    /// Without the arm64 backend in the build, compiling for aarch64 is refused with what to do.
    #[cfg(all(target_arch = "x86_64", not(feature = "arm64")))]
    #[test]
    fn another_architecture_needs_its_backend() {
        let e = precompile_for_aarch64().unwrap_err();
        assert!(matches!(e, LoadError::Target(..)), "{e}");
        assert!(e.to_string().contains("--features cross"), "{e}");
    }

    /// With the arm64 backend, an x86-64 machine compiles for the Lambda functions' aarch64.
    #[cfg(all(target_arch = "x86_64", feature = "arm64"))]
    #[test]
    fn the_arm64_backend_compiles_for_aarch64() {
        let artifact = precompile_for_aarch64().unwrap();
        // An ELF file for aarch64 (e_machine 183), which this machine refuses to load.
        assert_eq!(&artifact[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([artifact[18], artifact[19]]), 183);
    }
}
