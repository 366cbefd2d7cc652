//! Contract 1.1: a policy that declares it receives only what differs between the two
//! versions. A field both versions hold with the same stamp and value, or an element both hold
//! with the same entries, was written once and replicated; the host leaves it out of the call
//! and puts it back in the answer (`copy(local)` for a field, references to all local entries
//! for an element, element indices remapped), before validating against the full versions.
//! Versions with a tombstone are sent whole (a write older than the delete must be dropped even
//! if both hold it). Measured on the typical party: 273 strings lowered per call become 55
//! (BENCHMARKS.md). What is sent is a list of views into the versions: a packed call packs
//! them directly; only the typed interface needs them as values ([`Stripped::versions`]).

use policy_packed::SentField;
use policy_types::{
    Element, EntryRef, Field, FieldValue, InvalidResult, MergedValue, PartyVersion, Resolution,
    Side,
};

use crate::error::CallFailure;

/// What was left out of one element field.
#[derive(Debug)]
struct ElementMap<'a> {
    name: &'a str,
    /// Original index of each element sent, per side.
    local: Vec<u32>,
    remote: Vec<u32>,
    /// The field's original elements, per side (to check an entry index against).
    local_elements: &'a [Element],
    remote_elements: &'a [Element],
    /// Original local index and entry count of each element left out.
    identical: Vec<(u32, u32)>,
}

/// What is sent of each version (views into them, nothing copied), and what to put back.
#[derive(Debug)]
pub struct Stripped<'a> {
    pub local: Vec<SentField<'a>>,
    pub remote: Vec<SentField<'a>>,
    local_version: &'a PartyVersion,
    remote_version: &'a PartyVersion,
    /// Indices into the local version's fields of those both versions hold identically.
    identical_fields: Vec<usize>,
    maps: Vec<ElementMap<'a>>,
}

impl Stripped<'_> {
    /// The fields left out because both versions hold them identically, as indices into the
    /// local version's fields: `host_core::resolve::apply_resolution_with` keeps them as they are.
    pub fn identical_fields(&self) -> &[usize] {
        &self.identical_fields
    }

    /// Packs the call as sent ([`policy_packed`]).
    pub fn pack(
        &self,
        out: &mut Vec<u8>,
        format: policy_packed::Format,
        ctx: policy_types::ContextRef<'_>,
    ) {
        policy_packed::pack_call_sent(
            out,
            format,
            ctx,
            self.local_version,
            &self.local,
            self.remote_version,
            &self.remote,
        );
    }

    /// Packs the call as sent with each version's writes, in packed format 3.
    pub fn pack_writes(
        &self,
        out: &mut Vec<u8>,
        ctx: policy_types::ContextRef<'_>,
        local: &policy_types::writes::Writes,
        remote: &policy_types::writes::Writes,
    ) {
        let sent = |version, fields, writes| policy_packed::Sent {
            version,
            fields,
            writes,
        };
        policy_packed::pack_call_sent_writes(
            out,
            ctx,
            sent(self.local_version, &self.local, local),
            sent(self.remote_version, &self.remote, remote),
        );
    }

    /// The versions as sent, as values (for a policy called through the typed interface).
    pub fn versions(&self) -> (PartyVersion, PartyVersion) {
        (
            sent_version(self.local_version, &self.local),
            sent_version(self.remote_version, &self.remote),
        )
    }
}

