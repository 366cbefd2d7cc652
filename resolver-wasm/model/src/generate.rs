//! Generators of realistic TMF632 conflicts for property tests and law checks.
//!
//! A [`Plan`] is plain data (so proptest can shrink it): a base party created in one region,
//! then for each of two or three regions a list of writes made concurrently from that base —
//! or, for a plan made `apart`, the party created in every region at once (its create event
//! delivered to two regions before either replicated), each region then writing on its own. A
//! region may also receive another's version mid-history ([`Op::Receive`]; then the versions
//! are not all concurrent). [`Plan::build`] replays it through the same write functions the hosts use, so generated
//! versions are versions real regions could hold: stamps from region clocks, one dot per write,
//! version vectors that cover every dot they hold.

use crate::{HlcClock, delete, new_party, tick, write_fields};
use policy_types::writes::Writes;
use policy_types::{PartyVersion, ResourceType};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The regions generated histories write in.
pub const REGIONS: [&str; 3] = ["apac", "eu", "na"];

/// One write of a generated history. Indices are taken modulo what exists when it runs.
#[derive(Clone, Debug)]
pub enum Op {
    SetScalar {
        field: u8,
        value: u8,
    },
    SetStatus {
        status: u8,
    },
    AddElement {
        field: u8,
        seed: u8,
    },
    RemoveElement {
        field: u8,
        which: u8,
    },
    ChangeElement {
        field: u8,
        which: u8,
        seed: u8,
    },
    Delete,
    /// The region receives the version region `from` holds after its first `after` writes
    /// (replication delivering it mid-history) and settles it with its own as a host does:
    /// the merge [`Plan::build_merging`] is handed. Honoured only from a region that itself
    /// receives nothing (no chains, so no cycles); [`Plan::build`] and the random plans
    /// ([`plan`]) leave receives out.
    Receive {
        from: u8,
        after: u8,
    },
}

/// A version and the writes behind its fields.
pub type Recorded = (PartyVersion, Writes);

/// How a region settles a version it receives with its own (`local`, `received`): the
/// written version and its writes, or `None` to leave its own as it is.
pub type Merge<'a> =
    dyn FnMut(&str, (&PartyVersion, &Writes), (&PartyVersion, &Writes)) -> Option<Recorded> + 'a;

/// A base party and concurrent histories from it, one per region.
#[derive(Clone, Debug)]
pub struct Plan {
    pub resource: ResourceType,
    /// v4-style elements (no ids) instead of v5-style ones.
    pub v4: bool,
    pub base_elements: [u8; 4],
    /// Milliseconds each region's clock is ahead of the base write.
    pub skew: Vec<u16>,
    pub branches: Vec<Vec<Op>>,
    /// Each region creates the party itself, concurrently, instead of branching from one base
    /// created in `apac`: the creates carry the same members but for `givenName`, which each
    /// region spells its own way; every write is then concurrent with the other regions' own.
    pub apart: bool,
}

const SCALARS_INDIVIDUAL: [&str; 5] = [
    "givenName",
    "familyName",
    "gender",
    "birthDate",
    "nationality",
];
const SCALARS_ORGANIZATION: [&str; 4] =
    ["name", "tradingName", "isLegalEntity", "organizationType"];
const ARRAYS_INDIVIDUAL: [&str; 5] = [
    "contactMedium",
    "partyCharacteristic",
    "externalReference",
    "relatedParty",
    "individualIdentification",
];
const ARRAYS_ORGANIZATION: [&str; 4] = [
    "contactMedium",
    "partyCharacteristic",
    "externalReference",
    "organizationIdentification",
];
const STATUSES_INDIVIDUAL: [&str; 4] = ["initialized", "validated", "deceased", "deceaded"];
const STATUSES_ORGANIZATION: [&str; 3] = ["initialized", "validated", "closed"];
const WORDS: [&str; 8] = [
    "Jane",
    "Smith",
    "tennis",
    "football",
    "Acme",
    "Globex",
    "female",
    "1967-09-26",
];

fn scalars(r: ResourceType) -> &'static [&'static str] {
    match r {
        ResourceType::Individual => &SCALARS_INDIVIDUAL,
        ResourceType::Organization => &SCALARS_ORGANIZATION,
    }
}

fn arrays(r: ResourceType) -> &'static [&'static str] {
    match r {
        ResourceType::Individual => &ARRAYS_INDIVIDUAL,
        ResourceType::Organization => &ARRAYS_ORGANIZATION,
    }
}

