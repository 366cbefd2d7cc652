//! The TMF632 HTTP API of one region, independent of the server that carries it: the Lambda
//! function (API Gateway) and `serve` (axum) translate their requests into an [`ApiRequest`]
//! and send back the [`ApiResponse`], so routing, validation and TMF630 error bodies exist once.
//!
//! Routes, under `/tmf-api/party/v4/` and `/tmf-api/party/v5/`:
//! - `POST listener/{individualCreateEvent, …}`: a TMF632 event, applied by [`Ingest`];
//! - `GET individual`, `GET organization`: the tenant's parties, with `offset`, `limit`,
//!   attribute filters (`?status=validated`) and `fields=`; `X-Total-Count` and
//!   `X-Result-Count` say how many matched and how many are in the page;
//! - `GET individual/{id}` (and organization): the party as this region answers for it, with
//!   an `ETag` derived from its version vector; `fields=` projects it;
//! - `POST individual`: creates (201 with the party); `PATCH individual/{id}`: a JSON merge
//!   patch (`null` removes a member), or a JSON Patch (`application/json-patch+json`, RFC 6902)
//!   applied to the party as this region holds it, in the route's release, and written as the
//!   merge patch of what it changed, conditional on that version (409 when the party changed
//!   meanwhile or the patch does not apply); `DELETE individual/{id}`: 204.
//!
//! - `POST hub` registers a listener (`{"callback": URL, "query": …}`, 201 with its id),
//!   `GET hub` lists the tenant's listeners (`[{"id", "callback", "query"}]`), `GET hub/{id}`
//!   answers one (404 when the tenant has none with that id) and `DELETE hub/{id}` removes it
//!   (204), when the host delivers notifications ([`Hub`]); a host without one answers 501.
//!
//! Writes go through the same path as events — each becomes the TMF632 event of its change,
//! stamped, versioned and applied at most once per `Idempotency-Key` (a request without one is
//! its own key) — so an API write and an event write conflict and merge like any two writes.
//! `If-Match` on `PATCH` and `DELETE` must name the current `ETag` (412 otherwise), checked on
//! the version the write is conditional on, so two writes with the same `ETag` cannot both
//! pass. A retry with the same `Idempotency-Key` is answered from its record before any check.
//! `POST` of an id that exists is refused (409).
//!
//! What is stored, merged and replicated is what each write sent, v4 or v5; a read answers in
//! its route's release (the links name it, and the members take its form: a v4
//! `contactMedium` read on a v5 route is an `EmailContactMedium`, …: `api/representation.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use party_model::to_tmf;
use policy_types::{Dot, PartyVersion, ResourceType};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::{Tmf630Error, listener_route, parse_event};
use crate::ingest::{Ingest, Outcome, Precondition};
use crate::store::{DeadLetterSink, IngestStore, StoreError};

mod representation;

/// The largest request body accepted (an SQS message's limit; API Gateway would take more).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most parties one listing answers.
pub const MAX_PAGE: usize = 1000;

/// One HTTP request, as the server received it.
#[derive(Clone, Debug, Default)]
pub struct ApiRequest {
    pub method: String,
    /// The path from `/tmf-api/` on (a server's own prefix already removed).
    pub path: String,
    /// The query string's pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// What comes before `/tmf-api/` in the URLs the server answers to (`/eu` on `serve`, a
    /// stage on API Gateway): the links in answers carry it.
    pub base: String,
}

