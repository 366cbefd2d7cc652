//! Notifications: the listeners registered through each region's `POST hub`, and their
//! delivery. Every change of a stored party in a region — a local write, a replicated one, a
//! merge written by reconcile — is a stream record there; the region's listeners receive it as
//! the TMF632 event of that change (`…CreateEvent`, `…AttributeValueChangeEvent`,
//! `…StateChangeEvent`, `…DeleteEvent`), at least once: a failed delivery is retried on a
//! [`Schedule`] long enough for a callback to restart (minutes, by default), and a callback
//! that keeps failing gets a hub dead letter (on the page, with why). A dead letter keeps its
//! event, so that it can be sent again once the callback is back ([`Hubs::redrive`]).
//!
//! At least once holds across `kill -9`: what is owed is kept in the durable store
//! ([`crate::durable::Owed`]). A region's own write that a listener may want is recorded as
//! owed in the same commit as the write (so an acknowledged write cannot be durable without
//! it, and the acknowledgement waits for nothing more); when the stream record comes through,
//! the hub replaces it with the change's event and the listeners it is owed to, and removes it
//! once every one of them got it or dead-lettered it. A restart sends again what is owed. A
//! change replicated from another region is owed the same way once noticed, and before that
//! the restart redoes it anyway (every region catches up from the others' items). An own write
//! whose stream record had not come through before the stop has no old image any more: its
//! event is made from the new image alone (a delete for a tombstone, a create for the party's
//! first write, a state change when the write stamped the status, an attribute value change
//! otherwise).
//!
//! A listener that is removed is owed nothing more: what was owed to it is settled with the
//! removal, and a delivery to it still being retried stops.
//!
//! Deliveries may repeat after a restart (a delivery that succeeded but was not yet settled,
//! and the changes of other regions that the catch-up replays): each event carries an
//! `eventId` that names the change — the notifying region and the stamp of the write, the same
//! across restarts — so that a listener can drop what it already has.
//!
//! The listeners are kept in `DATA_DIR/hubs.json`, what is owed and the hub dead letters in
//! `DATA_DIR/serve.redb`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use host_core::api::Hub;
use host_core::store::StoredParty;
use host_core::store::memory::{StreamRecord, WriteStamp};
use policy_types::PartyVersion;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::durable::{Durable, Owed, owed_key};

/// A registered listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub id: String,
    pub tenant: String,
    pub region: String,
    pub callback: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// An event to deliver to some listeners; `key` names what is owed ([`owed_key`]).
#[derive(Debug)]
struct Notice {
    key: String,
    event: Arc<Value>,
    targets: Vec<Listener>,
}

/// A notification that could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubDeadLetter {
    pub listener: String,
    pub callback: String,
    pub event_id: String,
    pub reason: String,
}

/// A hub dead letter as `DATA_DIR/serve.redb` keeps it: the letter and its event, to send
/// again on a redrive ([`Hubs::redrive`]). A letter that an older `serve` kept without the
/// event still reads (`event: None`), and cannot be sent again. The event stays out of
/// [`HubDeadLetter`], which is what the page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLetter {
    #[serde(flatten)]
    pub letter: HubDeadLetter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
}

/// How a delivery is retried: up to `attempts` tries, pausing `backoff` before the second and
/// doubling the pause after each, never past `max_backoff`; then the notification is
/// dead-lettered.
///
/// The default — 10 attempts from 1 s, capped at 60 s — pauses 1, 2, 4, 8, 16, 32, 60, 60 and
/// 60 s: a callback may be down for 4 min 3 s (more, by the time the attempts themselves take)
/// and still get every event, enough for a listener to restart or be redeployed. Each delivery
/// waits on its own task, so a callback being retried holds up no other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Schedule {
    /// The pauses between the attempts, in order (one fewer than the attempts; at least one
    /// attempt is made).
    pub fn pauses(&self) -> impl Iterator<Item = Duration> + use<> {
        let (mut pause, max) = (self.backoff, self.max_backoff);
        (1..self.attempts.max(1)).map(move |_| {
            let now = pause.min(max);
            pause = pause.saturating_mul(2);
            now
        })
    }

    /// How long a callback may stay down and still get the notification: every pause.
    pub fn patience(&self) -> Duration {
        self.pauses().sum()
    }
}

