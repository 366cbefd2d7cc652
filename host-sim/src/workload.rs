//! The clients' workload: what a client sends for a party, given what the region answered
//! for it — creates, status changes, contact-medium adds, changes and removals, attribute
//! changes, deletes. The simulation draws it under its seed; `serve --demo` and the load
//! generator send it over HTTP.

use std::time::{Duration, UNIX_EPOCH};

use rand::Rng;
use serde_json::{Value, json};

/// The random draws of one event, always three whatever the party holds, so that a schedule
/// draws the same numbers whichever region answers.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    kind: u32,
    a: u32,
    b: u32,
}

impl Draw {
    pub fn new(rng: &mut impl Rng) -> Self {
        Draw {
            kind: rng.random_range(0..100u32),
            a: rng.random_range(0..6u32),
            b: rng.random_range(0..4u32),
        }
    }
}

/// A new Individual, one of four.
pub fn individual(id: &str, k: usize) -> Value {
    json!({
        "id": id, "@type": "Individual", "givenName": (["Jane", "Carlos", "Mei", "Ola"][k % 4]),
        "familyName": (["Lamborgizzia", "Mafalda", "Tan", "Nordmann"][k % 4]), "status": "initialized",
        "contactMedium": [{"id": "cm-0", "@type": "EmailContactMedium", "emailAddress": format!("p{k}@example.com")}],
    })
}

/// `Individual{kind}Event`.
pub fn event_type(kind: &str) -> String {
    format!("Individual{kind}Event")
}

/// A TMF632 v5 event envelope around `party`.
pub fn envelope(id: &str, kind: &str, at_ms: u64, party: Value) -> Value {
    let at = UNIX_EPOCH + Duration::from_millis(at_ms);
    json!({
        "@type": event_type(kind),
        "eventId": id,
        "eventTime": humantime::format_rfc3339_millis(at).to_string(),
        "eventType": event_type(kind),
        "event": {"individual": party},
    })
}

/// The event a client sends for `party` (`current`: the region's answer, `None` when it has
/// none): a create when there is nothing, else a delete (3 %), a status change (22 %, never
/// back in the lifecycle from the status read), a contact-medium change (35 %) or another
/// attribute's change (40 %). `n` makes values unique.
pub fn client_event(
    draw: &Draw,
    id: &str,
    n: usize,
    party: &str,
    current: Option<&Value>,
    at_ms: u64,
) -> Value {
    let Draw { kind, a, b } = *draw;
    let reference = json!({"id": party, "@type": "Individual"});
    let with = |member: &str, value: Value| {
        let mut p = reference.clone();
        p[member] = value;
        p
    };
    let (kind, body) = match (kind, current) {
        (0..=2, Some(_)) => ("Delete", reference.clone()),
        (_, None) => ("Create", individual(party, a as usize)),
        (3..25, Some(cur)) => {
            // Along the lifecycle from the status the client read (ingest refuses one that
            // goes back): the draw's state, or the one read when that is further on.
            let states = ["initialized", "validated", "validated", "deceased"];
            let read = match cur.get("status").and_then(Value::as_str) {
                Some("validated") => 1,
                Some("deceased" | "deceaded") => 3,
                _ => 0,
            };
            let status = states[(b as usize).max(read)];
            ("StateChange", with("status", json!(status)))
        }
        (25..60, Some(cur)) => {
            let mut media = cur
                .get("contactMedium")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let cm = format!("cm-{}", a % 4);
            let at = media.iter().position(|m| m["id"] == cm.as_str());
            match (b, at) {
                (0, Some(i)) => {
                    media.remove(i);
                }
                (_, Some(i)) => media[i]["emailAddress"] = json!(format!("{cm}-{n}@example.com")),
                (_, None) => media.push(json!({"id": cm, "@type": "EmailContactMedium", "emailAddress": format!("{cm}-{n}@example.com")})),
            }
            (
                "AttributeValueChange",
                with("contactMedium", Value::Array(media)),
            )
        }
        (_, Some(_)) => {
            let field = [
                "givenName",
                "familyName",
                "maritalStatus",
                "nationality",
                "gender",
                "preferredGivenName",
            ][a as usize];
            let value = match field {
                "maritalStatus" => {
                    json!(["married", "divorced", "widowed", "single"][b as usize])
                }
                _ => json!(format!("{field}-{n}")),
            };
            ("AttributeValueChange", with(field, value))
        }
    };
    envelope(id, kind, at_ms, body)
}