impl ApiRequest {
    pub fn new(method: &str, path: &str) -> Self {
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            ..ApiRequest::default()
        }
    }

    /// Sets the query from its raw form (`a=1&b=x%20y`).
    pub fn with_raw_query(mut self, raw: Option<&str>) -> Self {
        self.query = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    pub fn with_base(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_owned();
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer: a status, headers and a JSON body (none for 204).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl ApiResponse {
    fn json(status: u16, body: Value) -> Self {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn error(e: &Tmf630Error) -> Self {
        ApiResponse::json(e.status(), e.to_json())
    }

    /// The body as bytes (empty for none).
    pub fn body_bytes(&self) -> Vec<u8> {
        self.body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default()
    }
}

/// What a request came to: the response, and the ingest outcome when it was a write.
#[derive(Clone, Debug)]
pub struct Answer {
    pub response: ApiResponse,
    pub outcome: Option<Outcome>,
}

impl From<ApiResponse> for Answer {
    fn from(response: ApiResponse) -> Self {
        Answer {
            response,
            outcome: None,
        }
    }
}

/// The body as JSON, refused with 413 over [`MAX_BODY_BYTES`] and 400 when it is not JSON.
pub fn body_json(body: &[u8]) -> Result<Value, Tmf630Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Tmf630Error::new(
            413,
            "payloadTooLarge",
            "Payload Too Large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES} bytes",
                body.len()
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Tmf630Error::new(
            400,
            "invalidJson",
            "Bad Request",
            format!("the body is not JSON: {e}"),
        )
    })
}

/// A listener route must be the route of its event's type (`/listener/individualCreateEvent`).
pub fn check_listener(listener: &str, payload: &Value) -> Result<(), Tmf630Error> {
    let event_type = payload
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let listener = format!("/listener/{listener}");
    match listener_route(event_type) {
        Some(route) if route == listener => Ok(()),
        Some(route) => Err(Tmf630Error::new(
            400,
            "wrongRoute",
            "Bad Request",
            format!("a {event_type} belongs on {route}, not {listener}"),
        )),
        // Unknown or missing types are refused by the schema check with the path named.
        None => parse_event(payload).map(|_| ()),
    }
}

/// The version vector as an entity tag: `"apac.2-eu.5"`.
pub fn etag(vector: &[Dot]) -> String {
    let dots: Vec<String> = vector
        .iter()
        .map(|d| format!("{}.{}", d.region, d.counter))
        .collect();
    format!("\"{}\"", dots.join("-"))
}

/// A route of the API, parsed.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    Listener(&'a str),
    Collection(ResourceType),
    Item(ResourceType, &'a str),
    Hub(Option<&'a str>),
}

/// Where a host keeps the listeners registered through `POST hub`: it delivers every change of
/// a stored party to them as the TMF632 event of that change.
pub trait Hub: Send + Sync {
    /// Registers `callback` for `tenant`'s changes (`query`: the TMF630 filter the caller
    /// gave, kept as given); returns the listener's id.
    fn register(&self, tenant: &str, callback: &str, query: Option<&str>)
    -> Result<String, String>;
    /// Removes a listener; false when the tenant has none with that id.
    fn remove(&self, tenant: &str, id: &str) -> Result<bool, String>;
    /// The listeners of `tenant` (`GET hub`, and `GET hub/{id}` picks one).
    fn list(&self, tenant: &str) -> Result<Vec<Listener>, String>;
    /// Whether this host can deliver to `https://` callbacks (`POST hub` refuses them where
    /// it cannot, rather than dead-lettering every delivery).
    fn delivers_https(&self) -> bool {
        true
    }
}

/// A registered listener as the API shows it (TMF630's hub resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub id: String,
    pub callback: String,
    /// The TMF630 filter, as the caller gave it.
    pub query: Option<String>,
}

impl Listener {
    fn to_json(&self) -> Value {
        let mut body = json!({"id": self.id, "callback": self.callback});
        if let Some(q) = &self.query {
            body["query"] = json!(q);
        }
        body
    }
}

fn not_found(path: &str, why: &str) -> Tmf630Error {
    Tmf630Error::new(404, "unknownRoute", "Not Found", format!("{path}: {why}"))
}

/// `(v4 or v5, route)` of a path under `/tmf-api/party/v{4,5}/`.
fn route(path: &str) -> Result<(u8, Route<'_>), Tmf630Error> {
    let rest = path.trim_end_matches('/');
    let (version, rest) = if let Some(r) = rest.strip_prefix("/tmf-api/party/v4/") {
        (4, r)
    } else if let Some(r) = rest.strip_prefix("/tmf-api/party/v5/") {
        (5, r)
    } else {
        return Err(not_found(
            path,
            "expected /tmf-api/party/v4/… or /tmf-api/party/v5/…",
        ));
    };
    let mut parts = rest.splitn(2, '/');
    let (head, tail) = (parts.next().unwrap_or_default(), parts.next());
    let resource = |name: &str| match name {
        "individual" => Some(ResourceType::Individual),
        "organization" => Some(ResourceType::Organization),
        _ => None,
    };
    let route = match (head, tail) {
        ("listener", Some(name)) if !name.contains('/') => Route::Listener(name),
        ("hub", None) => Route::Hub(None),
        ("hub", Some(id)) if !id.contains('/') && !id.is_empty() => Route::Hub(Some(id)),
        (name, None) if resource(name).is_some() => Route::Collection(resource(name).unwrap()),
        (name, Some(id)) if resource(name).is_some() && !id.contains('/') && !id.is_empty() => {
            Route::Item(resource(name).unwrap(), id)
        }
        _ => {
            return Err(not_found(
                path,
                "not a TMF632 route (listener/{eventType}, individual[/{id}], organization[/{id}], hub)",
            ));
        }
    };
    Ok((version, route))
}

fn method_not_allowed(method: &str, path: &str, allowed: &str) -> Answer {
    ApiResponse::error(&Tmf630Error::new(
        405,
        "methodNotAllowed",
        "Method Not Allowed",
        format!("{method} is not allowed on {path}; allowed: {allowed}"),
    ))
    .header("allow", allowed)
    .into()
}

/// The tenant a request acts for: the one the server authenticated the caller as (from a JWT
/// claim on AWS, an API key on `serve`), never one the caller names. 401 when the server
/// authenticated nobody; 403 when the request's `x-tenant-id` names another tenant (a client
/// that sends it to say which tenant it means is told it cannot act for that one).
pub fn tenant_of(authenticated: Option<&str>, request: &ApiRequest) -> Result<String, Tmf630Error> {
    let Some(tenant) = authenticated.filter(|t| !t.is_empty()) else {
        return Err(Tmf630Error::new(
            401,
            "unauthenticated",
            "Unauthorized",
            "the request carries no credential this server accepts (a bearer token naming the caller's tenant)",
        ));
    };
    match request.header("x-tenant-id") {
        Some(named) if !named.is_empty() && named != tenant => Err(Tmf630Error::new(
            403,
            "wrongTenant",
            "Forbidden",
            format!("the caller acts for tenant {tenant}; requests for tenant {named} are refused"),
        )),
        _ => Ok(tenant.to_owned()),
    }
}

/// Unique ids for requests without an idempotency key (per process; the region and the clock
/// make them unique across processes and restarts).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Handles one request for `tenant` in this region at `now_ms`; `deadline_ms` bounds an
/// in-progress claim. Never panics on input: every refusal is a TMF630 body.
pub fn handle<S: IngestStore, D: DeadLetterSink>(
    ingest: &Ingest<S, D>,
    hub: Option<&dyn Hub>,
    tenant: &str,
    request: &ApiRequest,
    now_ms: u64,
    deadline_ms: u64,
) -> Answer {
    let path = request.path.as_str();
    let (version, route) = match route(path) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(&e).into(),
    };
    let api = Api {
        ingest,
        tenant,
        request,
        version,
        now_ms,
        deadline_ms,
    };
    let method = request.method.as_str();
    match (route, method) {
        (Route::Listener(name), "POST") => api.listener(name),
        (Route::Listener(_), _) => method_not_allowed(method, path, "POST"),
        (Route::Collection(resource), "GET") => api.list(resource),
        (Route::Collection(resource), "POST") => api.create(resource),
        (Route::Collection(_), _) => method_not_allowed(method, path, "GET, POST"),
        (Route::Item(resource, id), "GET") => api.get(resource, id),
        (Route::Item(resource, id), "PATCH") => api.patch(resource, id),
        (Route::Item(resource, id), "DELETE") => api.delete(resource, id),
        (Route::Item(..), _) => method_not_allowed(method, path, "GET, PATCH, DELETE"),
        (Route::Hub(id), _) => match hub {
            None => ApiResponse::error(&Tmf630Error::new(
                501,
                "notImplemented",
                "Not Implemented",
                "this deployment delivers no notifications: it has no listener store (on AWS, the stack's LISTENER_TABLE; `host-cli serve` always has one)",
            ))
            .into(),
            Some(hub) => hub_route(hub, tenant, request, id),
        },
    }
}

