//! The ingest path on the in-process stores: the ingest stores' conformance suite (every
//! official event type, duplicates, a reused key, concurrent deliveries and writers,
//! conditional writes, the item size limit, the dead-letter queue: see
//! `integration_tests::conformance`), then what only this world shows: schema errors refused, a
//! create already past the item limit (SQS could not keep its 600 KB event), and one event
//! applied in two regions.

use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::store::PartyStore;
use host_core::store::memory::{MemoryDeadLetters, MemoryStore};
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

fn ingest() -> Ingest<MemoryStore, MemoryDeadLetters> {
    Ingest::new(
        MemoryStore::new(),
        MemoryDeadLetters::default(),
        IngestConfig::new("eu"),
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
    let i = ingest();
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
    let i = ingest();
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
    let (eu, na) = (
        ingest(),
        Ingest::new(
            MemoryStore::new(),
            MemoryDeadLetters::default(),
            IngestConfig::new("na"),
        ),
    );
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
    let (eu, na) = (
        ingest(),
        Ingest::new(
            MemoryStore::new(),
            MemoryDeadLetters::default(),
            IngestConfig::new("na"),
        ),
    );
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
    let eu = ingest();
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
