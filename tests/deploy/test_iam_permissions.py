#!/usr/bin/env python3
"""scripts/iam-permissions.py fails when a role and its code disagree: run on a copy of the
repository's Rust sources and template, each test changes one side and expects the finding that
names the function and the action; the unchanged copy passes.

Run: .venv/bin/python tests/deploy/test_iam_permissions.py   (scripts/lint-deploy.sh runs it;
needs cfn-lint's SAM transform, which the venv has)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "iam-permissions.py")
COPIED = ["host-lambda", "host-aws", "host-core", "policy-admin", "deploy"]
TRANSFORM = """
import json, sys
from cfnlint.decode import decode
from cfnlint.template.transforms._sam import Transform
template, _ = decode(sys.argv[1])
t = Transform(sys.argv[1], template, "eu-west-1")
assert not t.transform_template()
json.dump(json.loads(json.dumps(t.template())), open(sys.argv[2], "w"))
"""


class IamPermissions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The SAM transform of the unchanged template, for the tests that change only code.
        cls.shared = tempfile.TemporaryDirectory()
        cls.transformed = os.path.join(cls.shared.name, "transformed.json")
        subprocess.run([sys.executable, "-c", TRANSFORM, os.path.join(ROOT, "deploy", "template.yaml"), cls.transformed],
                       check=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        for d in COPIED:
            shutil.copytree(os.path.join(ROOT, d), os.path.join(self.tmp.name, d),
                            ignore=shutil.ignore_patterns("target", "tests", "benches"))

    def tearDown(self):
        self.tmp.cleanup()

    def change(self, path, old, new):
        path = os.path.join(self.tmp.name, path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count(old), 1, f"{path}: expected one {old!r}; update this test")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))

    def check(self, template_changed=True):
        reuse = [] if template_changed else ["--transformed", self.transformed]
        p = subprocess.run([sys.executable, SCRIPT, "--root", self.tmp.name, *reuse],
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stderr

    def test_the_repository_as_it_is_passes(self):
        code, err = self.check(template_changed=False)
        self.assertEqual(code, 0, err)
        code, err = self.check()
        self.assertEqual(code, 0, err)

    def test_a_condition_check_part_needs_condition_check_item(self):
        # The registry's state change, with a ConditionCheck part added to its transaction.
        self.change("host-aws/src/registry.rs",
                    ".transact_items(transact_put(put_history)?)",
                    ".transact_items(transact_put(put_history)?)\n"
                    "                .transact_items(TransactWriteItem::builder().condition_check(check).build())")
        code, err = self.check(template_changed=False)
        self.assertEqual(code, 1)
        self.assertIn("RegistryFunction (registry): missing dynamodb:ConditionCheckItem on table/tmf632-policy-registry", err)

    def test_an_action_the_code_no_longer_calls_is_extra(self):
        # DynamoStore::release stops deleting: ingest and redrive keep a DeleteItem nobody calls.
        self.change("host-aws/src/dynamo.rs", ".delete_item()", ".get_item()")
        code, err = self.check(template_changed=False)
        self.assertEqual(code, 1)
        self.assertIn("IngestFunction (ingest): grants dynamodb:DeleteItem on table/tmf632-parties", err)
        self.assertIn("RedriveFunction (redrive): grants dynamodb:DeleteItem on table/tmf632-parties", err)

    def test_a_non_existent_action_is_extra(self):
        # What the template had: a transaction's own "action", which IAM does not have.
        self.change("deploy/template.yaml",
                    "# two Puts (authorised by PutItem).\n"
                    "            - Sid: ConflictLogWrite\n"
                    "              Effect: Allow\n"
                    "              Action: [dynamodb:PutItem, dynamodb:GetItem]",
                    "# two Puts (authorised by PutItem).\n"
                    "            - Sid: ConflictLogWrite\n"
                    "              Effect: Allow\n"
                    "              Action: [dynamodb:PutItem, dynamodb:GetItem, dynamodb:TransactWriteItems]")
        code, err = self.check()
        self.assertEqual(code, 1)
        self.assertIn("ReconcileFunction (reconcile): grants dynamodb:TransactWriteItems on table/tmf632-conflicts", err)

    def test_a_missing_action_is_named_with_the_call_that_needs_it(self):
        self.change("deploy/template.yaml",
                    "              Action: [dynamodb:GetItem, dynamodb:PutItem]\n",
                    "              Action: [dynamodb:GetItem]\n")
        code, err = self.check()
        self.assertEqual(code, 1)
        self.assertIn("ReconcileFunction (reconcile): missing dynamodb:PutItem on table/tmf632-parties, "
                      "which it needs for .put_item() in DynamoStore::put_party", err)

    def test_a_table_statement_without_the_tenant_condition_fails(self):
        self.change("deploy/template.yaml",
                    "                - dynamodb:PutItem\n"
                    "              Resource: !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/tmf632-policy-registry\n"
                    "              Condition: !If\n"
                    "                - IsTenantScoped\n"
                    "                - ForAllValues:StringEquals:\n"
                    "                    dynamodb:LeadingKeys: [!Ref TenantId]\n"
                    "                - !Ref AWS::NoValue\n",
                    "                - dynamodb:PutItem\n"
                    "              Resource: !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/tmf632-policy-registry\n")
        code, err = self.check()
        self.assertEqual(code, 1)
        self.assertIn("RegistryFunction statement RegistryReadWrite: a DynamoDB table statement without the tenant condition", err)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=1).result.wasSuccessful() else 1)
