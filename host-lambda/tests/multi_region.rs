//! The seed's testing strategy on three DynamoDB-protocol servers (moto, one per region):
//! concurrent writes in APAC, EU and NA replicated Global-Tables-style, every overwritten
//! version restored by the region's reconcile function, and the checks — identical tables,
//! agreeing version vectors that dominate every acknowledged version, nothing acknowledged
//! lost — under duplicates, a partition, and throttling with a redrive. The last test runs the
//! same workload without reconciliation: what plain Global Tables loses.

// Regions and parties are indexed together (`tables[region][party]`): index loops read best.
#![allow(clippy::needless_range_loop)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use common::regions::*;
use host_core::conflict::CapturedConflict;
use host_core::ingest::Outcome;
use host_core::reconcile::ReconcileOutcome;
use host_lambda::redrive::redrive;
use integration_tests::samples::example;
use policy_types::{FieldValue, Hlc, PartyVersion, VectorOrder, compare_vectors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const TENANT: &str = "acme";
const SCALARS: [&str; 4] = ["givenName", "familyName", "nationality", "maritalStatus"];

/// One acknowledged update: the event's write of a field (or an array element), and the
/// version it produced.
#[derive(Clone, Debug)]
struct Ack {
    party: String,
    field: String,
    element: Option<String>,
    value: Value,
    stamp: Hlc,
    version_vector: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Workload {
    parties: usize,
    events_per_region: usize,
    /// Region (index) that deletes party 0 half-way, if any.
    delete: bool,
}

impl Workload {
    /// `parties` parties, each updated `events_per_region` times from every region; none deleted.
    fn new(parties: usize, events_per_region: usize) -> Self {
        Workload {
            parties,
            events_per_region,
            delete: false,
        }
    }
}

fn event_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn individual(id: &str) -> Value {
    let mut e = example("IndividualCreateEvent_request");
    e["event"]["individual"]["id"] = json!(id);
    e["event"]["individual"]["contactMedium"] = json!([]);
    e["event"]["individual"]["status"] = json!("initialized");
    e
}

/// Creates the parties in EU and lets them replicate everywhere.
fn create_parties(world: &mut World, n: usize, t0: u64) {
    for p in 0..n {
        let mut e = individual(&format!("p{p}"));
        e["eventId"] = json!(format!("create-p{p}"));
        e["eventTime"] = json!(event_time(t0 + p as u64));
        let out = world.regions[1]
            .ingest
            .handle(TENANT, &e, None, now(), now() + 60_000);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    world.settle();
}

fn now() -> u64 {
    host_lambda::ingest_fn::now_ms()
}

/// Runs the clients of the three regions concurrently while replication and reconciliation
/// are pumped; returns every acknowledged update.
fn run_clients(
    world: &mut World,
    w: Workload,
    t0: u64,
    during: impl Fn(&mut World, usize),
) -> Vec<Ack> {
    let ingests: Vec<_> = world
        .regions
        .iter()
        .map(|r| (r.name.clone(), r.ingest.clone()))
        .collect();
    let seed = world.seed;
    let acks = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (ri, (region, ingest)) in ingests.iter().enumerate() {
            let (acks, done) = (&acks, &done);
            s.spawn(move || {
                // Counted on the way out, panicking or not, so the pump loop below ends.
                struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _done = Done(done);
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 31 + ri as u64);
                for k in 0..w.events_per_region {
                    let p = rng.random_range(0..w.parties);
                    let id = format!("p{p}");
                    // Unique, increasing event times; regions interleave.
                    let at = t0 + (k as u64 * 3 + ri as u64) * 7;
                    let mut e = individual(&id);
                    e["eventId"] = json!(format!("{region}-{k}"));
                    e["eventTime"] = json!(event_time(at));
                    let kind = rng.random_range(0..10);
                    // The array branch sends its own write (conditional); the others are sent below.
                    let mut array_write: Option<Outcome> = None;
                    let (field, value) = if w.delete && ri == 2 && k == w.events_per_region / 2 && p == 0 {
                        e["eventType"] = json!("IndividualDeleteEvent");
                        e["event"]["individual"] = json!({"@type": "Individual", "id": id});
                        (None, Value::Null)
                    } else if kind < 5 {
                        let f = SCALARS[rng.random_range(0..SCALARS.len())];
                        let v = json!(format!("{region}-{k}"));
                        e["eventType"] = json!("IndividualAttributeValueChangeEvent");
                        e["event"]["individual"] = json!({"@type": "Individual", "id": id, f: v});
                        (Some(f.to_owned()), v)
                    } else if kind < 7 {
                        e["eventType"] = json!("IndividualStateChangeEvent");
                        e["event"]["individual"] = json!({"@type": "Individual", "id": id, "status": "validated"});
                        (Some("status".to_owned()), json!("validated"))
                    } else {
                        // Add an element to the array this region sees: a read-modify-write
                        // of the whole array, made conditional on the version read (as a
                        // client sends `If-Match` with the ETag it read), and read again when
                        // that version changed meanwhile. Without the condition, an element
                        // replicated in between would be removed by an array that never held it.
                        let element = json!({"@type": "EmailContactMedium", "id": format!("{region}-{k}"), "mediumType": "email",
                            "emailAddress": format!("{region}-{k}@example.com")});
                        e["eventType"] = json!("IndividualAttributeValueChangeEvent");
                        let mut tries = 0;
                        let sent = loop {
                            tries += 1;
                            assert!(tries <= 50, "seed {seed}: {region} event {k}: the party kept changing under 50 reads");
                            let seen = ingest.read_party(&id);
                            let mut media: Vec<Value> = seen
                                .as_ref()
                                .and_then(|v| integration_tests::tmf(v)["contactMedium"].as_array().cloned())
                                .unwrap_or_default();
                            media.push(element.clone());
                            e["event"]["individual"] = json!({"@type": "Individual", "id": id, "contactMedium": media});
                            let read = seen.map(|v| v.version_vector);
                            let unchanged = |current: Option<&PartyVersion>| {
                                if current.map(|c| &c.version_vector) == read.as_ref() {
                                    Ok(())
                                } else {
                                    Err(host_core::event::Tmf630Error::new(412, "preconditionFailed", "Precondition Failed", "changed since read"))
                                }
                            };
                            match ingest.handle_if(TENANT, &e, None, now(), now() + 60_000, &unchanged) {
                                Outcome::Refused(r) if r.status() == 412 => continue,
                                other => break other,
                            }
                        };
                        array_write = Some(sent);
                        (Some("contactMedium".to_owned()), element)
                    };
                    let out = array_write
                        .unwrap_or_else(|| ingest.handle(TENANT, &e, None, now(), now() + 60_000));
                    let result = match out {
                        Outcome::Applied { result, .. } => result,
                        // Kept for a redrive, not acknowledged (the tests that expect none
                        // check that the dead-letter queues are empty).
                        Outcome::DeadLettered(_) => continue,
                        other => panic!("seed {seed}: {region} event {k}: {other:?}"),
                    };
                    let applied: Vec<String> = serde_json::from_value(result["applied"].clone()).unwrap();
                    let Some(field) = field else { continue };
                    if !applied.contains(&field) {
                        continue; // stale: not acknowledged as a change
                    }
                    let stamp = Hlc::new(at, 0, region.clone());
                    let vv: Vec<String> = serde_json::from_value(result["versionVector"].clone()).unwrap();
                    let element = (field == "contactMedium").then(|| party_model::element_key(&value));
                    acks.lock().unwrap().push(Ack {
                        party: id,
                        field,
                        element,
                        value,
                        stamp,
                        version_vector: vv,
                    });
                }
            });
        }
        let mut round = 0;
        while done.load(Ordering::SeqCst) < ingests.len() {
            world.pump();
            during(world, round);
            round += 1;
        }
    });
    acks.into_inner().unwrap()
}

