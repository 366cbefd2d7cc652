#!/usr/bin/env bash
# Lints the AWS deployment: deploy/template.yaml with cfn-lint, before and after the SAM transform;
# each Step Functions definition it names (DefinitionUri) with cfn-lint's state machine checks and
# statelint; each function's role against the actions its code calls (scripts/iam-permissions.py);
# the template's operating promises (scripts/template-checks.py: metric names the code emits,
# alarms, tracing, arm64, table protection); and scripts/deploy.sh's --dry-run
# (tests/deploy/test_deploy.py, no AWS); tests/deploy/test_iam_permissions.py shows the permissions
# check failing on changed copies. Installs its tools into .venv when they are missing.
#
# Usage: scripts/lint-deploy.sh [DEPLOY_DIR]     (default: deploy; holds template.yaml)
# Exit status: 0 when nothing was found; non-zero on any error or warning, or a failed install.
#
# Why these tools and versions:
# - cfn-lint 1.53.3 is the last release that runs the SAM transform itself; later ones skip
#   Serverless resources (a !Ref to a missing resource inside a function passes 1.54+).
#   aws-sam-translator is pinned beside it so the transform does not change under us.
# - Neither version looks into an AWS::Serverless::StateMachine's definition, so each
#   statemachines/*.asl.json is substituted (DefinitionSubstitutions, with stand-in values) and
#   inlined into a generated template as a plain AWS::StepFunctions::StateMachine, which cfn-lint
#   checks against the States Language schema.
# - cfn-lint's schema does not follow transitions (a Next naming a missing state passes), so the
#   same substituted files also go through statelint, which checks the state graph.
# - Linting the SAM source does not report findings in what the transform generates: the source
#   linted clean while its generated roles named dynamodb:TransactWriteItems, which is no IAM
#   action (W3037 on the transformed template). So the transformed template is linted as well,
#   as a plain one.
# Warnings and informational findings fail too (--include-checks I --non-zero-exit-code
# informational): every finding cfn-lint gave on this template so far was a real defect or a
# one-line fix, I3011 (no DeletionPolicy on a stateful resource) included.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.53.3
SAM_TRANSLATOR_VERSION=1.115.0
STATELINT_VERSION=3.1.0
VENV=.venv
DEPLOY_DIR=${1:-deploy}
TEMPLATE=$DEPLOY_DIR/template.yaml
REGIONS=(ap-southeast-1 eu-west-1 us-east-1)

[[ -f $TEMPLATE ]] || { echo "lint-deploy: no template at $TEMPLATE" >&2; exit 2; }

