//! Version vectors: comparison, join, and whether a vector has seen a given write.
//!
//! Vectors are lists of dots sorted by region with no zero counters; a missing region counts 0.

use crate::Dot;
use std::cmp::Ordering;

/// How two version vectors are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorOrder {
    Equal,
    /// The first has seen everything the second has, and more.
    Dominates,
    /// The second has seen everything the first has, and more.
    DominatedBy,
    Concurrent,
}

/// Compares two sorted version vectors in one pass over both.
pub fn compare_vectors(a: &[Dot], b: &[Dot]) -> VectorOrder {
    let (mut a_ahead, mut b_ahead) = (false, false);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.region.cmp(&y.region),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                a_ahead |= a[i].counter > 0;
                i += 1;
            }
            Ordering::Greater => {
                b_ahead |= b[j].counter > 0;
                j += 1;
            }
            Ordering::Equal => {
                match a[i].counter.cmp(&b[j].counter) {
                    Ordering::Greater => a_ahead = true,
                    Ordering::Less => b_ahead = true,
                    Ordering::Equal => {}
                }
                i += 1;
                j += 1;
            }
        }
        if a_ahead && b_ahead {
            return VectorOrder::Concurrent;
        }
    }
    match (a_ahead, b_ahead) {
        (false, false) => VectorOrder::Equal,
        (true, false) => VectorOrder::Dominates,
        (false, true) => VectorOrder::DominatedBy,
        (true, true) => VectorOrder::Concurrent,
    }
}

/// The least vector that has seen everything both have seen (entry-wise maximum), sorted.
pub fn join_vectors(a: &[Dot], b: &[Dot]) -> Vec<Dot> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.region.cmp(&y.region) {
                Ordering::Less => {
                    out.push(x.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(y.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    out.push(if x.counter >= y.counter {
                        x.clone()
                    } else {
                        y.clone()
                    });
                    i += 1;
                    j += 1;
                }
            },
            (Some(x), None) => {
                out.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                out.push(y.clone());
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    out
}

/// Whether a vector has seen the write named by `dot`.
pub fn covers(vector: &[Dot], dot: &Dot) -> bool {
    vector
        .binary_search_by(|d| d.region.as_str().cmp(&dot.region))
        .map(|i| vector[i].counter >= dot.counter)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(entries: &[(&str, u64)]) -> Vec<Dot> {
        entries.iter().map(|(r, c)| Dot::new(*r, *c)).collect()
    }

    #[test]
    fn orders_vectors() {
        let a = vv(&[("apac", 1), ("eu", 2)]);
        let b = vv(&[("apac", 1), ("eu", 1)]);
        let c = vv(&[("eu", 2), ("na", 1)]);
        assert_eq!(compare_vectors(&a, &a), VectorOrder::Equal);
        assert_eq!(compare_vectors(&a, &b), VectorOrder::Dominates);
        assert_eq!(compare_vectors(&b, &a), VectorOrder::DominatedBy);
        assert_eq!(compare_vectors(&a, &c), VectorOrder::Concurrent);
        assert_eq!(compare_vectors(&[], &a), VectorOrder::DominatedBy);
        assert_eq!(compare_vectors(&vv(&[("eu", 0)]), &[]), VectorOrder::Equal);
    }

    #[test]
    fn joins_and_covers() {
        let a = vv(&[("apac", 3), ("eu", 1)]);
        let b = vv(&[("eu", 2), ("na", 5)]);
        let j = join_vectors(&a, &b);
        assert_eq!(j, vv(&[("apac", 3), ("eu", 2), ("na", 5)]));
        assert_eq!(compare_vectors(&j, &a), VectorOrder::Dominates);
        assert!(covers(&j, &Dot::new("na", 5)));
        assert!(!covers(&j, &Dot::new("na", 6)));
        assert!(!covers(&a, &Dot::new("na", 1)));
    }
}
