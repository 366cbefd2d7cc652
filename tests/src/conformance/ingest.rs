//! The ingest stores' suite: `IngestStore` (with `PartyStore`) and `DeadLetterSink`, through
//! the ingest path and directly.

use std::sync::atomic::{AtomicU32, Ordering};

use host_core::ingest::{Ingest, IngestConfig, Outcome};
use host_core::store::{
    Commit, DeadLetter, DeadLetterSink, IdempotencyRecord, IngestStore, PartyStore, Provenance,
    RecordStatus, StoreError, StoredParty,
};
use policy_types::{Dot, PartyVersion, ResourceType};
use serde_json::{Value, json};

use super::{Check, DEADLINE, NOW, REGION, Suite};
use crate::samples::event;
use crate::{tmf, write};

/// The ingest stores' contract, through the ingest path and directly: every official event
/// type applies (and the item names the write behind each field), a duplicate replays the first result, a reused key with another payload is a
/// 409, concurrent deliveries apply once, a live claim holds its key until its holder's
/// deadline, an older change arriving late changes nothing it does not win, a status that
/// goes back in its lifecycle is refused and changes nothing, concurrent writers
/// all land through conditional retries, conditional writes exhausted go to the dead-letter
/// queue with the claim released, and a party past the 400 KB item limit is dead-lettered
/// whole, never truncated.
///
/// `stores` gives the party store and dead-letter sink of a region (fresh ones, or views of
/// shared storage: each check uses a tenant of its own); `letters` reads back what a sink kept
/// (of every tenant; the checks filter by theirs).
pub fn ingest_store<S, D>(
    backend: &str,
    stores: impl Fn(&str) -> (S, D),
    letters: impl Fn(&D) -> Vec<DeadLetter>,
) where
    S: IngestStore,
    D: DeadLetterSink,
{
    let rig = IngestRig {
        stores: &stores,
        letters: &letters,
    };
    let checks: [Check<IngestRig<S, D>>; 12] = [
        (
            "every official event type applies",
            every_official_event_type_applies,
        ),
        (
            "a duplicate replays the first result",
            a_duplicate_replays_the_first_result,
        ),
        (
            "a reused key with another payload is a 409",
            a_reused_key_with_another_payload_is_a_409,
        ),
        (
            "concurrent duplicates apply once",
            concurrent_duplicates_apply_once,
        ),
        (
            "a live claim holds its key until its holder's deadline",
            a_live_claim_holds_its_key_until_its_deadline,
        ),
        (
            "an older change arriving late changes nothing it does not win",
            an_older_change_arriving_late_changes_nothing_it_does_not_win,
        ),
        (
            "a status that goes back in the lifecycle is refused, changing nothing",
            a_status_that_goes_back_in_the_lifecycle_is_refused,
        ),
        (
            "concurrent writers all land through conditional retries",
            concurrent_writers_all_land,
        ),
        (
            "writes are conditional on the version read",
            writes_are_conditional_on_the_version_read,
        ),
        (
            "exhausted conditional writes are dead-lettered",
            exhausted_conditional_writes_are_dead_lettered,
        ),
        (
            "a party past 400 KB is dead-lettered, not truncated",
            a_party_past_the_item_limit_is_dead_lettered_whole,
        ),
        (
            "a party that fits only without its writes is stored without them",
            a_party_that_fits_only_without_its_writes_is_stored_without_them,
        ),
    ];
    Suite::run("ingest store", backend, &rig, &checks);
}

/// How the checks reach one backend: its stores, and what its sink kept.
struct IngestRig<'a, S, D> {
    stores: &'a dyn Fn(&str) -> (S, D),
    letters: &'a dyn Fn(&D) -> Vec<DeadLetter>,
}

