//! Per-field causality (`docs/per-field-causality.md`): which write set each field and the
//! tombstone of a party version, and what each of those writes had seen.
//!
//! A field carries the stamp of the write that last set it, but a stamp cannot say whether the
//! other version has seen that write. [`Writes`] can: it names the write (its [`Dot`]) behind
//! every field and the tombstone, and keeps each such write's *context*, the version vector its
//! region held when it wrote. Array entries carry their write's dot already; their contexts are
//! in the same table. With it [`change`] tells, for one field, which side changed it since the
//! other saw it, and [`Writes::seen`] how much of a region a write had seen (the key of a rule
//! such as "of two statuses, the one written knowing more of NA's writes wins").
//!
//! A version's table travels beside it: a write records itself ([`Writes::record`]), a merge
//! derives the result's table from its inputs' ([`Writes::merged`]). A version written before
//! writes were recorded has an empty table: its fields' writes are unknown ([`Change::Unknown`]).

use crate::causality::covers;
use crate::{Dot, FieldValue, PartyVersion};
#[cfg(feature = "wasmtime")]
use wasmtime::component::{ComponentType, Lift, Lower};

/// One write behind a version: its dot and the version vector its region held when it wrote
/// (without the write itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct Write {
    pub dot: Dot,
    /// Sorted by region.
    pub context: Vec<Dot>,
}

/// The write that set a field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
pub struct FieldWrite {
    pub name: String,
    pub dot: Dot,
}

/// The writes behind one party version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "wasmtime",
    derive(ComponentType, Lift, Lower),
    component(record)
)]
// Unknown members are ignored, not refused: a table written by a later release must not make
// the party unreadable here (it is advisory; a lost member only makes a write unknown).
#[cfg_attr(feature = "serde", serde(default))]
pub struct Writes {
    /// Sorted by name; one per field of the version whose write is known.
    pub fields: Vec<FieldWrite>,
    /// The write that deleted the party, when the version has a tombstone and it is known.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tombstone: Option<Dot>,
    /// Sorted by dot: every write a field, an entry or the tombstone names whose context is
    /// known, and no other.
    pub writes: Vec<Write>,
}

/// For one field, which side changed it since the other side saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Both sides hold the same write, or neither side holds the field and neither has a
    /// tombstone. (A side without the field but with a tombstone holds its delete: the field
    /// then changed on whichever side the other has not seen.)
    Same,
    /// Only the local side changed it: the remote side has not seen the local write, and the
    /// local side has seen the remote one.
    Local,
    /// Only the remote side changed it.
    Remote,
    /// Both changed it concurrently: neither has seen the other's write. Also answered when
    /// each side holds a write the other has seen (two merges that chose differently).
    Both,
    /// A side holds a value whose write was not recorded (a version stored before writes were).
    Unknown,
}

/// What stands behind a field on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behind<'a> {
    /// The field was never set on this side.
    Nothing,
    Write(&'a Dot),
    Unknown,
}

