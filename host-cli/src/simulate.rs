//! `simulate`: three regions, concurrent writes, replication, partitions, conflicts resolved by
//! the WASM policy, a hot swap mid-run, convergence — on the embedded default.

use crate::common::{self, CacheOpts};
use anyhow::Context as _;
use clap::Args;
use host_core::sim::{SimConfig, SimPolicies, SimReport, run};
use host_core::{Metering, Policy};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

/// Simulates the active-active system, seeded and deterministic: regions accept TMF632 writes
/// to the same parties (creates, attribute and state changes, deletes, duplicate deliveries,
/// lost acknowledgements retried), a model of Global Tables replicates items between them
/// (asynchronous, per item, last writer wins on write time, with delays, reordering,
/// duplication and a partition that heals), throttled writes go to the dead-letter queue, and
/// each region's reconcile step resolves every overwritten concurrent version with the
/// tenant's policy — the real host library running the real component, hot-swapped mid-run.
/// At the end everything heals and the run checks: all regions identical, no acknowledged
/// update lost, one effect per idempotency key, dead-letter queue empty after redrive. The
/// same schedule is replayed without reconciliation to show what plain Global Tables loses.
///
/// Examples:
///   host-cli simulate                                   (one run with a random seed, printed)
///   host-cli simulate --seed 42 --report sim.html       (draw the run)
///   host-cli simulate --seeds 1000 --quiet              (many schedules; failing seeds listed)
///   host-cli simulate --policy candidate.wasm --no-swap
///
/// Exit status: 0 when every run passed its checks, 1 when one failed (its seed is printed;
/// rerun it with --seed), 2 when a policy cannot be loaded.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// Seed of the (first) run [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of runs, with seeds seed, seed+1, …
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Regions, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "apac,eu,na")]
    pub regions: Vec<String>,
    /// Parties written to.
    #[arg(long, default_value_t = 4)]
    pub parties: usize,
    /// Steps of client traffic (10 ms each).
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// The tenant's policy: a component file, or `default`.
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// The policy swapped in mid-run: a component file, or `na-status` (the example policy).
    #[arg(long, default_value = "na-status")]
    pub swap_to: String,
    /// The step of the swap [default: half-way].
    #[arg(long)]
    pub swap_at: Option<usize>,
    /// Run without the hot swap.
    #[arg(long)]
    pub no_swap: bool,
    /// Run without the partition.
    #[arg(long)]
    pub no_partition: bool,
    /// The tenant's policy configuration.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Write a drawing of the (first) run: `.html`, or `.svg` for the picture alone.
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,
    /// Print only failures and the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Print every write, delivery and resolution of the (first) run.
    #[arg(long)]
    pub trace: bool,
    /// Record the conflicts of the (first) run in this conflict-log directory, as the reconcile
    /// function records production's (`host-cli conflicts list --log DIR` reads them).
    #[arg(long, value_name = "DIR")]
    pub conflict_log: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub cache: CacheOpts,
}

fn load(
    engine: &host_core::PolicyEngine,
    source: &str,
    cache: &CacheOpts,
) -> anyhow::Result<Arc<Policy>> {
    let bytes = common::policy_bytes(source)?;
    let policy = Policy::load(engine, &bytes, cache.cache().as_ref())
        .with_context(|| format!("policy {source} would be refused"))?;
    Ok(Arc::new(policy))
}

