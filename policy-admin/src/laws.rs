//! Law checks: tests of a policy on every TMF632 conflict of a small scope and on generated
//! ones.
//!
//! A policy that is deterministic, commutative, idempotent and associative lets regions that
//! resolve the same conflict independently write the same party, in any order; a valid one never
//! has a result refused by the host (one that does not follow from its inputs, a computed value
//! the TMF632 schema does not allow, a party over the store's item limit). A refusal counts
//! against validity alone: the other laws compare what the host does, a refusal included. Each
//! law runs first on every history of its small scope ([`Law::scope`], [`crate::scopes`]: the
//! same cases on every run, stamps in one millisecond among them), then on random histories
//! from [`party_model::generate`] (both resource types, every array field, v4 items without
//! ids, tombstones, two- and three-way concurrency), seeded, with proptest's shrinking. A
//! failure comes back as the smallest conflict found, written as captured-conflict lines that
//! `dry-run` replays; one that goes away on fresh instances is reported as what it is, state
//! kept between calls (determinism). The cost of each random call is measured in fuel (the
//! metered engine), against input size.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use party_model::generate::{Plan, plan};
use policy_types::writes::Writes;
use policy_types::{Context, PartyVersion, Relation, Resolution};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use host_core::conflict::{CapturedConflict, CapturedContext};
use host_core::resolve::{apply_resolution, relation};
use host_sandbox::{Call, CallFailure, Policy};

use crate::scopes::Scope;

/// The laws, in the order they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    Determinism,
    Commutativity,
    Idempotence,
    Associativity,
    Validity,
}

impl Law {
    pub const ALL: [Law; 5] = [
        Law::Determinism,
        Law::Commutativity,
        Law::Idempotence,
        Law::Associativity,
        Law::Validity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Law::Determinism => "determinism",
            Law::Commutativity => "commutativity",
            Law::Idempotence => "idempotence",
            Law::Associativity => "associativity",
            Law::Validity => "validity",
        }
    }

    pub fn statement(self) -> &'static str {
        match self {
            Law::Determinism => {
                "the same input gives the same output on fresh and reused instances, and through the packed and the typed interface"
            }
            Law::Commutativity => "resolve(a,b) and resolve(b,a) write the same party",
            Law::Idempotence => "resolve(a,a) is a",
            Law::Associativity => "the three ways of merging three concurrent versions agree",
            Law::Validity => "every result passes the host's validation",
        }
    }

    /// The small scope enumerated for this law: every history of up to three writes over two
    /// regions (one region for idempotence, which needs one version; three, one write each,
    /// for associativity). Determinism, which instantiates afresh for every case, takes the
    /// histories of one write per region: state kept between calls shows on any input (and
    /// a failure of another law that goes away on fresh instances is reported as
    /// determinism's). Where two or three regions write, the scope also holds the party
    /// created in each of them at once (`Scope::plans`). About 22 000 cases in all, and
    /// associativity's 2 352 with a version received mid-history ([`Law::plans`]);
    /// BENCHMARKS.md, "The law gate", has their time per language.
    pub fn scope(self) -> Scope {
        match self {
            Law::Determinism => Scope {
                regions: 2,
                max_ops: 2,
            },
            Law::Idempotence => Scope {
                regions: 1,
                max_ops: 3,
            },
            Law::Associativity => Scope {
                regions: 3,
                max_ops: 3,
            },
            _ => Scope {
                regions: 2,
                max_ops: 3,
            },
        }
    }
}

impl Law {
    /// Every enumerated case of this law: its [`Law::scope`], and for associativity the
    /// histories with a version received mid-history ([`crate::scopes::received`]).
    pub fn plans(self) -> Box<dyn Iterator<Item = Plan>> {
        let scope = self.scope().plans();
        match self {
            Law::Associativity => Box::new(scope.chain(crate::scopes::received())),
            _ => Box::new(scope),
        }
    }
}

/// How to run the checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Random cases per law, after the enumerated ones.
    pub cases: u32,
    pub seed: u64,
    /// The tenant configuration handed to the policy (JSON text).
    pub config: String,
}

/// A law's outcome.
#[derive(Clone, Debug)]
pub struct LawOutcome {
    pub law: Law,
    /// `None` when the law held on every case.
    pub failure: Option<Counterexample>,
}

