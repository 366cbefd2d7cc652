//! Law checks: property-based tests of a policy on generated TMF632 conflicts.
//!
//! A policy that is deterministic, commutative, idempotent and associative lets regions that
//! resolve the same conflict independently write the same party, in any order; a valid one never
//! has a result refused by the host (one that does not follow from its inputs, a computed value
//! the TMF632 schema does not allow, a party over the store's item limit). A refusal counts
//! against validity alone: the other laws compare what the host does, a refusal included. Each
//! law runs on histories from
//! [`party_model::generate`] (both resource types, every array field, v4 items without ids,
//! tombstones, two- and three-way concurrency), seeded, with proptest's shrinking: a failure
//! comes back as the smallest conflict found, written as captured-conflict lines that `dry-run`
//! replays. The cost of each call is measured in fuel (the metered engine), against input size.

use std::cell::RefCell;

use party_model::generate::{Plan, plan};
use policy_types::{Context, PartyVersion, Relation, Resolution};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use host_core::conflict::{CapturedConflict, CapturedContext};
use host_core::resolve::{apply_resolution, relation};
use host_sandbox::{Call, CallFailure, Policy};

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
}

/// How to run the checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
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
    pub cases: u32,
    pub outcomes: Vec<LawOutcome>,
    pub budget: Budget,
}

impl LawReport {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.failure.is_none())
    }
}

const REGION: &str = "eu";

struct Checker<'a> {
    policy: &'a Policy,
    config: String,
    budget: RefCell<Budget>,
}

/// What a resolution writes, for comparison: the party (origin region aside), the rejection,
/// or the host's refusal of the result (by kind, e.g. `invalid-party`).
#[derive(Debug, PartialEq, Eq)]
enum Written {
    Party(Option<PartyVersion>),
    Rejected,
    Refused(&'static str),
}

impl Checker<'_> {
    fn ctx(&self, relation: Relation) -> Context {
        Context {
            tenant: "acme".to_owned(),
            resolving_region: REGION.to_owned(),
            relation,
            config: self.config.clone(),
        }
    }

    fn call(&self, a: &PartyVersion, b: &PartyVersion) -> Result<Resolution, TestCaseError> {
        let ctx = self.ctx(relation(a, b));
        let mut fuel = None;
        let resolution = self
            .policy
            .call(Call::new(&ctx, a, b).metered(&mut fuel))
            .map_err(|e| TestCaseError::fail(format!("the call failed: {e}")))?;
        if let Some(fuel) = fuel {
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
            Written::Party(Some(p)) => Ok(Some(p)),
            Written::Refused(_) => Ok(None),
            other => Err(TestCaseError::reject(format!("not merged: {other:?}"))),
        }
    }

