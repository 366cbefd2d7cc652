#!/usr/bin/env bash
# Deploys, updates or removes the three regions' stacks of deploy/template.yaml with sam, one
# deploy/samconfig.toml environment per region: the home region (eu, eu-west-1: it creates the
# global tables and their replicas) first, then apac (ap-southeast-1) and na (us-east-1); removal
# in the opposite order. Every NAME=VALUE given is passed to every region's stack.
#
# Usage: scripts/deploy.sh [deploy|remove] [OPTIONS] [NAME=VALUE ...]
#   deploy                  create or update the three stacks (the default)
#   remove                  delete the three stacks (needs --yes); tables, policy buckets, queues
#                           and log groups are retained (deploy/README.md, Teardown)
#   NAME=VALUE              a template parameter for every region, e.g. AlarmEmail=ops@example.com;
#                           RegionName, IsHomeRegion and PartyTableStreamArn are set here, per
#                           region; a parameter not given keeps its previous value (its default
#                           on the first deploy)
#   --dry-run               print each region's commands, in order, and run nothing (no AWS
#                           call, no credentials needed)
#   --no-execute-changeset  create and print each region's change set, execute none (a region
#                           whose replica stream does not exist yet, because the home stack's
#                           change set was not executed, is skipped with a note)
#   --build                 build the functions first (cargo lambda, arm64)
#   --profile NAME          the AWS profile for sam and aws
#   --yes                   confirm `remove`
#
# Examples:
#   scripts/deploy.sh --dry-run AlarmEmail=ops@example.com
#   scripts/deploy.sh --build AlarmEmail=ops@example.com LogRetentionDays=90
#   scripts/deploy.sh --no-execute-changeset        # what an update would change, per region
#   scripts/deploy.sh remove --yes
#
# The stream ARN handoff: a non-home stack reads its own region's replica stream of
# tmf632-parties (PartyTableStreamArn). A global table's stream ARN differs per replica and the
# home stack can only output its own region's, so this script looks each region's up with
# `aws dynamodb describe-table` in that region, after the home stack is complete.
#
# Exit status: 0 when every region was deployed (or printed, or removed); 1 when a command
# failed (the regions after it are not touched); 2 on bad arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPLATE=deploy/template.yaml
CONFIG="$PWD/deploy/samconfig.toml"
HOME_ENV=eu
DEPLOY_ORDER=(eu apac na)
REMOVE_ORDER=(apac na eu)
# Set per region by this script, never by the caller.
PER_REGION=(RegionName IsHomeRegion PartyTableStreamArn)
# A tenant-scoped stack is deployed beside these, by hand (deploy/README.md).
NOT_HERE=(TenantId)
FUNCTIONS=(ingest reconcile redrive registry notify)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "deploy: $*" >&2; exit 2; }

command=deploy dry_run=false no_execute=false build=false yes=false profile=""
params=()
while (($#)); do
    case $1 in
        deploy | remove) command=$1 ;;
        --dry-run) dry_run=true ;;
        --no-execute-changeset) no_execute=true ;;
        --build) build=true ;;
        --yes) yes=true ;;
        --profile) [[ $# -ge 2 ]] || die "--profile needs a name"; profile=$2; shift ;;
        --profile=*) profile=${1#--profile=} ;;
        -h | --help) usage ;;
        *=*) params+=("$1") ;;
        *) die "unknown argument '$1' (expected deploy, remove, an option or NAME=VALUE; --help)" ;;
    esac
    shift
done

# The template's parameter names, from its Parameters section.
mapfile -t known < <(sed -n '/^Parameters:/,/^[A-Za-z]/p' "$TEMPLATE" | sed -n 's/^  \([A-Za-z0-9]*\):$/\1/p')
for p in "${params[@]}"; do
    name=${p%%=*}
    [[ " ${known[*]} " == *" $name "* ]] || die "$name is not a parameter of $TEMPLATE (it has: ${known[*]})"
    [[ " ${PER_REGION[*]} " != *" $name "* ]] || die "$name is set per region by this script; do not pass it"
    [[ " ${NOT_HERE[*]} " != *" $name "* ]] || die "$name makes a tenant-scoped stack, which this script does not deploy (deploy/README.md)"
