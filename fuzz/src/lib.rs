//! What each parser of bytes from outside must do with any input — refuse it or accept it,
//! never panic — and what an accepted input must then satisfy: written again, it reads back as
//! itself, and what the host does next with it works. One function per parser; each returns
//! whether the parser accepted the input, so a caller can tell a run that got past the parser
//! from one that never did.
//!
//! The fuzz targets (`fuzz_targets/`) call these functions, and so does the stable smoke test
//! (`tests/tests/fuzz_smoke.rs` includes this file as a module), so the long runs and the test
//! command check the same properties.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event as StreamEvent;
use host_aws::dynamo::{PARTY_SK, party_from_item, party_item as item_of};
use host_aws::streams::{batch_info, sequence_order};
use host_core::api::{self, ApiRequest, ApiResponse, body_json, check_listener};
use host_core::conflict::{CapturedConflict, parse_lines, to_line};
use host_core::conflict_log::{ConflictQuery, parse_record};
use host_core::event::{
    Action, PartyEvent, Tmf630Error, event_kind, listener_route, parse_event, spec_version,
};
use host_core::ingest::{Ingest, IngestConfig};
use host_core::model::to_tmf;
use host_core::store::memory::{Change, MemoryDeadLetters, MemoryStore};
use host_core::store::{DeadLetter, IngestStore, PartyStore, StoredParty};
use host_core::types::ResourceType;
use host_serve::durable::Owed;
use host_serve::hub::{KeptLetter, event_of_new_image};
use serde_dynamo::AttributeValue;
use serde_json::Value;

/// The tenant, region and time every input is applied in.
const TENANT: &str = "acme";
const REGION: &str = "eu";
const NOW_MS: u64 = 1_735_689_600_000;

/// The v5 routes of the API; v4 routes differ only in the links of answers.
const V5: &str = "/tmf-api/party/v5/";

/// A TMF632 event or a party's members, as posted to the API: `api::body_json`, then the
/// listener route of the body's `eventType` (`check_listener`, `parse_event`, ingest into an
/// empty region's store) or, for a body without one, `POST individual` (or `organization`
/// when its `@type` says so), which turns the members into the event of a create. What is
/// applied is read back with `GET`.
///
/// The API answers every input with a status and a TMF630 body, the one the parser gave;
/// an event the parser accepts is applied (or kept in the dead-letter queue), names its own
/// kind, and carries a party with the id it was filed under.
pub fn tmf632_event(bytes: &[u8]) -> bool {
    let region = Region::new();
    let payload = match body_json(bytes) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                matches!(e.status(), 400 | 413),
                "body_json refused with {e}"
            );
            let answer = region.post(&format!("{V5}listener/individualCreateEvent"), bytes);
            assert_refused_as(&answer, &e);
            return false;
        }
    };
    match payload.get("eventType").and_then(Value::as_str) {
        Some(event_type) => listener(&region, &payload, event_type, bytes),
        None => create(&region, &payload, bytes),
    }
}

fn listener(region: &Region, payload: &Value, event_type: &str, bytes: &[u8]) -> bool {
    let parsed = parse_event(payload);
    let route = listener_route(event_type);
    let name = match &route {
        Some(route) => {
            let name = route.strip_prefix("/listener/").expect("a listener route");
            // Its own route takes the event without parsing it; any other refuses it.
            assert_eq!(check_listener(name, payload), Ok(()), "on {route}");
            let other = if name == "individualCreateEvent" {
                "organizationDeleteEvent"
            } else {
                "individualCreateEvent"
            };
            let refused = check_listener(other, payload).expect_err("a listener of another type");
            assert_eq!(
                (refused.status(), refused.code.as_str()),
                (400, "wrongRoute")
            );
            name
        }
        None => {
            // An unknown type is refused by the parser, with the parser's answer.
            let name = "individualCreateEvent";
            assert_eq!(check_listener(name, payload).err(), parsed.clone().err());
            name
        }
    };
    let answer = region.post(&format!("{V5}listener/{name}"), bytes);
    let event = match parsed {
        Ok(event) => event,
        Err(e) => {
            assert_eq!(e.status(), 400, "the parser refused with {e}");
            assert_refused_as(&answer, &e);
            return false;
        }
    };
    check_event(payload, &event);
    assert!(
        matches!(answer.status, 201 | 202),
        "an event the parser accepted is answered {} {:?}",
        answer.status,
        answer.body
    );
    if answer.status == 201 {
        region.read_back(
            event.resource,
            &event.party_id,
            event.action == Action::Delete,
        );
    }
    true
}

