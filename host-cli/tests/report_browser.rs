//! `simulate --report run.html` rendered in a real browser (headless Chromium, Debian's
//! `chromium`, which the test command installs): the page loads, its headline figures and the
//! drawing's axes, legend, partitions and swaps are in the rendered document, and a screenshot
//! is written for a person to look at (`target/simulation-report.png`).
//!
//! Without Chromium the test says so and passes, except under CI (`CI` set), where it fails.

mod common;
use common::{chromium_or_skip, headless, run_ok};

use std::path::Path;
use std::process::Command;

#[test]
fn the_simulation_report_renders_in_a_browser() {
    let Some(browser) = chromium_or_skip("browser") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("run.html");
    run_ok(Command::new(env!("CARGO_BIN_EXE_host-cli")).args([
        "simulate",
        "--seed",
        "42",
        "--report",
        page.to_str().unwrap(),
    ]));
    let url = format!("file://{}", page.display());
    let dom = headless(&browser, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for part in [
        "Acknowledged writes lost: 0 with reconciliation",
        "id=\"policies\"",
        "step (10 ms",
        "conflicts resolved per step",
        "swaps policy at step",
        " cut: steps",
        "eu down",
        "writes in flight to apac",
        "na's stream backlog",
    ] {
        assert!(
            dom.contains(part),
            "the rendered page lacks {part:?}:\n{dom}"
        );
    }
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/simulation-report.png");
    let window = "--window-size=1000,700";
    let taken = headless(
        &browser,
        &[&format!("--screenshot={}", shot.display()), window, &url],
    );
    assert!(
        shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&taken.stderr)
    );
}
