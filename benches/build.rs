//! Builds the trivial-body test guest (`tests/guests/guest-keep-local`): calling it costs the
//! boundary (lowering both parties into the guest and lifting them there) and almost nothing
//! else, which splits a policy call into boundary and merge.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("tests/guests/guest-keep-local").display()
    );
    guest_build::build(
        &workspace,
        &["guest-keep-local"],
        guest_build::Target::Unknown,
        &out,
    );
}
