//! What several test files share: running host-cli (or any command) to success, finding the
//! browser and running it headless.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian's `chromium` (or another Chromium on the PATH), which the test command installs.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|p| p.is_file())
        })
}

/// The browser, or `None` after saying that the `check` is skipped; under CI (`CI` set) a
/// missing browser fails the test instead.
pub fn chromium_or_skip(check: &str) -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed; scripts/test.sh installs it (apt-get install chromium)"
        );
        eprintln!(
            "chromium not installed: the {check} check is skipped (scripts/test.sh installs it)"
        );
    }
    browser
}

/// Runs the browser headless (and without the sandbox and GPU a container lacks) with `args`.
pub fn headless(browser: &Path, args: &[&str]) -> Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args(args)
        .output()
        .expect("running chromium")
}

/// Runs `cmd`, asserting that it succeeds: on failure, the command, its exit status, its
/// stdout and its stderr are shown.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
