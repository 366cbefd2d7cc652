//! The default TMF632 merge: field by field, deterministic, commutative, idempotent and
//! associative, so that regions resolving the same conflict independently write the same party.
//!
//! It is a plain library: the default policy component wraps it, the hosts' tests and benchmarks
//! call it natively as the baseline. The rules:
//! - scalar fields: last writer wins by hybrid logical clock (region breaks ties);
//! - arrays of objects: element-wise by identity, observed-remove (an element one region removed
//!   does not come back from a concurrent version unless that version changed or re-added it);
//! - `status`: by lifecycle, so a terminal state is never undone by a concurrent earlier one
//!   (under delete-wins, the default; see `merge_field` for update-resurrects);
//! - deletes: tombstones; the tenant's configuration picks delete-wins (default) or
//!   update-resurrects.

mod config;
mod lifecycle;

pub use config::{Config, DeleteRule};
pub use lifecycle::{is_terminal, lifecycle_rank};

use policy_types::{
    Context, Description, Element, EntryRef, Field, FieldValue, Hlc, MergedElements, MergedField,
    MergedParty, MergedValue, PartyVersion, Relation, Resolution, Side, covers,
};
use std::cmp::Ordering;

/// The description the default policy reports.
pub fn describe() -> Description {
    Description {
        name: "tmf632-default".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        contract_version: policy_types::CONTRACT_REVISION.to_owned(),
    }
}

/// Resolves two versions of one party.
///
/// Dominated and equal versions are answered without merging (the hosts answer those
/// themselves; law checks still ask). Concurrent versions are merged.
pub fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
    if local.tenant != remote.tenant || local.party_id != remote.party_id {
        return Resolution::Reject(format!(
            "the two versions are of different parties: {}/{} and {}/{}",
            local.tenant, local.party_id, remote.tenant, remote.party_id
        ));
    }
    if local.resource_type != remote.resource_type {
        return Resolution::Reject(format!(
            "party {} is an {} in one region and an {} in the other",
            local.party_id,
            local.resource_type.as_str(),
            remote.resource_type.as_str()
        ));
    }
    let config = match Config::parse(&ctx.config) {
        Ok(config) => config,
        Err(reason) => return Resolution::Reject(reason),
    };
    match ctx.relation {
        Relation::LocalDominates => Resolution::KeepLocal,
        Relation::RemoteDominates => Resolution::TakeRemote,
        Relation::Equal if local == remote => Resolution::KeepLocal,
        Relation::Equal | Relation::Concurrent => Resolution::Merged(merge(&config, local, remote)),
    }
}

/// Merges two versions into one, whatever their causal relation.
///
/// Deletes: the later tombstone stands. Under delete-wins only the fields of a side that holds
/// that tombstone (it saw the delete, then wrote) may live beside it; under update-resurrects
/// every field written after the delete does. Either way only writes stamped after the delete
/// survive it. Both rules are joins, so the merge stays associative.
pub fn merge(config: &Config, local: &PartyVersion, remote: &PartyVersion) -> MergedParty {
    let tombstone = max_option(local.tombstone.as_ref(), remote.tombstone.as_ref()).cloned();
    // Which fields of a side take part: all without a delete; with one, only writes stamped
    // after it, and under delete-wins only from a side that saw the delete.
    let candidate = |v: &PartyVersion| {
        let saw = match (&tombstone, config.delete_rule) {
            (None, _) | (Some(_), DeleteRule::UpdateResurrects) => true,
            (Some(t), DeleteRule::DeleteWins) => v.tombstone.as_ref() == Some(t),
        };
        let tombstone = tombstone.clone();
        move |f: &Field| saw && tombstone.as_ref().is_none_or(|t| f.stamp > *t)
    };
    let mut fields = Vec::with_capacity(local.fields.len().max(remote.fields.len()));
    let floor = tombstone.as_ref();
    let lifecycle = config.delete_rule == DeleteRule::DeleteWins;
    merge_fields(
        local,
        remote,
        candidate(local),
        candidate(remote),
        floor,
        lifecycle,
        &mut fields,
    );
    MergedParty::of(local, remote, fields, tombstone)
}

fn merge_fields(
    local: &PartyVersion,
    remote: &PartyVersion,
    keep_local: impl Fn(&Field) -> bool,
    keep_remote: impl Fn(&Field) -> bool,
    floor: Option<&Hlc>,
    lifecycle: bool,
    out: &mut Vec<MergedField>,
) {
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&local.fields, &remote.fields);
    loop {
        while i < a.len() && !keep_local(&a[i]) {
            i += 1;
        }
        while j < b.len() && !keep_remote(&b[j]) {
            j += 1;
        }
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match ord {
            Ordering::Less => {
                out.push(one_side(local, remote, Side::Local, &a[i], floor));
                i += 1;
            }
            Ordering::Greater => {
                out.push(one_side(local, remote, Side::Remote, &b[j], floor));
                j += 1;
            }
            Ordering::Equal => {
                out.push(merge_field(local, remote, &a[i], &b[j], floor, lifecycle));
                i += 1;
                j += 1;
            }
        }
    }
}