/// What a redrive of the hub dead letters came to ([`Hubs::redrive`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redrive {
    /// The letters sent again: they left the dead letters and are owed again.
    pub resent: usize,
    /// The letters dropped, because their listener is no longer registered.
    pub dropped: Vec<Unsent>,
    /// The letters that stay because they cannot be sent again (kept without their event).
    pub not_resent: Vec<Unsent>,
}

/// A dead letter a redrive did not send again, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsent {
    pub listener: String,
    pub callback: String,
    pub event_id: String,
    pub reason: String,
}

impl Unsent {
    fn of(letter: &HubDeadLetter, reason: &str) -> Unsent {
        Unsent {
            listener: letter.listener.clone(),
            callback: letter.callback.clone(),
            event_id: letter.event_id.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// The hub dead letters kept (the oldest go first): a callback that is gone for good must
/// not grow the store without bound.
const MAX_DEAD_LETTERS: usize = 1000;

/// What one notification is still owed to.
#[derive(Debug)]
struct Owing {
    region: String,
    tenant: String,
    event: Arc<Value>,
    listeners: BTreeSet<String>,
}

impl Owing {
    /// As the durable store keeps it.
    fn to_owed(&self) -> Owed {
        Owed::Event {
            region: self.region.clone(),
            tenant: self.tenant.clone(),
            event: (*self.event).clone(),
            listeners: self.listeners.iter().cloned().collect(),
        }
    }
}

/// Every region's listeners.
#[derive(Debug)]
pub struct Hubs {
    path: PathBuf,
    listeners: Mutex<Vec<Listener>>,
    tx: mpsc::UnboundedSender<Notice>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
    pub delivered: AtomicU64,
    /// The dead letters with their ids in the durable store (0: made before it was attached).
    dead: Mutex<Vec<(u64, KeptLetter)>>,
    next_letter: AtomicU64,
    /// How a delivery is retried.
    schedule: Schedule,
    /// Where what is owed is kept, once attached ([`Hubs::attach`]).
    durable: OnceLock<Arc<Durable>>,
    /// What is owed, by key (a mirror of the durable store's, to settle it).
    owed: Mutex<HashMap<String, Owing>>,
}

impl Hubs {
    /// The listeners kept in `path` (none when it does not exist yet), delivered to on
    /// `schedule`.
    pub fn open(path: PathBuf, schedule: Schedule) -> anyhow::Result<Hubs> {
        use anyhow::Context as _;
        let listeners = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the listeners in {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Hubs {
            path,
            listeners: Mutex::new(listeners),
            tx,
            rx: Mutex::new(Some(rx)),
            delivered: AtomicU64::new(0),
            dead: Mutex::new(Vec::new()),
            next_letter: AtomicU64::new(1),
            schedule,
            durable: OnceLock::new(),
            owed: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps what is owed in `durable` from now on, and sends again what it held owed when
    /// the process stopped (a restart); reads back the hub dead letters. Called once the
    /// regions are restored, before requests are served (a second call does nothing).
    pub fn attach(&self, durable: Arc<Durable>) -> anyhow::Result<()> {
        if self.durable.get().is_some() {
            return Ok(());
        }
        // Read before owing starts: nothing this process owes is in it yet.
        let owed = durable.owed()?;
        let letters = durable.hub_letters()?;
        {
            let mut dead = self.dead.lock().unwrap();
            let mut kept: Vec<(u64, KeptLetter)> = letters
                .iter()
                .filter_map(|(id, bytes)| Some((*id, serde_json::from_slice(bytes).ok()?)))
                .collect();
            let next = letters.last().map_or(0, |(id, _)| *id) + 1;
            self.next_letter.fetch_max(next, Ordering::SeqCst);
            kept.append(&mut dead);
            *dead = kept;
        }
        if self.durable.set(durable.clone()).is_err() {
            return Ok(());
        }
        for l in self.listeners() {
            durable.owe_for(&l.region, &l.tenant);
        }
        let mut sent = 0usize;
        for (key, owed) in owed {
            let (region, tenant, event, targets) = match owed {
                Owed::Event {
                    region,
                    tenant,
                    event,
                    listeners: ids,
                } => {
                    let targets = self.targets(&region, &tenant, &event, |l| ids.contains(&l.id));
                    (region, tenant, event, targets)
                }
                Owed::Change {
                    region,
                    party,
                    stamp,
                } => {
                    let tenant = party.version.tenant.clone();
                    match event_of_new_image(&region, &party, &stamp) {
                        Some(event) => {
                            let targets = self.targets(&region, &tenant, &event, |_| true);
                            (region, tenant, event, targets)
                        }
                        None => (region, tenant, Value::Null, Vec::new()),
                    }
                }
            };
            if targets.is_empty() {
                durable.owe(key, None);
            } else {
                sent += 1;
                self.send(key, &region, &tenant, event, targets, None);
            }
        }
        if sent > 0 {
            tracing::info!(notifications = sent, "serve.hub.restored");
        }
        Ok(())
    }

    fn save(&self, listeners: &[Listener]) -> Result<(), String> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(listeners).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("saving the listeners to {}: {e}", self.path.display()))
    }

    /// The hub of one region, as the API sees it.
    pub fn region<'a>(&'a self, region: &'a str) -> RegionHub<'a> {
        RegionHub { hubs: self, region }
    }

    pub fn listeners(&self) -> Vec<Listener> {
        self.listeners.lock().unwrap().clone()
    }

    pub fn dead_letters(&self) -> Vec<HubDeadLetter> {
        self.dead
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.letter.clone())
            .collect()
    }

    /// How many notifications are owed (kept until delivered or dead-lettered).
    pub fn owed(&self) -> usize {
        self.owed.lock().unwrap().len()
    }

    /// The listeners of `region` and `tenant` that `event` goes to, among those `pick` keeps.
    fn targets(
        &self,
        region: &str,
        tenant: &str,
        event: &Value,
        pick: impl Fn(&Listener) -> bool,
    ) -> Vec<Listener> {
        self.listeners
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.region == region && l.tenant == tenant && pick(l))
            .filter(|l| host_core::notify::wants(l.query.as_deref(), event))
            .cloned()
            .collect()
    }

    /// Queues the notification of a stream record of `region`, when a listener wants it.
    pub fn notice(&self, region: &str, record: &StreamRecord) {
        let tenant = &record.new.version.tenant;
        // An own write the store recorded as owed is settled here, whatever comes of it.
        let recorded = self
            .durable
            .get()
            .filter(|d| record.stamp.region == region && d.owes_for(region, tenant));
        let wanted = self
            .listeners
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.region == region && &l.tenant == tenant);
        let event = if wanted {
            change_event(region, record)
        } else {
            None
        };
        let targets = event
            .as_ref()
            .map(|e| self.targets(region, tenant, e, |_| true))
            .unwrap_or_default();
        match event {
            Some(event) if !targets.is_empty() => {
                self.send(
                    owed_key(region, &record.stamp),
                    region,
                    tenant,
                    event,
                    targets,
                    None,
                );
            }
            _ => {
                if let Some(durable) = recorded {
                    durable.owe(owed_key(region, &record.stamp), None);
                }
            }
        }
    }

    /// Records `event` as owed to `targets` (once attached) and hands it to the deliverer;
    /// `redriven` is the dead letter it is sent again for, dropped in the same commit.
    fn send(
        &self,
        key: String,
        region: &str,
        tenant: &str,
        event: Value,
        targets: Vec<Listener>,
        redriven: Option<u64>,
    ) {
        let event = Arc::new(event);
        if let Some(durable) = self.durable.get() {
            let mut owed = self.owed.lock().unwrap();
            let owing = owed.entry(key.clone()).or_insert_with(|| Owing {
                region: region.to_owned(),
                tenant: tenant.to_owned(),
                event: event.clone(),
                listeners: BTreeSet::new(),
            });
            owing.event = event.clone();
            owing.listeners.extend(targets.iter().map(|l| l.id.clone()));
            match redriven {
                Some(letter) if letter > 0 => {
                    durable.redrive_hub_letter(letter, key.clone(), owing.to_owed());
                }
                _ => durable.owe(key.clone(), Some(owing.to_owed())),
            }
        }
        let _ = self.tx.send(Notice {
            key,
            event,
            targets,
        });
    }

    /// `listener` got what is owed under `key`, or it was dead-lettered: once every listener
    /// is settled, nothing is owed any more.
    fn settle(&self, key: &str, listener: &str) {
        let Some(durable) = self.durable.get() else {
            return;
        };
        let mut owed = self.owed.lock().unwrap();
        if let Some(owing) = owed.get_mut(key) {
            owing.listeners.remove(listener);
            if owing.listeners.is_empty() {
                owed.remove(key);
                durable.owe(key.to_owned(), None);
            }
        }
    }

    /// `listener` was removed: everything owed to it is settled (in the durable store too), so
    /// that nothing is owed to nobody and a restart sends it nothing.
    fn forget(&self, listener: &str) {
        let Some(durable) = self.durable.get() else {
            return;
        };
        let mut owed = self.owed.lock().unwrap();
        owed.retain(|key, owing| {
            if !owing.listeners.remove(listener) {
                return true;
            }
            if owing.listeners.is_empty() {
                durable.owe(key.clone(), None);
                false
            } else {
                durable.owe(key.clone(), Some(owing.to_owed()));
                true
            }
        });
    }

    fn is_registered(&self, listener: &str) -> bool {
        self.listeners
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.id == listener)
    }

