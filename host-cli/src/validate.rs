//! `validate`: would a host accept this policy?

use crate::common::{self, CacheOpts};
use clap::Args;
use host_core::Metering;
use std::process::ExitCode;

/// Checks a policy component as a host would at load time, and prints what it found:
/// description, contract version, imports, size, digest.
///
/// Examples:
///   host-cli validate default
///   host-cli validate my-policy.wasm --json
///
/// Exit status: 0 when the policy would be accepted, 1 when it would be refused (the reason
/// is printed), 2 when the file cannot be read.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// A component file, or `default` for the embedded default policy.
    pub policy: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let bytes = common::policy_bytes(&o.policy)?;
    report(&o.policy, &bytes, &o.cache, o.json)
}

/// Loads the component `bytes` (named `name` in the output) as a host would, through the
/// cache, and prints what validation found; `policy build` prints the same.
pub fn report(name: &str, bytes: &[u8], cache: &CacheOpts, json: bool) -> anyhow::Result<ExitCode> {
    let engine = common::engine(Metering::Epoch)?;
    let digest = host_core::digest(bytes);
    match host_core::Policy::load(&engine, bytes, cache.cache().as_ref()) {
        Ok(policy) => {
            let info = policy.info();
            if json {
                let v = serde_json::json!({
                    "accepted": true,
                    "policy": name,
                    "name": info.description.name,
                    "version": info.description.version,
                    "contractVersion": info.description.contract_version,
                    "imports": info.imports,
                    "exports": info.exports,
                    "calls": calls(info),
                    "size": info.size,
                    "digest": info.digest,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("accepted   {name}");
                println!(
                    "name       {} {}",
                    info.description.name, info.description.version
                );
                println!("contract   {}", info.description.contract_version);
                let imports = if info.imports.is_empty() {
                    "none".to_owned()
                } else {
                    info.imports.join(", ")
                };
                println!("imports    {imports}");
                println!("exports    {}", info.exports.join(", "));
                println!("calls      {}", calls(info));
                println!("size       {} bytes", info.size);
                println!("digest     sha256:{}", info.digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({"accepted": false, "policy": name, "digest": digest, "size": bytes.len(), "reason": e.to_string()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("refused    {name}");
                println!("reason     {e}");
                println!("size       {} bytes", bytes.len());
                println!("digest     sha256:{digest}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// How the hosts will call the policy: what it is sent, and in which form.
fn calls(info: &host_core::PolicyInfo) -> String {
    let form = if info.packed {
        format!("packed (format {})", info.packed_format as u8)
    } else if info.typed_writes {
        "typed, with the writes".to_owned()
    } else {
        "typed".to_owned()
    };
    let sent = if info.differences_only {
        "only what differs"
    } else {
        "whole versions"
    };
    format!("{form}, {sent}")
}
