"""End to end: the ingest Lambda binary run by cargo-lambda's local runtime, against moto.

Started by scripts/test.sh after the Rust tests (it needs MOTO_ENDPOINT and .venv). Runs
`cargo lambda watch` bound to 127.0.0.1, invokes the `ingest` function through the emulator's
Lambda Invoke API with API Gateway and SQS events built from the official TMF632 examples, and
checks what landed in DynamoDB and in the dead-letter queue with boto3.

Exit status: 0 when every check passed, 1 otherwise (the failed check is printed).
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT.parent / "shared" / "specs" / "tmf632" / "examples" / "v5"
ENDPOINT = os.environ["MOTO_ENDPOINT"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def example(name):
    return json.loads((SPECS / f"{name}.json").read_text())


def api_request(path, tenant, body):
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
        # The tenant is the caller's: the claim API Gateway's JWT authorizer verified.
        "requestContext": {"http": {"method": "POST", "path": path}, "requestId": str(uuid.uuid4()),
                           "routeKey": f"POST {path}", "stage": "$default",
                           "authorizer": {"jwt": {"claims": {"tenant": tenant}, "scopes": None}}},
    }


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def main():
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=ENDPOINT)
    sqs = session.client("sqs", endpoint_url=ENDPOINT)
    table = f"e2e-parties-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    dlq = sqs.create_queue(QueueName=f"e2e-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    port = free_port()
    env = dict(os.environ)
    env.update({
        "PATH": f"{ROOT / '.venv' / 'bin'}:{env['PATH']}",
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "REGION_NAME": "eu", "PARTY_TABLE": table, "DEAD_LETTER_QUEUE_URL": dlq,
        "POLICY_CACHE_DIR": str(ROOT / "target" / "policy-cache"), "RUST_LOG": "info",
    })
    log = open(ROOT / "target" / "cargo-lambda-watch.log", "w")
    watch = subprocess.Popen(["cargo", "lambda", "watch", "-A", "127.0.0.1", "-P", str(port),
                              "--package", "host-lambda"],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/ingest/invocations"

        def invoke(event, timeout=600):
            req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())

        deadline = time.time() + 900
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if watch.poll() is not None or time.time() > deadline:
                    print((ROOT / "target" / "cargo-lambda-watch.log").read_text()[-4000:])
                    check(False, "cargo lambda watch started")
                time.sleep(1)

        create = example("IndividualCreateEvent_request")
        create["eventId"] = f"e2e-{uuid.uuid4()}"
        path = "/tmf-api/party/v5/listener/individualCreateEvent"
        first = invoke(api_request(path, "acme", create))  # the first call builds the binary
        check(first.get("statusCode") == 201, f"create answered 201 ({first.get('statusCode')}: {first.get('body', '')[:200]})")
        again = invoke(api_request(path, "acme", create))
        check(again.get("statusCode") == 200, "the duplicate answered 200 from the idempotency record")
        check(json.loads(again["body"]) == json.loads(first["body"]), "the replay is the first result")
        wrong = invoke(api_request("/tmf-api/party/v5/listener/organizationCreateEvent", "acme", create))
        body = json.loads(wrong["body"])
        check(wrong["statusCode"] == 400 and body.get("@type") == "Error" and "code" in body,
              "a wrong route is refused with a TMF630 body")

        item = ddb.get_item(TableName=table, Key={"pk": {"S": "T#acme#P#42"}, "sk": {"S": "PARTY"}},
                            ConsistentRead=True).get("Item")
        check(item is not None, "the party is in DynamoDB under its tenant-scoped key")
        check(item["vvKey"]["S"] == "eu:1", "applied once: version vector eu:1")
        check(item["lastEventId"]["S"] == create["eventId"], "the item records the event id")

        change = example("IndividualAttributeValueChangeEvent_request")
        change["eventId"] = f"e2e-{uuid.uuid4()}"
        # Later than the create (the spec's examples share one eventTime): a change stamped no
        # later than what it changes is stale and writes no new version.
        change["eventTime"] = "2030-01-01T00:00:00.000Z"
        batch = {"Records": [
            {"messageId": "m1", "body": json.dumps(change), "eventSource": "aws:sqs",
             "messageAttributes": {"tenant": {"stringValue": "acme", "dataType": "String"}}},
            {"messageId": "m2", "body": "{not json", "eventSource": "aws:sqs",
             "messageAttributes": {"tenant": {"stringValue": "acme", "dataType": "String"}}},
        ]}
        out = invoke(batch)
        check(out == {"batchItemFailures": []}, f"the SQS batch needs no retry ({out})")
        msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                   MessageAttributeNames=["All"]).get("Messages", [])
        check(len(msgs) == 1 and "not JSON" in msgs[0]["MessageAttributes"]["reason"]["StringValue"],
              "the malformed message is in the dead-letter queue with its reason")
        item = ddb.get_item(TableName=table, Key={"pk": {"S": "T#acme#P#42"}, "sk": {"S": "PARTY"}},
                            ConsistentRead=True)["Item"]
        check(item["vvKey"]["S"] == "eu:2", "the attribute change from SQS was applied")
    finally:
        watch.terminate()
        try:
            watch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            watch.kill()
        log.close()
    print("lambda end-to-end: every check passed")


if __name__ == "__main__":
    main()