/// What the parser accepted is what the envelope says.
fn check_event(payload: &Value, event: &PartyEvent) {
    let envelope = payload.as_object().expect("an accepted event is an object");
    assert_eq!(
        event_kind(&event.event_type),
        Some((event.resource, event.action)),
        "the event's kind is its type's"
    );
    assert_eq!(
        envelope.get("eventType").and_then(Value::as_str),
        Some(event.event_type.as_str())
    );
    assert_eq!(event.spec, spec_version(envelope));
    assert!(!event.event_id.is_empty() && !event.party_id.is_empty());
    assert_eq!(
        event.party.get("id").and_then(Value::as_str),
        Some(event.party_id.as_str()),
        "the party carries the id the event is filed under"
    );
    if event.action == Action::StateChange {
        assert!(
            event.party.contains_key("status"),
            "a state change names a status"
        );
    }
}

fn create(region: &Region, payload: &Value, bytes: &[u8]) -> bool {
    let (resource, path) = match payload.get("@type").and_then(Value::as_str) {
        Some("Organization") => (ResourceType::Organization, "organization"),
        _ => (ResourceType::Individual, "individual"),
    };
    let answer = region.post(&format!("{V5}{path}"), bytes);
    match answer.status {
        201 => {
            let id = answer
                .body
                .as_ref()
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
                .expect("a created party is answered with its id");
            region.read_back(resource, id, false);
            true
        }
        202 | 400 => {
            assert_tmf630(&answer);
            false
        }
        other => panic!("POST {path} answered {other} {:?}", answer.body),
    }
}

/// One region's API over an empty in-memory store.
struct Region {
    ingest: Ingest<MemoryStore, MemoryDeadLetters>,
}

impl Region {
    fn new() -> Self {
        Region {
            ingest: Ingest::new(
                MemoryStore::new(),
                MemoryDeadLetters::default(),
                IngestConfig::new(REGION),
            ),
        }
    }

    fn send(&self, request: &ApiRequest) -> ApiResponse {
        api::handle(&self.ingest, None, TENANT, request, NOW_MS, NOW_MS + 30_000).response
    }

    fn post(&self, path: &str, body: &[u8]) -> ApiResponse {
        self.send(&ApiRequest::new("POST", path).with_body(body))
    }

    /// A party just written reads back through the API with its id, or as not found when the
    /// write deleted it. (An id with a `/` has no route of its own.)
    fn read_back(&self, resource: ResourceType, id: &str, deleted: bool) {
        if id.contains('/') {
            return;
        }
        let path = match resource {
            ResourceType::Individual => "individual",
            ResourceType::Organization => "organization",
        };
        let answer = self.send(&ApiRequest::new("GET", &format!("{V5}{path}/{id}")));
        if deleted {
            assert_eq!(answer.status, 404, "a deleted party is not found");
            assert_tmf630(&answer);
        } else {
            assert_eq!(
                answer.status, 200,
                "a party written is read: {:?}",
                answer.body
            );
            let body = answer.body.expect("a party has a body");
            assert_eq!(body.get("id").and_then(Value::as_str), Some(id));
        }
    }
}

/// The API refused with the parser's own answer.
fn assert_refused_as(answer: &ApiResponse, e: &Tmf630Error) {
    assert_eq!(
        answer.status,
        e.status(),
        "answered {:?} for {e}",
        answer.body
    );
    assert_eq!(answer.body.as_ref(), Some(&e.to_json()));
}

