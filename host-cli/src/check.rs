//! `policy check`: the law checks, before a policy is uploaded.

use crate::common::{self, CacheOpts};
use anyhow::Context as _;
use clap::Args;
use host_core::Metering;
use host_core::conflict::to_line;
use policy_admin::laws::{CheckOptions, check};
use serde_json::json;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Checks a policy's laws on generated TMF632 conflicts (both resource types, every array
/// field, v4 items without ids, tombstones, two- and three-way concurrency): determinism
/// (fresh and reused instances), commutativity, idempotence, associativity, validity of every
/// result; and reports the cost per conflict in fuel against input size.
///
/// A failure prints the smallest counterexample found as captured-conflict lines, which
/// `dry-run --conflicts` replays.
///
/// Examples:
///   host-cli policy check default
///   host-cli policy check candidate.wasm --cases 1000 --seed 42
///   host-cli policy check candidate.wasm --config '{"deleteRule":"update-resurrects"}' --counterexamples bad.jsonl
///
/// Exit status: 0 when every law holds, 1 when one fails, 2 when the policy cannot be loaded.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// A component file, or `default` for the embedded default policy.
    pub policy: String,
    /// Generated cases per law.
    #[arg(long, default_value_t = 256)]
    pub cases: u32,
    /// Seed of the generator [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The tenant configuration document the policy is checked under.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Also write the counterexamples (captured-conflict lines) to this file.
    #[arg(long, value_name = "FILE")]
    pub counterexamples: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    serde_json::from_str::<serde_json::Value>(&o.config).context("--config is not JSON")?;
    let engine = common::engine(Metering::Fuel)?;
    let policy = common::load(&engine, &o.policy, &o.cache)?
        .with_context(|| format!("policy {} would be refused", o.policy))?;
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("seed {seed}");
    let report = check(
        &policy,
        &CheckOptions {
            cases: o.cases,
            seed,
            config: o.config.clone(),
        },
    );

    let lines: Vec<String> = report
        .outcomes
        .iter()
        .filter_map(|l| l.failure.as_ref())
        .flat_map(|f| f.conflicts.iter().map(to_line))
        .collect();
    if let Some(path) = &o.counterexamples {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .with_context(|| format!("writing {path}"))?;
    }

    let per_kib = report.budget.per_kib();
    let mut out = String::new();
    if o.json {
        let laws: Vec<_> = report
            .outcomes
            .iter()
            .map(|l| {
                json!({
                    "law": l.law.name(),
                    "holds": l.failure.is_none(),
                    "message": l.failure.as_ref().map(|f| f.message.clone()),
                    "counterexample": l.failure.as_ref().map(|f| f.conflicts.iter().map(|c| serde_json::to_value(c).unwrap()).collect::<Vec<_>>()),
                })
            })
            .collect();
        let doc = json!({
            "policy": {"name": policy.description().name, "version": policy.description().version, "digest": policy.digest()},
            "seed": seed,
            "cases": o.cases,
            "enumerated": report.enumerated,
            "laws": laws,
            "budget": {
                "fuelPerKiBSmallerInputs": per_kib.map(|p| p.0),
                "fuelPerKiBLargerInputs": per_kib.map(|p| p.1),
                "maxFuelPerCall": report.budget.max_fuel(),
                "growsFasterThanInput": report.budget.grows_faster_than_input(),
            },
            "passed": report.passed(),
        });
        out = serde_json::to_string_pretty(&doc)? + "\n";
    } else {
        let d = policy.description();
        let _ = writeln!(
            out,
            "policy   {} {} sha256:{}",
            d.name,
            d.version,
            common::short(policy.digest())
        );
        let _ = writeln!(
            out,
            "seed     {seed}  (rerun: host-cli policy check {} --seed {seed} --cases {})",
            o.policy, o.cases
        );
        let _ = writeln!(
            out,
            "cases    {} enumerated (the small scopes: the same on every run), then {} random per law\n",
            report.enumerated, o.cases
        );
        for l in &report.outcomes {
            match &l.failure {
                None => {
                    let _ = writeln!(out, "{:<14} ok      {}", l.law.name(), l.law.statement());
                }
                Some(f) => {
                    let _ = writeln!(out, "{:<14} FAILED  {}", l.law.name(), l.law.statement());
                    for line in f.message.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                    if !f.conflicts.is_empty() {
                        let _ =
                            writeln!(out, "    counterexample (replay with dry-run --conflicts):");
                        for c in &f.conflicts {
                            let _ = writeln!(out, "{}", to_line(c));
                        }
                    }
                }
            }
        }
        let _ = writeln!(out);
        match per_kib {
            Some((small, large)) => {
                let _ = writeln!(
                    out,
                    "budget   {small:.0} fuel per KiB of input on the smaller inputs, {large:.0} on the larger; at most {} fuel per call",
                    report.budget.max_fuel()
                );
                if report.budget.grows_faster_than_input() {
                    let _ = writeln!(
                        out,
                        "warning  cost per conflict grows faster than the input"
                    );
                }
            }
            None => {
                let _ = writeln!(out, "budget   not enough calls measured");
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            if report.passed() {
                "all laws hold"
            } else {
                "laws FAILED"
            }
        );
    }
    common::emit(&out);
    Ok(common::status(report.passed()))
}
