//! `conflicts list | show | export | replay | resolve`: the conflict log, in a local directory
//! (what `simulate --conflict-log` writes) or on AWS (the table the reconcile function writes).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use host_core::conflict::to_line;
use host_core::conflict_log::{
    ConflictLog, ConflictOutcome, ConflictQuery, ConflictRecord, DirConflictLog,
};
use host_core::{Metering, Policy, resolve_with_writes};
use serde_json::json;

use crate::common::{self, CacheOpts, Location, StoreFlag};

/// `--log`: where the conflict log is, and what the messages about it say.
const LOG: StoreFlag = StoreFlag {
    flag: "--log",
    env: "TMF632_CONFLICT_LOG",
    default: "conflict-log",
    what: "conflict log",
    aws: "the DynamoDB log: the conflict table, in the region of --region",
    dir: "the directory `simulate --conflict-log` or `serve` (.serve/conflicts) wrote",
};

/// Where the log is, and which records.
#[derive(Args, Clone, Debug)]
pub struct LogOpts {
    /// The tenant whose conflicts are read.
    #[arg(long, short = 't')]
    pub tenant: String,
    /// `aws` (the conflict table, in the region of --region), or an existing directory
    /// [default: $TMF632_CONFLICT_LOG, else ./conflict-log].
    #[arg(long, value_name = "DIR|aws")]
    pub log: Option<String>,
    /// The conflict table (with --log aws).
    #[arg(long, default_value = "tmf632-conflicts", value_name = "TABLE")]
    pub table: String,
    #[command(flatten)]
    pub aws: common::AwsOpts,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Which records: all filters combine.
#[derive(Args, Clone, Debug, Default)]
pub struct FilterOpts {
    /// Only this party.
    #[arg(long)]
    pub party: Option<String>,
    /// Only records whose latest outcome is this.
    #[arg(long, value_enum)]
    pub outcome: Option<Outcome>,
    /// Only records first decided by this policy (a digest prefix).
    #[arg(long, value_name = "DIGEST")]
    pub decided_by: Option<String>,
    /// From this time: RFC 3339 (2026-11-27T10:00:00Z) or an age (90m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Until this time (exclusive), same forms.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// A conflict's outcome, as recorded (`ConflictOutcome::decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Outcome {
    /// The resolving region's version was kept.
    KeepLocal,
    /// The version from the other region was taken.
    TakeRemote,
    /// The policy merged the two.
    Merged,
    /// The policy rejected the conflict (it went to the dead-letter queue).
    Rejected,
    /// Resolving failed: a trap, a deadline, retries exhausted.
    Failed,
}

impl Outcome {
    /// The decision as the log records it.
    pub fn decision(self) -> &'static str {
        match self {
            Outcome::KeepLocal => "keep-local",
            Outcome::TakeRemote => "take-remote",
            Outcome::Merged => "merged",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

/// A log and what keeps it working (the AWS SDK's runtime).
pub struct Opened {
    pub log: Arc<dyn ConflictLog>,
    _runtime: Option<common::AwsRuntime>,
}

/// The conflict table on AWS.
#[cfg(feature = "aws")]
fn open_aws(table: &str, aws: &common::AwsOpts) -> anyhow::Result<Opened> {
    anyhow::ensure!(!table.is_empty(), "the conflict table name is empty");
    let (runtime, sdk) = common::aws(aws)?;
    let log = host_aws::conflict_log::DynamoConflictLog::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        runtime.handle().clone(),
    );
    Ok(Opened {
        log: Arc::new(log),
        _runtime: Some(runtime),
    })
}

#[cfg(not(feature = "aws"))]
fn open_aws(_table: &str, _aws: &common::AwsOpts) -> anyhow::Result<Opened> {
    Err(common::no_aws("--log aws"))
}

impl LogOpts {
    /// Opens the log, which must exist: every command here reads it (`resolve` adds to a record
    /// that is there), so a wrong location is named rather than read as an empty log.
    pub fn open(&self) -> anyhow::Result<Opened> {
        host_core::tenant::check_tenant(&self.tenant)?;
        match LOG.locate(self.log.as_deref())? {
            Location::Aws => open_aws(&self.table, &self.aws),
            Location::Dir { path, from } => {
                self.aws.unused(&LOG, &path, &from)?;
                LOG.existing(&path, &from)?;
                Ok(Opened {
                    log: Arc::new(DirConflictLog::new(path)),
                    _runtime: None,
                })
            }
        }
    }
}

/// A time on the command line, as ms since the epoch.
fn parse_time(text: &str) -> anyhow::Result<u64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t.duration_since(UNIX_EPOCH)?.as_millis() as u64);
    }
    let age = humantime::parse_duration(text).with_context(|| {
        format!("{text:?} is neither an RFC 3339 time nor an age like 90m, 2h or 7d")
    })?;
    let at = SystemTime::now()
        .checked_sub(age)
        .context("that age reaches before the epoch")?;
    Ok(at.duration_since(UNIX_EPOCH)?.as_millis() as u64)
}

