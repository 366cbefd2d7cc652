//! `hub`: the listener notifications of a running `serve`; `hub redrive` sends its hub dead
//! letters again.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::serve::{Target, block_on};

/// The hub of a running `serve`: the listeners registered with `POST /{region}/…/hub`.
#[derive(Subcommand, Debug)]
pub enum Command {
    Redrive(RedriveOpts),
}

/// Sends the hub dead letters of a running `serve` again, once their callback is back: each
/// leaves the dead letters and is owed again (kept in the store, so a restart sends it too),
/// retried on the hub's schedule like a new notification. A letter whose listener was removed
/// is dropped; one dead-lettered before dead letters kept their event cannot be sent again
/// and stays. Each is listed.
///
/// Examples:
///   host-cli hub redrive
///   host-cli hub redrive --listener 5f0c2a9e1d7b4c36 --addr 127.0.0.1:8632
///
/// Exit status: 0 when the server redrove (whatever it could send), 2 when it could not be
/// reached or refused.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RedriveOpts {
    /// Only this listener's letters (its id, as `POST hub` answered it).
    #[arg(long, value_name = "ID")]
    listener: Option<String>,
    #[command(flatten)]
    target: Target,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Redrive(o) => redrive(o),
    }
}

fn redrive(o: RedriveOpts) -> anyhow::Result<ExitCode> {
    let report = block_on(host_serve::client::hub_redrive(
        &o.target.url(),
        o.listener.as_deref(),
    ))?;
    println!("sent again: {}", report["resent"]);
    let letters = |name: &str| report[name].as_array().cloned().unwrap_or_default();
    let line = |l: &Value| {
        format!(
            "  {} → listener {} ({}): {}",
            l["eventId"].as_str().unwrap_or_default(),
            l["listener"].as_str().unwrap_or_default(),
            l["callback"].as_str().unwrap_or_default(),
            l["reason"].as_str().unwrap_or_default(),
        )
    };
    let dropped = letters("dropped");
    if !dropped.is_empty() {
        println!("dropped (listener removed): {}", dropped.len());
        dropped.iter().for_each(|l| println!("{}", line(l)));
    }
    let kept = letters("notResent");
    if !kept.is_empty() {
        println!("not sent again (kept): {}", kept.len());
        kept.iter().for_each(|l| println!("{}", line(l)));
    }
    Ok(ExitCode::SUCCESS)
}