/// The smallest failing input found, as captured conflicts.
#[derive(Clone, Debug)]
pub struct Counterexample {
    pub message: String,
    pub conflicts: Vec<CapturedConflict>,
}

/// Fuel against input size.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// (input bytes, fuel) for every call measured.
    pub samples: Vec<(usize, u64)>,
}

impl Budget {
    /// Median fuel per KiB of input, over the smaller and the larger half of the inputs: if the
    /// larger inputs cost much more per byte, cost grows faster than input.
    pub fn per_kib(&self) -> Option<(f64, f64)> {
        if self.samples.len() < 4 {
            return None;
        }
        let mut s = self.samples.clone();
        s.sort_by_key(|(size, _)| *size);
        let per = |xs: &[(usize, u64)]| {
            let mut v: Vec<f64> = xs
                .iter()
                .map(|(b, f)| *f as f64 * 1024.0 / (*b).max(1) as f64)
                .collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (small, large) = s.split_at(s.len() / 2);
        Some((per(small), per(large)))
    }

    /// Whether cost per byte on the larger inputs exceeds twice that on the smaller ones.
    pub fn grows_faster_than_input(&self) -> bool {
        self.per_kib()
            .is_some_and(|(small, large)| large > 2.0 * small)
    }

    pub fn max_fuel(&self) -> u64 {
        self.samples.iter().map(|(_, f)| *f).max().unwrap_or(0)
    }
}

/// Everything a check found.
#[derive(Clone, Debug)]
pub struct LawReport {
    pub seed: u64,
    /// Random cases per law.
    pub cases: u32,
    /// Enumerated cases checked, all laws together (0 without the small scopes).
    pub enumerated: u64,
    pub outcomes: Vec<LawOutcome>,
    pub budget: Budget,
}

impl LawReport {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.failure.is_none())
    }

    /// The laws that failed, in the order they were checked.
    pub fn failed(&self) -> Vec<Law> {
        self.outcomes
            .iter()
            .filter(|o| o.failure.is_some())
            .map(|o| o.law)
            .collect()
    }
}

const REGION: &str = "eu";

struct Checker<'a> {
    policy: &'a Policy,
    config: String,
    budget: RefCell<Budget>,
    /// Whether calls record their fuel (the random cases; the enumerated ones are all small).
    measure: Cell<bool>,
    /// Every call on a fresh instance: how a failure is tried for state kept between calls.
    fresh: Cell<bool>,
    /// Calls made on reused instances so far.
    reused_calls: Cell<u64>,
    /// Answers on reused instances by conflict: the laws ask many of the same questions
    /// (validity those of commutativity, associativity each pair's merge for every third
    /// version), and a policy answers one question once. What a reused instance would answer
    /// differently the second time is determinism's concern, checked without this.
    answers: RefCell<HashMap<(u64, u64), Result<Resolution, CallFailure>>>,
    /// The writes behind each version of the histories and of their merges, by version
    /// ([`version_key`]): a policy of contract revision 1.3 is sent them, as the hosts do.
    /// Two histories can leave the same version on different writes (a write that had seen
    /// another, or the same value kept by a merge that saw both): a case's histories and
    /// merges enter theirs as they are made, replacing another case's.
    writes: RefCell<HashMap<(u64, u64), Writes>>,
}

/// Identifies a version (two independent 64-bit hashes).
fn version_key(v: &PartyVersion) -> (u64, u64) {
    let hash = |salt: u8| {
        let mut h = DefaultHasher::new();
        (salt, v).hash(&mut h);
        h.finish()
    };
    (hash(0), hash(1))
}

/// Identifies an ordered pair of versions with the writes behind them (two independent 64-bit
/// hashes): a policy of contract revision 1.3 may answer two histories that left the same
/// versions differently.
fn pair_key(a: (&PartyVersion, &Writes), b: (&PartyVersion, &Writes)) -> (u64, u64) {
    let hash = |salt: u8| {
        let mut h = DefaultHasher::new();
        (salt, a, b).hash(&mut h);
        h.finish()
    };
    (hash(0), hash(1))
}

