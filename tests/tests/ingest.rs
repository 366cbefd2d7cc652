//! The ingest path on the in-process stores: every official event type applied, duplicates
//! answered from the idempotency record, a reused key refused, concurrent deliveries told to
//! retry, conditional-write retries, the item size limit, and the dead-letter queue.

use std::sync::atomic::{AtomicU32, Ordering};

use host_core::event::Tmf630Error;
use host_core::ingest::memory::{MemoryDeadLetters, MemoryStore};
use host_core::ingest::{
    IdempotencyRecord, Ingest, IngestConfig, IngestStore, Outcome, PartyStore, RecordStatus,
    StoreError, StoredParty,
};
use integration_tests::samples::example;
use policy_types::{Dot, PartyVersion};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000_000;

fn ingest() -> Ingest<MemoryStore, MemoryDeadLetters> {
    Ingest::new(
        MemoryStore::new(),
        MemoryDeadLetters::default(),
        IngestConfig::new("eu"),
    )
}

/// An official example with a fresh event id and a later event time than the previous one
/// (the spec's examples all share one of each).
fn event(name: &str, id: &str) -> Value {
    static SECONDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let s = SECONDS.fetch_add(1, Ordering::SeqCst);
    let mut e = example(name);
    e["eventId"] = json!(id);
    e["eventTime"] = json!(format!(
        "2025-01-01T{:02}:{:02}:{:02}.000Z",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    ));
    e
}

fn applied(o: &Outcome) -> &Value {
    match o {
        Outcome::Applied { result, .. } => result,
        other => panic!("expected applied, got {other:?}"),
    }
}

fn party(i: &Ingest<MemoryStore, MemoryDeadLetters>, id: &str) -> PartyVersion {
    i.store()
        .party("acme", id)
        .unwrap()
        .expect("party stored")
        .version
}

#[test]
fn every_official_event_type_applies() {
    for (resource, id) in [("Individual", "42"), ("Organization", "128")] {
        let i = ingest();
        let create = i.handle(
            "acme",
            &event(&format!("{resource}CreateEvent_request"), "e1"),
            None,
            NOW,
            NOW + 1000,
        );
        assert!(applied(&create)["applied"].as_array().unwrap().len() > 3);
        let before = party(&i, id);

        let change = i.handle(
            "acme",
            &event(
                &format!("{resource}AttributeValueChangeEvent_request"),
                "e2",
            ),
            None,
            NOW + 10,
            NOW + 1000,
        );
        let changed: Vec<String> =
            serde_json::from_value(applied(&change)["applied"].clone()).unwrap();
        let after = party(&i, id);
        // Only the carried attributes are stamped anew.
        for f in &after.fields {
            let old = before.field(&f.name);
            if changed.contains(&f.name) {
                assert!(
                    old.is_none_or(|o| o.stamp < f.stamp),
                    "{} restamped",
                    f.name
                );
            } else {
                assert_eq!(
                    old.map(|o| &o.stamp),
                    Some(&f.stamp),
                    "{} untouched",
                    f.name
                );
            }
        }

        let state = i.handle(
            "acme",
            &event(&format!("{resource}StateChangeEvent_request"), "e3"),
            None,
            NOW + 20,
            NOW + 1000,
        );
        assert_eq!(applied(&state)["applied"], json!(["status"]));

        i.handle(
            "acme",
            &event(&format!("{resource}DeleteEvent_request"), "e4"),
            None,
            NOW + 30,
            NOW + 1000,
        );
        let deleted = party(&i, id);
        assert!(deleted.tombstone.is_some() && deleted.fields.is_empty());
        assert_eq!(
            deleted.version_vector,
            vec![Dot::new("eu", 4)],
            "each write ticks the region's counter"
        );
    }
}

#[test]
fn duplicate_with_same_payload_returns_the_first_result_and_applies_nothing() {
    let i = ingest();
    let e = event("IndividualCreateEvent_request", "dup-1");
    let first = i.handle("acme", &e, None, NOW, NOW + 1000);
    let vv = party(&i, "42").version_vector;
    let again = i.handle("acme", &e, None, NOW + 50, NOW + 1000);
    assert_eq!(
        again,
        Outcome::Applied {
            result: applied(&first).clone(),
            replay: true
        }
    );
    assert_eq!(party(&i, "42").version_vector, vv, "nothing applied twice");
}

#[test]
fn same_key_with_a_different_payload_is_a_409() {
    let i = ingest();
    i.handle(
        "acme",
        &event("IndividualCreateEvent_request", "k-1"),
        None,
        NOW,
        NOW + 1000,
    );
    let mut other = event("IndividualAttributeValueChangeEvent_request", "k-1");
    other["event"]["individual"]["maritalStatus"] = json!("widowed");
    match i.handle("acme", &other, None, NOW + 5, NOW + 1000) {
        Outcome::Refused(Tmf630Error { status, code, .. }) => {
            assert_eq!(status, "409");
            assert_eq!(code, "idempotencyKeyReused");
        }
        o => panic!("{o:?}"),
    }
    // An explicit key supplied by the caller is honoured in place of the event id.
    assert!(matches!(
        i.handle("acme", &other, Some("client-key-7"), NOW + 6, NOW + 1000),
        Outcome::Applied { replay: false, .. }
    ));
}

