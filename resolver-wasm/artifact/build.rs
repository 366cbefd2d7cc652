//! Builds the default policy and the example policies for wasm32-unknown-unknown and wraps
//! them as components.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.ancestors().nth(2).unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // The guests, the SDK, merge and types they are built from, and the contract.
    for dir in ["resolver-wasm", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    guest_build::build(
        &workspace,
        &["default-policy", "na-status-policy"],
        guest_build::Target::Unknown,
        &out,
    );
}
