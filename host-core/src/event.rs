//! TMF632 events: the v4 and v5 envelopes of the eight Individual and Organization events,
//! validated against the specification's own definitions, and TMF630 error bodies for what is
//! refused.
//!
//! Validation uses the official definitions (embedded from `host-core/schemas/`: v4.0.0, and the
//! v5.0.0 schemas) with a JSON Schema validator; an envelope with `@type` is a v5 event. What the spec's own examples contain is accepted: `timeOcurred` (v4,
//! and every v5 example) as well as `timeOccurred` (the v5 `Event` schema), the status
//! `deceaded` (v4) as well as `deceased` (v5), and members the schema does not list (v5 examples
//! still carry v4-era members; the schemas do not forbid extra members).

use std::sync::OnceLock;

use policy_types::ResourceType;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// What an event does to its party.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    AttributeValueChange,
    StateChange,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "Create",
            Action::AttributeValueChange => "AttributeValueChange",
            Action::StateChange => "StateChange",
            Action::Delete => "Delete",
        }
    }
}

/// A validated TMF632 party event.
#[derive(Clone, Debug, PartialEq)]
pub struct PartyEvent {
    pub event_id: String,
    /// e.g. `IndividualCreateEvent`.
    pub event_type: String,
    pub resource: ResourceType,
    pub action: Action,
    pub event_time: Option<String>,
    pub correlation_id: Option<String>,
    pub spec: SpecVersion,
    pub party_id: String,
    /// The party's members as the event carries them (`event.individual` / `event.organization`).
    pub party: Map<String, Value>,
}

/// A TMF630 error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tmf630Error {
    /// Application error code.
    pub code: String,
    /// A short explanation.
    pub reason: String,
    /// What was wrong and where.
    pub message: String,
    /// The HTTP status, as a string per TMF630.
    pub status: String,
    #[serde(rename = "@type")]
    pub type_: String,
}

impl Tmf630Error {
    pub fn new(status: u16, code: &str, reason: &str, message: impl Into<String>) -> Self {
        Tmf630Error {
            code: code.to_owned(),
            reason: reason.to_owned(),
            message: message.into(),
            status: status.to_string(),
            type_: "Error".to_owned(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status.parse().unwrap_or(500)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an error body serialises")
    }
}

impl std::fmt::Display for Tmf630Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.reason, self.message)
    }
}

impl std::error::Error for Tmf630Error {}

const SPEC_V4: &str = include_str!("../schemas/TMF632_Party_Management_API_v4.0.0_swagger.json");
const SPEC_V5: &str = include_str!("../schemas/TMF632-Party_Management-v5.0.0.schemas.json");

/// Which release of the spec an event follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecVersion {
    V4,
    V5,
}

/// v5 events carry `@type` on the envelope (the v5 `Event` is `Extensible`); v4 events do not.
pub fn spec_version(envelope: &Map<String, Value>) -> SpecVersion {
    if envelope.contains_key("@type") || envelope.contains_key("@baseType") {
        SpecVersion::V5
    } else {
        SpecVersion::V4
    }
}

/// Both spellings of the Individual terminal state wherever the spec lists one of them.
fn accept_both_spellings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                let has = |s: &str, v: &Vec<Value>| v.iter().any(|x| x == s);
                if has("deceaded", values) && !has("deceased", values) {
                    values.push(json!("deceased"));
                } else if has("deceased", values) && !has("deceaded", values) {
                    values.push(json!("deceaded"));
                }
            }
            map.values_mut().for_each(accept_both_spellings);
        }
        Value::Array(items) => items.iter_mut().for_each(accept_both_spellings),
        _ => {}
    }
}

