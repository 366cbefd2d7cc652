//! Builds the test guests from source: one path constant per guest in `guests.rs`.

use guest_build::Target;
use std::fmt::Write;
use std::path::PathBuf;

const UNKNOWN: &[&str] = &[
    "guest-loop",
    "guest-membomb",
    "guest-panic",
    "guest-forge-party",
    "guest-forge-clock",
    "guest-keep-local",
    "guest-prefer-local",
    "guest-stateful",
    "guest-cache",
    "guest-bad-packed",
    "guest-revision-1-1",
    "guest-schema-break",
    "guest-bad-entry-ref",
    "guest-describe-loop",
    "guest-two-faced",
    "guest-authority-delete",
    "guest-same-millisecond",
    "guest-stateful-later",
    "guest-slow",
    "guest-leak",
    "guest-field-changes",
    "guest-both-keep-local",
    "guest-pairwise-status",
    "guest-backwards-dominated",
    "guest-typed-writes",
];
const WASIP2: &[&str] = &["guest-fs"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("guests").display()
    );
    let mut consts = String::new();
    for (names, target) in [(UNKNOWN, Target::Unknown), (WASIP2, Target::Wasip2)] {
        for (name, path) in names
            .iter()
            .zip(guest_build::build(&workspace, names, target, &out))
        {
            let ident = name
                .trim_start_matches("guest-")
                .replace('-', "_")
                .to_uppercase();
            writeln!(
                consts,
                "pub const {ident}: &str = {:?};",
                path.display().to_string()
            )
            .unwrap();
        }
    }
    std::fs::write(out.join("guests.rs"), consts).unwrap();
}
