//! Helpers for reading parties and building results.

use policy_types::writes::Writes;
use policy_types::{Field, FieldValue, MergedField, MergedParty, MergedValue, PartyVersion, Side};
use std::cmp::Ordering;

pub use policy_types::writes::{Change, change};

/// How many of `region`'s writes the write that set `name` on this side had seen, counting
/// itself when `region` made it; `None` when the side lacks the field or its write is unknown
/// (a version stored before writes were recorded, or a call of a revision before 1.3). The
/// key of a rule such as "of two statuses, the one written knowing more of NA's writes wins":
/// a write NA made concurrently counts one more NA write than the other side's had seen, and a
/// write made after seeing NA's counts at least as many.
pub fn seen(side: (&PartyVersion, &Writes), name: &str, region: &str) -> Option<u64> {
    side.0.field(name)?;
    let dot = side.1.field(name)?;
    side.1.seen(dot, region)
}

/// The JSON text of a scalar field, if the version has it.
pub fn json<'a>(party: &'a PartyVersion, name: &str) -> Option<&'a str> {
    match party.field(name).map(|f| &f.value) {
        Some(FieldValue::Json(text)) => Some(text),
        _ => None,
    }
}

/// The JSON text of a scalar field with its quotes removed, for string fields such as `status`.
pub fn string<'a>(party: &'a PartyVersion, name: &str) -> Option<&'a str> {
    json(party, name).map(|t| t.trim().trim_matches('"'))
}

/// Which of two writes of a field wins under last-writer-wins (stamp, then value as tie-break).
pub fn last_writer(local: &Field, remote: &Field) -> Side {
    let ord = local
        .stamp
        .cmp(&remote.stamp)
        .then_with(|| match (&local.value, &remote.value) {
            (FieldValue::Json(a), FieldValue::Json(b)) => a.cmp(b),
            _ => Ordering::Equal,
        });
    if ord == Ordering::Less {
        Side::Remote
    } else {
        Side::Local
    }
}

/// A merged party that takes every field from its last writer (no element-wise merge, no
/// lifecycle; beside a tombstone only fields written after it): the plain rule a custom policy
/// can start from.
pub fn last_writer_wins(local: &PartyVersion, remote: &PartyVersion) -> MergedParty {
    let mut fields: Vec<MergedField> = Vec::new();
    for f in &local.fields {
        let side = match remote.field(&f.name) {
            Some(r) => last_writer(f, r),
            None => Side::Local,
        };
        fields.push(MergedField {
            name: f.name.clone(),
            value: MergedValue::Copy(side),
        });
    }
    for f in &remote.fields {
        if local.field(&f.name).is_none() {
            fields.push(MergedField {
                name: f.name.clone(),
                value: MergedValue::Copy(Side::Remote),
            });
        }
    }
    let tombstone = match (&local.tombstone, &remote.tombstone) {
        (Some(a), Some(b)) => Some(a.max(b).clone()),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    if let Some(t) = &tombstone {
        // Only writes stamped after the delete live beside it.
        fields.retain(|f| {
            let side = match f.value {
                MergedValue::Copy(Side::Remote) => remote,
                _ => local,
            };
            side.field(&f.name)
                .is_some_and(|x| x.stamp > *t && !has_entries_before(x, t))
        });
    }
    MergedParty::of(local, remote, fields, tombstone)
}

/// Replaces how `name` is taken in a merged party (adds it if absent).
pub fn set_field(merged: &mut MergedParty, name: &str, value: MergedValue) {
    match merged.fields.iter_mut().find(|f| f.name == name) {
        Some(f) => f.value = value,
        None => merged.fields.push(MergedField {
            name: name.to_owned(),
            value,
        }),
    }
}

fn has_entries_before(field: &Field, t: &policy_types::Hlc) -> bool {
    match &field.value {
        FieldValue::Elements(elements) => elements
            .iter()
            .flat_map(|e| &e.entries)
            .any(|e| e.stamp <= *t),
        FieldValue::Json(_) => false,
    }
}
