#!/usr/bin/env python3
"""What deploy/template.yaml promises about operating the stacks, beyond what cfn-lint checks:

- metrics: every Tmf632Conflict metric an alarm or the dashboard reads is one the code emits for
  that Function dimension (host-lambda's EMF lines; see emitted_metrics), so no alarm watches a
  metric that never comes; the dashboard body is JSON once substituted;
- alarms: each function has an Errors and a Throttles alarm; iterator age on each stream-mapped
  function; replication latency; the dead-letter queue's depth; PolicyLoadFailures;
  ConflictsRejected; every alarm notifies AlarmTopic;
- tracing: Tracing Active on every function, Tracing.Enabled on every state machine;
- arm64: every function runs on arm64;
- data: every replica of every global table has point-in-time recovery and deletion protection
  (cfn-lint's I3011 covers DeletionPolicy/UpdateReplacePolicy).

Usage: scripts/template-checks.py [TEMPLATE]   (default deploy/template.yaml; run with the venv's
python, which has cfn-lint's template decoder)
Exit status: 0 when all hold; 1 naming each that does not.
"""

import json
import os
import re
import sys

from cfnlint.decode import decode

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
NAMESPACE_RS = "host-lambda/src/metrics.rs"


def strip_tests(text):
    """The source without its #[cfg(test)] module (test metrics are not emitted)."""
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text