impl<S: IngestStore, D: DeadLetterSink> IngestRig<'_, S, D> {
    fn config() -> IngestConfig {
        let mut config = IngestConfig::new(REGION);
        config.retry_backoff_ms = 1;
        config
    }

    /// The ingest of the checks' region, with a short conditional-write backoff.
    fn ingest(&self) -> Ingest<S, D> {
        let (store, sink) = (self.stores)(REGION);
        Ingest::new(store, sink, Self::config())
    }

    /// [`IngestRig::ingest`], with party 42 of `tenant` created by the official create event.
    fn ingest_with_party(&self, tenant: &str) -> Ingest<S, D> {
        let i = self.ingest();
        let out = i.handle(tenant, &event(CREATE, "create", 1), None, NOW, DEADLINE);
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        i
    }

    /// The letters kept for `tenant`.
    fn letters<T: IngestStore>(&self, i: &Ingest<T, D>, tenant: &str) -> Vec<DeadLetter> {
        (self.letters)(i.dead_letters())
            .into_iter()
            .filter(|l| l.tenant == tenant)
            .collect()
    }
}

fn applied(o: &Outcome) -> &Value {
    match o {
        Outcome::Applied { result, .. } => result,
        other => panic!("expected applied, got {other:?}"),
    }
}

fn stored<S: IngestStore, D: DeadLetterSink>(
    i: &Ingest<S, D>,
    tenant: &str,
    party: &str,
) -> PartyVersion {
    i.store()
        .party(tenant, party)
        .unwrap()
        .unwrap_or_else(|| panic!("party {party} of {tenant} is stored"))
        .version
}

// The official examples of the events the checks send most (`crate::samples::event`).
const CREATE: &str = "IndividualCreateEvent_request";
const ATTRIBUTE_CHANGE: &str = "IndividualAttributeValueChangeEvent_request";
const STATE_CHANGE: &str = "IndividualStateChangeEvent_request";

/// The official `kind` event of party 42 (`id`, at `second` s), its individual's `member` set
/// to `value`.
fn event_setting(kind: &str, id: &str, second: u32, member: &str, value: Value) -> Value {
    let mut e = event(kind, id, second);
    e["event"]["individual"][member] = value;
    e
}

/// The TMF JSON of party 42 of `tenant`, as stored.
fn stored_tmf<S: IngestStore, D: DeadLetterSink>(i: &Ingest<S, D>, tenant: &str) -> Value {
    tmf(&stored(i, tenant, "42"))
}

fn every_official_event_type_applies<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest();
    for (resource, id) in [("Individual", "42"), ("Organization", "128")] {
        let mut before: Option<PartyVersion> = None;
        // The write each field was last set by, as the events' results say.
        let mut behind: std::collections::BTreeMap<String, Dot> = Default::default();
        for (n, kind) in [
            "CreateEvent",
            "AttributeValueChangeEvent",
            "StateChangeEvent",
            "DeleteEvent",
        ]
        .into_iter()
        .enumerate()
        {
            let event_id = format!("{resource}-{n}");
            let e = event(
                &format!("{resource}{kind}_request"),
                &event_id,
                n as u32 + 1,
            );
            let out = i.handle(tenant, &e, None, NOW + n as u64, DEADLINE);
            let result = applied(&out);
            assert_eq!(result["partyId"], json!(id), "{resource} {kind}");
            let party = i.store().party(tenant, id).unwrap().expect("stored");
            let version = &party.version;
            assert_eq!(
                version.version_vector,
                vec![Dot::new(REGION, n as u64 + 1)],
                "{resource} {kind}: each write ticks the region's counter once"
            );
            assert_eq!(
                party.provenance.last_event_id.as_deref(),
                Some(event_id.as_str()),
                "{resource} {kind}: the item records the event that wrote it"
            );
            assert_eq!(
                i.store().own(tenant, id).unwrap().as_ref(),
                Some(&party),
                "{resource} {kind}: the commit keeps the region's own copy, with its writes"
            );
            let dot = Dot::new(REGION, n as u64 + 1);
            if kind == "DeleteEvent" {
                assert_eq!(
                    party.writes.tombstone.as_ref(),
                    Some(&dot),
                    "{resource} deleted"
                );
            }
            for name in result["applied"].as_array().unwrap() {
                behind.insert(name.as_str().unwrap().to_owned(), dot.clone());
            }
            for f in &version.fields {
                assert_eq!(
                    party.writes.field(&f.name),
                    behind.get(&f.name),
                    "{resource} {kind}: the item names the write behind {}",
                    f.name
                );
            }
            let context: Vec<Dot> = (n > 0)
                .then(|| Dot::new(REGION, n as u64))
                .into_iter()
                .collect();
            assert_eq!(
                party.writes.context(&dot),
                Some(context.as_slice()),
                "{resource} {kind}: the item keeps what the write had seen"
            );
            match kind {
                "CreateEvent" => {
                    assert!(result["applied"].as_array().unwrap().len() > 3, "{result}")
                }
                "AttributeValueChangeEvent" => {
                    let changed: Vec<String> =
                        serde_json::from_value(result["applied"].clone()).unwrap();
                    let before = before.as_ref().expect("created first");
                    // Only the carried attributes are stamped anew.
                    for f in &version.fields {
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
                }
                "StateChangeEvent" => assert_eq!(result["applied"], json!(["status"])),
                _ => assert!(
                    version.tombstone.is_some() && version.fields.is_empty(),
                    "{resource} deleted: {version:?}"
                ),
            }
            before = Some(version.clone());
        }
    }
    let kept = rig.letters(&i, tenant);
    assert!(kept.is_empty(), "nothing was dead-lettered: {kept:?}");
}

