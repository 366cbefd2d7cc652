//! `host-cli`: the operator's tool. Everything runs locally and offline on the embedded
//! default (no AWS account, no server); the registry commands also reach the AWS registry
//! with `--registry aws`.

mod check;
mod common;
mod conflicts;
mod diff;
mod dry_run;
mod hub;
mod policy_build;
mod policy_new;
mod precompile;
mod registry;
mod serve;
mod signing;
mod simulate;
mod toolchains;
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
    Serve(serve::Opts),
    Partition(serve::PartitionOpts),
    Heal(serve::HealOpts),
    /// The hub of a running `serve`: send its dead letters again.
    #[command(subcommand)]
    Hub(hub::Command),
    Load(serve::LoadOpts),
    Simulate(simulate::Opts),
    /// Policy commands: start and build a policy project, check policies, and publish them to
    /// the registry.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The conflict log: list, show, export, replay against a candidate, resolve again.
    #[command(subcommand)]
    Conflicts(ConflictsCommand),
}

#[derive(Subcommand)]
enum ConflictsCommand {
    List(conflicts::ListOpts),
    Show(conflicts::ShowOpts),
    Export(conflicts::ExportOpts),
    Replay(conflicts::ReplayOpts),
    Resolve(conflicts::ResolveOpts),
}

#[derive(Subcommand)]
enum PolicyCommand {
    New(policy_new::Opts),
    Build(policy_build::Opts),
    Precompile(precompile::Opts),
    Validate(validate::Opts),
    Check(check::Opts),
    DryRun(dry_run::Opts),
    Upload(registry::UploadOpts),
    List(registry::ListOpts),
    History(registry::HistoryOpts),
    Activate(registry::ActivateOpts),
    Rollback(registry::RollbackOpts),
    Shadow(registry::ShadowOpts),
    ShadowReport(registry::ShadowReportOpts),
    Config(registry::ConfigOpts),
    Keygen(signing::KeygenOpts),
    #[command(subcommand)]
    Trust(signing::TrustCommand),
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
        Command::Policy(PolicyCommand::New(o)) => policy_new::run(o),
        Command::Policy(PolicyCommand::Build(o)) => policy_build::run(o),
        Command::Policy(PolicyCommand::Precompile(o)) => precompile::run(o),
        Command::Policy(PolicyCommand::Check(o)) => check::run(o),
        Command::Policy(PolicyCommand::Upload(o)) => registry::upload(o),
        Command::Policy(PolicyCommand::List(o)) => registry::list(o),
        Command::Policy(PolicyCommand::History(o)) => registry::history(o),
        Command::Policy(PolicyCommand::Activate(o)) => registry::activate(o),
        Command::Policy(PolicyCommand::Rollback(o)) => registry::rollback(o),
        Command::Policy(PolicyCommand::Shadow(o)) => registry::shadow(o),
        Command::Policy(PolicyCommand::ShadowReport(o)) => registry::shadow_report(o),
        Command::Policy(PolicyCommand::Config(o)) => registry::config(o),
        Command::Policy(PolicyCommand::Keygen(o)) => signing::keygen(o),
        Command::Policy(PolicyCommand::Trust(c)) => signing::trust(c),
        Command::Simulate(o) => simulate::run_cmd(o),
        Command::Serve(o) => serve::run(o),
        Command::Partition(o) => serve::partition(o),
        Command::Heal(o) => serve::heal(o),
        Command::Hub(c) => hub::run(c),
        Command::Load(o) => serve::load(o),
        Command::Conflicts(ConflictsCommand::List(o)) => conflicts::list(o),
        Command::Conflicts(ConflictsCommand::Show(o)) => conflicts::show(o),
        Command::Conflicts(ConflictsCommand::Export(o)) => conflicts::export(o),
        Command::Conflicts(ConflictsCommand::Replay(o)) => conflicts::replay(o),
        Command::Conflicts(ConflictsCommand::Resolve(o)) => conflicts::resolve(o),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: a cause whose text the line already
/// holds (a store's failure names its SDK or file-system cause in its own message) ends it.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if line.contains(&text) {
            break;
        }
        line.push_str(": ");
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_prints_each_cause_once() {
        use host_core::failure::Failure;
        use host_core::store::StoreError;
        let io = std::io::Error::other("disk on fire");
        let store = StoreError::Fatal(Failure::caused_by("writing /x: disk on fire", io));
        let e = anyhow::Error::new(store).context("applying event 7");
        assert_eq!(
            super::one_line(&e),
            "applying event 7: store failure: writing /x: disk on fire"
        );
    }

    use clap::CommandFactory;

    /// Every subcommand's arguments are consistent (unique names, valid groups).
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