impl FilterOpts {
    fn query(&self, tenant: &str) -> anyhow::Result<ConflictQuery> {
        Ok(ConflictQuery {
            tenant: tenant.to_owned(),
            party: self.party.clone(),
            from_ms: self.since.as_deref().map(parse_time).transpose()?,
            to_ms: self.until.as_deref().map(parse_time).transpose()?,
            outcome: self.outcome.map(|o| o.decision().to_owned()),
            policy: self.decided_by.clone(),
        })
    }
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn digest_of(o: &ConflictOutcome) -> String {
    o.policy_digest
        .as_deref()
        .map(|d| common::short(d).to_owned())
        .unwrap_or_else(|| "host".into())
}

/// Lists a tenant's conflicts: when, the party, the regions, the relation, what was decided and
/// by which policy.
///
/// Examples:
///   host-cli conflicts list --tenant acme
///   host-cli conflicts list --tenant acme --outcome rejected --since 24h
///   host-cli conflicts list --tenant acme --party 42 --log aws --json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ListOpts {
    #[command(flatten)]
    pub log: LogOpts,
    #[command(flatten)]
    pub filter: FilterOpts,
}

pub fn list(o: ListOpts) -> anyhow::Result<ExitCode> {
    let opened = o.log.open()?;
    let records = opened.log.query(&o.filter.query(&o.log.tenant)?)?;
    if o.log.json {
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "atMs": r.at_ms, "partyId": r.party_id, "region": r.region,
                    "regions": r.regions, "relation": r.relation,
                    "decision": r.latest().decision, "policyDigest": r.first().policy_digest,
                    "outcomes": r.outcomes.len(),
                })
            })
            .collect();
        common::emit_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for r in &records {
        let decisions: Vec<&str> = r.outcomes.iter().map(|o| o.decision.as_str()).collect();
        out.push_str(&format!(
            "{}  {}  party {:<10} {:<14} {:<10} {:<22} {}\n",
            time(r.at_ms),
            common::short(&r.id),
            r.party_id,
            r.regions.join(","),
            format!("{:?}", r.relation).to_lowercase(),
            decisions.join(" -> "),
            digest_of(r.first())
        ));
    }
    out.push_str(&format!("{} conflicts\n", records.len()));
    common::emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Shows one conflict in full: both versions, the context, every outcome.
///
/// Examples:
///   host-cli conflicts show 3f9c2a71b0d4 --tenant acme
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ShowOpts {
    /// The conflict's id (or a prefix of at least 6 characters).
    pub id: String,
    #[command(flatten)]
    pub log: LogOpts,
}

fn find(log: &dyn ConflictLog, tenant: &str, id: &str) -> anyhow::Result<ConflictRecord> {
    if let Some(r) = log.get(tenant, id)? {
        return Ok(r);
    }
    if id.len() >= 6 {
        let all = log.query(&ConflictQuery::tenant(tenant))?;
        let matches: Vec<&ConflictRecord> = all.iter().filter(|r| r.id.starts_with(id)).collect();
        match matches.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            many => bail!(
                "{id} matches {} conflicts of tenant {tenant}; give more of the id",
                many.len()
            ),
        }
    }
    bail!("no conflict {id} is recorded for tenant {tenant}")
}

