//! A party as the route's TMF632 release shapes it: the store keeps what each write sent (v4 or
//! v5 members, merged and replicated as they are), and a read answers in the release of its
//! route, so that a v4 client never meets a v5 `contactMedium` nor a v5 client a v4 one.
//!
//! Pure functions over the party's members, applied at read time only. Each is idempotent (a
//! member already in the release's form is left as is) and loses nothing: a member a release
//! does not define is kept, and a v4 element read as v5 and back is the element again, but for
//! what v5 requires and v4 reads alike (a `@type` naming v4's own class, [`to_v5`]; the
//! `mediumType` of a contact medium that had none, [`contact_medium_to_v4`]).

use policy_types::ResourceType;
use serde_json::{Map, Value};

use crate::event::SpecVersion;

/// The party's members in `release`'s form.
pub(super) fn to_release(
    party: &mut Map<String, Value>,
    resource: ResourceType,
    release: SpecVersion,
) {
    match release {
        SpecVersion::V4 => to_v4(party),
        SpecVersion::V5 => to_v5(party, resource),
    }
}

/// The v5 form: `contactMedium` elements of the polymorphic `…ContactMedium` classes,
/// `relatedParty` as `RelatedPartyOrPartyRole`, `externalReference` as `ExternalIdentifier`, a
/// typed `@type` on each `partyCharacteristic`, and the `@type` v5 requires (every class that
/// extends `Extensible`) on each sub-object that has none.
///
/// That `@type` names the element's class, the same name v4 gives it where v4 defines the class
/// (`TaxExemptionCertificate`, `OrganizationRef`, …): [`to_v4`] keeps it, being valid and meant
/// alike in v4, so a v4 element without one comes back from v5 with it. Every other member
/// comes back as it was.
pub(super) fn to_v5(party: &mut Map<String, Value>, resource: ResourceType) {
    for_each_object(party, "contactMedium", contact_medium_to_v5);
    for_each_object(party, "relatedParty", related_party_to_v5);
    for_each_object(party, "externalReference", external_reference_to_v5);
    for_each_object(party, "partyCharacteristic", |c| {
        let implied = characteristic_type(c.get("value"));
        set_type_if_absent(c, implied);
        for_each_object(c, "characteristicRelationship", |r| {
            set_type_if_absent(r, "CharacteristicRelationship");
        });
    });
    for (member, class) in REQUIRED_TYPES {
        for_each_object(party, member, |element| {
            set_type_if_absent(element, class);
            for_each_object(element, "attachment", |a| set_type_if_absent(a, ATTACHMENT));
            for_each_object(element, "taxDefinition", |t| {
                set_type_if_absent(t, "TaxDefinition");
            });
            for_each_object(element, "organization", |o| {
                set_type_if_absent(o, "OrganizationRef");
            });
        });
    }
    // `OtherNameIndividual` does not extend `Extensible` in v5; `OtherNameOrganization` does.
    if resource == ResourceType::Organization {
        for_each_object(party, "otherName", |n| {
            set_type_if_absent(n, "OtherNameOrganization");
        });
    }
}

/// The v4 form: what a v4 client cannot read is put back in v4's shape (`contactMedium` with
/// `mediumType` and `characteristic`, `relatedParty` with `id` and `@referredType`,
/// `externalReference` with `externalReferenceType` and `name`), and the `@type` of a class
/// only v5 defines is dropped where the element implies it (`EmailContactMedium`,
/// `StringCharacteristic`, `PartyRef`, `Attachment`, …). Everything else is valid v4 already
/// and is left as is.
pub(super) fn to_v4(party: &mut Map<String, Value>) {
    for_each_object(party, "contactMedium", contact_medium_to_v4);
    for_each_object(party, "relatedParty", related_party_to_v4);
    for_each_object(party, "externalReference", external_reference_to_v4);
    for_each_object(party, "partyCharacteristic", |c| {
        let implied = characteristic_type(c.get("value"));
        if implied != "Characteristic" && type_of(c) == Some(implied) {
            c.remove("@type");
        }
    });
    for (member, _) in REQUIRED_TYPES {
        for_each_object(party, member, |element| {
            for_each_object(element, "attachment", |a| {
                if type_of(a) == Some(ATTACHMENT) {
                    a.remove("@type");
                }
            });
        });
    }
}

/// Sub-objects whose v5 class extends `Extensible` (so requires `@type`), by the party member
/// that holds them, with their class; their `attachment`, `taxDefinition` and `organization`
/// members are typed as well.
const REQUIRED_TYPES: [(&str, &str); 6] = [
    ("creditRating", "PartyCreditProfile"),
    ("taxExemptionCertificate", "TaxExemptionCertificate"),
    ("individualIdentification", "IndividualIdentification"),
    ("organizationIdentification", "OrganizationIdentification"),
    (
        "organizationChildRelationship",
        "OrganizationChildRelationship",
    ),
    (
        "organizationParentRelationship",
        "OrganizationParentRelationship",
    ),
];

/// v5's `AttachmentRefOrValue` by value (v4's class is `AttachmentRefOrValue` itself), as the
/// official v5 examples type every attachment.
const ATTACHMENT: &str = "Attachment";

/// The objects of `member`: its elements when it is an array, itself when it is an object.
fn for_each_object(
    party: &mut Map<String, Value>,
    member: &str,
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    match party.get_mut(member) {
        Some(Value::Array(elements)) => elements
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(f),
        Some(Value::Object(object)) => f(object),
        _ => {}
    }
}

/// The element's `@type` when it is a string.
fn type_of(element: &Map<String, Value>) -> Option<&str> {
    element.get("@type").and_then(Value::as_str)
}

/// A `null` `@type` counts as none (a merge patch's removal).
fn has_type(element: &Map<String, Value>) -> bool {
    element.get("@type").is_some_and(|t| !t.is_null())
}