/// A field only one side holds. Beside a tombstone, an array keeps only the entries written
/// after the delete, so it is rebuilt element-wise rather than copied.
fn one_side(
    local: &PartyVersion,
    remote: &PartyVersion,
    side: Side,
    f: &Field,
    floor: Option<&Hlc>,
) -> MergedField {
    match (&f.value, floor) {
        (FieldValue::Elements(e), Some(_)) => {
            let (a, b): (&[Element], &[Element]) = match side {
                Side::Local => (e, &[]),
                Side::Remote => (&[], e),
            };
            MergedField {
                name: f.name.clone(),
                value: MergedValue::Elements(MergedElements {
                    stamp_from: side,
                    elements: merge_elements(local, remote, a, b, floor),
                }),
            }
        }
        _ => copy(&f.name, side),
    }
}

fn copy(name: &str, side: Side) -> MergedField {
    MergedField {
        name: name.to_owned(),
        value: MergedValue::Copy(side),
    }
}

fn merge_field(
    local: &PartyVersion,
    remote: &PartyVersion,
    x: &Field,
    y: &Field,
    floor: Option<&Hlc>,
    lifecycle: bool,
) -> MergedField {
    // Lifecycle order needs every concurrent status write at hand to decide; a tombstone that
    // arrives later would need the ones it already dropped. So under update-resurrects, where a
    // delete filters writes by stamp, status is settled by last writer like any scalar and the
    // merge stays associative.
    if x.name == "status" && lifecycle {
        let rank = |f: &Field| match &f.value {
            FieldValue::Json(text) => lifecycle_rank(local.resource_type, text),
            FieldValue::Elements(_) => 0,
        };
        let ord = rank(x).cmp(&rank(y)).then_with(|| last_writer(x, y));
        return copy(
            &x.name,
            if ord == Ordering::Less {
                Side::Remote
            } else {
                Side::Local
            },
        );
    }
    match (&x.value, &y.value) {
        (FieldValue::Elements(ea), FieldValue::Elements(eb)) => MergedField {
            name: x.name.clone(),
            value: MergedValue::Elements(MergedElements {
                stamp_from: if x.stamp >= y.stamp {
                    Side::Local
                } else {
                    Side::Remote
                },
                elements: merge_elements(local, remote, ea, eb, floor),
            }),
        },
        _ => copy(
            &x.name,
            if last_writer(x, y) == Ordering::Less {
                Side::Remote
            } else {
                Side::Local
            },
        ),
    }
}

/// Orders two writes of one field: by stamp, then by value text so that equal stamps on
/// different values (never produced by real clocks, but possible in captured data) still
/// resolve the same way in every region.
fn last_writer(x: &Field, y: &Field) -> Ordering {
    x.stamp
        .cmp(&y.stamp)
        .then_with(|| match (&x.value, &y.value) {
            (FieldValue::Json(a), FieldValue::Json(b)) => a.cmp(b),
            (FieldValue::Json(_), FieldValue::Elements(_)) => Ordering::Less,
            (FieldValue::Elements(_), FieldValue::Json(_)) => Ordering::Greater,
            (FieldValue::Elements(a), FieldValue::Elements(b)) => a.len().cmp(&b.len()),
        })
}

/// Observed-remove merge of two element lists sorted by key (an optimised OR-set keyed by the
/// version vectors): an entry survives if the other side holds the same write, or has not seen
/// it. An entry the other side has seen but no longer holds was removed (or replaced) there.
fn merge_elements(
    local: &PartyVersion,
    remote: &PartyVersion,
    a: &[Element],
    b: &[Element],
    floor: Option<&Hlc>,
) -> Vec<Vec<EntryRef>> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.key.cmp(&y.key),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        let mut refs = Vec::new();
        match ord {
            Ordering::Less => {
                survivors(
                    Side::Local,
                    i,
                    &a[i],
                    None,
                    &remote.version_vector,
                    floor,
                    &mut refs,
                );
                i += 1;
            }
            Ordering::Greater => {
                survivors(
                    Side::Remote,
                    j,
                    &b[j],
                    None,
                    &local.version_vector,
                    floor,
                    &mut refs,
                );
                j += 1;
            }
            Ordering::Equal => {
                survivors(
                    Side::Local,
                    i,
                    &a[i],
                    Some(&b[j]),
                    &remote.version_vector,
                    floor,
                    &mut refs,
                );
                survivors(
                    Side::Remote,
                    j,
                    &b[j],
                    Some(&a[i]),
                    &local.version_vector,
                    floor,
                    &mut refs,
                );
                i += 1;
                j += 1;
            }
        }
        if !refs.is_empty() {
            out.push(refs);
        }
    }
    out
}

/// Pushes the entries of `element` (on `side`) that survive against the other side, which holds
/// `other` under the same key (or nothing) and has seen `other_vector`. An entry both sides hold
/// is taken once, from the local side.
fn survivors(
    side: Side,
    index: usize,
    element: &Element,
    other: Option<&Element>,
    other_vector: &[policy_types::Dot],
    floor: Option<&Hlc>,
    refs: &mut Vec<EntryRef>,
) {
    for (k, entry) in element.entries.iter().enumerate() {
        if floor.is_some_and(|t| entry.stamp <= *t) {
            continue; // written before the delete
        }
        let held_by_other = other.is_some_and(|o| o.entries.iter().any(|e| e.dot == entry.dot));
        let keep = if held_by_other {
            side == Side::Local
        } else {
            !covers(other_vector, &entry.dot)
        };
        if keep {
            refs.push(EntryRef {
                side,
                element: index as u32,
                entry: k as u32,
            });
        }
    }
}

fn max_option<'a>(a: Option<&'a Hlc>, b: Option<&'a Hlc>) -> Option<&'a Hlc> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x >= y { x } else { y }),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests;
