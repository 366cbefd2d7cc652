//! Signed policies: `policy keygen` makes a signing key, `policy trust` names the keys a
//! tenant accepts (an audited registry change), `policy upload --sign KEY` signs a version.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::common;
use crate::registry::{Access, RegistryOpts, report};

/// Makes an Ed25519 signing key: KEY (the secret: keep it where only the signers can read it)
/// and KEY.pub (the public key, for `policy trust`). Prints the key's id.
///
/// Example:
///   host-cli policy keygen --out release-key
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct KeygenOpts {
    /// Where to write the key (and KEY.pub); an existing file is never overwritten.
    #[arg(long, value_name = "KEY")]
    out: PathBuf,
}

pub fn keygen(o: KeygenOpts) -> anyhow::Result<ExitCode> {
    let public_path = PathBuf::from(format!("{}.pub", o.out.display()));
    for path in [&o.out, &public_path] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists; keygen never overwrites a key",
            path.display()
        );
    }
    let key = host_core::signing::signing_key(rand::random());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut secret = options
        .open(&o.out)
        .with_context(|| format!("writing {}", o.out.display()))?;
    writeln!(secret, "{}", hex_of(&key.to_bytes()))?;
    let public = key.verifying_key();
    std::fs::write(&public_path, format!("{}\n", hex_of(public.as_bytes())))
        .with_context(|| format!("writing {}", public_path.display()))?;
    common::emit(&format!(
        "key {} written to {} (secret) and {} (public)\n",
        host_core::signing::key_id(&public),
        o.out.display(),
        public_path.display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys whose signatures a tenant accepts. Once a tenant trusts a key, every version
/// activated or run in shadow for it must be signed by a trusted key (`policy upload --sign`),
/// and the hosts refuse to load one that is not (the version served before keeps serving).
/// Every change is recorded in the tenant's history.
///
/// Examples:
///   host-cli policy trust list --tenant acme
///   host-cli policy trust add release-key.pub --tenant acme
///   host-cli policy trust remove 3f9c2a1b4d5e6f70 --tenant acme
#[derive(Subcommand, Debug)]
#[command(verbatim_doc_comment)]
pub enum TrustCommand {
    /// The keys the tenant trusts.
    List(TrustListOpts),
    /// Trusts a public key (KEY.pub from `policy keygen`).
    Add(TrustAddOpts),
    /// Stops trusting a key, by id.
    Remove(TrustRemoveOpts),
}

#[derive(Args, Debug)]
pub struct TrustListOpts {
    #[command(flatten)]
    registry: RegistryOpts,
}

#[derive(Args, Debug)]
pub struct TrustAddOpts {
    /// The public key file.
    public_key: PathBuf,
    #[command(flatten)]
    registry: RegistryOpts,
}

#[derive(Args, Debug)]
pub struct TrustRemoveOpts {
    /// The key's id (as `policy trust list` prints it).
    key_id: String,
    #[command(flatten)]
    registry: RegistryOpts,
}

pub fn trust(command: TrustCommand) -> anyhow::Result<ExitCode> {
    match command {
        TrustCommand::List(o) => {
            let opened = o.registry.open(Access::Existing)?;
            let state = opened
                .registry
                .store()
                .state(&o.registry.tenant)?
                .unwrap_or_else(|| host_core::registry::TenantState::new(&o.registry.tenant));
            if o.registry.json {
                common::emit_json(&json!({
                    "tenant": o.registry.tenant,
                    "signaturesRequired": !state.trusted_keys.is_empty(),
                    "trustedKeys": state.trusted_keys,
                }))?;
            } else if state.trusted_keys.is_empty() {
                common::emit(&format!(
                    "tenant {} trusts no key: versions need no signature\n",
                    o.registry.tenant
                ));
            } else {
                let mut text =
                    format!("tenant {} accepts versions signed by:\n", o.registry.tenant);
                for k in &state.trusted_keys {
                    text.push_str(&format!(
                        "  {}  added by {} at {}\n",
                        k.key_id,
                        k.added_by,
                        humantime::format_rfc3339_millis(
                            std::time::UNIX_EPOCH + std::time::Duration::from_millis(k.added_at_ms)
                        )
                    ));
                }
                common::emit(&text);
            }
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Add(o) => {
            let public =
                host_core::signing::read_public_key(&o.public_key).map_err(anyhow::Error::msg)?;
            let opened = o.registry.open(Access::Existing)?;
            report(
                &o.registry,
                opened.registry.trust(&o.registry.tenant, &public),
            )
        }
        TrustCommand::Remove(o) => {
            let opened = o.registry.open(Access::Existing)?;
            report(
                &o.registry,
                opened.registry.untrust(&o.registry.tenant, &o.key_id),
            )
        }
    }
}
