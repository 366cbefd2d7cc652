//! The notifier function: the hub on AWS. It reads the region's party table stream
//! (NEW_AND_OLD_IMAGES) and delivers every change of a stored party — an ingested write, a
//! replicated one, a merge written by reconcile — to the tenant's listeners (registered through
//! the API's `POST hub`, kept by [`DynamoHub`]) as the TMF632 event of that change
//! ([`host_core::notify::change_event`]), POSTed to each listener's callback.
//!
//! At least once: a callback that does not answer 2xx is tried again with backoff; one that
//! still fails gets the notification in the notifier's dead-letter queue with the reason, and
//! the batch moves on. A record is reported as a batch item failure (by sequence number, which
//! ends the batch, as in reconcile) only when it could not be handled at all: the listeners
//! could not be read, or the dead-letter send failed. The records before it are not delivered
//! again; it and those after it are, whole (a listener may see a notification twice; the
//! `eventId`, the region and the stream's sequence number, is the same each time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use bytes::Bytes;
use host_aws::dynamo::{PARTY_SK, party_from_item};
use host_aws::hub::{DynamoHub, Listener};
use host_core::store::{DeadLetter, DeadLetterSink};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_dynamo::AttributeValue;
use serde_json::{Value, json};

use crate::ingest_fn::now_ms;
use crate::metrics::Metrics;

/// POSTs events to callbacks: HTTP/1.1 over the SDK's own stack (hyper, rustls with aws-lc-rs,
/// the system's root certificates), so the function links no second TLS implementation.
#[derive(Clone, Debug)]
pub struct Callbacks {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// How long one attempt may take, connection included.
    timeout: Duration,
}

impl Callbacks {
    /// `http://` and `https://` callbacks; fails when the system has no root certificates.
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Callbacks {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// One attempt: `Ok` when the callback answered 2xx, otherwise why not.
    pub async fn post(&self, url: &str, body: Bytes) -> Result<(), String> {
        let request = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| format!("the callback {url} is not a usable URL: {e}"))?;
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(format!(
                "the callback did not answer within {} ms",
                self.timeout.as_millis()
            )),
            Ok(Err(e)) => Err(format!("the callback could not be reached: {e}")),
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) => Err(format!("the callback answered {}", r.status())),
        }
    }

    /// Up to `attempts` tries, pausing `backoff` before the second and doubling it after.
    pub async fn deliver(
        &self,
        url: &str,
        body: Bytes,
        attempts: u32,
        backoff: Duration,
    ) -> Result<(), String> {
        let mut pause = backoff;
        let mut why = String::from("no attempt was made");
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            match self.post(url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => why = e,
            }
        }
        Err(format!("{why} ({} attempts)", attempts.max(1)))
    }
}

pub struct NotifyFunction<D> {
    hub: DynamoHub,
    letters: Arc<D>,
    callbacks: Callbacks,
    region: String,
    /// Attempts per notification, and the first pause between them (doubled each time).
    pub attempts: u32,
    pub backoff: Duration,
}

/// What one record came to.
enum Handled {
    /// Not a visible change of a party, or no listener wants it.
    Nothing,
    Delivered {
        delivered: usize,
        dead: usize,
    },
}

