//! `simulate`: three regions, concurrent writes, replication, partitions, conflicts resolved by
//! the WASM policy, a hot swap mid-run, convergence — on the embedded default.

use crate::common::{self, CacheOpts};
use anyhow::Context as _;
use clap::Args;
use host_core::{Metering, Policy};
use host_sim::{Faults, SimConfig, SimPolicies, SimReport, run};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

/// Simulates the active-active system, seeded and deterministic, on the shipped pipeline:
/// each region is the real ingest (idempotency records, conditional writes) and the real
/// reconcile over an embedded replica of the global table (last writer wins on the whole item,
/// a stream record per change), the tenant's policy the real component, hot-swapped region by
/// region. Clients send TMF632 events (creates, attribute and state changes, deletes) with
/// duplicates, lost acknowledgements and fail-over retries; the scheduler injects faults:
/// replication delays and duplicates, partitions (overlapping, some one way), a region down
/// for a third of the run, clocks seconds apart, ingest crashing after its idempotency claim,
/// reconcile crashing before its write, racing writers, stream batches handed twice. Each
/// fault has its flag below. At the end everything heals, the dead-letter queues are
/// redriven, and an oracle that shares no code with the pipeline checks: every acknowledged
/// write visible, superseded by a write that saw it, deleted by a delete that saw it, or
/// dropped by a recorded policy decision (counted per policy); all regions identical; one
/// conflict settled alike wherever it was settled; one change per event and region; no
/// dead letter left; no failed call of the policies under test. The same schedule runs again
/// without reconciliation to show what Global Tables alone loses.
///
/// Examples:
///   host-cli simulate                                   (one run with a random seed, printed)
///   host-cli simulate --seed 42 --report sim.html       (draw the run)
///   host-cli simulate --seeds 1000 --quiet              (many schedules; failing seeds listed)
///   host-cli simulate --policy candidate.wasm --no-swap
///
/// Exit status: 0 when every run passed its checks, 1 when one failed (its rerun command is
/// printed, with every flag that shaped the run), 2 when a policy cannot be loaded.
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
    /// The policy swapped in mid-run: a component file, or `na-status` (the example policy)
    /// [default: `na-status` when --policy is `default`; with a policy of your own, no swap
    /// unless you name one here].
    #[arg(long)]
    pub swap_to: Option<String>,
    /// The step of the swap [default: half-way]; each region swaps on its own schedule up to
    /// --rollout-spread steps later.
    #[arg(long)]
    pub swap_at: Option<usize>,
    /// How many steps apart the regions may swap (their registry followers refresh on their
    /// own schedules).
    #[arg(long, default_value_t = 5)]
    pub rollout_spread: usize,
    /// Run without the hot swap.
    #[arg(long)]
    pub no_swap: bool,
    /// A policy that a bad rollout serves in one region for a while before it is rolled back;
    /// what it fails on waits in the dead-letter queue and is redriven. Its failures are
    /// expected; any other policy's fail the run.
    #[arg(long, value_name = "POLICY")]
    pub bad_rollout: Option<String>,
    /// The tenant's policy configuration.
    #[arg(long, default_value = "{}")]
    pub config: String,
    #[command(flatten)]
    pub faults: FaultOpts,
    /// Do not fail a run whose policies failed calls (they still end in the dead-letter
    /// queue, and are reported).
    #[arg(long)]
    pub tolerate_policy_failures: bool,
    /// Write a drawing of the (first) run: `.html`, or `.svg` for the picture alone.
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,
    /// Print only failures and the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Print the run's figures as one JSON document (seeds as strings).
    #[arg(long)]
    pub json: bool,
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

