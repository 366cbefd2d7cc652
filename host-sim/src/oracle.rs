//! The checks a run is judged by, written from the specification and sharing no code with
//! what they judge: no merge helper, no causality helper of the host, no excuse keyed on a
//! region or a policy. They read plain data — the writes the clients were told succeeded, the
//! resolutions the conflict log recorded, the parties every region stores — and decide:
//!
//! - **No silent loss.** Every acknowledged write is visible in the final state, or causally
//!   superseded (a later acknowledged write to the same field or element whose version had
//!   seen it, and which is itself accounted for), or removed by an acknowledged delete that saw
//!   it, or dropped by a recorded policy decision (a resolution whose input had seen and held
//!   the write and whose result does not). Drops are attributed to the policy that made them.
//! - **Convergence.** After healing, every region stores the same parties, and a conflict
//!   settled in several regions was settled alike in all of them.
//! - **One effect per idempotency key.** No event is applied twice in one region.

use std::collections::{BTreeMap, HashMap};

use policy_types::writes::Writes;
use policy_types::{Dot, FieldValue, PartyVersion};
use serde_json::Value;

/// What an acknowledged write changed: a field, or one element of an array field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub party: String,
    pub field: String,
    /// The element's identity (`id:…` or `c:…`), for array fields.
    pub element: Option<String>,
}

/// One acknowledged write of one target.
#[derive(Clone, Debug)]
pub struct Ack {
    pub event: String,
    pub region: String,
    pub target: Target,
    /// What the client wrote (`None`: it removed the element).
    pub value: Option<Value>,
    /// The write's own dot: its region and that region's counter after it.
    pub dot: Dot,
    /// The version vector of the version it produced: every write it had seen.
    pub seen: Vec<Dot>,
    pub step: usize,
}

/// One acknowledged write of a party as a whole: the fields it wrote (an array field even when
/// no element changed: the write stamped it), its dot and what it had seen.
#[derive(Clone, Debug)]
pub struct Wrote {
    pub party: String,
    pub fields: Vec<String>,
    pub dot: Dot,
    pub seen: Vec<Dot>,
}

/// An acknowledged delete of a party.
#[derive(Clone, Debug)]
pub struct AckedDelete {
    pub party: String,
    pub seen: Vec<Dot>,
}

/// A resolution the pipeline recorded: its inputs and what it wrote, by which policy.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub conflict: String,
    pub region: String,
    pub policy: Option<String>,
    pub inputs: [PartyVersion; 2],
    pub written: Option<PartyVersion>,
    pub failed: bool,
}

/// The verdict.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Acknowledged writes nothing accounts for, described.
    pub lost: Vec<String>,
    /// Writes dropped by a recorded decision, per policy digest.
    pub dropped_by: BTreeMap<String, usize>,
    pub superseded: usize,
    pub visible: usize,
    pub deleted: usize,
    pub converged: bool,
    /// Conflicts settled differently in two regions, described.
    pub settled_differently: Vec<String>,
}

/// The writes the regions' parties name behind their fields (`policy_types::writes`), judged
/// against the acknowledged writes.
#[derive(Clone, Debug, Default)]
pub struct WritesVerdict {
    /// Fields whose named write a client was told succeeded, and which it checks out against.
    pub named: usize,
    /// Fields whose write is not named (their write was merged in from a copy that keeps none).
    pub unknown: usize,
    /// Fields whose named write no client heard of (an event applied but not acknowledged).
    pub unjudged: usize,
    /// Named writes that are wrong, described.
    pub wrong: Vec<String>,
}

/// Each region's name and its final parties by id, with the writes each names behind its
/// fields.
pub type FinalWrites = Vec<(String, HashMap<String, (PartyVersion, Writes)>)>;

