//! Clients of a running server over HTTP: the demo workload (the simulation's client
//! workload, [`host_sim::workload`], sent to random regions with duplicates) and the load
//! generator (a bounded number of events at a bounded rate, reporting acknowledged events per
//! second and latency percentiles).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use host_sim::workload::{Draw, client_event};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::world::now_ms;

/// The listener route of an event (`individualCreateEvent`).
fn listener(event: &Value) -> String {
    let t = event["eventType"].as_str().unwrap_or_default();
    let mut c = t.chars();
    match c.next() {
        Some(f) => format!("{}{}", f.to_ascii_lowercase(), c.as_str()),
        None => String::new(),
    }
}

/// The request with the API key, when the server wants one.
fn with_key(r: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    match key {
        Some(k) => r.bearer_auth(k),
        None => r,
    }
}

/// Sends `event` to `region`'s listener; returns the HTTP status and, for an error, the
/// TMF630 body's `code`.
async fn send(
    http: &reqwest::Client,
    base: &str,
    region: &str,
    key: Option<&str>,
    event: &Value,
) -> Result<(u16, String), reqwest::Error> {
    let url = format!(
        "{base}/{region}/tmf-api/party/v5/listener/{}",
        listener(event)
    );
    let r = with_key(http.post(url), key).json(event).send().await?;
    let status = r.status().as_u16();
    let code = if status >= 400 {
        let body = r.json::<Value>().await.unwrap_or_default();
        body["code"].as_str().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    Ok((status, code))
}

/// The demo: `rate` events a second over `parties` parties, each sent to a random region
/// after reading the party there (a tenth of them delivered a second time, to another
/// region), until `stop` is set.
pub async fn demo(
    base: String,
    regions: Vec<String>,
    key: Option<String>,
    rate: f64,
    parties: usize,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(now_ms());
    let start = now_ms();
    let mut n = 0usize;
    let pause = Duration::from_secs_f64(1.0 / rate.max(0.1));
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(pause).await;
        n += 1;
        let region = &regions[rng.random_range(0..regions.len())];
        let party = format!("demo-{}", rng.random_range(0..parties.max(1)));
        let url = format!("{base}/{region}/tmf-api/party/v5/individual/{party}");
        let current = match with_key(http.get(&url), key.as_deref()).send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            Ok(_) => None,
            Err(_) => continue,
        };
        let draw = Draw::new(&mut rng);
        let id = format!("demo-{start}-{n}");
        let event = client_event(&draw, &id, n, &party, current.as_ref(), now_ms());
        let _ = send(&http, &base, region, key.as_deref(), &event).await;
        if regions.len() > 1 && rng.random_bool(0.1) {
            let other = loop {
                let r = &regions[rng.random_range(0..regions.len())];
                if r != region {
                    break r;
                }
            };
            let _ = send(&http, &base, other, key.as_deref(), &event).await;
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub sent: usize,
    /// Answered 200 or 201 (applied or a replay).
    pub acknowledged: usize,
    /// Answered 202: accepted and kept in the dead-letter queue, to be redriven.
    pub kept: usize,
    pub duplicates: usize,
    /// Answered 409 `statusGoesBack`, as the API says: events of a party re-created after a
    /// delete, sent to a region the delete has not reached yet (which holds the old status).
    pub refused: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Latency percentiles of acknowledged requests: p50, p99, p99.9.
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a load run sends.
#[derive(Clone, Debug)]
pub struct Load {
    pub events: usize,
    /// Events a second to aim at (0: as fast as the connections go).
    pub rate: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Parties the events are spread over.
    pub parties: usize,
    /// The share of events that are a second delivery of an earlier one, to another region.
    pub duplicate: f64,
    pub seed: u64,
}

/// Sends `load.events` events (the simulation's mix) to the regions' listener routes and
/// measures each request.
pub async fn load(base: &str, regions: &[String], key: Option<&str>, load: &Load) -> LoadReport {
    let Load {
        events,
        rate,
        concurrency,
        parties,
        duplicate,
        seed,
    } = *load;
    // The events are drawn up front, each client keeping its own view of the parties it
    // wrote (no read per event: the load is of events).
    let mut rng = StdRng::seed_from_u64(seed);
    let mut view: HashMap<String, Option<Value>> = HashMap::new();
    let mut plan: Vec<(String, Value, bool)> = Vec::with_capacity(events);
    let run = now_ms();
    for n in 0..events {
        if n > 0 && rng.random_bool(duplicate) {
            let (region, event, _) = plan[rng.random_range(0..plan.len())].clone();
            let others: Vec<&String> = regions.iter().filter(|r| **r != region).collect();
            let other = if others.is_empty() {
                region
            } else {
                others[rng.random_range(0..others.len())].clone()
            };
            plan.push((other, event, true));
            continue;
        }
        let region = regions[rng.random_range(0..regions.len())].clone();
        let party = format!("load-{}", rng.random_range(0..parties.max(1)));
        let draw = Draw::new(&mut rng);
        let current = view.get(&party).cloned().flatten();
        let id = format!("load-{seed}-{run}-{n}");
        let event = client_event(&draw, &id, n, &party, current.as_ref(), run + n as u64);
        let body = event["event"]["individual"].clone();
        let next = match event["eventType"].as_str() {
            Some("IndividualDeleteEvent") => None,
            Some("IndividualCreateEvent") => Some(body),
            _ => {
                let mut merged = current.unwrap_or_default();
                if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
                    for (k, v) in b {
                        m.insert(k.clone(), v.clone());
                    }
                }
                Some(merged)
            }
        };
        view.insert(party, next);
        plan.push((region, event, false));
    }
    let duplicates = plan.iter().filter(|p| p.2).count();
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (plan, next, http) = (plan.clone(), next.clone(), http.clone());
        let (base, key) = (base.to_owned(), key.map(str::to_owned));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut failed, mut kept, mut refused) = (0usize, 0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((region, event, _)) = plan.get(i) else {
                    break;
                };
                // At a fixed rate, latency counts from when the request was due: a request that
                // waited for a connection because the server fell behind waited for it.
                let sent = if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    due
                } else {
                    Instant::now()
                };
                // A 503 (another delivery of the key is in progress, in this region or
                // replicated from another) is retried, as its Retry-After asks.
                let mut answer = send(&http, &base, region, key.as_deref(), event).await;
                for _ in 0..20 {
                    if !matches!(answer, Ok((503, _))) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    answer = send(&http, &base, region, key.as_deref(), event).await;
                }
                match answer {
                    Ok((200 | 201, _)) => latencies.push(sent.elapsed()),
                    Ok((202, _)) => kept += 1,
                    Ok((409, code)) if code == "statusGoesBack" => refused += 1,
                    Ok((status, code)) => {
                        failed += 1;
                        tracing::warn!(status, code, event = %event["eventId"], "load.failed");
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(error = %e, event = %event["eventId"], "load.failed");
                    }
                }
            }
            (latencies, failed, kept, refused)
        }));
    }
    let mut latencies = Vec::new();
    let (mut failed, mut kept, mut refused) = (0, 0, 0);
    for w in workers {
        if let Ok((l, f, k, r)) = w.await {
            latencies.extend(l);
            failed += f;
            kept += k;
            refused += r;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort();
    // Nearest rank: the smallest latency that at least a share p of the requests did not
    // exceed.
    let pct = |p: f64| {
        let rank = (latencies.len() as f64 * p).ceil() as usize;
        latencies
            .get(rank.saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    LoadReport {
        sent: plan.len(),
        acknowledged: latencies.len(),
        kept,
        duplicates,
        refused,
        failed,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
    }
}

/// Asks the server at `base` to cut the link between two regions (one way or both).
pub async fn partition(base: &str, from: &str, to: &str, one_way: bool) -> anyhow::Result<Value> {
    admin(
        reqwest::Client::new()
            .post(format!("{base}/admin/partition"))
            .json(&serde_json::json!({"from": from, "to": to, "oneWay": one_way})),
    )
    .await
}

/// Asks the server at `base` to heal every partition.
pub async fn heal(base: &str) -> anyhow::Result<Value> {
    admin(reqwest::Client::new().post(format!("{base}/admin/heal"))).await
}

/// Asks the server at `base` to send its hub dead letters again (only `listener`'s, when
/// given): `{"resent": N, "dropped": [...], "notResent": [...]}`.
pub async fn hub_redrive(base: &str, listener: Option<&str>) -> anyhow::Result<Value> {
    admin(
        reqwest::Client::new()
            .post(format!("{base}/admin/hub/redrive"))
            .json(&serde_json::json!({"listener": listener})),
    )
    .await
}

/// The regions a server at `base` runs.
pub async fn regions(base: &str) -> anyhow::Result<Vec<String>> {
    let state = admin(reqwest::Client::new().get(format!("{base}/api/state"))).await?;
    Ok(state["regions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

async fn admin(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    use anyhow::Context as _;
    let response = request
        .send()
        .await
        .context("no serve answering there (is `host-cli serve` running, and on that address?)")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            body["message"]
                .as_str()
                .unwrap_or("the server refused the request")
        );
    }
    Ok(body)
}
