//! Capacity per million events in three regions, from measured item sizes: the items are
//! written by the real code (the ingest and reconcile paths over `host-aws`'s DynamoDB store
//! and conflict log, against moto), read back, and sized by DynamoDB's rule (attribute names
//! plus values, `host_aws::dynamo::item_size`). The function durations and memory are flags,
//! defaulting to the figures of BENCHMARKS.md's "Lambda cold start" section.
//!
//! What each event costs is counted from the code (host-core's `ingest.rs`, `reconcile.rs`,
//! host-aws's `dynamo.rs` and `conflict_log.rs`):
//!
//! - ingest, per event: the claim (a conditional PutItem of the idempotency record), two
//!   strongly consistent GetItems (the party, this region's own copy), and one
//!   TransactWriteItems of three puts (party, completed record, own copy: transactional, so
//!   twice the units). Every item written is a global-table item: replicated to the two other
//!   regions, and a stream record in every region. The record's TTL deletion is free where it
//!   expires and a replicated delete in the two others.
//! - reconcile, per conflict (a party overwritten by a concurrent version), in each region that
//!   sees the overwrite: a strongly consistent GetItem, a conditional PutItem of the merged
//!   party (replicated), and the conflict log's TransactWriteItems of the id marker and the
//!   record (the record also written to the `byParty` index; the table is global too).
//!   Stream records of other writes only compare version vectors: no DynamoDB call.
//!
//! ```sh
//! scripts/with-moto.sh cargo run -p host-lambda --example capacity -- --conflict-rate 0.01
//! ```

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use host_aws::conflict_log::DynamoConflictLog;
use host_aws::dynamo::{PARTY_SK, RECORD_SK, item_size, own_sk, party_item, party_key, record_key};
use host_aws::sqs::KIND_RECONCILE;
use host_core::ingest::Outcome;
use host_core::reconcile::{Reconcile, ReconcileOutcome};
use host_core::store::{IngestStore, PartyStore};
use host_core::{ActivePolicy, Policy, PolicyEngine, Resolver, TenantPolicies};
use integration_tests::samples::example;
use serde_json::json;

use common::{Rig, create_conflict_table, na_validates, unique};

/// Capacity per million events in three regions, from item sizes measured on moto.
#[derive(Parser, Debug)]
struct Opts {
    /// The share of events whose write is concurrent with another region's write of the same
    /// party (last-writer-wins overwrites one; reconcile merges it back).
    #[arg(long, default_value_t = 0.01)]
    conflict_rate: f64,
    /// Regions that resolve each conflict: the region whose write was overwritten, plus the
    /// third region when the losing write reaches it before the winning one (half the time).
    #[arg(long, default_value_t = 1.5)]
    resolutions_per_conflict: f64,
    /// Regions of the global tables.
    #[arg(long, default_value_t = 3)]
    regions: u32,
    /// Warm ingest duration per event, ms (BENCHMARKS.md, "Lambda cold start": against moto
    /// on a loaded machine; DynamoDB answers in single-digit milliseconds).
    #[arg(long, default_value_t = 247.0)]
    ingest_ms: f64,
    /// Warm reconcile duration per resolved conflict, ms (the same run).
    #[arg(long, default_value_t = 187.0)]
    reconcile_ms: f64,
    /// Billed duration of a reconcile invocation whose records are no conflicts, ms (Lambda's
    /// 1 ms minimum: comparing version vectors takes microseconds).
    #[arg(long, default_value_t = 1.0)]
    reconcile_batch_ms: f64,
    /// Stream records per reconcile invocation (the template's BatchSize is 100; at low rates
    /// the 1 s batching window sends fewer).
    #[arg(long, default_value_t = 10.0)]
    stream_batch: f64,
    /// The functions' memory sizes, MB (deploy/template.yaml).
    #[arg(long, default_value_t = 1024)]
    ingest_mb: u32,
    #[arg(long, default_value_t = 512)]
    reconcile_mb: u32,
}

/// Item sizes in bytes, as DynamoDB counts them.
#[derive(Debug)]
struct Sizes {
    party: usize,
    own: usize,
    record_claimed: usize,
    record_completed: usize,
    merged_party: usize,
    conflict_record: usize,
    conflict_marker: usize,
}

fn get(rig: &Rig, table: &str, pk: String, sk: &str) -> Result<usize> {
    let out = rig
        .rt
        .block_on(
            rig.stores
                .ddb
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(sk.to_owned()))
                .consistent_read(true)
                .send(),
        )
        .with_context(|| format!("reading {pk} {sk}"))?;
    let item = out
        .item
        .with_context(|| format!("no item {pk} {sk}: the code wrote other keys"))?;
    Ok(item_size(&item))
}