pub fn run_cmd(o: Opts) -> anyhow::Result<ExitCode> {
    let engine = common::engine(Metering::Epoch)?;
    let first = load(&engine, &o.policy, &o.cache)?;
    let second = if o.no_swap {
        None
    } else {
        Some(load(&engine, &o.swap_to, &o.cache)?)
    };
    let policies = SimPolicies {
        first: first.clone(),
        second: second.clone(),
        config: o.config.clone(),
    };
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let config_for = |seed: u64, reconcile: bool| SimConfig {
        regions: o.regions.clone(),
        parties: o.parties,
        steps: o.steps,
        partition: !o.no_partition,
        swap_at: if o.no_swap {
            None
        } else {
            Some(o.swap_at.unwrap_or(o.steps / 2))
        },
        reconcile,
        trace: o.trace,
        ..SimConfig::new(seed)
    };
    let names = |p: &Policy| {
        format!(
            "{} {} (sha256:{})",
            p.description().name,
            p.description().version,
            common::short(p.digest())
        )
    };
    let mut failed = Vec::new();
    let mut totals = (0usize, 0usize, 0usize, 0usize);
    let mut out = String::new();
    for i in 0..o.seeds {
        let s = seed + i;
        let mut config = config_for(s, true);
        if i == 0
            && let Some(dir) = &o.conflict_log
        {
            config.conflict_log = Some(Arc::new(host_core::conflict_log::DirConflictLog::new(dir)));
        }
        let report = run(&config, &policies);
        let plain = run(&config_for(s, false), &policies);
        totals.0 += report.conflicts;
        totals.1 += report.lost.len();
        totals.2 += plain.lost.len();
        totals.3 += report.acknowledged;
        if i == 0
            && let Some(path) = &o.report
        {
            std::fs::write(
                path,
                drawing(&report, &config_for(s, true), path.ends_with(".svg")),
            )
            .with_context(|| format!("writing {path}"))?;
        }
        if o.trace && i == 0 {
            for line in &report.trace {
                let _ = writeln!(out, "{line}");
            }
        }
        if !report.ok() {
            failed.push(s);
            let _ = writeln!(
                out,
                "seed {s} FAILED: {} (rerun: host-cli simulate --seed {s})",
                report.violations.join("; ")
            );
            for l in report.lost.iter().take(5) {
                let _ = writeln!(out, "    lost {l}");
            }
        }
        if !o.quiet && o.seeds == 1 {
            text(
                &mut out,
                &report,
                &plain,
                &config_for(s, true),
                &first,
                second.as_deref(),
                &names,
            );
        }
    }
    if o.seeds > 1 || o.quiet {
        let _ = writeln!(
            out,
            "{} runs from seed {seed}: {} passed, {} failed; {} conflicts resolved, {} of {} acknowledged updates lost (plain Global Tables on the same schedules: {} lost)",
            o.seeds,
            o.seeds as usize - failed.len(),
            failed.len(),
            totals.0,
            totals.1,
            totals.3,
            totals.2
        );
    }
    common::emit(&out);
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(
    out: &mut String,
    r: &SimReport,
    plain: &SimReport,
    c: &SimConfig,
    first: &Policy,
    second: Option<&Policy>,
    names: &dyn Fn(&Policy) -> String,
) {
    let w = out;
    let _ = writeln!(
        w,
        "simulation seed {} — regions {}; {} parties; {} steps of 10 ms",
        r.seed,
        c.regions.join(", "),
        c.parties,
        c.steps
    );
    let _ = writeln!(w);
    match &r.partition {
        Some((region, s, e)) => {
            let _ = writeln!(
                w,
                "partition     {region} cut off from replication during steps {s}–{e}, then healed"
            );
        }
        None => {
            let _ = writeln!(w, "partition     none");
        }
    }
    let _ = writeln!(w, "policy        {}", names(first));
    if let (Some(at), Some(p)) = (r.swapped_at, second) {
        let _ = writeln!(
            w,
            "hot swap      at step {at} → {} (no redeploy; calls in flight finish on the old one)",
            names(p)
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "client events {} → {} writes; {} duplicate deliveries suppressed; {} lost acknowledgements retried; {} refused (party deleted)",
        r.events, r.writes, r.duplicates_suppressed, r.lost_acks_retried, r.refused_deleted
    );
    let _ = writeln!(
        w,
        "replication   {} items sent; {} overwrites by last-writer-wins",
        r.replicated, r.overwrites
    );
    let _ = writeln!(
        w,
        "conflicts     {} concurrent versions resolved by policy; {} dominated, settled by the host",
        r.conflicts, r.dominated
    );
    for (digest, n) in &r.resolutions_by_policy {
        let who = [Some(first), second]
            .into_iter()
            .flatten()
            .find(|p| p.digest() == digest)
            .map(|p| p.description().name.clone())
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "  resolved by {who} (sha256:{}): {n}",
            common::short(digest)
        );
    }
    let _ = writeln!(
        w,
        "dead letters  {} ({}) → {} redriven, {} left",
        r.dead_lettered,
        if r.dead_letter_reasons.is_empty() {
            "none".to_owned()
        } else {
            r.dead_letter_reasons
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.redriven,
        r.dead_letters_left
    );
    let _ = writeln!(
        w,
        "convergence   {} after healing ({} settle rounds)",
        if r.converged {
            format!("all {} regions identical", c.regions.len())
        } else {
            "NOT converged".to_owned()
        },
        r.settle_rounds
    );
    let _ = writeln!(
        w,
        "nothing lost  {} of {} acknowledged updates lost; plain Global Tables on the same schedule lost {}",
        r.lost.len(),
        r.acknowledged,
        plain.lost.len()
    );
    let _ = writeln!(w, "time          {:.1} ms", r.elapsed.as_secs_f64() * 1e3);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{}",
        if r.ok() {
            "OK: every check passed".to_owned()
        } else {
            format!("FAILED: {}", r.violations.join("; "))
        }
    );
}

/// Conflicts per step (bars), items in flight (replication lag) and diverged parties (lines),
/// with the partition shaded and the swap marked.
fn drawing(r: &SimReport, c: &SimConfig, svg_only: bool) -> String {
    let (width, height, pad) = (900.0, 320.0, 40.0);
    let n = r.timeline.len().max(2) as f64;
    let x = |step: f64| pad + step * (width - 2.0 * pad) / n;
    let max_y = r
        .timeline
        .iter()
        .map(|s| s.in_flight.max(s.conflicts * 4).max(s.diverged * 4))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y = |v: f64| height - pad - v * (height - 2.0 * pad) / max_y;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    if let Some((region, s, e)) = &r.partition {
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{pad}" width="{:.1}" height="{:.1}" fill="#fde2e2"/><text x="{:.1}" y="{:.1}" fill="#a33">{region} partitioned</text>"##,
            x(*s as f64),
            x(*e as f64) - x(*s as f64),
            height - 2.0 * pad,
            x(*s as f64) + 4.0,
            pad + 14.0
        );
    }
    if let Some(at) = r.swapped_at {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{pad}" y2="{1:.1}" stroke="#36c" stroke-dasharray="4"/><text x="{2:.1}" y="{3:.1}" fill="#36c">hot swap</text>"##,
            x(at as f64),
            height - pad,
            x(at as f64) + 4.0,
            pad + 28.0
        );
    }
    let bar = (width - 2.0 * pad) / n * 0.8;
    for s in &r.timeline {
        if s.conflicts > 0 {
            let v = (s.conflicts * 4) as f64;
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#e8a33d"/>"##,
                x(s.step as f64),
                y(v),
                y(0.0) - y(v)
            );
        }
    }
    for (color, get) in [
        (
            "#2a7",
            (|s: &host_core::sim::Sample| s.in_flight as f64) as fn(&host_core::sim::Sample) -> f64,
        ),
        ("#c33", |s| (s.diverged * 4) as f64),
    ] {
        let points: Vec<String> = r
            .timeline
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.step as f64), y(get(s))))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{pad}" x2="{0:.1}" y1="{1:.1}" y2="{1:.1}" stroke="#333"/><text x="{pad}" y="{2:.1}">step 0</text><text x="{3:.1}" y="{2:.1}">settled</text>"##,
        width - pad,
        height - pad,
        height - pad + 16.0,
        width - pad - 40.0
    );
    let _ = write!(
        svg,
        r##"<text x="{pad}" y="20"><tspan fill="#e8a33d">■ conflicts resolved (×4)</tspan>  <tspan fill="#2a7">— replicated items in flight</tspan>  <tspan fill="#c33">— parties that differ between regions (×4)</tspan></text></svg>"##
    );
    if svg_only {
        return svg;
    }
    format!(
        "<!doctype html><meta charset=utf-8><title>simulation seed {}</title><body style=\"font-family:sans-serif\"><h1>Simulation, seed {}</h1><p>Regions {}; {} parties; {} steps. {} conflicts resolved; converged: {}; acknowledged updates lost: {} of {}.</p>{svg}</body>",
        r.seed,
        r.seed,
        c.regions.join(", "),
        c.parties,
        c.steps,
        r.conflicts,
        r.converged,
        r.lost.len(),
        r.acknowledged
    )
}
