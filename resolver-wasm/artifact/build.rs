//! Builds `resolver-wasm/default-policy` for wasm32-unknown-unknown and wraps it as a component.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.ancestors().nth(2).unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", workspace.join("resolver-wasm/default-policy").display());
    guest_build::build(&workspace, &["default-policy"], guest_build::Target::Unknown, &out);
}
