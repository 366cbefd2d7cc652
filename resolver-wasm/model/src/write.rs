//! Writes to a party version: each write ticks the writing region's entry in the version
//! vector and stamps what it sets; a write stamped no later than what is stored is stale (an
//! out-of-order delivery) and changes nothing.

use crate::tmf::{canonical_json, element_key};
use policy_types::writes::Writes;
use policy_types::{Dot, Element, Entry, Field, FieldValue, Hlc, PartyVersion, ResourceType};
use serde_json::{Map, Value};

/// A region writing party versions with its own hybrid logical clock: stamp, tick, write, in
/// one call.
#[derive(Clone, Debug)]
pub struct Writer {
    clock: crate::HlcClock,
}

impl Writer {
    pub fn new(region: impl Into<String>) -> Self {
        Writer {
            clock: crate::HlcClock::new(region),
        }
    }

    pub fn region(&self) -> &str {
        self.clock.region()
    }

    /// Writes the members of `members` (a JSON object) at physical time `physical_ms`.
    pub fn write(
        &mut self,
        version: &mut PartyVersion,
        physical_ms: u64,
        members: &Value,
    ) -> WriteOutcome {
        let stamp = self.clock.now(physical_ms);
        let dot = tick(version, self.clock.region());
        let members = members
            .as_object()
            .expect("the members of a write are a JSON object");
        write_fields(version, members, &stamp, &dot)
    }

    /// Deletes the party at physical time `physical_ms`.
    pub fn delete(&mut self, version: &mut PartyVersion, physical_ms: u64) -> bool {
        let stamp = self.clock.now(physical_ms);
        tick(version, self.clock.region());
        delete(version, &stamp)
    }

    /// [`Writer::write`], recording the write behind what it set in `writes`.
    pub fn write_recorded(
        &mut self,
        version: &mut PartyVersion,
        writes: &mut Writes,
        physical_ms: u64,
        members: &Value,
    ) -> WriteOutcome {
        let context = version.version_vector.clone();
        let outcome = self.write(version, physical_ms, members);
        if !outcome.applied.is_empty() {
            let dot = own_dot(version, self.clock.region());
            writes.record(version, &outcome.applied, false, &dot, &context);
        }
        outcome
    }

    /// [`Writer::delete`], recording the delete in `writes`.
    pub fn delete_recorded(
        &mut self,
        version: &mut PartyVersion,
        writes: &mut Writes,
        physical_ms: u64,
    ) -> bool {
        let context = version.version_vector.clone();
        let deleted = self.delete(version, physical_ms);
        if deleted {
            let dot = own_dot(version, self.clock.region());
            writes.record(version, &[], true, &dot, &context);
        }
        deleted
    }
}

/// The dot of `region`'s latest write in `version`'s vector.
fn own_dot(version: &PartyVersion, region: &str) -> Dot {
    version
        .version_vector
        .iter()
        .find(|d| d.region == region)
        .cloned()
        .expect("a region that wrote has an entry in the vector")
}

/// What a write changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Fields the write set.
    pub applied: Vec<String>,
    /// Fields the write carried but did not set, because the stored value is stamped later.
    pub stale: Vec<String>,
}

/// An empty version of a party, before its first write.
pub fn new_party(
    tenant: &str,
    party_id: &str,
    resource_type: ResourceType,
    region: &str,
) -> PartyVersion {
    PartyVersion {
        tenant: tenant.to_owned(),
        party_id: party_id.to_owned(),
        resource_type,
        fields: Vec::new(),
        version_vector: Vec::new(),
        tombstone: None,
        origin_region: region.to_owned(),
    }
}

/// Counts one more write by `region` in the version vector; returns the dot naming that write.
pub fn tick(version: &mut PartyVersion, region: &str) -> Dot {
    let vv = &mut version.version_vector;
    let counter = match vv.binary_search_by(|d| d.region.as_str().cmp(region)) {
        Ok(i) => {
            vv[i].counter += 1;
            vv[i].counter
        }
        Err(i) => {
            vv.insert(i, Dot::new(region, 1));
            1
        }
    };
    version.origin_region = region.to_owned();
    Dot::new(region, counter)
}

