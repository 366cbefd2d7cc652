//! The sample captured conflicts shipped in `samples/conflicts.jsonl`, built from the official
//! TMF632 v5 examples in `../shared/specs/`. The test `samples_are_current` rebuilds them and
//! compares; `BLESS=1` rewrites the file.

use host_core::conflict::{CapturedConflict, CapturedContext};
use party_model::{Writer, new_party};
use policy_types::{PartyVersion, ResourceType};
use serde_json::{Value, json};
use std::path::PathBuf;

pub use crate::specs::{example, specs_dir};

/// An official example as an event with the given id and second of event time (the examples
/// all share one of each, so that events sent one after another need their own).
pub fn event(name: &str, id: &str, second: u32) -> Value {
    let mut e = example(name);
    e["eventId"] = json!(id);
    e["eventTime"] = json!(format!(
        "2025-01-01T{:02}:{:02}:{:02}.000Z",
        second / 3600 % 24,
        second / 60 % 60,
        second % 60
    ));
    e
}

/// The committed sample file.
pub fn samples_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/conflicts.jsonl")
}

const T0: u64 = 1_700_000_000_000;

/// A region's writer, writing at `T0 + at` ms.
struct Region(Writer);

impl Region {
    fn new(name: &str) -> Self {
        Region(Writer::new(name))
    }

    fn write(&mut self, v: &mut PartyVersion, at: u64, members: &Value) {
        self.0.write(v, T0 + at, members);
    }

    fn delete(&mut self, v: &mut PartyVersion, at: u64) {
        self.0.delete(v, T0 + at);
    }
}

fn created(resource: ResourceType, body: &Value) -> PartyVersion {
    let id = body["id"].as_str().unwrap();
    let mut v = new_party("acme", id, resource, "eu");
    Region::new("eu").write(&mut v, 0, body);
    v
}

fn event_body(name: &str, key: &str) -> Value {
    example(name)["event"][key].clone()
}

fn conflict(
    id: &str,
    note: &str,
    local: PartyVersion,
    remote: PartyVersion,
    config: Option<Value>,
) -> CapturedConflict {
    CapturedConflict {
        id: Some(id.to_owned()),
        tenant: "acme".to_owned(),
        note: Some(note.to_owned()),
        context: Some(CapturedContext {
            resolving_region: Some("eu".to_owned()),
            config,
        }),
        local,
        remote,
        local_writes: Default::default(),
        remote_writes: Default::default(),
    }
}

/// The conflict between `base` written once in EU and once in NA, each write at its own time
/// (ms after `T0`) with its own members.
fn one_write_each(
    id: &str,
    note: &str,
    base: &PartyVersion,
    (eu_at, eu_members): (u64, Value),
    (na_at, na_members): (u64, Value),
) -> CapturedConflict {
    let (mut eu, mut na) = (base.clone(), base.clone());
    Region::new("eu").write(&mut eu, eu_at, &eu_members);
    Region::new("na").write(&mut na, na_at, &na_members);
    conflict(id, note, eu, na, None)
}

fn with_contact_media(base: &Value, f: impl FnOnce(&mut Vec<Value>)) -> Value {
    let mut media = base["contactMedium"].as_array().unwrap().clone();
    f(&mut media);
    json!({ "contactMedium": media })
}

