//! `serve` over HTTP, in process: three regions on a temporary data directory, driven with a
//! real HTTP client. Each test waits for the world to settle by polling `/api/state` (a bound
//! on the wait so that a broken world fails instead of hanging, not a speed assertion).

mod common;

use std::time::Duration;

use common::serve;
use host_serve::{Running, WorldConfig};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(s: &Running) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: s.url(),
        }
    }

    fn url(&self, region: &str, rest: &str) -> String {
        format!("{}/{region}/tmf-api/party/v5/{rest}", self.base)
    }

    async fn call(&self, r: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = r.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    /// Sends `r` and asserts that it is refused with `status` and the TMF630 error `code`.
    async fn refused(&self, r: reqwest::RequestBuilder, status: u16, code: &str) {
        let (answered, _, body) = self.call(r).await;
        assert_eq!(
            (answered, body["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }

    async fn get(&self, region: &str, id: &str) -> (u16, Value, String) {
        let (s, h, b) = self
            .call(self.http.get(self.url(region, &format!("individual/{id}"))))
            .await;
        let etag = h
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (s, b, etag)
    }

    async fn create(&self, region: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self
            .call(self.http.post(self.url(region, "individual")).json(&body))
            .await;
        (s, b)
    }

    async fn state(&self) -> Value {
        common::state(&self.http, &self.base).await
    }

    /// Waits until nothing is in flight, unreconciled or dead-lettered.
    async fn settle(&self) {
        common::settle(&self.http, &self.base).await;
    }

    /// Party `id` changed apart in eu and na ([`common::edit_apart`]): eu's given name Janet,
    /// na's family name Smith, with the two regions still cut off from each other.
    async fn edit_apart(&self, id: &str) {
        let edits = [
            ("eu", json!({"givenName": "Janet"})),
            ("na", json!({"familyName": "Smith"})),
        ];
        common::edit_apart(&self.http, &self.base, jane(id), edits).await;
    }

    async fn cut(&self, from: &str, to: &str) {
        host_serve::client::partition(&self.base, from, to, false)
            .await
            .unwrap();
    }

    async fn heal(&self) {
        host_serve::client::heal(&self.base).await.unwrap();
    }
}

/// `serve` ([`serve`]) on a temporary data directory, and a client of it. The directory lives
/// as long as what is returned first.
async fn start() -> (tempfile::TempDir, Running, Client) {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let c = Client::new(&s);
    (dir, s, c)
}

fn jane(id: &str) -> Value {
    json!({"id": id, "givenName": "Jane", "familyName": "Doe"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_in_two_regions_merge_and_read_back_identical_from_all_three() {
    let (_dir, s, c) = start().await;
    // Cut eu from na (apac keeps both links), and change a different member in each.
    c.edit_apart("42").await;
    let (_, na_view, _) = c.get("na", "42").await;
    assert_eq!(
        na_view["givenName"], "Jane",
        "na has not seen eu's change yet"
    );
    c.heal().await;
    c.settle().await;
    let mut answers = Vec::new();
    for region in ["apac", "eu", "na"] {
        let (status, mut body, etag) = c.get(region, "42").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["href"],
            format!("/{region}/tmf-api/party/v5/individual/42")
        );
        body.as_object_mut().unwrap().remove("href");
        assert_eq!(body["givenName"], "Janet", "{region}: {body}");
        assert_eq!(body["familyName"], "Smith", "{region}: {body}");
        answers.push((body, etag));
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "the regions answer differently: {answers:?}"
    );
    let state = c.state().await;
    let conflict = state["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["party"] == "42")
        .unwrap_or_else(|| panic!("no conflict for 42 on record: {state}"));
    assert_eq!(conflict["relation"], "Concurrent");
    assert_eq!(conflict["decision"], "merged");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_by_idempotency_key_is_answered_from_the_record() {
    let (_dir, s, c) = start().await;
    let post = |body: Value| {
        c.http
            .post(c.url("eu", "individual"))
            .header("idempotency-key", "order-7")
            .json(&body)
    };
    let (first, _, created) = c.call(post(jane("7"))).await;
    let (again, _, replayed) = c.call(post(jane("7"))).await;
    assert_eq!((first, again), (201, 201));
    assert_eq!(created, replayed);
    // The party was written once: one write by eu in its version.
    let (_, _, etag) = c.get("eu", "7").await;
    assert_eq!(etag, "\"eu.1\"");
    // The same key with another payload is a different request: 409.
    let (status, _, body) = c
        .call(post(
            json!({"id": "7", "givenName": "Other", "familyName": "Doe"}),
        ))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "idempotencyKeyReused");
    // An event delivered twice (its event id is the key) is applied once.
    let event = json!({
        "@type": "IndividualAttributeValueChangeEvent", "eventId": "ev-1",
        "eventType": "IndividualAttributeValueChangeEvent",
        "event": {"individual": {"id": "7", "@type": "Individual", "nationality": "NO"}},
    });
    let listener = c.url("eu", "listener/individualAttributeValueChangeEvent");
    let (a, _, _) = c.call(c.http.post(&listener).json(&event)).await;
    let (b, _, _) = c.call(c.http.post(&listener).json(&event)).await;
    assert_eq!((a, b), (201, 200));
    assert_eq!(c.get("eu", "7").await.2, "\"eu.2\"");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_holds_writes_back_and_they_drain_at_the_heal() {
    let (_dir, s, c) = start().await;
    c.cut("eu", "apac").await;
    c.cut("eu", "na").await;
    assert_eq!(c.create("eu", jane("9")).await.0, 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.get("na", "9").await.0, 404, "na is cut off from eu");
    let state = c.state().await;
    let held: u64 = state["backlog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["from"] == "eu")
        .map(|b| b["writes"].as_u64().unwrap())
        .sum();
    assert!(held > 0, "eu's writes wait on the cut links: {state}");
    assert_eq!(state["cuts"].as_array().unwrap().len(), 4);
    c.heal().await;
    c.settle().await;
    for region in ["apac", "na"] {
        assert_eq!(c.get(region, "9").await.1["givenName"], "Jane");
    }
    assert!(c.state().await["backlog"].as_array().unwrap().is_empty());
    // A one-way cut holds one direction only.
    host_serve::client::partition(&c.base, "na", "apac", true)
        .await
        .unwrap();
    assert_eq!(c.create("apac", jane("10")).await.0, 201);
    c.settle().await;
    assert_eq!(c.get("na", "10").await.0, 200, "apac → na is open");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_tmf630_bodies_and_change_nothing() {
    let (_dir, s, c) = start().await;
    let big = "x".repeat(host_core::api::MAX_BODY_BYTES + 10);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "malformed JSON",
            c.http
                .post(c.url("eu", "individual"))
                .body("{\"givenName\": "),
            400,
        ),
        (
            "an oversized body",
            c.http
                .post(c.url("eu", "individual"))
                .body(format!("{{\"givenName\": \"{big}\"}}")),
            413,
        ),
        ("an unknown route", c.http.get(c.url("eu", "person/1")), 404),
        (
            "an unknown region",
            c.http.get(c.url("mars", "individual/1")),
            404,
        ),
        (
            "outside the API",
            c.http.get(format!("{}/nothing/here", c.base)),
            404,
        ),
        (
            "a method the route does not take",
            c.http.put(c.url("eu", "individual/1")),
            405,
        ),
        (
            "an event on the wrong listener",
            c.http
                .post(c.url("eu", "listener/organizationCreateEvent"))
                .json(
                    &json!({"eventType": "IndividualCreateEvent", "eventId": "e1",
                              "event": {"individual": {"id": "1", "@type": "Individual"}}}),
                ),
            400,
        ),
        (
            "an event that is not TMF632",
            c.http
                .post(c.url("eu", "listener/individualCreateEvent"))
                .json(&json!({"eventType": "IndividualCreateEvent", "eventId": "e2"})),
            400,
        ),
        (
            "a party that breaks the schema",
            c.http
                .post(c.url("eu", "individual"))
                .json(&json!({"id": "3", "givenName": 42})),
            400,
        ),
        (
            "a change of a party that does not exist",
            c.http
                .patch(c.url("eu", "individual/nobody"))
                .json(&json!({"givenName": "X"})),
            404,
        ),
        (
            "a bad page size",
            c.http.get(c.url("eu", "individual?limit=-1")),
            400,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, _, body) = c.call(request).await;
        assert_eq!(status, expected, "{what}: {body}");
        for member in ["code", "reason", "message", "status"] {
            assert!(
                body[member].is_string(),
                "{what}: the body lacks {member}: {body}"
            );
        }
    }
    c.settle().await;
    for region in ["apac", "eu", "na"] {
        let (status, _, list) = c.call(c.http.get(c.url(region, "individual"))).await;
        assert_eq!(status, 200);
        assert_eq!(list, json!([]), "{region} holds a half-applied write");
    }
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_api_lists_projects_patches_with_if_match_and_deletes() {
    let (_dir, s, c) = start().await;
    for (id, status) in [("a", "validated"), ("b", "initialized"), ("c", "validated")] {
        let mut p = jane(id);
        p["status"] = json!(status);
        assert_eq!(c.create("eu", p).await.0, 201);
    }
    let (status, headers, page) = c
        .call(c.http.get(c.url(
            "eu",
            "individual?status=validated&fields=givenName&offset=1&limit=5",
        )))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(headers["x-result-count"], "1");
    assert_eq!(
        page,
        json!([{"id": "c", "@type": "Individual", "givenName": "Jane",
                 "href": "/eu/tmf-api/party/v5/individual/c"}])
    );
    // v4 answers with v4 links.
    let (_, _, v4) = c
        .call(
            c.http
                .get(format!("{}/eu/tmf-api/party/v4/individual/a", c.base)),
        )
        .await;
    assert_eq!(v4["href"], "/eu/tmf-api/party/v4/individual/a");
    // The link is where the party is read.
    let (status, _, linked) = c
        .call(
            c.http
                .get(format!("{}{}", c.base, v4["href"].as_str().unwrap())),
        )
        .await;
    assert_eq!((status, &linked["id"]), (200, &json!("a")));
    // A second create of the same id is refused.
    let again = c.http.post(c.url("eu", "individual")).json(&jane("a"));
    c.refused(again, 409, "alreadyExists").await;
    // If-Match: the current ETag passes, a stale one is refused with 412.
    let (_, _, etag) = c.get("eu", "a").await;
    let patch = |tag: &str, key: &str| {
        c.http
            .patch(c.url("eu", "individual/a"))
            .header("if-match", tag)
            .header("idempotency-key", key)
            .json(&json!({"givenName": "Ann", "familyName": null}))
    };
    let (ok, _, patched) = c.call(patch(&etag, "patch-1")).await;
    assert_eq!(ok, 200, "{patched}");
    assert_eq!(patched["givenName"], "Ann");
    assert!(
        patched.get("familyName").is_none(),
        "null removes: {patched}"
    );
    // The same request again (its answer was lost): answered from its record, not 412.
    let (again, _, replayed) = c.call(patch(&etag, "patch-1")).await;
    assert_eq!((again, &replayed), (200, &patched));
    // A new request naming the old version is refused, with the current ETag.
    let (stale, headers, refused) = c.call(patch(&etag, "patch-2")).await;
    assert_eq!(stale, 412, "{refused}");
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    // A status that goes back in the lifecycle refuses the whole patch.
    let back = json!({"status": "initialized", "givenName": "Bo"});
    let going_back = c.http.patch(c.url("eu", "individual/a")).json(&back);
    c.refused(going_back, 409, "statusGoesBack").await;
    let (_, kept, _) = c.get("eu", "a").await;
    assert_eq!(
        (&kept["status"], &kept["givenName"]),
        (&json!("validated"), &json!("Ann"))
    );
    let (deleted, _, _) = c.call(c.http.delete(c.url("eu", "individual/b"))).await;
    assert_eq!(deleted, 204);
    assert_eq!(c.get("eu", "b").await.0, 404);
    c.settle().await;
    assert_eq!(c.get("na", "b").await.0, 404, "the delete replicated");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_is_applied_to_the_party_as_it_is_and_refused_whole_when_it_does_not_apply() {
    let (_dir, s, c) = start().await;
    let mut p = jane("jp");
    p["contactMedium"] = json!([{"@type": "EmailContactMedium", "mediumType": "email", "emailAddress": "jane@example.com"}]);
    let (status, created) = c.create("eu", p).await;
    assert_eq!(status, 201, "{created}");
    let json_patch = |ops: Value| {
        c.http
            .patch(c.url("eu", "individual/jp"))
            .header("content-type", "application/json-patch+json")
            .body(ops.to_string())
    };
    let (status, _, patched) = c
        .call(json_patch(json!([
            {"op": "test", "path": "/givenName", "value": "Jane"},
            {"op": "replace", "path": "/givenName", "value": "Joan"},
            {"op": "remove", "path": "/familyName"},
            {"op": "add", "path": "/contactMedium/-",
             "value": {"@type": "EmailContactMedium", "mediumType": "email",
                       "emailAddress": "joan@example.com"}}
        ])))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["givenName"], "Joan");
    assert!(patched.get("familyName").is_none(), "removed: {patched}");
    let emails: Vec<&str> = patched["contactMedium"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["emailAddress"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["jane@example.com", "joan@example.com"],
        "{patched}"
    );
    let (_, before, _) = c.get("eu", "jp").await;
    // A `test` that fails refuses the whole patch: nothing of it is written.
    let failing_test = json_patch(json!([
        {"op": "replace", "path": "/givenName", "value": "Nobody"},
        {"op": "test", "path": "/givenName", "value": "Jane"}
    ]));
    c.refused(failing_test, 409, "patchNotApplicable").await;
    // Not a JSON Patch, and a party that does not exist.
    c.refused(json_patch(json!({"givenName": "X"})), 400, "invalidBody")
        .await;
    let (status, _, _) = c
        .call(
            c.http
                .patch(c.url("eu", "individual/nobody"))
                .header("content-type", "application/json-patch+json")
                .body("[]"),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        c.get("eu", "jp").await.1,
        before,
        "the refused patches changed nothing"
    );
    s.stop().await.unwrap();
}

/// A listener's callback: an HTTP server that keeps what it is sent (or refuses everything).
async fn callback_server(refuse: bool) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/events",
        post(move |axum::Json(event): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(event);
                if refuse {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::CREATED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_listener_receives_the_merge_and_a_failing_one_gets_a_dead_letter() {
    let (_dir, s, c) = start().await;
    let (good, got) = callback_server(false).await;
    let (bad, refused) = callback_server(true).await;
    let hub = c.url("apac", "hub");
    let mut answers = Vec::new();
    for (callback, expected) in [
        (good.as_str(), 201),
        (bad.as_str(), 201),
        ("ftp://nowhere", 400),
    ] {
        let (status, _, answer) = c
            .call(c.http.post(&hub).json(&json!({"callback": callback})))
            .await;
        assert_eq!(status, expected, "registering {callback}: {answer}");
        answers.push(answer);
    }
    let [registered, failing, _]: [Value; 3] = answers.try_into().unwrap();
    c.edit_apart("h1").await;
    c.heal().await;
    c.settle().await;
    let merged = |events: &[Value]| {
        events.iter().any(|e| {
            let p = &e["event"]["individual"];
            p["id"] == "h1" && p["givenName"] == "Janet" && p["familyName"] == "Smith"
        })
    };
    let mut waited = 0;
    while !merged(&got.lock().unwrap()) {
        waited += 1;
        assert!(
            waited < 200,
            "apac's listener never got the merge: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = got.lock().unwrap().clone();
    assert_eq!(
        events[0]["eventType"], "IndividualCreateEvent",
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| host_core::event::parse_event(e).is_ok()),
        "every notification is a valid TMF632 event: {events:?}"
    );
    // The refusing callback was tried again and again, then dead-lettered with why.
    let mut dead = Value::Null;
    for _ in 0..200 {
        dead = c.state().await["hub"]["deadLetters"].clone();
        if !dead.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = &dead.as_array().unwrap()[0];
    assert_eq!(first["listener"], failing["id"]);
    assert!(first["reason"].as_str().unwrap().contains("500"), "{first}");
    assert!(
        refused.lock().unwrap().len() >= 4,
        "each delivery is retried"
    );
    // Removed, the listener gets nothing more.
    let id = registered["id"].as_str().unwrap();
    let (status, _, _) = c.call(c.http.delete(format!("{hub}/{id}"))).await;
    assert_eq!(status, 204);
    let (status, _, _) = c.call(c.http.delete(format!("{hub}/{id}"))).await;
    assert_eq!(status, 404);
    let before = got.lock().unwrap().len();
    assert_eq!(c.create("apac", jane("h2")).await.0, 201);
    c.settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), before);
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_acts_for_the_tenant_of_its_key_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "acme-key-0123456789 acme\nglobex-key-0123456789 globex\n",
    )
    .unwrap();
    let mut config = WorldConfig::new(dir.path().join("data"));
    config.lag = Duration::from_millis(20);
    let s = host_serve::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        host_serve::auth::Auth::from_file(&keys).unwrap(),
        "acme",
    )
    .await
    .unwrap();
    let c = Client::new(&s);
    let create = |key: Option<&str>| {
        let post = c.http.post(c.url("eu", "individual")).json(&jane("k1"));
        match key {
            Some(key) => post.bearer_auth(key),
            None => post,
        }
    };
    let read = || c.http.get(c.url("eu", "individual/k1"));
    // In this order: acme's party is created before it is read.
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        ("no key", create(None), 401, Some("unauthenticated")),
        (
            "an unknown key",
            create(Some("not-a-key-0123456789")),
            401,
            None,
        ),
        ("acme's key", create(Some("acme-key-0123456789")), 201, None),
        // acme's key cannot act for globex, whatever the request says.
        (
            "acme's key, naming globex",
            read()
                .bearer_auth("acme-key-0123456789")
                .header("x-tenant-id", "globex"),
            403,
            Some("wrongTenant"),
        ),
        // globex does not see acme's party.
        (
            "globex's key",
            read().header("x-api-key", "globex-key-0123456789"),
            404,
            None,
        ),
    ];
    for (what, request, expected, code) in cases {
        let (status, _, body) = c.call(request).await;
        assert_eq!(status, expected, "{what}: {body}");
        if let Some(code) = code {
            assert_eq!(body["code"], code, "{what}: {body}");
        }
    }
    let (status, _, party) = c
        .call(read().header("x-api-key", "acme-key-0123456789"))
        .await;
    assert_eq!((status, &party["givenName"]), (200, &json!("Jane")));
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_every_request_is_the_one_tenants_and_naming_another_is_refused() {
    let (_dir, s, c) = start().await;
    let for_globex = c
        .http
        .post(c.url("eu", "individual"))
        .header("x-tenant-id", "globex")
        .json(&jane("t1"));
    c.refused(for_globex, 403, "wrongTenant").await;
    s.stop().await.unwrap();
}