fn a_duplicate_replays_the_first_result<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest();
    let e = event(CREATE, "dup-1", 1);
    let first = i.handle(tenant, &e, None, NOW, DEADLINE);
    assert!(
        matches!(first, Outcome::Applied { replay: false, .. }),
        "{first:?}"
    );
    let again = i.handle(tenant, &e, None, NOW + 5, DEADLINE);
    assert_eq!(
        again,
        Outcome::Applied {
            result: applied(&first).clone(),
            replay: true
        }
    );
    assert_eq!(
        stored(&i, tenant, "42").version_vector,
        vec![Dot::new(REGION, 1)],
        "applied once"
    );
}

fn a_reused_key_with_another_payload_is_a_409<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest();
    let e = event(CREATE, "k-1", 1);
    applied(&i.handle(tenant, &e, None, NOW, DEADLINE));
    let mut changed = e.clone();
    changed["event"]["individual"]["givenName"] = json!("Janet");
    match i.handle(tenant, &changed, None, NOW + 10, DEADLINE) {
        Outcome::Refused(err) => {
            assert_eq!((err.status(), err.status.as_str()), (409, "409"));
            assert_eq!(err.code, "idempotencyKeyReused");
            assert!(err.message.contains("k-1"), "{}", err.message);
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(
        stored(&i, tenant, "42").version_vector,
        vec![Dot::new(REGION, 1)],
        "the refused payload changed nothing"
    );
    // An explicit key names its own request, in place of the event id.
    let keyed = i.handle(tenant, &changed, Some("client-key-7"), NOW + 20, DEADLINE);
    assert!(
        matches!(keyed, Outcome::Applied { replay: false, .. }),
        "{keyed:?}"
    );
    let record = i.store().record(tenant, "client-key-7").unwrap().unwrap();
    assert_eq!(record.status, RecordStatus::Completed);
    assert!(record.expires_at > NOW / 1000, "the record carries its TTL");
}

fn concurrent_duplicates_apply_once<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest();
    let e = event(CREATE, "race-1", 1);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| i.handle(tenant, &e, None, NOW, DEADLINE)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Applied { replay: false, .. }))
        .count();
    assert_eq!(fresh, 1, "exactly one delivery applies: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Applied { .. } | Outcome::InProgress)),
        "the others replay or are told to retry: {outcomes:?}"
    );
    assert_eq!(
        stored(&i, tenant, "42").version_vector,
        vec![Dot::new(REGION, 1)]
    );
}