fn set_type_if_absent(element: &mut Map<String, Value>, class: &str) {
    if !has_type(element) {
        element.insert("@type".into(), Value::String(class.into()));
    }
}

/// Moves `fields` from `from` to `to`, each unless `to` has it already.
fn move_fields<'f>(
    from: &mut Map<String, Value>,
    to: &mut Map<String, Value>,
    fields: impl IntoIterator<Item = &'f str>,
) {
    for field in fields {
        if !to.contains_key(field)
            && let Some(value) = from.remove(field)
        {
            to.insert(field.into(), value);
        }
    }
}

/// v4's `MediumCharacteristic` members: nested under `characteristic` in v4, at the top of the
/// element in v5 (each `…ContactMedium` class has its own, all have `contactType`).
fn medium_fields() -> impl Iterator<Item = &'static str> {
    Medium::ALL
        .into_iter()
        .flat_map(Medium::own_fields)
        .copied()
        .chain(["contactType"])
}

/// The kinds of contact medium both releases know: v5's `…ContactMedium` subclasses, v4's
/// `mediumType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Medium {
    Email,
    Phone,
    Fax,
    Address,
    Social,
}

impl Medium {
    const ALL: [Medium; 5] = [
        Medium::Email,
        Medium::Phone,
        Medium::Fax,
        Medium::Address,
        Medium::Social,
    ];

    /// The v5 class.
    fn v5_type(self) -> &'static str {
        match self {
            Medium::Email => "EmailContactMedium",
            Medium::Phone => "PhoneContactMedium",
            Medium::Fax => "FaxContactMedium",
            Medium::Address => "GeographicAddressContactMedium",
            Medium::Social => "SocialContactMedium",
        }
    }

    /// The `mediumType` a v4 element of this kind gets when it has none: the official examples'
    /// `email` and `postalAddress`, and the plain names of the others.
    fn medium_type(self) -> &'static str {
        match self {
            Medium::Email => "email",
            Medium::Phone => "phone",
            Medium::Fax => "fax",
            Medium::Address => "postalAddress",
            Medium::Social => "social",
        }
    }

    /// The `mediumType` values read as this kind, compared without case and separators (the
    /// spec leaves them free: "such as: email address, telephone number, postal address").
    fn medium_types(self) -> &'static [&'static str] {
        match self {
            Medium::Email => &["email", "emailaddress", "mail"],
            Medium::Phone => &[
                "phone",
                "phonenumber",
                "telephone",
                "telephonenumber",
                "tel",
                "mobile",
                "mobilephone",
                "mobilenumber",
                "cellphone",
                "landline",
            ],
            Medium::Fax => &["fax", "faxnumber", "telefax"],
            Medium::Address => &[
                "postaladdress",
                "postal",
                "address",
                "geographicaddress",
                "streetaddress",
                "mailingaddress",
            ],
            Medium::Social => &["social", "socialnetwork", "socialnetworkid", "socialmedia"],
        }
    }

    /// The members only this kind has.
    fn own_fields(self) -> &'static [&'static str] {
        match self {
            Medium::Email => &["emailAddress"],
            Medium::Phone => &["phoneNumber"],
            Medium::Fax => &["faxNumber"],
            Medium::Address => &[
                "street1",
                "street2",
                "city",
                "postCode",
                "stateOrProvince",
                "country",
            ],
            Medium::Social => &["socialNetworkId"],
        }
    }

    fn from_v5_type(class: &str) -> Option<Medium> {
        Medium::ALL.into_iter().find(|m| m.v5_type() == class)
    }

    fn from_medium_type(medium_type: &str) -> Option<Medium> {
        let plain: String = medium_type
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Medium::ALL
            .into_iter()
            .find(|m| m.medium_types().contains(&plain.as_str()))
    }

    /// The kind an element's members show, when they show exactly one.
    fn from_fields(element: &Map<String, Value>) -> Option<Medium> {
        let mut shown = Medium::ALL
            .into_iter()
            .filter(|m| m.own_fields().iter().any(|f| element.contains_key(*f)));
        match (shown.next(), shown.next()) {
            (Some(kind), None) => Some(kind),
            _ => None,
        }
    }
}

/// v4 `{mediumType, preferred, validFor, characteristic: {…}}` → v5 `{"@type":
/// "…ContactMedium", preferred, validFor, …the characteristic's members}`.
///
/// The kind comes from `mediumType` ([`Medium::medium_types`]), else from the members shown;
/// `mediumType` itself stays (as in the official v5 examples), so that the v4 value survives.
/// An element of no known kind becomes the base class `ContactMedium` with its members at the
/// top, valid and readable. A `characteristic` member v5 does not define (a `@type` of the
/// characteristic, an unknown one) stays under `characteristic`. The base class a v4 element
/// may name, `ContactMedium`, becomes the subclass and is kept as `@baseType`. An element with
/// a `@type`, nothing nested and no `mediumType` is v5 already.
fn contact_medium_to_v5(element: &mut Map<String, Value>) {
    let nested = matches!(element.get("characteristic"), Some(Value::Object(_)));
    if has_type(element) && !nested && !element.contains_key("mediumType") {
        return;
    }
    if let Some(Value::Object(mut characteristic)) = element.remove("characteristic") {
        let was_empty = characteristic.is_empty();
        move_fields(&mut characteristic, element, medium_fields());
        if was_empty || !characteristic.is_empty() {
            element.insert("characteristic".into(), Value::Object(characteristic));
        }
    }
    let kind = element
        .get("mediumType")
        .and_then(Value::as_str)
        .and_then(Medium::from_medium_type)
        .or_else(|| Medium::from_fields(element));
    match (type_of(element), kind) {
        (_, None) => set_type_if_absent(element, "ContactMedium"),
        (Some("ContactMedium"), Some(kind)) if !element.contains_key("@baseType") => {
            element.insert("@baseType".into(), "ContactMedium".into());
            element.insert("@type".into(), kind.v5_type().into());
        }
        (_, Some(kind)) => set_type_if_absent(element, kind.v5_type()),
    }
}

