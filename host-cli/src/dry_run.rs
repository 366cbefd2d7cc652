//! `dry-run`: replay captured conflicts through a policy and show what it would write.

use crate::common::{self, CacheOpts};
use crate::diff;
use anyhow::Context as _;
use clap::Args;
use host_core::conflict::{CapturedConflict, parse_lines};
use host_core::{Metering, Policy, Resolved, resolve_with_writes};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

/// `writeln!` into a String (which cannot fail).
macro_rules! w {
    ($out:expr) => { writeln!($out).unwrap() };
    ($out:expr, $($arg:tt)*) => { writeln!($out, $($arg)*).unwrap() };
}
use std::time::{Duration, Instant};

/// Replays captured conflicts (one JSON object a line) through a policy, as a host would
/// resolve them: causality first, the policy for concurrent versions, results validated.
/// For each conflict it prints the relation, the outcome and how the result differs from each
/// side; then a summary.
///
/// Examples:
///   host-cli dry-run --policy default --conflicts samples/conflicts.jsonl
///   host-cli dry-run --policy candidate.wasm --conflicts captured.jsonl --compare default
///   host-cli dry-run --policy default --conflicts captured.jsonl --json | jq .summary
///
/// Exit status: 0 when every line was replayed (rejections are outcomes, not failures), 1 when
/// a line was malformed or a policy failed on a conflict (trap, timeout, invalid result), 2
/// when the policy cannot be loaded or the file cannot be read.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Opts {
    /// A component file, or `default` for the embedded default policy.
    #[arg(long)]
    pub policy: String,
    /// The captured conflicts (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub conflicts: String,
    /// A second policy: list the conflicts where the two decide differently.
    #[arg(long, value_name = "POLICY")]
    pub compare: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Leave out the time per conflict (for output that must not vary between runs).
    #[arg(long)]
    pub no_timing: bool,
    #[command(flatten)]
    pub cache: CacheOpts,
}

/// The outcome of one line.
struct Replay {
    line: usize,
    id: String,
    conflict: Option<CapturedConflict>,
    outcome: Result<Resolved, String>,
    other: Option<Result<Resolved, String>>,
    elapsed: Duration,
}

impl Replay {
    /// Whether the compare policy decided this conflict differently.
    fn differs(&self) -> bool {
        match (&self.other, &self.conflict) {
            (Some(other), Some(c)) => !same_result(&self.outcome, other, c),
            _ => false,
        }
    }
}

fn load(
    engine: &host_core::PolicyEngine,
    source: &str,
    cache: &CacheOpts,
) -> anyhow::Result<Policy> {
    common::load(engine, source, cache)?
        .with_context(|| format!("policy {source} would be refused"))
}

/// The party a resolution writes, as TMF JSON (`null` when rejected or deleted).
fn tmf(resolved: &Resolved, c: &CapturedConflict) -> Value {
    resolved
        .written(&c.local, &c.remote)
        .and_then(party_model::to_tmf)
        .unwrap_or(Value::Null)
}

fn outcome_name(r: &Result<Resolved, String>) -> String {
    match r {
        Ok(r) if r.policy_digest.is_none() => {
            format!("{} (host: not concurrent)", r.decision.kind())
        }
        Ok(r) => r.decision.kind().to_owned(),
        Err(_) => "error".to_owned(),
    }
}

