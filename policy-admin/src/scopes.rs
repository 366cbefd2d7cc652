//! Small scopes, enumerated: every history of a few writes over two or three regions — from
//! one base, or from creates made in each region at once — on a small field vocabulary, so that the law checker finds a flaw that needs one particular
//! interleaving every time instead of when the random generator happens upon it.
//!
//! A scope is a list of [`Plan`]s (the generators' plain data, built by the same write
//! functions as the random cases), in order of size: the first failure found is among the
//! smallest, and needs no shrinking. Nothing here depends on a seed.

use party_model::generate::{Op, Plan};
use policy_types::ResourceType;

/// Which histories a scope enumerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Concurrent regions (branches from one base): 1, 2 or 3.
    pub regions: usize,
    /// Writes in all regions together; every region makes at least one.
    pub max_ops: usize,
}

/// The writes a region may make, on the vocabulary of a base individual created in `apac`
/// (`givenName` "Jane", `status` "initialized", one contact medium, beside the generator's
/// other base fields, which no write touches): the scalar set to a value another region may
/// also write ("Smith") or to another one ("tennis"), a status change and a terminal one, a
/// contact medium added, changed and removed, and a delete. Whether elements carry ids (v5)
/// or not (v4) is a property of the plan, so every array write is enumerated both ways.
pub const OPS: [Op; 8] = [
    Op::SetScalar { field: 0, value: 1 },
    Op::SetScalar { field: 0, value: 2 },
    Op::SetStatus { status: 1 },
    Op::SetStatus { status: 2 },
    Op::AddElement { field: 0, seed: 1 },
    Op::ChangeElement {
        field: 0,
        which: 0,
        seed: 3,
    },
    Op::RemoveElement { field: 0, which: 0 },
    Op::Delete,
];

/// The writes of [`received`]'s histories: three status changes (validated, then the two
/// spellings of the terminal state) and a scalar set.
const RECEIVED_OPS: [Op; 4] = [
    Op::SetStatus { status: 1 },
    Op::SetStatus { status: 2 },
    Op::SetStatus { status: 3 },
    Op::SetScalar { field: 0, value: 1 },
];

/// The lifecycle rank of a [`RECEIVED_OPS`] write's status (validated 2, terminal 3), 0 for
/// the scalar set.
fn rank(op: &Op) -> u8 {
    match op {
        Op::SetStatus { status: 1 } => 2,
        Op::SetStatus { .. } => 3,
        _ => 0,
    }
}

/// Histories with a version received mid-history: three regions write once each, and one of
/// them first receives another's write (replication delivering it), so that its own write has
/// seen that one while the third region's has not. It is the shape in which a rule that
/// compares two writes at a time ("the write the other side has not seen wins; of two
/// concurrent ones the authority's") lets three writes beat each other in a cycle
/// (docs/per-field-causality.md), which no history of concurrent writes alone shows. Every
/// receiver, sender, write and order of the region clocks, but one kind: a status written
/// after receiving a status does not go back in the lifecycle (validated, then deceased; or
/// the same state again, such as `deceaded` after NA's `deceased`, which a rule that ranks
/// NA's write first without reading the writes gets wrong). A status written back (validated
/// after deceased) is left out because ingest refuses it: the default merge's lifecycle order
/// would disagree with the host's causal one and diverge (docs/per-field-causality.md;
/// [`received_with`] makes those histories).
/// 2 352 plans.
pub fn received() -> impl Iterator<Item = Plan> {
    received_with(|sent, written| written >= sent)
}

/// [`received`], keeping a receiver's status write of lifecycle rank `written` after a
/// received one of rank `sent` where `keep(sent, written)`.
pub fn received_with(keep: fn(u8, u8) -> bool) -> impl Iterator<Item = Plan> {
    let n = RECEIVED_OPS.len();
    (0..3usize).flat_map(move |to| {
        (0..3usize)
            .filter(move |from| *from != to)
            .flat_map(move |from| {
                skews(3).into_iter().flat_map(move |skew| {
                    (0..n.pow(3)).filter_map(move |k| {
                        let mut branches: Vec<Vec<Op>> = (0..3u32)
                            .map(|b| vec![RECEIVED_OPS[k / n.pow(b) % n].clone()])
                            .collect();
                        let (sent, written) = (rank(&branches[from][0]), rank(&branches[to][0]));
                        if sent != 0 && written != 0 && !keep(sent, written) {
                            return None;
                        }
                        branches[to].insert(
                            0,
                            Op::Receive {
                                from: from as u8,
                                after: 1,
                            },
                        );
                        Some(Plan {
                            resource: ResourceType::Individual,
                            v4: false,
                            base_elements: [1, 0, 0, 0],
                            skew: skew.clone(),
                            branches,
                            apart: false,
                        })
                    })
                })
            })
    })
}