/// v5 `{"@type": "…ContactMedium", …members}` → v4 `{mediumType, …, characteristic: {…}}`:
/// the members move under `characteristic`, the subclass becomes `mediumType` when the element
/// has none, and the subclass `@type` is dropped (v4's class is `ContactMedium`, restored when
/// it was kept as `@baseType`). An element with nothing at the top and no subclass is v4.
fn contact_medium_to_v4(element: &mut Map<String, Value>) {
    let kind = type_of(element).and_then(Medium::from_v5_type);
    let flat = medium_fields().any(|f| element.contains_key(f));
    if flat {
        let mut characteristic = match element.remove("characteristic") {
            Some(Value::Object(c)) => Some(c),
            None | Some(Value::Null) => Some(Map::new()),
            Some(other) => {
                // Not an object: the members cannot go under it, so they stay where they are.
                element.insert("characteristic".into(), other);
                None
            }
        };
        if let Some(characteristic) = characteristic.as_mut() {
            move_fields(element, characteristic, medium_fields());
        }
        if let Some(characteristic) = characteristic.filter(|c| !c.is_empty()) {
            element.insert("characteristic".into(), Value::Object(characteristic));
        }
    }
    let Some(kind) = kind else {
        return;
    };
    if element.get("mediumType").is_none_or(Value::is_null) {
        element.insert("mediumType".into(), kind.medium_type().into());
    }
    element.remove("@type");
    if element.get("@baseType").and_then(Value::as_str) == Some("ContactMedium") {
        element.remove("@baseType");
        element.insert("@type".into(), "ContactMedium".into());
    }
}

/// What v4's `RelatedParty` has at its top and v5's `RelatedPartyOrPartyRole` under
/// `partyOrPartyRole` (an `EntityRef`).
const REF_FIELDS: [&str; 4] = ["id", "href", "name", "@referredType"];

/// v5's reference classes for a related party: a party's, or a party role's.
const PARTY_REF: &str = "PartyRef";
const PARTY_ROLE_REF: &str = "PartyRoleRef";

/// The v5 class of `RelatedParty` (the official examples also write
/// `RelatedPartyRefOrPartyRoleRef`, which no schema defines and which is kept as written).
const RELATED_PARTY: &str = "RelatedPartyOrPartyRole";

/// The reference class of a v4 related party by its `@referredType`: a party's for the party
/// classes (or none given), a party role's for any other (v4's `RelatedParty` "defines party or
/// party role").
fn reference_type(referred: Option<&Value>) -> &'static str {
    match referred.and_then(Value::as_str) {
        None | Some("Individual" | "Organization" | "Party") => PARTY_REF,
        Some(_) => PARTY_ROLE_REF,
    }
}

/// v4 `{id, href, name, role, @referredType}` → v5 `{role, "@type": "RelatedPartyOrPartyRole",
/// partyOrPartyRole: {id, href, name, @referredType, "@type": "PartyRef" | "PartyRoleRef"}}`.
/// A v4 `@type` (v4's own `RelatedParty`, a subclass) is kept: v5 defines no other class here.
fn related_party_to_v5(element: &mut Map<String, Value>) {
    if REF_FIELDS.iter().any(|f| element.contains_key(*f)) {
        let mut reference = match element.remove("partyOrPartyRole") {
            Some(Value::Object(r)) => r,
            None | Some(Value::Null) => Map::new(),
            Some(other) => {
                element.insert("partyOrPartyRole".into(), other);
                set_type_if_absent(element, RELATED_PARTY);
                return;
            }
        };
        move_fields(element, &mut reference, REF_FIELDS);
        let class = reference_type(reference.get("@referredType"));
        set_type_if_absent(&mut reference, class);
        element.insert("partyOrPartyRole".into(), Value::Object(reference));
    }
    set_type_if_absent(element, RELATED_PARTY);
}

/// v5 → v4: the reference's `id`, `href`, `name` and `@referredType` at the top, the
/// reference class dropped. A party or party role given by value (`"@type": "Individual"`, …)
/// names the `@referredType` and keeps its other members under `partyOrPartyRole`.
fn related_party_to_v4(element: &mut Map<String, Value>) {
    let Some(Value::Object(mut reference)) = element.remove("partyOrPartyRole") else {
        return;
    };
    move_fields(&mut reference, element, REF_FIELDS);
    match type_of(&reference) {
        Some(PARTY_REF | PARTY_ROLE_REF) => {
            reference.remove("@type");
        }
        Some(class) if !element.contains_key("@referredType") => {
            let class = class.to_owned();
            element.insert("@referredType".into(), Value::String(class));
        }
        _ => {}
    }
    if !reference.is_empty() {
        element.insert("partyOrPartyRole".into(), Value::Object(reference));
    }
    if type_of(element) == Some(RELATED_PARTY) {
        element.remove("@type");
    }
}

const EXTERNAL_IDENTIFIER: &str = "ExternalIdentifier";

/// v4 `ExternalReference {externalReferenceType, name}` → v5 `ExternalIdentifier
/// {externalIdentifierType, id}`: `name` is the reference itself (a URL, an account), which v5
/// calls the entity's `id` in the external system. An element with a `@type` and no v4 member
/// is v5 already (the official examples' `name` beside `externalIdentifierType` is kept).
fn external_reference_to_v5(element: &mut Map<String, Value>) {
    if has_type(element) && !element.contains_key("externalReferenceType") {
        return;
    }
    rename(element, "externalReferenceType", "externalIdentifierType");
    rename(element, "name", "id");
    set_type_if_absent(element, EXTERNAL_IDENTIFIER);
}

