//! Faults a region's store can be told to inject into the next call that reaches it: a crash
//! (the process dies: nothing after it runs, nothing is cleaned up) or another writer that
//! commits first. The shipped pipeline runs over this wrapper exactly as over the real store.

use std::sync::{Arc, Mutex};

use host_core::store::{
    Commit, IdempotencyRecord, IngestStore, PartyStore, StoreError, StoredParty,
};
use policy_types::Dot;

/// The payload of a simulated crash. It unwinds with `resume_unwind`, which runs no panic hook,
/// so thousands of crashes print nothing.
#[derive(Debug)]
pub struct Crash;

/// What the next calls into a region's store do besides their work.
#[derive(Default)]
pub struct Plan {
    /// The next ingest commit (after the idempotency claim, before the item write) crashes.
    pub crash_on_commit: bool,
    /// The next conditional party write (reconcile's, between its read and its write) crashes.
    pub crash_on_put: bool,
    /// Runs once just before the next commit: another writer of the same region, which
    /// commits first so that this one's conditional write fails and is retried.
    pub race: Option<Box<dyn FnOnce() + Send>>,
}

/// A region's store with a fault plan.
pub struct FaultyStore<S> {
    pub inner: Arc<S>,
    pub plan: Arc<Mutex<Plan>>,
}

impl<S> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        FaultyStore {
            inner: self.inner.clone(),
            plan: self.plan.clone(),
        }
    }
}

impl<S> FaultyStore<S> {
    pub fn new(inner: Arc<S>) -> Self {
        FaultyStore {
            inner,
            plan: Arc::new(Mutex::new(Plan::default())),
        }
    }

    /// Clears what the last call did not use (a planned crash that its call never reached).
    pub fn clear(&self) {
        *self.plan.lock().unwrap() = Plan::default();
    }
}

fn crash() -> ! {
    std::panic::resume_unwind(Box::new(Crash))
}

impl<S: PartyStore> PartyStore for FaultyStore<S> {
    fn party(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        self.inner.party(tenant, party_id)
    }

    fn put_party(&self, party: &StoredParty, expected: Option<&[Dot]>) -> Result<(), StoreError> {
        if std::mem::take(&mut self.plan.lock().unwrap().crash_on_put) {
            crash();
        }
        self.inner.put_party(party, expected)
    }
}

impl<S: IngestStore> IngestStore for FaultyStore<S> {
    fn own(&self, tenant: &str, party_id: &str) -> Result<Option<StoredParty>, StoreError> {
        self.inner.own(tenant, party_id)
    }

    fn record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.record(tenant, key)
    }

    fn claim(&self, record: &IdempotencyRecord, now_ms: u64) -> Result<(), StoreError> {
        self.inner.claim(record, now_ms)
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let (crash_now, race) = {
            let mut plan = self.plan.lock().unwrap();
            (std::mem::take(&mut plan.crash_on_commit), plan.race.take())
        };
        if let Some(other) = race {
            other();
        }
        if crash_now {
            crash();
        }
        self.inner.commit(commit)
    }

    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.inner.release(tenant, key)
    }
}
