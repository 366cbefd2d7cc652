//! Where the official TMF632 specification and its examples are (`../shared/specs/tmf632`
//! beside the checkout), and one example read from there. The benchmarks, a crate of their own
//! that should not build the test guests, include this file by path (`benches/src/fixtures.rs`).

use std::path::PathBuf;

use serde_json::Value;

/// `../shared/specs/tmf632` beside the checkout (this crate's folder is one below the root).
pub fn specs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs/tmf632")
}

/// One official v5 example payload, by file name (without `.json`).
pub fn example(name: &str) -> Value {
    let path = specs_dir().join("examples/v5").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