/// Judges what every region's parties name as the write behind each field, from the
/// acknowledged writes alone: a named write that a client was told succeeded must have written
/// that field, in the region of the field's stamp, and must keep as its context exactly what
/// it had seen before it (the vector it produced, less itself).
pub fn judge_writes(wrote: &[Wrote], regions: &FinalWrites) -> WritesVerdict {
    let by_write: HashMap<(&str, &Dot), &Wrote> = wrote
        .iter()
        .map(|w| ((w.party.as_str(), &w.dot), w))
        .collect();
    let mut verdict = WritesVerdict::default();
    for (region, parties) in regions {
        for (id, (version, writes)) in parties {
            for field in &version.fields {
                let Some(named) = writes.fields.iter().find(|w| w.name == field.name) else {
                    verdict.unknown += 1;
                    continue;
                };
                let Some(made) = by_write.get(&(id.as_str(), &named.dot)) else {
                    verdict.unjudged += 1;
                    continue;
                };
                let at = format!(
                    "{region}: {id}.{} names {}:{}",
                    field.name, named.dot.region, named.dot.counter
                );
                if !made.fields.contains(&field.name) {
                    verdict.wrong.push(format!("{at}, which did not write it"));
                } else if field.stamp.region != named.dot.region {
                    verdict.wrong.push(format!(
                        "{at}, but the field is stamped by {}",
                        field.stamp.region
                    ));
                } else {
                    let before: Vec<Dot> = made
                        .seen
                        .iter()
                        .map(|d| match d.region == named.dot.region {
                            true => Dot::new(d.region.clone(), d.counter - 1),
                            false => d.clone(),
                        })
                        .filter(|d| d.counter > 0)
                        .collect();
                    match writes.writes.iter().find(|w| w.dot == named.dot) {
                        Some(w) if w.context == before => verdict.named += 1,
                        other => verdict.wrong.push(format!(
                            "{at} with context {:?}; the write had seen {before:?}",
                            other.map(|w| &w.context)
                        )),
                    }
                }
            }
        }
    }
    verdict
}

/// Whether `seen` includes `dot`.
fn has_seen(seen: &[Dot], dot: &Dot) -> bool {
    seen.iter()
        .any(|d| d.region == dot.region && d.counter >= dot.counter)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Whether `version` shows what the write wrote.
pub fn holds(version: &PartyVersion, target: &Target, value: Option<&Value>) -> bool {
    let field = version.fields.iter().find(|f| f.name == target.field);
    match (&target.element, value) {
        (None, Some(v)) => {
            matches!(field.map(|f| &f.value), Some(FieldValue::Json(t)) if parse(t) == *v)
        }
        (None, None) => field.is_none(),
        (Some(key), v) => {
            let element = match field.map(|f| &f.value) {
                Some(FieldValue::Elements(elements)) => elements.iter().find(|e| &e.key == key),
                _ => None,
            };
            // The visible entry: the greatest stamp, then the greatest text.
            let shown = element.and_then(|e| {
                e.entries
                    .iter()
                    .max_by(|a, b| a.stamp.cmp(&b.stamp).then_with(|| a.value.cmp(&b.value)))
            });
            match (shown, v) {
                (Some(entry), Some(v)) => parse(&entry.value) == *v,
                (None, None) => true,
                _ => false,
            }
        }
    }
}

/// The parts of a stored version every region must agree on.
pub fn same(a: &PartyVersion, b: &PartyVersion) -> bool {
    let mut va = a.version_vector.clone();
    let mut vb = b.version_vector.clone();
    va.retain(|d| d.counter > 0);
    vb.retain(|d| d.counter > 0);
    va.sort_by(|x, y| x.region.cmp(&y.region));
    vb.sort_by(|x, y| x.region.cmp(&y.region));
    a.fields == b.fields && a.tombstone == b.tombstone && va == vb
}

struct Judge<'a> {
    acks: &'a [Ack],
    deletes: &'a [AckedDelete],
    recorded: &'a [Recorded],
    finals: &'a HashMap<String, PartyVersion>,
    by_target: HashMap<&'a Target, Vec<usize>>,
    memo: HashMap<usize, Option<Account>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Account {
    Visible,
    Superseded,
    Deleted,
    Dropped(String),
}

impl Judge<'_> {
    fn account(&mut self, i: usize) -> Option<Account> {
        if let Some(known) = self.memo.get(&i) {
            return known.clone();
        }
        // Guards against a cycle in malformed input: a write is not its own excuse.
        self.memo.insert(i, None);
        let found = self.find(i);
        self.memo.insert(i, found.clone());
        found
    }

    fn find(&mut self, i: usize) -> Option<Account> {
        let a = &self.acks[i];
        let fin = self.finals.get(&a.target.party);
        if fin.is_some_and(|f| holds(f, &a.target, a.value.as_ref())) {
            return Some(Account::Visible);
        }
        let later: Vec<usize> = self.by_target[&a.target]
            .iter()
            .copied()
            .filter(|&j| j != i && has_seen(&self.acks[j].seen, &a.dot))
            .collect();
        for j in later {
            if self.account(j).is_some() {
                return Some(Account::Superseded);
            }
        }
        if fin.is_some_and(|f| f.tombstone.is_some())
            && self
                .deletes
                .iter()
                .any(|d| d.party == a.target.party && has_seen(&d.seen, &a.dot))
        {
            return Some(Account::Deleted);
        }
        // Dropped by a recorded decision: an input had seen and held the write, the result does
        // not, and the result holds instead another acknowledged write to the same field or
        // element (the policy chose between two writes), or the party deleted by an
        // acknowledged delete. A policy that drops a write for nothing — a field the other
        // version never had, an element no write left there — explains nothing.
        let held_instead = |written: &PartyVersion| {
            self.by_target[&a.target].iter().any(|&j| {
                let b = &self.acks[j];
                j != i && holds(written, &b.target, b.value.as_ref())
            }) || (written.tombstone.is_some()
                && self.deletes.iter().any(|d| d.party == a.target.party))
        };
        self.recorded
            .iter()
            .find(|r| {
                let Some(written) = &r.written else {
                    return false;
                };
                r.policy.is_some()
                    && r.inputs.iter().any(|input| {
                        input.party_id == a.target.party
                            && has_seen(&input.version_vector, &a.dot)
                            && holds(input, &a.target, a.value.as_ref())
                    })
                    && !holds(written, &a.target, a.value.as_ref())
                    && held_instead(written)
            })
            .map(|r| Account::Dropped(r.policy.clone().unwrap_or_default()))
    }
}