/// A refusal carries a TMF630 body.
fn assert_tmf630(answer: &ApiResponse) {
    if answer.status < 400 {
        return;
    }
    let body = answer.body.as_ref().expect("a refusal has a body");
    for member in ["code", "reason", "message", "status", "@type"] {
        assert!(body.get(member).is_some(), "{member} in {body}");
    }
}

/// A captured-conflict file, as `dry-run` and `policy check` read it: UTF-8 text (the CLI
/// reads it with `read_to_string`), `conflict::parse_lines`. Lines are numbered in order; an
/// accepted conflict passed its check, has a region and a configuration that is JSON text,
/// and written again with `to_line` is one line that reads back as itself.
pub fn captured_conflicts(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let count = text.lines().count();
    let mut last = 0;
    let mut accepted = false;
    for (number, parsed) in parse_lines(text) {
        assert!(
            number > last && number <= count,
            "line {number} after {last}"
        );
        last = number;
        let Ok(conflict) = parsed else { continue };
        accepted = true;
        assert_eq!(conflict.check(), Ok(()));
        let _ = conflict.region();
        serde_json::from_str::<Value>(&conflict.config_text()).expect("the configuration is JSON");
        let line = to_line(&conflict);
        assert!(!line.contains('\n'), "a conflict is written on one line");
        assert_eq!(parse_lines(&line), vec![(1, Ok(conflict.clone()))]);
        let _ = (to_tmf(&conflict.local), to_tmf(&conflict.remote));
    }
    accepted
}

/// A party item as the SDK returns it, in DynamoDB's JSON form (`{"S": …}`, `{"M": …}`):
/// `serde_dynamo::Item`, then `dynamo::party_from_item` (see [`read_party`]).
pub fn party_item(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_dynamo::Item>(bytes)
        .ok()
        .and_then(read_party)
        .is_some()
}

/// A batch of the party table's stream as Lambda hands it to the reconcile function
/// (`aws_lambda_events`' DynamoDB event), read as the function reads it: the sequence number,
/// whether the record is a MODIFY of a party, and both images through
/// `dynamo::party_from_item` (see [`read_party`]); a record it cannot read is kept whole in the
/// dead-letter queue as JSON. True when a party overwrite was read from both images.
pub fn stream_event(bytes: &[u8]) -> bool {
    let Ok(event) = serde_json::from_slice::<StreamEvent>(bytes) else {
        return false;
    };
    let mut overwrite = false;
    for record in &event.records {
        let change = &record.change;
        let _ = change.sequence_number.clone().unwrap_or_default();
        let is_party =
            matches!(change.keys.get("sk"), Some(AttributeValue::S(sk)) if sk == PARTY_SK);
        // Both images of every record, whatever it is: the images are the parser's input.
        let old = read_party(change.old_image.clone());
        let new = read_party(change.new_image.clone());
        overwrite |= record.event_name == "MODIFY" && is_party && old.is_some() && new.is_some();
        let _ = serde_json::to_value(record);
    }
    overwrite
}

/// Lambda's on-failure message of a stream batch it gave up on, as the redrive function reads
/// it from the reconcile failure queue (`host_aws::streams::batch_info`). An accepted one
/// names its first record no later than its last, and written again reads as itself.
pub fn stream_failure(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let Ok(batch) = batch_info(text) else {
        return false;
    };
    assert!(sequence_order(&batch.start_sequence_number, &batch.end_sequence_number).is_le());
    let again = serde_json::json!({ "DDBStreamBatchInfo": batch }).to_string();
    assert_eq!(batch_info(&again).as_ref(), Ok(&batch));
    true
}

/// A party from an item. One it accepts is written back to an item (`dynamo::party_item`)
/// that reads as the same party, and has its TMF form.
fn read_party(item: serde_dynamo::Item) -> Option<StoredParty> {
    let party = party_from_item(item).ok()?;
    let written = item_of(&party).expect("a party read from an item is written to one");
    assert_eq!(
        party_from_item(written).as_ref(),
        Ok(&party),
        "a party read from an item, written and read again"
    );
    let _ = to_tmf(&party.version);
    Some(party)
}

