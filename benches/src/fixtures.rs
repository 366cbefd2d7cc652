//! The parties the benchmarks resolve, built from the official TMF632 v5 examples through the
//! same write functions the hosts use: a base created in "eu", then "eu" and "na" each change
//! different fields and elements of it concurrently.

use host_core::relation;
use party_model::{new_party, tick};
use policy_types::writes::Writes;
use policy_types::{Context, PartyVersion, Relation, ResourceType};
use serde_json::{Value, json};

/// The tenant every benchmark party belongs to.
pub const TENANT: &str = "acme";
/// The region that resolves (and whose version is "local").
pub const REGION: &str = "eu";
/// Wall-clock origin of the writes (ms since the epoch).
const T0: u64 = 1_700_000_000_000;

// The integration tests' reading of the specification's examples, shared by file: depending
// on that crate would build its test guests with every benchmark build.
#[path = "../../tests/src/specs.rs"]
mod specs;
pub use specs::{example, specs_dir};

/// The three party sizes of the issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A few scalar fields.
    Small,
    /// The full v5 Individual example (`Individual_retrieve_example_response.json`).
    Typical,
    /// The example with hundreds of contact media and characteristics (~100 KB).
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Typical, Size::Large];

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Typical => "typical",
            Size::Large => "large",
        }
    }
}

/// Contact media and characteristics of the large party.
pub const LARGE_ELEMENTS: usize = 300;

/// Two versions of one party as a region holds them when a replicated one arrives.
#[derive(Clone, Debug)]
pub struct Pair {
    pub local: PartyVersion,
    pub remote: PartyVersion,
    /// The writes behind each version's fields (`policy_types::writes`), where the fixture
    /// records them ([`concurrent`]); empty (unknown) elsewhere.
    pub writes: [Writes; 2],
}

impl Pair {
    pub fn relation(&self) -> Relation {
        relation(&self.local, &self.remote)
    }

    /// The context a host hands the policy for this pair.
    pub fn context(&self) -> Context {
        Context {
            tenant: self.local.tenant.clone(),
            resolving_region: REGION.to_owned(),
            relation: self.relation(),
            config: "{}".to_owned(),
        }
    }
}

/// One region's writer, writing at `T0 + at` ms and recording its writes.
struct Writer {
    clock: party_model::Writer,
    writes: Writes,
}

impl Writer {
    fn new(region: &str) -> Self {
        Self::after(region, Writes::default())
    }

    /// A writer of a version whose earlier writes `writes` records.
    fn after(region: &str, writes: Writes) -> Self {
        Writer {
            clock: party_model::Writer::new(region),
            writes,
        }
    }

    fn write(&mut self, v: &mut PartyVersion, at: u64, members: &Value) {
        self.clock
            .write_recorded(v, &mut self.writes, T0 + at, members);
    }
}

/// The TMF body of the base party of each size.
pub fn base_body(size: Size) -> Value {
    match size {
        Size::Small => json!({
            "id": "42", "@type": "Individual", "givenName": "Jane",
            "familyName": "Lamborgizzia", "gender": "female", "status": "initialized"
        }),
        Size::Typical => example("Individual_retrieve_example_response"),
        Size::Large => {
            let mut body = example("Individual_retrieve_example_response");
            body["contactMedium"] = Value::Array((0..LARGE_ELEMENTS).map(contact_medium).collect());
            body["partyCharacteristic"] =
                Value::Array((0..LARGE_ELEMENTS).map(characteristic).collect());
            body
        }
    }
}

/// The i-th contact medium of the large party, shaped like the example's three kinds.
fn contact_medium(i: usize) -> Value {
    let mut m = match i % 3 {
        0 => json!({"@type": "EmailContactMedium", "mediumType": "email",
            "emailAddress": format!("jane.lamborgizzia.{i}@example.com")}),
        1 => json!({"@type": "PhoneContactMedium", "mediumType": "mobile",
            "phoneNumber": format!("+1 973 555 {:04}", i % 10_000)}),
        _ => json!({"@type": "GeographicAddressContactMedium", "mediumType": "postalAddress",
            "city": "Morristown", "country": "USA", "postCode": format!("{:05}", 7000 + i),
            "stateOrProvince": "New Jersey", "street1": format!("{} Headquarters Plaza", 100 + i)}),
    };
    m["id"] = json!(format!("cm-{i}"));
    m["preferred"] = json!(i == 0);
    m["validFor"] = json!({"startDateTime": "2017-03-15T07:49:25.246Z"});
    m
}

/// The i-th characteristic of the large party.
fn characteristic(i: usize) -> Value {
    json!({"id": format!("pc-{i}"), "@type": "StringCharacteristic", "valueType": "string",
        "name": format!("preference-{i}"), "value": format!("value {i}")})
}

/// The version created in "eu" from the base body.
pub fn base(size: Size) -> PartyVersion {
    base_recorded(size).0
}

/// [`base`], with its writes.
fn base_recorded(size: Size) -> (PartyVersion, Writes) {
    let body = base_body(size);
    let id = body["id"].as_str().expect("the example has an id");
    let mut v = new_party(TENANT, id, ResourceType::Individual, "eu");
    let mut w = Writer::new("eu");
    w.write(&mut v, 0, &body);
    (v, w.writes)
}