    /// Sends the dead letters again (only `listener`'s, when given): each one whose listener
    /// is still registered leaves the dead letters and is owed again — in one commit, so that
    /// a stop at any point leaves it either a dead letter or owed — and is delivered on the
    /// schedule like a new notification. A letter whose listener is gone is dropped; one kept
    /// without its event stays. What it wrote is durable once [`Durable::synced`] says so.
    pub fn redrive(&self, listener: Option<&str>) -> Redrive {
        let mut report = Redrive::default();
        let listeners = self.listeners();
        let durable = self.durable.get();
        let mut resend = Vec::new();
        self.dead.lock().unwrap().retain(|(id, kept)| {
            let letter = &kept.letter;
            if listener.is_some_and(|l| l != letter.listener) {
                return true;
            }
            let Some(to) = listeners.iter().find(|l| l.id == letter.listener) else {
                if let (Some(d), true) = (durable, *id > 0) {
                    d.hub_letter(*id, None);
                }
                report.dropped.push(Unsent::of(
                    letter,
                    "the listener is no longer registered",
                ));
                return false;
            };
            let Some(event) = &kept.event else {
                report.not_resent.push(Unsent::of(
                    letter,
                    "kept without its event (dead-lettered before dead letters kept it): it cannot be sent again",
                ));
                return true;
            };
            resend.push((*id, to.clone(), event.clone()));
            false
        });
        report.resent = resend.len();
        for (id, to, event) in resend {
            let key = redriven_key(&to.region, event["eventId"].as_str().unwrap_or_default());
            let (region, tenant) = (to.region.clone(), to.tenant.clone());
            self.send(key, &region, &tenant, event, vec![to], Some(id));
        }
        if report.resent + report.dropped.len() > 0 {
            tracing::info!(
                resent = report.resent,
                dropped = report.dropped.len(),
                not_resent = report.not_resent.len(),
                "serve.hub.redrive"
            );
        }
        report
    }

