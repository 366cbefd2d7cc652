//! The ingest path on the in-process stores: the ingest stores' conformance suite (every
//! official event type, duplicates, a reused key, concurrent deliveries and writers,
//! conditional writes, the item size limit, the dead-letter queue: see
//! `integration_tests::conformance`), then what only this world shows: schema errors refused, a
//! create already past the item limit (SQS could not keep its 600 KB event), and one event
//! applied in two regions.

use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
use host_core::store::{PartyStore, StoredParty};
use integration_tests::conformance;
use integration_tests::samples::event;
use policy_types::PartyVersion;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000_000;

#[test]
fn the_memory_stores_conform() {
    conformance::ingest_store(
        "memory",
        |_region| (MemoryStore::new(), MemoryDeadLetters::default()),
        |sink| sink.letters.lock().unwrap().clone(),
    );
}

/// `serve`'s stores: the in-memory replica with every change journaled to redb, and the
/// durable dead letters.
#[test]
fn the_serve_stores_conform() {
    use host_serve::durable::{Durable, DurableLetters};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (durable, _) = Durable::open(dir.path()).unwrap();
    conformance::ingest_store(
        "serve (journaled to redb)",
        |region| {
            let store =
                MemoryStore::replica(region, Arc::new(|| NOW)).with_journal(durable.clone());
            (
                Arc::new(store),
                Arc::new(DurableLetters::new(durable.clone(), [])),
            )
        },
        |sink| sink.pending().into_iter().map(|(_, l)| l).collect(),
    );
}

/// Tenant acme's parties in `store`, each with its own copy.
fn parties_and_own_copies(store: &MemoryStore) -> Vec<(StoredParty, Option<StoredParty>)> {
    use host_core::store::IngestStore;
    store
        .list("acme")
        .unwrap()
        .into_iter()
        .map(|p| {
            let id = p.version.party_id.clone();
            (p, store.own("acme", &id).unwrap())
        })
        .collect()
}

/// What `serve`'s journal kept reads back whole after the process is gone: parties, own
/// copies, idempotency records and dead letters.
#[test]
fn the_serve_stores_read_back_what_they_kept() {
    use host_core::store::IngestStore;
    use host_serve::durable::{Durable, DurableLetters};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let clock: host_core::store::memory::Clock = Arc::new(|| NOW);
    let (kept, letters) = {
        let (durable, _) = Durable::open(dir.path()).unwrap();
        let store =
            Arc::new(MemoryStore::replica("eu", clock.clone()).with_journal(durable.clone()));
        let sink = Arc::new(DurableLetters::new(durable.clone(), []));
        let ingest = Ingest::new(store.clone(), sink.clone(), IngestConfig::new("eu"));
        for (i, name) in [
            "IndividualCreateEvent_request",
            "OrganizationCreateEvent_request",
        ]
        .iter()
        .enumerate()
        {
            let e = event(name, &format!("e{i}"), i as u32);
            assert!(matches!(
                ingest.handle("acme", &e, None, NOW, NOW + 1000),
                Outcome::Applied { .. }
            ));
        }
        let letter = host_core::store::DeadLetter {
            tenant: "acme".into(),
            region: "eu".into(),
            reason: "kept for the test".into(),
            idempotency_key: None,
            payload: json!({"x": 1}),
        };
        host_core::store::DeadLetterSink::send(&*sink, &letter).unwrap();
        durable.close();
        (parties_and_own_copies(&store), sink.pending())
    };
    let (durable, loaded) = Durable::open(dir.path()).unwrap();
    let store = MemoryStore::replica("eu", clock);
    for change in loaded.changes.get("eu").cloned().unwrap_or_default() {
        store.load(change);
    }
    let back = parties_and_own_copies(&store);
    assert_eq!(back.len(), 2);
    assert_eq!(back, kept);
    for i in 0..2 {
        let record = store
            .record("acme", &format!("e{i}"))
            .unwrap()
            .expect("record kept");
        assert_eq!(record.status, host_core::store::RecordStatus::Completed);
    }
    let sink = DurableLetters::new(durable, loaded.letters);
    assert_eq!(sink.pending(), letters);
}

/// Region `region`'s ingest on in-process stores of its own.
fn ingest(region: &str) -> Ingest<MemoryStore, MemoryDeadLetters> {
    Ingest::new(
        MemoryStore::new(),
        MemoryDeadLetters::default(),
        IngestConfig::new(region),
    )
}

fn party(i: &Ingest<MemoryStore, MemoryDeadLetters>, id: &str) -> PartyVersion {
    i.store()
        .party("acme", id)
        .unwrap()
        .expect("party stored")
        .version
}

