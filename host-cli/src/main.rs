//! `host-cli`: the operator's tool. Everything runs locally and offline on the embedded
//! default (no AWS account, no server).

mod check;
mod common;
mod diff;
mod dry_run;
mod simulate;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Conflict-resolution policies for TMF632 parties in active-active regions: validate them,
/// replay captured conflicts through them, check their laws, simulate three regions.
#[derive(Parser)]
#[command(name = "host-cli", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Validate(validate::Opts),
    DryRun(dry_run::Opts),
    Simulate(simulate::Opts),
    /// Operator commands on policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    Validate(validate::Opts),
    Check(check::Opts),
    DryRun(dry_run::Opts),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(o) | Command::Policy(PolicyCommand::Validate(o)) => validate::run(o),
        Command::DryRun(o) | Command::Policy(PolicyCommand::DryRun(o)) => dry_run::run(o),
        Command::Policy(PolicyCommand::Check(o)) => check::run(o),
        Command::Simulate(o) => simulate::run_cmd(o),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