fn a_live_claim_holds_its_key_until_its_deadline<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest();
    let e = event(CREATE, "c-1", 1);
    let claim = IdempotencyRecord {
        tenant: tenant.into(),
        key: "c-1".into(),
        payload_hash: host_core::ingest::payload_hash(&e),
        status: RecordStatus::InProgress,
        in_progress_until: NOW + 500,
        expires_at: NOW / 1000 + 3600,
        result: None,
    };
    i.store().claim(&claim, NOW).unwrap();
    match i.store().claim(&claim, NOW + 100) {
        Err(StoreError::AlreadyClaimed(held)) => assert_eq!(*held, claim),
        other => panic!("a live claim was claimed again: {other:?}"),
    }
    assert_eq!(
        i.handle(tenant, &e, None, NOW + 100, NOW + 1000),
        Outcome::InProgress
    );
    // The first holder ran out of time without completing: the key can be claimed again.
    assert!(matches!(
        i.handle(tenant, &e, None, NOW + 600, NOW + 1600),
        Outcome::Applied { replay: false, .. }
    ));
    // An expired record holds nothing, even while its holder's deadline runs (TTL deletion is
    // lazy: the store checks the expiry itself).
    let expired = IdempotencyRecord {
        key: "c-2".into(),
        expires_at: NOW / 1000 - 1,
        in_progress_until: NOW + 500,
        ..claim.clone()
    };
    i.store().claim(&expired, NOW - 10_000).unwrap();
    i.store().claim(&expired, NOW).unwrap();
    // A released claim frees its key.
    let released = IdempotencyRecord {
        key: "c-3".into(),
        ..claim
    };
    i.store().claim(&released, NOW).unwrap();
    i.store().release(tenant, "c-3").unwrap();
    assert_eq!(i.store().record(tenant, "c-3").unwrap(), None);
    i.store().claim(&released, NOW + 1).unwrap();
    // A release leaves a completed record alone (only a claim is released).
    i.store().release(tenant, "c-1").unwrap();
    let kept = i.store().record(tenant, "c-1").unwrap();
    assert_eq!(kept.map(|r| r.status), Some(RecordStatus::Completed));
}

fn an_older_change_arriving_late_changes_nothing_it_does_not_win<
    S: IngestStore,
    D: DeadLetterSink,
>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest_with_party(tenant);
    let change = |id: &str, second: u32, value: &str| {
        event_setting(ATTRIBUTE_CHANGE, id, second, "maritalStatus", json!(value))
    };
    let deliver = |e: Value, now_ms: u64| i.handle(tenant, &e, None, now_ms, DEADLINE);
    let newer = deliver(change("new", 30, "divorced"), NOW + 10);
    assert_eq!(applied(&newer)["applied"].as_array().unwrap().len(), 4);
    // The older change arrives last: its fields are stale, and the result says so.
    let late = deliver(change("old", 20, "married"), NOW + 20);
    let stale: Vec<String> = serde_json::from_value(applied(&late)["stale"].clone()).unwrap();
    assert!(
        stale.contains(&"maritalStatus".to_owned()),
        "the result says what was stale: {stale:?}"
    );
    assert_eq!(stored_tmf(&i, tenant)["maritalStatus"], json!("divorced"));
}

fn a_status_that_goes_back_in_the_lifecycle_is_refused<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest_with_party(tenant);
    let state = |id: &str, second: u32, status: &str| {
        event_setting(STATE_CHANGE, id, second, "status", json!(status))
    };
    let deliver = |e: Value| i.handle(tenant, &e, None, NOW, DEADLINE);
    applied(&deliver(state("dead", 30, "deceased")));
    let before = i.store().party(tenant, "42").unwrap().unwrap();
    // Back to validated, by a state change and by an attribute change carrying a status.
    let change = event_setting(ATTRIBUTE_CHANGE, "change", 40, "status", json!("validated"));
    for e in [state("back", 40, "validated"), change] {
        match deliver(e) {
            Outcome::Refused(err) => {
                assert_eq!((err.status(), err.code.as_str()), (409, "statusGoesBack"));
                assert!(
                    err.message.contains("\"deceased\"") && err.message.contains("\"validated\""),
                    "the message names both states: {err}"
                );
            }
            other => panic!("a status going back must be refused, got {other:?}"),
        }
    }
    assert_eq!(
        i.store().party(tenant, "42").unwrap().unwrap(),
        before,
        "nothing of a refused write is stored"
    );
    // Removing the status goes back too.
    let mut removal = event(ATTRIBUTE_CHANGE, "unset", 41);
    removal["event"]["individual"] = json!({"id": "42", "@type": "Individual", "status": null});
    match deliver(removal) {
        Outcome::Refused(err) => assert_eq!(err.code, "statusGoesBack", "{err}"),
        other => panic!("removing the status must be refused, got {other:?}"),
    }
    assert!(
        rig.letters(&i, tenant).is_empty(),
        "an answered refusal keeps no letter"
    );
    // The refusal holds no key: the same key can carry a write that moves forward.
    assert_eq!(i.store().record(tenant, "back").unwrap(), None);
    applied(&deliver(state("back", 45, "deceased")));
    // The same state (v4 spelling), and an older state arriving late (stale), apply.
    applied(&deliver(state("again", 50, "deceaded")));
    let late = deliver(state("late", 20, "initialized"));
    assert_eq!(applied(&late)["stale"], json!(["status"]));
    assert_eq!(stored_tmf(&i, tenant)["status"], json!("deceaded"));
    // A terminal state set by mistake is undone by a delete and a new create.
    applied(&deliver(event("IndividualDeleteEvent_request", "gone", 60)));
    let reborn = event_setting(CREATE, "reborn", 70, "status", json!("initialized"));
    applied(&deliver(reborn));
    assert_eq!(stored_tmf(&i, tenant)["status"], json!("initialized"));
}