#[test]
fn concurrent_delivery_is_told_to_retry_and_an_abandoned_claim_expires() {
    let i = ingest();
    let e = event("IndividualCreateEvent_request", "c-1");
    let claim = IdempotencyRecord {
        tenant: "acme".into(),
        key: "c-1".into(),
        payload_hash: host_core::ingest::payload_hash(&e),
        status: RecordStatus::InProgress,
        in_progress_until: NOW + 500,
        expires_at: NOW / 1000 + 3600,
        result: None,
    };
    i.store().claim(&claim, NOW).unwrap();
    assert_eq!(
        i.handle("acme", &e, None, NOW + 100, NOW + 1000),
        Outcome::InProgress
    );
    // The first holder ran out of time without completing: the key can be claimed again.
    assert!(matches!(
        i.handle("acme", &e, None, NOW + 600, NOW + 1600),
        Outcome::Applied { replay: false, .. }
    ));
}

/// A store that fails the first `n` commits as if another writer had committed first.
struct Contended {
    inner: MemoryStore,
    failures: AtomicU32,
}

impl PartyStore for Contended {
    fn party(&self, t: &str, p: &str) -> Result<Option<StoredParty>, StoreError> {
        self.inner.party(t, p)
    }
    fn put_party(&self, p: &StoredParty, e: Option<&[Dot]>) -> Result<(), StoreError> {
        self.inner.put_party(p, e)
    }
}

impl IngestStore for Contended {
    fn own(&self, t: &str, p: &str) -> Result<Option<PartyVersion>, StoreError> {
        self.inner.own(t, p)
    }
    fn record(&self, t: &str, k: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.record(t, k)
    }
    fn claim(&self, r: &IdempotencyRecord, now: u64) -> Result<(), StoreError> {
        self.inner.claim(r, now)
    }
    fn commit(
        &self,
        p: &StoredParty,
        e: Option<&[Dot]>,
        r: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::ConditionFailed);
        }
        self.inner.commit(p, e, r)
    }
    fn release(&self, t: &str, k: &str) -> Result<(), StoreError> {
        self.inner.release(t, k)
    }
}

#[test]
fn conditional_write_retries_then_dead_letters() {
    let contended = |n| {
        Ingest::new(
            Contended {
                inner: MemoryStore::new(),
                failures: AtomicU32::new(n),
            },
            MemoryDeadLetters::default(),
            IngestConfig::new("eu"),
        )
    };
    let i = contended(3);
    assert!(matches!(
        i.handle(
            "acme",
            &event("IndividualCreateEvent_request", "r-1"),
            None,
            NOW,
            NOW + 1000
        ),
        Outcome::Applied { .. }
    ));

    let i = contended(100);
    let e = event("IndividualCreateEvent_request", "r-2");
    match i.handle("acme", &e, None, NOW, NOW + 1000) {
        Outcome::DeadLettered(reason) => {
            assert!(reason.contains("conditional writes failed"), "{reason}")
        }
        o => panic!("{o:?}"),
    }
    let letters = i.dead_letters().letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload, e, "the original payload is kept");
    // The claim was released: a redrive can apply the event.
    assert!(i.store().record("acme", "r-2").unwrap().is_none());
}

#[test]
fn an_item_over_400_kb_is_dead_lettered_not_truncated() {
    let i = ingest();
    let mut e = event("IndividualCreateEvent_request", "big-1");
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
fn invalid_events_are_refused_with_a_tmf630_body() {
    let i = ingest();
    let mut e = event("IndividualCreateEvent_request", "bad-1");
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
fn out_of_order_attribute_changes_change_nothing_for_older_fields() {
    let i = ingest();
    i.handle(
        "acme",
        &event("IndividualCreateEvent_request", "o-1"),
        None,
        NOW,
        NOW + 1000,
    );
    let change = |id: &str, at: &str, value: &str| {
        let mut e = event("IndividualAttributeValueChangeEvent_request", id);
        e["eventTime"] = json!(at);
        e["event"]["individual"]["maritalStatus"] = json!(value);
        e
    };
    let newer = i.handle(
        "acme",
        &change("o-3", "2030-01-01T10:00:02.000Z", "married"),
        None,
        NOW + 10,
        NOW + 1000,
    );
    assert_eq!(applied(&newer)["applied"].as_array().unwrap().len(), 4);
    // The older change arrives last: its fields are stale, and the result says so.
    let older = i.handle(
        "acme",
        &change("o-2", "2030-01-01T10:00:01.000Z", "widowed"),
        None,
        NOW + 20,
        NOW + 1000,
    );
    assert!(
        applied(&older)["stale"]
            .as_array()
            .unwrap()
            .contains(&json!("maritalStatus")),
        "{older:?}"
    );
    assert_eq!(
        party_model::to_tmf(&party(&i, "42")).unwrap()["maritalStatus"],
        "married"
    );
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
    let create = event("IndividualCreateEvent_request", "x-1");
    let mut add = event("IndividualAttributeValueChangeEvent_request", "x-2");
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
