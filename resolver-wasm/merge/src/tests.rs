//! The merge's laws on generated concurrent histories, and its rules on hand-made cases.

use super::*;
use party_model::generate::{Plan, plan};
use party_model::{Writer, new_party, to_tmf};
use policy_types::{PartyVersion, ResourceType, materialize};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_ok(text: &str) -> Result<(), String> {
    serde_json::from_str::<Value>(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The party a merge produces, as the host would materialise it.
fn merged(config: &Config, a: &PartyVersion, b: &PartyVersion) -> PartyVersion {
    let m = merge(config, a, b);
    materialize(a, b, &m, "test", &json_ok).unwrap_or_else(|e| panic!("invalid merge result: {e}"))
}

const CONFIGS: [Config; 2] = [
    Config {
        delete_rule: DeleteRule::DeleteWins,
    },
    Config {
        delete_rule: DeleteRule::UpdateResurrects,
    },
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn commutative(p in plan(2, 5), c in 0usize..2) {
        let v = p.build();
        prop_assert_eq!(merged(&CONFIGS[c], &v[0], &v[1]), merged(&CONFIGS[c], &v[1], &v[0]));
    }

    #[test]
    fn idempotent(p in plan(2, 5), c in 0usize..2) {
        let v = p.build();
        prop_assert_eq!(&merged(&CONFIGS[c], &v[0], &v[0]).fields, &v[0].fields);
        let m = merged(&CONFIGS[c], &v[0], &v[1]);
        prop_assert_eq!(merged(&CONFIGS[c], &m, &m), m.clone());
        // Merging again with an input changes nothing: the merge is a join.
        prop_assert_eq!(merged(&CONFIGS[c], &m, &v[1]), m);
    }

    #[test]
    fn associative(p in plan(3, 4), c in 0usize..2) {
        let v = p.build();
        let cfg = &CONFIGS[c];
        let left = merged(cfg, &merged(cfg, &v[0], &v[1]), &v[2]);
        let right = merged(cfg, &v[0], &merged(cfg, &v[1], &v[2]));
        let middle = merged(cfg, &merged(cfg, &v[0], &v[2]), &v[1]);
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(&left, &middle);
    }

    #[test]
    fn every_result_is_valid_and_covers_both(p in plan(2, 5), c in 0usize..2) {
        let v = p.build();
        let m = merged(&CONFIGS[c], &v[0], &v[1]);
        prop_assert_eq!(
            compare_vectors_ok(&m, &v[0]) && compare_vectors_ok(&m, &v[1]),
            true
        );
    }
}

fn compare_vectors_ok(merged: &PartyVersion, input: &PartyVersion) -> bool {
    matches!(
        policy_types::compare_vectors(&merged.version_vector, &input.version_vector),
        policy_types::VectorOrder::Dominates | policy_types::VectorOrder::Equal
    )
}

/// A region writing every 10 ms.
struct Region {
    writer: Writer,
    now: u64,
}

impl Region {
    /// A region whose clock reads 2 s, after every base version's writes.
    fn new(name: &str) -> Self {
        Region::at(name, 2_000)
    }

    fn at(name: &str, now: u64) -> Self {
        Region {
            writer: Writer::new(name),
            now,
        }
    }

    fn write(&mut self, v: &mut PartyVersion, members: Value) {
        self.now += 10;
        self.writer.write(v, self.now, &members);
    }
}

fn base() -> PartyVersion {
    let mut v = new_party("acme", "42", ResourceType::Individual, "eu");
    Region::at("eu", 1_000).write(
        &mut v,
        json!({"givenName": "Jane", "familyName": "Smith", "status": "initialized",
               "contactMedium": [email("1", "jane@old.example"), phone("2")]}),
    );
    v
}

/// A contact medium element: an email address.
fn email(id: &str, address: &str) -> Value {
    json!({"id": id, "mediumType": "email", "characteristic": {"emailAddress": address}})
}

/// A contact medium element: the base party's phone number.
fn phone(id: &str) -> Value {
    json!({"id": id, "mediumType": "phone", "characteristic": {"phoneNumber": "+44 1"}})
}

fn tmf(v: &PartyVersion) -> Value {
    to_tmf(v).unwrap_or(Value::Null)
}

/// `base` written once in EU and once in NA (each region's clock at 2 s), merged under the
/// default configuration; as TMF JSON.
fn one_write_each(base: &PartyVersion, eu: Value, na: Value) -> Value {
    let (mut eu_v, mut na_v) = (base.clone(), base.clone());
    Region::new("eu").write(&mut eu_v, eu);
    Region::new("na").write(&mut na_v, na);
    tmf(&merged(&Config::default(), &eu_v, &na_v))
}

fn ids(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn email_change_and_status_change_both_survive() {
    let m = one_write_each(
        &base(),
        json!({"contactMedium": [email("1", "jane@new.example"), phone("2")]}),
        json!({"status": "validated"}),
    );
    assert_eq!(m["status"], "validated");
    assert_eq!(
        m["contactMedium"][0]["characteristic"]["emailAddress"],
        "jane@new.example"
    );
}

#[test]
fn removed_element_does_not_come_back() {
    let m = one_write_each(
        &base(),
        json!({"contactMedium": [phone("2")]}),
        json!({"givenName": "Janet"}),
    );
    assert_eq!(
        ids(&m, "contactMedium"),
        ["2"],
        "NA still holds element 1, but EU removed it"
    );
    assert_eq!(m["givenName"], "Janet");
}

#[test]
fn concurrent_change_beats_removal_and_additions_union() {
    // EU removes element 1 and adds 3; NA changes element 1 and adds 4.
    let m = one_write_each(
        &base(),
        json!({"contactMedium": [phone("2"), email("3", "eu@example")]}),
        json!({"contactMedium": [
            email("1", "changed@example"),
            phone("2"),
            email("4", "na@example"),
        ]}),
    );
    let mut got = ids(&m, "contactMedium");
    got.sort();
    assert_eq!(
        got,
        ["1", "2", "3", "4"],
        "a concurrent change survives a removal"
    );
    let one = m["contactMedium"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "1");
    let address = &one.expect("element 1")["characteristic"]["emailAddress"];
    assert_eq!(address, "changed@example");
}

#[test]
fn terminal_status_is_not_undone_by_a_later_earlier_state() {
    let (mut eu_v, mut na_v) = (base(), base());
    Region::new("eu").write(&mut eu_v, json!({"status": "deceaded"}));
    let mut na = Region::new("na");
    na.now = 9_000; // later wall clock, earlier lifecycle state
    na.write(&mut na_v, json!({"status": "validated"}));
    let m = tmf(&merged(&Config::default(), &eu_v, &na_v));
    assert_eq!(m["status"], "deceaded");
}

#[test]
fn delete_wins_by_default_and_update_resurrects_when_configured() {
    let (mut eu_v, mut na_v) = (base(), base());
    Writer::new("eu").delete(&mut eu_v, 2_500);
    let mut na = Region::new("na");
    na.now = 3_000;
    na.write(&mut na_v, json!({"givenName": "Janet"}));

    let deleted = merged(&Config::default(), &eu_v, &na_v);
    assert!(to_tmf(&deleted).is_none(), "delete wins: {deleted:?}");

    let resurrect = Config {
        delete_rule: DeleteRule::UpdateResurrects,
    };
    let back = tmf(&merged(&resurrect, &eu_v, &na_v));
    assert_eq!(back["givenName"], "Janet");
    assert!(
        back.get("familyName").is_none(),
        "fields written before the delete stay deleted"
    );
}

#[test]
fn v4_elements_without_ids_merge_by_content() {
    let start = json!({"partyCharacteristic": [{"name": "hobby", "value": "tennis"}, {"name": "hobby", "value": "football"}]});
    let mut b = new_party("acme", "42", ResourceType::Individual, "eu");
    Region::at("eu", 1_000).write(&mut b, start);
    let m = one_write_each(
        &b,
        json!({"partyCharacteristic": [{"name": "hobby", "value": "tennis"}]}),
        json!({"partyCharacteristic": [
        {"name": "hobby", "value": "tennis"}, {"name": "hobby", "value": "football"}, {"name": "hobby", "value": "chess"}]}),
    );
    let values: Vec<&str> = m["partyCharacteristic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["tennis", "chess"],
        "football was removed in EU, chess added in NA"
    );
}

#[test]
fn dominated_and_mismatched_inputs() {
    let v = base();
    let ctx = |relation| Context {
        tenant: "acme".into(),
        resolving_region: "eu".into(),
        relation,
        config: "{}".into(),
    };
    assert_eq!(
        resolve(&ctx(Relation::LocalDominates), &v, &v),
        Resolution::KeepLocal
    );
    assert_eq!(
        resolve(&ctx(Relation::RemoteDominates), &v, &v),
        Resolution::TakeRemote
    );
    let mut other = v.clone();
    other.party_id = "43".into();
    assert!(
        matches!(resolve(&ctx(Relation::Concurrent), &v, &other), Resolution::Reject(r) if r.contains("different parties"))
    );
    let bad = Context {
        config: "{\"deleteRule\": \"maybe\"}".into(),
        ..ctx(Relation::Concurrent)
    };
    assert!(matches!(resolve(&bad, &v, &v), Resolution::Reject(r) if r.contains("deleteRule")));
}

#[test]
fn plan_builds_concurrent_versions() {
    let p = Plan {
        resource: ResourceType::Organization,
        v4: true,
        base_elements: [2, 1, 3, 0],
        skew: vec![0, 3],
        branches: vec![
            vec![party_model::generate::Op::SetStatus { status: 2 }],
            vec![party_model::generate::Op::Delete],
        ],
        apart: false,
    };
    let v = p.build();
    assert_eq!(
        policy_types::compare_vectors(&v[0].version_vector, &v[1].version_vector),
        policy_types::VectorOrder::Concurrent
    );
}