fn hub_route(hub: &dyn Hub, tenant: &str, request: &ApiRequest, id: Option<&str>) -> Answer {
    let path = request.path.as_str();
    let failed = |e: String| {
        ApiResponse::error(&Tmf630Error::new(
            500,
            "hubFailure",
            "Internal Server Error",
            e,
        ))
        .into()
    };
    let unknown = |id: &str| {
        ApiResponse::error(&Tmf630Error::new(
            404,
            "notFound",
            "Not Found",
            format!("no listener {id} for tenant {tenant}"),
        ))
        .into()
    };
    match (id, request.method.as_str()) {
        (None, "POST") => {
            let body = match body_json(&request.body) {
                Ok(b) => b,
                Err(e) => return ApiResponse::error(&e).into(),
            };
            let callback = body
                .get("callback")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !(callback.starts_with("http://") || callback.starts_with("https://")) {
                return ApiResponse::error(&Tmf630Error::new(
                    400,
                    "invalidBody",
                    "Bad Request",
                    "a listener is {\"callback\": \"http(s)://…\"} (and an optional \"query\")",
                ))
                .into();
            }
            if callback.starts_with("https://") && !hub.delivers_https() {
                return ApiResponse::error(&Tmf630Error::new(
                    400,
                    "invalidBody",
                    "Bad Request",
                    "this host delivers notifications to http:// callbacks only (`serve` has no \
                     TLS client); register an http:// callback, e.g. a local proxy that forwards \
                     to the https one",
                ))
                .into();
            }
            let query = body.get("query").and_then(Value::as_str);
            match hub.register(tenant, callback, query) {
                Ok(id) => {
                    let answer = Listener {
                        id: id.clone(),
                        callback: callback.to_owned(),
                        query: query.map(str::to_owned),
                    }
                    .to_json();
                    ApiResponse::json(201, answer)
                        .header("location", format!("{}/{id}", path.trim_end_matches('/')))
                        .into()
                }
                Err(e) => failed(e),
            }
        }
        (None, "GET") => match hub.list(tenant) {
            Ok(listeners) => {
                ApiResponse::json(200, listeners.iter().map(Listener::to_json).collect()).into()
            }
            Err(e) => failed(e),
        },
        (Some(id), "GET") => match hub.list(tenant) {
            Ok(listeners) => match listeners.iter().find(|l| l.id == id) {
                Some(l) => ApiResponse::json(200, l.to_json()).into(),
                None => unknown(id),
            },
            Err(e) => failed(e),
        },
        (Some(id), "DELETE") => match hub.remove(tenant, id) {
            Ok(true) => ApiResponse {
                status: 204,
                headers: Vec::new(),
                body: None,
            }
            .into(),
            Ok(false) => unknown(id),
            Err(e) => failed(e),
        },
        (None, m) => method_not_allowed(m, path, "GET, POST"),
        (Some(_), m) => method_not_allowed(m, path, "GET, DELETE"),
    }
}

