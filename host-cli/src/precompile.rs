//! `policy precompile`: a policy compiled for the hosts of a deployment, to ship in their
//! package, so that a cold start in a fresh execution environment loads it instead of
//! compiling it (BENCHMARKS.md, "Lambda cold start": compiling is most of a cold start).

use crate::common::{self, CacheOpts};
use anyhow::Context as _;
use clap::Args;
use host_core::Metering;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compiles a policy for hosts of another machine (by default the Lambda functions' arm64)
/// and writes the artifact as OUT/{sha256}.cwasm, the name a host looks for in its packaged
/// directory (POLICY_PACKAGED_DIR; on Lambda $LAMBDA_TASK_ROOT/precompiled).
///
/// The policy is checked first as a host would load it (`validate`'s checks); the artifact
/// is compiled with the serving engine's settings and the target's baseline CPU features. A
/// host whose wasmtime, settings or CPU cannot run it compiles the policy instead (and says
/// so in its log: host.cache.packaged_incompatible), so a stale artifact costs time, never
/// correctness. Compiling for aarch64 on another architecture needs the compiler backend:
/// build with `--features cross`.
///
/// Examples:
///   host-cli policy precompile default --out target/lambda/ingest/precompiled
///   host-cli policy precompile my-policy.wasm --target x86_64-unknown-linux-gnu --out pkg/precompiled
///
/// Exit status: 0 written, 1 the policy is refused (the reason is printed), 2 other errors.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// A component file, `default` or `na-status` (the embedded policies).
    pub component: String,
    /// The hosts' target triple.
    #[arg(long, default_value = "aarch64-unknown-linux-gnu")]
    pub target: String,
    /// The directory the artifact is written into (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let engine = common::engine(Metering::Epoch)?;
    let policy = match common::load(&engine, &o.component, &o.cache)? {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let bytes = common::policy_bytes(&o.component)?;
    let artifact = engine.precompile_for(&bytes, &o.target)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let path = o.out.join(format!("{}.cwasm", policy.digest()));
    std::fs::write(&path, &artifact).with_context(|| format!("writing {}", path.display()))?;
    common::emit(&format!(
        "{} ({} bytes, for {}): {}\n",
        policy.digest(),
        artifact.len(),
        o.target,
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}