fn concurrent_writers_all_land<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest_with_party(tenant);
    // Each failed attempt means another writer committed, so with three writers nobody fails
    // more than twice (five attempts are allowed before the dead-letter queue).
    let n = 3;
    std::thread::scope(|s| {
        for w in 0..n {
            let i = &i;
            s.spawn(move || {
                let mut e = event(ATTRIBUTE_CHANGE, &format!("w{w}"), 10 + w);
                e["event"]["individual"] =
                    json!({"@type": "Individual", "id": "42", format!("nickname{w}"): "x"});
                let out = i.handle(tenant, &e, None, NOW + 1, DEADLINE);
                assert!(
                    matches!(out, Outcome::Applied { .. }),
                    "writer {w}: {out:?}"
                );
            });
        }
    });
    let v = stored(&i, tenant, "42");
    assert_eq!(v.version_vector, vec![Dot::new(REGION, 1 + n as u64)]);
    let tmf = tmf(&v);
    for w in 0..n {
        assert_eq!(
            tmf[format!("nickname{w}")],
            json!("x"),
            "writer {w}'s change is kept"
        );
    }
}

/// The store's own conditions, without the ingest path: a write names the version it read
/// (nothing, or a version vector), and a commit is the party, the region's own copy and the
/// completed record, all or nothing.
fn writes_are_conditional_on_the_version_read<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let (store, _) = (rig.stores)(REGION);
    let party = |v: &PartyVersion| StoredParty {
        version: v.clone(),
        provenance: Provenance {
            written_by: REGION.into(),
            written_at_ms: NOW,
            ..Provenance::default()
        },
        writes: Default::default(),
    };
    let mut v1 = party_model::new_party(tenant, "7", ResourceType::Individual, REGION);
    write(&mut v1, REGION, NOW, json!({"givenName": "Ada"}));
    store.put_party(&party(&v1), None).unwrap();
    assert_eq!(store.party(tenant, "7").unwrap(), Some(party(&v1)));
    assert_eq!(
        store.put_party(&party(&v1), None),
        Err(StoreError::ConditionFailed),
        "nothing was expected to be stored"
    );
    let mut v2 = v1.clone();
    write(&mut v2, REGION, NOW + 1, json!({"givenName": "Ada B."}));
    store
        .put_party(&party(&v2), Some(&v1.version_vector))
        .unwrap();
    let mut stale = v1.clone();
    write(
        &mut stale,
        REGION,
        NOW + 2,
        json!({"familyName": "Lovelace"}),
    );
    assert_eq!(
        store.put_party(&party(&stale), Some(&v1.version_vector)),
        Err(StoreError::ConditionFailed),
        "written over a version that is no longer stored"
    );
    assert_eq!(store.party(tenant, "7").unwrap(), Some(party(&v2)));

    // A commit on a stale read writes nothing: not the party, not the own copy, not the record.
    let claim = IdempotencyRecord {
        tenant: tenant.into(),
        key: "commit-1".into(),
        payload_hash: "hash-1".into(),
        status: RecordStatus::InProgress,
        in_progress_until: NOW + 500,
        expires_at: NOW / 1000 + 3600,
        result: None,
    };
    store.claim(&claim, NOW).unwrap();
    let completed = IdempotencyRecord {
        status: RecordStatus::Completed,
        result: Some(json!({"applied": ["familyName"]})),
        ..claim.clone()
    };
    let mut v3 = v2.clone();
    write(&mut v3, REGION, NOW + 3, json!({"familyName": "Lovelace"}));
    assert_eq!(
        store.commit(&Commit {
            party: &party(&v3),
            expected: Some(&v1.version_vector),
            record: &completed
        }),
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(store.party(tenant, "7").unwrap(), Some(party(&v2)));
    assert_eq!(store.own(tenant, "7").unwrap(), None);
    assert_eq!(store.record(tenant, "commit-1").unwrap(), Some(claim));
    store
        .commit(&Commit {
            party: &party(&v3),
            expected: Some(&v2.version_vector),
            record: &completed,
        })
        .unwrap();
    assert_eq!(store.party(tenant, "7").unwrap(), Some(party(&v3)));
    assert_eq!(store.own(tenant, "7").unwrap(), Some(party(&v3)));
    assert_eq!(
        store.record(tenant, "commit-1").unwrap(),
        Some(completed.clone())
    );
    match store.claim(&completed, NOW + 1000) {
        Err(StoreError::AlreadyClaimed(held)) => assert_eq!(*held, completed),
        other => panic!("a completed record was claimed again: {other:?}"),
    }
    // Another region's version written over it (last-writer-wins) leaves the own copy alone.
    let mut theirs = v3.clone();
    write(&mut theirs, "na", NOW + 4, json!({"status": "validated"}));
    store
        .put_party(&party(&theirs), Some(&v3.version_vector))
        .unwrap();
    assert_eq!(store.own(tenant, "7").unwrap(), Some(party(&v3)));
}