/// What a resolution writes, for comparison: the party (origin region aside), the rejection,
/// or the host's refusal of the result (by kind, e.g. `invalid-party`).
#[derive(Debug, PartialEq, Eq)]
enum Written {
    Party(Option<PartyVersion>),
    Rejected,
    Refused(&'static str),
}

fn failed_call(e: &CallFailure) -> TestCaseError {
    TestCaseError::fail(format!("the call failed: {e}"))
}

impl<'a> Checker<'a> {
    fn new(policy: &'a Policy, config: &str) -> Self {
        Checker {
            policy,
            config: config.to_owned(),
            budget: RefCell::new(Budget::default()),
            measure: Cell::new(false),
            fresh: Cell::new(false),
            reused_calls: Cell::new(0),
            answers: RefCell::new(HashMap::new()),
            writes: RefCell::new(HashMap::new()),
        }
    }

    /// The versions a plan's histories leave, their writes recorded; a version received
    /// mid-history settled as a host settles it ([`Checker::receive`]).
    fn histories(&self, plan: &Plan) -> Vec<PartyVersion> {
        plan.build_merging(&mut |region, local, received| self.receive(region, local, received))
            .into_iter()
            .map(|(v, w)| {
                self.writes.borrow_mut().insert(version_key(&v), w);
                v
            })
            .collect()
    }

    /// What `region` writes when it receives a version mid-history: what a host writes (the
    /// host decides where one version dominates, the policy where they are concurrent), with
    /// its writes; `None` (the region keeps its own) where the policy fails or rejects, which
    /// the laws then report on the versions themselves.
    fn receive(
        &self,
        region: &str,
        local: (&PartyVersion, &Writes),
        received: (&PartyVersion, &Writes),
    ) -> Option<(PartyVersion, Writes)> {
        let resolved =
            host_core::resolve_with_writes(self.policy, &self.config, region, local, received)
                .ok()?;
        let written = resolved.written(local.0, received.0)?.clone();
        let writes = Writes::merged(local, received, &written);
        Some((written, writes))
    }

    /// The writes behind `v` (none known for a version the checker did not build).
    fn writes_of(&self, v: &PartyVersion) -> Writes {
        self.writes
            .borrow()
            .get(&version_key(v))
            .cloned()
            .unwrap_or_default()
    }

    fn ctx(&self, relation: Relation) -> Context {
        Context {
            tenant: "acme".to_owned(),
            resolving_region: REGION.to_owned(),
            relation,
            config: self.config.clone(),
        }
    }

    fn call(&self, a: &PartyVersion, b: &PartyVersion) -> Result<Resolution, TestCaseError> {
        let (wa, wb) = (self.writes_of(a), self.writes_of(b));
        let key = (!self.fresh.get()).then(|| pair_key((a, &wa), (b, &wb)));
        if let Some(answer) = key.and_then(|k| self.answers.borrow().get(&k).cloned()) {
            return answer.map_err(|e| failed_call(&e));
        }
        let ctx = self.ctx(relation(a, b));
        let mut fuel = None;
        let mut call = Call::new(&ctx, a, b)
            .with_writes(&wa, &wb)
            .metered(&mut fuel);
        if self.fresh.get() {
            call = call.fresh();
        } else {
            self.reused_calls.set(self.reused_calls.get() + 1);
        }
        let answer = self.policy.call(call);
        if let Some(k) = key {
            self.answers.borrow_mut().insert(k, answer.clone());
        }
        let resolution = answer.map_err(|e| failed_call(&e))?;
        if let Some(fuel) = fuel
            && self.measure.get()
        {
            let size = serde_json::to_vec(a).map(|v| v.len()).unwrap_or(0)
                + serde_json::to_vec(b).map(|v| v.len()).unwrap_or(0);
            self.budget.borrow_mut().samples.push((size, fuel));
        }
        Ok(resolution)
    }

