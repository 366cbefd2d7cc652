//! The HTTP server: each region's TMF632 API under `/{region}/tmf-api/party/…` (the shared
//! [`host_core::api`], as the Lambda function serves it), the live page at `/`, its state at
//! `/api/state`, and the admin routes that cut and heal links between regions and send the
//! hub dead letters again.
//!
//! A write is answered only once it is durable (see [`crate::durable`]).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use host_core::api::{ApiRequest, ApiResponse, MAX_BODY_BYTES};
use host_core::event::Tmf630Error;
use host_core::store::PartyStore as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Auth;
use crate::world::{World, now_ms};

#[derive(Clone)]
struct App {
    world: Arc<World>,
    /// Who requests act for.
    auth: Arc<Auth>,
    /// The tenant the page shows.
    tenant: String,
}

/// The server's routes over `world`; `auth` says who a request acts for, `tenant` is the one
/// the page shows.
pub fn router(world: Arc<World>, auth: Arc<Auth>, tenant: &str) -> Router {
    let app = App {
        world,
        auth,
        tenant: tenant.to_owned(),
    };
    Router::new()
        .route("/", get(page))
        .route("/api/state", get(state))
        .route("/admin/partition", post(partition))
        .route("/admin/heal", post(heal))
        .route("/admin/hub/redrive", post(hub_redrive))
        .route("/{region}/tmf-api/{*rest}", any(tmf))
        .fallback(unknown)
        .with_state(app)
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

fn error(e: &Tmf630Error) -> Response {
    json_response(e.status(), &e.to_json())
}

async fn unknown(request: Request) -> Response {
    error(&Tmf630Error::new(
        404,
        "unknownRoute",
        "Not Found",
        format!(
            "{} is not a route of this server: the TMF632 API is under /{{region}}/tmf-api/party/v4/ and /v5/, the page at /",
            request.uri().path()
        ),
    ))
}

async fn tmf(
    State(app): State<App>,
    Path((region, rest)): Path<(String, String)>,
    request: Request,
) -> Response {
    let world = app.world.clone();
    if world.region(&region).is_none() {
        return error(&Tmf630Error::new(
            404,
            "unknownRegion",
            "Not Found",
            format!(
                "no region {region} here; regions: {}",
                world.config.regions.join(", ")
            ),
        ));
    }
    let (parts, body) = request.into_parts();
    // One byte past the limit is enough to refuse it with a TMF630 413.
    let body = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        Err(e) => {
            return error(&Tmf630Error::new(
                413,
                "payloadTooLarge",
                "Payload Too Large",
                format!(
                    "the body could not be read whole ({e}); the limit is {MAX_BODY_BYTES} bytes"
                ),
            ));
        }
    };
    let mut api = ApiRequest::new(parts.method.as_str(), &format!("/tmf-api/{rest}"))
        .with_base(&format!("/{region}"))
        .with_raw_query(parts.uri.query())
        .with_body(body.to_vec());
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            api = api.with_header(name.as_str(), v);
        }
    }
    let authenticated = app.auth.tenant(|name| api.header(name));
    let tenant = match host_core::api::tenant_of(authenticated.as_deref(), &api) {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    world.saw_tenant(&tenant);
    // Handled on this worker, which tokio hands its other tasks away from while the request
    // blocks (ingest's retry back-off, a policy's call, a file lock): a slow request stalls
    // only itself, without the hand-off to and back from the blocking pool.
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| {
            let region = world.region(&region).expect("checked above");
            let now = now_ms();
            let hub = world.hubs.region(&region.name);
            host_core::api::handle(&region.ingest, Some(&hub), &tenant, &api, now, now + 30_000)
        })
    }));
    let answer = match handled {
        Ok(a) => a,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            return error(&Tmf630Error::new(
                500,
                "internalError",
                "Internal Server Error",
                format!("the request failed: {why}"),
            ));
        }
    };
    {
        // Answered only once durable: everything queued until now — this request's write, or
        // the writes a read saw — is committed first (a group commit: waiting is cheap).
        if let Err(e) = world.durable.synced(world.durable.queued()).await {
            return error(&Tmf630Error::new(
                503,
                "storeUnavailable",
                "Service Unavailable",
                e,
            ));
        }
    }
    respond(answer.response)
}

fn respond(r: ApiResponse) -> Response {
    let mut response = match &r.body {
        Some(body) => json_response(r.status, body),
        None => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::NO_CONTENT);
            resp
        }
    };
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cut {
    from: String,
    to: String,
    #[serde(default)]
    one_way: bool,
}

async fn partition(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let cut: Cut = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(&Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                format!("expected {{\"from\": REGION, \"to\": REGION, \"oneWay\": false}}: {e}"),
            ));
        }
    };
    match app.world.partition(&cut.from, &cut.to, cut.one_way) {
        Ok(()) => json_response(200, &json!({"cuts": app.world.cuts()})),
        Err(e) => error(&Tmf630Error::new(400, "unknownRegion", "Bad Request", e)),
    }
}