fn statuses(r: ResourceType) -> &'static [&'static str] {
    match r {
        ResourceType::Individual => &STATUSES_INDIVIDUAL,
        ResourceType::Organization => &STATUSES_ORGANIZATION,
    }
}

/// An element of `field` made from `seed`, shaped like the official examples.
fn element(field: &str, seed: u8, v4: bool) -> Value {
    let word = WORDS[seed as usize % WORDS.len()];
    let mut e = match field {
        "contactMedium" => json!({
            "mediumType": (["email", "phone", "postalAddress"][seed as usize % 3]),
            "preferred": seed.is_multiple_of(2),
            "characteristic": {"emailAddress": format!("{}{}@example.com", word.to_lowercase(), seed % 5)}
        }),
        "partyCharacteristic" => {
            json!({"name": (["hobby", "language"][seed as usize % 2]), "value": word})
        }
        "externalReference" => {
            json!({"externalReferenceType": "loyalty", "name": format!("{word}-{}", seed % 7)})
        }
        "relatedParty" => json!({"role": "guardian", "name": word}),
        _ => json!({"identificationType": "passport", "identificationId": format!("{seed:05}")}),
    };
    if !v4 {
        e["id"] = Value::String(format!("{}", seed % 6));
        e["@type"] = Value::String(field.to_owned());
    }
    e
}

/// What every region's history starts from.
struct Start {
    tenant: &'static str,
    id: &'static str,
    base: PartyVersion,
    base_writes: Writes,
    stamp: policy_types::Hlc,
    members: Map<String, Value>,
}

impl Plan {
    /// The versions the regions hold after their histories: `branches.len()` versions of one
    /// party, concurrent unless a region received another's.
    pub fn build(&self) -> Vec<PartyVersion> {
        self.build_recorded().into_iter().map(|(v, _)| v).collect()
    }

    /// [`Plan::build`], with the writes behind each version (`policy_types::writes`).
    /// Receives are left out (each still takes its millisecond of the region's clock).
    pub fn build_recorded(&self) -> Vec<Recorded> {
        self.build_merging(&mut |_, _, _| None)
    }

    /// [`Plan::build_recorded`], a region settling each version it receives by `merge`
    /// (called with the receiving region's name).
    pub fn build_merging(&self, merge: &mut Merge) -> Vec<Recorded> {
        let tenant = "acme";
        let id = "42";
        let base_region = REGIONS[0];
        let mut base = new_party(tenant, id, self.resource, base_region);
        let mut base_writes = Writes::default();
        let mut clock = HlcClock::new(base_region);
        let stamp = clock.now(1_000);
        let dot = tick(&mut base, base_region);
        let mut members = Map::new();
        members.insert("@type".into(), json!(self.resource.as_str()));
        for (i, name) in scalars(self.resource).iter().enumerate().take(3) {
            members.insert((*name).into(), json!(WORDS[i]));
        }
        members.insert("status".into(), json!("initialized"));
        for (i, name) in arrays(self.resource).iter().enumerate() {
            let count = self.base_elements[i % 4] % 4;
            let items: Vec<Value> = (0..count)
                .map(|k| element(name, k * 3 + i as u8, self.v4))
                .collect();
            members.insert((*name).into(), Value::Array(items));
        }
        if !self.apart {
            let applied = write_fields(&mut base, &members, &stamp, &dot).applied;
            base_writes.record(&base, &applied, false, &dot, &[]);
        }

        let start = Start {
            tenant,
            id,
            base,
            base_writes,
            stamp,
            members,
        };
        (0..self.branches.len())
            .map(|b| self.branch(&start, b, self.branches[b].len(), merge))
            .collect()
    }

    /// Whether region `b`'s history holds a receive.
    fn receives(&self, b: usize) -> bool {
        self.branches[b]
            .iter()
            .any(|op| matches!(op, Op::Receive { .. }))
    }

