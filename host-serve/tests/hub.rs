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

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::serve;
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

/// A server process on `dir` and its URL.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Server::start_with(dir, None)
    }

    /// A server process whose hub retries on `schedule` (`ATTEMPTS,BACKOFF_MS,MAX_MS`).
    fn start_with(dir: &Path, schedule: Option<&str>) -> Server {
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
            .env_remove(SCHEDULE_ENV);
        if let Some(schedule) = schedule {
            command.env(SCHEDULE_ENV, schedule);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server process starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the server process says where it listens")
                .unwrap();
            // The test harness writes `test serve_process ... ` before it on the same line.
            if let Some((_, url)) = line.split_once(READY) {
                break url.trim().to_owned();
            }
        };
        // Keep reading so that the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener's callback on `listener`: keeps every event it is sent.
fn callback_on(listener: tokio::net::TcpListener) -> Arc<Mutex<Vec<Value>>> {
    use axum::routing::post;
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/events",
        post(move |axum::Json(event): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(event);
                axum::http::StatusCode::CREATED
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    got
}

#[test]
fn a_change_owed_to_a_listener_is_delivered_after_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    // The callback's address, with nothing listening on it yet: the callback is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/events");

    let server = Server::start(dir.path());
    let url = server.url.clone();
    let listener_id = rt.block_on(async {
        let r = http
            .post(format!("{url}/eu/tmf-api/party/v5/hub"))
            .json(&json!({"callback": callback}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].clone();
        let r = http
            .post(format!("{url}/eu/tmf-api/party/v5/individual"))
            .json(&json!({"id": "k9", "givenName": "Jane", "familyName": "Doe"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "the write is acknowledged");
        id
    });
    // Killed right after the acknowledgement: the first attempts failed (the callback is
    // down), the hub had not given up yet.
    server.kill();

    let server = Server::start(dir.path());
    let url = server.url.clone();
    rt.block_on(async {
        // The callback comes up after the restart.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the callback's port is free again");
        let got = callback_on(listener);
        let state = || async {
            let answer = http.get(format!("{url}/api/state")).send().await.unwrap();
            answer.json::<Value>().await.unwrap()
        };
        let delivered = |events: &[Value]| {
            events
                .iter()
                .filter(|e| e["event"]["individual"]["id"] == "k9")
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut waited = 0;
        while delivered(&got.lock().unwrap()).is_empty() {
            waited += 1;
            let state = state().await;
            assert!(
                waited < 200,
                "the change acknowledged before kill -9 never reached the listener; hub: {}",
                state["hub"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events = delivered(&got.lock().unwrap());
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
        let mut owed = Value::Null;
        for _ in 0..200 {
            let state = state().await;
            owed = state["hub"]["owed"].clone();
            if owed == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(owed, 0, "what was delivered is settled");
        let listed: Value = http
            .get(format!("{url}/eu/tmf-api/party/v5/hub"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed[0]["id"], listener_id, "{listed}");
    });
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_hub_lists_a_regions_listeners_and_get_hub_id_answers_one_or_404() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let hub = |region: &str| format!("{}/{region}/tmf-api/party/v5/hub", s.url());
    let call = |r: reqwest::RequestBuilder| async move {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        )
    };

    let (status, listed) = call(http.get(hub("eu"))).await;
    assert_eq!((status, &listed), (200, &json!([])), "none registered yet");
    let (status, first) = call(
        http.post(hub("eu"))
            .json(&json!({"callback": "http://127.0.0.1:9/a"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, second) = call(http.post(hub("eu")).json(&json!({
        "callback": "http://127.0.0.1:9/b",
        "query": "eventType=IndividualDeleteEvent"
    })))
    .await;
    let (_, elsewhere) = call(
        http.post(hub("na"))
            .json(&json!({"callback": "http://127.0.0.1:9/c"})),
    )
    .await;

    let (status, listed) = call(http.get(hub("eu"))).await;
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
    let (status, one) =
        call(http.get(format!("{}/{}", hub("eu"), second["id"].as_str().unwrap()))).await;
    assert_eq!(status, 200);
    assert_eq!(one, second, "GET hub/{{id}} answers what POST hub answered");

    // Another region's listener, or a removed one, is not found, with a TMF630 body.
    let (status, error) = call(http.get(format!(
        "{}/{}",
        hub("eu"),
        elsewhere["id"].as_str().unwrap()
    )))
    .await;
    assert_eq!(status, 404, "{error}");
    let first_id = first["id"].as_str().unwrap();
    let (status, _) = call(http.delete(format!("{}/{first_id}", hub("eu")))).await;
    assert_eq!(status, 204);
    let (status, error) = call(http.get(format!("{}/{first_id}", hub("eu")))).await;
    assert_eq!(status, 404);
    assert_eq!(error["status"], "404", "{error}");
    assert_eq!(error["code"], "notFound");
    assert!(
        error["message"].as_str().unwrap().contains(first_id),
        "{error}"
    );
    let (_, listed) = call(http.get(hub("eu"))).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let (status, _) = call(http.put(hub("eu"))).await;
    assert_eq!(status, 405);
    s.stop().await.unwrap();
}

/// `serve` has no TLS client: an `https://` callback is refused when it is registered, with a
/// TMF630 body that says so, rather than accepted and dead-lettered at every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_callback_is_refused_at_registration_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let hub = format!("{}/eu/tmf-api/party/v5/hub", s.url());
    let r = http
        .post(&hub)
        .json(&json!({"callback": "https://listener.example/tmf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["code"], "invalidBody", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("http:// callbacks only"),
        "{error}"
    );
    let listed: Value = http.get(&hub).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!([]), "nothing registered");
    s.stop().await.unwrap();
}

/// `serve` as [`serve`] starts it, with the hub retrying on `schedule`.
async fn serve_with(dir: &Path, schedule: Schedule) -> Running {
    let mut config = host_serve::WorldConfig::new(dir);
    config.lag = Duration::from_millis(20);
    config.refresh = Duration::from_secs(1);
    config.hub = schedule;
    host_serve::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        host_serve::auth::Auth::Single("acme".into()),
        "acme",
    )
    .await
    .expect("serve starts")
}

/// A schedule of `attempts` with short pauses (10 ms, doubling, at most 40 ms).
fn quick(attempts: u32) -> Schedule {
    Schedule {
        attempts,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

/// A callback that can be down: while `down` is set, or for its first `refuse` requests, it
/// answers 503; otherwise it keeps the event and answers 201. `tried` counts every request.
#[derive(Clone, Default)]
struct Flaky {
    got: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    refuse: Arc<AtomicUsize>,
    tried: Arc<AtomicUsize>,
}

impl Flaky {
    /// Serves on a free port of 127.0.0.1; answers its callback URL.
    async fn start(&self) -> String {
        use axum::routing::post;
        let me = self.clone();
        let app = axum::Router::new().route(
            "/events",
            post(move |axum::Json(event): axum::Json<Value>| {
                let me = me.clone();
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The events it kept of party `id`.
    fn of(&self, id: &str) -> Vec<Value> {
        of_party(&self.got.lock().unwrap(), id)
    }
}

fn of_party(events: &[Value], id: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"]["individual"]["id"] == id)
        .cloned()
        .collect()
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

    async fn call(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Registers `callback` with eu's hub; its id.
    async fn listen(&self, callback: &str) -> String {
        let hub = format!("{}/eu/tmf-api/party/v5/hub", self.url);
        let (status, body) = self
            .call(self.http.post(hub).json(&json!({"callback": callback})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn unlisten(&self, id: &str) {
        let hub = format!("{}/eu/tmf-api/party/v5/hub/{id}", self.url);
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
        let url = format!("{}/api/state", self.url);
        self.call(self.http.get(url)).await.1["hub"].clone()
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
}

/// Waits until `done` holds (bounded).
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never came");
}

fn count(v: &Value) -> usize {
    v.as_array().map_or(usize::MAX, Vec::len)
}

/// Down for more attempts than the old schedule made (4): with a schedule that makes more,
/// the callback gets the event once it is back, and nothing is dead-lettered. Counted in
/// attempts, not time, so that a slow machine changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_down_longer_than_the_old_schedule_gets_the_event_within_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(dir.path(), quick(10)).await;
    let api = Api::new(&s.url());
    let callback = Flaky::default();
    callback.refuse.store(6, Ordering::SeqCst);
    let url = callback.start().await;
    api.listen(&url).await;
    api.create("r1").await;

    until("the event, once the callback was back", || {
        !callback.of("r1").is_empty()
    })
    .await;
    assert_eq!(
        callback.tried.load(Ordering::SeqCst),
        7,
        "six refusals, then the delivery"
    );
    let hub = api.hub_until("nothing owed", |h| h["owed"] == 0).await;
    assert_eq!(hub["deadLetters"], json!([]), "{hub}");
    s.stop().await.unwrap();
}

/// A dead letter, redriven once its callback is back, is delivered and leaves the list; a
/// redrive for one listener leaves the others' letters alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_redriven_after_the_callback_recovers_is_delivered_and_leaves_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(dir.path(), quick(2)).await;
    let api = Api::new(&s.url());
    let callback = Flaky::default();
    callback.down.store(true, Ordering::SeqCst);
    let url = callback.start().await;
    let first = api.listen(&url).await;
    let second = api.listen(&url).await;
    api.create("d1").await;
    let hub = api
        .hub_until("a dead letter for each listener", |h| {
            count(&h["deadLetters"]) == 2
        })
        .await;
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
    until("the redriven event", || !callback.of("d1").is_empty()).await;
    let got = callback.of("d1");
    assert_eq!(
        got[0]["eventId"], event_id,
        "the event that was dead-lettered"
    );
    assert_eq!(got[0]["eventType"], "IndividualCreateEvent");

    let report = api.redrive(json!({})).await;
    assert_eq!(report["resent"], 1, "{report}");
    until("the second listener's delivery", || {
        callback.of("d1").len() == 2
    })
    .await;
    let hub = api.hub_until("nothing owed", |h| h["owed"] == 0).await;
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there yet: the callback is down.
    let callback = format!("http://127.0.0.1:{port}/events");
    // Two attempts 2 s apart: the redriven delivery is still waiting for its second when the
    // server is killed.
    let schedule = Some("2,2000,2000");

    let server = Server::start_with(dir.path(), schedule);
    rt.block_on(async {
        let api = Api::new(&server.url);
        api.listen(&callback).await;
        api.create("k1").await;
        api.hub_until("the dead letter", |h| count(&h["deadLetters"]) == 1)
            .await;
        let report = api.redrive(json!({})).await;
        assert_eq!(report["resent"], 1, "{report}");
    });
    server.kill();

    let server = Server::start_with(dir.path(), schedule);
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the callback's port is free again");
        let got = callback_on(listener);
        until("the redriven event after the restart", || {
            !of_party(&got.lock().unwrap(), "k1").is_empty()
        })
        .await;
        let api = Api::new(&server.url);
        let hub = api.hub_until("nothing owed", |h| h["owed"] == 0).await;
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
    let server = Server::start_with(dir.path(), schedule);
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

    let server = Server::start_with(dir.path(), schedule);
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
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(dir.path(), quick(1)).await;
    let api = Api::new(&s.url());
    let callback = Flaky::default();
    callback.down.store(true, Ordering::SeqCst);
    let url = callback.start().await;
    let id = api.listen(&url).await;
    api.create("g1").await;
    let hub = api
        .hub_until("the dead letter", |h| count(&h["deadLetters"]) == 1)
        .await;
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