async fn heal(State(app): State<App>) -> Response {
    app.world.heal();
    json_response(200, &json!({"cuts": app.world.cuts()}))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedriveFilter {
    listener: Option<String>,
}

/// Sends the hub dead letters again (only one listener's, when the body names it), and
/// answers once what that owes again is durable.
async fn hub_redrive(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let filter = if body.iter().all(u8::is_ascii_whitespace) {
        RedriveFilter::default()
    } else {
        match serde_json::from_slice::<RedriveFilter>(&body) {
            Ok(f) => f,
            Err(e) => {
                return error(&Tmf630Error::new(
                    400,
                    "invalidBody",
                    "Bad Request",
                    format!("expected no body, or {{\"listener\": LISTENER_ID}}: {e}"),
                ));
            }
        }
    };
    let world = app.world.clone();
    let report = world.hubs.redrive(filter.listener.as_deref());
    if let Err(e) = world.durable.synced(world.durable.queued()).await {
        return error(&Tmf630Error::new(
            503,
            "storeUnavailable",
            "Service Unavailable",
            e,
        ));
    }
    json_response(200, &json!(report))
}

async fn page() -> impl IntoResponse {
    Html(crate::page::PAGE)
}

#[derive(Deserialize)]
struct StateQuery {
    party: Option<String>,
}

/// Everything the page shows, as JSON.
async fn state(State(app): State<App>, Query(q): Query<StateQuery>) -> Response {
    let world = app.world.clone();
    let tenant = app.tenant.clone();
    let body = tokio::task::spawn_blocking(move || snapshot(&world, &tenant, q.party.as_deref()))
        .await
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
    json_response(200, &body)
}

fn tmf_of(version: &policy_types::PartyVersion) -> Value {
    party_model::to_tmf(version).unwrap_or(json!({"deleted": true}))
}

/// The members whose values differ between the two inputs and the result.
fn diff(local: &Value, remote: &Value, result: &Value) -> Vec<Value> {
    let empty = Map::new();
    let (l, r, w) = (
        local.as_object().unwrap_or(&empty),
        remote.as_object().unwrap_or(&empty),
        result.as_object().unwrap_or(&empty),
    );
    let mut names: Vec<&String> = l.keys().chain(r.keys()).chain(w.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !(l.get(*n) == r.get(*n) && r.get(*n) == w.get(*n)))
        .map(|n| json!({"field": n, "local": l.get(n), "remote": r.get(n), "result": w.get(n)}))
        .collect()
}

/// `items` as JSON, a `row` each.
fn rows<T>(items: impl IntoIterator<Item = T>, row: impl FnMut(T) -> Value) -> Vec<Value> {
    items.into_iter().map(row).collect()
}

fn snapshot(world: &World, tenant: &str, party: Option<&str>) -> Value {
    let now = now_ms();
    let regions: Vec<Value> = world
        .regions
        .iter()
        .map(|r| {
            let mut parties = r.store.list(tenant).unwrap_or_default();
            // The most recently written first.
            parties.sort_by_key(|p| std::cmp::Reverse(p.provenance.written_at_ms));
            let live: Vec<Value> = parties
                .iter()
                .filter_map(|p| {
                    let t = party_model::to_tmf(&p.version)?;
                    Some(json!({
                        "id": p.version.party_id,
                        "name": format!("{} {}", t.get("givenName").and_then(Value::as_str).unwrap_or(""), t.get("familyName").and_then(Value::as_str).unwrap_or("")).trim().to_owned(),
                        "status": t.get("status"),
                        "etag": host_core::api::etag(&p.version.version_vector),
                        "writtenBy": p.provenance.written_by,
                        "policy": p.provenance.policy_digest.as_deref().map(host_core::registry::short),
                    }))
                })
                .take(50)
                .collect();
            let found = party.map(|id| {
                r.ingest
                    .read(tenant, id, now)
                    .ok()
                    .flatten()
                    .map(|v| json!({"party": tmf_of(&v), "etag": host_core::api::etag(&v.version_vector)}))
            });
            json!({
                "name": r.name,
                "parties": parties.len(),
                "recent": live,
                "deadLetters": r.letters.len(),
                "found": found,
            })
        })
        .collect();
    let stream = rows(
        world.stream_backlog(),
        |(r, n)| json!({"region": r, "records": n}),
    );
    let backlog = rows(
        world.backlog(),
        |(a, b, n)| json!({"from": a, "to": b, "writes": n}),
    );
    let cuts = rows(world.cuts(), |(a, b)| json!({"from": a, "to": b}));
    let conflicts: Vec<Value> = world
        .conflicts(tenant, party, 20)
        .into_iter()
        .map(|c| {
            let latest = c.latest().clone();
            let (local, remote) = (tmf_of(&c.local), tmf_of(&c.remote));
            let result = latest.written.as_ref().map(tmf_of).unwrap_or(Value::Null);
            json!({
                "id": c.id,
                "party": c.party_id,
                "region": c.region,
                "regions": c.regions,
                "atMs": c.at_ms,
                "relation": format!("{:?}", c.relation),
                "decision": latest.decision,
                "by": latest.by,
                "reason": latest.reason,
                "policy": latest.policy_digest,
                "diff": diff(&local, &remote, &result),
            })
        })
        .collect();
    let active = world
        .follower
        .policies()
        .get(tenant)
        .map(|p| p.policy.digest().to_owned())
        .ok();
    let c = &world.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "tenant": tenant,
        "nowMs": now,
        "startedMs": world.started_ms(),
        "lagMs": world.config.lag.as_millis() as u64,
        "quiet": world.quiet(),
        "driver": {
            "lastTickMs": world.driver_tick_ms.load(std::sync::atomic::Ordering::Relaxed),
            "panics": world.driver_panics.load(std::sync::atomic::Ordering::Relaxed),
        },
        "regions": regions,
        "backlog": backlog,
        "stream": stream,
        "cuts": cuts,
        "conflicts": conflicts,
        "policy": active,
        "swaps": world.swaps(),
        "hub": {
            "listeners": world.hubs.listeners().iter().filter(|l| l.tenant == tenant).count(),
            "delivered": world.hubs.delivered.load(std::sync::atomic::Ordering::Relaxed),
            "owed": world.hubs.owed(),
            "deadLetters": world.hubs.dead_letters(),
        },
        "counters": {
            "replicated": load(&c.replicated),
            "streamRecords": load(&c.stream_records),
            "reconciled": load(&c.reconciled),
            "redriven": load(&c.redriven),
        },
    })
}