    /// Calls and validates as the host does: the party it would write, or why it refuses it.
    fn outcome(
        &self,
        a: &PartyVersion,
        b: &PartyVersion,
    ) -> Result<Result<Written, CallFailure>, TestCaseError> {
        // Where one version dominates, a host writes it without asking the policy
        // (`decide_by_host`), and the laws judge what hosts write.
        if let Some(decided) = host_core::decide_by_host(a, b)
            && let Some(p) = decided.written(a, b)
        {
            let mut p = p.clone();
            p.origin_region = REGION.to_owned();
            return Ok(Ok(Written::Party(Some(p))));
        }
        let resolution = self.call(a, b)?;
        Ok(
            apply_resolution(REGION, relation(a, b), a, b, &resolution).map(|(_, party)| {
                match (&resolution, party) {
                    (Resolution::Reject(_), _) => Written::Rejected,
                    (_, Some(mut p)) => {
                        p.origin_region = REGION.to_owned();
                        Written::Party(Some(p))
                    }
                    (_, None) => Written::Party(None),
                }
            }),
        )
    }

    /// What the host does with the answer, a refusal included.
    fn written(&self, a: &PartyVersion, b: &PartyVersion) -> Result<Written, TestCaseError> {
        Ok(self
            .outcome(a, b)?
            .unwrap_or_else(|e| Written::Refused(e.kind())))
    }

    /// The merged party; `None` when the host refuses the answer (validity's concern); other
    /// answers reject the case.
    fn merged(
        &self,
        a: &PartyVersion,
        b: &PartyVersion,
    ) -> Result<Option<PartyVersion>, TestCaseError> {
        match self.written(a, b)? {
            Written::Party(Some(p)) => {
                // Written now, from these inputs: the same party left by another case's
                // history may stand on other writes.
                let (wa, wb) = (self.writes_of(a), self.writes_of(b));
                let merged = Writes::merged((a, &wa), (b, &wb), &p);
                self.writes.borrow_mut().insert(version_key(&p), merged);
                Ok(Some(p))
            }
            Written::Refused(_) => Ok(None),
            other => Err(TestCaseError::reject(format!("not merged: {other:?}"))),
        }
    }

