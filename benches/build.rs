//! Builds two test guests: the trivial-body one (`tests/guests/guest-keep-local`), whose call
//! costs the boundary (lowering both parties into the guest and lifting them there) and almost
//! nothing else, which splits a policy call into boundary and merge; and one that panics
//! (`tests/guests/guest-panic`), for what a trap and the fresh instance after it cost.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for guest in ["guest-keep-local", "guest-panic"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("tests/guests").join(guest).display()
        );
    }
    guest_build::build(
        &workspace,
        &["guest-keep-local", "guest-panic"],
        guest_build::Target::Unknown,
        &out,
    );
}
