//! Notifications: the listeners registered through each region's `POST hub`, and their
//! delivery. Every change of a stored party in a region — a local write, a replicated one, a
//! merge written by reconcile — is a stream record there; the region's listeners receive it as
//! the TMF632 event of that change (`…CreateEvent`, `…AttributeValueChangeEvent`,
//! `…StateChangeEvent`, `…DeleteEvent`), at least once: a failed delivery is retried with
//! backoff, and a callback that keeps failing gets a hub dead letter (on the page, with why).
//!
//! The listeners are kept in `DATA_DIR/hubs.json`; notifications in flight are not kept across
//! a restart.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use host_core::api::Hub;
use host_core::store::memory::StreamRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

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

/// A change to deliver.
#[derive(Debug)]
pub struct Notice {
    pub region: String,
    pub tenant: String,
    pub event: Value,
}

/// A notification that could not be delivered.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubDeadLetter {
    pub listener: String,
    pub callback: String,
    pub event_id: String,
    pub reason: String,
}

/// Every region's listeners.
#[derive(Debug)]
pub struct Hubs {
    path: PathBuf,
    listeners: Mutex<Vec<Listener>>,
    tx: mpsc::UnboundedSender<Notice>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
    pub delivered: AtomicU64,
    dead: Mutex<Vec<HubDeadLetter>>,
    /// Attempts per delivery, and the first pause between them (doubled each time).
    pub attempts: u32,
    pub backoff: Duration,
}

impl Hubs {
    /// The listeners kept in `path` (none when it does not exist yet).
    pub fn open(path: PathBuf) -> anyhow::Result<Hubs> {
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
            attempts: 4,
            backoff: Duration::from_millis(100),
        })
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
        self.dead.lock().unwrap().clone()
    }

    /// Queues the notification of a stream record of `region`, when a listener wants it.
    pub fn notice(&self, region: &str, record: &StreamRecord) {
        let tenant = &record.new.version.tenant;
        let wanted = self
            .listeners
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.region == region && &l.tenant == tenant);
        if !wanted {
            return;
        }
        if let Some(event) = change_event(region, record) {
            let _ = self.tx.send(Notice {
                region: region.to_owned(),
                tenant: tenant.clone(),
                event,
            });
        }
    }

    /// Delivers the queued notifications until the queue closes (call once, on the runtime).
    pub async fn deliver(self: std::sync::Arc<Self>) {
        let Some(mut rx) = self.rx.lock().unwrap().take() else {
            return;
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        while let Some(notice) = rx.recv().await {
            let targets: Vec<Listener> = self
                .listeners()
                .into_iter()
                .filter(|l| l.region == notice.region && l.tenant == notice.tenant)
                .filter(|l| host_core::notify::wants(l.query.as_deref(), &notice.event))
                .collect();
            let event = std::sync::Arc::new(notice.event);
            for listener in targets {
                let (hubs, http, event) = (self.clone(), http.clone(), event.clone());
                tokio::spawn(async move { hubs.deliver_one(&http, &listener, &event).await });
            }
        }
    }

    async fn deliver_one(&self, http: &reqwest::Client, listener: &Listener, event: &Value) {
        let mut pause = self.backoff;
        let mut why = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
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
        tracing::warn!(listener = %listener.id, callback = %listener.callback, reason = %why, "serve.hub.dead_letter");
        self.dead.lock().unwrap().push(HubDeadLetter {
            listener: listener.id.clone(),
            callback: listener.callback.clone(),
            event_id: event["eventId"].as_str().unwrap_or_default().to_owned(),
            reason: format!("{why} ({} attempts)", self.attempts),
        });
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
        Ok(id)
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, String> {
        let mut listeners = self.hubs.listeners.lock().unwrap();
        let before = listeners.len();
        listeners.retain(|l| !(l.id == id && l.tenant == tenant && l.region == self.region));
        if listeners.len() == before {
            return Ok(false);
        }
        self.hubs.save(&listeners)?;
        Ok(true)
    }
}

/// The TMF632 event of a stream record of `region` ([`host_core::notify::change_event`]).
fn change_event(region: &str, record: &StreamRecord) -> Option<Value> {
    host_core::notify::change_event(
        region,
        record.old.as_ref().map(|p| &p.version),
        Some(&record.new.version),
        &format!("{region}-{}-{}", record.stamp.at_ms, record.seq),
        record.stamp.at_ms,
    )
}