/// A store that fails the first `failures` commits as if another writer had committed first.
struct Contended<S> {
    inner: S,
    failures: AtomicU32,
}

impl<S: PartyStore> PartyStore for Contended<S> {
    fn party(&self, t: &str, p: &str) -> Result<Option<StoredParty>, StoreError> {
        self.inner.party(t, p)
    }
    fn put_party(&self, p: &StoredParty, e: Option<&[Dot]>) -> Result<(), StoreError> {
        self.inner.put_party(p, e)
    }
}

impl<S: IngestStore> IngestStore for Contended<S> {
    fn own(&self, t: &str, p: &str) -> Result<Option<StoredParty>, StoreError> {
        self.inner.own(t, p)
    }
    fn record(&self, t: &str, k: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.record(t, k)
    }
    fn claim(&self, r: &IdempotencyRecord, now: u64) -> Result<(), StoreError> {
        self.inner.claim(r, now)
    }
    fn commit(&self, c: &Commit<'_>) -> Result<(), StoreError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::ConditionFailed);
        }
        self.inner.commit(c)
    }
    fn release(&self, t: &str, k: &str) -> Result<(), StoreError> {
        self.inner.release(t, k)
    }
}

fn exhausted_conditional_writes_are_dead_lettered<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let contended = |failures| {
        let (inner, sink) = (rig.stores)(REGION);
        let store = Contended {
            inner,
            failures: AtomicU32::new(failures),
        };
        Ingest::new(store, sink, IngestRig::<S, D>::config())
    };
    // Three lost races are retried and the fourth attempt lands.
    let i = contended(3);
    let e = event(CREATE, "r-1", 1);
    assert!(matches!(
        i.handle(tenant, &e, None, NOW, DEADLINE),
        Outcome::Applied { replay: false, .. }
    ));

    let retried = format!("{tenant}-exhausted");
    let i = contended(100);
    let e = event(CREATE, "r-2", 2);
    match i.handle(&retried, &e, None, NOW, DEADLINE) {
        Outcome::DeadLettered(reason) => {
            assert!(reason.contains("conditional writes failed"), "{reason}")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let letters = rig.letters(&i, &retried);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].payload, e, "the original payload is kept");
    assert!(
        letters[0].reason.contains("conditional writes failed"),
        "{}",
        letters[0].reason
    );
    // The claim was released: a redrive can apply the event.
    assert_eq!(i.store().record(&retried, "r-2").unwrap(), None);
    assert_eq!(i.store().party(&retried, "42").unwrap(), None);
}