fn same_result(
    a: &Result<Resolved, String>,
    b: &Result<Resolved, String>,
    c: &CapturedConflict,
) -> bool {
    match (a, b) {
        // The written parties, stamps included: answers whose TMF JSON is alike but whose
        // stamps differ would have regions write different parties.
        (Ok(x), Ok(y)) => {
            x.decision.kind() == y.decision.kind()
                && x.written(&c.local, &c.remote) == y.written(&c.local, &c.remote)
        }
        _ => false,
    }
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let engine = common::engine(Metering::Epoch)?;
    let policy = load(&engine, &o.policy, &o.cache)?;
    let other = o
        .compare
        .as_deref()
        .map(|p| load(&engine, p, &o.cache))
        .transpose()?;
    let text = std::fs::read_to_string(&o.conflicts)
        .with_context(|| format!("reading {}", o.conflicts))?;
    let lines = parse_lines(&text);

    let bar = ProgressBar::new(lines.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} conflicts {elapsed}").unwrap(),
    );
    if lines.len() < 200 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut replays = Vec::with_capacity(lines.len());
    for (line, parsed) in lines {
        bar.inc(1);
        let conflict = match parsed {
            Ok(c) => c,
            Err(e) => {
                replays.push(Replay {
                    line,
                    id: format!("line {line}"),
                    conflict: None,
                    outcome: Err(e),
                    other: None,
                    elapsed: Duration::ZERO,
                });
                continue;
            }
        };
        let id = conflict
            .id
            .clone()
            .unwrap_or_else(|| format!("line {line}"));
        let (config, region) = (conflict.config_text(), conflict.region().to_owned());
        let start = Instant::now();
        // A captured conflict's writes, where it has them, are sent as a host sent them.
        let local = (&conflict.local, &conflict.local_writes);
        let remote = (&conflict.remote, &conflict.remote_writes);
        let outcome = resolve_with_writes(&policy, &config, &region, local, remote)
            .map_err(|e| e.to_string());
        let elapsed = start.elapsed();
        let other_outcome = other.as_ref().map(|p| {
            resolve_with_writes(p, &config, &region, local, remote).map_err(|e| e.to_string())
        });
        replays.push(Replay {
            line,
            id,
            conflict: Some(conflict),
            outcome,
            other: other_outcome,
            elapsed,
        });
    }
    bar.finish_and_clear();

    let failed = replays.iter().filter(|r| r.outcome.is_err()).count();
    if o.json {
        print_json(&o, &policy, other.as_ref(), &replays)?;
    } else {
        print_text(&o, &policy, other.as_ref(), &replays);
    }
    Ok(common::status(failed == 0))
}

fn summary(replays: &[Replay]) -> (BTreeMap<String, usize>, Duration, usize) {
    let mut outcomes = BTreeMap::new();
    let mut total = Duration::ZERO;
    let mut resolved = 0;
    for r in replays {
        *outcomes.entry(outcome_name(&r.outcome)).or_insert(0) += 1;
        if r.conflict.is_some() {
            total += r.elapsed;
            resolved += 1;
        }
    }
    (outcomes, total, resolved)
}