/// Concurrent versions: "eu" (local) and "na" (remote) change different things of one base.
pub fn concurrent(size: Size) -> Pair {
    let base_body = base_body(size);
    let (base, base_writes) = base_recorded(size);
    let (mut eu, mut na) = (base.clone(), base);
    let mut w_eu = Writer::after("eu", base_writes.clone());
    let mut w_na = Writer::after("na", base_writes);
    match size {
        Size::Small => {
            w_eu.write(
                &mut eu,
                1_000,
                &json!({"familyName": "Smith", "gender": "other"}),
            );
            w_na.write(
                &mut na,
                1_001,
                &json!({"status": "validated", "givenName": "Janie"}),
            );
        }
        Size::Typical => {
            // EU: a new email address and family name. NA: the official attribute-change event
            // (maritalStatus) and a new phone number.
            let mut media = base_body["contactMedium"].as_array().unwrap().clone();
            media[0]["emailAddress"] = json!("jane.l@newmail.example");
            w_eu.write(
                &mut eu,
                1_000,
                &json!({"contactMedium": media, "familyName": "Smith"}),
            );
            let event = example("IndividualAttributeValueChangeEvent_request");
            w_na.write(&mut na, 1_001, &event["event"]["individual"]);
            let mut media = base_body["contactMedium"].as_array().unwrap().clone();
            media.push(
                json!({"@type": "PhoneContactMedium", "mediumType": "mobile",
                "phoneNumber": "+1 973 555 0100", "preferred": false}),
            );
            w_na.write(&mut na, 1_002, &json!({"contactMedium": media}));
        }
        Size::Large => {
            // EU: changes 10 contact media, removes 5, renames. NA: changes 10 characteristics,
            // adds 5 contact media, validates.
            let mut media = base_body["contactMedium"].as_array().unwrap().clone();
            for m in media.iter_mut().take(30).step_by(3) {
                m["emailAddress"] =
                    json!(format!("changed.{}@eu.example", m["id"].as_str().unwrap()));
            }
            media.drain(100..105);
            w_eu.write(
                &mut eu,
                1_000,
                &json!({"contactMedium": media, "familyName": "Smith"}),
            );
            let mut chars = base_body["partyCharacteristic"].as_array().unwrap().clone();
            for c in chars.iter_mut().skip(200).take(10) {
                c["value"] = json!("changed in na");
            }
            let mut media = base_body["contactMedium"].as_array().unwrap().clone();
            media.extend((LARGE_ELEMENTS..LARGE_ELEMENTS + 5).map(contact_medium));
            let members = json!({"partyCharacteristic": chars, "contactMedium": media,
                "status": "initialized"});
            w_na.write(&mut na, 1_001, &members);
        }
    }
    Pair {
        local: eu,
        remote: na,
        writes: [w_eu.writes, w_na.writes],
    }
}

/// Versions where "na" (remote) already holds "eu"'s write and adds one: remote dominates.
pub fn dominated(size: Size) -> Pair {
    let mut eu = base(size);
    Writer::new("eu").write(&mut eu, 1_000, &json!({"familyName": "Smith"}));
    let mut na = eu.clone();
    Writer::new("na").write(&mut na, 1_005, &json!({"nationality": "French"}));
    Pair {
        local: eu,
        remote: na,
        writes: Default::default(),
    }
}

/// Concurrent versions with no fields at all: what a call costs before any party data.
pub fn empty() -> Pair {
    let mut eu = new_party(TENANT, "42", ResourceType::Individual, "eu");
    tick(&mut eu, "eu");
    let mut na = new_party(TENANT, "42", ResourceType::Individual, "na");
    tick(&mut na, "na");
    Pair {
        local: eu,
        remote: na,
        writes: Default::default(),
    }
}

/// Size of the party's visible TMF JSON, in bytes.
pub fn tmf_bytes(v: &PartyVersion) -> usize {
    party_model::to_tmf(v).map_or(0, |t| t.to_string().len())
}

/// What the canonical ABI copies into the guest for one version: every string is one
/// `cabi_realloc` call into the guest and one copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoundaryCount {
    pub strings: usize,
    /// Region names inside stamps, dots and the version vector.
    pub regions: usize,
    /// JSON texts of scalar fields and element entries.
    pub values: usize,
    pub bytes: usize,
}

impl std::ops::Add for BoundaryCount {
    type Output = BoundaryCount;
    fn add(self, o: BoundaryCount) -> BoundaryCount {
        BoundaryCount {
            strings: self.strings + o.strings,
            regions: self.regions + o.regions,
            values: self.values + o.values,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Counts the strings of one version as the canonical ABI lowers them.
pub fn boundary_strings(v: &PartyVersion) -> BoundaryCount {
    use policy_types::FieldValue;
    let mut c = BoundaryCount {
        strings: 3,
        bytes: v.tenant.len() + v.party_id.len() + v.origin_region.len(),
        ..BoundaryCount::default()
    };
    let region = |c: &mut BoundaryCount, r: &str| {
        c.strings += 1;
        c.regions += 1;
        c.bytes += r.len();
    };
    for d in &v.version_vector {
        region(&mut c, &d.region);
    }
    if let Some(t) = &v.tombstone {
        region(&mut c, &t.region);
    }
    for f in &v.fields {
        c.strings += 1;
        c.bytes += f.name.len();
        region(&mut c, &f.stamp.region);
        match &f.value {
            FieldValue::Json(t) => {
                c.strings += 1;
                c.values += 1;
                c.bytes += t.len();
            }
            FieldValue::Elements(es) => {
                for e in es {
                    c.strings += 1;
                    c.bytes += e.key.len();
                    for entry in &e.entries {
                        c.strings += 1;
                        c.values += 1;
                        c.bytes += entry.value.len();
                        region(&mut c, &entry.stamp.region);
                        region(&mut c, &entry.dot.region);
                    }
                }
            }
        }
    }
    c
}