/// Region clocks, in milliseconds ahead of the base write. All at 0, every region's first
/// write shares one wall-clock millisecond (stamps then differ only by region, and the
/// region's name orders them); then one clock per order of the regions (0, 1, 2 ms ahead),
/// so that every region's first write is, in some plan, the latest, and shares a millisecond
/// with another region's second.
fn skews(regions: usize) -> Vec<Vec<u16>> {
    let mut out = vec![vec![0; regions]];
    let mut order: Vec<u16> = (0..regions as u16).collect();
    permutations(&mut order, 0, &mut out);
    out
}

fn permutations(order: &mut Vec<u16>, from: usize, out: &mut Vec<Vec<u16>>) {
    if from + 1 >= order.len() {
        if !out.contains(order) {
            out.push(order.clone());
        }
        return;
    }
    for i in from..order.len() {
        order.swap(from, i);
        permutations(order, from + 1, out);
        order.swap(from, i);
    }
}

/// The ways of splitting `total` writes over `regions` regions, each making at least one.
fn splits(regions: usize, total: usize) -> Vec<Vec<usize>> {
    if regions == 0 {
        return if total == 0 { vec![vec![]] } else { vec![] };
    }
    (1..=total.saturating_sub(regions - 1))
        .flat_map(|first| {
            splits(regions - 1, total - first)
                .into_iter()
                .map(move |mut rest| {
                    rest.insert(0, first);
                    rest
                })
        })
        .collect()
}

/// The ways of splitting `total` writes over `regions` regions, a region making none or more.
fn splits_from_zero(regions: usize, total: usize) -> Vec<Vec<usize>> {
    splits(regions, total + regions)
        .into_iter()
        .map(|l| l.into_iter().map(|n| n - 1).collect())
        .collect()
}

impl Scope {
    /// Every plan of the scope, smallest first: by number of writes, then region clocks,
    /// element ids, and the writes themselves. Then, where two or more regions write, the
    /// same again with the party created in every region at once ([`Plan::apart`]): the
    /// creates count as the regions' first writes, so each region makes up to
    /// `max_ops - regions` more.
    pub fn plans(self) -> impl Iterator<Item = Plan> {
        let regions = self.regions;
        let shared = (regions..=self.max_ops).flat_map(move |total| splits(regions, total));
        let apart = (0..=self.max_ops.saturating_sub(regions))
            .filter(move |_| regions >= 2)
            .flat_map(move |total| splits_from_zero(regions, total));
        shared
            .map(|lengths| (lengths, false))
            .chain(apart.map(|lengths| (lengths, true)))
            .flat_map(move |(lengths, apart)| {
                let ops: usize = lengths.iter().sum();
                let histories = OPS.len().pow(ops as u32);
                skews(regions).into_iter().flat_map(move |skew| {
                    let lengths = lengths.clone();
                    [false, true].into_iter().flat_map(move |v4| {
                        let (lengths, skew) = (lengths.clone(), skew.clone());
                        (0..histories).map(move |mut n| {
                            let branches = lengths
                                .iter()
                                .map(|len| {
                                    (0..*len)
                                        .map(|_| {
                                            let op = OPS[n % OPS.len()].clone();
                                            n /= OPS.len();
                                            op
                                        })
                                        .collect()
                                })
                                .collect();
                            Plan {
                                resource: ResourceType::Individual,
                                v4,
                                // One contact medium; the other arrays start empty.
                                base_elements: [1, 0, 0, 0],
                                skew: skew.clone(),
                                branches,
                                apart,
                            }
                        })
                    })
                })
            })
    }

