//! The hub's notifications, whatever host delivers them: the TMF632 event of one change of a
//! stored party (`…CreateEvent`, `…AttributeValueChangeEvent`, `…StateChangeEvent`,
//! `…DeleteEvent`), and which listeners want it. `serve` builds it from its regions' stream
//! records, the notifier Lambda function from the party table's DynamoDB stream; both deliver it
//! to the callbacks registered through `POST hub` ([`crate::api::Hub`]).

use std::time::{Duration, UNIX_EPOCH};

use policy_types::{PartyVersion, ResourceType};
use serde_json::{Value, json};

/// The path segment of a resource type (`individual`, `organization`).
fn member(resource: ResourceType) -> &'static str {
    match resource {
        ResourceType::Individual => "individual",
        ResourceType::Organization => "organization",
    }
}

/// The TMF632 event (v5 envelope) of a change of a stored party in `region`: what the party
/// became, as the region stores it. `old` is the party before (none for a create), `new` after
/// (none when the item itself is gone). `None` when nothing visible changed (a write that left
/// the TMF632 representation as it was, or a change of a party that was never visible).
///
/// `event_id` names the change, so that a listener can recognise a notification delivered twice
/// (delivery is at least once); `at_ms` is when the change was written.
pub fn change_event(
    region: &str,
    old: Option<&PartyVersion>,
    new: Option<&PartyVersion>,
    event_id: &str,
    at_ms: u64,
) -> Option<Value> {
    let version = new.or(old)?;
    let before = old.and_then(party_model::to_tmf);
    let after = new.and_then(party_model::to_tmf);
    let kind = match (&before, &after) {
        (Some(_), None) => "Delete",
        (None, None) => return None,
        (None, Some(_)) => "Create",
        (Some(b), Some(a)) if b.get("status") != a.get("status") => "StateChange",
        (Some(b), Some(a)) if b == a => return None,
        (Some(_), Some(_)) => "AttributeValueChange",
    };
    let resource = version.resource_type;
    let event_type = format!("{}{kind}Event", resource.as_str());
    let mut party = after.unwrap_or_else(|| json!({"id": version.party_id}));
    party["@type"] = json!(resource.as_str());
    party["href"] = json!(format!(
        "/{region}/tmf-api/party/v5/{}/{}",
        member(resource),
        version.party_id
    ));
    let at = UNIX_EPOCH + Duration::from_millis(at_ms);
    Some(json!({
        "@type": event_type,
        "eventId": event_id,
        "eventTime": humantime::format_rfc3339_millis(at).to_string(),
        "eventType": event_type,
        "event": {member(resource): party},
    }))
}

/// Whether a listener registered with `query` wants `event`. The query is the TMF630 filter
/// the listener gave at registration, `name=value[,value…]` terms joined by `&`; `eventType`
/// is the one name a notification is filtered by (`eventType=IndividualDeleteEvent`), other
/// terms are kept as given and do not narrow the deliveries (delivering more than asked is
/// safe under at-least-once; dropping a wanted change is not).
pub fn wants(query: Option<&str>, event: &Value) -> bool {
    let Some(query) = query else {
        return true;
    };
    let event_type = event["eventType"].as_str().unwrap_or_default();
    query
        .split('&')
        .filter_map(|term| term.split_once('='))
        .filter(|(name, _)| name.trim() == "eventType")
        .all(|(_, values)| values.split(',').any(|v| v.trim() == event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(fields: Value) -> PartyVersion {
        let mut p = party_model::new_party("acme", "42", ResourceType::Individual, "eu");
        party_model::Writer::new("eu").write(&mut p, 1_000, &fields);
        p
    }

    #[test]
    fn each_kind_of_change_is_its_event() {
        let created = party(json!({"givenName": "Jane", "status": "initialized"}));
        let mut renamed = created.clone();
        let mut eu = party_model::Writer::new("eu");
        eu.write(&mut renamed, 2_000, &json!({"givenName": "Janet"}));
        let mut validated = renamed.clone();
        eu.write(&mut validated, 3_000, &json!({"status": "validated"}));
        let mut deleted = validated.clone();
        eu.delete(&mut deleted, 4_000);
        let kind = |old: Option<&PartyVersion>, new: Option<&PartyVersion>| {
            change_event("eu", old, new, "e1", 1_000)
                .map(|e| e["eventType"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            kind(None, Some(&created)).as_deref(),
            Some("IndividualCreateEvent")
        );
        assert_eq!(
            kind(Some(&created), Some(&renamed)).as_deref(),
            Some("IndividualAttributeValueChangeEvent")
        );
        assert_eq!(
            kind(Some(&renamed), Some(&validated)).as_deref(),
            Some("IndividualStateChangeEvent")
        );
        assert_eq!(
            kind(Some(&validated), Some(&deleted)).as_deref(),
            Some("IndividualDeleteEvent")
        );
        assert_eq!(
            kind(Some(&validated), None).as_deref(),
            Some("IndividualDeleteEvent"),
            "an item removed is its party's delete"
        );
        assert_eq!(
            kind(Some(&renamed), Some(&renamed)),
            None,
            "nothing visible"
        );
        assert_eq!(kind(Some(&deleted), Some(&deleted)), None);
    }

    #[test]
    fn the_event_carries_the_party_as_stored_with_its_link() {
        let created = party(json!({"givenName": "Jane"}));
        let e = change_event("na", None, Some(&created), "na-7", 1_700_000_000_000).unwrap();
        assert_eq!(e["eventId"], json!("na-7"));
        assert_eq!(e["eventTime"], json!("2023-11-14T22:13:20.000Z"));
        assert_eq!(e["event"]["individual"]["givenName"], json!("Jane"));
        assert_eq!(
            e["event"]["individual"]["href"],
            json!("/na/tmf-api/party/v5/individual/42")
        );
    }

    #[test]
    fn a_query_on_the_event_type_narrows_the_deliveries() {
        let e = json!({"eventType": "IndividualDeleteEvent"});
        assert!(wants(None, &e));
        assert!(wants(Some("eventType=IndividualDeleteEvent"), &e));
        assert!(wants(
            Some("eventType = IndividualCreateEvent, IndividualDeleteEvent"),
            &e
        ));
        assert!(!wants(Some("eventType=IndividualCreateEvent"), &e));
        assert!(
            wants(Some("status=validated"), &e),
            "other terms do not narrow"
        );
    }
}
