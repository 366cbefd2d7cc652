//! Applying TMF632 events to parties in memory, as an ingest handler would before writing to
//! the table: parse the event, drop it if its id was seen (idempotency), stamp it with the
//! region's clock, tick the version vector and write the fields.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use party_model::{HlcClock, delete, new_party, tick, write_fields};
use policy_types::{PartyVersion, ResourceType};
use serde_json::{Value, json};

use crate::fixtures::example;

/// What applying one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Written,
    Deleted,
    /// The event id was seen before: nothing changed.
    Duplicate,
}

/// One region's parties in memory, keyed by (tenant, party id), and the event ids it applied.
#[derive(Debug)]
pub struct EventStore {
    region: String,
    clock: HlcClock,
    parties: HashMap<(String, String), PartyVersion>,
    seen: HashSet<String>,
}

impl EventStore {
    pub fn new(region: &str) -> Self {
        EventStore {
            region: region.to_owned(),
            clock: HlcClock::new(region),
            parties: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    pub fn party(&self, tenant: &str, id: &str) -> Option<&PartyVersion> {
        self.parties.get(&(tenant.to_owned(), id.to_owned()))
    }

    pub fn len(&self) -> usize {
        self.parties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    /// Applies one TMF632 event (JSON text) for `tenant`.
    pub fn apply(&mut self, tenant: &str, text: &str) -> Result<Applied, String> {
        let event: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let event_id = event["eventId"]
            .as_str()
            .ok_or("the event has no eventId")?;
        if self.seen.contains(event_id) {
            return Ok(Applied::Duplicate);
        }
        let kind = event["eventType"]
            .as_str()
            .ok_or("the event has no eventType")?;
        let (resource, body) = match (
            &event["event"]["individual"],
            &event["event"]["organization"],
        ) {
            (Value::Object(b), _) => (ResourceType::Individual, b),
            (_, Value::Object(b)) => (ResourceType::Organization, b),
            _ => return Err("the event carries no individual or organization".into()),
        };
        let party_id = body
            .get("id")
            .and_then(Value::as_str)
            .ok_or("the party has no id")?;
        let physical_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let stamp = self.clock.now(physical_ms);
        let region = &self.region;
        let party = self
            .parties
            .entry((tenant.to_owned(), party_id.to_owned()))
            .or_insert_with(|| new_party(tenant, party_id, resource, region));
        let applied = if kind.ends_with("DeleteEvent") {
            tick(party, region);
            delete(party, &stamp);
            Applied::Deleted
        } else {
            let dot = tick(party, region);
            write_fields(party, body, &stamp, &dot);
            Applied::Written
        };
        self.seen.insert(event_id.to_owned());
        Ok(applied)
    }
}

/// A stream of `count` events over `parties` Individuals, from the official event examples:
/// first one create event per party, then, repeating every 10 events: 4 attribute-value
/// changes (maritalStatus or familyName), 3 state changes, 2 contact-medium changes (the whole
/// array, as a PATCH writes it) and 1 redelivery of an earlier event (an idempotency hit).
pub fn event_stream(parties: usize, count: usize) -> Vec<String> {
    let create = example("IndividualCreateEvent_request");
    let attribute = example("IndividualAttributeValueChangeEvent_request");
    let state = example("IndividualStateChangeEvent_request");
    let media = create["event"]["individual"]["contactMedium"].clone();
    let mut out: Vec<String> = Vec::with_capacity(count);
    for n in 0..count {
        let party = format!("p-{}", n % parties);
        let text = if n < parties {
            let mut e = create.clone();
            e["event"]["individual"]["id"] = json!(party);
            e["eventId"] = json!(format!("create-{n}"));
            e.to_string()
        } else {
            match n % 10 {
                0..=3 => {
                    let mut e = attribute.clone();
                    let individual = &mut e["event"]["individual"];
                    individual["id"] = json!(party);
                    if n % 2 == 0 {
                        individual["maritalStatus"] = json!(["divorced", "married"][n % 4 / 2]);
                    } else {
                        individual.as_object_mut().unwrap().remove("maritalStatus");
                        individual["familyName"] = json!(format!("Smith-{n}"));
                    }
                    e["eventId"] = json!(format!("attr-{n}"));
                    e.to_string()
                }
                4..=6 => {
                    let mut e = state.clone();
                    e["event"]["individual"]["id"] = json!(party);
                    e["event"]["individual"]["status"] = json!(["initialized", "validated"][n % 2]);
                    e["eventId"] = json!(format!("state-{n}"));
                    e.to_string()
                }
                7 | 8 => {
                    let mut e = attribute.clone();
                    let individual = &mut e["event"]["individual"];
                    individual["id"] = json!(party);
                    individual.as_object_mut().unwrap().remove("maritalStatus");
                    let mut m = media.clone();
                    m[0]["emailAddress"] = json!(format!("jane.{n}@example.com"));
                    individual["contactMedium"] = m;
                    e["eventId"] = json!(format!("media-{n}"));
                    e.to_string()
                }
                _ => out[n / 2].clone(),
            }
        };
        out.push(text);
    }
    out
}

/// Applies a whole stream to a fresh store; returns the store and how many were duplicates.
pub fn apply_all(tenant: &str, events: &[String]) -> (EventStore, usize) {
    let mut store = EventStore::new("eu");
    let mut duplicates = 0;
    for e in events {
        if store.apply(tenant, e).expect("a valid event") == Applied::Duplicate {
            duplicates += 1;
        }
    }
    (store, duplicates)
}
