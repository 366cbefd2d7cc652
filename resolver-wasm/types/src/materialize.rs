//! Turning a policy's merged result into a party, checking it on the way.
//!
//! A policy is untrusted: what it returns is checked against its inputs before anything is
//! written. The checks are structural, so a merged party can only contain what the inputs held
//! (or a computed value stamped with the inputs' own stamp) under the joined version vector.
//! The result is put in canonical order (fields by name, elements by key, entries by dot), so
//! the order in which a policy lists things never matters.

use crate::{
    Element, Entry, EntryRef, Field, FieldValue, Hlc, MergedParty, MergedValue, PartyVersion, Side,
    join_vectors,
};
use std::collections::HashSet;
use std::fmt;

/// Why a policy's result was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidResult {
    WrongParty {
        expected: String,
        found: String,
    },
    WrongTenant {
        expected: String,
        found: String,
    },
    ForgedVersionVector {
        expected: String,
        found: String,
    },
    ForgedTombstone {
        found: Hlc,
    },
    UnknownField {
        name: String,
    },
    DuplicateField {
        name: String,
    },
    MissingSide {
        name: String,
        side: Side,
    },
    NotAnArray {
        name: String,
    },
    BadEntryRef {
        name: String,
        reference: EntryRef,
    },
    MixedElement {
        name: String,
        keys: (String, String),
    },
    DuplicateElement {
        name: String,
        key: String,
    },
    DuplicateEntry {
        name: String,
        key: String,
    },
    EmptyElement {
        name: String,
    },
    ForgedStamp {
        name: String,
        expected: Option<Hlc>,
        found: Hlc,
    },
    NotJson {
        name: String,
        error: String,
    },
    FieldBeforeTombstone {
        name: String,
        stamp: Hlc,
        tombstone: Hlc,
    },
}

impl fmt::Display for InvalidResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InvalidResult::*;
        match self {
            WrongParty { expected, found } => {
                write!(f, "result is for party {found:?}, expected {expected:?}")
            }
            WrongTenant { expected, found } => {
                write!(f, "result is for tenant {found:?}, expected {expected:?}")
            }
            ForgedVersionVector { expected, found } => write!(
                f,
                "result's version vector {found} is not the join of the inputs' {expected}"
            ),
            ForgedTombstone { found } => {
                write!(f, "result's tombstone {found} is neither input's tombstone")
            }
            UnknownField { name } => {
                write!(f, "result has field {name:?}, which neither input has")
            }
            DuplicateField { name } => write!(f, "result lists field {name:?} twice"),
            MissingSide { name, side } => {
                write!(
                    f,
                    "result copies field {name:?} from the {side:?} side, which does not have it"
                )
            }
            NotAnArray { name } => {
                write!(
                    f,
                    "result merges field {name:?} element-wise, but neither input holds it as elements"
                )
            }
            BadEntryRef { name, reference } => {
                write!(
                    f,
                    "result refers to an entry that does not exist in field {name:?}: {reference:?}"
                )
            }
            MixedElement { name, keys } => write!(
                f,
                "result mixes entries of elements {:?} and {:?} of field {name:?} into one element",
                keys.0, keys.1
            ),
            DuplicateElement { name, key } => {
                write!(f, "result lists element {key:?} of field {name:?} twice")
            }
            DuplicateEntry { name, key } => {
                write!(
                    f,
                    "result lists the same write twice in element {key:?} of field {name:?}"
                )
            }
            EmptyElement { name } => {
                write!(f, "result has an element with no entries in field {name:?}")
            }
            ForgedStamp {
                name,
                expected,
                found,
            } => match expected {
                Some(e) => write!(
                    f,
                    "computed field {name:?} is stamped {found}, expected the inputs' {e}"
                ),
                None => write!(
                    f,
                    "computed field {name:?} is stamped {found}, but neither input has it"
                ),
            },
            NotJson { name, error } => write!(f, "computed field {name:?} is not JSON: {error}"),
            FieldBeforeTombstone {
                name,
                stamp,
                tombstone,
            } => write!(
                f,
                "result keeps field {name:?} stamped {stamp} beside a tombstone stamped {tombstone}: only writes after a delete may survive it"
            ),
        }
    }
}

impl std::error::Error for InvalidResult {}

fn show_vector(v: &[crate::Dot]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|d| format!("{}:{}", d.region, d.counter))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Checks a merged result against its inputs and builds the party it describes, written by
/// `resolving_region`. `is_json` checks a computed value's text (the caller brings its parser).
pub fn materialize(
    local: &PartyVersion,
    remote: &PartyVersion,
    merged: &MergedParty,
    resolving_region: &str,
    is_json: &dyn Fn(&str) -> Result<(), String>,
) -> Result<PartyVersion, InvalidResult> {
    materialize_with(local, remote, merged, resolving_region, is_json, &[])
}