trait ReadParty {
    fn read_party(&self, id: &str) -> Option<PartyVersion>;
}

impl ReadParty for AwsIngest {
    /// What the region answers for the party (`GET`), as a client reads it before changing an
    /// array: the stored item with the region's own acknowledged write merged back if
    /// last-writer-wins replication overwrote it before reconcile restored it. A client that
    /// read the raw item then would send the array without that write and, by the event's own
    /// rule (an element left out is removed), remove it.
    fn read_party(&self, id: &str) -> Option<PartyVersion> {
        self.read(TENANT, id, now()).unwrap()
    }
}

/// The final parties of each region.
fn tables(world: &World, parties: usize) -> Vec<Vec<PartyVersion>> {
    (0..3)
        .map(|r| {
            (0..parties)
                .map(|p| {
                    world
                        .party(r, TENANT, &format!("p{p}"))
                        .expect("party in every region")
                })
                .collect()
        })
        .collect()
}

/// Acknowledged updates that are neither in the final party nor superseded by a later write
/// to the same field (or element), a delete, or a later lifecycle status.
fn lost(acks: &[Ack], finals: &[PartyVersion]) -> Vec<String> {
    let by_id: HashMap<&str, &PartyVersion> =
        finals.iter().map(|v| (v.party_id.as_str(), v)).collect();
    let mut lost = Vec::new();
    for a in acks {
        let v = by_id[a.party.as_str()];
        if v.tombstone.as_ref().is_some_and(|t| *t > a.stamp) || v.tombstone.is_some() {
            continue; // delete-wins: an update the delete did not see loses to it by rule
        }
        let kept = match (v.field(&a.field), &a.element) {
            (Some(f), None) => match &f.value {
                FieldValue::Json(text) => {
                    let now: Value = serde_json::from_str(text).unwrap();
                    f.stamp > a.stamp
                        || now == a.value
                        || (a.field == "status" && tmf632_rank(&now) >= tmf632_rank(&a.value))
                }
                _ => false,
            },
            (Some(f), Some(key)) => match &f.value {
                FieldValue::Elements(els) => els.iter().any(|e| &e.key == key),
                _ => false,
            },
            (None, _) => false,
        };
        if !kept {
            lost.push(format!(
                "{}.{}{} = {} at {}",
                a.party,
                a.field,
                a.element
                    .as_deref()
                    .map(|k| format!("[{k}]"))
                    .unwrap_or_default(),
                a.value,
                a.stamp
            ));
        }
    }
    lost
}