/// The faults, each on by default and switched off by its flag.
#[derive(Args, Debug, Clone)]
pub struct FaultOpts {
    /// Switch every fault off (in-order, prompt delivery; nothing fails).
    #[arg(long)]
    pub no_faults: bool,
    /// No partition (by default two, possibly overlapping, some one way only).
    #[arg(long)]
    pub no_partition: bool,
    /// Partitions of replication between two regions.
    #[arg(long, default_value_t = 2)]
    pub partitions: usize,
    /// No region outage (by default one region is down for a third of the run).
    #[arg(long)]
    pub no_outage: bool,
    /// No crash of ingest after its idempotency claim, nor of reconcile before its write.
    #[arg(long)]
    pub no_crashes: bool,
    /// No second writer racing ingest's conditional write.
    #[arg(long)]
    pub no_races: bool,
    /// No duplicate delivery: of client events, of replicated writes, of stream batches.
    #[arg(long)]
    pub no_duplicates: bool,
    /// No lost acknowledgement (the client retries a committed write).
    #[arg(long)]
    pub no_lost_acks: bool,
    /// Longest replication delay in steps.
    #[arg(long, default_value_t = 6)]
    pub max_delay: u64,
    /// Longest wait of a stream record before reconcile sees it, in steps.
    #[arg(long, default_value_t = 3)]
    pub stream_delay: u64,
    /// Regions' clocks are up to this many milliseconds apart.
    #[arg(long, default_value_t = 2000)]
    pub skew_ms: u64,
}