fn print_text(o: &Opts, policy: &Policy, other: Option<&Policy>, replays: &[Replay]) {
    let mut out = String::new();
    let d = policy.description();
    w!(
        out,
        "policy    {} {} (contract {}) sha256:{}",
        d.name,
        d.version,
        d.contract_version,
        common::short(policy.digest())
    );
    if let Some(p) = other {
        let d = p.description();
        w!(
            out,
            "compare   {} {} (contract {}) sha256:{}",
            d.name,
            d.version,
            d.contract_version,
            common::short(p.digest())
        );
    }
    w!(out, "conflicts {}", o.conflicts);
    for r in replays {
        w!(out);
        let Some(c) = &r.conflict else {
            w!(
                out,
                "line {}: skipped: {}",
                r.line,
                r.outcome.as_ref().err().map(String::as_str).unwrap_or("")
            );
            continue;
        };
        w!(
            out,
            "[{}] {}  tenant {}  party {}",
            r.line,
            r.id,
            c.tenant,
            c.local.party_id
        );
        if let Some(note) = &c.note {
            w!(out, "    note      {note}");
        }
        match &r.outcome {
            Ok(res) => {
                w!(out, "    relation  {}", res.relation.as_str());
                w!(out, "    outcome   {}", outcome_name(&r.outcome));
                if let host_core::Decision::Rejected(reason) = &res.decision {
                    w!(out, "    reason    {reason}");
                }
                let result = tmf(res, c);
                let written = res.written(&c.local, &c.remote);
                for (side, v) in [("local", &c.local), ("remote", &c.remote)] {
                    let before = party_model::to_tmf(v).unwrap_or(Value::Null);
                    let mut lines = diff::lines(&before, &result);
                    if lines.is_empty() {
                        // The same values: say whether the stamps are the same too.
                        lines = diff::stamp_lines(Some(v), written);
                    }
                    if lines.is_empty() {
                        w!(out, "    vs {side:<6} (same)");
                    } else {
                        w!(out, "    vs {side:<6} {}", lines[0]);
                        for l in &lines[1..] {
                            w!(out, "              {l}");
                        }
                    }
                }
            }
            Err(e) => w!(out, "    error     {e}"),
        }
        if let Some(other) = &r.other
            && r.differs()
        {
            w!(out, "    DIFFERS   compare policy: {}", outcome_name(other));
            if let (Ok(a), Ok(b)) = (&r.outcome, other) {
                let (x, y) = (
                    a.written(&c.local, &c.remote),
                    b.written(&c.local, &c.remote),
                );
                let lines = diff::lines(&tmf(a, c), &tmf(b, c));
                for l in lines.iter().chain(&diff::stamp_lines(x, y)) {
                    w!(out, "              {l}");
                }
            }
            if let Err(e) = other {
                w!(out, "              {e}");
            }
        }
    }
    let (outcomes, total, resolved) = summary(replays);
    w!(out);
    w!(out, "summary");
    for (k, n) in &outcomes {
        w!(out, "    {k:<32} {n}");
    }
    if other.is_some() {
        let differ = replays.iter().filter(|r| r.differs()).count();
        w!(out, "    {:<32} {differ}", "disagreements with compare");
    }
    if !o.no_timing && resolved > 0 {
        w!(
            out,
            "    time per conflict                {:.1} µs",
            total.as_secs_f64() * 1e6 / resolved as f64
        );
    }
    crate::common::emit(&out);
}

fn print_json(
    o: &Opts,
    policy: &Policy,
    other: Option<&Policy>,
    replays: &[Replay],
) -> anyhow::Result<()> {
    let describe = |p: &Policy| json!({"name": p.description().name, "version": p.description().version, "digest": p.digest()});
    let items: Vec<Value> = replays
        .iter()
        .map(|r| {
            let mut v = json!({"line": r.line, "id": r.id, "outcome": outcome_name(&r.outcome)});
            match &r.outcome {
                Ok(res) => {
                    v["relation"] = json!(res.relation.as_str());
                    v["decidedBy"] =
                        json!(res.policy_digest.clone().unwrap_or_else(|| "host".into()));
                    v["result"] = r
                        .conflict
                        .as_ref()
                        .map(|c| tmf(res, c))
                        .unwrap_or(Value::Null);
                    if let host_core::Decision::Rejected(reason) = &res.decision {
                        v["reason"] = json!(reason);
                    }
                }
                Err(e) => v["error"] = json!(e),
            }
            if !o.no_timing {
                v["micros"] = json!(r.elapsed.as_secs_f64() * 1e6);
            }
            if let Some(x) = &r.other {
                v["compare"] = json!({"outcome": outcome_name(x), "differs": r.differs()});
            }
            v
        })
        .collect();
    let (outcomes, total, resolved) = summary(replays);
    let mut summary = json!({"outcomes": outcomes, "conflicts": replays.len()});
    if !o.no_timing && resolved > 0 {
        summary["microsPerConflict"] = json!(total.as_secs_f64() * 1e6 / resolved as f64);
    }
    let doc = json!({
        "policy": describe(policy),
        "compare": other.map(describe),
        "conflicts": items,
        "summary": summary,
    });
    crate::common::emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
    Ok(())
}
