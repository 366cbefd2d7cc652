//! A policy that keeps heap data between calls, as a policy with a cache would: every call
//! first checks that everything earlier calls stored still reads as it was written, then
//! stores one more entry, then merges as the default policy does. If the SDK's call arena ever
//! reused memory this policy still holds, the check fails and the policy rejects the conflict
//! saying which entry was overwritten.
use policy_sdk::types::*;
use std::sync::Mutex;

static CACHE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn entry(i: usize) -> String {
    format!(
        "entry {i} of the cache, long enough to span several words: {}",
        "x".repeat(i % 97)
    )
}

struct Cache;
impl policy_sdk::Policy for Cache {
    fn describe() -> Description {
        policy_sdk::description("cache", "1.0.0")
    }
    fn resolve(ctx: &Context, local: &PartyVersion, remote: &PartyVersion) -> Resolution {
        let mut cache = CACHE.lock().unwrap();
        if let Some(i) = (0..cache.len()).find(|&i| cache[i] != entry(i)) {
            return Resolution::Reject(format!("the cache was overwritten at entry {i}"));
        }
        let n = cache.len();
        cache.push(entry(n));
        drop(cache);
        policy_sdk::merge::resolve(ctx, local, remote)
    }
}
policy_sdk::export_policy!(Cache);