impl FaultOpts {
    fn faults(&self) -> Faults {
        if self.no_faults {
            return Faults::none();
        }
        let mut f = Faults {
            max_delay: self.max_delay.max(1),
            stream_delay: self.stream_delay,
            skew_ms: self.skew_ms,
            partitions: if self.no_partition {
                0
            } else {
                self.partitions
            },
            outage: !self.no_outage,
            ..Faults::default()
        };
        if self.no_crashes {
            f.claim_crash_rate = 0.0;
            f.reconcile_crash_rate = 0.0;
        }
        if self.no_races {
            f.race_rate = 0.0;
        }
        if self.no_duplicates {
            f.duplicate_rate = 0.0;
            f.redeliver_rate = 0.0;
            f.stream_redeliver_rate = 0.0;
        }
        if self.no_lost_acks {
            f.lost_ack_rate = 0.0;
        }
        f
    }
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

/// The command line that replays run `seed` with every flag that shaped it.
fn rerun(seed: u64) -> String {
    rerun_of(std::env::args().skip(1), seed)
}

/// `args` (this command's, without the program name) as the command that replays `seed`:
/// every flag kept but those that choose runs or outputs.
fn rerun_of(given: impl Iterator<Item = String>, seed: u64) -> String {
    let mut args: Vec<String> = Vec::new();
    let mut skip = false;
    for a in given {
        if skip {
            skip = false;
            continue;
        }
        let name = a.split('=').next().unwrap_or_default();
        match name {
            "--seed" | "--seeds" | "--report" | "--conflict-log" => skip = !a.contains('='),
            "--quiet" | "--json" | "--trace" => {}
            _ => args.push(a),
        }
    }
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect();
    format!("host-cli {} --seed {seed}", quoted.join(" "))
}

impl Opts {
    /// The policy the run swaps to: `--swap-to`, or `na-status` when the run starts from the
    /// default policy (the demonstration); none with `--no-swap`, or when a policy of the
    /// author's own is simulated and no swap is named (it is simulated alone, start to end).
    fn swap_to(&self) -> Option<&str> {
        if self.no_swap {
            return None;
        }
        self.swap_to
            .as_deref()
            .or((self.policy == "default").then_some("na-status"))
    }
}

pub fn run_cmd(o: Opts) -> anyhow::Result<ExitCode> {
    let engine = common::engine(Metering::Epoch)?;
    let first = load(&engine, &o.policy, &o.cache)?;
    let second = o
        .swap_to()
        .map(|p| load(&engine, p, &o.cache))
        .transpose()?;
    let flaky = o
        .bad_rollout
        .as_deref()
        .map(|p| load(&engine, p, &o.cache))
        .transpose()?;
    let policies = SimPolicies {
        first: first.clone(),
        second: second.clone(),
        flaky: flaky.clone(),
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
        faults: o.faults.faults(),
        swap_at: o.swap_to().map(|_| o.swap_at.unwrap_or(o.steps / 2)),
        rollout_spread: o.rollout_spread,
        reconcile,
        tolerate_policy_failures: o.tolerate_policy_failures,
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
    let known: Vec<&Arc<Policy>> = [Some(&first), second.as_ref(), flaky.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let name_of = |digest: &str| {
        known
            .iter()
            .find(|p| p.digest() == digest)
            .map(|p| p.description().name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let progress = (o.seeds > 1 && !o.json).then(|| {
        let bar = indicatif::ProgressBar::new(o.seeds);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{pos}/{len} schedules [{elapsed_precise}] {wide_bar} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut failed = Vec::new();
    let mut totals = Totals::default();
    let mut out = String::new();
    let mut runs = Vec::new();
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
        totals.add(&report, &plain);
        if let Some(bar) = &progress {
            bar.inc(1);
            bar.set_message(format!("{} failed", failed.len()));
        }
        if i == 0
            && let Some(path) = &o.report
        {
            let page = if path.ends_with(".svg") {
                drawing(&report, &plain, &config_for(s, true), true)
            } else if path.ends_with(".html") || path.ends_with(".htm") {
                drawing(&report, &plain, &config_for(s, true), false)
            } else {
                anyhow::bail!(
                    "--report {path}: the report is written as .html (a page) or .svg (the picture alone); no other format"
                );
            };
            std::fs::write(path, page).with_context(|| format!("writing {path}"))?;
        }
        if o.trace && i == 0 {
            for line in &report.trace {
                let _ = writeln!(out, "{line}");
            }
        }
        if !report.ok() {
            failed.push(s);
            if !o.json {
                let _ = writeln!(
                    out,
                    "seed {s} FAILED: {}\n    rerun: {}",
                    report.violations.join("; "),
                    rerun(s)
                );
                for l in report.lost.iter().take(5) {
                    let _ = writeln!(out, "    lost {l}");
                }
            }
        }
        if o.json {
            runs.push(json_of(&report, &plain, &name_of));
        } else if !o.quiet && o.seeds == 1 {
            text(
                &mut out,
                &report,
                &plain,
                &config_for(s, true),
                &first,
                second.as_deref(),
                &names,
                &name_of,
            );
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if o.json {
        common::emit_json(&serde_json::json!({
            "seed": seed.to_string(),
            "seeds": o.seeds,
            "passed": o.seeds as usize - failed.len(),
            "failed": failed.iter().map(|s| serde_json::json!({"seed": s.to_string(), "rerun": rerun(*s)})).collect::<Vec<_>>(),
            "runs": runs,
        }))?;
    } else {
        if o.seeds > 1 || o.quiet {
            let _ = writeln!(
                out,
                "{} runs from seed {seed}: {} passed, {} failed; {} conflicts resolved; {} of {} acknowledged updates lost silently, {} dropped by policy decisions (without reconciliation on the same schedules: {} lost); {:.1} ms per schedule",
                o.seeds,
                o.seeds as usize - failed.len(),
                failed.len(),
                totals.conflicts,
                totals.lost,
                totals.acknowledged,
                totals.dropped,
                totals.plain_lost,
                totals.elapsed.as_secs_f64() * 1e3 / o.seeds.max(1) as f64
            );
        }
        common::emit(&out);
    }
    Ok(common::status(failed.is_empty()))
}

#[derive(Default)]
struct Totals {
    conflicts: usize,
    lost: usize,
    dropped: usize,
    plain_lost: usize,
    acknowledged: usize,
    elapsed: std::time::Duration,
}

impl Totals {
    fn add(&mut self, r: &SimReport, plain: &SimReport) {
        self.conflicts += r.conflicts;
        self.lost += r.lost.len();
        self.dropped += r.policies.values().map(|p| p.dropped).sum::<usize>();
        self.plain_lost += plain.lost.len();
        self.acknowledged += r.acknowledged;
        self.elapsed += r.elapsed;
    }
}

fn json_of(
    r: &SimReport,
    plain: &SimReport,
    name_of: &dyn Fn(&str) -> String,
) -> serde_json::Value {
    serde_json::json!({
        "seed": r.seed.to_string(),
        "ok": r.ok(),
        "violations": r.violations,
        "events": r.events,
        "writes": r.writes,
        "duplicatesSuppressed": r.duplicates_suppressed,
        "inProgress": r.in_progress,
        "refused": r.refused,
        "lostAcksRetried": r.lost_acks_retried,
        "claimCrashes": r.claim_crashes,
        "reconcileCrashes": r.reconcile_crashes,
        "races": r.races,
        "replicated": r.replicated,
        "streamRecords": r.stream_records,
        "streamRedelivered": r.stream_redelivered,
        "streamBisected": r.stream_bisected,
        "conflicts": r.conflicts,
        "dominated": r.dominated,
        "policies": r.policies.iter().map(|(d, p)| serde_json::json!({
            "digest": d, "name": name_of(d), "resolved": p.resolved, "rejected": p.rejected,
            "failed": p.failed, "dropped": p.dropped,
        })).collect::<Vec<_>>(),
        "deadLettered": r.dead_lettered,
        "redriven": r.redriven,
        "deadLettersLeft": r.dead_letters_left,
        "converged": r.converged,
        "acknowledged": r.acknowledged,
        "superseded": r.superseded,
        "lost": r.lost,
        "lostWithoutReconciliation": plain.lost.len(),
        "appliedInTwoRegions": r.applied_in_two_regions,
        "fieldsNamed": r.fields_named,
        "fieldsUnknown": r.fields_unknown,
        "elapsedMs": r.elapsed.as_secs_f64() * 1e3,
    })
}

#[allow(clippy::too_many_arguments)]
fn text(
    out: &mut String,
    r: &SimReport,
    plain: &SimReport,
    c: &SimConfig,
    first: &Policy,
    second: Option<&Policy>,
    names: &dyn Fn(&Policy) -> String,
    name_of: &dyn Fn(&str) -> String,
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
    if r.cuts.is_empty() {
        let _ = writeln!(w, "partitions    none");
    }
    for cut in &r.cuts {
        let _ = writeln!(
            w,
            "partition     {} → {} cut during steps {}–{}, then healed",
            cut.from, cut.to, cut.start, cut.end
        );
    }
    if let Some((region, s, e)) = &r.outage {
        let _ = writeln!(
            w,
            "outage        {region} down during steps {s}–{e}, clients failed over"
        );
    }
    let _ = writeln!(w, "policy        {}", names(first));
    if let Some(p) = second
        && !r.swaps.is_empty()
    {
        let at: Vec<String> = r
            .swaps
            .iter()
            .map(|(reg, s)| format!("{reg} at {s}"))
            .collect();
        let _ = writeln!(
            w,
            "hot swap      → {} ({}; each region on its own schedule, no redeploy)",
            names(p),
            at.join(", ")
        );
    }
    if let Some((region, s, e)) = &r.bad_rollout {
        let _ = writeln!(
            w,
            "bad rollout   {region} served the flaky policy during steps {s}–{e}, then rolled back"
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "client events {} deliveries → {} applied; {} replays answered from the idempotency record; {} told to retry (in progress); {} acknowledgements lost and retried; {} refused",
        r.events, r.writes, r.duplicates_suppressed, r.in_progress, r.lost_acks_retried, r.refused
    );
    let _ = writeln!(
        w,
        "faults        {} ingest crashes after the claim; {} reconcile crashes before the write; {} racing writers",
        r.claim_crashes, r.reconcile_crashes, r.races
    );
    let _ = writeln!(
        w,
        "replication   {} writes sent; {} stream records ({} batches handed twice, {} bisected after a crash)",
        r.replicated, r.stream_records, r.stream_redelivered, r.stream_bisected
    );
    let _ = writeln!(
        w,
        "conflicts     {} concurrent versions resolved by policy; {} overwrites of a dominated version restored by the host",
        r.conflicts, r.dominated
    );
    for (digest, p) in &r.policies {
        let _ = writeln!(
            w,
            "  {} (sha256:{}): {} resolved, {} rejected, {} failed, {} acknowledged writes dropped by its decisions",
            name_of(digest),
            common::short(digest),
            p.resolved,
            p.rejected,
            p.failed,
            p.dropped
        );
    }
    let _ = writeln!(
        w,
        "dead letters  {} ({}) → {} redrive attempts, {} left",
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
        "nothing lost  {} of {} acknowledged writes lost silently ({} superseded by later writes that saw them); without reconciliation the same schedule lost {}",
        r.lost.len(),
        r.acknowledged,
        r.superseded,
        plain.lost.len()
    );
    let _ = writeln!(
        w,
        "idempotency   {} events applied in two regions before their record replicated; {} applied twice in one region",
        r.applied_in_two_regions, r.applied_twice_in_a_region
    );
    let _ = writeln!(
        w,
        "field writes  {} fields name the acknowledged write behind them, as the oracle checks; {} of unknown write",
        r.fields_named, r.fields_unknown
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

/// Conflicts per step (bars), diverged parties, and per region the replicated writes on their
/// way to it and the stream records waiting for its reconcile (lines), with the partitions and
/// the outage shaded and the swaps marked.
fn drawing(r: &SimReport, plain: &SimReport, c: &SimConfig, svg_only: bool) -> String {
    let (width, height, pad) = (900.0, 340.0, 48.0);
    let n = r.timeline.len().max(2) as f64;
    let x = |step: f64| pad + step * (width - 2.0 * pad) / n;
    let max_y = r
        .timeline
        .iter()
        .map(|s| {
            let per_region = s
                .in_flight_to
                .iter()
                .chain(&s.stream_backlog)
                .copied()
                .max()
                .unwrap_or(0);
            per_region.max(s.conflicts).max(s.diverged)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y = |v: f64| height - pad - v * (height - 2.0 * pad) / max_y;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let shade = |svg: &mut String, s: usize, e: usize, row: usize, label: &str, fill: &str| {
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{pad}" width="{:.1}" height="{:.1}" fill="{fill}" opacity="0.5"><title>{label}: steps {s}–{e}</title></rect><text x="{:.1}" y="{:.1}" fill="#733">{label}</text>"##,
            x(s as f64),
            (x(e as f64) - x(s as f64)).max(1.0),
            height - 2.0 * pad,
            x(s as f64) + 4.0,
            pad + 14.0 + 14.0 * row as f64
        );
    };
    for (i, cut) in r.cuts.iter().enumerate() {
        shade(
            &mut svg,
            cut.start,
            cut.end,
            i,
            &format!("{} → {} cut", cut.from, cut.to),
            "#fde2e2",
        );
    }
    if let Some((region, s, e)) = &r.outage {
        shade(
            &mut svg,
            *s,
            *e,
            r.cuts.len(),
            &format!("{region} down"),
            "#e2e2fd",
        );
    }
    for (region, at) in &r.swaps {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{pad}" y2="{1:.1}" stroke="#36c" stroke-dasharray="4"><title>{region} swaps policy at step {at}</title></line>"##,
            x(*at as f64),
            height - pad,
        );
    }
    let bar = (width - 2.0 * pad) / n * 0.8;
    for s in &r.timeline {
        if s.conflicts > 0 {
            let v = s.conflicts as f64;
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#e8a33d"><title>step {}: {} conflicts resolved</title></rect>"##,
                x(s.step as f64),
                y(v),
                y(0.0) - y(v),
                s.step,
                s.conflicts
            );
        }
    }
    // One line per series: diverged parties, then per region its replication and stream
    // backlogs (solid and dotted, in the region's colour).
    const REGION_COLORS: [&str; 6] = ["#2a7", "#a3c", "#07a", "#b80", "#555", "#c3a"];
    let mut series: Vec<(String, &str, &str, Vec<usize>)> = vec![(
        "parties that differ between regions".into(),
        "#c33",
        "",
        r.timeline.iter().map(|s| s.diverged).collect(),
    )];
    for (i, region) in c.regions.iter().enumerate() {
        let color = REGION_COLORS[i % REGION_COLORS.len()];
        series.push((
            format!("writes in flight to {region}"),
            color,
            "",
            r.timeline
                .iter()
                .map(|s| s.in_flight_to.get(i).copied().unwrap_or(0))
                .collect(),
        ));
        series.push((
            format!("{region}'s stream records waiting for reconcile"),
            color,
            "2 3",
            r.timeline
                .iter()
                .map(|s| s.stream_backlog.get(i).copied().unwrap_or(0))
                .collect(),
        ));
    }
    for (label, color, dash, values) in &series {
        let points: Vec<String> = r
            .timeline
            .iter()
            .zip(values)
            .map(|(s, v)| format!("{:.1},{:.1}", x(s.step as f64), y(*v as f64)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"><title>{label}</title></polyline>"##,
            points.join(" ")
        );
        for (s, v) in r.timeline.iter().zip(values) {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{color}"><title>step {}: {v} {label}</title></circle>"##,
                x(s.step as f64),
                y(*v as f64),
                s.step,
            );
        }
    }
    // Axes with ticks and units.
    let _ = write!(
        svg,
        r##"<line x1="{pad}" x2="{0:.1}" y1="{1:.1}" y2="{1:.1}" stroke="#333"/><line x1="{pad}" x2="{pad}" y1="{pad}" y2="{1:.1}" stroke="#333"/>"##,
        width - pad,
        height - pad,
    );
    let ticks = 6;
    for i in 0..=ticks {
        let step = (n - 1.0) * i as f64 / ticks as f64;
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="#333"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4:.0}</text>"##,
            x(step),
            height - pad,
            height - pad + 4.0,
            height - pad + 16.0,
            step
        );
        let v = max_y * i as f64 / ticks as f64;
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{pad}" y1="{1:.1}" y2="{1:.1}" stroke="#333"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4:.0}</text>"##,
            pad - 4.0,
            y(v),
            pad - 6.0,
            y(v) + 4.0,
            v
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{0:.1}" y="{1:.1}" text-anchor="middle">step (10 ms of simulated time each; after the last, everything heals)</text><text x="14" y="{2:.1}" transform="rotate(-90 14 {2:.1})" text-anchor="middle">count</text>"##,
        width / 2.0,
        height - 8.0,
        height / 2.0
    );
    let _ = write!(
        svg,
        r##"<text x="{pad}" y="20"><tspan fill="#e8a33d">■ conflicts resolved per step</tspan>  <tspan fill="#c33">— parties that differ between regions</tspan>  <tspan fill="#36c">┆ policy swap</tspan></text>"##
    );
    // Per region: its colour, solid for writes in flight to it, dotted for its stream.
    let mut legend = format!(r##"<text x="{pad}" y="34">"##);
    for (i, region) in c.regions.iter().enumerate() {
        let color = REGION_COLORS[i % REGION_COLORS.len()];
        let _ = write!(
            legend,
            r##"<tspan fill="{color}">— writes in flight to {region} ┄ {region}'s stream backlog</tspan>  "##
        );
    }
    legend.push_str("</text></svg>");
    svg.push_str(&legend);
    if svg_only {
        return svg;
    }
    let policies: Vec<String> = r
        .policies
        .iter()
        .map(|(d, p)| {
            format!(
                "<li>sha256:{}: {} resolved, {} failed, {} writes dropped by its decisions</li>",
                common::short(d),
                p.resolved,
                p.failed,
                p.dropped
            )
        })
        .collect();
    format!(
        "<!doctype html><meta charset=utf-8><title>simulation seed {seed}</title><body style=\"font-family:sans-serif\"><h1>Simulation, seed {seed}</h1><p>Regions {regions}; {parties} parties; {steps} steps. {verdict}.</p><p id=headline><b>Acknowledged writes lost: {lost} with reconciliation, {plain} without</b> (of {acked}); {conflicts} conflicts resolved; converged: {converged}.</p><ul id=policies>{policies}</ul>{svg}</body>",
        seed = r.seed,
        regions = c.regions.join(", "),
        parties = c.parties,
        steps = c.steps,
        verdict = if r.ok() {
            "Every check passed".to_owned()
        } else {
            format!("FAILED: {}", r.violations.join("; "))
        },
        lost = r.lost.len(),
        plain = plain.lost.len(),
        acked = r.acknowledged,
        conflicts = r.conflicts,
        converged = r.converged,
        policies = policies.join(""),
    )
}

#[cfg(test)]
mod tests {
    use super::rerun_of;

    #[test]
    fn a_rerun_keeps_every_flag_that_shaped_the_run() {
        let given = "simulate --seeds 1000 --quiet --seed 7 --regions apac,eu,na,sa --parties 50 --config {\"deleteRule\":\"update-resurrects\"} --no-outage --report=r.html --json";
        let line = rerun_of(given.split(' ').map(str::to_owned), 7350076);
        assert_eq!(
            line,
            "host-cli simulate --regions apac,eu,na,sa --parties 50 --config '{\"deleteRule\":\"update-resurrects\"}' --no-outage --seed 7350076"
        );
    }
}
