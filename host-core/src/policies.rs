//! A fixed set of policies: which policy serves which tenant, swapped atomically while calls
//! are in flight. The registry follower ([`crate::follow`]) keeps one in step with a registry.
//!
//! Each tenant's active policy sits behind an `ArcSwap`: a call takes a snapshot (an `Arc`)
//! and finishes on it even if the policy is swapped meanwhile; the next call sees the new one.
//! A replaced policy is handed to a reaper thread that drops it once the last in-flight call
//! has let go, so tearing down its instances never lands on a caller's hot path.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::resolve::{ActivePolicy, NoPolicy, PolicyLookup, ResolveFailure};

/// The per-tenant table of active policies, with an optional default for tenants without one.
#[derive(Default)]
pub struct TenantPolicies {
    default: ArcSwapOption<ActivePolicy>,
    tenants: RwLock<HashMap<String, Arc<ArcSwap<ActivePolicy>>>>,
}

impl std::fmt::Debug for TenantPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<String> = self.tenants.read().unwrap().keys().cloned().collect();
        f.debug_struct("TenantPolicies")
            .field("tenants", &tenants)
            .finish_non_exhaustive()
    }
}

impl TenantPolicies {
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy for tenants that have none of their own.
    pub fn set_default(&self, active: ActivePolicy) {
        if let Some(old) = self.default.swap(Some(Arc::new(active))) {
            reap(old);
        }
    }

    /// Makes `active` the tenant's policy. Calls already running finish on the previous one.
    pub fn activate(&self, tenant: &str, active: ActivePolicy) {
        let active = Arc::new(active);
        let slot = self.tenants.read().unwrap().get(tenant).cloned();
        match slot {
            Some(slot) => reap(slot.swap(active)),
            None => {
                let mut tenants = self.tenants.write().unwrap();
                match tenants.get(tenant) {
                    Some(slot) => reap(slot.swap(active)),
                    None => {
                        tenants.insert(tenant.to_owned(), Arc::new(ArcSwap::new(active)));
                    }
                }
            }
        }
    }

    /// Removes the tenant's own policy (it falls back to the default).
    pub fn deactivate(&self, tenant: &str) {
        if let Some(slot) = self.tenants.write().unwrap().remove(tenant) {
            reap(slot.load_full());
        }
    }

    /// A snapshot of the tenant's policy for one call (or one batch).
    pub fn get(&self, tenant: &str) -> Result<Arc<ActivePolicy>, NoPolicy> {
        if let Some(slot) = self.tenants.read().unwrap().get(tenant) {
            return Ok(slot.load_full());
        }
        self.default
            .load_full()
            .ok_or_else(|| NoPolicy(tenant.to_owned()))
    }

    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.tenants.read().unwrap().keys().cloned().collect();
        t.sort();
        t
    }
}

impl PolicyLookup for TenantPolicies {
    fn policy(&self, tenant: &str) -> Result<Arc<ActivePolicy>, ResolveFailure> {
        Ok(self.get(tenant)?)
    }
}

/// Hands a replaced policy to the reaper thread.
fn reap(old: Arc<ActivePolicy>) {
    static REAPER: OnceLock<Mutex<Sender<Arc<ActivePolicy>>>> = OnceLock::new();
    let sender = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Arc<ActivePolicy>>();
        std::thread::Builder::new()
            .name("policy-reaper".into())
            .spawn(move || {
                let mut pending: Vec<Arc<ActivePolicy>> = Vec::new();
                loop {
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(p) => pending.push(p),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    // Drop what no call holds any more (the last reference is ours).
                    pending.retain(|p| Arc::strong_count(p) > 1);
                }
            })
            .expect("spawning the policy reaper thread");
        Mutex::new(tx)
    });
    // If the reaper is gone (process exit), dropping here is fine.
    let _ = sender.lock().unwrap().send(old);
}