struct Api<'a, S, D> {
    ingest: &'a Ingest<S, D>,
    tenant: &'a str,
    request: &'a ApiRequest,
    version: u8,
    now_ms: u64,
    deadline_ms: u64,
}

fn store_failure(e: &StoreError) -> Answer {
    let (status, code, reason) = match e {
        StoreError::Unsupported(_) => (501, "notImplemented", "Not Implemented"),
        StoreError::Transient(_) => (503, "storeUnavailable", "Service Unavailable"),
        _ => (500, "storeFailure", "Internal Server Error"),
    };
    ApiResponse::error(&Tmf630Error::new(status, code, reason, e.to_string())).into()
}

impl<S: IngestStore, D: DeadLetterSink> Api<'_, S, D> {
    fn href(&self, resource: ResourceType, id: &str) -> String {
        format!(
            "{}/tmf-api/party/v{}/{}/{id}",
            self.request.base,
            self.version,
            resource_path(resource)
        )
    }

    /// The TMF632 release of the route.
    fn release(&self) -> crate::event::SpecVersion {
        match self.version {
            4 => crate::event::SpecVersion::V4,
            _ => crate::event::SpecVersion::V5,
        }
    }

    /// The party as the route's version represents it, projected by `fields=`; `None` for a
    /// deleted party.
    fn represent(&self, version: &PartyVersion) -> Option<Value> {
        let Value::Object(mut party) = to_tmf(version)? else {
            return None;
        };
        // A member patched to null is removed.
        party.retain(|_, v| !v.is_null());
        representation::to_release(&mut party, version.resource_type, self.release());
        party.insert(
            "href".into(),
            Value::String(self.href(version.resource_type, &version.party_id)),
        );
        party
            .entry("@type")
            .or_insert_with(|| Value::String(version.resource_type.as_str().to_owned()));
        if let Some(fields) = self.request.param("fields") {
            let keep: Vec<&str> = fields.split(',').map(str::trim).collect();
            party.retain(|k, _| {
                k == "id" || k == "href" || k == "@type" || keep.contains(&k.as_str())
            });
        }
        Some(Value::Object(party))
    }

    fn read(&self, resource: ResourceType, id: &str) -> Result<Option<PartyVersion>, ApiResponse> {
        match self.ingest.read(self.tenant, id, self.now_ms) {
            Ok(Some(v)) if v.resource_type == resource && to_tmf(&v).is_some() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) => Err(store_failure(&e).response),
        }
    }

    fn missing(&self, resource: ResourceType, id: &str) -> Tmf630Error {
        Tmf630Error::new(
            404,
            "notFound",
            "Not Found",
            format!(
                "no {} {id} in this region for tenant {}",
                resource.as_str(),
                self.tenant
            ),
        )
    }

    fn get(&self, resource: ResourceType, id: &str) -> Answer {
        match self.read(resource, id) {
            Err(a) => a.into(),
            Ok(None) => ApiResponse::error(&self.missing(resource, id)).into(),
            Ok(Some(v)) => ApiResponse::json(200, self.represent(&v).unwrap_or_default())
                .header("etag", etag(&v.version_vector))
                .into(),
        }
    }

    fn list(&self, resource: ResourceType) -> Answer {
        let number = |name: &str, default: usize| match self.request.param(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiResponse::error(&Tmf630Error::new(
                    400,
                    "invalidQuery",
                    "Bad Request",
                    format!("{name}={v:?} is not a non-negative integer"),
                ))
            }),
        };
        let (offset, limit) = match (number("offset", 0), number("limit", 100)) {
            (Ok(o), Ok(l)) => (o, l.min(MAX_PAGE)),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        };
        let filters: Vec<&(String, String)> = self
            .request
            .query
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "offset" | "limit" | "fields" | "sort"))
            .collect();
        let parties = match self.ingest.store().list(self.tenant) {
            Ok(p) => p,
            Err(e) => return store_failure(&e),
        };
        let mut matched = Vec::new();
        for stored in parties {
            if stored.version.resource_type != resource {
                continue;
            }
            // The region's answer for each (its own overwritten write merged back).
            let version = match self.read(resource, &stored.version.party_id) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(a) => return a.into(),
            };
            let Some(full) = to_tmf(&version) else {
                continue;
            };
            let keep = filters.iter().all(|(name, want)| match full.get(name) {
                Some(Value::String(s)) => s == want,
                Some(Value::Null) | None => false,
                Some(other) => {
                    let text = other.to_string();
                    text == *want
                }
            });
            if keep {
                matched.push(version);
            }
        }
        let total = matched.len();
        let page: Vec<Value> = matched
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|v| self.represent(v))
            .collect();
        let count = page.len();
        ApiResponse::json(200, Value::Array(page))
            .header("x-total-count", total.to_string())
            .header("x-result-count", count.to_string())
            .into()
    }

    /// The idempotency key of a write: the caller's, or a fresh one.
    fn key(&self) -> (String, bool) {
        match self.request.header("idempotency-key") {
            Some(k) if !k.is_empty() => (k.to_owned(), true),
            _ => {
                let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let region = self.ingest.region();
                (format!("api-{region}-{}-{n}", self.now_ms), false)
            }
        }
    }

    fn body_object(&self) -> Result<Map<String, Value>, ApiResponse> {
        match body_json(&self.request.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiResponse::error(&Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                "the body must be a JSON object (the party's members)",
            ))),
            Err(e) => Err(ApiResponse::error(&e)),
        }
    }

    /// What a change of an existing party requires of it when it is written: that it exists
    /// (404) and, with `If-Match`, that its version is the one named (412).
    fn existing(
        &self,
        resource: ResourceType,
        id: &str,
    ) -> impl Fn(Option<&PartyVersion>) -> Result<(), Tmf630Error> + Sync + '_ {
        let wanted = self.request.header("if-match").map(str::to_owned);
        let missing = self.missing(resource, id);
        move |current| {
            let Some(current) =
                current.filter(|v| v.resource_type == resource && to_tmf(v).is_some())
            else {
                return Err(missing.clone());
            };
            let Some(wanted) = &wanted else {
                return Ok(());
            };
            let tag = etag(&current.version_vector);
            if wanted.trim() == "*" || wanted.split(',').any(|w| w.trim() == tag) {
                return Ok(());
            }
            Err(Tmf630Error::new(
                412,
                "preconditionFailed",
                "Precondition Failed",
                format!(
                    "If-Match {wanted} does not name the current version {tag}: read the party again and reapply the change"
                ),
            ))
        }
    }

    /// Applies `party` as the event `kind` under `key` if `precondition` holds when it is
    /// written, and answers with the party as stored.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        resource: ResourceType,
        kind: &str,
        id: &str,
        party: Map<String, Value>,
        key: &str,
        success: u16,
        precondition: &Precondition<'_>,
    ) -> Answer {
        let event_type = format!("{}{kind}Event", resource.as_str());
        let member = resource_path(resource);
        let mut party = party;
        party
            .entry("@type")
            .or_insert_with(|| Value::String(resource.as_str().to_owned()));
        let mut event = Map::new();
        event.insert(member.into(), Value::Object(party));
        let mut payload = json!({
            "eventId": key,
            "eventType": event_type,
            "event": event,
        });
        // The envelope of the route's release: a v5 event carries `@type`, a v4 one does not,
        // and the body is checked against the schema of the release the envelope is of.
        if self.version == 5 {
            payload["@type"] = json!(event_type);
        }
        let outcome = self.ingest.handle_if(
            self.tenant,
            &payload,
            Some(key),
            self.now_ms,
            self.deadline_ms,
            precondition,
        );
        // A replay is answered like the first request (the party as it is now).
        let response = match &outcome {
            Outcome::Applied { .. } if success == 204 => ApiResponse {
                status: 204,
                headers: Vec::new(),
                body: None,
            },
            Outcome::Applied { .. } => match self.read(resource, id) {
                Ok(Some(v)) => ApiResponse::json(success, self.represent(&v).unwrap_or_default())
                    .header("etag", etag(&v.version_vector))
                    .header("location", self.href(resource, id)),
                Ok(None) => ApiResponse::json(success, json!({"id": id})),
                Err(a) => a,
            },
            Outcome::Refused(e) if e.status() == 412 => match self.read(resource, id) {
                Ok(Some(v)) => ApiResponse::error(e).header("etag", etag(&v.version_vector)),
                _ => ApiResponse::error(e),
            },
            other => outcome_response(other),
        };
        Answer {
            response,
            outcome: Some(outcome),
        }
    }

    fn create(&self, resource: ResourceType) -> Answer {
        let mut party = match self.body_object() {
            Ok(p) => p,
            Err(a) => return a.into(),
        };
        let (key, given) = self.key();
        let bad_id = |why: &str| -> Answer {
            ApiResponse::error(&Tmf630Error::new(400, "invalidBody", "Bad Request", why)).into()
        };
        let id = match party.get("id") {
            Some(Value::String(id)) if id.is_empty() || id.contains('/') => {
                return bad_id("id must be a non-empty string without '/'");
            }
            Some(Value::String(id)) => id.clone(),
            Some(_) => return bad_id("id must be a string when given"),
            // The same key creates the same party: a retried POST does not create two.
            None if given => hex::encode(&Sha256::digest(key.as_bytes())[..8]),
            None => key.trim_start_matches("api-").to_owned(),
        };
        party.insert("id".into(), Value::String(id.clone()));
        let exists = Tmf630Error::new(
            409,
            "alreadyExists",
            "Conflict",
            format!(
                "{} {id} already exists for tenant {}: change it with PATCH",
                resource.as_str(),
                self.tenant
            ),
        );
        let absent = move |current: Option<&PartyVersion>| match current {
            Some(v) if to_tmf(v).is_some() => Err(exists.clone()),
            _ => Ok(()),
        };
        self.write(resource, "Create", &id, party, &key, 201, &absent)
    }

    fn patch(&self, resource: ResourceType, id: &str) -> Answer {
        let is_json_patch = self
            .request
            .header("content-type")
            .is_some_and(|c| c.contains("json-patch"));
        // A JSON Patch is applied to the party as this region holds it, and written as the
        // merge patch of what it changed, on condition that the party is still that version.
        let (mut patch, read) = if is_json_patch {
            match self.json_patch_as_merge(resource, id) {
                Ok((patch, read)) => (patch, Some(read)),
                Err(a) => return a.into(),
            }
        } else {
            match self.body_object() {
                Ok(p) => (p, None),
                Err(a) => return a.into(),
            }
        };
        if patch.get("id").is_some_and(|v| v != id) {
            return ApiResponse::error(&Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                format!(
                    "the patch changes id to {}; a party's id cannot change",
                    patch["id"]
                ),
            ))
            .into();
        }
        patch.insert("id".into(), Value::String(id.to_owned()));
        let (key, _) = self.key();
        let existing = self.existing(resource, id);
        let unchanged = move |current: Option<&PartyVersion>| {
            existing(current)?;
            match (current, &read) {
                (Some(v), Some(read)) if etag(&v.version_vector) != *read => Err(Tmf630Error::new(
                    409,
                    "conflict",
                    "Conflict",
                    format!(
                        "the party changed from {read} to {} while the JSON Patch was applied; send it again",
                        etag(&v.version_vector)
                    ),
                )),
                _ => Ok(()),
            }
        };
        self.write(
            resource,
            "AttributeValueChange",
            id,
            patch,
            &key,
            200,
            &unchanged,
        )
    }

    /// A JSON Patch (RFC 6902) body applied to the party's current representation: the
    /// members it changed (new values) and removed (`null`), and the version it was applied to.
    fn json_patch_as_merge(
        &self,
        resource: ResourceType,
        id: &str,
    ) -> Result<(Map<String, Value>, String), ApiResponse> {
        let body = body_json(&self.request.body).map_err(|e| ApiResponse::error(&e))?;
        let operations: json_patch::Patch = serde_json::from_value(body).map_err(|e| {
            ApiResponse::error(&Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                format!("the body is not a JSON Patch (an array of operations): {e}"),
            ))
        })?;
        let current = self
            .read(resource, id)?
            .ok_or_else(|| ApiResponse::error(&self.missing(resource, id)))?;
        let Some(Value::Object(mut before)) = to_tmf(&current) else {
            return Err(ApiResponse::error(&self.missing(resource, id)));
        };
        before.retain(|_, v| !v.is_null());
        // The paths name the party as this route shows it (`GET` on it), so the patch applies
        // to that form; what it changed is written in that form, the rest stays as stored.
        representation::to_release(&mut before, resource, self.release());
        let mut after = Value::Object(before.clone());
        json_patch::patch(&mut after, &operations).map_err(|e| {
            ApiResponse::error(&Tmf630Error::new(
                409,
                "patchNotApplicable",
                "Conflict",
                format!("the JSON Patch does not apply to the party as it is: {e}"),
            ))
        })?;
        let Value::Object(after) = after else {
            return Err(ApiResponse::error(&Tmf630Error::new(
                400,
                "invalidBody",
                "Bad Request",
                "the JSON Patch replaces the party with something that is not an object",
            )));
        };
        let mut merge: Map<String, Value> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in before.keys().filter(|k| !after.contains_key(*k)) {
            merge.insert(k.clone(), Value::Null);
        }
        Ok((merge, etag(&current.version_vector)))
    }

    fn delete(&self, resource: ResourceType, id: &str) -> Answer {
        let mut party = Map::new();
        party.insert("id".into(), Value::String(id.to_owned()));
        party.insert("@type".into(), Value::String(resource.as_str().to_owned()));
        let (key, _) = self.key();
        let existing = self.existing(resource, id);
        self.write(resource, "Delete", id, party, &key, 204, &existing)
    }

    fn listener(&self, name: &str) -> Answer {
        let payload = match body_json(&self.request.body) {
            Ok(p) => p,
            Err(e) => return ApiResponse::error(&e).into(),
        };
        if let Err(e) = check_listener(name, &payload) {
            return ApiResponse::error(&e).into();
        }
        let key = self.request.header("idempotency-key");
        let outcome = self
            .ingest
            .handle(self.tenant, &payload, key, self.now_ms, self.deadline_ms);
        Answer {
            response: outcome_response(&outcome),
            outcome: Some(outcome),
        }
    }
}

