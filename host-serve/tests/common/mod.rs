//! What the serve tests share: a server on a free port of 127.0.0.1 over a data directory, in
//! this process or in a process of its own, and the waits and writes every test makes through
//! its HTTP API. host-cli's `serve` tests include this file by path, so it uses only what both
//! crates' tests have (no axum: a callback server stays with the tests that need one).

// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use host_serve::Running;
use host_serve::hub::Schedule;
use serde_json::{Value, json};

/// `serve` for tenant `acme` alone, replication lag 20 ms, the registry followed every second,
/// a hub delivery tried 4 times from 100 ms (a failing callback is dead-lettered within a
/// test's patience; the default schedule waits minutes).
pub async fn serve(dir: &Path) -> Running {
    let schedule = Schedule {
        attempts: 4,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    serve_with(dir, schedule).await
}

/// `serve` as [`serve`] starts it, with the hub retrying on `schedule`.
pub async fn serve_with(dir: &Path, schedule: Schedule) -> Running {
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

/// A server in a process of its own, and its URL. Dropped, it is killed, so that a failing
/// test leaves no server behind.
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    /// Spawns `command` (its stdout read here, its stderr the test's) and reads what it prints
    /// until `url_in` finds the URL it serves on in a line.
    pub fn start(command: &mut Command, url_in: impl Fn(&str) -> Option<String>) -> Process {
        let mut child = command
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
            if let Some(url) = url_in(&line) {
                break url;
            }
        };
        // Keep reading so that the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Process { child, url }
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /api/state` of the server at `url`.
pub async fn state(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/api/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until nothing is in flight, unreconciled or dead-lettered (bounded, so that a world
/// that never settles fails the test instead of hanging it).
pub async fn settle(http: &reqwest::Client, url: &str) {
    for _ in 0..600 {
        if state(http, url).await["quiet"] == json!(true) {
            // Once more after a pause: a write applied at the last moment streams on.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if state(http, url).await["quiet"] == json!(true) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the world did not settle: {}", state(http, url).await);
}

/// Makes two concurrent versions of `party`: created in eu and replicated; then eu and na cut
/// off from each other, and each region's edit applied in it. The partition stays, so that the
/// caller can look at the regions apart before it heals them.
pub async fn edit_apart(
    http: &reqwest::Client,
    url: &str,
    party: Value,
    edits: [(&str, Value); 2],
) {
    let id = party["id"].as_str().unwrap().to_owned();
    let status = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status() };
    let create = http.post(format!("{url}/eu/tmf-api/party/v5/individual"));
    let created = status(create.json(&party)).await;
    assert_eq!(created.as_u16(), 201, "creating {party}");
    settle(http, url).await;
    host_serve::client::partition(url, "eu", "na", false)
        .await
        .unwrap();
    for (region, body) in edits {
        let edit = http.patch(format!("{url}/{region}/tmf-api/party/v5/individual/{id}"));
        let edited = status(edit.json(&body)).await;
        assert_eq!(edited.as_u16(), 200, "{region}'s edit {body}");
    }
}