/// Sets the top-level members of `members` (all but `id`) stamped `stamp`, produced by the
/// write `dot`. Fields stored with a later (or the same) stamp are left alone, and so is every
/// field when the party was deleted at a later (or the same) stamp: a late delivery of a write
/// older than the delete must not bring back what the delete removed.
pub fn write_fields(
    version: &mut PartyVersion,
    members: &Map<String, Value>,
    stamp: &Hlc,
    dot: &Dot,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    for (name, value) in members {
        if name == "id" {
            continue;
        }
        let at = version
            .fields
            .binary_search_by(|f| f.name.as_str().cmp(name));
        if is_stale(version, at.ok().map(|i| &version.fields[i]), stamp) {
            outcome.stale.push(name.clone());
            continue;
        }
        let previous = at.ok().map(|i| &version.fields[i].value);
        let new_value = field_value(value, previous, stamp, dot);
        let field = Field {
            name: name.clone(),
            stamp: stamp.clone(),
            value: new_value,
        };
        match at {
            Ok(i) => version.fields[i] = field,
            Err(i) => version.fields.insert(i, field),
        }
        outcome.applied.push(name.clone());
    }
    outcome
}

/// Whether a write stamped `stamp` of a field `version` holds as `field` (`None`: absent) is
/// stale, changing nothing: the field is stored with a later (or the same) stamp, or the party
/// was deleted at a later (or the same) one.
pub fn is_stale(version: &PartyVersion, field: Option<&Field>, stamp: &Hlc) -> bool {
    version.tombstone.as_ref().is_some_and(|t| t >= stamp)
        || field.is_some_and(|f| f.stamp >= *stamp)
}

/// Deletes the party at `stamp`: a tombstone, and only fields written after it are kept.
/// Returns false when a later delete is already recorded.
pub fn delete(version: &mut PartyVersion, stamp: &Hlc) -> bool {
    if version.tombstone.as_ref().is_some_and(|t| t >= stamp) {
        return false;
    }
    version.fields.retain(|f| f.stamp > *stamp);
    version.tombstone = Some(stamp.clone());
    true
}

fn is_object_array(value: &Value) -> Option<&Vec<Value>> {
    value
        .as_array()
        .filter(|items| items.iter().all(Value::is_object))
}

