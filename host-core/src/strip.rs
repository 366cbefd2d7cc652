//! Contract 1.1: a policy that declares it receives only what differs between the two
//! versions. A field both versions hold with the same stamp and value, or an element both hold
//! with the same entries, was written once and replicated; the host leaves it out of the call
//! and puts it back in the answer (`copy(local)` for a field, references to all local entries
//! for an element, element indices remapped), before validating against the full versions.
//! Versions with a tombstone are sent whole (a write older than the delete must be dropped even
//! if both hold it). Measured on the typical party: 273 strings lowered per call become 55
//! (BENCHMARKS.md).

use policy_types::{
    Element, EntryRef, Field, FieldValue, MergedField, MergedValue, PartyVersion, Resolution, Side,
};

/// What was left out of one element field.
#[derive(Debug)]
struct ElementMap {
    name: String,
    /// Original index of each element sent, per side.
    local: Vec<u32>,
    remote: Vec<u32>,
    /// Original local index and entry count of each element left out.
    identical: Vec<(u32, u32)>,
}

/// The versions as sent to the policy, and what to put back.
#[derive(Debug)]
pub struct Stripped {
    pub local: PartyVersion,
    pub remote: PartyVersion,
    identical_fields: Vec<String>,
    maps: Vec<ElementMap>,
}

/// Leaves out what both versions hold identically. `None` when the versions carry a tombstone
/// (then a write older than the delete must be dropped even if both hold it).
pub fn strip(local: &PartyVersion, remote: &PartyVersion) -> Option<Stripped> {
    if local.tombstone.is_some() || remote.tombstone.is_some() {
        return None;
    }
    let mut out = Stripped {
        local: shell(local),
        remote: shell(remote),
        identical_fields: Vec::new(),
        maps: Vec::new(),
    };
    let (a, b) = (&local.fields, &remote.fields);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.local.fields.push(a[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.remote.fields.push(b[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a[i], &b[j]);
                if x == y {
                    out.identical_fields.push(x.name.clone());
                } else if let (FieldValue::Elements(ex), FieldValue::Elements(ey)) =
                    (&x.value, &y.value)
                {
                    let (sx, sy, map) = strip_elements(&x.name, ex, ey);
                    out.local.fields.push(with_elements(x, sx));
                    out.remote.fields.push(with_elements(y, sy));
                    out.maps.push(map);
                } else {
                    out.local.fields.push(x.clone());
                    out.remote.fields.push(y.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    Some(out)
}

/// The version without its fields.
fn shell(v: &PartyVersion) -> PartyVersion {
    PartyVersion {
        tenant: v.tenant.clone(),
        party_id: v.party_id.clone(),
        resource_type: v.resource_type,
        fields: Vec::new(),
        version_vector: v.version_vector.clone(),
        tombstone: v.tombstone.clone(),
        origin_region: v.origin_region.clone(),
    }
}

fn with_elements(f: &Field, elements: Vec<Element>) -> Field {
    Field {
        name: f.name.clone(),
        stamp: f.stamp.clone(),
        value: FieldValue::Elements(elements),
    }
}

fn strip_elements(
    name: &str,
    a: &[Element],
    b: &[Element],
) -> (Vec<Element>, Vec<Element>, ElementMap) {
    let mut map = ElementMap {
        name: name.to_owned(),
        local: Vec::new(),
        remote: Vec::new(),
        identical: Vec::new(),
    };
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.key.cmp(&y.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                sa.push(a[i].clone());
                map.local.push(i as u32);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                sb.push(b[j].clone());
                map.remote.push(j as u32);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if a[i].entries == b[j].entries {
                    map.identical.push((i as u32, a[i].entries.len() as u32));
                } else {
                    sa.push(a[i].clone());
                    map.local.push(i as u32);
                    sb.push(b[j].clone());
                    map.remote.push(j as u32);
                }
                i += 1;
                j += 1;
            }
        }
    }
    (sa, sb, map)
}

/// Puts back what [`strip`] left out of a policy's answer: the answer is then about the
/// original versions.
pub fn restore(stripped: &Stripped, resolution: Resolution) -> Resolution {
    let Resolution::Merged(mut merged) = resolution else {
        return resolution;
    };
    for f in &mut merged.fields {
        let Some(map) = stripped.maps.iter().find(|m| m.name == f.name) else {
            continue;
        };
        if let MergedValue::Elements(e) = &mut f.value {
            for refs in &mut e.elements {
                for r in refs.iter_mut() {
                    let index = match r.side {
                        Side::Local => &map.local,
                        Side::Remote => &map.remote,
                    };
                    // An index past what was sent is left invalid, for validation to refuse.
                    r.element = index.get(r.element as usize).copied().unwrap_or(u32::MAX);
                }
            }
            for &(element, entries) in &map.identical {
                e.elements.push(
                    (0..entries)
                        .map(|entry| EntryRef {
                            side: Side::Local,
                            element,
                            entry,
                        })
                        .collect(),
                );
            }
        }
    }
    for name in &stripped.identical_fields {
        merged.fields.push(MergedField {
            name: name.clone(),
            value: MergedValue::Copy(Side::Local),
        });
    }
    Resolution::Merged(merged)
}
