//! What the subcommands share: where a policy comes from, the engine, the artifact cache,
//! where a store (the registry, the conflict log) is.

use anyhow::{Context as _, bail};
use clap::Args;
use host_core::{ArtifactCache, Limits, LoadError, Metering, Policy, PolicyEngine};
use std::path::{Path, PathBuf};

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

/// Which AWS account and region an `aws` store is in (`--registry aws`, `--log aws`); the
/// SDK's usual sources (the environment, ~/.aws/config) fill in what is not given.
#[derive(Args, Clone, Debug, Default)]
pub struct AwsOpts {
    /// The AWS region of the table and bucket (with `aws`) [default: $AWS_REGION, else the
    /// profile's region].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The AWS profile whose credentials (and region) are used (with `aws`); its credentials
    /// win over $AWS_ACCESS_KEY_ID, as with the AWS CLI [default: $AWS_PROFILE, else `default`].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

impl AwsOpts {
    /// Fails when `--region` or `--profile` is given for a store that is not on AWS: the flag
    /// would be ignored, and the command read a local directory the operator did not mean.
    pub fn unused(&self, store: &StoreFlag, path: &Path, from: &str) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            self.region.as_ref().map(|_| "--region"),
            self.profile.as_ref().map(|_| "--profile"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        bail!(
            "{} applies only to {} aws, but the {} is the directory {} ({from}); give {} aws, \
             or leave out {}",
            given.join(" and "),
            store.flag,
            store.what,
            path.display(),
            store.flag,
            given.join(" and ")
        )
    }
}

/// The AWS SDK's configuration (`opts` first, then the environment and the profile), with the
/// runtime its clients run on (the CLI calls the sync stores from its main thread, which is not
/// one of the runtime's workers). A missing region, profile or credentials is named here,
/// before any call, rather than as the first call's failure.
#[cfg(feature = "aws")]
pub fn aws(opts: &AwsOpts) -> anyhow::Result<(tokio::runtime::Runtime, aws_config::SdkConfig)> {
    use aws_config::profile::ProfileFileCredentialsProvider;
    if opts.region.as_deref() == Some("") {
        bail!("--region is empty; give a region such as eu-west-1");
    }
    if opts.profile.as_deref() == Some("") {
        bail!("--profile is empty; give a profile of ~/.aws/config, or leave it out");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the AWS SDK's runtime")?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = &opts.profile {
        // The SDK's default chain tries $AWS_ACCESS_KEY_ID before any profile; a profile
        // named on the command line is meant to be the identity used.
        loader = loader.profile_name(profile).credentials_provider(
            ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .build(),
        );
    }
    if let Some(region) = &opts.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let sdk = runtime.block_on(loader.load());
    // Credentials a named profile was to give are that profile's failure: say which.
    let credentials = || {
        runtime
            .block_on(host_aws::error::check_credentials(&sdk))
            .map_err(|e| match &opts.profile {
                Some(profile) => anyhow::anyhow!("--profile {profile}: {e}"),
                None => e.into(),
            })
    };
    if sdk.region().is_none() {
        if let Some(profile) = &opts.profile {
            // A profile that is not defined leaves no region either: that is the news.
            credentials()?;
            bail!(
                "no AWS region: pass --region, set AWS_REGION, or set `region` in profile \
                 {profile}"
            );
        }
        bail!("no AWS region: pass --region or set AWS_REGION");
    }
    credentials()?;
    Ok((runtime, sdk))
}

/// A flag that names a store, `aws` or a local directory (`--registry`, `--log`), with what
/// its messages need: where else the value may come from and what each form means.
#[derive(Debug)]
pub struct StoreFlag {
    /// The flag: `--registry`.
    pub flag: &'static str,
    /// The environment variable read when the flag is absent, `TMF632_REGISTRY`.
    pub env: &'static str,
    /// The directory used when neither is set, `policy-registry`.
    pub default: &'static str,
    /// What the store is called, `policy registry`.
    pub what: &'static str,
    /// What `aws` names, `the registry table and policy bucket on AWS, in the region of
    /// --region`.
    pub aws: &'static str,
    /// Which directory holds one, for the hint: "the directory `policy upload` created".
    pub dir: &'static str,
}

/// Where a store is.
#[derive(Debug)]
pub enum Location {
    Aws,
    /// A local directory, and what named it (for messages: `from --log`, `from
    /// $TMF632_CONFLICT_LOG`, or the default).
    Dir {
        path: PathBuf,
        from: String,
    },
}

impl StoreFlag {
    /// Where the flag's value (else the environment's, else the default) points. A value that
    /// looks like a URL is refused: read as a path it would become a directory `s3:/bucket`.
    pub fn locate(&self, given: Option<&str>) -> anyhow::Result<Location> {
        let supported = format!("{} takes a directory, or `aws` ({})", self.flag, self.aws);
        let (value, from) = match given {
            Some("") => bail!("{} is empty; {supported}", self.flag),
            Some(v) => (v.to_owned(), format!("from {}", self.flag)),
            None => match std::env::var(self.env) {
                Ok(v) if !v.is_empty() => (v, format!("from ${}", self.env)),
                _ => (
                    self.default.to_owned(),
                    format!(
                        "the default; neither {} nor ${} is set",
                        self.flag, self.env
                    ),
                ),
            },
        };
        if value == "aws" {
            return Ok(Location::Aws);
        }
        if value.contains("://") {
            bail!("{value} ({from}) is a URL, which host-cli does not read; {supported}");
        }
        Ok(Location::Dir {
            path: PathBuf::from(value),
            from,
        })
    }

    /// Checks that the directory exists: a command that only reads (or changes what is there)
    /// creates nothing, and a wrong path is named rather than read as empty.
    pub fn existing(&self, path: &Path, from: &str) -> anyhow::Result<()> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => bail!(
                "{} ({from}) is not a directory; {} takes a directory, or `aws` ({})",
                path.display(),
                self.flag,
                self.aws
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no {} at {} ({from}); give {}, or {} aws for {}",
                self.what,
                path.display(),
                self.dir,
                self.flag,
                self.aws
            ),
            Err(e) => Err(e).with_context(|| {
                format!("reading the {} at {} ({from})", self.what, path.display())
            }),
        }
    }
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