    /// Delivers the queued notifications until the queue closes (call once, on the runtime).
    pub async fn deliver(self: Arc<Self>) {
        let Some(mut rx) = self.rx.lock().unwrap().take() else {
            return;
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        while let Some(notice) = rx.recv().await {
            for listener in notice.targets {
                let (hubs, http, event, key) = (
                    self.clone(),
                    http.clone(),
                    notice.event.clone(),
                    notice.key.clone(),
                );
                tokio::spawn(async move {
                    hubs.deliver_one(&http, &listener, &event).await;
                    hubs.settle(&key, &listener.id);
                });
            }
        }
    }

    async fn deliver_one(&self, http: &reqwest::Client, listener: &Listener, event: &Value) {
        let mut pauses = self.schedule.pauses();
        let attempts = self.schedule.attempts.max(1);
        let mut why = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(pauses.next().unwrap_or_default()).await;
            }
            // Removed meanwhile (what was owed to it is settled): nothing more to send.
            if !self.is_registered(&listener.id) {
                return;
            }
            match http.post(&listener.callback).json(event).send().await {
                Ok(r) if r.status().is_success() => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(r) => why = format!("the callback answered {}", r.status()),
                Err(e) => why = format!("the callback could not be reached: {e}"),
            }
        }
        // A listener removed during the last attempt gets no dead letter either.
        if !self.is_registered(&listener.id) {
            return;
        }
        tracing::warn!(listener = %listener.id, callback = %listener.callback, reason = %why, "serve.hub.dead_letter");
        self.dead_letter(KeptLetter {
            letter: HubDeadLetter {
                listener: listener.id.clone(),
                callback: listener.callback.clone(),
                event_id: event["eventId"].as_str().unwrap_or_default().to_owned(),
                reason: format!("{why} ({attempts} attempts)"),
            },
            event: Some(event.clone()),
        });
    }

    fn dead_letter(&self, letter: KeptLetter) {
        let mut dead = self.dead.lock().unwrap();
        let durable = self.durable.get();
        let id = match durable {
            Some(d) => {
                let id = self.next_letter.fetch_add(1, Ordering::SeqCst);
                d.hub_letter(id, serde_json::to_vec(&letter).ok());
                id
            }
            None => 0,
        };
        dead.push((id, letter));
        while dead.len() > MAX_DEAD_LETTERS {
            let (old, _) = dead.remove(0);
            if let (Some(d), true) = (durable, old > 0) {
                d.hub_letter(old, None);
            }
        }
    }
}

