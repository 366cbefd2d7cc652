//! Files that several writers (threads or processes) share: each written whole, and a lock per
//! directory for read-change-write sequences. Used by the artifact cache, the local registry
//! and the directory conflict log.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// `e` with what was being done to which path in front of its message.
fn context(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes `bytes` to a temporary file beside `path` (one per process), then renames it over
/// `path`: a reader sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a file written whole has a directory");
    fs::create_dir_all(dir).map_err(|e| context("creating", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    fs::write(&tmp, bytes).map_err(|e| context("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| context("renaming to", path, e))
}

/// Takes `{dir}/.lock` exclusively (creating both if needed); it is released when the returned
/// file is dropped.
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    fs::create_dir_all(dir).map_err(|e| context("creating", dir, e))?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| context("opening", &path, e))?;
    file.lock().map_err(|e| context("locking", &path, e))?;
    Ok(file)
}