fn tmf632_rank(status: &Value) -> u8 {
    match status.as_str() {
        Some("initialized") => 0,
        Some("validated") => 1,
        Some("deceased") | Some("deceaded") => 2,
        _ => 0,
    }
}

fn assert_converged(world: &World, w: Workload, acks: &[Ack]) {
    let t = tables(world, w.parties);
    for p in 0..w.parties {
        let (a, b, c) = (&t[0][p], &t[1][p], &t[2][p]);
        assert_eq!(
            (integration_tests::tmf(a), &a.version_vector, &a.tombstone),
            (integration_tests::tmf(b), &b.version_vector, &b.tombstone),
            "seed {}: p{p} differs between apac and eu",
            world.seed
        );
        assert_eq!(
            (integration_tests::tmf(a), &a.version_vector, &a.tombstone),
            (integration_tests::tmf(c), &c.version_vector, &c.tombstone),
            "seed {}: p{p} differs between apac and na",
            world.seed
        );
    }
    let lost = lost(acks, &t[0]);
    assert!(
        lost.is_empty(),
        "seed {}: {} of {} acknowledged updates lost: {lost:#?}",
        world.seed,
        lost.len(),
        acks.len()
    );
}

fn assert_vectors_dominate(world: &World, w: Workload, acks: &[Ack]) {
    let t = tables(world, w.parties);
    for a in acks {
        let p: usize = a.party[1..].parse().unwrap();
        let acked: Vec<policy_types::Dot> = a
            .version_vector
            .iter()
            .map(|d| {
                let (r, c) = d.split_once(':').unwrap();
                policy_types::Dot::new(r, c.parse().unwrap())
            })
            .collect();
        for r in 0..3 {
            let order = compare_vectors(&t[r][p].version_vector, &acked);
            assert!(
                matches!(order, VectorOrder::Dominates | VectorOrder::Equal),
                "seed {}: region {r}'s vector for {} does not cover the acknowledged {:?}",
                world.seed,
                a.party,
                a.version_vector
            );
        }
    }
}

/// Runs `w` in `world` undisturbed: the parties created at `t0`, the clients from a second later,
/// then replication settled; returns every acknowledged update.
fn run_workload(world: &mut World, w: Workload, t0: u64) -> Vec<Ack> {
    create_parties(world, w.parties, t0);
    let acks = run_clients(world, w, t0 + 1000, |_, _| {});
    world.settle();
    acks
}

/// A change event of party `id` at `at` ms, whose individual is `individual`.
fn change(event_id: &str, at: u64, individual: Value) -> Value {
    let id = individual["id"].as_str().unwrap().to_owned();
    let mut e = self::individual(&id);
    e["eventId"] = json!(event_id);
    e["eventType"] = json!("IndividualAttributeValueChangeEvent");
    e["eventTime"] = json!(event_time(at));
    e["event"]["individual"] = individual;
    e
}

fn seed() -> u64 {
    integration_tests::env_seed("SEED").unwrap_or(7)
}