fn resource_path(resource: ResourceType) -> &'static str {
    match resource {
        ResourceType::Individual => "individual",
        ResourceType::Organization => "organization",
    }
}

/// An ingest outcome as HTTP: 201 applied, 200 a replay (with the first result), the TMF630
/// body when refused, 503 with `retry-after` while another delivery of the key is in progress,
/// 202 when the event is kept in the dead-letter queue.
pub fn outcome_response(outcome: &Outcome) -> ApiResponse {
    match outcome {
        Outcome::Applied { result, replay } => {
            ApiResponse::json(if *replay { 200 } else { 201 }, result.clone())
        }
        Outcome::Refused(e) => ApiResponse::error(e),
        Outcome::InProgress => ApiResponse::error(&Tmf630Error::new(
            503,
            "requestInProgress",
            "Service Unavailable",
            "another delivery of this idempotency key is being applied; retry the same request shortly",
        ))
        .header("retry-after", "1"),
        Outcome::DeadLettered(reason) => ApiResponse::json(
            202,
            json!({"deadLettered": true, "reason": reason,
                   "message": "the event could not be applied now and is kept in the dead-letter queue; it will be redriven"}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed_and_unknown_ones_refused_with_404() {
        assert_eq!(
            route("/tmf-api/party/v5/listener/individualCreateEvent").unwrap(),
            (5, Route::Listener("individualCreateEvent"))
        );
        assert_eq!(
            route("/tmf-api/party/v4/individual/42").unwrap(),
            (4, Route::Item(ResourceType::Individual, "42"))
        );
        assert_eq!(
            route("/tmf-api/party/v5/organization/").unwrap(),
            (5, Route::Collection(ResourceType::Organization))
        );
        for bad in [
            "/tmf-api/party/v6/individual",
            "/tmf-api/party/v5/individual/1/2",
            "/tmf-api/party/v5/person",
            "/other",
        ] {
            assert_eq!(route(bad).unwrap_err().status(), 404, "{bad}");
        }
    }

    #[test]
    fn listener_routes_match_event_types() {
        let e = json!({"eventType": "IndividualCreateEvent"});
        assert!(check_listener("individualCreateEvent", &e).is_ok());
        let wrong = check_listener("organizationCreateEvent", &e).unwrap_err();
        assert_eq!(wrong.status(), 400);
        assert!(
            wrong
                .message
                .contains("belongs on /listener/individualCreateEvent")
        );
    }

    #[test]
    fn oversized_bodies_are_refused_with_413() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(body_json(&big).unwrap_err().status(), 413);
    }

    #[test]
    fn the_tenant_is_the_authenticated_one() {
        let plain = ApiRequest::new("GET", "/tmf-api/party/v5/individual");
        assert_eq!(tenant_of(Some("acme"), &plain).unwrap(), "acme");
        assert_eq!(tenant_of(None, &plain).unwrap_err().status(), 401);
        let other = plain.clone().with_header("x-tenant-id", "globex");
        let refused = tenant_of(Some("acme"), &other).unwrap_err();
        assert_eq!(
            (refused.status(), refused.code.as_str()),
            (403, "wrongTenant")
        );
        let same = plain.with_header("X-Tenant-Id", "acme");
        assert_eq!(tenant_of(Some("acme"), &same).unwrap(), "acme");
    }

    #[test]
    fn the_etag_names_every_dot() {
        let vv = [Dot::new("eu", 5), Dot::new("na", 1)];
        assert_eq!(etag(&vv), "\"eu.5-na.1\"");
    }
}
