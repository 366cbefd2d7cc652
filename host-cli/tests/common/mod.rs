//! What several test files share: finding the browser.

use std::path::{Path, PathBuf};

/// Debian's `chromium` (or another Chromium on the PATH), which the test command installs.
pub fn chromium() -> Option<PathBuf> {
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
