//! The hub over HTTP: what a listener is owed survives `kill -9` of the server, and
//! `GET hub` / `GET hub/{id}` answer the listeners a tenant registered in a region.
//!
//! The kill test runs the server as a process of its own — this test binary started again on
//! [`serve_process`] — so that SIGKILL stops it the way it stops `host-cli serve`: nothing
//! queued in memory survives, only what the store committed. Waits are bounded (a broken
//! server fails instead of hanging); none asserts a speed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::serve;
use serde_json::{Value, json};

/// Names the data directory of [`serve_process`]; without it that function does nothing.
const DATA_DIR_ENV: &str = "HOST_SERVE_HUB_TEST_DATA_DIR";
/// The line [`serve_process`] prints once it serves, followed by its URL.
const READY: &str = "hub-test-server listening on";

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
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = serve(Path::new(&dir)).await;
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
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "serve_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DATA_DIR_ENV, dir)
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