fn sent_version(v: &PartyVersion, sent: &[SentField<'_>]) -> PartyVersion {
    PartyVersion {
        tenant: v.tenant.clone(),
        party_id: v.party_id.clone(),
        resource_type: v.resource_type,
        fields: sent
            .iter()
            .map(|f| match f {
                SentField::Whole(f) => (*f).clone(),
                SentField::Elements(f, elements) => Field {
                    name: f.name.clone(),
                    stamp: f.stamp.clone(),
                    value: FieldValue::Elements(elements.iter().map(|e| (*e).clone()).collect()),
                },
            })
            .collect(),
        version_vector: v.version_vector.clone(),
        tombstone: v.tombstone.clone(),
        origin_region: v.origin_region.clone(),
    }
}

/// Leaves out what both versions hold identically. `None` when the versions carry a tombstone
/// (then a write older than the delete must be dropped even if both hold it).
pub fn strip<'a>(local: &'a PartyVersion, remote: &'a PartyVersion) -> Option<Stripped<'a>> {
    if local.tombstone.is_some() || remote.tombstone.is_some() {
        return None;
    }
    let mut out = Stripped {
        local: Vec::new(),
        remote: Vec::new(),
        local_version: local,
        remote_version: remote,
        identical_fields: Vec::new(),
        maps: Vec::new(),
    };
    let (a, b) = (&local.fields, &remote.fields);
    for joined in join_sorted(a, b, |f| &f.name) {
        match joined {
            Joined::Local(i) => out.local.push(SentField::Whole(&a[i])),
            Joined::Remote(j) => out.remote.push(SentField::Whole(&b[j])),
            Joined::Both(i, j) => {
                let (x, y) = (&a[i], &b[j]);
                if x == y {
                    out.identical_fields.push(i);
                } else if let (FieldValue::Elements(ex), FieldValue::Elements(ey)) =
                    (&x.value, &y.value)
                {
                    let (sx, sy, map) = strip_elements(&x.name, ex, ey);
                    out.local.push(SentField::Elements(x, sx));
                    out.remote.push(SentField::Elements(y, sy));
                    out.maps.push(map);
                } else {
                    out.local.push(SentField::Whole(x));
                    out.remote.push(SentField::Whole(y));
                }
            }
        }
    }
    Some(out)
}

/// Where an item of one of two lists sorted by the same key stands.
enum Joined {
    /// Only in the local list, at this index.
    Local(usize),
    /// Only in the remote list, at this index.
    Remote(usize),
    /// In both, at these indices (local, remote).
    Both(usize, usize),
}

/// `a` (local) and `b` (remote), both sorted by `key`, walked together in key order: each item
/// once, paired with the other list's item of the same key when there is one.
fn join_sorted<'a, T, K: Ord + ?Sized>(
    a: &'a [T],
    b: &'a [T],
    key: impl Fn(&T) -> &K,
) -> impl Iterator<Item = Joined> {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => key(x).cmp(key(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => return None,
        };
        Some(match ord {
            std::cmp::Ordering::Less => {
                i += 1;
                Joined::Local(i - 1)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                Joined::Remote(j - 1)
            }
            std::cmp::Ordering::Equal => {
                (i, j) = (i + 1, j + 1);
                Joined::Both(i - 1, j - 1)
            }
        })
    })
}

type SentElements<'a> = Vec<&'a Element>;

fn strip_elements<'a>(
    name: &'a str,
    a: &'a [Element],
    b: &'a [Element],
) -> (SentElements<'a>, SentElements<'a>, ElementMap<'a>) {
    let mut map = ElementMap {
        name,
        local: Vec::new(),
        remote: Vec::new(),
        local_elements: a,
        remote_elements: b,
        identical: Vec::new(),
    };
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for joined in join_sorted(a, b, |e| &e.key) {
        match joined {
            Joined::Local(i) => {
                sa.push(&a[i]);
                map.local.push(i as u32);
            }
            Joined::Remote(j) => {
                sb.push(&b[j]);
                map.remote.push(j as u32);
            }
            Joined::Both(i, j) => {
                if a[i].entries == b[j].entries {
                    map.identical.push((i as u32, a[i].entries.len() as u32));
                } else {
                    sa.push(&a[i]);
                    map.local.push(i as u32);
                    sb.push(&b[j]);
                    map.remote.push(j as u32);
                }
            }
        }
    }
    (sa, sb, map)
}