/// A conflict-log record as the local-directory log and the DynamoDB log store it:
/// `conflict_log::parse_record`. An accepted record has an outcome, is found by a query for its
/// tenant, reads back as itself once written, and exports as a captured conflict that reads
/// back as itself.
pub fn conflict_record(bytes: &[u8]) -> bool {
    let Ok(record) = parse_record(bytes) else {
        return false;
    };
    let (first, _) = (record.first(), record.latest());
    assert!(ConflictQuery::tenant(&record.tenant).matches(&record));
    let text = serde_json::to_vec(&record).expect("a record serialises");
    assert_eq!(
        parse_record(&text).as_ref(),
        Ok(&record),
        "written and read again"
    );
    let captured = record.captured();
    assert_eq!(
        serde_json::from_str::<CapturedConflict>(&to_line(&captured)).ok(),
        Some(captured),
        "its export read back"
    );
    let _ = (to_tmf(&record.local), to_tmf(&record.remote));
    let _ = first.written.as_ref().map(to_tmf);
    true
}

/// `$item` read as a `$t` with `serde_json::from_slice`, `None` when it is not one; what it
/// reads as is checked to read back as itself once written (`$serialises`: the panic message
/// if it cannot be written). A macro, not a function: this file is also built by the `tests`
/// crate, which does not depend on `serde` to name its traits.
macro_rules! read_back {
    ($item:expr, $t:ty, $serialises:literal) => {
        serde_json::from_slice::<$t>($item).ok().inspect(|value| {
            let again = serde_json::to_vec(value).expect($serialises);
            assert_eq!(
                serde_json::from_slice::<$t>(&again).ok().as_ref(),
                Some(value)
            );
        })
    };
}

/// Items of `serve`'s journal, one a line: each as `Durable::load` reads it back (a `Change`,
/// or a dead letter), with `serde_json::from_slice`, and what the hub keeps beside them (an
/// owed notification, a hub dead letter). Changes are loaded in order into a region's store, as
/// a restart does, which then answers with what each loaded, and a restart's requeue of
/// unmerged own writes and its list of items run over them; an owed change is made into the
/// event a restart sends. Each accepted value reads back as itself once written.
pub fn journal_items(bytes: &[u8]) -> bool {
    let store = MemoryStore::replica(REGION, Arc::new(|| NOW_MS));
    let mut accepted = false;
    for item in bytes.split(|b| *b == b'\n') {
        if let Some(change) = read_back!(item, Change, "a change serialises") {
            accepted = true;
            let _ = change.key();
            store.load(change.clone());
            match &change {
                Change::Party { party, .. } => {
                    let v = &party.version;
                    assert_eq!(store.party(&v.tenant, &v.party_id), Ok(Some(party.clone())));
                }
                Change::Own(own) => {
                    let v = own.version();
                    let stored = store.own(&v.tenant, &v.party_id);
                    assert_eq!(stored, Ok(Some(own.clone().into_party())))
                }
                Change::Record { record, .. } => {
                    assert_eq!(
                        store.record(&record.tenant, &record.key),
                        Ok(Some(record.clone()))
                    );
                }
                Change::Released { tenant, key, .. } | Change::Expired { tenant, key } => {
                    assert_eq!(store.record(tenant, key), Ok(None));
                }
            }
        }
        accepted |= read_back!(item, DeadLetter, "a dead letter serialises").is_some();
        if let Some(owed) = read_back!(item, Owed, "an owed notification serialises") {
            accepted = true;
            if let Owed::Change {
                region,
                party,
                stamp,
            } = &owed
            {
                let _ = event_of_new_image(region, party, stamp);
            }
        }
        // A hub dead letter as the hub keeps it: the letter and, since redrive, its event.
        accepted |= read_back!(item, KeptLetter, "a hub dead letter serialises").is_some();
    }
    store.requeue_unmerged();
    let _ = store.items();
    accepted
}