/// What the final state shows for a target: the value, or the element's entries.
fn shown(version: Option<&PartyVersion>, target: &Target) -> String {
    let Some(v) = version else {
        return "no such party".to_owned();
    };
    let deleted = if v.tombstone.is_some() {
        " (deleted)"
    } else {
        ""
    };
    let field = v.fields.iter().find(|f| f.name == target.field);
    let what = match (field.map(|f| &f.value), &target.element) {
        (None, _) => "absent".to_owned(),
        (Some(FieldValue::Json(t)), _) => t.clone(),
        (Some(FieldValue::Elements(elements)), Some(key)) => {
            match elements.iter().find(|e| &e.key == key) {
                None => "element absent".to_owned(),
                Some(e) => e
                    .entries
                    .iter()
                    .map(|x| format!("{} by {}:{}", x.value, x.dot.region, x.dot.counter))
                    .collect::<Vec<_>>()
                    .join(" | "),
            }
        }
        (Some(FieldValue::Elements(_)), None) => "an array".to_owned(),
    };
    format!("{what}{deleted}")
}

fn describe(a: &Ack) -> String {
    let what = match &a.target.element {
        Some(k) => format!("{}.{}[{k}]", a.target.party, a.target.field),
        None => format!("{}.{}", a.target.party, a.target.field),
    };
    let value = a
        .value
        .as_ref()
        .map_or("(removed)".to_owned(), Value::to_string);
    format!(
        "{what} = {value} (event {}, {} at step {}, dot {}:{})",
        a.event, a.region, a.step, a.dot.region, a.dot.counter
    )
}

