#!/usr/bin/env bash
# Runs a command with the moto servers the AWS tests expect (MOTO_ENDPOINT, MOTO_APAC, MOTO_EU,
# MOTO_NA), then stops them. For running one AWS test by hand; scripts/test.sh does the same.
# Usage: scripts/with-moto.sh cargo test -p host-lambda --test multi_region -- plain --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-tools.sh
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
trap stop_moto EXIT
for var in MOTO_ENDPOINT MOTO_APAC MOTO_EU MOTO_NA; do
    start_moto "$var" >/dev/null
done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
"$@"
