#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then lints and tests.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "disk (a full disk fails builds in confusing ways)"
df -h . | tail -1

step "toolchain and wasm targets (rust-toolchain.toml)"
# rustup does not add a listed target to a toolchain that is already installed; this does.
rustup toolchain install
rustup target add --toolchain "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" wasm32-unknown-unknown wasm32-wasip2

step "a browser for the page tests (headless Chromium, Debian's chromium)"
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
chromium --version

step "python tools in .venv (moto, cargo-lambda)"
scripts/python-tools.sh

step "moto servers (one shared, one per region)"
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
trap stop_moto EXIT
start_moto MOTO_ENDPOINT
start_moto MOTO_APAC
start_moto MOTO_EU
start_moto MOTO_NA
# The SDK must never reach a real account from the tests.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

step "format"
cargo fmt --all --check

step "no import cycle between the modules of any crate"
python3 scripts/module-cycles.py

step "clippy (warnings are errors)"
# With the CLI's AWS backends (feature `aws`, left out of its default build) so they are linted.
cargo clippy --workspace --all-targets --features host-cli/aws -- -D warnings

step "deployment: SAM template and state machines (cfn-lint, statelint)"
scripts/lint-deploy.sh

step "policies in Python and JavaScript (componentize-py, componentize-js)"
scripts/build-foreign-policies.sh
export FOREIGN_POLICIES="$PWD/target/foreign-policies"

step "tests"
cargo test --no-fail-fast

step "the CLI's AWS backends: failures named as sentences, the registry in three regions (moto)"
cargo test -p host-cli --features aws --test aws_errors --test aws_registry

step "the simulation from the command line: a thousand seeded schedules, every fault on"
# The CLI binary the tests built; the rerun line of any failure is printed.
cargo run -q -p host-cli -- simulate --seed 1 --seeds 1000 --quiet

step "end to end: the ingest Lambda binary under cargo lambda watch"
# What `cargo lambda watch` runs (cargo run -p host-lambda); host-lambda's manifest keeps its
# features equal to the test build's, so this reuses it.
cargo build -p host-lambda --bins
.venv/bin/python tests/e2e/lambda_ingest.py

step "cold-start benchmark smoke: the ingest binary under the local Lambda runtime API (one event, no timing)"
# The emulator of host-lambda/examples/cold_start; BENCHMARKS.md's "Lambda cold start" times it.
cargo run -q -p host-lambda --example cold_start -- --smoke --bins target/debug

step "disk after the run"
df -h . | tail -1
du -sh target 2>/dev/null || true