fn field_value(value: &Value, previous: Option<&FieldValue>, stamp: &Hlc, dot: &Dot) -> FieldValue {
    let Some(items) = is_object_array(value) else {
        return FieldValue::Json(canonical_json(value));
    };
    let previous: &[Element] = match previous {
        Some(FieldValue::Elements(e)) => e,
        _ => &[],
    };
    let mut elements: Vec<Element> = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let key = element_key(item);
        if elements.iter().any(|e| e.key == key) {
            continue; // the same identity twice in one write: the first stands
        }
        let text = canonical_json(item);
        let old = previous
            .binary_search_by(|e| e.key.as_str().cmp(&key))
            .ok()
            .and_then(|i| previous[i].visible());
        let entry = match old {
            // Unchanged: the element keeps the write that produced it. Concurrent entries it
            // had are settled by this write, which saw them.
            Some(e) if e.value == text => e.clone(),
            _ => Entry {
                value: text,
                stamp: stamp.clone(),
                dot: dot.clone(),
                position: position as u32,
            },
        };
        elements.push(Element {
            key,
            entries: vec![entry],
        });
    }
    elements.sort_by(|a, b| a.key.cmp(&b.key));
    FieldValue::Elements(elements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_tmf;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn create_then_change_then_stale() {
        let mut v = new_party("acme", "p1", ResourceType::Individual, "eu");
        let d1 = tick(&mut v, "eu");
        let s1 = Hlc::new(10, 0, "eu");
        let body = json!({"id": "p1", "givenName": "Ann", "contactMedium": [
            {"id": "1", "mediumType": "email", "characteristic": {"emailAddress": "a@x"}},
            {"id": "2", "mediumType": "phone"}]});
        let out = write_fields(&mut v, &obj(body), &s1, &d1);
        assert_eq!(out.applied, vec!["contactMedium", "givenName"]);

        let d2 = tick(&mut v, "eu");
        let s2 = Hlc::new(20, 0, "eu");
        let change = json!({"contactMedium": [{"id": "2", "mediumType": "phone"}, {"id": "3", "mediumType": "fax"}]});
        write_fields(&mut v, &obj(change), &s2, &d2);
        let FieldValue::Elements(els) = &v.field("contactMedium").unwrap().value else {
            panic!()
        };
        let keys: Vec<&str> = els.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["id:2", "id:3"]);
        assert_eq!(
            els[0].entries[0].dot, d1,
            "an unchanged element keeps its original write"
        );
        assert_eq!(els[1].entries[0].dot, d2);

        let late = json!({"givenName": "Old"});
        let out = write_fields(&mut v, &obj(late), &s1, &Dot::new("na", 1));
        assert_eq!(out.stale, vec!["givenName"]);
        assert_eq!(to_tmf(&v).unwrap()["givenName"], "Ann");
        assert_eq!(v.version_vector, vec![Dot::new("eu", 2)]);
    }

    #[test]
    fn v4_characteristics_without_ids_both_survive() {
        let mut v = new_party("acme", "p1", ResourceType::Individual, "eu");
        let d = tick(&mut v, "eu");
        let body = json!({"partyCharacteristic": [
            {"name": "hobby", "value": "tennis"}, {"name": "hobby", "value": "football"}]});
        write_fields(&mut v, &obj(body), &Hlc::new(1, 0, "eu"), &d);
        let tmf = to_tmf(&v).unwrap();
        assert_eq!(tmf["partyCharacteristic"].as_array().unwrap().len(), 2);
        assert_eq!(
            tmf["partyCharacteristic"][0]["value"], "tennis",
            "written order is kept"
        );
    }

    #[test]
    fn a_write_older_than_the_delete_changes_nothing() {
        let mut v = new_party("acme", "1", ResourceType::Individual, "eu");
        let mut eu = Writer::new("eu");
        eu.write(&mut v, 1_000, &json!({"givenName": "Jane"}));
        eu.delete(&mut v, 3_000);
        let late = Hlc::new(2_000, 0, "na");
        let dot = tick(&mut v, "na");
        let out = write_fields(
            &mut v,
            &obj(json!({"maritalStatus": "divorced"})),
            &late,
            &dot,
        );
        assert_eq!(out.applied, Vec::<String>::new());
        assert_eq!(out.stale, ["maritalStatus"]);
        assert!(v.fields.is_empty(), "{:?}", v.fields);
        let after = Hlc::new(4_000, 0, "na");
        let out = write_fields(
            &mut v,
            &obj(json!({"maritalStatus": "divorced"})),
            &after,
            &dot,
        );
        assert_eq!(
            out.applied,
            ["maritalStatus"],
            "a write after the delete applies"
        );
    }

    #[test]
    fn delete_keeps_only_later_writes() {
        let mut v = new_party("acme", "p1", ResourceType::Organization, "eu");
        let d = tick(&mut v, "eu");
        write_fields(
            &mut v,
            &obj(json!({"name": "A", "status": "validated"})),
            &Hlc::new(5, 0, "eu"),
            &d,
        );
        assert!(delete(&mut v, &Hlc::new(7, 0, "eu")));
        assert!(v.fields.is_empty());
        assert!(to_tmf(&v).is_none());
        assert!(
            !delete(&mut v, &Hlc::new(6, 0, "eu")),
            "an older delete is stale"
        );
    }
}