/// Puts back what [`strip`] left out of a policy's answer's elements (indices remapped, elements
/// both held added as the local side's): the answer is then about the original versions, but
/// for the fields both held identically, which `host_core::resolve::apply_resolution_with` adds
/// ([`Stripped::identical_fields`]).
///
/// A reference to an element or entry that was not sent is refused here, as the policy wrote
/// it: once remapped, its indices would name elements of the original versions the policy
/// never saw.
pub fn restore(stripped: &Stripped, resolution: Resolution) -> Result<Resolution, CallFailure> {
    let Resolution::Merged(mut merged) = resolution else {
        return Ok(resolution);
    };
    for f in &mut merged.fields {
        let Some(map) = stripped.maps.iter().find(|m| m.name == f.name) else {
            continue;
        };
        if let MergedValue::Elements(e) = &mut f.value {
            for refs in &mut e.elements {
                for r in refs.iter_mut() {
                    let (index, elements) = match r.side {
                        Side::Local => (&map.local, map.local_elements),
                        Side::Remote => (&map.remote, map.remote_elements),
                    };
                    let original = index.get(r.element as usize).copied().filter(|&i| {
                        elements
                            .get(i as usize)
                            .is_some_and(|e| (r.entry as usize) < e.entries.len())
                    });
                    let Some(original) = original else {
                        return Err(CallFailure::InvalidResult(
                            InvalidResult::BadEntryRef {
                                name: map.name.to_owned(),
                                reference: *r,
                            }
                            .to_string(),
                        ));
                    };
                    r.element = original;
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
    Ok(Resolution::Merged(merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_types::{Dot, Entry, Hlc, MergedElements, MergedField, MergedParty, ResourceType};

    fn element(key: &str, region: &str, counter: u64) -> Element {
        Element {
            key: key.to_owned(),
            entries: vec![Entry {
                value: format!(r#"{{"id":"{key}","n":{counter}}}"#),
                stamp: Hlc::new(counter, 0, region),
                dot: Dot::new(region, counter),
                position: 0,
            }],
        }
    }

    /// Element `a` both sides hold alike (left out), element `b` each side wrote.
    fn version(region: &str, counter: u64) -> PartyVersion {
        PartyVersion {
            tenant: "acme".into(),
            party_id: "42".into(),
            resource_type: ResourceType::Individual,
            fields: vec![Field {
                name: "contactMedium".into(),
                stamp: Hlc::new(counter, 0, region),
                value: FieldValue::Elements(vec![
                    element("a", "eu", 1),
                    element("b", region, counter),
                ]),
            }],
            version_vector: vec![Dot::new(region, counter)],
            tombstone: None,
            origin_region: region.into(),
        }
    }

    fn answer(references: Vec<EntryRef>) -> Resolution {
        Resolution::Merged(MergedParty {
            tenant: "acme".into(),
            party_id: "42".into(),
            version_vector: vec![],
            fields: vec![MergedField {
                name: "contactMedium".into(),
                value: MergedValue::Elements(MergedElements {
                    stamp_from: Side::Local,
                    elements: vec![references],
                }),
            }],
            tombstone: None,
        })
    }

    fn reference(side: Side, element: u32, entry: u32) -> EntryRef {
        EntryRef {
            side,
            element,
            entry,
        }
    }

    /// The policy saw element `b` at index 0 (element `a` was left out); the host puts it back
    /// at its index 1, and refuses a reference to what was not sent with the indices the policy
    /// wrote, not remapped ones.
    #[test]
    fn restore_remaps_what_was_sent_and_refuses_the_rest_as_written() {
        let (local, remote) = (version("eu", 2), version("na", 3));
        let stripped = strip(&local, &remote).expect("no tombstones");
        let Ok(Resolution::Merged(restored)) =
            restore(&stripped, answer(vec![reference(Side::Local, 0, 0)]))
        else {
            panic!("a reference to what was sent is restored");
        };
        let MergedValue::Elements(e) = &restored.fields[0].value else {
            panic!("elements");
        };
        assert_eq!(
            e.elements,
            [
                vec![reference(Side::Local, 1, 0)],
                vec![reference(Side::Local, 0, 0)]
            ]
        );

        for (bad, written) in [
            (reference(Side::Remote, 9999, 0), "element: 9999, entry: 0"),
            (reference(Side::Local, 0, 7), "element: 0, entry: 7"),
            (reference(Side::Remote, 1, 0), "element: 1, entry: 0"),
        ] {
            match restore(&stripped, answer(vec![bad])) {
                Err(CallFailure::InvalidResult(msg)) => assert!(
                    msg.contains("does not exist in field \"contactMedium\"")
                        && msg.contains(written),
                    "{msg}"
                ),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
