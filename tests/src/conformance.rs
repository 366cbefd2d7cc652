//! Conformance suites of the host core's storage traits: one function per trait, asserting its
//! contract, run by every backend's test file (memory and directory in `tests/tests`, DynamoDB,
//! SQS and S3 on moto in `host-lambda`). A behaviour is written down once here, so a backend
//! cannot quietly drift from the others.
//!
//! Each check works in a tenant of its own, named after it, so a backend may share one table,
//! queue or directory across checks. Every check runs even when an earlier one failed; the
//! suite then fails once, naming the backend and each failed check (the checks' own panics are
//! printed above it).

use std::panic::{AssertUnwindSafe, catch_unwind};

mod conflict_log;
mod ingest;
mod registry;

pub use self::conflict_log::{conflict_log, conflict_log_on_the_reconcile_path};
pub use self::ingest::ingest_store;
pub use self::registry::{follower, policy_registry};

/// The region every check's stores serve.
const REGION: &str = "eu";
/// The checks' clock (ms since the epoch); deadlines are a minute after it.
const NOW: u64 = 1_700_000_000_000;
const DEADLINE: u64 = NOW + 60_000;

/// A named check of a suite: run on the suite's rig `R`, in a tenant of its own.
type Check<R> = (&'static str, fn(&R, &str));

/// Runs one trait's checks on one backend and fails once at the end, naming both.
struct Suite<'a> {
    contract: &'static str,
    backend: &'a str,
    /// The tenant of each check run so far.
    tenants: Vec<String>,
    failed: Vec<String>,
}

impl<'a> Suite<'a> {
    fn new(contract: &'static str, backend: &'a str) -> Self {
        Suite {
            contract,
            backend,
            tenants: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Runs `check` in its tenant, keeping its failure for the report.
    fn check(&mut self, name: &str, check: impl FnOnce(&str)) {
        eprintln!("{} conformance on {}: {name}", self.contract, self.backend);
        let tenant = tenant_for(name);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&tenant)));
        self.tenants.push(tenant);
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            self.failed.push(format!("{name}: {message}"));
        }
    }

    /// Runs each of `checks` on `rig`.
    fn run_all<R: ?Sized>(&mut self, rig: &R, checks: &[Check<R>]) {
        for (name, check) in checks {
            self.check(name, |tenant| check(rig, tenant));
        }
    }

    /// A suite of `checks` alone: runs each on `rig`, then fails once if any failed.
    fn run<R: ?Sized>(contract: &'static str, backend: &str, rig: &R, checks: &[Check<R>]) {
        let mut suite = Suite::new(contract, backend);
        suite.run_all(rig, checks);
        suite.finish();
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "the {} backend {:?} breaks {} of the contract's checks:\n  {}",
            self.contract,
            self.backend,
            self.failed.len(),
            self.failed.join("\n  ")
        );
    }
}

/// A check's tenant: its name as a tenant name (letters, digits and `-`), short enough that a
/// check can derive a second tenant from it (`{tenant}-other`) within the 64 characters allowed.
fn tenant_for(check: &str) -> String {
    let slug: String = check
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let words: Vec<&str> = slug.split('-').filter(|w| !w.is_empty()).collect();
    let mut tenant = words.join("-");
    tenant.truncate(48);
    tenant.trim_end_matches('-').to_owned()
}