/// A world of seed `seed() + offset` with `parties` parties created at `t0`.
fn world_with_parties(offset: u64, parties: usize, t0: u64) -> World {
    let mut world = World::new(seed() + offset);
    create_parties(&mut world, parties, t0);
    world
}

#[test]
fn apac_eu_na_concurrent_writes_converge_with_nothing_lost() {
    let mut world = World::new(seed());
    let w = Workload {
        delete: true,
        ..Workload::new(3, 16)
    };
    let acks = run_workload(&mut world, w, 1_750_000_000_000);
    assert!(
        world.overwrites > 0,
        "the workload must make last-writer-wins overwrite something"
    );
    assert_converged(&world, w, &acks);
    for r in 0..3 {
        assert!(
            world.dead_letters(r).is_empty(),
            "nothing dead-lettered in region {r}"
        );
    }
    assert_conflicts_recorded_once(&world);
}

/// The conflict log holds each conflict once, and every record reproduces: the default policy
/// on the recorded versions, context and region decides and writes what the record says.
fn assert_conflicts_recorded_once(world: &World) {
    use host_core::conflict_log::{ConflictLog, ConflictQuery};
    let records = world
        .conflicts
        .query(&ConflictQuery::tenant(TENANT))
        .unwrap();
    assert!(!records.is_empty(), "the workload had concurrent conflicts");
    integration_tests::assert_each_conflict_once(&records, "the workload's log");
    let policy = integration_tests::default_policy(&integration_tests::engine());
    for r in &records {
        let first = r.first();
        assert_eq!(
            first.policy_digest.as_deref(),
            Some(policy.digest()),
            "{}",
            r.id
        );
        assert!(
            r.regions
                .iter()
                .all(|g| ["apac", "eu", "na"].contains(&g.as_str()))
        );
        integration_tests::assert_first_outcome_reproduces(&policy, r, "the workload's log");
    }
}

#[test]
fn version_vectors_agree_and_dominate_every_acknowledged_version() {
    let mut world = World::new(seed() + 1);
    let w = Workload::new(2, 16);
    let acks = run_workload(&mut world, w, 1_750_000_100_000);
    assert_vectors_dominate(&world, w, &acks);
    let t = tables(&world, w.parties);
    for p in 0..w.parties {
        assert_eq!(t[0][p].version_vector, t[1][p].version_vector);
        assert_eq!(t[0][p].version_vector, t[2][p].version_vector);
    }
}