#[test]
fn invalid_events_are_refused_with_a_tmf630_body() {
    let i = ingest("eu");
    let mut e = event("IndividualCreateEvent_request", "bad-1", 1);
    e["event"]["individual"]["birthDate"] = json!(false);
    match i.handle("acme", &e, None, NOW, NOW + 1000) {
        Outcome::Refused(err) => {
            assert_eq!(err.status, "400");
            assert!(err.message.contains("/event/individual/birthDate"), "{err}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_create_over_400_kb_is_dead_lettered_and_nothing_stored() {
    let i = ingest("eu");
    let mut e = event("IndividualCreateEvent_request", "big-1", 1);
    let media: Vec<Value> = (0..5000)
        .map(|n| json!({"id": format!("cm-{n}"), "@type": "EmailContactMedium", "mediumType": "email", "emailAddress": format!("someone-{n}@example.com")}))
        .collect();
    e["event"]["individual"]["contactMedium"] = Value::Array(media);
    match i.handle("acme", &e, None, NOW, NOW + 1000) {
        Outcome::DeadLettered(reason) => assert!(
            reason.contains("item limit") && reason.contains("nothing was truncated"),
            "{reason}"
        ),
        o => panic!("{o:?}"),
    }
    assert!(i.store().party("acme", "42").unwrap().is_none());
    assert_eq!(i.dead_letters().letters.lock().unwrap().len(), 1);
}

#[test]
fn the_same_event_in_two_regions_is_one_effect_once_they_converge() {
    let (eu, na) = (ingest("eu"), ingest("na"));
    let create = event("IndividualCreateEvent_request", "x-1", 1);
    let mut add = event("IndividualAttributeValueChangeEvent_request", "x-2", 2);
    add["event"]["individual"]["contactMedium"] = json!([{"@type": "EmailContactMedium", "mediumType": "email", "emailAddress": "jane@example.com"}]);
    for region in [&eu, &na] {
        region.handle("acme", &create, None, NOW, NOW + 1000);
        region.handle("acme", &add, None, NOW + 10, NOW + 1000);
    }
    let (a, b) = (party(&eu, "42"), party(&na, "42"));
    let ctx = policy_types::Context {
        tenant: "acme".into(),
        resolving_region: "eu".into(),
        relation: policy_types::Relation::Concurrent,
        config: "{}".into(),
    };
    let policy_types::Resolution::Merged(m) = tmf632_merge::resolve(&ctx, &a, &b) else {
        panic!("merged")
    };
    let merged = policy_types::materialize(&a, &b, &m, "eu", &|_| Ok(())).unwrap();
    let visible = party_model::to_tmf(&merged).unwrap();
    assert_eq!(
        visible,
        party_model::to_tmf(&a).unwrap(),
        "one effect, not two"
    );
    assert_eq!(visible["contactMedium"].as_array().unwrap().len(), 1);
}

/// A region answers a read with every write it acknowledged: when last-writer-wins replaced
/// its own last write with a concurrent version from another region (before reconcile restores
/// it), `read` merges that write back, as the next write would. The stored item is untouched.
#[test]
fn a_read_shows_the_regions_own_write_that_last_writer_wins_overwrote() {
    let (eu, na) = (ingest("eu"), ingest("na"));
    // eu's write is the later one: a merge keeps its nationality.
    let mut mine = event("IndividualCreateEvent_request", "r-1", 3);
    mine["event"]["individual"]["nationality"] = json!("Dutch");
    let theirs = event("IndividualCreateEvent_request", "r-2", 2);
    eu.handle("acme", &mine, None, NOW, NOW + 1000);
    na.handle("acme", &theirs, None, NOW, NOW + 1000);
    // Replication: na's concurrent version replaces eu's item whole.
    let overwriting = na.store().party("acme", "42").unwrap().unwrap();
    let current = eu.store().party("acme", "42").unwrap().unwrap();
    eu.store()
        .put_party(&overwriting, Some(&current.version.version_vector))
        .unwrap();
    let stored = party_model::to_tmf(&party(&eu, "42")).unwrap();
    assert_ne!(stored["nationality"], "Dutch", "the item lost eu's write");
    let read = eu.read("acme", "42", NOW + 20).unwrap().unwrap();
    assert_eq!(
        party_model::to_tmf(&read).unwrap()["nationality"],
        "Dutch",
        "the read answers with it"
    );
    assert_eq!(
        party(&eu, "42"),
        overwriting.version,
        "a read writes nothing"
    );
}

/// An event every field of which is already stamped later changes nothing and writes no new
/// version: the version vector does not move.
#[test]
fn an_event_that_changes_nothing_writes_no_version() {
    let eu = ingest("eu");
    let create = event("IndividualCreateEvent_request", "s-1", 5);
    eu.handle("acme", &create, None, NOW, NOW + 1000);
    let before = party(&eu, "42");
    let mut late = event("IndividualAttributeValueChangeEvent_request", "s-2", 1);
    late["event"]["individual"]["givenName"] = json!("Older");
    let out = eu.handle("acme", &late, None, NOW + 10, NOW + 1000);
    let Outcome::Applied { result, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(result["applied"], json!([]), "{result}");
    assert_eq!(party(&eu, "42").version_vector, before.version_vector);
}
