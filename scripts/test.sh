#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then lints and tests.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain and wasm targets (rust-toolchain.toml)"
# rustup does not add a listed target to a toolchain that is already installed; this does.
rustup toolchain install
rustup target add --toolchain "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" wasm32-unknown-unknown wasm32-wasip2

step "format"
cargo fmt --all --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
cargo test --no-fail-fast