impl<D> NotifyFunction<D>
where
    D: DeadLetterSink + 'static,
{
    pub fn new(
        hub: DynamoHub,
        letters: D,
        callbacks: Callbacks,
        region: impl Into<String>,
    ) -> Self {
        NotifyFunction {
            hub,
            letters: Arc::new(letters),
            callbacks,
            region: region.into(),
            attempts: 4,
            backoff: Duration::from_millis(200),
        }
    }

    /// One stream batch, in order; the first record that must be retried ends it and is
    /// reported by its sequence number.
    pub async fn handle(&self, event: DynamoDbEvent) -> DynamoDbEventResponse {
        let mut listeners: HashMap<String, Vec<Listener>> = HashMap::new();
        // Listeners whose callback failed in this batch, and why: their later notifications
        // of the batch go to the dead-letter queue at once, so one dead callback costs one
        // round of retries per batch, not one per record.
        let mut failing: HashMap<String, String> = HashMap::new();
        let mut failures = Vec::new();
        for record in event.records {
            let sequence = record.change.sequence_number.clone().unwrap_or_default();
            match self
                .record(&record, &sequence, &mut listeners, &mut failing)
                .await
            {
                Ok(Handled::Nothing) => {}
                Ok(Handled::Delivered { delivered, dead }) => {
                    Metrics::new("notify", &self.region)
                        .count("NotificationsDelivered", delivered as u64)
                        .count("NotificationsDeadLettered", dead as u64)
                        .emit();
                }
                Err(reason) => {
                    tracing::warn!(region = %self.region, sequence, reason, "notify.retry");
                    Metrics::new("notify", &self.region)
                        .count("NotifyRetries", 1)
                        .emit();
                    failures.push(sequence);
                    break;
                }
            }
        }
        crate::batch_failures(failures)
    }

    async fn record(
        &self,
        record: &EventRecord,
        sequence: &str,
        listeners: &mut HashMap<String, Vec<Listener>>,
        failing: &mut HashMap<String, String>,
    ) -> Result<Handled, String> {
        let change = &record.change;
        let is_party =
            matches!(change.keys.get("sk"), Some(AttributeValue::S(sk)) if sk == PARTY_SK);
        if !is_party {
            return Ok(Handled::Nothing);
        }
        let image = |item: &serde_dynamo::Item| {
            if item.is_empty() {
                Ok(None)
            } else {
                party_from_item(item.clone()).map(Some)
            }
        };
        let (old, new) = match (image(&change.old_image), image(&change.new_image)) {
            (Ok(old), Ok(new)) => (old, new),
            (Err(e), _) | (_, Err(e)) => {
                // Whole, so that nothing is lost; there is no listener to name.
                tracing::warn!(region = %self.region, sequence, error = %e, "notify.unreadable");
                self.dead_letter(
                    String::new(),
                    format!("an unreadable stream record: {e}"),
                    serde_json::to_value(record).unwrap_or_default(),
                )
                .await?;
                return Ok(Handled::Delivered {
                    delivered: 0,
                    dead: 1,
                });
            }
        };
        let Some(tenant) = new
            .as_ref()
            .or(old.as_ref())
            .map(|p| p.version.tenant.clone())
        else {
            return Ok(Handled::Nothing);
        };
        let at_ms = new
            .as_ref()
            .map(|p| p.provenance.written_at_ms)
            .filter(|&ms| ms > 0)
            .unwrap_or_else(now_ms);
        let Some(event) = host_core::notify::change_event(
            &self.region,
            old.as_ref().map(|p| &p.version),
            new.as_ref().map(|p| &p.version),
            &format!("{}-{sequence}", self.region),
            at_ms,
        ) else {
            return Ok(Handled::Nothing);
        };
        if !listeners.contains_key(&tenant) {
            let found = self
                .hub
                .listeners(&tenant)
                .await
                .map_err(|e| e.to_string())?;
            listeners.insert(tenant.clone(), found);
        }
        let targets: Vec<Listener> = listeners[&tenant]
            .iter()
            .filter(|l| host_core::notify::wants(l.query.as_deref(), &event))
            .cloned()
            .collect();
        if targets.is_empty() {
            return Ok(Handled::Nothing);
        }
        let body = Bytes::from(event.to_string());
        // Every listener at once: a slow callback does not hold up the others.
        let mut deliveries = tokio::task::JoinSet::new();
        for listener in targets {
            let earlier = failing.get(&listener.id).cloned();
            let (callbacks, body) = (self.callbacks.clone(), body.clone());
            let (attempts, backoff) = (self.attempts, self.backoff);
            deliveries.spawn(async move {
                let outcome = match earlier {
                    Some(why) => Err(format!(
                        "{why}; not tried again: the callback failed earlier in this batch"
                    )),
                    None => {
                        callbacks
                            .deliver(&listener.callback, body, attempts, backoff)
                            .await
                    }
                };
                (listener, outcome)
            });
        }
        let (mut delivered, mut dead) = (0, 0);
        while let Some(joined) = deliveries.join_next().await {
            let (listener, outcome) = joined.map_err(|e| format!("a delivery task failed: {e}"))?;
            match outcome {
                Ok(()) => delivered += 1,
                Err(reason) => {
                    tracing::warn!(
                        region = %self.region, tenant, listener = %listener.id, reason,
                        "notify.dead_letter"
                    );
                    failing
                        .entry(listener.id.clone())
                        .or_insert_with(|| reason.clone());
                    let payload = json!({
                        "listener": listener.id,
                        "callback": listener.callback,
                        "event": event,
                    });
                    self.dead_letter(
                        tenant.clone(),
                        format!("listener {}: {reason}", listener.id),
                        payload,
                    )
                    .await?;
                    dead += 1;
                }
            }
        }
        Ok(Handled::Delivered { delivered, dead })
    }

    async fn dead_letter(
        &self,
        tenant: String,
        reason: String,
        payload: Value,
    ) -> Result<(), String> {
        let letter = DeadLetter {
            tenant,
            region: self.region.clone(),
            reason,
            idempotency_key: None,
            payload,
        };
        let letters = self.letters.clone();
        match crate::blocking(move || letters.send(&letter)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the dead-letter send failed: {e}")),
            Err(e) => Err(format!("the dead-letter task failed: {e}")),
        }
    }
}
