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
        Some(ArtifactCache::new(self.dir()?))
    }

    /// The cache directory, even with --no-cache (`policy build` keeps the toolchains it
    /// installs in its tools/).
    pub fn dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("tmf632-policies"))
        })
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
    // Credentials a named profile was to give are that profile's failure: say which. The
    // error's own line names the SDK's cause already; its source chain (printed with `{:#}`)
    // would repeat it, over several lines.
    let credentials = || {
        runtime
            .block_on(host_aws::error::check_credentials(&sdk))
            .map_err(|e| match &opts.profile {
                Some(profile) => anyhow::anyhow!("--profile {profile}: {e}"),
                None => anyhow::anyhow!("{e}"),
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

/// The deployment's regions by our names (`RegionName` in deploy/template.yaml, the
/// environments of deploy/samconfig.toml), the home region first: `all` means these, in this
/// order.
#[cfg(feature = "aws")]
pub const REGIONS: [(&str, &str); 3] = [
    ("eu", "eu-west-1"),
    ("apac", "ap-southeast-1"),
    ("na", "us-east-1"),
];

/// The AWS region a `--regions` entry names: one of our names (`apac`, `eu`, `na`, any case)
/// or an AWS region name (`eu-west-1`).
#[cfg(feature = "aws")]
pub fn aws_region(name: &str) -> anyhow::Result<String> {
    let lower = name.trim().to_ascii_lowercase();
    if let Some((_, aws)) = REGIONS.iter().find(|(ours, _)| *ours == lower) {
        return Ok((*aws).to_owned());
    }
    // An AWS region name: letters, a dash, letters, a dash, a number (eu-west-1, us-gov-west-1).
    let parts: Vec<&str> = lower.split('-').collect();
    let looks_like_aws = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if looks_like_aws {
        return Ok(lower);
    }
    let ours: Vec<String> = REGIONS
        .iter()
        .map(|(ours, aws)| format!("{ours} ({aws})"))
        .collect();
    bail!(
        "--regions: {name:?} is not a region; give {}, `all`, or AWS region names such as \
         eu-west-1",
        ours.join(", ")
    )
}

/// The AWS regions of `--regions` (comma-separated, `all` for the three), in the order given,
/// each once.
#[cfg(feature = "aws")]
pub fn aws_regions(given: &[String]) -> anyhow::Result<Vec<String>> {
    let mut regions: Vec<String> = Vec::new();
    for name in given {
        let expanded: Vec<String> = if name.trim().eq_ignore_ascii_case("all") {
            REGIONS.iter().map(|(_, aws)| (*aws).to_owned()).collect()
        } else {
            vec![aws_region(name)?]
        };
        for region in expanded {
            if regions.contains(&region) {
                bail!("--regions names {region} twice; name each region once");
            }
            regions.push(region);
        }
    }
    if regions.is_empty() {
        bail!("--regions is empty; give apac,eu,na (or `all`)");
    }
    Ok(regions)
}

/// The SDK's configuration `sdk` (credentials, endpoint, retries), in another region.
#[cfg(feature = "aws")]
pub fn aws_in(sdk: &aws_config::SdkConfig, region: &str) -> aws_config::SdkConfig {
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build()
}

/// Who the AWS credentials belong to, as STS says (GetCallerIdentity, which needs no
/// permission): what a registry change is recorded as, and the account the deployment names
/// its policy buckets after.
#[cfg(feature = "aws")]
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal's ARN: `arn:aws:iam::123456789012:user/alice`, or
    /// `arn:aws:sts::123456789012:assumed-role/deployer/alice` for a role's session.
    pub arn: String,
    pub account: String,
}

#[cfg(feature = "aws")]
pub fn caller(
    runtime: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<Caller> {
    use host_aws::error::{AwsError, Call, Resource};
    let client = aws_sdk_sts::Client::new(sdk);
    let region = sdk.region().map(|r| r.to_string());
    let out = runtime
        .block_on(client.get_caller_identity().send())
        .map_err(|e| {
            AwsError::new(
                Call {
                    action: "asking AWS who the caller is (sts:GetCallerIdentity)",
                    resource: Resource::Service("AWS STS"),
                    region: region.as_deref(),
                },
                e,
            )
        })
        // One line: the message names the SDK's cause; its chain would repeat it.
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match (out.arn, out.account) {
        (Some(arn), Some(account)) if !arn.is_empty() && !account.is_empty() => {
            Ok(Caller { arn, account })
        }
        _ => bail!(
            "AWS STS named no principal for these credentials (GetCallerIdentity answered \
             without an ARN or account); check the endpoint and the credentials"
        ),
    }
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

/// The exit status of a command that ran to the end: 0 when what it checked holds, 1 when not
/// (2 is for errors).
pub fn status(holds: bool) -> std::process::ExitCode {
    if holds {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