fn a_party_past_the_item_limit_is_dead_lettered_whole<S: IngestStore, D: DeadLetterSink>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    let i = rig.ingest_with_party(tenant);
    // Each change adds ~100 KB of characteristics (as stored); the fourth takes the item past
    // 400 KB.
    let mut dead = None;
    for n in 0..8u32 {
        let mut e = event(ATTRIBUTE_CHANGE, &format!("big{n}"), 10 + n);
        let chars: Vec<Value> = (0..90)
            .map(|k| json!({"id": format!("{n}-{k}"), "name": format!("c{n}-{k}"), "value": "x".repeat(1000)}))
            .collect();
        e["event"]["individual"] =
            json!({"@type": "Individual", "id": "42", format!("extra{n}"): chars});
        match i.handle(tenant, &e, None, NOW + 1 + n as u64, DEADLINE) {
            Outcome::Applied { .. } => {}
            Outcome::DeadLettered(reason) => {
                assert!(
                    reason.contains("item limit") && reason.contains("nothing was truncated"),
                    "{reason}"
                );
                dead = Some(n);
                break;
            }
            other => panic!("change {n}: expected applied or a dead letter, got {other:?}"),
        }
    }
    let dead = dead.expect("eight changes of ~100 KB passed the 400 KB item limit");
    assert_eq!(
        dead, 3,
        "three changes of ~100 KB fit on the create; the fourth passes 400 KB"
    );
    let letters = rig.letters(&i, tenant);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].payload["eventId"], json!(format!("big{dead}")));
    // The stored party is the last one that fit, whole.
    let v = stored(&i, tenant, "42");
    assert_eq!(
        v.version_vector,
        vec![Dot::new(REGION, 1 + dead as u64)],
        "every change before the limit, and nothing of the one past it"
    );
    let visible = tmf(&v);
    for n in 0..dead {
        assert_eq!(
            visible[format!("extra{n}")].as_array().map(Vec::len),
            Some(90),
            "change {n} is kept whole"
        );
    }
    assert!(visible.get(format!("extra{dead}")).is_none());
    // The key was released: once the party is trimmed, the same event may be redriven.
    assert_eq!(
        i.store().record(tenant, &format!("big{dead}")).unwrap(),
        None
    );
}

/// The writes behind a party's fields are advisory: a store drops them rather than refuse a
/// party that fits its item limit only without them, and keeps them when they fit.
fn a_party_that_fits_only_without_its_writes_is_stored_without_them<
    S: IngestStore,
    D: DeadLetterSink,
>(
    rig: &IngestRig<S, D>,
    tenant: &str,
) {
    use policy_types::writes::{Write, Writes};
    let (store, _) = (rig.stores)(REGION);
    let mut v = party_model::new_party(tenant, "9", ResourceType::Individual, REGION);
    write(
        &mut v,
        REGION,
        NOW,
        json!({"givenName": "Ada", "note": "x".repeat(380_000)}),
    );
    // ~120 KB of writes: version and writes together are past 400 KB.
    let writes = Writes {
        writes: (1..=1_000u64)
            .map(|n| Write {
                dot: Dot::new(REGION, n),
                context: vec![Dot::new("apac", n), Dot::new("na", n)],
            })
            .collect(),
        ..Writes::default()
    };
    let party = StoredParty {
        version: v.clone(),
        provenance: Provenance {
            written_by: REGION.into(),
            ..Provenance::default()
        },
        writes,
    };
    store.put_party(&party, None).unwrap();
    let read = store.party(tenant, "9").unwrap().expect("stored");
    assert_eq!(read.version, v, "the party is stored whole");
    assert!(
        read.writes.is_empty(),
        "without its writes: {:?}",
        read.writes.writes.len()
    );
    // A table that fits is kept.
    let small = StoredParty {
        writes: Writes {
            writes: party.writes.writes[..3].to_vec(),
            ..Writes::default()
        },
        ..party.clone()
    };
    store.put_party(&small, Some(&v.version_vector)).unwrap();
    let read = store.party(tenant, "9").unwrap().expect("stored");
    assert_eq!(read.writes, small.writes, "a table that fits is kept");
}