/// As [`materialize`], with `identical` more fields kept as the local side holds them: indices
/// into `local.fields` of fields both versions hold identically, which the host left out of the
/// call (contract 1.1) and puts back here, without a lookup by name. A policy's answer that
/// names one of them anyway is refused as a duplicate.
pub fn materialize_with(
    local: &PartyVersion,
    remote: &PartyVersion,
    merged: &MergedParty,
    resolving_region: &str,
    is_json: &dyn Fn(&str) -> Result<(), String>,
    identical: &[usize],
) -> Result<PartyVersion, InvalidResult> {
    if merged.tenant != local.tenant {
        return Err(InvalidResult::WrongTenant {
            expected: local.tenant.clone(),
            found: merged.tenant.clone(),
        });
    }
    if merged.party_id != local.party_id {
        return Err(InvalidResult::WrongParty {
            expected: local.party_id.clone(),
            found: merged.party_id.clone(),
        });
    }
    let joined = join_vectors(&local.version_vector, &remote.version_vector);
    if !same_vector(&joined, &merged.version_vector) {
        return Err(InvalidResult::ForgedVersionVector {
            expected: show_vector(&joined),
            found: show_vector(&merged.version_vector),
        });
    }
    if let Some(t) = &merged.tombstone
        && Some(t) != local.tombstone.as_ref()
        && Some(t) != remote.tombstone.as_ref()
    {
        return Err(InvalidResult::ForgedTombstone { found: t.clone() });
    }

    let mut seen = HashSet::with_capacity(merged.fields.len() + identical.len());
    let mut fields = Vec::with_capacity(merged.fields.len() + identical.len());
    for mf in &merged.fields {
        let name = &mf.name;
        if !seen.insert(name.as_str()) {
            return Err(InvalidResult::DuplicateField { name: name.clone() });
        }
        let l = local.field(name);
        let r = remote.field(name);
        if l.is_none() && r.is_none() {
            return Err(InvalidResult::UnknownField { name: name.clone() });
        }
        let field = match &mf.value {
            MergedValue::Copy(side) => {
                let source = match side {
                    Side::Local => l,
                    Side::Remote => r,
                };
                source.cloned().ok_or(InvalidResult::MissingSide {
                    name: name.clone(),
                    side: *side,
                })?
            }
            MergedValue::Elements(merged) => {
                let source = match merged.stamp_from {
                    Side::Local => l,
                    Side::Remote => r,
                };
                let stamp = source
                    .map(|f| f.stamp.clone())
                    .ok_or(InvalidResult::MissingSide {
                        name: name.clone(),
                        side: merged.stamp_from,
                    })?;
                Field {
                    name: name.clone(),
                    stamp,
                    value: FieldValue::Elements(build_elements(name, l, r, &merged.elements)?),
                }
            }
            MergedValue::Computed(c) => {
                let expected = max_stamp(l, r);
                if expected != Some(&c.stamp) {
                    return Err(InvalidResult::ForgedStamp {
                        name: name.clone(),
                        expected: expected.cloned(),
                        found: c.stamp.clone(),
                    });
                }
                is_json(&c.value).map_err(|error| InvalidResult::NotJson {
                    name: name.clone(),
                    error,
                })?;
                Field {
                    name: name.clone(),
                    stamp: c.stamp.clone(),
                    value: FieldValue::Json(c.value.clone()),
                }
            }
        };
        if let Some(t) = &merged.tombstone {
            let entries = match &field.value {
                FieldValue::Elements(e) => {
                    e.iter().flat_map(|e| &e.entries).map(|e| &e.stamp).min()
                }
                FieldValue::Json(_) => None,
            };
            let oldest = entries.map_or(&field.stamp, |e| e.min(&field.stamp));
            if oldest <= t {
                return Err(InvalidResult::FieldBeforeTombstone {
                    name: name.clone(),
                    stamp: oldest.clone(),
                    tombstone: t.clone(),
                });
            }
        }
        fields.push(field);
    }
    for field in identical.iter().filter_map(|&i| local.fields.get(i)) {
        if !seen.insert(field.name.as_str()) {
            return Err(InvalidResult::DuplicateField {
                name: field.name.clone(),
            });
        }
        fields.push(field.clone());
    }
    fields.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(PartyVersion {
        tenant: local.tenant.clone(),
        party_id: local.party_id.clone(),
        resource_type: local.resource_type,
        fields,
        version_vector: joined,
        tombstone: merged.tombstone.clone(),
        origin_region: resolving_region.to_owned(),
    })
}