done
if [[ $command == remove ]]; then
    [[ $no_execute == false && $build == false ]] || die "--no-execute-changeset and --build are for deploy"
    ((${#params[@]} == 0)) || die "remove takes no parameters"
fi

# A value of an environment's section of samconfig.toml.
setting() { # ENV SECTION KEY
    awk -v section="[$1.$2.parameters]" -v key="$3" '
        /^\[/ { inside = ($0 == section) }
        inside && $1 == key { sub(/^[^=]*=[ \t]*"?/, ""); sub(/"?[ \t]*$/, ""); print; exit }
    ' "$CONFIG"
}

profile_args=()
[[ -z $profile ]] || profile_args=(--profile "$profile")

# A command as one line that can be pasted into a shell: arguments shell-quoted, except a
# reference to a variable of the printed script ("$stream_apac"), which is left to expand.
show() {
    local out=() a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z]+=\"\$stream_[a-z]+\"$ ]]; then out+=("$a"); else out+=("$(printf '%q' "$a")"); fi
    done
    echo "${out[*]}"
}

# Prints a command and, unless --dry-run, runs it.
run() {
    show "$@"
    $dry_run || "$@"
}

if ! $dry_run; then
    for tool in sam aws; do
        command -v "$tool" >/dev/null || die "$tool is not installed (AWS SAM CLI and AWS CLI v2)"
    done
fi

if [[ $command == remove ]]; then
    $dry_run || $yes || die "remove deletes the three stacks (tables, buckets, queues and logs are retained); add --yes"
    for env in "${REMOVE_ORDER[@]}"; do
        region=$(setting "$env" delete region)
        echo "# $env: stack $(setting "$env" delete stack_name) in $region$([[ $env == "$HOME_ENV" ]] && echo ' (home, last: the global tables are retained)')"
        run sam delete --config-file "$CONFIG" --config-env "$env" --no-prompts "${profile_args[@]}" || exit 1
    done
    echo "# Retained: the global tables (deletion protection on), the policy buckets, the queues and the log groups: deploy/README.md, Teardown."
    exit 0
fi

if $build; then
    echo "# the functions, for arm64 (Graviton)"
    run cargo lambda build --release --arm64 --bins -p host-lambda -p rollout-lambda || exit 1
    # The default policy compiled for arm64, in each policy-serving function's package
    # ($LAMBDA_TASK_ROOT/precompiled): a cold start then loads it instead of compiling it
    # (BENCHMARKS.md, "Lambda cold start").
    for f in ingest reconcile redrive registry; do
        run cargo run --release -p host-cli --features cross -- policy precompile default \
            --target aarch64-unknown-linux-gnu --out "target/lambda/$f/precompiled" || exit 1
    done
fi
if ! $dry_run; then
    for f in "${FUNCTIONS[@]}"; do
        [[ -f target/lambda/$f/bootstrap ]] ||
            die "target/lambda/$f/bootstrap is missing: build with --build (or cargo lambda build --release --arm64 --bins -p host-lambda -p rollout-lambda)"
    done
fi

execute_args=()
$no_execute && execute_args=(--no-execute-changeset)
n=0
for env in "${DEPLOY_ORDER[@]}"; do
    n=$((n + 1))
    region=$(setting "$env" deploy region)
    stack=$(setting "$env" deploy stack_name)
    name=$(tr '[:lower:]' '[:upper:]' <<<"$env")
    if [[ $env == "$HOME_ENV" ]]; then
        echo "# $n/${#DEPLOY_ORDER[@]} $env: stack $stack in $region (home: the global tables and their replicas)"
        overrides=(RegionName="$name" IsHomeRegion=true)
    else
        echo "# $n/${#DEPLOY_ORDER[@]} $env: stack $stack in $region (reads its replica's stream)"
        lookup=(aws dynamodb describe-table --region "$region" --table-name tmf632-parties
            --query Table.LatestStreamArn --output text "${profile_args[@]}")
        if $dry_run; then
            echo "stream_$env=\$($(show "${lookup[@]}"))"
            stream="\"\$stream_$env\""
        else
            stream=$("${lookup[@]}" 2>/dev/null) || stream=""
            [[ $stream == arn:* ]] || stream=""
        fi
        if [[ -z $stream ]]; then
            if $no_execute; then
                echo "# skipped: tmf632-parties has no replica in $region yet (the home stack's change set is not executed)"
                continue
            fi
            echo "deploy: tmf632-parties has no replica stream in $region; is the home stack ($HOME_ENV) complete?" >&2
            exit 1
        fi
        overrides=(RegionName="$name" IsHomeRegion=false PartyTableStreamArn="$stream")
    fi
    run sam deploy --config-file "$CONFIG" --config-env "$env" --template-file "$TEMPLATE" \
        "${execute_args[@]}" "${profile_args[@]}" --parameter-overrides "${overrides[@]}" "${params[@]}" || exit 1
done
