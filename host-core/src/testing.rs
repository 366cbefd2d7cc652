//! What the unit tests of several modules share: the official TMF632 examples.

use serde_json::Value;

/// One official v5 example payload (`../shared/specs/tmf632/examples/v5`), by file name
/// without `.json`.
pub(crate) fn example(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/specs/tmf632/examples/v5/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