/// OpenAPI's `discriminator` chooses one `oneOf` branch by `@type`; JSON Schema does not know
/// it, and the v5 subtypes overlap (a `PartyRef` is also a valid `PartyRoleRef`), so `oneOf`
/// would refuse the spec's own examples. Each such `oneOf` becomes: the instance matches one
/// of the branches (`anyOf`), and the branch its `@type` names, when the mapping names it.
fn honour_discriminators(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mapping = map
                .get("discriminator")
                .and_then(|d| d.get("mapping"))
                .and_then(Value::as_object)
                .cloned();
            if let (Some(mapping), Some(branches)) = (mapping, map.get("oneOf").cloned()) {
                map.remove("oneOf");
                map.insert("anyOf".to_owned(), branches);
                let chosen: Vec<Value> = mapping
                    .iter()
                    .map(|(name, target)| {
                        json!({"if": {"properties": {"@type": {"const": name}}, "required": ["@type"]}, "then": {"$ref": target}})
                    })
                    .collect();
                match map.get_mut("allOf") {
                    Some(Value::Array(all)) => all.extend(chosen),
                    _ => {
                        map.insert("allOf".to_owned(), Value::Array(chosen));
                    }
                }
            }
            map.values_mut().for_each(honour_discriminators);
        }
        Value::Array(items) => items.iter_mut().for_each(honour_discriminators),
        _ => {}
    }
}

/// The root document the validators resolve `$ref`s in, per release.
fn spec(version: SpecVersion) -> &'static Value {
    static V4: OnceLock<Value> = OnceLock::new();
    static V5: OnceLock<Value> = OnceLock::new();
    let (cell, text) = match version {
        SpecVersion::V4 => (&V4, SPEC_V4),
        SpecVersion::V5 => (&V5, SPEC_V5),
    };
    cell.get_or_init(|| {
        let spec: Value = serde_json::from_str(text).expect("the embedded TMF632 spec is JSON");
        let mut root = match version {
            SpecVersion::V4 => json!({ "definitions": spec["definitions"] }),
            SpecVersion::V5 => json!({ "components": spec["components"] }),
        };
        accept_both_spellings(&mut root);
        if version == SpecVersion::V5 {
            honour_discriminators(&mut root);
        }
        root
    })
}

/// The validator of one definition of a release: an event type such as
/// `IndividualCreateEvent`, or a resource (`Individual`, `Organization`: what the resolver
/// checks a policy's computed values against). Compiled once per process.
pub(crate) fn validator(
    version: SpecVersion,
    event_type: &str,
) -> Result<&'static jsonschema::Validator, Tmf630Error> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Cache = Mutex<HashMap<(SpecVersion, String), &'static jsonschema::Validator>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (version, event_type.to_owned());
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return Ok(v);
    }
    let mut schema = spec(version).clone();
    schema["$ref"] = json!(match version {
        SpecVersion::V4 => format!("#/definitions/{event_type}"),
        SpecVersion::V5 => format!("#/components/schemas/{event_type}"),
    });
    let draft = match version {
        SpecVersion::V4 => jsonschema::Draft::Draft4,
        // if/then, for the discriminators.
        SpecVersion::V5 => jsonschema::Draft::Draft7,
    };
    let built = jsonschema::options()
        .with_draft(draft)
        .build(&schema)
        .map_err(|e| {
            Tmf630Error::new(
                500,
                "schema",
                "Internal error",
                format!("the {event_type} schema does not compile: {e}"),
            )
        })?;
    // Validators live as long as the process: eight event types and two resources a release.
    let leaked: &'static jsonschema::Validator = Box::leak(Box::new(built));
    cache.lock().unwrap().insert(key, leaked);
    Ok(leaked)
}

