//! The hub over HTTP: what a listener is owed survives `kill -9` of the server, and
//! `GET hub` / `GET hub/{id}` answer the listeners a tenant registered in a region; a callback
//! that is down longer than a few attempts still gets its events on the retry schedule; hub
//! dead letters can be redriven (`POST /admin/hub/redrive`), durably; removing a listener
//! settles what was owed to it.
//!
//! The kill test runs the server as a process of its own — this test binary started again on
//! [`serve_process`] — so that SIGKILL stops it the way it stops `host-cli serve`: nothing
//! queued in memory survives, only what the store committed. Waits are bounded (a broken
//! server fails instead of hanging); none asserts a speed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Process, serve, serve_with};
use host_serve::Running;
use host_serve::hub::Schedule;
use serde_json::{Value, json};

/// Names the data directory of [`serve_process`]; without it that function does nothing.
const DATA_DIR_ENV: &str = "HOST_SERVE_HUB_TEST_DATA_DIR";
/// The line [`serve_process`] prints once it serves, followed by its URL.
const READY: &str = "hub-test-server listening on";
/// The retry schedule of [`serve_process`], `ATTEMPTS,BACKOFF_MS,MAX_BACKOFF_MS` (without
/// it, the tests' usual one).
const SCHEDULE_ENV: &str = "HOST_SERVE_HUB_TEST_SCHEDULE";

/// Not a test: the server process the kill test starts (and kills), on the data directory
/// that [`DATA_DIR_ENV`] names. Ignored, so that a plain `cargo test` skips it; it returns at
/// once when started by hand.
#[test]
#[ignore = "the server process of the kill -9 test, started by that test"]
fn serve_process() {
    let Some(dir) = std::env::var_os(DATA_DIR_ENV) else {
        return;
    };
    // The test that started it holds its stdin: gone (killed, panicked), it leaves no server.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let schedule = std::env::var(SCHEDULE_ENV).ok().map(|s| {
        let n: Vec<u64> = s.split(',').map(|n| n.parse().unwrap()).collect();
        Schedule {
            attempts: n[0] as u32,
            backoff: Duration::from_millis(n[1]),
            max_backoff: Duration::from_millis(n[2]),
        }
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = match schedule {
            Some(schedule) => serve_with(Path::new(&dir), schedule).await,
            None => serve(Path::new(&dir)).await,
        };
        println!("{READY} {}", s.url());
        std::future::pending::<()>().await;
    });
}

/// A server process on `dir` ([`serve_process`]), its hub retrying on `schedule`
/// (`ATTEMPTS,BACKOFF_MS,MAX_MS`; none: the tests' usual one).
fn spawn_server(dir: &Path, schedule: Option<&str>) -> Process {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "serve_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DATA_DIR_ENV, dir)
        .env_remove(SCHEDULE_ENV)
        .stdin(Stdio::piped());
    if let Some(schedule) = schedule {
        command.env(SCHEDULE_ENV, schedule);
    }
    // The test harness writes `test serve_process ... ` before it on the same line.
    Process::start(&mut command, |line| {
        let (_, url) = line.split_once(READY)?;
        Some(url.trim().to_owned())
    })
}

/// A callback URL on a port of 127.0.0.1 that nothing listens on yet (the callback is down),
/// and that port, for the callback to come up on later.
fn down_callback() -> (String, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (format!("http://127.0.0.1:{port}/events"), port)
}