/// Writes a party with the ingest path (a TMF632 create, then an attribute change: the common
/// event), a concurrent version from another region, and reconciles it into the conflict log;
/// returns the sizes of what was written.
fn measure(rig: &Rig, engine: &PolicyEngine) -> Result<Sizes> {
    let conflicts = unique("conflicts");
    rig.rt
        .block_on(create_conflict_table(&rig.stores.ddb, &conflicts));
    let ingest = rig.ingest("eu");
    let mut create = example("IndividualCreateEvent_request");
    create["eventId"] = json!("size-1");
    create["eventTime"] = json!("2025-01-01T00:00:00.000Z");
    let id = create["event"]["individual"]["id"]
        .as_str()
        .context("the example has a party id")?
        .to_owned();
    // The claimed record is the completed one without its result: measured by claiming a key
    // and reading it before the commit is possible (a delivery whose event is refused later
    // would leave it; here it is claimed through the store directly).
    let claimed = host_core::store::IdempotencyRecord {
        tenant: "acme".into(),
        key: "size-claim".into(),
        payload_hash: "0".repeat(64),
        status: host_core::store::RecordStatus::InProgress,
        in_progress_until: 1_735_689_600_000,
        expires_at: 1_735_776_000,
        result: None,
    };
    ingest.store().claim(&claimed, 1)?;
    let record_claimed = get(
        rig,
        &rig.stores.table,
        record_key("acme", "size-claim"),
        RECORD_SK,
    )?;
    assert!(matches!(
        ingest.handle("acme", &create, None, 1, u64::MAX),
        Outcome::Applied { .. }
    ));
    let created = ingest.store().party("acme", &id)?.context("created")?;
    let mut change = example("IndividualAttributeValueChangeEvent_request");
    change["eventId"] = json!("size-2");
    change["eventTime"] = json!("2025-01-01T00:00:05.000Z");
    assert!(matches!(
        ingest.handle("acme", &change, None, 2, u64::MAX),
        Outcome::Applied { .. }
    ));
    let party = get(rig, &rig.stores.table, party_key("acme", &id), PARTY_SK)?;
    let own = get(
        rig,
        &rig.stores.table,
        party_key("acme", &id),
        &own_sk("eu"),
    )?;
    let record_completed = get(
        rig,
        &rig.stores.table,
        record_key("acme", "size-2"),
        RECORD_SK,
    )?;

    // NA's concurrent version overwrites EU's, as replication would; reconcile merges.
    let na = na_validates(&created.version);
    let eu = ingest.store().party("acme", &id)?.context("changed")?;
    rig.rt.block_on(
        rig.stores
            .ddb
            .put_item()
            .table_name(&rig.stores.table)
            .set_item(Some(party_item(&na)?))
            .send(),
    )?;
    let policy = Arc::new(Policy::load(
        engine,
        default_policy_artifact::DEFAULT_POLICY,
        None,
    )?);
    let policies = Arc::new(TenantPolicies::new());
    policies.set_default(ActivePolicy::new(policy));
    let log = Arc::new(DynamoConflictLog::new(
        rig.stores.ddb.clone(),
        &conflicts,
        rig.rt.handle().clone(),
    ));
    let reconcile = Reconcile::new(
        rig.store("eu"),
        rig.letters(KIND_RECONCILE),
        Arc::new(Resolver::new(policies, "eu")),
    )
    .with_conflict_log(log);
    let outcome = reconcile.handle(&eu, &na.version, 3);
    anyhow::ensure!(
        matches!(outcome, ReconcileOutcome::Resolved { .. }),
        "the conflict was not resolved: {outcome:?}"
    );
    let merged_party = get(rig, &rig.stores.table, party_key("acme", &id), PARTY_SK)?;
    let items = rig
        .rt
        .block_on(
            rig.stores
                .ddb
                .query()
                .table_name(&conflicts)
                .key_condition_expression("pk = :t")
                .expression_attribute_values(":t", AttributeValue::S("acme".into()))
                .send(),
        )?
        .items
        .unwrap_or_default();
    let size_of = |marker: bool| {
        items
            .iter()
            .find(|i| {
                i.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s.starts_with("ID#") == marker)
            })
            .map(item_size)
            .context("the conflict log wrote a record and its id marker")
    };
    Ok(Sizes {
        party,
        own,
        record_claimed,
        record_completed,
        merged_party,
        conflict_record: size_of(false)?,
        conflict_marker: size_of(true)?,
    })
}