    /// The version region `b` holds after its first `n` writes.
    fn branch(&self, start: &Start, b: usize, n: usize, merge: &mut Merge) -> Recorded {
        let region = REGIONS[b % REGIONS.len()];
        let mut v = start.base.clone();
        let mut writes = start.base_writes.clone();
        let mut clock = HlcClock::new(region);
        clock.observe(&start.stamp, 1_000);
        let mut now = 1_000 + u64::from(self.skew.get(b).copied().unwrap_or(0));
        if self.apart {
            v = new_party(start.tenant, start.id, self.resource, region);
            writes = Writes::default();
            let mut created = start.members.clone();
            let first = scalars(self.resource)[0];
            created.insert(first.into(), json!(WORDS[b % WORDS.len()]));
            now += 1;
            let stamp = clock.now(now);
            let dot = tick(&mut v, region);
            let applied = write_fields(&mut v, &created, &stamp, &dot).applied;
            writes.record(&v, &applied, false, &dot, &[]);
        }
        for op in self.branches[b].iter().take(n) {
            now += 1;
            if let Op::Receive { from, after } = op {
                let f = usize::from(*from) % self.branches.len();
                if f == b || self.receives(f) {
                    continue;
                }
                let after = usize::from(*after).min(self.branches[f].len());
                let (sent, sent_writes) = self.branch(start, f, after, merge);
                if let Some((mut merged, merged_writes)) =
                    merge(region, (&v, &writes), (&sent, &sent_writes))
                {
                    merged.origin_region = region.to_owned();
                    // The region's clock has seen what it received: its next write is
                    // stamped after every stamp it now holds, as ingest stamps one.
                    if let Some(latest) = merged.max_stamp() {
                        clock.observe(latest, now);
                    }
                    (v, writes) = (merged, merged_writes);
                }
                continue;
            }
            let stamp = clock.now(now);
            self.apply((&mut v, &mut writes), op, region, &stamp);
        }
        (v, writes)
    }

    fn apply(
        &self,
        (v, writes): (&mut PartyVersion, &mut Writes),
        op: &Op,
        region: &str,
        stamp: &policy_types::Hlc,
    ) {
        let context = v.version_vector.clone();
        let r = self.resource;
        let current = crate::to_tmf(v).unwrap_or_else(|| json!({}));
        let mut members = Map::new();
        match op {
            Op::SetScalar { field, value } => {
                let name = scalars(r)[*field as usize % scalars(r).len()];
                members.insert(name.into(), json!(WORDS[*value as usize % WORDS.len()]));
            }
            Op::SetStatus { status } => {
                members.insert(
                    "status".into(),
                    json!(statuses(r)[*status as usize % statuses(r).len()]),
                );
            }
            Op::AddElement { field, seed }
            | Op::RemoveElement { field, which: seed }
            | Op::ChangeElement { field, seed, .. } => {
                let name = arrays(r)[*field as usize % arrays(r).len()];
                let mut items = current
                    .get(name)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                match op {
                    Op::AddElement { .. } => items.push(element(name, *seed, self.v4)),
                    Op::RemoveElement { .. } if !items.is_empty() => {
                        let i = *seed as usize % items.len();
                        items.remove(i);
                    }
                    Op::ChangeElement { which, .. } if !items.is_empty() => {
                        let i = *which as usize % items.len();
                        let mut changed = element(name, seed.wrapping_add(1), true);
                        // Keep the identity where there is one: a change, not a replacement.
                        match items[i].get("id") {
                            Some(id) => changed["id"] = id.clone(),
                            None => {
                                changed.as_object_mut().unwrap().remove("id");
                                changed.as_object_mut().unwrap().remove("@type");
                            }
                        }
                        items[i] = changed;
                    }
                    _ => return,
                }
                members.insert(name.into(), Value::Array(items));
            }
            Op::Receive { .. } => return,
            Op::Delete => {
                let dot = tick(v, region);
                if delete(v, stamp) {
                    writes.record(v, &[], true, &dot, &context);
                }
                return;
            }
        }
        let dot = tick(v, region);
        let applied = write_fields(v, &members, stamp, &dot).applied;
        if !applied.is_empty() {
            writes.record(v, &applied, false, &dot, &context);
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u8>(), any::<u8>()).prop_map(|(field, value)| Op::SetScalar { field, value }),
        2 => any::<u8>().prop_map(|status| Op::SetStatus { status }),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(field, seed)| Op::AddElement { field, seed }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(field, which)| Op::RemoveElement { field, which }),
        2 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(field, which, seed)| Op::ChangeElement { field, which, seed }),
        1 => Just(Op::Delete),
    ]
}

/// Plans with `regions` concurrent histories (2 or 3) of up to `max_ops` writes each.
pub fn plan(regions: usize, max_ops: usize) -> impl Strategy<Value = Plan> {
    (
        prop_oneof![
            Just(ResourceType::Individual),
            Just(ResourceType::Organization)
        ],
        any::<bool>(),
        any::<[u8; 4]>(),
        proptest::collection::vec(0u16..5, regions),
        proptest::collection::vec(proptest::collection::vec(op(), 1..=max_ops), regions),
    )
        .prop_map(|(resource, v4, base_elements, skew, branches)| Plan {
            resource,
            v4,
            base_elements,
            skew,
            branches,
            apart: false,
        })
}