    fn check(&self, law: Law, v: &[PartyVersion]) -> Result<(), TestCaseError> {
        let a = &v[0];
        match law {
            Law::Determinism => {
                let b = &v[1];
                let ctx = self.ctx(relation(a, b));
                let (wa, wb) = (self.writes_of(a), self.writes_of(b));
                let told = || Call::new(&ctx, a, b).with_writes(&wa, &wb);
                let fresh1 = self.policy.call(told().fresh());
                // Two identical failures are not a deterministic answer: a policy that fails
                // every call would otherwise hold this law.
                if let Err(e) = &fresh1 {
                    return Err(failed_call(e));
                }
                let fresh2 = self.policy.call(told().fresh());
                if fresh1 != fresh2 {
                    return Err(TestCaseError::fail(format!(
                        "two fresh instances answered differently ({} vs {})",
                        kind(&fresh1),
                        kind(&fresh2)
                    )));
                }
                // The contract's interfaces (wit/policy.wit): hosts call the packed one where a
                // policy exports it, or `writes-resolver` where it reads the writes there, and a
                // host that does not know it (an older one, a region not yet upgraded) the typed
                // one or `resolver.resolve`, with no writes. Answers that differ would have
                // regions write different parties for one conflict, and the other laws are
                // checked on the first path alone: each other path is compared with it told none.
                let info = self.policy.info();
                if info.packed || info.typed_writes {
                    let untold = if wa.is_empty() && wb.is_empty() {
                        fresh1.clone()
                    } else {
                        self.policy.call(Call::new(&ctx, a, b).fresh())
                    };
                    let others = [
                        (
                            info.packed,
                            Call::new(&ctx, a, b).typed(),
                            "the packed and the typed interface",
                            "the typed one",
                        ),
                        (
                            info.typed_writes,
                            Call::new(&ctx, a, b).plain(),
                            "writes-resolver told no writes and resolver.resolve",
                            "resolver.resolve (not knowing writes-resolver)",
                        ),
                    ];
                    for (exported, call, which, hosts) in others {
                        if !exported {
                            continue;
                        }
                        let other = self.policy.call(call.fresh());
                        if other != untold {
                            return Err(TestCaseError::fail(format!(
                                "{which} answered differently ({} vs {}): hosts that call {hosts} would write another party",
                                kind(&untold),
                                kind(&other)
                            )));
                        }
                    }
                }
                // A reused instance, asked the same question twice in a row after other calls.
                let back = self.ctx(relation(b, a));
                let _ = self
                    .policy
                    .call(Call::new(&back, b, a).with_writes(&wb, &wa));
                self.reused_calls.set(self.reused_calls.get() + 1);
                for _ in 0..2 {
                    let reused = self.policy.call(told());
                    self.reused_calls.set(self.reused_calls.get() + 1);
                    if fresh1 != reused {
                        return Err(TestCaseError::fail(format!(
                            "a reused instance answered differently from a fresh one ({} vs {}) after {} calls on reused instances: the policy keeps state between calls",
                            kind(&reused),
                            kind(&fresh1),
                            self.reused_calls.get()
                        )));
                    }
                }
                Ok(())
            }
            Law::Commutativity => {
                let b = &v[1];
                let (ab, ba) = (self.written(a, b)?, self.written(b, a)?);
                if ab != ba {
                    return Err(TestCaseError::fail(format!(
                        "resolve(a,b) and resolve(b,a) write different parties:\n{}",
                        difference(&ab, &ba)
                    )));
                }
                Ok(())
            }
            Law::Idempotence => {
                let resolution = self.call(a, a)?;
                let Ok((_, party)) = apply_resolution(REGION, Relation::Equal, a, a, &resolution)
                else {
                    // Refused: validity's concern (and no host asks a policy about equal versions).
                    return Ok(());
                };
                let same = party
                    .as_ref()
                    .is_some_and(|p| p.fields == a.fields && p.tombstone == a.tombstone);
                if !same {
                    let written = Written::Party(party.map(|mut p| {
                        p.origin_region = a.origin_region.clone();
                        p.version_vector = a.version_vector.clone();
                        p
                    }));
                    return Err(TestCaseError::fail(format!(
                        "resolve(a,a) is not a (outcome {}):\n{}",
                        resolution.kind(),
                        difference_as(
                            ["a:           ", "resolve(a,a):"],
                            &Written::Party(Some(a.clone())),
                            &written
                        )
                    )));
                }
                Ok(())
            }
            Law::Associativity => {
                let [Some(left), Some(right), Some(middle)] = self.three_ways(v)? else {
                    // A refused step leaves nothing to compare: validity reports it.
                    return Ok(());
                };
                if left != right || left != middle {
                    let other = if left != right { &right } else { &middle };
                    return Err(TestCaseError::fail(format!(
                        "merging three versions in different orders gives different parties:\n{}",
                        difference(
                            &Written::Party(Some(left.clone())),
                            &Written::Party(Some(other.clone()))
                        )
                    )));
                }
                Ok(())
            }
            Law::Validity => {
                let b = &v[1];
                for (x, y) in [(a, b), (b, a)] {
                    if let Err(e) = self.outcome(x, y)? {
                        return Err(TestCaseError::fail(format!(
                            "the host refused the result ({}): {e}",
                            e.kind()
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// The intermediate merges of three versions: a·b, b·c and a·c (`None` where refused).
    fn pairs_merged(&self, v: &[PartyVersion]) -> Result<[Option<PartyVersion>; 3], TestCaseError> {
        let (a, b, c) = (&v[0], &v[1], &v[2]);
        Ok([self.merged(a, b)?, self.merged(b, c)?, self.merged(a, c)?])
    }

    /// (a·b)·c, a·(b·c) and (a·c)·b (`None` where a step was refused).
    fn three_ways(&self, v: &[PartyVersion]) -> Result<[Option<PartyVersion>; 3], TestCaseError> {
        let (a, b, c) = (&v[0], &v[1], &v[2]);
        let [ab, bc, ac] = self.pairs_merged(v)?;
        let then = |first: Option<PartyVersion>, f: &dyn Fn(&PartyVersion) -> _| {
            first.map_or(Ok(None), |p| f(&p))
        };
        Ok([
            then(ab, &|ab| self.merged(ab, c))?,
            then(bc, &|bc| self.merged(a, bc))?,
            then(ac, &|ac| self.merged(ac, b))?,
        ])
    }

    /// The conflicts that replay a failure of `law` on `v`: the pairs the law compares, and
    /// for associativity the second merges too, so that `dry-run` shows the three results.
    fn replay(&self, law: Law, v: &[PartyVersion]) -> Vec<(PartyVersion, PartyVersion)> {
        let pair = |x: &PartyVersion, y: &PartyVersion| (x.clone(), y.clone());
        match law {
            Law::Associativity => {
                let mut pairs = vec![pair(&v[0], &v[1]), pair(&v[1], &v[2]), pair(&v[0], &v[2])];
                if let Ok([ab, bc, ac]) = self.pairs_merged(v) {
                    let (a, b, c) = (&v[0], &v[1], &v[2]);
                    pairs.extend(ab.map(|ab| pair(&ab, c)));
                    pairs.extend(bc.map(|bc| pair(a, &bc)));
                    pairs.extend(ac.map(|ac| pair(&ac, b)));
                }
                pairs
            }
            Law::Commutativity | Law::Validity => vec![pair(&v[0], &v[1]), pair(&v[1], &v[0])],
            Law::Idempotence => vec![pair(&v[0], &v[0])],
            _ => vec![pair(&v[0], &v[1])],
        }
    }

    /// A failure of `law` on `v` that goes away when every call gets a fresh instance is state
    /// kept between calls: the determinism failure it is, on the conflict whose answer a reused
    /// instance changed.
    fn stateful(&self, law: Law, v: &[PartyVersion], message: &str) -> Option<Counterexample> {
        if law == Law::Determinism {
            return None;
        }
        let after = self.reused_calls.get();
        self.fresh.set(true);
        let on_fresh = self.check(law, v);
        self.fresh.set(false);
        if !matches!(on_fresh, Ok(()) | Err(TestCaseError::Reject(_))) {
            return None;
        }
        let pairs = self.replay(law, v);
        let changed = pairs.iter().find_map(|(x, y)| {
            let ctx = self.ctx(relation(x, y));
            let (wx, wy) = (self.writes_of(x), self.writes_of(y));
            let told = || Call::new(&ctx, x, y).with_writes(&wx, &wy);
            let fresh = self.policy.call(told().fresh());
            let reused = self.policy.call(told());
            (fresh != reused).then(|| (x.clone(), y.clone(), kind(&reused), kind(&fresh)))
        });
        let first = message.lines().next().unwrap_or(message);
        let message = match &changed {
            Some((_, _, reused, fresh)) => format!(
                "a reused instance answered differently from a fresh one ({reused} vs {fresh}) after {after} calls on reused instances: the policy keeps state between calls ({} held on fresh instances; on reused ones: {first})",
                law.name()
            ),
            None => format!(
                "{} failed on reused instances after {after} calls ({first}) and held on fresh ones: the policy keeps state between calls",
                law.name()
            ),
        };
        let pairs = match changed {
            Some((x, y, ..)) => vec![(x, y)],
            None => pairs,
        };
        Some(Counterexample {
            conflicts: captured(Law::Determinism, &message, &self.config, &pairs, |v| {
                self.writes_of(v)
            }),
            message,
        })
    }
}

fn kind(r: &Result<Resolution, CallFailure>) -> String {
    match r {
        Ok(r) => r.kind().to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

fn difference(x: &Written, y: &Written) -> String {
    difference_as(["one order:  ", "other order:"], x, y)
}

/// Two results side by side, under `labels`; where their TMF JSON is the same, what the host
/// keeps beside it that differs.
fn difference_as(labels: [&str; 2], x: &Written, y: &Written) -> String {
    let show = |w: &Written| match w {
        Written::Rejected => "rejected".to_owned(),
        Written::Refused(kind) => format!("refused by the host ({kind})"),
        Written::Party(p) => p
            .as_ref()
            .and_then(party_model::to_tmf)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(deleted)".to_owned()),
    };
    let mut out = format!("  {} {}\n  {} {}", labels[0], show(x), labels[1], show(y));
    if let (Written::Party(Some(p)), Written::Party(Some(q))) = (x, y)
        && show(x) == show(y)
    {
        out.push_str("\n  the same TMF JSON; they differ in what the host keeps beside it:");
        for line in stamps_differ(p, q) {
            out.push_str("\n    ");
            out.push_str(&line);
        }
    }
    out
}

/// Where two parties with the same TMF JSON differ: the stamps (and dots) of their fields and
/// array entries, the tombstone, the version vector. Two regions that wrote these would
/// agree on the JSON and disagree on every later merge.
fn stamps_differ(p: &PartyVersion, q: &PartyVersion) -> Vec<String> {
    use policy_types::FieldValue;
    let mut out = Vec::new();
    let mut names: Vec<&str> = p
        .fields
        .iter()
        .chain(&q.fields)
        .map(|f| f.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let stamp = |f: Option<&policy_types::Field>| {
        f.map_or_else(|| "absent".to_owned(), |f| f.stamp.to_string())
    };
    for name in names {
        let (f, g) = (p.field(name), q.field(name));
        if f == g {
            continue;
        }
        if f.map(|f| &f.stamp) != g.map(|g| &g.stamp) {
            out.push(format!("{name}: stamped {} vs {}", stamp(f), stamp(g)));
        }
        if let (Some(f), Some(g)) = (f, g)
            && let (FieldValue::Elements(e), FieldValue::Elements(h)) = (&f.value, &g.value)
        {
            let entries = |es: &[policy_types::Element], key: &str| {
                es.iter()
                    .find(|x| x.key == key)
                    .map(|x| {
                        x.entries
                            .iter()
                            .map(|n| format!("{} ({}:{})", n.stamp, n.dot.region, n.dot.counter))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "absent".to_owned())
            };
            let mut keys: Vec<&str> = e.iter().chain(h).map(|x| x.key.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let (l, r) = (entries(e, key), entries(h, key));
                if l != r {
                    out.push(format!("{name} element {key}: entries {l} vs {r}"));
                }
            }
        }
    }
    if p.tombstone != q.tombstone {
        let t = |t: &Option<policy_types::Hlc>| {
            t.as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string)
        };
        out.push(format!(
            "tombstone: {} vs {}",
            t(&p.tombstone),
            t(&q.tombstone)
        ));
    }
    if p.version_vector != q.version_vector {
        let vv = |v: &[policy_types::Dot]| {
            v.iter()
                .map(|d| format!("{}:{}", d.region, d.counter))
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push(format!(
            "version vector: {} vs {}",
            vv(&p.version_vector),
            vv(&q.version_vector)
        ));
    }
    if out.is_empty() {
        out.push("(values stored differently, e.g. array entries in another order)".to_owned());
    }
    out
}

fn captured(
    law: Law,
    message: &str,
    config: &str,
    pairs: &[(PartyVersion, PartyVersion)],
    writes_of: impl Fn(&PartyVersion) -> Writes,
) -> Vec<CapturedConflict> {
    let config_value = serde_json::from_str(config)
        .ok()
        .filter(|v: &serde_json::Value| v.as_object().is_some_and(|o| !o.is_empty()));
    pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b))| CapturedConflict {
            id: Some(format!("law-{}-{}", law.name(), i + 1)),
            tenant: a.tenant.clone(),
            note: Some(message.lines().next().unwrap_or(message).to_owned()),
            local: a.clone(),
            remote: b.clone(),
            context: Some(CapturedContext {
                resolving_region: Some(REGION.to_owned()),
                config: config_value.clone(),
            }),
            local_writes: writes_of(a),
            remote_writes: writes_of(b),
        })
        .collect()
}

fn runner(options: &CheckOptions, law: Law) -> TestRunner {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&options.seed.to_le_bytes());
    seed[8] = law as u8;
    let config = Config {
        cases: options.cases,
        failure_persistence: None,
        max_global_rejects: options.cases.saturating_mul(4).max(1024),
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
}

/// Checks every law on the small scopes ([`Law::scope`], the same cases on every run), then
/// on `options.cases` random conflicts per law, seeded. What the upload gate runs.
pub fn check(policy: &Policy, options: &CheckOptions) -> LawReport {
    check_with(policy, options, true)
}

/// [`check`], with the small scopes or on the random cases alone.
pub fn check_with(policy: &Policy, options: &CheckOptions, scopes: bool) -> LawReport {
    let checker = Checker::new(policy, &options.config);
    let mut enumerated = 0;
    let mut outcomes: Vec<LawOutcome> = Vec::new();
    let mut stateful = None;
    for law in Law::ALL {
        // The enumerated scope first: its first failure is among its smallest cases.
        let mut found = None;
        if scopes {
            for p in law.plans() {
                enumerated += 1;
                let v = checker.histories(&p);
                if let Err(TestCaseError::Fail(reason)) = checker.check(law, &v) {
                    found = Some((reason.message().to_owned(), v));
                    break;
                }
            }
        }
        if found.is_none() {
            let regions = if law == Law::Associativity { 3 } else { 2 };
            checker.measure.set(true);
            let result = runner(options, law).run(&plan(regions, 4), |p: Plan| {
                checker.check(law, &checker.histories(&p))
            });
            checker.measure.set(false);
            match result {
                Ok(()) => {}
                Err(TestError::Fail(reason, p)) => {
                    found = Some((reason.message().to_owned(), checker.histories(&p)))
                }
                Err(TestError::Abort(reason)) => {
                    outcomes.push(LawOutcome {
                        law,
                        failure: Some(Counterexample {
                            message: format!("could not run the check: {}", reason.message()),
                            conflicts: vec![],
                        }),
                    });
                    continue;
                }
            }
        }
        let failure = match found {
            None => None,
            Some((message, v)) => match checker.stateful(law, &v, &message) {
                Some(determinism) => {
                    stateful.get_or_insert(determinism);
                    None
                }
                None => Some(Counterexample {
                    conflicts: captured(
                        law,
                        &message,
                        &options.config,
                        &checker.replay(law, &v),
                        |v| checker.writes_of(v),
                    ),
                    message,
                }),
            },
        };
        outcomes.push(LawOutcome { law, failure });
    }
    if let Some(determinism) = stateful
        && let Some(o) = outcomes.iter_mut().find(|o| o.law == Law::Determinism)
        && o.failure.is_none()
    {
        o.failure = Some(determinism);
    }
    LawReport {
        seed: options.seed,
        cases: options.cases,
        enumerated,
        outcomes,
        budget: checker.budget.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes::{received, received_with};
    use host_core::{Limits, Metering, PolicyEngine};

    /// The policy on the gate's metered engine.
    fn metered(bytes: &[u8]) -> Policy {
        let engine = PolicyEngine::new(Limits::default(), Metering::Fuel).unwrap();
        Policy::load(&engine, bytes, None).unwrap()
    }

    /// Why ingest refuses a status that goes back in its lifecycle, and why the gate's scope
    /// (`scopes::received`) leaves such histories out: a region that receives `deceased` and
    /// then writes `validated` makes the default merge's lifecycle order (the terminal state
    /// wins a concurrent write) disagree with the host's causal order (the later write wins),
    /// and three versions merged in different orders end different. With status written
    /// forward only, which is all ingest accepts (the ingest stores' conformance suite, "a
    /// status that goes back in the lifecycle is refused"), associativity holds.
    #[test]
    fn the_default_merge_is_not_associative_when_a_status_is_written_back_after_a_receive() {
        let policy = metered(default_policy_artifact::DEFAULT_POLICY);
        let c = Checker::new(&policy, "{}");
        let holds = |p: &Plan| c.check(Law::Associativity, &c.histories(p)).is_ok();
        let back = received_with(|sent, written| written < sent).find(|p| !holds(p));
        let p = back.expect("a status written back diverges");
        assert!(
            format!("{p:?}").contains("SetStatus { status: 1 }"),
            "{p:?}"
        );
        assert!(received().all(|p| holds(&p)));
    }

    /// `na-status` 1.2.0 (contract 1.3) holds on the same state written again after a
    /// receive (`deceaded` after NA's `deceased`), where it ranks by the NA writes each had
    /// seen, then the stamp; a rule that ranks NA's write first without the writes does not.
    #[test]
    fn na_status_is_associative_when_the_same_state_is_written_again_after_a_receive() {
        let policy = metered(default_policy_artifact::NA_STATUS_POLICY);
        let c = Checker::new(&policy, "{}");
        let again: Vec<Plan> = received_with(|sent, written| written == sent).collect();
        assert!(again.len() > 1_000);
        for p in again {
            let v = c.histories(&p);
            if let Err(e) = c.check(Law::Associativity, &v) {
                panic!("{p:?}: {e}");
            }
        }
    }
}
