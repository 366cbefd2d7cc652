//! What the subcommands share: where a policy comes from, the engine, the artifact cache.

use anyhow::Context as _;
use clap::Args;
use host_core::{ArtifactCache, Limits, LoadError, Metering, Policy, PolicyEngine};
use std::path::PathBuf;

/// Where precompiled policies are kept between runs.
#[derive(Args, Clone, Debug)]
pub struct CacheOpts {
    /// Directory of precompiled policy artifacts [default: $XDG_CACHE_HOME/tmf632-policies or
    /// ~/.cache/tmf632-policies].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every policy from its bytes; read and write no artifact.
    #[arg(long, global = true)]
    pub no_cache: bool,
}

impl CacheOpts {
    pub fn cache(&self) -> Option<ArtifactCache> {
        if self.no_cache {
            return None;
        }
        let dir = self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("tmf632-policies"))
        })?;
        Some(ArtifactCache::new(dir))
    }
}

/// The bytes of a policy named on the command line: `default` is the embedded default policy,
/// `na-status` the embedded example policy, anything else a path to a component.
pub fn policy_bytes(source: &str) -> anyhow::Result<Vec<u8>> {
    match source {
        "default" => Ok(default_policy_artifact::DEFAULT_POLICY.to_vec()),
        "na-status" => Ok(default_policy_artifact::NA_STATUS_POLICY.to_vec()),
        path => std::fs::read(path).with_context(|| format!("reading policy component {path}")),
    }
}

pub fn engine(metering: Metering) -> anyhow::Result<PolicyEngine> {
    Ok(PolicyEngine::new(Limits::default(), metering)?)
}

/// Loads and validates a policy; the error says why it would be refused.
pub fn load(
    engine: &PolicyEngine,
    source: &str,
    cache: &CacheOpts,
) -> anyhow::Result<Result<Policy, LoadError>> {
    let bytes = policy_bytes(source)?;
    Ok(Policy::load(engine, &bytes, cache.cache().as_ref()))
}

pub use host_core::registry::short;

/// Writes a JSON document (pretty, one trailing newline) to stdout.
pub fn emit_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    emit(&(serde_json::to_string_pretty(value)? + "\n"));
    Ok(())
}

/// What keeps an AWS store's clients running while the command uses it: the SDK's runtime with
/// the `aws` feature, nothing to hold (an empty type) without it.
#[cfg(feature = "aws")]
pub type AwsRuntime = tokio::runtime::Runtime;
#[cfg(not(feature = "aws"))]
pub enum AwsRuntime {}

/// The error for an AWS location in a CLI built without the AWS backends (the default build,
/// which compiles no AWS SDK).
#[cfg(not(feature = "aws"))]
pub fn no_aws(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs the AWS backends, which this host-cli was built without; run it as \
         `cargo run -p host-cli --features aws -- …` (or build with --features aws)"
    )
}

/// The AWS SDK's configuration from the environment, with the runtime its clients run on (the
/// CLI calls the sync stores from its main thread, which is not one of the runtime's workers).
#[cfg(feature = "aws")]
pub fn aws() -> anyhow::Result<(tokio::runtime::Runtime, aws_config::SdkConfig)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the AWS SDK's runtime")?;
    let sdk = runtime.block_on(aws_config::load_from_env());
    Ok((runtime, sdk))
}

/// Writes a command's output to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: writing output: {e}");
    }
}