/// v5 → v4, the reverse of [`external_reference_to_v5`]; `owner` (no v4 member) is kept.
fn external_reference_to_v4(element: &mut Map<String, Value>) {
    if !element.contains_key("externalIdentifierType")
        && type_of(element) != Some(EXTERNAL_IDENTIFIER)
    {
        return;
    }
    rename(element, "externalIdentifierType", "externalReferenceType");
    rename(element, "id", "name");
    if type_of(element) == Some(EXTERNAL_IDENTIFIER) {
        element.remove("@type");
    }
}

/// Renames `from` to `to` unless the element has `to` already.
fn rename(element: &mut Map<String, Value>, from: &str, to: &str) {
    if !element.contains_key(to)
        && let Some(value) = element.remove(from)
    {
        element.insert(to.into(), value);
    }
}

/// The v5 `Characteristic` subclass a value implies; the base class when none does (no value,
/// `null`, an empty or mixed array).
fn characteristic_type(value: Option<&Value>) -> &'static str {
    let all = |items: &[Value], test: fn(&Value) -> bool| items.iter().all(test);
    match value {
        Some(Value::String(_)) => "StringCharacteristic",
        Some(Value::Bool(_)) => "BooleanCharacteristic",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "IntegerCharacteristic",
        Some(Value::Number(_)) => "NumberCharacteristic",
        Some(Value::Object(_)) => "ObjectCharacteristic",
        Some(Value::Array(items)) if items.is_empty() => "Characteristic",
        Some(Value::Array(items)) if all(items, Value::is_string) => "StringArrayCharacteristic",
        Some(Value::Array(items)) if all(items, |v| v.is_i64() || v.is_u64()) => {
            "IntegerArrayCharacteristic"
        }
        Some(Value::Array(items)) if all(items, Value::is_number) => "NumberArrayCharacteristic",
        Some(Value::Array(items)) if all(items, Value::is_object) => "ObjectArrayCharacteristic",
        _ => "Characteristic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiRequest, handle};
    use crate::event::validator;
    use crate::ingest::{Ingest, IngestConfig};
    use crate::store::memory::{MemoryDeadLetters, MemoryStore};
    use crate::testing::example;
    use serde_json::json;

    fn object(value: &Value) -> Map<String, Value> {
        value.as_object().expect("a JSON object").clone()
    }

    /// `party` as a read on a `release` route answers it.
    fn read(party: &Value, resource: ResourceType, release: SpecVersion) -> Value {
        let mut members = object(party);
        to_release(&mut members, resource, release);
        Value::Object(members)
    }

    /// What the host's validator of `class` in `release` finds wrong with `value`.
    fn errors(release: SpecVersion, class: &str, value: &Value) -> Vec<String> {
        validator(release, class)
            .unwrap()
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    fn class(resource: ResourceType) -> &'static str {
        resource.as_str()
    }

    /// Every party among the official v5 examples: the create requests (with the id the store
    /// gives every party), the create, retrieve and update responses, the listed parties.
    fn v5_examples() -> Vec<(String, ResourceType, Value)> {
        let mut parties = Vec::new();
        for (prefix, resource) in [
            ("Individual", ResourceType::Individual),
            ("Organization", ResourceType::Organization),
        ] {
            for name in [
                "create_example_request",
                "create_example_response",
                "retrieve_example_response",
                "list_example_response",
                "update_example_Patch_Merge_response",
                "update_example_Implicit_Merge_response",
                "update_example_JSON_Patch_response",
                "update_example_JSON_Patch_Query_response",
            ] {
                let name = format!("{prefix}_{name}");
                let found = match example(&name) {
                    Value::Array(listed) => listed,
                    one => vec![one],
                };
                for (i, mut party) in found.into_iter().enumerate() {
                    party
                        .as_object_mut()
                        .unwrap()
                        .entry("id")
                        .or_insert_with(|| json!("new"));
                    parties.push((format!("{name}[{i}]"), resource, party));
                }
            }
        }
        parties
    }

    /// An Individual as a v4 client writes it, from the v4 schema's shapes: a contact medium
    /// of every kind (and one of a kind v5 does not know), characteristics of every value
    /// type, a related party, and every other member v4 defines.
    fn v4_individual() -> Value {
        json!({
            "id": "v4-ann", "@type": "Individual",
            "givenName": "Ann", "familyName": "Lee", "fullName": "Ann Lee", "status": "validated",
            "birthDate": "1980-01-02T00:00:00Z",
            "contactMedium": [
                {"id": "cm-e", "mediumType": "email", "preferred": true,
                 "validFor": {"startDateTime": "2020-01-01T00:00:00Z"},
                 "characteristic": {"emailAddress": "ann@example.com", "contactType": "work"}},
                {"id": "cm-p", "mediumType": "phone", "preferred": false,
                 "characteristic": {"phoneNumber": "+33 1 23 45 67 89", "contactType": "mobile"}},
                {"id": "cm-f", "mediumType": "fax", "characteristic": {"faxNumber": "+33 1 23 45 67 80"}},
                {"id": "cm-a", "mediumType": "postalAddress",
                 "characteristic": {"street1": "1 rue de la Paix", "street2": "bis", "city": "Paris",
                                    "postCode": "75002", "stateOrProvince": "IDF", "country": "France"}},
                {"id": "cm-s", "mediumType": "social", "characteristic": {"socialNetworkId": "@ann"}},
                {"id": "cm-u", "mediumType": "pigeon",
                 "characteristic": {"loft": "north tower", "contactType": "home"}}
            ],
            "partyCharacteristic": [
                {"name": "hobby", "value": "jazz", "valueType": "string"},
                {"name": "children", "value": 2},
                {"name": "vip", "value": true, "valueType": "boolean"},
                {"name": "tags", "value": ["a", "b"]},
                {"name": "scores", "value": [1, 2]},
                {"name": "ratios", "value": [0.5, 1]},
                {"name": "prefs", "value": {"k": "v"}},
                {"name": "cards", "value": [{"k": "v"}]},
                {"name": "ratio", "value": 0.5},
                {"name": "mixed", "value": [1, "a"]}
            ],
            "relatedParty": [
                {"id": "128", "href": "/tmf-api/party/v4/organization/128", "name": "Coffee",
                 "role": "employer", "@referredType": "Organization"},
                {"id": "c-7", "role": "customer", "@referredType": "Customer"}
            ],
            "externalReference": [{"name": "http://facebook.com/1", "externalReferenceType": "facebookId"}],
            "creditRating": [{"creditAgencyName": "Experian", "ratingScore": 680,
                              "validFor": {"startDateTime": "2018-10-22T07:49:25.246Z"}}],
            "disability": [{"disabilityCode": "BLD", "disabilityName": "Blind"}],
            "individualIdentification": [{"identificationType": "passport", "identificationId": "51DD",
                "attachment": {"id": "a1", "name": "p.pdf", "url": "http://x/p.pdf",
                               "size": {"amount": 3, "units": "MB"}}}],
            "languageAbility": [{"languageCode": "FR", "isFavouriteLanguage": true}],
            "otherName": [{"givenName": "Annie", "validFor": {"startDateTime": "2000-01-01T00:00:00Z"}}],
            "skill": [{"skillCode": "SK1", "skillName": "rust"}],
            "taxExemptionCertificate": [{"id": "t1",
                "taxDefinition": [{"id": "96", "name": "VAT", "taxType": "vat"}],
                "attachment": {"id": "a2", "url": "http://x/t.pdf"},
                "validFor": {"startDateTime": "2018-10-22T07:49:25.246Z"}}]
        })
    }

    /// An Organization as a v4 client writes it, with every member v4 defines.
    fn v4_organization() -> Value {
        json!({
            "id": "v4-coffee", "@type": "Organization", "name": "Coffee", "isLegalEntity": true,
            "isHeadOffice": false, "organizationType": "company", "tradingName": "Coffee Ltd",
            "nameType": "Ltd", "status": "validated",
            "existsDuring": {"startDateTime": "2015-10-22T08:31:52.026Z"},
            "contactMedium": [{"mediumType": "Telephone Number", "characteristic": {"phoneNumber": "+1 555"}},
                              {"@type": "ContactMedium", "mediumType": "email",
                               "characteristic": {"emailAddress": "info@coffee.example"}}],
            "partyCharacteristic": [{"name": "employees", "value": 125, "valueType": "number"}],
            "relatedParty": [{"id": "42", "role": "director", "@referredType": "Individual"}],
            "externalReference": [{"name": "http://coffee.example", "externalReferenceType": "internetSite"}],
            "organizationIdentification": [{"identificationType": "registration", "identificationId": "123",
                                            "attachment": {"url": "http://x/r.pdf"}}],
            "organizationChildRelationship": [{"relationshipType": "juridical",
                "organization": {"id": "149", "href": "/tmf-api/party/v4/organization/149"}}],
            "organizationParentRelationship": {"relationshipType": "juridical", "organization": {"id": "800"}},
            "otherName": [{"tradingName": "General Coffee"}],
            "creditRating": [{"creditAgencyName": "Experian", "ratingScore": 400}],
            "taxExemptionCertificate": [{"id": "t1", "taxDefinition": [{"id": "96", "taxType": "vat"}]}]
        })
    }

    fn v4_parties() -> [(ResourceType, Value); 2] {
        [
            (ResourceType::Individual, v4_individual()),
            (ResourceType::Organization, v4_organization()),
        ]
    }

    #[test]
    fn v5_example_parties_read_on_a_v4_route_are_valid_v4_and_on_a_v5_route_unchanged() {
        for (name, resource, party) in v5_examples() {
            let v4 = read(&party, resource, SpecVersion::V4);
            let found = errors(SpecVersion::V4, class(resource), &v4);
            assert!(found.is_empty(), "{name} read as v4: {found:?}\n{v4:#}");
            let v5 = read(&party, resource, SpecVersion::V5);
            let found = errors(SpecVersion::V5, class(resource), &v5);
            assert!(found.is_empty(), "{name} read as v5: {found:?}\n{v5:#}");
            // Two update examples lack a `@type` v5 requires: read as v5, they gain it.
            if errors(SpecVersion::V5, class(resource), &party).is_empty() {
                assert_eq!(v5, party, "{name} is v5 already");
            }
        }
    }

    #[test]
    fn v4_parties_read_on_a_v5_route_are_valid_v5_and_on_a_v4_route_unchanged() {
        for (resource, party) in v4_parties() {
            let found = errors(SpecVersion::V4, class(resource), &party);
            assert!(found.is_empty(), "the fixture is v4: {found:?}");
            let v5 = read(&party, resource, SpecVersion::V5);
            let found = errors(SpecVersion::V5, class(resource), &v5);
            assert!(found.is_empty(), "read as v5: {found:?}\n{v5:#}");
            assert_eq!(read(&party, resource, SpecVersion::V4), party);
        }
    }

    #[test]
    fn a_v4_contact_medium_reads_as_its_v5_class_with_its_members_at_the_top() {
        let v5 = read(&v4_individual(), ResourceType::Individual, SpecVersion::V5);
        let media = v5["contactMedium"].as_array().unwrap();
        let types: Vec<&str> = media.iter().map(|m| m["@type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "EmailContactMedium",
                "PhoneContactMedium",
                "FaxContactMedium",
                "GeographicAddressContactMedium",
                "SocialContactMedium",
                "ContactMedium"
            ]
        );
        let ids: Vec<&str> = media.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["cm-e", "cm-p", "cm-f", "cm-a", "cm-s", "cm-u"]);
        assert_eq!(
            media[0],
            json!({"id": "cm-e", "@type": "EmailContactMedium", "mediumType": "email",
                   "preferred": true, "validFor": {"startDateTime": "2020-01-01T00:00:00Z"},
                   "emailAddress": "ann@example.com", "contactType": "work"})
        );
        assert_eq!(media[3]["city"], "Paris");
        // A kind v5 does not know: the base class, its unknown member kept where it was.
        assert_eq!(
            media[5],
            json!({"id": "cm-u", "@type": "ContactMedium", "mediumType": "pigeon",
                   "contactType": "home", "characteristic": {"loft": "north tower"}})
        );
        assert_eq!(
            v5["partyCharacteristic"][0]["@type"],
            "StringCharacteristic"
        );
        assert_eq!(
            v5["relatedParty"][0],
            json!({"role": "employer", "@type": "RelatedPartyOrPartyRole",
                   "partyOrPartyRole": {"id": "128", "href": "/tmf-api/party/v4/organization/128",
                                        "name": "Coffee", "@referredType": "Organization",
                                        "@type": "PartyRef"}})
        );
        assert_eq!(
            v5["externalReference"][0],
            json!({"id": "http://facebook.com/1", "externalIdentifierType": "facebookId",
                   "@type": "ExternalIdentifier"})
        );
    }

    #[test]
    fn a_v5_contact_medium_reads_as_v4_with_a_medium_type_and_a_characteristic() {
        let retrieved = example("Individual_retrieve_example_response");
        let v4 = read(&retrieved, ResourceType::Individual, SpecVersion::V4);
        assert_eq!(
            v4["contactMedium"][0],
            json!({"preferred": true, "mediumType": "email",
                   "validFor": {"startDateTime": "2017-03-15T07:49:25.246Z"},
                   "characteristic": {"emailAddress": "jane.lamborgizzia@gmail.com"}})
        );
        assert_eq!(
            v4["contactMedium"][1]["characteristic"]["city"],
            "Morristown"
        );
        assert_eq!(
            v4["relatedParty"][0],
            json!({"role": "employer", "@type": "RelatedPartyRefOrPartyRoleRef", "id": "128",
                   "href": "https://serverRoot/tmf-api/party/v5/organization/128",
                   "name": "Coffee Do Brazil Fair Trade Marketing Department",
                   "@referredType": "Organization"})
        );
        assert_eq!(
            v4["externalReference"][0],
            json!({"name": "http://facebook.com/17263635", "externalReferenceType": "facebookId"})
        );
        // Without a `mediumType`, the class names it; the base class named as `@baseType` is
        // v4's `@type`.
        let mut medium = object(&json!({"id": "9", "@type": "PhoneContactMedium",
            "@baseType": "ContactMedium", "phoneNumber": "+1", "contactType": "home"}));
        contact_medium_to_v4(&mut medium);
        assert_eq!(
            Value::Object(medium),
            json!({"id": "9", "@type": "ContactMedium", "mediumType": "phone",
                   "characteristic": {"phoneNumber": "+1", "contactType": "home"}})
        );
        // A party given by value names its class as the referred type.
        let mut related = object(&json!({"role": "owner", "@type": "RelatedPartyOrPartyRole",
            "partyOrPartyRole": {"id": "5", "@type": "Individual", "givenName": "Al"}}));
        related_party_to_v4(&mut related);
        assert_eq!(
            Value::Object(related),
            json!({"role": "owner", "id": "5", "@referredType": "Individual",
                   "partyOrPartyRole": {"@type": "Individual", "givenName": "Al"}})
        );
    }

    /// Removes from `after` each `@type` that `before` lacks at the same place.
    fn without_added_types(after: &mut Value, before: &Value) {
        match (after, before) {
            (Value::Object(a), Value::Object(b)) => {
                if !b.contains_key("@type") {
                    a.remove("@type");
                }
                for (k, v) in a.iter_mut() {
                    if let Some(old) = b.get(k) {
                        without_added_types(v, old);
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                a.iter_mut()
                    .zip(b)
                    .for_each(|(x, y)| without_added_types(x, y));
            }
            _ => {}
        }
    }

    #[test]
    fn a_v4_party_read_as_v5_and_back_is_the_v4_party_with_the_types_v5_requires() {
        for (resource, party) in v4_parties() {
            let v5 = read(&party, resource, SpecVersion::V5);
            assert_eq!(read(&v5, resource, SpecVersion::V5), v5, "v5 is idempotent");
            let mut back = read(&v5, resource, SpecVersion::V4);
            assert_eq!(
                read(&back, resource, SpecVersion::V4),
                back,
                "v4 is idempotent"
            );
            // The members whose forms differ come back exactly, but for the contact medium of
            // no known kind and the characteristic of no typed value, which keep the base
            // class v5 gave them (v4's class as well).
            for member in ["relatedParty", "externalReference"] {
                assert_eq!(back[member], party[member], "{member}");
            }
            for member in ["contactMedium", "partyCharacteristic"] {
                let elements = back[member].as_array().unwrap();
                for (got, sent) in elements.iter().zip(party[member].as_array().unwrap()) {
                    let mut expected = sent.clone();
                    if sent["mediumType"] == "pigeon" {
                        expected["@type"] = json!("ContactMedium");
                    }
                    if sent["name"] == "mixed" {
                        expected["@type"] = json!("Characteristic");
                    }
                    assert_eq!(*got, expected, "{member}");
                }
            }
            // Elsewhere, v5's required `@type` names the class v4 gives the same member.
            without_added_types(&mut back, &party);
            assert_eq!(back, party);
        }
    }

    #[test]
    fn medium_types_are_read_without_case_or_separators() {
        for (given, kind) in [
            ("email", Some(Medium::Email)),
            ("E-Mail", Some(Medium::Email)),
            ("Telephone Number", Some(Medium::Phone)),
            ("mobile", Some(Medium::Phone)),
            ("fax", Some(Medium::Fax)),
            ("postalAddress", Some(Medium::Address)),
            ("postal_address", Some(Medium::Address)),
            ("social", Some(Medium::Social)),
            ("pigeon", None),
            ("", None),
        ] {
            assert_eq!(Medium::from_medium_type(given), kind, "{given:?}");
        }
        for kind in Medium::ALL {
            assert_eq!(Medium::from_medium_type(kind.medium_type()), Some(kind));
            assert_eq!(Medium::from_v5_type(kind.v5_type()), Some(kind));
        }
    }

    /// Every v4 contact medium made of: any subset of the characteristic's members (one of
    /// each kind, and `contactType`), with or without a characteristic member v5 does not
    /// define, any of eight `mediumType`s (none, each kind's, a spelling, an unknown one),
    /// with no `@type`, v4's own, or a subclass, with or without `id`, `preferred` and
    /// `validFor`: 6,144 elements.
    fn v4_contact_media() -> Vec<Map<String, Value>> {
        let groups: [&[(&str, &str)]; 6] = [
            &[("emailAddress", "a@example.com")],
            &[("phoneNumber", "+1 555")],
            &[("faxNumber", "+1 556")],
            &[("street1", "1 Main St"), ("city", "Springfield")],
            &[("socialNetworkId", "@a")],
            &[("contactType", "work")],
        ];
        let medium_types = [
            None,
            Some("email"),
            Some("phone"),
            Some("Telephone Number"),
            Some("fax"),
            Some("postalAddress"),
            Some("social"),
            Some("pigeon"),
        ];
        let mut media = Vec::new();
        for subset in 0..1u32 << groups.len() {
            for medium_type in medium_types {
                for class in [None, Some("ContactMedium"), Some("PagerContactMedium")] {
                    for unknown in [false, true] {
                        for envelope in [false, true] {
                            let mut characteristic = Map::new();
                            for (i, group) in groups.iter().enumerate() {
                                if subset & (1 << i) != 0 {
                                    for (k, v) in *group {
                                        characteristic.insert((*k).into(), json!(v));
                                    }
                                }
                            }
                            if unknown {
                                characteristic
                                    .insert("@type".into(), json!("MediumCharacteristic"));
                                characteristic.insert("loft".into(), json!("north"));
                            }
                            let mut m = Map::new();
                            if !characteristic.is_empty() {
                                m.insert("characteristic".into(), Value::Object(characteristic));
                            }
                            if let Some(t) = medium_type {
                                m.insert("mediumType".into(), json!(t));
                            }
                            if let Some(c) = class {
                                m.insert("@type".into(), json!(c));
                            }
                            if envelope {
                                m.insert("id".into(), json!(format!("cm-{}", media.len())));
                                m.insert("preferred".into(), json!(true));
                                m.insert(
                                    "validFor".into(),
                                    json!({"startDateTime": "2020-01-01T00:00:00Z"}),
                                );
                            }
                            media.push(m);
                        }
                    }
                }
            }
        }
        media
    }

    #[test]
    fn every_v4_contact_medium_is_valid_v5_and_comes_back_from_it() {
        let media = v4_contact_media();
        assert_eq!(media.len(), 6144);
        for sent in media {
            let shown = Value::Object(sent.clone());
            let mut same = sent.clone();
            contact_medium_to_v4(&mut same);
            assert_eq!(same, sent, "v4 is left as is");
            let mut v5 = sent.clone();
            contact_medium_to_v5(&mut v5);
            let v5_value = Value::Object(v5.clone());
            let found = errors(SpecVersion::V5, "ContactMedium", &v5_value);
            assert!(found.is_empty(), "{shown} → {v5_value}: {found:?}");
            assert_eq!(v5.get("id"), sent.get("id"), "{shown}");
            let mut again = v5.clone();
            contact_medium_to_v5(&mut again);
            assert_eq!(again, v5, "v5 is left as is: {shown}");
            // The kind `mediumType` names is the class, unless v4 named a subclass of its own.
            let named = sent
                .get("mediumType")
                .and_then(Value::as_str)
                .and_then(Medium::from_medium_type);
            if let (Some(kind), None | Some("ContactMedium")) = (named, type_of(&sent)) {
                assert_eq!(type_of(&v5), Some(kind.v5_type()), "{shown}");
            }
            let mut back = v5.clone();
            contact_medium_to_v4(&mut back);
            // What the round trip adds: the `mediumType` of the class a v4 element without one
            // was given, and the base class of one of no known kind without a `@type`.
            let mut expected = sent.clone();
            if let Some(kind) = type_of(&v5).and_then(Medium::from_v5_type)
                && !sent.contains_key("mediumType")
            {
                expected.insert("mediumType".into(), kind.medium_type().into());
            }
            if type_of(&v5) == Some("ContactMedium") && !sent.contains_key("@type") {
                expected.insert("@type".into(), "ContactMedium".into());
            }
            assert_eq!(back, expected, "{shown} → {v5_value}");
        }
    }

    #[test]
    fn characteristics_are_typed_by_their_value() {
        for (value, class) in [
            (json!("a"), "StringCharacteristic"),
            (json!(true), "BooleanCharacteristic"),
            (json!(125), "IntegerCharacteristic"),
            (json!(0.5), "NumberCharacteristic"),
            (json!({"k": 1}), "ObjectCharacteristic"),
            (json!(["a"]), "StringArrayCharacteristic"),
            (json!([1, 2]), "IntegerArrayCharacteristic"),
            (json!([1, 0.5]), "NumberArrayCharacteristic"),
            (json!([{}]), "ObjectArrayCharacteristic"),
            (json!([]), "Characteristic"),
            (json!([1, "a"]), "Characteristic"),
            (Value::Null, "Characteristic"),
        ] {
            assert_eq!(characteristic_type(Some(&value)), class, "{value}");
            let typed = json!({"name": "n", "value": value, "@type": class});
            let found = errors(SpecVersion::V5, "Characteristic", &typed);
            assert!(found.is_empty(), "{typed}: {found:?}");
        }
    }

    const T0: u64 = 1_700_000_000_000;

    fn region() -> Ingest<MemoryStore, MemoryDeadLetters> {
        Ingest::new(
            MemoryStore::new(),
            MemoryDeadLetters::default(),
            IngestConfig::new("eu"),
        )
    }

    fn get(ingest: &Ingest<MemoryStore, MemoryDeadLetters>, path: &str) -> Value {
        let answer = handle(
            ingest,
            None,
            "acme",
            &ApiRequest::new("GET", path),
            T0 + 10,
            T0 + 30_000,
        );
        assert_eq!(answer.response.status, 200, "{:?}", answer.response.body);
        answer.response.body.unwrap()
    }

    /// A region in which `body` was posted to `path` (a listener or a resource route): 201.
    fn posted(path: &str, body: &Value) -> Ingest<MemoryStore, MemoryDeadLetters> {
        let ingest = region();
        let post = ApiRequest::new("POST", path).with_body(body.to_string());
        let answer = handle(&ingest, None, "acme", &post, T0, T0 + 30_000);
        assert_eq!(answer.response.status, 201, "{:?}", answer.response.body);
        ingest
    }

    #[test]
    fn a_party_written_on_a_v4_route_reads_on_a_v5_route_as_valid_v5() {
        let event = json!({
            "eventId": "v4-create", "eventTime": "2025-01-01T00:00:00Z",
            "eventType": "IndividualCreateEvent",
            "event": {"individual": v4_individual()}
        });
        let ingest = posted("/tmf-api/party/v4/listener/individualCreateEvent", &event);

        let v5 = get(&ingest, "/tmf-api/party/v5/individual/v4-ann");
        let found = errors(SpecVersion::V5, "Individual", &v5);
        assert!(found.is_empty(), "{found:?}\n{v5:#}");
        assert_eq!(v5["contactMedium"][0]["@type"], "EmailContactMedium");
        let listed = get(&ingest, "/tmf-api/party/v5/individual");
        assert_eq!(listed[0], v5);

        // The same party on the v4 route: as written, with the route's link.
        let mut v4 = get(&ingest, "/tmf-api/party/v4/individual/v4-ann");
        assert_eq!(v4["href"], "/tmf-api/party/v4/individual/v4-ann");
        v4.as_object_mut().unwrap().remove("href");
        assert_eq!(v4, v4_individual());
    }

    /// A region in which a v4 client created the v4 party `v4-ann` with `POST` on the v4
    /// resource route (201).
    fn v4_ann_posted_on_v4() -> Ingest<MemoryStore, MemoryDeadLetters> {
        posted("/tmf-api/party/v4/individual", &v4_individual())
    }

    /// A JSON Patch names the party as its route shows it: on a party written in v4 form, a v5
    /// client's path into a v5 contact medium applies, and both routes then read the change.
    #[test]
    fn a_json_patch_addresses_the_party_in_the_routes_release() {
        let ingest = v4_ann_posted_on_v4();
        let v5 = get(&ingest, "/tmf-api/party/v5/individual/v4-ann");
        assert_eq!(v5["contactMedium"][0]["@type"], "EmailContactMedium");
        let patch = json!([{"op": "replace", "path": "/contactMedium/0/emailAddress", "value": "ann@new.example"}]);
        let request = ApiRequest::new("PATCH", "/tmf-api/party/v5/individual/v4-ann")
            .with_header("content-type", "application/json-patch+json")
            .with_body(patch.to_string());
        let answer = handle(&ingest, None, "acme", &request, T0 + 1, T0 + 30_000);
        assert_eq!(answer.response.status, 200, "{:?}", answer.response.body);
        let v5 = get(&ingest, "/tmf-api/party/v5/individual/v4-ann");
        assert_eq!(v5["contactMedium"][0]["emailAddress"], "ann@new.example");
        let v4 = get(&ingest, "/tmf-api/party/v4/individual/v4-ann");
        assert_eq!(
            v4["contactMedium"][0]["characteristic"]["emailAddress"],
            "ann@new.example"
        );
        let found = errors(SpecVersion::V4, "Individual", &v4);
        assert!(found.is_empty(), "{found:?}\n{v4:#}");
    }

    /// A v4 client's `POST` on the v4 resource route, with a v4 body: created (the write's
    /// event is a v4 envelope, checked against v4), and read as valid v5 on the v5 route.
    #[test]
    fn a_v4_body_posted_on_the_v4_route_is_created_and_reads_as_valid_v5() {
        let ingest = v4_ann_posted_on_v4();
        let v5 = get(&ingest, "/tmf-api/party/v5/individual/v4-ann");
        let found = errors(SpecVersion::V5, "Individual", &v5);
        assert!(found.is_empty(), "{found:?}\n{v5:#}");
    }

    #[test]
    fn a_party_written_on_a_v5_route_reads_on_a_v4_route_as_valid_v4() {
        let ingest = posted(
            "/tmf-api/party/v5/individual",
            &example("Individual_retrieve_example_response"),
        );
        let v4 = get(&ingest, "/tmf-api/party/v4/individual/42");
        let found = errors(SpecVersion::V4, "Individual", &v4);
        assert!(found.is_empty(), "{found:?}\n{v4:#}");
        assert_eq!(v4["contactMedium"][0]["mediumType"], "email");
        assert_eq!(
            v4["contactMedium"][0]["characteristic"]["emailAddress"],
            "jane.lamborgizzia@gmail.com"
        );
    }
}