/// Judges a run: `regions` are every region's final parties by party id.
pub fn judge(
    acks: &[Ack],
    deletes: &[AckedDelete],
    recorded: &[Recorded],
    regions: &[(String, HashMap<String, PartyVersion>)],
) -> Verdict {
    let mut verdict = Verdict::default();
    let first = &regions[0].1;
    verdict.converged = regions.iter().all(|(_, parties)| {
        parties.len() == first.len()
            && parties
                .iter()
                .all(|(id, v)| first.get(id).is_some_and(|f| same(f, v)))
    });
    let mut by_target: HashMap<&Target, Vec<usize>> = HashMap::new();
    for (i, a) in acks.iter().enumerate() {
        by_target.entry(&a.target).or_default().push(i);
    }
    let mut judge = Judge {
        acks,
        deletes,
        recorded,
        finals: first,
        by_target,
        memo: HashMap::new(),
    };
    for (i, ack) in acks.iter().enumerate() {
        match judge.account(i) {
            Some(Account::Visible) => verdict.visible += 1,
            Some(Account::Superseded) => verdict.superseded += 1,
            Some(Account::Deleted) => verdict.deleted += 1,
            Some(Account::Dropped(policy)) => *verdict.dropped_by.entry(policy).or_default() += 1,
            None => verdict.lost.push(format!(
                "{}; the final state shows {}",
                describe(ack),
                shown(first.get(&ack.target.party), &ack.target)
            )),
        }
    }
    // The same conflict, settled by the same policy wherever it was settled, must be settled
    // alike (during a rollout two policies may settle it differently, one in each region).
    let mut settled: BTreeMap<(&str, Option<&str>), Vec<&Recorded>> = BTreeMap::new();
    for r in recorded.iter().filter(|r| r.written.is_some()) {
        settled
            .entry((&r.conflict, r.policy.as_deref()))
            .or_default()
            .push(r);
    }
    for ((id, _), rs) in settled {
        let same_inputs = |x: &Recorded, y: &Recorded| {
            (same(&x.inputs[0], &y.inputs[0]) && same(&x.inputs[1], &y.inputs[1]))
                || (same(&x.inputs[0], &y.inputs[1]) && same(&x.inputs[1], &y.inputs[0]))
        };
        let written = |r: &Recorded| r.written.clone().expect("filtered");
        let differ = rs.iter().enumerate().find_map(|(k, x)| {
            rs[k + 1..]
                .iter()
                .find(|y| same_inputs(x, y) && !same(&written(x), &written(y)))
                .map(|y| (*x, *y))
        });
        if let Some((x, y)) = differ {
            verdict.settled_differently.push(format!(
                "conflict {} of {} settled differently in {} and {} (policy {})",
                &id[..12.min(id.len())],
                x.inputs[0].party_id,
                x.region,
                y.region,
                y.policy.as_deref().map_or("-", |p| &p[..12.min(p.len())]),
            ));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_types::{Field, Hlc, ResourceType};

    /// Dots from `(region, counter)` pairs.
    fn dots(pairs: &[(&str, u64)]) -> Vec<Dot> {
        pairs
            .iter()
            .map(|(r, c)| Dot {
                region: (*r).into(),
                counter: *c,
            })
            .collect()
    }

    fn version(vv: &[(&str, u64)], given: Option<&str>) -> PartyVersion {
        PartyVersion {
            tenant: "acme".into(),
            party_id: "p1".into(),
            resource_type: ResourceType::Individual,
            fields: given
                .map(|g| Field {
                    name: "givenName".into(),
                    stamp: Hlc::new(1, 0, "eu"),
                    value: FieldValue::Json(format!("\"{g}\"")),
                })
                .into_iter()
                .collect(),
            version_vector: dots(vv),
            tombstone: None,
            origin_region: "eu".into(),
        }
    }

    fn ack(event: &str, region: &str, counter: u64, seen: &[(&str, u64)], value: &str) -> Ack {
        Ack {
            event: event.into(),
            region: region.into(),
            target: Target {
                party: "p1".into(),
                field: "givenName".into(),
                element: None,
            },
            value: Some(Value::String(value.into())),
            dot: Dot {
                region: region.into(),
                counter,
            },
            seen: dots(seen),
            step: 0,
        }
    }

    fn regions(v: PartyVersion) -> Vec<(String, HashMap<String, PartyVersion>)> {
        vec![("eu".into(), HashMap::from([("p1".to_owned(), v)]))]
    }

    #[test]
    fn a_write_superseded_by_one_that_saw_it_is_not_lost_but_a_concurrent_one_is() {
        let finals = regions(version(&[("eu", 1), ("na", 1)], Some("B")));
        let seen_it = [
            ack("a", "eu", 1, &[("eu", 1)], "A"),
            ack("b", "na", 1, &[("eu", 1), ("na", 1)], "B"),
        ];
        assert!(judge(&seen_it, &[], &[], &finals).lost.is_empty());
        let concurrent = [
            ack("a", "eu", 1, &[("eu", 1)], "A"),
            ack("b", "na", 1, &[("na", 1)], "B"),
        ];
        let verdict = judge(&concurrent, &[], &[], &finals);
        assert_eq!(verdict.lost.len(), 1, "{verdict:?}");
        assert!(verdict.lost[0].contains("event a"));
    }

    #[test]
    fn a_superseding_write_that_was_itself_lost_excuses_nothing() {
        let finals = regions(version(&[("apac", 1), ("eu", 1), ("na", 1)], Some("C")));
        let acks = [
            ack("a", "eu", 1, &[("eu", 1)], "A"),
            ack("b", "na", 1, &[("eu", 1), ("na", 1)], "B"),
            // C is concurrent with B and took its place with no record: B is lost, so A is too.
            ack("c", "apac", 1, &[("apac", 1)], "C"),
        ];
        let verdict = judge(&acks, &[], &[], &finals);
        assert_eq!(verdict.lost.len(), 2, "{verdict:?}");
    }

    #[test]
    fn a_drop_is_attributed_to_the_recorded_decision_that_made_it() {
        let input = version(&[("eu", 1)], Some("A"));
        let written = version(&[("eu", 1), ("na", 1)], Some("B"));
        let recorded = [Recorded {
            conflict: "c1".into(),
            region: "na".into(),
            policy: Some("digest-of-keep-local".into()),
            inputs: [input, version(&[("na", 1)], Some("B"))],
            written: Some(written.clone()),
            failed: false,
        }];
        let acks = [
            ack("a", "eu", 1, &[("eu", 1)], "A"),
            ack("b", "na", 1, &[("na", 1)], "B"),
        ];
        let verdict = judge(&acks, &[], &recorded, &regions(written));
        assert!(verdict.lost.is_empty(), "{verdict:?}");
        assert_eq!(verdict.dropped_by["digest-of-keep-local"], 1);
    }

    #[test]
    fn one_conflict_settled_two_ways_by_one_policy_fails_but_by_two_policies_does_not() {
        let a = version(&[("eu", 1), ("na", 1)], Some("A"));
        let b = version(&[("eu", 1), ("na", 1)], Some("B"));
        let settled = |region: &str, policy: &str, written: &PartyVersion| Recorded {
            conflict: "c1".into(),
            region: region.into(),
            policy: Some(policy.into()),
            inputs: [
                version(&[("eu", 1)], Some("A")),
                version(&[("na", 1)], Some("B")),
            ],
            written: Some(written.clone()),
            failed: false,
        };
        let one_policy = [settled("eu", "p1", &a), settled("na", "p1", &b)];
        let verdict = judge(&[], &[], &one_policy, &regions(a.clone()));
        assert_eq!(verdict.settled_differently.len(), 1, "{verdict:?}");
        let rollout = [settled("eu", "p1", &a), settled("na", "p2", &b)];
        assert!(
            judge(&[], &[], &rollout, &regions(a))
                .settled_differently
                .is_empty()
        );
    }

    #[test]
    fn regions_that_differ_do_not_converge() {
        let mut two = regions(version(&[("eu", 1)], Some("A")));
        two.push((
            "na".into(),
            HashMap::from([("p1".to_owned(), version(&[("eu", 1)], Some("B")))]),
        ));
        assert!(!judge(&[], &[], &[], &two).converged);
    }
}