/// Write units of one standard write of an item of `size` bytes (1 KB each, rounded up).
fn wu(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// Read units of one strongly consistent read (4 KB each, rounded up).
fn ru(size: usize) -> f64 {
    size.div_ceil(4096).max(1) as f64
}

/// Per million events, in all regions together.
#[derive(Debug, Default)]
struct Plan {
    write_units: f64,
    read_units: f64,
    replicated_write_units: f64,
    stream_records: f64,
    stream_records_to_lambda: f64,
    gb_seconds: f64,
}

fn plan(s: &Sizes, o: &Opts, record_replicated: bool) -> Plan {
    let m = 1e6;
    let others = f64::from(o.regions - 1);
    let regions = f64::from(o.regions);
    let r = if record_replicated { 1.0 } else { 0.0 };
    // Ingest, per event, in the region that takes it.
    let ingest_writes =
        wu(s.record_claimed) + 2.0 * (wu(s.party) + wu(s.record_completed) + wu(s.own));
    let ingest_reads = ru(s.party) + ru(s.own);
    let ingest_replicated = others
        * (wu(s.party) + wu(s.own) + r * (wu(s.record_claimed) + wu(s.record_completed)))
        // The record's TTL deletion, replicated (free where it expires).
        + others * r * wu(s.record_completed);
    // Item changes per event, each a stream record in every region holding the item.
    let record_regions = if record_replicated { regions } else { 1.0 };
    let stream = regions * 2.0 + record_regions * 3.0; // party, own; claim, completion, TTL delete
    // Reconcile, per resolution.
    let resolutions = m * o.conflict_rate * o.resolutions_per_conflict;
    let resolve_writes = wu(s.merged_party) + 2.0 * (wu(s.conflict_marker) + wu(s.conflict_record))
        // the byParty index, where the write lands
        + wu(s.conflict_record);
    let resolve_reads = ru(s.party);
    let resolve_replicated =
        others * (wu(s.merged_party) + wu(s.conflict_marker) + 2.0 * wu(s.conflict_record));
    let resolve_stream = regions; // the merged party (the log table's stream feeds nothing)
    let to_lambda = m * regions + resolutions * regions; // PARTY records pass the filter
    let gb = |mb: u32| f64::from(mb) / 1024.0;
    let gb_seconds = m * o.ingest_ms / 1e3 * gb(o.ingest_mb)
        + (resolutions * o.reconcile_ms + to_lambda / o.stream_batch * o.reconcile_batch_ms) / 1e3
            * gb(o.reconcile_mb);
    Plan {
        write_units: m * ingest_writes + resolutions * resolve_writes,
        read_units: m * ingest_reads + resolutions * resolve_reads,
        replicated_write_units: m * ingest_replicated + resolutions * resolve_replicated,
        stream_records: m * stream + resolutions * resolve_stream,
        stream_records_to_lambda: to_lambda,
        gb_seconds,
    }
}

fn row(name: &str, p: &Plan) {
    let mm = |x: f64| format!("{:.2} M", x / 1e6);
    println!(
        "| {name} | {} | {} | {} | {} | {} | {:.0} |",
        mm(p.write_units),
        mm(p.read_units),
        mm(p.replicated_write_units),
        mm(p.stream_records),
        mm(p.stream_records_to_lambda),
        p.gb_seconds
    );
}

fn main() -> Result<()> {
    let o = Opts::parse();
    let rig = Rig::new("MOTO_ENDPOINT");
    let engine = PolicyEngine::new(host_core::Limits::default(), host_core::Metering::Epoch)?;
    let s = measure(&rig, &engine)?;
    println!("item sizes (bytes, attribute names + values, as written by the code on moto):");
    println!(
        "  party {} · own copy {} · idempotency record claimed {} / completed {} · merged party {} · conflict-log record {} · its id marker {}",
        s.party,
        s.own,
        s.record_claimed,
        s.record_completed,
        s.merged_party,
        s.conflict_record,
        s.conflict_marker
    );
    println!(
        "\nper million events, {} regions, conflict rate {}%, {} resolutions per conflict; ingest {} ms at {} MB, reconcile {} ms per conflict at {} MB:\n",
        o.regions,
        o.conflict_rate * 100.0,
        o.resolutions_per_conflict,
        o.ingest_ms,
        o.ingest_mb,
        o.reconcile_ms,
        o.reconcile_mb
    );
    println!(
        "| case | write units | read units (strongly consistent) | replicated write units | stream records | stream records to reconcile | Lambda GB-s |"
    );
    println!("|---|---|---|---|---|---|---|");
    row("as deployed", &plan(&s, &o, true));
    row(
        "idempotency record in a regional table",
        &plan(&s, &o, false),
    );
    let conflicts10 = Opts {
        conflict_rate: 0.10,
        ..Opts::parse()
    };
    row("conflict rate 10%", &plan(&s, &conflicts10, true));
    let big = Sizes {
        party: s.party * 4,
        own: s.own * 4,
        merged_party: s.merged_party * 4,
        conflict_record: s.conflict_record * 4,
        ..s
    };
    row("parties 4× larger", &plan(&big, &o, true));
    Ok(())
}