impl Writes {
    /// Whether nothing is known: a version stored before writes were recorded.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.tombstone.is_none() && self.writes.is_empty()
    }

    /// The write that set `name`, when known.
    pub fn field(&self, name: &str) -> Option<&Dot> {
        self.fields
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.fields[i].dot)
    }

    /// The context of the write `dot`, when known.
    pub fn context(&self, dot: &Dot) -> Option<&[Dot]> {
        self.writes
            .binary_search_by(|w| w.dot.cmp(dot))
            .ok()
            .map(|i| self.writes[i].context.as_slice())
    }

    /// How many of `region`'s writes the write `dot` had seen, counting itself when `region`
    /// made it; `None` when its context is unknown.
    pub fn seen(&self, dot: &Dot, region: &str) -> Option<u64> {
        let context = self.context(dot)?;
        if dot.region == region {
            return Some(dot.counter);
        }
        Some(
            context
                .iter()
                .find(|d| d.region == region)
                .map_or(0, |d| d.counter),
        )
    }

    /// Records a write: `dot`, made over a version whose vector was `context`, set the fields
    /// named in `applied` and, when `deleted`, the tombstone; `version` is the result. Fields
    /// the write removed (a delete keeps only later ones) and writes nothing names any more
    /// are dropped.
    pub fn record(
        &mut self,
        version: &PartyVersion,
        applied: &[String],
        deleted: bool,
        dot: &Dot,
        context: &[Dot],
    ) {
        for name in applied {
            match self.fields.binary_search_by(|f| f.name.as_str().cmp(name)) {
                Ok(i) => self.fields[i].dot = dot.clone(),
                Err(i) => self.fields.insert(
                    i,
                    FieldWrite {
                        name: name.clone(),
                        dot: dot.clone(),
                    },
                ),
            }
        }
        if deleted {
            self.tombstone = Some(dot.clone());
        }
        if let Err(i) = self.writes.binary_search_by(|w| w.dot.cmp(dot)) {
            self.writes.insert(
                i,
                Write {
                    dot: dot.clone(),
                    context: context.to_vec(),
                },
            );
        }
        self.prune(version);
    }

    /// The writes behind `merged`, the result of merging `local` and `remote`: a field or the
    /// tombstone is the write of the input that holds it: the same stamp, and for a JSON field
    /// the same value (of two different writes that match, the greater dot, so the answer does
    /// not depend on which side is local). A value no input holds — a policy's computed value,
    /// which carries an input's stamp — has no known write. An array field is matched by its
    /// stamp alone: its entries name their own writes.
    pub fn merged(
        local: (&PartyVersion, &Writes),
        remote: (&PartyVersion, &Writes),
        merged: &PartyVersion,
    ) -> Writes {
        let behind = |field: &crate::Field| {
            [local, remote]
                .into_iter()
                .filter(|(v, _)| {
                    v.field(&field.name).is_some_and(|f| {
                        f.stamp == field.stamp
                            && match (&f.value, &field.value) {
                                (FieldValue::Json(a), FieldValue::Json(b)) => a == b,
                                (FieldValue::Elements(_), FieldValue::Elements(_)) => true,
                                _ => false,
                            }
                    })
                })
                .filter_map(|(_, w)| w.field(&field.name))
                .max()
        };
        let fields = merged
            .fields
            .iter()
            .filter_map(|f| {
                behind(f).map(|dot| FieldWrite {
                    name: f.name.clone(),
                    dot: dot.clone(),
                })
            })
            .collect();
        let tombstone = merged.tombstone.as_ref().and_then(|stamp| {
            [local, remote]
                .into_iter()
                .filter(|(v, _)| v.tombstone.as_ref() == Some(stamp))
                .filter_map(|(_, w)| w.tombstone.as_ref())
                .max()
                .cloned()
        });
        let mut writes: Vec<Write> = local.1.writes.clone();
        for w in &remote.1.writes {
            match writes.binary_search_by(|x| x.dot.cmp(&w.dot)) {
                // One dot names one write; should two tables disagree on its context, the
                // lesser is kept, whichever side it came from.
                Ok(i) => {
                    if w.context < writes[i].context {
                        writes[i].context = w.context.clone();
                    }
                }
                Err(i) => writes.insert(i, w.clone()),
            }
        }
        let mut out = Writes {
            fields,
            tombstone,
            writes,
        };
        out.prune(merged);
        out
    }

    /// The part of this table that `sent` names: the writes of its fields, entries and
    /// tombstone, where `sent` holds only some of the version's fields and elements (a call
    /// that leaves out what both versions hold, contract revision 1.1), as packed format 3
    /// carries them.
    pub fn for_sent(&self, sent: &PartyVersion) -> Writes {
        let mut out = self.clone();
        out.prune(sent);
        out
    }

    /// Drops what `version` no longer holds: fields it lacks, a tombstone it lacks, and writes
    /// no field, entry or tombstone names.
    fn prune(&mut self, version: &PartyVersion) {
        self.fields.retain(|f| version.field(&f.name).is_some());
        if version.tombstone.is_none() {
            self.tombstone = None;
        }
        let mut named: Vec<&Dot> = self.fields.iter().map(|f| &f.dot).collect();
        named.extend(self.tombstone.as_ref());
        for field in &version.fields {
            if let FieldValue::Elements(elements) = &field.value {
                named.extend(
                    elements
                        .iter()
                        .flat_map(|e| e.entries.iter().map(|x| &x.dot)),
                );
            }
        }
        named.sort_unstable();
        self.writes.retain(|w| named.binary_search(&&w.dot).is_ok());
    }

    fn behind<'a>(&'a self, version: &PartyVersion, name: &str) -> Behind<'a> {
        match (version.field(name), self.field(name)) {
            (Some(_), Some(dot)) => Behind::Write(dot),
            (Some(_), None) => Behind::Unknown,
            (None, _) => match (&version.tombstone, &self.tombstone) {
                (None, _) => Behind::Nothing,
                (Some(_), Some(dot)) => Behind::Write(dot),
                (Some(_), None) => Behind::Unknown,
            },
        }
    }
}

/// Which side changed the field `name` since the other saw it. A field a side lacks stands for
/// that side's delete when it has a tombstone, and for no write at all otherwise.
pub fn change(
    local: (&PartyVersion, &Writes),
    remote: (&PartyVersion, &Writes),
    name: &str,
) -> Change {
    let (l, r) = (
        local.1.behind(local.0, name),
        remote.1.behind(remote.0, name),
    );
    if l == Behind::Unknown || r == Behind::Unknown {
        return Change::Unknown;
    }
    if l == r {
        return Change::Same;
    }
    let unseen = |behind: Behind<'_>, other: &PartyVersion| match behind {
        Behind::Write(dot) => !covers(&other.version_vector, dot),
        Behind::Nothing | Behind::Unknown => false,
    };
    match (unseen(l, remote.0), unseen(r, local.0)) {
        (true, false) => Change::Local,
        (false, true) => Change::Remote,
        _ => Change::Both,
    }
}