pub fn show(o: ShowOpts) -> anyhow::Result<ExitCode> {
    let opened = o.log.open()?;
    let r = find(&*opened.log, &o.log.tenant, &o.id)?;
    if o.log.json {
        common::emit_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "conflict {} of tenant {}, party {}\nfirst seen {} in {} (regions {}), {:?}\n",
        r.id,
        r.tenant,
        r.party_id,
        time(r.at_ms),
        r.region,
        r.regions.join(", "),
        r.relation
    );
    for (i, o) in r.outcomes.iter().enumerate() {
        out.push_str(&format!(
            "  {}. {} by {} at {}: {} (policy {}){}\n",
            i + 1,
            o.decision,
            o.by,
            time(o.at_ms),
            if o.resolved() {
                "written"
            } else {
                "not written"
            },
            digest_of(o),
            o.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "local  {}\nremote {}\n",
        serde_json::to_string(&party_model::to_tmf(&r.local).unwrap_or_default())?,
        serde_json::to_string(&party_model::to_tmf(&r.remote).unwrap_or_default())?
    ));
    common::emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Writes conflicts as captured-conflict lines: exactly what `dry-run --conflicts` and
/// `policy check` read, so capturing production and replaying it against a candidate is two
/// commands. A progress bar shows on large exports to a file.
///
/// Examples:
///   host-cli conflicts export --tenant acme --since 7d --out captured.jsonl
///   host-cli dry-run --policy candidate.wasm --conflicts captured.jsonl
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ExportOpts {
    #[command(flatten)]
    pub log: LogOpts,
    #[command(flatten)]
    pub filter: FilterOpts,
    /// Write to this file [default: stdout].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn export(o: ExportOpts) -> anyhow::Result<ExitCode> {
    let opened = o.log.open()?;
    let records = opened.log.query(&o.filter.query(&o.log.tenant)?)?;
    match &o.out {
        None => {
            let text: String = records
                .iter()
                .map(|r| to_line(&r.captured()) + "\n")
                .collect();
            common::emit(&text);
        }
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let bar = indicatif::ProgressBar::new(records.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} conflicts")
                    .expect("a valid template"),
            );
            if records.len() < 1000 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            for r in &records {
                writeln!(w, "{}", to_line(&r.captured()))
                    .with_context(|| format!("writing {}", path.display()))?;
                bar.inc(1);
            }
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            bar.finish_and_clear();
            eprintln!("{} conflicts written to {}", records.len(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a candidate would have done on one recorded conflict.
fn candidate_outcome(
    policy: &Policy,
    r: &ConflictRecord,
) -> (String, Option<policy_types::PartyVersion>, Option<String>) {
    let config = r
        .config
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "{}".into());
    let (local, remote) = ((&r.local, &r.local_writes), (&r.remote, &r.remote_writes));
    match resolve_with_writes(policy, &config, &r.region, local, remote) {
        Ok(res) => (
            res.decision.kind().to_owned(),
            res.written(&r.local, &r.remote).cloned(),
            match res.decision {
                host_core::Decision::Rejected(why) => Some(why),
                _ => None,
            },
        ),
        Err(e) => ("failed".to_owned(), None, Some(e.to_string())),
    }
}

/// Replays recorded conflicts against a candidate policy and reports where it would have
/// decided differently from what was actually decided (the first outcome: the decision and
/// the party written). Shadow mode after the fact.
///
/// Examples:
///   host-cli conflicts replay --tenant acme --policy candidate.wasm --since 7d
///   host-cli conflicts replay --tenant acme --policy na-status --json
///
/// Exit status: 0 when it would have decided every conflict the same, 1 when it differs on
/// some, 2 on errors.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ReplayOpts {
    /// The candidate: a component file, `default` or `na-status`.
    #[arg(long)]
    pub policy: String,
    #[command(flatten)]
    pub log: LogOpts,
    #[command(flatten)]
    pub filter: FilterOpts,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn replay(o: ReplayOpts) -> anyhow::Result<ExitCode> {
    // The log first: a wrong location is reported before the policy is compiled.
    let opened = o.log.open()?;
    let engine = common::engine(Metering::Epoch)?;
    let policy = common::load(&engine, &o.policy, &o.cache)?
        .with_context(|| format!("policy {} would be refused", o.policy))?;
    let records = opened.log.query(&o.filter.query(&o.log.tenant)?)?;
    let mut differences = Vec::new();
    for r in &records {
        let first = r.first();
        let (decision, written, reason) = candidate_outcome(&policy, r);
        if decision != first.decision || written != first.written {
            differences.push(json!({
                "id": r.id,
                "partyId": r.party_id,
                "recorded": {"decision": first.decision, "policyDigest": first.policy_digest},
                "candidate": {"decision": decision, "reason": reason},
                "sameDecisionOtherParty": decision == first.decision,
            }));
        }
    }
    if o.log.json {
        common::emit_json(&json!({
            "tenant": o.log.tenant,
            "candidate": policy.digest(),
            "replayed": records.len(),
            "different": differences.len(),
            "differences": differences,
        }))?;
    } else {
        let mut out = String::new();
        for d in &differences {
            out.push_str(&format!(
                "{}  party {:<10} recorded {} by {}, candidate {}{}\n",
                common::short(d["id"].as_str().unwrap_or_default()),
                d["partyId"].as_str().unwrap_or_default(),
                d["recorded"]["decision"].as_str().unwrap_or_default(),
                d["recorded"]["policyDigest"]
                    .as_str()
                    .map(common::short)
                    .unwrap_or("host"),
                d["candidate"]["decision"].as_str().unwrap_or_default(),
                if d["sameDecisionOtherParty"] == true {
                    " (another party)"
                } else {
                    ""
                }
            ));
        }
        out.push_str(&format!(
            "{} conflicts replayed against {} {} (sha256:{}): {} would differ\n",
            records.len(),
            policy.description().name,
            policy.description().version,
            common::short(policy.digest()),
            differences.len()
        ));
        common::emit(&out);
    }
    Ok(common::status(differences.is_empty()))
}

/// Resolves a recorded conflict again with a policy and appends the outcome to its record,
/// which then carries both. Use it on rejected or failed conflicts once the policy is fixed;
/// the redrive workflow does the same for everything in the dead-letter queue and also writes
/// the party. (To write the party from here, redrive the conflict's dead letter.)
///
/// Examples:
///   host-cli conflicts resolve 3f9c2a71b0d4 --tenant acme --policy fixed.wasm
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ResolveOpts {
    /// The conflict's id (or a prefix of at least 6 characters).
    pub id: String,
    /// The policy: a component file, `default` or `na-status`.
    #[arg(long)]
    pub policy: String,
    #[command(flatten)]
    pub log: LogOpts,
    #[command(flatten)]
    pub cache: CacheOpts,
}

pub fn resolve(o: ResolveOpts) -> anyhow::Result<ExitCode> {
    let opened = o.log.open()?;
    let r = find(&*opened.log, &o.log.tenant, &o.id)?;
    let engine = common::engine(Metering::Epoch)?;
    let policy = common::load(&engine, &o.policy, &o.cache)?
        .with_context(|| format!("policy {} would be refused", o.policy))?;
    let (decision, written, reason) = candidate_outcome(&policy, &r);
    let outcome = ConflictOutcome {
        at_ms: SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64,
        by: "host-cli".into(),
        decision,
        reason,
        policy_digest: Some(policy.digest().to_owned()),
        written,
    };
    opened.log.append(&r.tenant, &r.id, &outcome)?;
    if o.log.json {
        common::emit_json(&json!({
            "id": r.id,
            "previous": r.latest(),
            "outcome": outcome,
        }))?;
    } else {
        common::emit(&format!(
            "conflict {}: {} -> {} by {} (sha256:{})\n",
            common::short(&r.id),
            r.latest().decision,
            outcome.decision,
            policy.description().name,
            common::short(policy.digest())
        ));
    }
    Ok(common::status(outcome.resolved()))
}

#[cfg(test)]
mod tests {
    use super::Outcome;
    use clap::ValueEnum;
    use host_core::Decision;

    /// `--outcome` offers exactly the decisions the log records, spelled as recorded.
    #[test]
    fn outcomes_are_the_recorded_decisions() {
        for o in Outcome::value_variants() {
            assert_eq!(o.to_possible_value().unwrap().get_name(), o.decision());
        }
        let decided = [
            (Outcome::KeepLocal, Decision::KeepLocal),
            (Outcome::TakeRemote, Decision::TakeRemote),
            (Outcome::Merged, Decision::Merged),
            (Outcome::Rejected, Decision::Rejected(String::new())),
        ];
        for (o, d) in decided {
            assert_eq!(o.decision(), d.kind());
        }
    }
}
