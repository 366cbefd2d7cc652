#!/usr/bin/env python3
"""scripts/deploy.sh without AWS: `--dry-run` prints the three regions' commands, home region
first, every parameter in every region, and runs nothing. `sam`, `aws` and `cargo` are stand-ins
on PATH that record any call (none may happen), the credentials are fake, and a proxy that
refuses connections catches any network use.

Run: python3 tests/deploy/test_deploy.py   (scripts/lint-deploy.sh runs it)
"""

import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import tomllib
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "deploy.sh")
CONFIG = os.path.join(ROOT, "deploy", "samconfig.toml")
TEMPLATE = os.path.join(ROOT, "deploy", "template.yaml")

# Ours, not the script's: the regions as deploy/README.md and the template's Rules name them.
HOME = ("eu", "eu-west-1", "EU")
OTHERS = [("apac", "ap-southeast-1", "APAC"), ("na", "us-east-1", "NA")]


class DeployScript(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.calls = os.path.join(self.tmp.name, "calls")
        bindir = os.path.join(self.tmp.name, "bin")
        os.mkdir(bindir)
        for tool in ("sam", "aws", "cargo"):
            path = os.path.join(bindir, tool)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\necho "{tool} $*" >> {shlex.quote(self.calls)}\nexit 1\n')
            os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
        self.env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "HOME": self.tmp.name,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
        }

    def tearDown(self):
        self.tmp.cleanup()

    def run_script(self, *args, ok=True):
        p = subprocess.run(["bash", SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if ok:
            self.assertEqual(p.returncode, 0, f"deploy.sh {' '.join(args)} failed:\n{p.stderr}")
        self.assertFalse(os.path.exists(self.calls), f"--dry-run ran tools: {open(self.calls).read() if os.path.exists(self.calls) else ''}")
        return p

    def commands(self, out, prefix):
        return [shlex.split(line) for line in out.splitlines() if line.startswith(prefix)]

    @staticmethod
    def option(argv, name):
        return argv[argv.index(name) + 1]

    @staticmethod
    def overrides(argv):
        return dict(a.split("=", 1) for a in argv[argv.index("--parameter-overrides") + 1 :])

    def test_dry_run_prints_the_three_regions_home_first_with_every_parameter(self):
        out = self.run_script("--dry-run", "AlarmEmail=ops@example.com", "LogRetentionDays=90").stdout
        deploys = self.commands(out, "sam deploy ")
        self.assertEqual([self.option(d, "--config-env") for d in deploys], [HOME[0]] + [o[0] for o in OTHERS])
        for argv, (env, region, name) in zip(deploys, [HOME] + OTHERS):
            params = self.overrides(argv)
            with self.subTest(region=env):
                self.assertEqual(self.option(argv, "--template-file"), "deploy/template.yaml")
                self.assertEqual(os.path.realpath(self.option(argv, "--config-file")), os.path.realpath(CONFIG))
                self.assertEqual(params["RegionName"], name)
                self.assertEqual(params["AlarmEmail"], "ops@example.com", "every region's stack gets AlarmEmail")
                self.assertEqual(params["LogRetentionDays"], "90")
                self.assertEqual(params["IsHomeRegion"], "true" if env == HOME[0] else "false")
                self.assertNotIn("--no-execute-changeset", argv)
        self.assertNotIn("PartyTableStreamArn", self.overrides(deploys[0]))
        # Each non-home region's stream is looked up in that region, before its deploy, and the
        # deploy uses what the lookup printed.
        lines = out.splitlines()
        for env, region, _ in OTHERS:
            lookup = next(i for i, l in enumerate(lines) if l.startswith(f"stream_{env}=$(aws dynamodb describe-table"))
            deploy = next(i for i, l in enumerate(lines) if l.startswith("sam deploy ") and f"--config-env {env} " in l)
            home = next(i for i, l in enumerate(lines) if l.startswith("sam deploy ") and f"--config-env {HOME[0]} " in l)
            self.assertLess(home, lookup)
            self.assertLess(lookup, deploy)
            self.assertIn(f"--region {region} ", lines[lookup])
            self.assertIn(f'PartyTableStreamArn="$stream_{env}"', lines[deploy])

    def test_regions_come_from_samconfig(self):
        with open(CONFIG, "rb") as f:
            config = tomllib.load(f)
        for env, region, name in [HOME] + OTHERS:
            with self.subTest(env=env):
                self.assertEqual(config[env]["deploy"]["parameters"]["region"], region)
                self.assertEqual(config[env]["delete"]["parameters"]["region"], region)
                self.assertEqual(config[env]["deploy"]["parameters"]["stack_name"], config[env]["delete"]["parameters"]["stack_name"])
                self.assertNotIn("parameter_overrides", config[env]["deploy"]["parameters"], "the command line would replace it")
        # The template refuses any other region.
        with open(TEMPLATE, encoding="utf-8") as f:
            rule = re.search(r"SupportedRegion:.*?!Contains \[\[([^\]]*)\]", f.read(), re.S).group(1)
        self.assertEqual(sorted(r.strip() for r in rule.split(",")), sorted(r for _, r, _ in [HOME] + OTHERS))

    def test_no_execute_changeset_reaches_every_region(self):
        out = self.run_script("--dry-run", "--no-execute-changeset").stdout
        deploys = self.commands(out, "sam deploy ")
        self.assertEqual(len(deploys), 3)
        for argv in deploys:
            self.assertIn("--no-execute-changeset", argv)

    def test_build_is_printed_for_arm64(self):
        out = self.run_script("--dry-run", "--build").stdout
        builds = self.commands(out, "cargo lambda build")
        self.assertEqual(len(builds), 1)
        self.assertIn("--arm64", builds[0])
        self.assertLess(out.index("cargo lambda build"), out.index("sam deploy"))
        # Each policy-serving function's package gets the default policy compiled for arm64.
        precompiles = [l for l in out.splitlines() if "policy precompile default" in l]
        self.assertEqual(len(precompiles), 4)
        for f, line in zip(("ingest", "reconcile", "redrive", "registry"), precompiles):
            self.assertIn("--features cross", line)
            self.assertIn("--target aarch64-unknown-linux-gnu", line)
            self.assertIn(f"target/lambda/{f}/precompiled", line)
            self.assertLess(out.index(line), out.index("sam deploy"))

    def test_remove_deletes_the_home_stack_last(self):
        out = self.run_script("remove", "--dry-run").stdout
        deletes = self.commands(out, "sam delete ")
        self.assertEqual([self.option(d, "--config-env") for d in deletes], [o[0] for o in OTHERS] + [HOME[0]])

    def test_remove_without_yes_is_refused(self):
        p = self.run_script("remove", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--yes", p.stderr)

    def test_parameters_set_per_region_or_unknown_are_refused(self):
        for arg, says in [("RegionName=EU", "set per region"), ("PartyTableStreamArn=x", "set per region"),
                          ("AlarmMail=x", "not a parameter"), ("TenantId=acme", "tenant-scoped")]:
            with self.subTest(arg=arg):
                p = self.run_script("--dry-run", arg, ok=False)
                self.assertEqual(p.returncode, 2)
                self.assertIn(arg.split("=")[0], p.stderr)
                self.assertIn(says, p.stderr)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=1).result.wasSuccessful() else 1)