/// Compiles, now, every validator a host uses: the eight event types and the two resources
/// of each release. They are otherwise compiled by the first event that needs each, which a
/// Lambda function's first caller would wait for (BENCHMARKS.md, "Lambda cold start"); the
/// functions call this during their init instead.
pub fn compile_validators() {
    for version in [SpecVersion::V4, SpecVersion::V5] {
        for resource in ["Individual", "Organization"] {
            for kind in [
                "",
                "CreateEvent",
                "AttributeValueChangeEvent",
                "StateChangeEvent",
                "DeleteEvent",
            ] {
                validator(version, &format!("{resource}{kind}"))
                    .unwrap_or_else(|e| panic!("the embedded TMF632 {resource}{kind} schema: {e}"));
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> Tmf630Error {
    Tmf630Error::new(400, "invalidEvent", "Invalid event", message)
}

/// Parses and validates an event (the body posted to a listener route or carried by an SQS
/// message).
pub fn parse_event(body: &Value) -> Result<PartyEvent, Tmf630Error> {
    let envelope = body
        .as_object()
        .ok_or_else(|| invalid("the event is not a JSON object"))?;
    let event_type = envelope
        .get("eventType")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid("missing /eventType (a string such as \"IndividualCreateEvent\")")
        })?;
    let (resource, action) = event_kind(event_type).ok_or_else(|| {
        Tmf630Error::new(
            400,
            "unknownEventType",
            "Unknown event type",
            format!(
                "/eventType is {event_type:?}; expected one of Individual/Organization × Create, AttributeValueChange, StateChange, Delete (e.g. \"IndividualCreateEvent\")"
            ),
        )
    })?;
    let version = spec_version(envelope);
    // In an attribute change, a member set to null is a member removed (as in a JSON merge
    // patch): the schema is checked on the members that carry a value.
    let checked = match action {
        Action::AttributeValueChange => without_removed_members(body),
        _ => None,
    };
    let errors: Vec<String> = validator(version, event_type)?
        .iter_errors(checked.as_ref().unwrap_or(body))
        .take(5)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!(
                "{}: {e}",
                if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                }
            )
        })
        .collect();
    if !errors.is_empty() {
        let release = match version {
            SpecVersion::V4 => "v4.0.0",
            SpecVersion::V5 => "v5.0.0",
        };
        return Err(invalid(format!(
            "the {event_type} does not match the TMF632 {release} schema: {}",
            errors.join("; ")
        )));
    }
    let event_id = envelope
        .get("eventId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("missing /eventId: an event needs an identifier (it is the default idempotency key)"))?;
    let key = match resource {
        ResourceType::Individual => "individual",
        ResourceType::Organization => "organization",
    };
    let party = body
        .pointer(&format!("/event/{key}"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(format!(
                "missing /event/{key}: the {event_type} carries no {key}"
            ))
        })?;
    let party_id = party
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("missing /event/{key}/id")))?;
    if action == Action::StateChange && !party.contains_key("status") {
        return Err(invalid(format!(
            "missing /event/{key}/status: a state change carries the new status"
        )));
    }
    Ok(PartyEvent {
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        resource,
        action,
        event_time: envelope
            .get("eventTime")
            .and_then(Value::as_str)
            .map(str::to_owned),
        correlation_id: envelope
            .get("correlationId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        spec: version,
        party_id: party_id.to_owned(),
        party: party.clone(),
    })
}

/// The event without the party's null members, when it has any.
fn without_removed_members(body: &Value) -> Option<Value> {
    let party = body
        .get("event")?
        .as_object()?
        .values()
        .next()?
        .as_object()?;
    if !party.values().any(Value::is_null) {
        return None;
    }
    let mut body = body.clone();
    if let Some(Value::Object(p)) = body
        .get_mut("event")
        .and_then(Value::as_object_mut)
        .and_then(|e| e.values_mut().next())
    {
        p.retain(|_, v| !v.is_null());
    }
    Some(body)
}

/// `IndividualCreateEvent` → (Individual, Create), and so on for the eight event types.
pub fn event_kind(event_type: &str) -> Option<(ResourceType, Action)> {
    let (resource, rest) = if let Some(r) = event_type.strip_prefix("Individual") {
        (ResourceType::Individual, r)
    } else if let Some(r) = event_type.strip_prefix("Organization") {
        (ResourceType::Organization, r)
    } else {
        return None;
    };
    let action = match rest {
        "CreateEvent" => Action::Create,
        "AttributeValueChangeEvent" => Action::AttributeValueChange,
        "StateChangeEvent" => Action::StateChange,
        "DeleteEvent" => Action::Delete,
        _ => return None,
    };
    Some((resource, action))
}