#[test]
fn duplicate_deliveries_end_as_one_effect() {
    let t0 = 1_750_000_200_000;
    let mut world = world_with_parties(2, 1, t0);
    let element = json!({"@type": "EmailContactMedium", "id": "cm-dup", "mediumType": "email", "emailAddress": "dup@example.com"});
    let e = change(
        "dup-everywhere",
        t0 + 500,
        json!({"@type": "Individual", "id": "p0", "contactMedium": [element], "givenName": "Dupont"}),
    );
    // Twice to APAC (the second answered from the idempotency record), once to EU and to NA.
    let apac = world.regions[0].ingest.clone();
    let first = apac.handle(TENANT, &e, None, now(), now() + 60_000);
    assert!(
        matches!(first, Outcome::Applied { replay: false, .. }),
        "{first:?}"
    );
    assert!(matches!(
        apac.handle(TENANT, &e, None, now(), now() + 60_000),
        Outcome::Applied { replay: true, .. }
    ));
    for r in [1, 2] {
        let out = world.regions[r]
            .ingest
            .handle(TENANT, &e, None, now(), now() + 60_000);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    world.settle();
    let t = tables(&world, 1);
    for r in 0..3 {
        let tmf = integration_tests::tmf(&t[r][0]);
        assert_eq!(
            tmf["contactMedium"],
            json!([element]),
            "region {r}: the element once"
        );
        assert_eq!(tmf["givenName"], json!("Dupont"));
    }
    assert_eq!(
        integration_tests::tmf(&t[0][0]),
        integration_tests::tmf(&t[1][0])
    );
    assert_eq!(
        integration_tests::tmf(&t[0][0]),
        integration_tests::tmf(&t[2][0])
    );
}

#[test]
fn a_partitioned_region_converges_after_healing_with_nothing_lost() {
    let w = Workload::new(2, 20);
    let t0 = 1_750_000_300_000;
    let mut world = world_with_parties(3, w.parties, t0);
    // NA is cut off from replication for the first rounds of traffic, then healed.
    world.cut_off[2] = true;
    let acks = run_clients(&mut world, w, t0 + 1000, |world, round| {
        if round == 6 {
            world.cut_off[2] = false;
        }
    });
    world.cut_off[2] = false;
    world.settle();
    assert_converged(&world, w, &acks);
    assert_vectors_dominate(&world, w, &acks);
}

#[test]
fn throttled_writes_are_dead_lettered_and_a_redrive_completes_them() {
    let w = Workload::new(2, 12);
    let t0 = 1_750_000_400_000;
    let mut world = world_with_parties(4, w.parties, t0);
    // EU's writes (ingest and reconcile alike) are throttled in bursts longer than the SDK's
    // retries: some events and some resolutions end in EU's dead-letter queue.
    let acks = {
        let mut acks = Vec::new();
        let eu = world.regions[1].ingest.clone();
        world.regions[1].stores.throttle.arm(6);
        let e = change(
            "throttled-1",
            t0 + 900,
            json!({"@type": "Individual", "id": "p0", "nationality": "throttled"}),
        );
        let out = eu.handle(TENANT, &e, None, now(), now() + 60_000);
        assert!(matches!(out, Outcome::DeadLettered(_)), "{out:?}");
        acks.extend(run_clients(&mut world, w, t0 + 1000, |world, round| {
            if round % 3 == 0 {
                world.regions[1].stores.throttle.arm(4);
            }
        }));
        acks
    };
    world.regions[1].stores.throttle.arm(0);
    world.settle();
    let kept = world.dead_letters(1);
    assert!(
        !kept.is_empty(),
        "the throttled work is in the dead-letter queue"
    );
    assert!(
        world.regions[1]
            .stores
            .throttle
            .injected
            .load(Ordering::SeqCst)
            > 0
    );
    // The redrive hands each message back to its path; the queue empties.
    let eu = &world.regions[1];
    let (ingest, reconcile) = (eu.ingest.clone(), eu.reconcile.clone());
    let report = world
        .rt
        .block_on(redrive(&eu.stores.sqs, &eu.stores.dlq, 100, move |k| {
            let (ingest, reconcile) = (ingest.clone(), reconcile.clone());
            async move {
                tokio::task::spawn_blocking(move || match k.kind.as_str() {
                    "ingest" => match ingest.redeliver(
                        &k.letter.tenant,
                        &k.letter.payload,
                        k.letter.idempotency_key.as_deref(),
                        now(),
                        now() + 60_000,
                    ) {
                        Outcome::Applied { .. } => Ok(()),
                        o => Err(format!("{o:?}")),
                    },
                    _ => {
                        let c: CapturedConflict = serde_json::from_value(k.letter.payload).unwrap();
                        match reconcile.reconcile().redrive(&c.remote, now()) {
                            ReconcileOutcome::Resolved { .. }
                            | ReconcileOutcome::AlreadyResolved => Ok(()),
                            o => Err(format!("{o:?}")),
                        }
                    }
                })
                .await
                .unwrap()
            }
        }))
        .unwrap();
    assert_eq!(report.redriven, kept.len(), "{report:?}");
    assert!(world.dead_letters(1).is_empty());
    world.settle();
    assert_converged(&world, w, &acks);
    let t = tables(&world, w.parties);
    // The redriven event landed (or a later write to the field superseded it).
    let nationality = t[0][0].field("nationality").expect("nationality written");
    assert!(
        nationality.stamp.wall_ms >= t0 + 900,
        "the redriven change is applied: {nationality:?}"
    );
}

#[test]
fn plain_global_tables_loses_what_reconciliation_keeps() {
    let w = Workload::new(3, 16);
    let mut lost_by = Vec::new();
    for reconcile in [false, true] {
        let mut world = World::new(seed() + 5);
        world.reconcile_enabled = reconcile;
        let acks = run_workload(&mut world, w, 1_750_000_500_000);
        // Without reconciliation the regions may not even agree; count against each region.
        let t = tables(&world, w.parties);
        let worst = (0..3).map(|r| lost(&acks, &t[r]).len()).max().unwrap();
        println!(
            "{}: {} acknowledged field updates, {} overwrites, {} lost (worst region)",
            if reconcile {
                "with reconciliation"
            } else {
                "plain Global Tables (last writer wins)"
            },
            acks.len(),
            world.overwrites,
            worst
        );
        lost_by.push(worst);
    }
    assert!(
        lost_by[0] > 0,
        "plain last-writer-wins loses acknowledged updates on this workload"
    );
    assert_eq!(lost_by[1], 0, "reconciliation loses none");
}
