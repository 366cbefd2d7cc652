#!/usr/bin/env bash
# Installs the pinned Python-packaged tools the tests use into .venv (created if missing):
#   moto[server]   DynamoDB, DynamoDB Streams, SQS and S3 in server mode, for the tests
#   cargo-lambda   builds and runs the Lambda binaries locally (`cargo lambda watch`)
# Usage: scripts/python-tools.sh [PIN...]   (default: the two above; idempotent: installs only
#        what is missing or at another version; other scripts pass their own pins)
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(
    "moto[server]==5.2.5"
    "cargo-lambda==1.9.2"
)
if [ "$#" -gt 0 ]; then
    PINS=("$@")
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
missing=()
for pin in "${PINS[@]}"; do
    name="${pin%%[*}"; name="${name%%==*}"
    want="${pin##*==}"
    have="$(.venv/bin/pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    if [ "$have" != "$want" ]; then
        missing+=("$pin")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing into .venv: ${missing[*]}"
    .venv/bin/pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