    fn check(&self, law: Law, v: &[PartyVersion]) -> Result<(), TestCaseError> {
        let (a, b) = (&v[0], &v[1]);
        match law {
            Law::Determinism => {
                let ctx = self.ctx(relation(a, b));
                let fresh1 = self.policy.call(Call::new(&ctx, a, b).fresh());
                let fresh2 = self.policy.call(Call::new(&ctx, a, b).fresh());
                if fresh1 != fresh2 {
                    return Err(TestCaseError::fail(
                        "two fresh instances answered differently",
                    ));
                }
                // The contract's two interfaces (wit/policy.wit): hosts call the packed one
                // where a policy exports it, and a host that does not know it (an older one, a
                // region not yet upgraded) the typed one. Answers that differ would have
                // regions write different parties for one conflict, and the other laws are
                // checked on the packed path alone.
                if self.policy.info().packed {
                    let typed = self.policy.call(Call::new(&ctx, a, b).typed().fresh());
                    if fresh1 != typed {
                        return Err(TestCaseError::fail(format!(
                            "the packed and the typed interface answered differently ({} vs {}): hosts that call the typed one would write another party",
                            kind(&fresh1),
                            kind(&typed)
                        )));
                    }
                }
                // A reused instance, asked the same question twice in a row after other calls.
                let _ = self.policy.call((&self.ctx(relation(b, a)), b, a));
                for _ in 0..2 {
                    let reused = self.policy.call((&ctx, a, b));
                    if fresh1 != reused {
                        return Err(TestCaseError::fail(format!(
                            "a reused instance answered differently from a fresh one ({} vs {}): the policy keeps state between calls",
                            kind(&reused),
                            kind(&fresh1)
                        )));
                    }
                }
                Ok(())
            }
            Law::Commutativity => {
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
                    return Err(TestCaseError::fail(format!(
                        "resolve(a,a) is not a (outcome {})",
                        resolution.kind()
                    )));
                }
                Ok(())
            }
            Law::Associativity => {
                let c = &v[2];
                // A refused step leaves nothing to compare: validity reports it.
                let then = |first: Option<PartyVersion>, f: &dyn Fn(&PartyVersion) -> _| {
                    first.map_or(Ok(None), |p| f(&p))
                };
                let (Some(left), Some(right), Some(middle)) = (
                    then(self.merged(a, b)?, &|ab| self.merged(ab, c))?,
                    then(self.merged(b, c)?, &|bc| self.merged(a, bc))?,
                    then(self.merged(a, c)?, &|ac| self.merged(ac, b))?,
                ) else {
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
}

fn kind(r: &Result<Resolution, CallFailure>) -> String {
    match r {
        Ok(r) => r.kind().to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

fn difference(x: &Written, y: &Written) -> String {
    let show = |w: &Written| match w {
        Written::Rejected => "rejected".to_owned(),
        Written::Refused(kind) => format!("refused by the host ({kind})"),
        Written::Party(p) => p
            .as_ref()
            .and_then(party_model::to_tmf)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(deleted)".to_owned()),
    };
    format!("  one order:   {}\n  other order: {}", show(x), show(y))
}

fn captured(
    law: Law,
    message: &str,
    config: &str,
    pairs: &[(&PartyVersion, &PartyVersion)],
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
            local: (*a).clone(),
            remote: (*b).clone(),
            context: Some(CapturedContext {
                resolving_region: Some(REGION.to_owned()),
                config: config_value.clone(),
            }),
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

/// Checks every law on `options.cases` generated conflicts (for each law), seeded.
pub fn check(policy: &Policy, options: &CheckOptions) -> LawReport {
    let checker = Checker {
        policy,
        config: options.config.clone(),
        budget: RefCell::new(Budget::default()),
    };
    let mut outcomes = Vec::new();
    for law in Law::ALL {
        let regions = if law == Law::Associativity { 3 } else { 2 };
        let result =
            runner(options, law).run(&plan(regions, 4), |p: Plan| checker.check(law, &p.build()));
        let failure = match result {
            Ok(()) => None,
            Err(TestError::Fail(reason, p)) => {
                let v = p.build();
                let pairs: Vec<(&PartyVersion, &PartyVersion)> = match law {
                    Law::Associativity => vec![(&v[0], &v[1]), (&v[1], &v[2]), (&v[0], &v[2])],
                    Law::Commutativity => vec![(&v[0], &v[1]), (&v[1], &v[0])],
                    Law::Idempotence => vec![(&v[0], &v[0])],
                    _ => vec![(&v[0], &v[1])],
                };
                let message = reason.message().to_owned();
                Some(Counterexample {
                    conflicts: captured(law, &message, &options.config, &pairs),
                    message,
                })
            }
            Err(TestError::Abort(reason)) => Some(Counterexample {
                message: format!("could not run the check: {}", reason.message()),
                conflicts: vec![],
            }),
        };
        outcomes.push(LawOutcome { law, failure });
    }
    LawReport {
        seed: options.seed,
        cases: options.cases,
        outcomes,
        budget: checker.budget.into_inner(),
    }
}