/// One region's hub.
pub struct RegionHub<'a> {
    hubs: &'a Hubs,
    region: &'a str,
}

impl Hub for RegionHub<'_> {
    fn register(
        &self,
        tenant: &str,
        callback: &str,
        query: Option<&str>,
    ) -> Result<String, String> {
        let mut listeners = self.hubs.listeners.lock().unwrap();
        let id = format!("{:016x}", rand::random::<u64>());
        listeners.push(Listener {
            id: id.clone(),
            tenant: tenant.to_owned(),
            region: self.region.to_owned(),
            callback: callback.to_owned(),
            query: query.map(str::to_owned),
        });
        self.hubs.save(&listeners)?;
        if let Some(durable) = self.hubs.durable.get() {
            durable.owe_for(self.region, tenant);
        }
        Ok(id)
    }

    /// The delivery client is reqwest without a TLS stack (none is built for the embedded
    /// default): `POST hub` refuses an `https://` callback with a message instead.
    fn delivers_https(&self) -> bool {
        false
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, String> {
        let mut listeners = self.hubs.listeners.lock().unwrap();
        let before = listeners.len();
        listeners.retain(|l| !(l.id == id && l.tenant == tenant && l.region == self.region));
        if listeners.len() == before {
            return Ok(false);
        }
        self.hubs.save(&listeners)?;
        drop(listeners);
        self.hubs.forget(id);
        Ok(true)
    }

    fn list(&self, tenant: &str) -> Result<Vec<host_core::api::Listener>, String> {
        Ok(self
            .hubs
            .listeners
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.tenant == tenant && l.region == self.region)
            .map(|l| host_core::api::Listener {
                id: l.id.clone(),
                callback: l.callback.clone(),
                query: l.query.clone(),
            })
            .collect())
    }
}

/// The key under which a redriven notification is owed: apart from what the write itself
/// owes ([`owed_key`]; a region's name has no NUL), one per event, whichever listeners it is
/// sent again to.
fn redriven_key(region: &str, event_id: &str) -> String {
    format!("{region}\u{0}\u{0}redriven\u{0}{event_id}")
}

/// The id of the event of the write stamped `stamp` as `region` notifies it: the same however
/// often, and across restarts, so that a listener can recognise a repeated delivery.
fn event_id(region: &str, stamp: &WriteStamp) -> String {
    format!("{region}-{}-{}-{}", stamp.region, stamp.at_ms, stamp.seq)
}

/// The TMF632 event of a stream record of `region` ([`host_core::notify::change_event`]).
fn change_event(region: &str, record: &StreamRecord) -> Option<Value> {
    host_core::notify::change_event(
        region,
        record.old.as_ref().map(|p| &p.version),
        Some(&record.new.version),
        &event_id(region, &record.stamp),
        record.stamp.at_ms,
    )
}