fn same_vector(a: &[crate::Dot], b: &[crate::Dot]) -> bool {
    // Zero counters are the same as absent regions.
    let nz = |v: &[crate::Dot]| {
        v.iter()
            .filter(|d| d.counter > 0)
            .cloned()
            .collect::<Vec<_>>()
    };
    a == b || nz(a) == nz(b)
}

fn max_stamp<'a>(l: Option<&'a Field>, r: Option<&'a Field>) -> Option<&'a Hlc> {
    match (l, r) {
        (Some(a), Some(b)) => Some(if a.stamp >= b.stamp {
            &a.stamp
        } else {
            &b.stamp
        }),
        (Some(a), None) => Some(&a.stamp),
        (None, Some(b)) => Some(&b.stamp),
        (None, None) => None,
    }
}

fn elements_of(field: Option<&Field>) -> &[Element] {
    match field.map(|f| &f.value) {
        Some(FieldValue::Elements(e)) => e,
        _ => &[],
    }
}

fn build_elements(
    name: &str,
    l: Option<&Field>,
    r: Option<&Field>,
    refs: &[Vec<EntryRef>],
) -> Result<Vec<Element>, InvalidResult> {
    let is_elements =
        |f: Option<&Field>| matches!(f.map(|f| &f.value), Some(FieldValue::Elements(_)));
    if !is_elements(l) && !is_elements(r) {
        return Err(InvalidResult::NotAnArray {
            name: name.to_owned(),
        });
    }
    let (le, re) = (elements_of(l), elements_of(r));
    let mut out: Vec<Element> = Vec::with_capacity(refs.len());
    for element_refs in refs {
        let mut key: Option<&str> = None;
        let mut entries: Vec<Entry> = Vec::with_capacity(element_refs.len());
        for reference in element_refs {
            let elements = match reference.side {
                Side::Local => le,
                Side::Remote => re,
            };
            let bad = || InvalidResult::BadEntryRef {
                name: name.to_owned(),
                reference: *reference,
            };
            let element = elements.get(reference.element as usize).ok_or_else(bad)?;
            let entry = element
                .entries
                .get(reference.entry as usize)
                .ok_or_else(bad)?;
            match key {
                None => key = Some(&element.key),
                Some(k) if k != element.key => {
                    return Err(InvalidResult::MixedElement {
                        name: name.to_owned(),
                        keys: (k.to_owned(), element.key.clone()),
                    });
                }
                Some(_) => {}
            }
            if entries.iter().any(|e| e.dot == entry.dot) {
                return Err(InvalidResult::DuplicateEntry {
                    name: name.to_owned(),
                    key: element.key.clone(),
                });
            }
            entries.push(entry.clone());
        }
        let key = key.ok_or_else(|| InvalidResult::EmptyElement {
            name: name.to_owned(),
        })?;
        entries.sort_by(|a, b| a.dot.cmp(&b.dot));
        out.push(Element {
            key: key.to_owned(),
            entries,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(w) = out.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(InvalidResult::DuplicateElement {
            name: name.to_owned(),
            key: w[0].key.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dot, MergedField, ResourceType};

    fn version(region: &str, b: &str) -> PartyVersion {
        let field = |name: &str, value: &str, ms| Field {
            name: name.into(),
            stamp: Hlc::new(ms, 0, region),
            value: FieldValue::Json(value.into()),
        };
        PartyVersion {
            tenant: "t".into(),
            party_id: "p".into(),
            resource_type: ResourceType::Individual,
            fields: vec![field("a", "1", 1), field("b", b, 2)],
            version_vector: vec![Dot::new(region, 1)],
            tombstone: None,
            origin_region: region.into(),
        }
    }

    #[test]
    fn identical_fields_are_kept_and_a_policy_cannot_name_them_again() {
        let (mut l, r) = (version("eu", "2"), version("na", "3"));
        l.fields[0].stamp.region = "na".into(); // "a" is the same on both sides
        let r = PartyVersion {
            fields: vec![l.fields[0].clone(), r.fields[1].clone()],
            ..r
        };
        let mut merged = MergedParty {
            tenant: "t".into(),
            party_id: "p".into(),
            version_vector: join_vectors(&l.version_vector, &r.version_vector),
            fields: vec![MergedField {
                name: "b".into(),
                value: MergedValue::Copy(Side::Remote),
            }],
            tombstone: None,
        };
        let ok = &|_: &str| Ok(());
        let party = materialize_with(&l, &r, &merged, "eu", ok, &[0]).unwrap();
        assert_eq!(party.fields, vec![l.fields[0].clone(), r.fields[1].clone()]);
        merged.fields.push(MergedField {
            name: "a".into(),
            value: MergedValue::Copy(Side::Local),
        });
        assert_eq!(
            materialize_with(&l, &r, &merged, "eu", ok, &[0]),
            Err(InvalidResult::DuplicateField { name: "a".into() })
        );
    }
}