def emitted_metrics():
    """{function: {metric names}} from the code: each `Metrics::new("<function>", ..)` file's
    `.count("X"` / `.millis("X"` names, plus `.outcome(` (the names in metrics.rs's `fn outcome`)
    and `emit_policy_stats("<function>"` (host-core's RefreshStats::take names)."""
    metrics_rs = strip_tests(open(os.path.join(ROOT, NAMESPACE_RS), encoding="utf-8").read())
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', metrics_rs).group(1)
    outcome_body = re.search(r"pub fn outcome\(.*?\n    \}\n", metrics_rs, re.S).group(0)
    outcome = set(re.findall(r'\.count\("(\w+)"', outcome_body))
    follow = open(os.path.join(ROOT, "host-core/src/follow.rs"), encoding="utf-8").read()
    take = re.search(r"pub fn take\(&self\).*?\n    \}\n", follow, re.S).group(0)
    stats = set(re.findall(r'\(\s*"(\w+)",', take))
    found = {}
    for base in ("host-lambda/src", "host-lambda/rollout/src"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, base)):
            for name in names:
                if not name.endswith(".rs") or os.path.join(dirpath, name).endswith(NAMESPACE_RS):
                    continue
                text = strip_tests(open(os.path.join(dirpath, name), encoding="utf-8").read())
                functions = set(re.findall(r'Metrics::new\(\s*"(\w+)"', text))
                policy_stats = set(re.findall(r'emit_policy_stats\(\s*"(\w+)"', text))
                local = set(re.findall(r'\.(?:count|millis)\(\s*"(\w+)"', text))
                for f in functions:
                    found.setdefault(f, set()).update(local | (outcome if ".outcome(" in text else set()))
                for f in policy_stats:
                    found.setdefault(f, set()).update(stats)
    return namespace, found


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "deploy", "template.yaml")
    template, matches = decode(path)
    if matches or template is None:
        sys.exit(f"{path}: cannot be parsed: {matches}")
    t = json.loads(json.dumps(template))
    res = t["Resources"]
    errors = []
    namespace, emitted = emitted_metrics()
    functions = {k: v for k, v in res.items() if v["Type"] == "AWS::Serverless::Function"}
    machines = {k: v for k, v in res.items() if v["Type"] == "AWS::Serverless::StateMachine"}
    alarms = {k: v for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    glob = t.get("Globals", {}).get("Function", {})

    def metric_ok(where, name, dims):
        function = dims.get("Function")
        if function not in emitted:
            errors.append(f"{where}: {namespace} {name} with Function={function!r}: no function of that name emits metrics (code: {sorted(emitted)})")
        elif name not in emitted[function]:
            errors.append(f"{where}: {namespace} {name} is not a metric {function} emits (it emits {sorted(emitted[function])})")
        if "Region" not in dims:
            errors.append(f"{where}: {namespace} {name} without the Region dimension matches no series")

    # Alarms: the metrics each reads, as (namespace, name, {dimension: value}).
    def alarm_metrics(a):
        p = a["Properties"]
        if "MetricName" in p:
            yield p.get("Namespace"), p["MetricName"], {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        for m in p.get("Metrics", []):
            ms = m.get("MetricStat", {}).get("Metric")
            if ms:
                yield ms.get("Namespace"), ms["MetricName"], {d["Name"]: d["Value"] for d in ms.get("Dimensions", [])}

    reads = {k: list(alarm_metrics(a)) for k, a in alarms.items()}
    for k, metrics in reads.items():
        for ns, name, dims in metrics:
            if ns == namespace:
                metric_ok(f"alarm {k}", name, dims)
        if {"Ref": "AlarmTopic"} not in alarms[k]["Properties"].get("AlarmActions", []):
            errors.append(f"alarm {k}: does not notify AlarmTopic")

    def has_alarm(ns, name, pred=lambda dims: True):
        return any(n == ns and m == name and pred(d) for ms in reads.values() for n, m, d in ms)

    for fn in functions:
        for metric in ("Errors", "Throttles"):
            if not has_alarm("AWS/Lambda", metric, lambda d: d.get("FunctionName") == {"Ref": fn}):
                errors.append(f"{fn}: no alarm on AWS/Lambda {metric} with FunctionName = !Ref {fn}")
        props = fn and functions[fn].get("Properties", {})
        if props.get("Tracing", glob.get("Tracing")) != "Active":
            errors.append(f"{fn}: Tracing is not Active (X-Ray)")
        if props.get("Architectures", glob.get("Architectures")) != ["arm64"]:
            errors.append(f"{fn}: Architectures is not [arm64]")
    streamed = {
        v["Properties"]["FunctionName"]["Ref"].split(".")[0]
        for v in res.values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping" and "StartingPosition" in v["Properties"]
    }
    for fn in sorted(streamed):
        if not has_alarm("AWS/Lambda", "IteratorAge", lambda d: d.get("FunctionName") == {"Ref": fn}):
            errors.append(f"{fn}: reads a stream, but no alarm on its IteratorAge")
    if not has_alarm("AWS/DynamoDB", "ReplicationLatency"):
        errors.append("no alarm on AWS/DynamoDB ReplicationLatency")
    if not has_alarm("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                     lambda d: d.get("QueueName") == {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}):
        errors.append("no alarm on the dead-letter queue's depth")
    for name in ("PolicyLoadFailures", "ConflictsRejected"):
        if not has_alarm(namespace, name):
            errors.append(f"no alarm on {namespace} {name}")
    for sm, v in machines.items():
        if v["Properties"].get("Tracing", {}).get("Enabled") is not True:
            errors.append(f"{sm}: Tracing.Enabled is not true (X-Ray)")

    # The dashboard: JSON after substitution, and its metrics.
    for k, v in res.items():
        if v["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = v["Properties"]["DashboardBody"]
        text = body["Fn::Sub"][0] if isinstance(body.get("Fn::Sub"), list) else body.get("Fn::Sub", body)
        text = re.sub(r"\$\{[^}]+\}", "x", text)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            errors.append(f"dashboard {k}: not JSON once substituted: {e}")
            continue
        for w in doc.get("widgets", []):
            for m in w.get("properties", {}).get("metrics", []):
                parts = [p for p in m if isinstance(p, str)]
                if parts and parts[0] == namespace:
                    dims = dict(zip(parts[2::2], parts[3::2]))
                    metric_ok(f"dashboard {k} widget {w['properties'].get('title')!r}", parts[1], dims)

    # Global tables: every replica recoverable and protected.
    for k, v in res.items():
        if v["Type"] != "AWS::DynamoDB::GlobalTable":
            continue
        for r in v["Properties"].get("Replicas", []):
            if r.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
                errors.append(f"{k}: the {r.get('Region')} replica has no point-in-time recovery")
            if r.get("DeletionProtectionEnabled") is not True:
                errors.append(f"{k}: the {r.get('Region')} replica has no deletion protection")

    for e in errors:
        print(f"template-checks: {e}", file=sys.stderr)
    if not errors:
        print(f"   {len(alarms)} alarms, {len(functions)} functions, {len(machines)} state machines: as promised")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