/// The event of an own write whose old image is gone (it was owed when the process stopped,
/// before its stream record came through): the party's first write is a create; otherwise the
/// image before is taken to be the new one without what the write stamped, which makes a
/// tombstone a delete, a write that stamped the status a state change, and any other an
/// attribute value change.
///
/// Public for the fuzz target of what `serve.redb` holds (`fuzz/src/lib.rs`, `journal_items`):
/// an owed change read back at a restart goes through here.
pub fn event_of_new_image(region: &str, new: &StoredParty, stamp: &WriteStamp) -> Option<Value> {
    let v = &new.version;
    let writes = v.version_vector.iter().map(|d| d.counter);
    let first = writes.fold(0u64, u64::saturating_add) <= 1;
    let id = event_id(region, stamp);
    let before = (!first).then(|| {
        let latest = v.max_stamp().cloned();
        PartyVersion {
            fields: v
                .fields
                .iter()
                .filter(|f| Some(&f.stamp) != latest.as_ref())
                .cloned()
                .collect(),
            tombstone: None,
            ..v.clone()
        }
    });
    host_core::notify::change_event(region, before.as_ref(), Some(v), &id, stamp.at_ms)
        // Nothing visible told apart: still owed, as what the party is now.
        .or_else(|| host_core::notify::change_event(region, None, Some(v), &id, stamp.at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(version: PartyVersion) -> StoredParty {
        StoredParty {
            version,
            provenance: Default::default(),
            writes: Default::default(),
        }
    }

    fn stamp() -> WriteStamp {
        WriteStamp {
            at_ms: 5_000,
            seq: 7,
            region: "eu".into(),
        }
    }

    #[test]
    fn the_default_schedule_keeps_trying_for_four_minutes_with_pauses_capped_at_a_minute() {
        let s = Schedule::default();
        let pauses: Vec<u64> = s.pauses().map(|p| p.as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(s.patience(), Duration::from_secs(243), "as the doc says");
        let one = Schedule { attempts: 0, ..s };
        assert_eq!(one.pauses().count(), 0, "one attempt at least, no pause");
        let huge = Schedule { attempts: 200, ..s };
        assert!(
            huge.pauses().all(|p| p <= s.max_backoff),
            "doubling saturates under the cap"
        );
    }

    #[test]
    fn a_dead_letter_kept_before_letters_kept_their_event_still_reads() {
        let old = br#"{"listener":"l1","callback":"http://127.0.0.1:9/e","eventId":"eu-eu-1-2","reason":"down"}"#;
        let kept: KeptLetter = serde_json::from_slice(old).unwrap();
        assert_eq!(kept.event, None);
        assert_eq!(kept.letter.listener, "l1");
        let new = KeptLetter {
            event: Some(json!({"eventId": "eu-eu-1-2"})),
            ..kept
        };
        let bytes = serde_json::to_vec(&new).unwrap();
        assert_eq!(serde_json::from_slice::<KeptLetter>(&bytes).unwrap(), new);
        let letter: HubDeadLetter = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            letter, new.letter,
            "the letter reads alone too (as the fuzz target reads it)"
        );
    }

    #[test]
    fn an_owed_write_without_its_old_image_is_notified_as_the_kind_of_change_it_was() {
        let mut eu = party_model::Writer::new("eu");
        let mut p =
            party_model::new_party("acme", "42", policy_types::ResourceType::Individual, "eu");
        eu.write(
            &mut p,
            1_000,
            &json!({"givenName": "Jane", "status": "initialized"}),
        );
        let kind = |v: &PartyVersion| {
            event_of_new_image("eu", &stored(v.clone()), &stamp()).unwrap()["eventType"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(kind(&p), "IndividualCreateEvent");
        eu.write(&mut p, 2_000, &json!({"givenName": "Janet"}));
        assert_eq!(kind(&p), "IndividualAttributeValueChangeEvent");
        eu.write(&mut p, 3_000, &json!({"status": "validated"}));
        assert_eq!(kind(&p), "IndividualStateChangeEvent");
        eu.delete(&mut p, 4_000);
        assert_eq!(kind(&p), "IndividualDeleteEvent");
        let event = event_of_new_image("eu", &stored(p), &stamp()).unwrap();
        assert_eq!(
            event["eventId"], "eu-eu-5000-7",
            "named by the write's stamp"
        );
    }
}