    /// How many plans [`Scope::plans`] yields.
    pub fn len(self) -> usize {
        let histories = |l: Vec<usize>| OPS.len().pow(l.iter().sum::<usize>() as u32);
        let shared: usize = (self.regions..=self.max_ops)
            .flat_map(|total| splits(self.regions, total))
            .map(histories)
            .sum();
        let apart: usize = if self.regions >= 2 {
            (0..=self.max_ops.saturating_sub(self.regions))
                .flat_map(|total| splits_from_zero(self.regions, total))
                .map(histories)
                .sum()
        } else {
            0
        };
        (shared + apart) * skews(self.regions).len() * 2
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_types::Relation;

    #[test]
    fn every_split_and_clock_is_enumerated_once() {
        assert_eq!(splits(2, 3), [vec![1, 2], vec![2, 1]]);
        assert_eq!(splits(3, 3), [vec![1, 1, 1]]);
        assert_eq!(splits_from_zero(2, 1), [vec![0, 1], vec![1, 0]]);
        assert_eq!(splits_from_zero(3, 0), [vec![0, 0, 0]]);
        assert_eq!(skews(1), [vec![0]]);
        assert_eq!(skews(2), [vec![0, 0], vec![0, 1], vec![1, 0]]);
        assert_eq!(skews(3).len(), 7);
        for scope in [
            Scope {
                regions: 2,
                max_ops: 3,
            },
            Scope {
                regions: 3,
                max_ops: 3,
            },
        ] {
            let plans: Vec<Plan> = scope.plans().collect();
            assert_eq!(plans.len(), scope.len());
            let mut seen: Vec<String> = plans.iter().map(|p| format!("{p:?}")).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), plans.len(), "no plan twice");
        }
    }

    /// The versions each plan of the scope of `regions` and `max_ops` builds.
    fn built(
        regions: usize,
        max_ops: usize,
    ) -> impl Iterator<Item = Vec<policy_types::PartyVersion>> {
        Scope { regions, max_ops }.plans().map(|p| p.build())
    }

    /// The scope holds the interleavings the random generator rarely draws: two regions'
    /// writes of one field in the same wall-clock millisecond, and three regions where the
    /// delete is stamped between the two others' writes.
    #[test]
    fn same_millisecond_writes_and_a_delete_between_two_writes_are_in_scope() {
        let same_ms = built(2, 2).any(|v| {
            let (a, b) = (v[0].field("givenName"), v[1].field("givenName"));
            matches!((a, b), (Some(a), Some(b)) if a.stamp.wall_ms == b.stamp.wall_ms
                && a.stamp.region != b.stamp.region && a.value == b.value)
        });
        assert!(
            same_ms,
            "givenName written alike in one millisecond by two regions"
        );

        let between = built(3, 3).any(|v| {
            let latest = |i: usize| v[i].fields.iter().map(|f| f.stamp.clone()).max();
            v[1].tombstone.as_ref().is_some_and(|t| {
                v[0].tombstone.is_none()
                    && v[2].tombstone.is_none()
                    && latest(0).is_some_and(|s| s < *t)
                    && latest(2).is_some_and(|s| s > *t)
            })
        });
        assert!(between, "a delete stamped between two concurrent writes");
    }

    /// Concurrent creates: two regions create the party, each without having seen the other's
    /// create, and one of them then writes again.
    #[test]
    fn the_party_created_in_two_regions_at_once_is_in_scope() {
        let scope = Scope {
            regions: 2,
            max_ops: 3,
        };
        let created_apart = |v: &[policy_types::PartyVersion]| {
            let regions = |i: usize| -> Vec<&str> {
                v[i].version_vector
                    .iter()
                    .map(|d| d.region.as_str())
                    .collect()
            };
            regions(0) == ["apac"] && regions(1) == ["eu"]
        };
        let plans: Vec<Vec<policy_types::PartyVersion>> = scope
            .plans()
            .filter(|p| p.apart)
            .map(|p| p.build())
            .collect();
        assert!(!plans.is_empty() && plans.iter().all(|v| created_apart(v)));
        assert!(
            plans.iter().any(|v| v[1].version_vector[0].counter == 2),
            "a create followed by another write"
        );
        assert!(plans.iter().any(|v| {
            let name = |i: usize| v[i].field("givenName").map(|f| f.value.clone());
            name(0) != name(1)
        }));
    }

    /// In [`received`], a region writes after taking another's version: its write has seen
    /// the other's, while the third region's has seen neither.
    #[test]
    fn a_write_made_after_receiving_another_is_in_scope() {
        let plans: Vec<Plan> = received().collect();
        // Of the 4 × 4 writes of sender and receiver, a receiver's status earlier in the
        // lifecycle than the sender's is left out (2 of 16).
        assert_eq!(plans.len(), 3 * 2 * (64 - 2 * 4) * 7);
        assert_eq!(received_with(|_, _| true).count(), 3 * 2 * 64 * 7);
        let mut receivers = 0;
        for p in &plans {
            // A region settles what it receives by taking it (it dominates: the receiver
            // holds the base).
            let v: Vec<_> = p
                .build_merging(&mut |_, _, received| Some((received.0.clone(), received.1.clone())))
                .into_iter()
                .map(|(v, _)| v)
                .collect();
            let to = p.branches.iter().position(|b| b.len() == 2).unwrap();
            let Some(Op::Receive { from, .. }) = p.branches[to].first() else {
                panic!("{p:?}");
            };
            let from = usize::from(*from);
            let third = 3 - to - from;
            let rel = |a: usize, b: usize| host_core::resolve::relation(&v[a], &v[b]);
            assert_ne!(rel(from, to), Relation::Concurrent, "{p:?}");
            assert_eq!(rel(third, from), Relation::Concurrent, "{p:?}");
            if rel(to, from) == Relation::LocalDominates {
                receivers += 1;
                assert_eq!(rel(to, third), Relation::Concurrent, "{p:?}");
            }
        }
        // The receiver's own write is always applied (a status further on, or the scalar,
        // written again with a dot of its own when the sender set the same value), so it has
        // seen the sender's and made one of its own.
        assert_eq!(receivers, plans.len());
    }

    #[test]
    fn the_regions_versions_are_concurrent() {
        let scope = Scope {
            regions: 3,
            max_ops: 3,
        };
        let apart = scope.plans().filter(|p| p.apart);
        for v in scope.plans().take(200).chain(apart).map(|p| p.build()) {
            assert_eq!(
                host_core::resolve::relation(&v[0], &v[1]),
                Relation::Concurrent
            );
        }
    }
}