/// Builds the sample conflicts.
pub fn build() -> Vec<CapturedConflict> {
    let individual = example("Individual_retrieve_example_response");
    let organization = example("Organization_retrieve_example_response");
    let person = created(ResourceType::Individual, &individual);
    let org = created(ResourceType::Organization, &organization);
    let mut out = Vec::new();

    // 1. The seed's case: EU changes the email while NA applies the official
    //    IndividualAttributeValueChangeEvent (maritalStatus).
    let new_email = with_contact_media(&individual, |m| {
        m[0]["emailAddress"] = json!("jane.l@newmail.example")
    });
    out.push(one_write_each(
        "email-vs-marital-status",
        "EU changes the email, NA applies the official attribute-change event: both survive",
        &person,
        (1_000, new_email),
        (
            1_001,
            event_body("IndividualAttributeValueChangeEvent_request", "individual"),
        ),
    ));

    // 2. Status against an attribute: NA applies the official state-change event.
    let (mut eu, mut na) = (person.clone(), person.clone());
    Region::new("eu").write(&mut eu, 1_000, &json!({"familyName": "Smith"}));
    Region::new("na").write(&mut na, 1_005, &json!({"status": "initialized"}));
    Region::new("eu").write(
        &mut eu,
        1_003,
        &event_body("IndividualStateChangeEvent_request", "individual"),
    );
    out.push(conflict("status-vs-attribute", "EU renames and re-validates, NA resets status to initialized later by the clock: the lifecycle keeps validated", eu, na, None));

    // 3. Two regions add contact media.
    out.push(one_write_each(
        "both-add-contact-media",
        "EU adds a mobile number, NA adds a work email: the merged party has both",
        &person,
        (1_000, with_contact_media(&individual, |m| {
            m.push(json!({"@type": "PhoneContactMedium", "mediumType": "mobile", "phoneNumber": "+33 6 12 34 56 78", "preferred": false}))
        })),
        (1_000, with_contact_media(&individual, |m| {
            m.push(json!({"@type": "EmailContactMedium", "mediumType": "email", "emailAddress": "jane@work.example", "preferred": false}))
        })),
    ));

    // 4. A removal must not be undone by the other region's stale copy.
    out.push(one_write_each(
        "removed-address-stays-removed",
        "EU removes the postal address, NA renames: the address does not come back from NA's copy",
        &person,
        (
            1_000,
            with_contact_media(&individual, |m| {
                m.remove(1);
            }),
        ),
        (1_001, json!({"preferredGivenName": "Janie"})),
    ));

    // 5 and 6. Delete against a concurrent update, under each delete rule.
    let (mut eu, mut na) = (person.clone(), person.clone());
    Region::new("eu").delete(&mut eu, 1_000);
    Region::new("na").write(
        &mut na,
        1_005,
        &event_body("IndividualAttributeValueChangeEvent_request", "individual"),
    );
    out.push(conflict(
        "delete-vs-update",
        "EU applies the official delete event, NA a later attribute change: delete wins by default",
        eu.clone(),
        na.clone(),
        None,
    ));
    out.push(conflict(
        "delete-vs-update-resurrects",
        "The same conflict for a tenant configured update-resurrects: only NA's later change lives on",
        eu,
        na,
        Some(json!({"deleteRule": "update-resurrects"})),
    ));

    // 7. The same field in both regions: the later clock wins.
    out.push(one_write_each(
        "same-field-later-clock-wins",
        "Both regions change familyName: NA's later write wins",
        &person,
        (1_000, json!({"familyName": "Smith"})),
        (1_004, json!({"familyName": "Lamborgizzia-Smith"})),
    ));

    // 8. A terminal status is not undone.
    out.push(one_write_each(
        "terminal-status-stays",
        "EU records the death, NA re-validates later by the clock: deceased stays",
        &person,
        (1_000, json!({"status": "deceased"})),
        (1_009, json!({"status": "validated"})),
    ));

    // 9. v4 items carry no ids: two characteristics both named hobby must both survive.
    let v4 = json!({"id": "42", "@type": "Individual", "givenName": "Jane", "familyName": "Lamborgizzia", "status": "validated",
        "partyCharacteristic": [{"name": "hobby", "value": "Modern Jazz"}, {"name": "hobby", "value": "Cinema"}]});
    out.push(one_write_each(
        "v4-characteristics-without-ids",
        "v4-style items without ids: EU drops Cinema, NA adds Chess; identity by content",
        &created(ResourceType::Individual, &v4),
        (
            1_000,
            json!({"partyCharacteristic": [{"name": "hobby", "value": "Modern Jazz"}]}),
        ),
        (1_000, json!({"partyCharacteristic": [
            {"name": "hobby", "value": "Modern Jazz"}, {"name": "hobby", "value": "Cinema"}, {"name": "hobby", "value": "Chess"}]})),
    ));

    // 10. Organization: trading name against a new identification, in APAC.
    let (mut eu, mut apac) = (org.clone(), org.clone());
    Region::new("eu").write(
        &mut eu,
        1_000,
        &json!({"tradingName": "Coffee Do Brazil Europe"}),
    );
    let mut ids = organization["organizationIdentification"]
        .as_array()
        .unwrap()
        .clone();
    ids.push(json!({"@type": "OrganizationIdentification", "identificationType": "vatNumber", "identificationId": "SG-99887766", "issuingAuthority": "IRAS"}));
    Region::new("apac").write(
        &mut apac,
        1_001,
        &json!({"organizationIdentification": ids}),
    );
    Region::new("apac").write(
        &mut apac,
        1_002,
        &event_body(
            "OrganizationAttributeValueChangeEvent_request",
            "organization",
        ),
    );
    out.push(conflict("organization-name-vs-identification", "EU renames the trading name, APAC adds a VAT identification and applies the official attribute change", eu, apac, None));

    // 11. Organization lifecycle: closed is terminal.
    out.push(one_write_each(
        "organization-closed-stays",
        "EU closes the organization, NA applies the official state-change event later: closed stays",
        &org,
        (1_000, json!({"status": "closed"})),
        (
            1_003,
            event_body("OrganizationStateChangeEvent_request", "organization"),
        ),
    ));

    // 12. Not a conflict: NA's version already holds EU's change.
    let mut eu = person.clone();
    Region::new("eu").write(&mut eu, 1_000, &json!({"middleName": "J."}));
    let mut na = eu.clone();
    Region::new("na").write(&mut na, 1_005, &json!({"nationality": "French"}));
    out.push(conflict(
        "remote-dominates",
        "NA's version already includes EU's write: the host takes it without calling the policy",
        eu,
        na,
        None,
    ));

    // 13. The same element changed in both regions (v5 items with ids).
    let with_ids = json!({"id": "54", "@type": "Individual", "givenName": "Carlos", "familyName": "Mafalda", "status": "validated",
        "contactMedium": [{"id": "cm-1", "@type": "EmailContactMedium", "mediumType": "email", "emailAddress": "carlos@old.example"},
                          {"id": "cm-2", "@type": "PhoneContactMedium", "mediumType": "mobile", "phoneNumber": "+55 11 5555 0000"}]});
    let change = |addr: &str| {
        json!({"contactMedium": [
        {"id": "cm-1", "@type": "EmailContactMedium", "mediumType": "email", "emailAddress": addr},
        {"id": "cm-2", "@type": "PhoneContactMedium", "mediumType": "mobile", "phoneNumber": "+55 11 5555 0000"}]})
    };
    out.push(one_write_each(
        "same-element-both-regions",
        "Both regions change contact medium cm-1: the later write of that element wins, cm-2 untouched",
        &created(ResourceType::Individual, &with_ids),
        (1_000, change("carlos@eu.example")),
        (1_002, change("carlos@na.example")),
    ));

    out
}
