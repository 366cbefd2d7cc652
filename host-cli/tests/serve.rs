//! `host-cli serve` as a user runs it: the binary on a free port, driven over HTTP.
//!
//! - `kill -9` and a restart lose no acknowledged event, nor its idempotency record;
//! - `host-cli policy upload … --activate` against the served registry directory is served
//!   without a restart, and the next conflict is resolved by it;
//! - the README's three `curl` lines work as printed (against `serve --demo`);
//! - the live page, in headless Chromium, shows the merged party and its conflict (a
//!   screenshot is left in `target/serve-page.png` for a person to look at).
//!
//! Waits are bounded (a broken server fails instead of hanging); none asserts a speed.

mod common;
use common::{chromium_or_skip, headless, run_ok};
// The server process, the waits on `/api/state` and the conflict-making that host-serve's own
// tests use.
#[path = "../../host-serve/tests/common/mod.rs"]
mod serve_common;
use serve_common::{Process, edit_apart, settle, state};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_host-cli");

/// `host-cli serve` on a free port and `data`, with `extra` arguments; its URL is read from the
/// first line it prints.
fn start(data: &Path, extra: &[&str]) -> Process {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--lag-ms", "30"])
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    Process::start(&mut command, |first| {
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"));
        Some(url.to_owned())
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

async fn get(http: &reqwest::Client, url: &str, region: &str, id: &str) -> (u16, Value) {
    let r = http
        .get(format!("{url}/{region}/tmf-api/party/v5/individual/{id}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST` of an individual to `region`, under `key`.
async fn create(
    http: &reqwest::Client,
    url: &str,
    region: &str,
    key: String,
    body: Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{url}/{region}/tmf-api/party/v5/individual"))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
}

/// Makes a conflict: `party` edited in eu and in na while they are cut off from each other
/// ([`edit_apart`]); then the partition healed and the regions settled.
async fn conflict_on(http: &reqwest::Client, url: &str, party: Value, edits: [(&str, Value); 2]) {
    edit_apart(http, url, party, edits).await;
    host_serve::client::heal(url).await.unwrap();
    settle(http, url).await;
}

/// The body of the `i`th create of the kill test.
fn numbered(i: usize) -> Value {
    json!({"id": format!("p{i}"), "givenName": format!("G{i}"), "familyName": "K"})
}

#[test]
fn kill_9_and_a_restart_lose_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let acked = rt().block_on(async {
        let mut sends = Vec::new();
        for i in 0..120 {
            let (http, url) = (http.clone(), url.clone());
            let region = ["apac", "eu", "na"][i % 3];
            sends.push(tokio::spawn(async move {
                match create(&http, &url, region, format!("key-{i}"), numbered(i)).await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        Some((i, r.json::<Value>().await.unwrap()))
                    }
                    _ => None,
                }
            }));
        }
        let mut acked = Vec::new();
        for s in sends {
            acked.extend(s.await.unwrap());
        }
        acked
    });
    assert_eq!(acked.len(), 120, "every create is acknowledged");
    // Killed at once: most writes are still in flight between the regions.
    server.kill();
    let server = start(dir.path(), &[]);
    let url = server.url.clone();
    rt().block_on(async {
        settle(&http, &url).await;
        for (i, body) in &acked {
            for region in ["apac", "eu", "na"] {
                let (status, party) = get(&http, &url, region, &format!("p{i}")).await;
                assert_eq!(status, 200, "p{i} is lost in {region}");
                assert_eq!(party["givenName"], format!("G{i}"));
            }
            // The idempotency record survived too: a retry is answered from it.
            let region = ["apac", "eu", "na"][i % 3];
            let replay = create(&http, &url, region, format!("key-{i}"), numbered(*i))
                .await
                .unwrap();
            assert_eq!(replay.status().as_u16(), 201);
            assert_eq!(&replay.json::<Value>().await.unwrap(), body);
            let (_, after) = get(&http, &url, region, &format!("p{i}")).await;
            assert_eq!(&after, body, "the replay wrote nothing new");
        }
    });
}

fn run(args: &[&str]) -> String {
    let out = run_ok(Command::new(BIN).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_policy_activated_in_the_registry_directory_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    let server = start(dir.path(), &["--refresh-seconds", "1"]);
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let na_status = host_core::digest(default_policy_artifact::NA_STATUS_POLICY);
    let default = host_core::digest(default_policy_artifact::DEFAULT_POLICY);
    rt().block_on(async {
        assert_eq!(state(&http, &url).await["policy"], json!(default));
    });
    run(&[
        "policy",
        "upload",
        "na-status",
        "--tenant",
        "acme",
        "--label",
        "v2",
        "--activate",
        "--registry",
        registry.to_str().unwrap(),
    ]);
    rt().block_on(async {
        let mut served = false;
        for _ in 0..300 {
            if state(&http, &url).await["policy"] == json!(na_status) {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            served,
            "the activated version is not served: {}",
            state(&http, &url).await
        );
        let swaps = state(&http, &url).await["swaps"].clone();
        assert_eq!(
            swaps.as_array().unwrap().last().unwrap()["to"],
            json!(na_status)
        );
        // The next conflict is resolved by it.
        let party =
            json!({"id": "s1", "givenName": "Jane", "familyName": "Doe", "status": "initialized"});
        let edits = [
            ("eu", json!({"status": "validated"})),
            ("na", json!({"status": "deceased"})),
        ];
        conflict_on(&http, &url, party, edits).await;
        let s = state(&http, &url).await;
        let conflict = s["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["party"] == "s1" && c["relation"] == "Concurrent")
            .unwrap_or_else(|| panic!("no conflict for s1: {s}"))
            .clone();
        assert_eq!(conflict["policy"], json!(na_status), "{conflict}");
    });
    drop(server);
}

/// The README's three `curl` lines, as printed, against `serve --demo`.
#[test]
fn the_readme_curl_lines_work_as_printed() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let lines: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl ") && l.contains("127.0.0.1:8632"))
        .take(3)
        .collect();
    assert_eq!(lines.len(), 3, "the README prints three curl lines");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--demo"]);
    let mut outputs = Vec::new();
    for line in &lines {
        let line = line.replace("http://127.0.0.1:8632", &server.url);
        let out = Command::new("sh").args(["-c", &line]).output().unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        // The next line is for another region: let the write replicate (30 ms lag here).
        std::thread::sleep(Duration::from_millis(500));
    }
    let read: Value = serde_json::from_str(&outputs[2]).unwrap_or_else(|_| panic!("{outputs:?}"));
    assert_eq!(read["givenName"], "Jane", "{read}");
    assert_eq!(read["status"], "validated", "{read}");
    // Ctrl-C stops it cleanly: the demo and the requests in flight finish, the store is closed.
    let mut server = server;
    let pid = server.child.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "serve did not stop cleanly on Ctrl-C: {status}"
    );
}

#[test]
fn the_live_page_shows_the_merged_party_and_its_conflict_in_a_browser() {
    let Some(browser) = chromium_or_skip("page") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let url = server.url.clone();
    let http = reqwest::Client::new();
    rt().block_on(async {
        let party = json!({"id": "42", "givenName": "Jane", "familyName": "Doe"});
        let edits = [
            ("eu", json!({"givenName": "Janet"})),
            ("na", json!({"familyName": "Smith"})),
        ];
        conflict_on(&http, &url, party, edits).await;
    });
    let page = format!("{url}/?party=42");
    let headless = |extra: &[&str]| {
        headless(
            &browser,
            &[&["--virtual-time-budget=3000"], extra, &[&page]].concat(),
        )
    };
    let dom = headless(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for region in ["apac", "eu", "na"] {
        let at = dom
            .find(&format!("data-found=\"{region}\""))
            .unwrap_or_else(|| panic!("no panel for {region} in the page:\n{dom}"));
        let panel = &dom[at..at + dom[at..].find("</div></div>").unwrap_or(dom.len() - at)];
        assert!(
            panel.contains("Janet") && panel.contains("Smith"),
            "{region} does not show the merged party:\n{panel}"
        );
    }
    assert!(
        dom.contains("class=\"conflict\" data-party=\"42\""),
        "no conflict row for 42:\n{dom}"
    );
    assert!(
        dom.contains("merged"),
        "the conflict's decision is not shown:\n{dom}"
    );
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/serve-page.png");
    let _ = headless(&[
        "--window-size=1400,1100",
        &format!("--screenshot={}", shot.display()),
    ]);
    drop(server);
}

/// The README's `host-cli hub redrive` against a running server: it reaches the admin route and
/// reports what it sent (nothing, on a fresh server); an address nothing listens on is an error
/// (exit 2), not an empty report.
#[test]
fn hub_redrive_reaches_a_running_server() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    let redrive = |addr: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["hub", "redrive", "--addr", addr]);
        cmd
    };
    let out = run_ok(&mut redrive(server.url.trim_start_matches("http://")));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("sent again: 0"), "{printed}");
    let refused = redrive("127.0.0.1:9")
        .output()
        .expect("running host-cli hub redrive");
    assert_eq!(refused.status.code(), Some(2));
}