/// The listener route of an event type, as TMF632 names it (`/listener/individualCreateEvent`).
pub fn listener_route(event_type: &str) -> Option<String> {
    event_kind(event_type)?;
    let mut chars = event_type.chars();
    let first = chars.next()?.to_ascii_lowercase();
    Some(format!("/listener/{first}{}", chars.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::example;

    #[test]
    fn every_official_event_example_is_accepted() {
        for resource in ["Individual", "Organization"] {
            for action in ["Create", "AttributeValueChange", "StateChange", "Delete"] {
                let body = example(&format!("{resource}{action}Event_request"));
                let event =
                    parse_event(&body).unwrap_or_else(|e| panic!("{resource}{action}: {e}"));
                assert_eq!(event.action.as_str(), action);
                assert_eq!(event.resource.as_str(), resource);
            }
        }
    }

    /// A v4 envelope: no `@type`, v4 related parties (id and @referredType), `deceaded`.
    fn v4_event() -> Value {
        json!({
            "eventId": "v4-1", "eventTime": "2019-06-01T12:00:00.000Z", "eventType": "IndividualCreateEvent",
            "timeOcurred": "2019-06-01T12:00:00.000Z", "correlationId": "c-1", "domain": "Commercial",
            "event": {"individual": {"id": "42", "givenName": "Jane", "status": "deceaded",
                "partyCharacteristic": [{"name": "hobby", "value": "tennis"}, {"name": "hobby", "value": "football"}],
                "relatedParty": [{"id": "128", "role": "employer", "@referredType": "Organization"}]}}
        })
    }

    #[test]
    fn v4_envelopes_are_validated_against_v4() {
        let event = parse_event(&v4_event()).unwrap();
        assert_eq!(event.spec, SpecVersion::V4);
        let mut bad = v4_event();
        bad["event"]["individual"]["relatedParty"][0]
            .as_object_mut()
            .unwrap()
            .remove("@referredType");
        let err = parse_event(&bad).unwrap_err();
        assert!(
            err.message.contains("v4.0.0")
                && err.message.contains("/event/individual/relatedParty/0"),
            "{err}"
        );
    }

    #[test]
    fn v4_spellings_and_v5_spellings_are_both_accepted() {
        let mut body = example("IndividualStateChangeEvent_request");
        body["event"]["individual"]["status"] = json!("deceaded");
        assert!(parse_event(&body).is_ok());
        body["event"]["individual"]["status"] = json!("deceased");
        body["timeOccurred"] = body["timeOcurred"].clone();
        assert!(parse_event(&body).is_ok());
    }

    #[test]
    fn schema_violations_name_the_path() {
        let mut body = example("IndividualCreateEvent_request");
        body["event"]["individual"]["birthDate"] = json!(42);
        let err = parse_event(&body).unwrap_err();
        assert_eq!(err.status, "400");
        assert!(err.message.contains("/event/individual/birthDate"), "{err}");
        let mut body = example("OrganizationStateChangeEvent_request");
        body["event"]["organization"]["status"] = json!("bankrupt");
        let err = parse_event(&body).unwrap_err();
        assert!(err.message.contains("/event/organization/status"), "{err}");
    }

    #[test]
    fn unknown_types_and_missing_parts_are_refused_with_tmf630_bodies() {
        let err =
            parse_event(&json!({"eventType": "CustomerCreateEvent", "eventId": "1"})).unwrap_err();
        assert_eq!(err.code, "unknownEventType");
        let body = err.to_json();
        for member in ["code", "reason", "message", "status", "@type"] {
            assert!(body.get(member).is_some(), "{member} in {body}");
        }
        let mut no_id = example("IndividualDeleteEvent_request");
        no_id["event"]["individual"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        assert!(
            parse_event(&no_id)
                .unwrap_err()
                .message
                .contains("/event/individual")
        );
        assert!(parse_event(&json!("hello")).is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(
            listener_route("IndividualCreateEvent").unwrap(),
            "/listener/individualCreateEvent"
        );
        assert_eq!(listener_route("Nope"), None);
    }
}