# The venv may also hold other tools (moto); only these packages are installed, and only when
# the installed versions differ.
tools_present() {
    [[ -x $VENV/bin/cfn-lint && -x $VENV/bin/statelint ]] || return 1
    [[ $("$VENV/bin/cfn-lint" --version 2>/dev/null) == "cfn-lint $CFN_LINT_VERSION" ]] || return 1
    [[ $("$VENV/bin/statelint" --version 2>/dev/null) == *"$STATELINT_VERSION"* ]] || return 1
    [[ $("$VENV/bin/python" -c 'import samtranslator; print(samtranslator.__version__)' 2>/dev/null) \
        == "$SAM_TRANSLATOR_VERSION" ]] || return 1
}
if ! tools_present; then
    echo "== installing cfn-lint $CFN_LINT_VERSION and statelint $STATELINT_VERSION into $VENV"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION" \
        "statelint==$STATELINT_VERSION"
    tools_present || { echo "lint-deploy: tools still missing after install" >&2; exit 2; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0

CFN_LINT=("$VENV/bin/cfn-lint" --include-checks I --non-zero-exit-code informational --regions "${REGIONS[@]}")

echo "== cfn-lint $TEMPLATE (${REGIONS[*]})"
"${CFN_LINT[@]}" -- "$TEMPLATE" || status=1

# The template as CloudFormation receives it, made by the transform cfn-lint itself runs (local
# CodeUri replaced by a stand-in, managed policies from cfn-lint's offline list). The Python
# here reads the template with scripts/iam-permissions.py's functions, so that both read it
# alike (`runpy` runs that file's definitions, not its `main`).
echo "== the SAM transform of $TEMPLATE"
"$VENV/bin/python" - "$TEMPLATE" "$work/transformed.json" <<'PY' || status=1
import json
import runpy
import sys

source, out = sys.argv[1], sys.argv[2]
transformed = runpy.run_path("scripts/iam-permissions.py")["transform"](source)
with open(out, "w", encoding="utf-8") as f:
    json.dump(transformed, f, indent=1)
print(f"   {len(transformed['Resources'])} resources")
PY
if [[ -f $work/transformed.json ]]; then
    echo "== cfn-lint on the transformed template"
    "${CFN_LINT[@]}" -- "$work/transformed.json" || status=1
    echo "== each function's role against the DynamoDB, S3 and SQS calls of its code"
    "$VENV/bin/python" scripts/iam-permissions.py --template "$TEMPLATE" --transformed "$work/transformed.json" || status=1
fi

echo "== the template's metrics, alarms, tracing, architecture and table protection"
"$VENV/bin/python" scripts/template-checks.py "$TEMPLATE" || status=1

echo "== the permissions check fails when a role and its code disagree (changed copies)"
"$VENV/bin/python" tests/deploy/test_iam_permissions.py || status=1

echo "== scripts/deploy.sh --dry-run (fake credentials, nothing run)"
"$VENV/bin/python" tests/deploy/test_deploy.py || status=1

# Writes $work/statemachines.json (a template with every definition inlined) and
# $work/asl/<name> (each definition after substitution); fails on placeholders that the template
# does not substitute, substitutions the file does not use, and definition files no state
# machine uses.
echo "== Step Functions definitions named by $TEMPLATE"
"$VENV/bin/python" - "$TEMPLATE" "$work" <<'PY' || status=1
import json
import os
import re
import runpy
import sys

template_path, work = sys.argv[1], sys.argv[2]
template = runpy.run_path("scripts/iam-permissions.py")["load_source"](template_path)
base = os.path.dirname(template_path)
parameters = template.get("Parameters", {})
resources = template.get("Resources", {})
placeholder = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")
errors = []


def stand_in(name, value):
    """A value of the right shape for one substitution, so the checks see a real-looking ARN."""
    if isinstance(value, (str, int, float)):
        return str(value)
    target = value.get("Ref") if isinstance(value, dict) else None
    if target is None and isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"][0] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".")[0]
    if target in parameters:
        default = parameters[target].get("Default")
        if default is None:
            errors.append(f"{name}: parameter {target} has no Default to check the definition with")
            return "0"
        return str(default)
    logical = (target or "").split(".")[0]
    kind = resources.get(logical, {}).get("Type", "")
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.eu-west-1.amazonaws.com/123456789012/{logical}"
    if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{logical}:live"
    errors.append(f"{name}: no stand-in for substitution value {value!r}; extend lint-deploy.sh")
    return "unknown"


wrapper = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": f"Generated by scripts/lint-deploy.sh from {template_path}",
    "Resources": {},
}
used_files = set()
os.makedirs(os.path.join(work, "asl"), exist_ok=True)
for logical, resource in resources.items():
    if resource.get("Type") != "AWS::Serverless::StateMachine":
        continue
    props = resource.get("Properties", {})
    uri = props.get("DefinitionUri")
    if not isinstance(uri, str):
        errors.append(f"{logical}: no local DefinitionUri; this script checks local definition files only")
        continue
    path = os.path.normpath(os.path.join(base, uri))
    used_files.add(path)
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        errors.append(f"{logical}: DefinitionUri {uri}: {e}")
        continue
    substitutions = props.get("DefinitionSubstitutions", {})
    names = set(placeholder.findall(text))
    for missing in sorted(names - set(substitutions)):
        errors.append(f"{path}: ${{{missing}}} is not in {logical}'s DefinitionSubstitutions")
    for unused in sorted(set(substitutions) - names):
        errors.append(f"{logical}: DefinitionSubstitutions {unused} is not used by {path}")
    values = {n: stand_in(f"{logical}.{n}", v) for n, v in substitutions.items()}
    substituted = placeholder.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    try:
        definition = json.loads(substituted)
    except json.JSONDecodeError as e:
        errors.append(f"{path}: not JSON after substitution: {e}")
        continue
    with open(os.path.join(work, "asl", os.path.basename(path)), "w", encoding="utf-8") as out:
        out.write(substituted)
    wrapper["Resources"][logical] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineType": props.get("Type", "STANDARD"),
            "RoleArn": "arn:aws:iam::123456789012:role/lint-deploy",
            "Definition": definition,
        },
    }

folder = os.path.join(base, "statemachines")
if os.path.isdir(folder):
    for name in sorted(os.listdir(folder)):
        path = os.path.normpath(os.path.join(folder, name))
        if name.endswith(".asl.json") and path not in used_files:
            errors.append(f"{path}: no state machine in {template_path} uses it")

# cfn-lint reports positions in this file; the resource names say which definition they are in.
with open(os.path.join(work, "statemachines.json"), "w", encoding="utf-8") as out:
    json.dump(wrapper, out, indent=2)
for e in errors:
    print(f"lint-deploy: {e}", file=sys.stderr)
for logical, resource in wrapper["Resources"].items():
    print(f"   {logical}: {len(resource['Properties']['Definition'].get('States', {}))} states")
sys.exit(1 if errors else 0)
PY

if [[ -f $work/statemachines.json ]]; then
    echo "== cfn-lint on the definitions (inlined as AWS::StepFunctions::StateMachine)"
    "${CFN_LINT[@]}" -- "$work/statemachines.json" || status=1
fi
shopt -s nullglob
for asl in "$work"/asl/*.json; do
    echo "== statelint $(basename "$asl")"
    "$VENV/bin/statelint" "$asl" || status=1
done

if ((status == 0)); then
    echo "lint-deploy: no findings"
else
    echo "lint-deploy: findings above" >&2
fi
exit "$status"