#[test]
fn a_change_owed_to_a_listener_is_delivered_after_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (callback, port) = down_callback();

    let server = spawn_server(dir.path(), None);
    let listener_id = rt.block_on(async {
        let api = Api::new(&server.url);
        let id = api.listen(&callback).await;
        api.create("k9").await;
        id
    });
    // Killed right after the acknowledgement: the first attempts failed (the callback is
    // down), the hub had not given up yet.
    server.kill();

    let server = spawn_server(dir.path(), None);
    rt.block_on(async {
        let api = Api::new(&server.url);
        // The callback comes up after the restart.
        let callback = Flaky::on(port).await;
        api.until(
            "the change acknowledged before kill -9, at the listener",
            || !callback.of("k9").is_empty(),
        )
        .await;
        let events = callback.of("k9");
        let event = &events[0];
        assert_eq!(event["eventType"], "IndividualCreateEvent", "{event}");
        assert_eq!(event["event"]["individual"]["givenName"], "Jane");
        assert!(host_core::event::parse_event(event).is_ok(), "{event}");
        let id = event["eventId"].as_str().expect("an eventId");
        assert!(
            events.iter().all(|e| e["eventId"] == id),
            "a repeated delivery carries the same eventId: {events:?}"
        );
        // Once delivered, nothing is owed any more; the listener is still registered.
        api.settled().await;
        let (_, listed) = api.call(api.http.get(api.hub_url("eu"))).await;
        assert_eq!(listed[0]["id"], listener_id, "{listed}");
    });
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_hub_lists_a_regions_listeners_and_get_hub_id_answers_one_or_404() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let api = Api::new(&s.url());
    let http = &api.http;
    let hub = |region: &str| api.hub_url(region);

    let (status, listed) = api.call(http.get(hub("eu"))).await;
    assert_eq!((status, &listed), (200, &json!([])), "none registered yet");
    let (status, first) = api
        .call(
            http.post(hub("eu"))
                .json(&json!({"callback": "http://127.0.0.1:9/a"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, second) = api
        .call(http.post(hub("eu")).json(&json!({
            "callback": "http://127.0.0.1:9/b",
            "query": "eventType=IndividualDeleteEvent"
        })))
        .await;
    let (_, elsewhere) = api
        .call(
            http.post(hub("na"))
                .json(&json!({"callback": "http://127.0.0.1:9/c"})),
        )
        .await;

    let (status, listed) = api.call(http.get(hub("eu"))).await;
    assert_eq!(status, 200);
    let mut listed = listed.as_array().expect("a JSON array").clone();
    listed.sort_by_key(|l| l["callback"].as_str().unwrap().to_owned());
    assert_eq!(
        listed,
        vec![
            json!({"id": first["id"], "callback": "http://127.0.0.1:9/a"}),
            json!({"id": second["id"], "callback": "http://127.0.0.1:9/b", "query": "eventType=IndividualDeleteEvent"}),
        ],
        "eu's listeners, not na's"
    );
    let one_of = |listener: &Value| format!("{}/{}", hub("eu"), listener["id"].as_str().unwrap());
    let (status, one) = api.call(http.get(one_of(&second))).await;
    assert_eq!(status, 200);
    assert_eq!(one, second, "GET hub/{{id}} answers what POST hub answered");

    // Another region's listener, or a removed one, is not found, with a TMF630 body.
    let (status, error) = api.call(http.get(one_of(&elsewhere))).await;
    assert_eq!(status, 404, "{error}");
    let first_id = first["id"].as_str().unwrap();
    let (status, _) = api.call(http.delete(one_of(&first))).await;
    assert_eq!(status, 204);
    let (status, error) = api.call(http.get(one_of(&first))).await;
    assert_eq!(status, 404);
    assert_eq!(error["status"], "404", "{error}");
    assert_eq!(error["code"], "notFound");
    assert!(
        error["message"].as_str().unwrap().contains(first_id),
        "{error}"
    );
    let (_, listed) = api.call(http.get(hub("eu"))).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let (status, _) = api.call(http.put(hub("eu"))).await;
    assert_eq!(status, 405);
    s.stop().await.unwrap();
}

/// `serve` has no TLS client: an `https://` callback is refused when it is registered, with a
/// TMF630 body that says so, rather than accepted and dead-lettered at every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_callback_is_refused_at_registration_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let api = Api::new(&s.url());
    let hub = api.hub_url("eu");
    let (status, error) = api
        .call(
            api.http
                .post(&hub)
                .json(&json!({"callback": "https://listener.example/tmf"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalidBody", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("http:// callbacks only"),
        "{error}"
    );
    let (_, listed) = api.call(api.http.get(&hub)).await;
    assert_eq!(listed, json!([]), "nothing registered");
    s.stop().await.unwrap();
}

/// A schedule of `attempts` with short pauses (10 ms, doubling, at most 40 ms).
fn quick(attempts: u32) -> Schedule {
    Schedule {
        attempts,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

/// A listener's callback that can be down: while `down` is set, or for its first `refuse`
/// requests, it answers 503; otherwise it keeps the event and answers 201. `tried` counts every
/// request.
#[derive(Clone)]
struct Flaky {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    refuse: Arc<AtomicUsize>,
    tried: Arc<AtomicUsize>,
}

impl Flaky {
    /// Serves on `port` of 127.0.0.1 (0: a free one), up.
    async fn on(port: u16) -> Flaky {
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the callback's port is free");
        let me = Flaky {
            url: format!("http://{}/events", listener.local_addr().unwrap()),
            got: Arc::default(),
            down: Arc::default(),
            refuse: Arc::default(),
            tried: Arc::default(),
        };
        let answer = me.clone();
        let app = axum::Router::new().route(
            "/events",
            post(move |axum::Json(event): axum::Json<Value>| {
                let me = answer.clone();
                async move {
                    me.tried.fetch_add(1, Ordering::SeqCst);
                    let refused = me
                        .refuse
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if refused || me.down.load(Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    me.got.lock().unwrap().push(event);
                    axum::http::StatusCode::CREATED
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        me
    }

    /// The events it kept of party `id`.
    fn of(&self, id: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["individual"]["id"] == id)
            .cloned()
            .collect()
    }
}

/// Talks to a server at `url` (in this process or another).
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: url.to_owned(),
        }
    }

    /// The hub of `region`.
    fn hub_url(&self, region: &str) -> String {
        format!("{}/{region}/tmf-api/party/v5/hub", self.url)
    }

    async fn call(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Registers `callback` with eu's hub; its id.
    async fn listen(&self, callback: &str) -> String {
        let (status, body) = self
            .call(
                self.http
                    .post(self.hub_url("eu"))
                    .json(&json!({"callback": callback})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn unlisten(&self, id: &str) {
        let hub = format!("{}/{id}", self.hub_url("eu"));
        assert_eq!(self.call(self.http.delete(hub)).await.0, 204);
    }

    /// Creates party `id` in eu.
    async fn create(&self, id: &str) {
        let url = format!("{}/eu/tmf-api/party/v5/individual", self.url);
        let body = json!({"id": id, "givenName": "Jane", "familyName": "Doe"});
        let (status, answer) = self.call(self.http.post(url).json(&body)).await;
        assert_eq!(status, 201, "{answer}");
    }

    async fn redrive(&self, body: Value) -> Value {
        let url = format!("{}/admin/hub/redrive", self.url);
        let (status, answer) = self.call(self.http.post(url).json(&body)).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// The hub part of `/api/state`.
    async fn hub(&self) -> Value {
        common::state(&self.http, &self.url).await["hub"].clone()
    }

    /// Polls the hub's state until `done` holds of it (bounded: a broken hub fails).
    async fn hub_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let hub = self.hub().await;
            if done(&hub) {
                return hub;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} never came; hub: {}", self.hub().await);
    }

    /// Waits until `done` holds (bounded, as [`Api::hub_until`]).
    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        self.hub_until(what, |_| done()).await;
    }

    /// Waits until the hub holds `n` dead letters; the hub then.
    async fn dead_letters(&self, n: usize) -> Value {
        let what = format!("{n} dead letter(s)");
        self.hub_until(&what, |h| count(&h["deadLetters"]) == n)
            .await
    }

    /// Waits until nothing is owed; the hub then.
    async fn settled(&self) -> Value {
        self.hub_until("nothing owed", |h| h["owed"] == 0).await
    }
}

fn count(v: &Value) -> usize {
    v.as_array().map_or(usize::MAX, Vec::len)
}

/// `serve` on a temporary data directory (it lives as long as what is returned first), its
/// hub making `attempts` [`quick`] attempts; the API to it; and a [`Flaky`] callback, up and
/// not registered yet.
async fn serve_and_callback(attempts: u32) -> (tempfile::TempDir, Running, Api, Flaky) {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(dir.path(), quick(attempts)).await;
    let api = Api::new(&s.url());
    (dir, s, api, Flaky::on(0).await)
}

/// Down for more attempts than the old schedule made (4): with a schedule that makes more,
/// the callback gets the event once it is back, and nothing is dead-lettered. Counted in
/// attempts, not time, so that a slow machine changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_down_longer_than_the_old_schedule_gets_the_event_within_the_new_one() {
    let (_dir, s, api, callback) = serve_and_callback(10).await;
    callback.refuse.store(6, Ordering::SeqCst);
    api.listen(&callback.url).await;
    api.create("r1").await;

    api.until("the event, once the callback was back", || {
        !callback.of("r1").is_empty()
    })
    .await;
    assert_eq!(
        callback.tried.load(Ordering::SeqCst),
        7,
        "six refusals, then the delivery"
    );
    let hub = api.settled().await;
    assert_eq!(hub["deadLetters"], json!([]), "{hub}");
    s.stop().await.unwrap();
}

/// A dead letter, redriven once its callback is back, is delivered and leaves the list; a
/// redrive for one listener leaves the others' letters alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_redriven_after_the_callback_recovers_is_delivered_and_leaves_the_list() {
    let (_dir, s, api, callback) = serve_and_callback(2).await;
    callback.down.store(true, Ordering::SeqCst);
    let first = api.listen(&callback.url).await;
    let second = api.listen(&callback.url).await;
    api.create("d1").await;
    // A dead letter for each listener.
    let hub = api.dead_letters(2).await;
    let event_id = hub["deadLetters"][0]["eventId"].clone();
    assert!(event_id.is_string(), "{hub}");
    assert!(callback.of("d1").is_empty(), "the callback was down");

    callback.down.store(false, Ordering::SeqCst);
    let report = api.redrive(json!({"listener": first})).await;
    assert_eq!(
        report,
        json!({"resent": 1, "dropped": [], "notResent": []}),
        "only the first listener's letter"
    );
    let hub = api.hub().await;
    assert_eq!(count(&hub["deadLetters"]), 1, "{hub}");
    assert_eq!(hub["deadLetters"][0]["listener"], second.as_str(), "{hub}");
    api.until("the redriven event", || !callback.of("d1").is_empty())
        .await;
    let got = callback.of("d1");
    assert_eq!(
        got[0]["eventId"], event_id,
        "the event that was dead-lettered"
    );
    assert_eq!(got[0]["eventType"], "IndividualCreateEvent");

    let report = api.redrive(json!({})).await;
    assert_eq!(report["resent"], 1, "{report}");
    api.until("the second listener's delivery", || {
        callback.of("d1").len() == 2
    })
    .await;
    let hub = api.settled().await;
    assert_eq!(hub["deadLetters"], json!([]), "{hub}");
    assert_eq!(api.redrive(json!({})).await["resent"], 0, "nothing left");
    s.stop().await.unwrap();
}

/// A redriven letter is owed again in the commit that drops it: killed right after the
/// redrive, before the callback was back, the server sends it after its restart.
#[test]
fn a_redriven_letter_is_owed_again_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (callback, port) = down_callback();
    // Two attempts 2 s apart: the redriven delivery is still waiting for its second when the
    // server is killed.
    let schedule = Some("2,2000,2000");

    let server = spawn_server(dir.path(), schedule);
    rt.block_on(async {
        let api = Api::new(&server.url);
        api.listen(&callback).await;
        api.create("k1").await;
        api.dead_letters(1).await;
        let report = api.redrive(json!({})).await;
        assert_eq!(report["resent"], 1, "{report}");
    });
    server.kill();

    let server = spawn_server(dir.path(), schedule);
    rt.block_on(async {
        let api = Api::new(&server.url);
        let callback = Flaky::on(port).await;
        api.until("the redriven event after the restart", || {
            !callback.of("k1").is_empty()
        })
        .await;
        let hub = api.settled().await;
        assert_eq!(
            hub["deadLetters"],
            json!([]),
            "the letter left the list for good: {hub}"
        );
    });
}

/// `DELETE hub/{id}` settles what was owed to the listener — at once (its deliveries were
/// still waiting to be retried) and in the store, so that a restart owes it nothing.
#[test]
fn removing_a_listener_settles_what_was_owed_to_it_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A callback nobody answers, retried a minute apart: the delivery stays owed.
    let schedule = Some("3,60000,60000");
    let server = spawn_server(dir.path(), schedule);
    rt.block_on(async {
        let api = Api::new(&server.url);
        let id = api.listen("http://127.0.0.1:9/events").await;
        api.create("o1").await;
        api.hub_until("the event owed", |h| h["owed"] == 1).await;
        api.unlisten(&id).await;
        let hub = api.hub().await;
        assert_eq!(hub["owed"], 0, "settled with the removal: {hub}");
    });
    server.kill();

    let (durable, _) = host_serve::durable::Durable::open(dir.path()).unwrap();
    let owed = durable.owed().unwrap();
    durable.close();
    drop(durable);
    let keys: Vec<&String> = owed.iter().map(|(key, _)| key).collect();
    assert!(keys.is_empty(), "the store still owes: {keys:?}");

    let server = spawn_server(dir.path(), schedule);
    rt.block_on(async {
        let hub = Api::new(&server.url).hub().await;
        assert_eq!(hub["owed"], 0, "{hub}");
        assert_eq!(hub["listeners"], 0, "{hub}");
    });
}

/// A letter whose listener was removed cannot be sent to anyone: a redrive drops it and says
/// so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_reports_the_letters_of_a_removed_listener_as_dropped() {
    let (_dir, s, api, callback) = serve_and_callback(1).await;
    callback.down.store(true, Ordering::SeqCst);
    let id = api.listen(&callback.url).await;
    api.create("g1").await;
    let hub = api.dead_letters(1).await;
    let event_id = hub["deadLetters"][0]["eventId"].clone();
    api.unlisten(&id).await;
    callback.down.store(false, Ordering::SeqCst);

    let report = api.redrive(json!({})).await;
    assert_eq!(report["resent"], 0, "{report}");
    assert_eq!(report["notResent"], json!([]), "{report}");
    let dropped = &report["dropped"];
    assert_eq!(count(dropped), 1, "{report}");
    assert_eq!(dropped[0]["listener"], id.as_str());
    assert_eq!(dropped[0]["eventId"], event_id);
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer registered"),
        "{report}"
    );
    assert_eq!(api.hub().await["deadLetters"], json!([]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(callback.of("g1").is_empty(), "sent to nobody");
    s.stop().await.unwrap();
}

/// A hub dead letter that an older `serve` kept without its event still reads at a restart;
/// a redrive says it cannot be sent again, and keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_kept_without_its_event_reads_and_a_redrive_reports_it_cannot_be_resent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hubs.json"),
        json!([{"id": "old1", "tenant": "acme", "region": "eu", "callback": "http://127.0.0.1:9/e"}])
            .to_string(),
    )
    .unwrap();
    {
        let (durable, _) = host_serve::durable::Durable::open(dir.path()).unwrap();
        let old = json!({"listener": "old1", "callback": "http://127.0.0.1:9/e",
            "eventId": "eu-eu-1000-1", "reason": "the callback answered 503 (4 attempts)"});
        durable.hub_letter(7, Some(old.to_string().into_bytes()));
        durable.close();
    }
    let s = serve_with(dir.path(), quick(1)).await;
    let api = Api::new(&s.url());
    let hub = api.hub().await;
    assert_eq!(hub["deadLetters"][0]["eventId"], "eu-eu-1000-1", "{hub}");

    let report = api.redrive(json!({"listener": "old1"})).await;
    assert_eq!(report["resent"], 0, "{report}");
    assert_eq!(report["dropped"], json!([]), "{report}");
    assert_eq!(count(&report["notResent"]), 1, "{report}");
    assert!(
        report["notResent"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be sent again"),
        "{report}"
    );
    assert_eq!(count(&api.hub().await["deadLetters"]), 1, "it stays");
    s.stop().await.unwrap();
}
