#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`cloister` speaks like the AWS tools (docs/kms.md, "cloister kms"): the same invocation
given to Debian's `aws` CLI and to `cloister kms`, against one cloister-kms, must succeed or
fail alike and print the same JSON (values where they are deterministic, shapes where they
are random); profiles, region, endpoint and CA bundle come from ~/.aws as the aws CLI takes
them; the KMS service model (Debian's botocore) names every option; the refusals say what
is wrong, policies' included.

Debian's awscli 2.9 predates AWS_ENDPOINT_URL: it gets --endpoint-url; what only newer SDKs
read (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KMS, endpoint_url and services in a profile) is
checked on cloister alone, against a server that answers only at the right endpoint.
Runs with Debian's /usr/bin/python3 (tests/CMakeLists.txt checks its peers at configure time)."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import botocore.session
from botocore import xform_name

AWS = os.environ.get("AWS_CLI", "/usr/bin/aws")

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

CLI = kms_harness.CLI_BIN


class Env:
    """A home of its own with ~/.aws/credentials and ~/.aws/config, and no AWS_* variable but
    those a test sets: nothing of the machine's own AWS setup leaks in."""

    def __init__(self, tmp, credentials=None, config=None, **env):
        self.home = tempfile.mkdtemp(dir=tmp)
        os.makedirs(os.path.join(self.home, ".aws"))
        if credentials is not None:
            self.write(".aws/credentials", credentials)
        if config is not None:
            self.write(".aws/config", config)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update({"HOME": self.home, "TZ": "UTC", "AWS_PAGER": "", "LC_ALL": "C.UTF-8"})
        self.env.update(env)

    def write(self, rel, text, mode="w"):
        path = os.path.join(self.home, rel)
        with open(path, mode) as f:
            f.write(text)
        return path

    def cloister(self, *args, check=True):
        p = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("cloister %s: %d: %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    def aws(self, *args, check=True):
        p = subprocess.run([AWS, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("aws %s: %d: %s" % (" ".join(args), p.returncode, p.stderr))
        return p


# Output members that Debian's botocore 1.29 does not know yet, so that the aws CLI drops them
# from what cloister-kms answers; cloister prints what the KMS answers.
NEWER_MEMBERS = {"KeyId", "NextRotationDate", "RotationPeriodInDays", "OnDemandRotationStartDate",
                 "KeyAgreementAlgorithms", "CurrentKeyMaterialId", "KeyMaterialId", "PolicyName"}


def project(ours, theirs, extra):
    """ours cut down to the members theirs has; the members cut off go into extra."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        extra.update(set(ours) - set(theirs))
        return {k: project(ours[k], theirs[k], extra) for k in ours if k in theirs}
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [project(o, t, extra) for o, t in zip(ours, theirs)]
    return ours


def shape(v):
    """The JSON's structure: keys and types, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v[:1]]
    return type(v).__name__


CREDS = "[default]\naws_access_key_id = test\naws_secret_access_key = test\n"
CONFIG = "[default]\nregion = us-east-1\n"


class AwsCliParity(unittest.TestCase):
    """The same subcommand and arguments through both tools."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli-aws-")
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.ep = cls.srv.endpoint
        cls.e = Env(cls.tmp, CREDS, CONFIG)

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def both(self, *args, check=True):
        """(aws's answer, cloister's answer): JSON, or None for an empty output."""
        a = self.e.aws("--endpoint-url", self.ep, "kms", *args, check=check)
        c = self.e.cloister("kms", *args, "--endpoint-url", self.ep, check=check)
        return a, c

    def same(self, *args, values=True):
        a, c = self.both(*args)
        ja = json.loads(a.stdout) if a.stdout.strip() else None
        jc = json.loads(c.stdout) if c.stdout.strip() else None
        extra = set()
        jc_seen = project(jc, ja, extra)
        self.assertLessEqual(extra, NEWER_MEMBERS, args)
        jc, whole = jc_seen, jc
        if values:
            self.assertEqual(jc, ja, args)
        else:
            self.assertEqual(shape(jc), shape(ja), args)
        return ja, whole

    def each(self, aws_args, cloister_args):
        """A call that changes something, once through each tool on its own object: same output."""
        a = self.e.aws("--endpoint-url", self.ep, "kms", *aws_args)
        c = self.e.cloister("kms", *cloister_args, "--endpoint-url", self.ep)
        self.assertEqual(c.stdout.strip() and json.loads(c.stdout), a.stdout.strip() and json.loads(a.stdout))

    def path(self, name, data):
        p = os.path.join(self.tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def key(self, *extra):
        return json.loads(self.e.cloister("kms", "create-key", *extra, "--endpoint-url", self.ep).stdout)[
            "KeyMetadata"]["KeyId"]

    def test_key_metadata_and_text_output(self):
        ja, jc = self.same("create-key", "--description", "parity", "--tags", "TagKey=team,TagValue=a",
                           "TagKey=env,TagValue=b", values=False)
        kid = jc["KeyMetadata"]["KeyId"]
        # timestamps as the aws CLI prints them (ISO 8601), everything else equal
        self.same("describe-key", "--key-id", kid)
        # (the whole of get-key-rotation-status has members Debian's botocore drops: NEWER_MEMBERS)
        for args in (("describe-key", "--key-id", kid), ("list-resource-tags", "--key-id", kid),
                     ("get-key-rotation-status", "--key-id", kid, "--query", "KeyRotationEnabled")):
            a, c = self.both(*args, "--output", "text")
            self.assertEqual(c.stdout, a.stdout, args)
        self.same("list-resource-tags", "--key-id", kid)
        a, c = self.both("describe-key", "--key-id", kid, "--query", "KeyMetadata.KeyId", "--output", "text")
        self.assertEqual(c.stdout, kid + "\n")
        self.assertEqual(c.stdout, a.stdout)

    def test_encrypt_decrypt_reencrypt_with_fileb(self):
        kid, other = self.key(), self.key()
        data = bytes(range(256)) * 3
        pt = self.path("pt.bin", data)
        _, enc = self.same("encrypt", "--key-id", kid, "--plaintext", "fileb://" + pt,
                           "--encryption-context", "purpose=test,team=a", values=False)
        blob = self.path("ct.bin", base64.b64decode(enc["CiphertextBlob"]))
        ja, jc = self.same("decrypt", "--ciphertext-blob", "fileb://" + blob, "--encryption-context",
                           "purpose=test,team=a")
        self.assertEqual(base64.b64decode(jc["Plaintext"]), data)
        # a blob given as base64 text, as the aws CLI takes it
        self.same("decrypt", "--ciphertext-blob", enc["CiphertextBlob"], "--encryption-context",
                  '{"purpose": "test", "team": "a"}')
        _, re_ = self.same("re-encrypt", "--ciphertext-blob", "fileb://" + blob, "--source-encryption-context",
                           "purpose=test,team=a", "--destination-key-id", other, values=False)
        back = self.e.cloister("kms", "decrypt", "--ciphertext-blob", re_["CiphertextBlob"], "--query", "Plaintext",
                               "--output", "text", "--endpoint-url", self.ep).stdout
        self.assertEqual(base64.b64decode(back), data)
        # a wrong context fails in both, with the KMS's exception
        a, c = self.both("decrypt", "--ciphertext-blob", "fileb://" + blob, check=False)
        self.assertNotEqual(a.returncode, 0)
        self.assertEqual(c.returncode, 1)
        self.assertIn("InvalidCiphertextException", a.stderr)
        self.assertIn("InvalidCiphertextException", c.stderr)

    def test_data_keys_and_random(self):
        kid = self.key()
        _, dk = self.same("generate-data-key", "--key-id", kid, "--key-spec", "AES_256", values=False)
        self.assertEqual(len(base64.b64decode(dk["Plaintext"])), 32)
        _, dk = self.same("generate-data-key", "--key-id", kid, "--number-of-bytes", "16", "--encryption-context",
                          "a=b", values=False)
        self.assertEqual(len(base64.b64decode(dk["Plaintext"])), 16)
        self.same("generate-data-key-without-plaintext", "--key-id", kid, "--key-spec", "AES_128", values=False)
        self.same("generate-random", "--number-of-bytes", "24", values=False)

    def test_grants_with_space_separated_operations(self):
        kid = self.key()
        grantee = "arn:aws:iam::111122223333:user/reader"
        ga, gc = self.same("create-grant", "--key-id", kid, "--grantee-principal", grantee, "--operations", "Decrypt",
                           "GenerateDataKey", "--retiring-principal", grantee, "--constraints",
                           '{"EncryptionContextSubset": {"team": "a"}}', values=False)
        # the A,B shorthand too
        self.e.cloister("kms", "create-grant", "--key-id", kid, "--grantee-principal", grantee, "--operations",
                        "Encrypt,ReEncryptFrom", "--endpoint-url", self.ep)
        ja, jc = self.same("list-grants", "--key-id", kid)
        self.assertEqual(len(jc["Grants"]), 3)
        self.assertNotIn("Truncated", jc)  # every page, as the aws CLI collects them
        ops = sorted(sorted(g["Operations"]) for g in jc["Grants"])
        self.assertEqual(ops, [["Decrypt", "GenerateDataKey"], ["Decrypt", "GenerateDataKey"],
                               ["Encrypt", "ReEncryptFrom"]])
        # --limit / --marker: one page, NextMarker and Truncated kept, as in the aws CLI
        ja, jc = self.same("list-grants", "--key-id", kid, "--limit", "1")
        self.assertTrue(jc["Truncated"])
        ja, jc = self.same("list-grants", "--key-id", kid, "--limit", "2", "--marker", jc["NextMarker"])
        self.assertEqual(len(jc["Grants"]), 2)
        # --page-size: small pages, one list
        c = self.e.cloister("kms", "list-grants", "--key-id", kid, "--page-size", "1", "--endpoint-url", self.ep)
        self.assertEqual(len(json.loads(c.stdout)["Grants"]), 3)
        self.same("list-retirable-grants", "--retiring-principal", grantee)
        self.each(["retire-grant", "--grant-token", ga["GrantToken"]], ["retire-grant", "--grant-token", gc["GrantToken"]])
        grants = json.loads(self.e.cloister("kms", "list-grants", "--key-id", kid, "--endpoint-url", self.ep).stdout)
        self.assertEqual([g["Operations"] for g in grants["Grants"]], [["Encrypt", "ReEncryptFrom"]])
        g1, g2 = (json.loads(self.e.cloister("kms", "create-grant", "--key-id", kid, "--grantee-principal", grantee,
                                             "--operations", "Decrypt", "--endpoint-url", self.ep).stdout)["GrantId"]
                  for _ in range(2))
        self.each(["revoke-grant", "--key-id", kid, "--grant-id", g1], ["revoke-grant", "--key-id", kid, "--grant-id", g2])
        grants = json.loads(self.e.cloister("kms", "list-grants", "--key-id", kid, "--endpoint-url", self.ep).stdout)
        self.assertEqual(len(grants["Grants"]), 1)

    def test_tags_rotation_aliases_policies(self):
        kid = self.key()
        self.same("tag-resource", "--key-id", kid, "--tags", "TagKey=a,TagValue=1", "TagKey=b,TagValue=2")
        self.same("untag-resource", "--key-id", kid, "--tag-keys", "a", "zz")
        self.same("list-resource-tags", "--key-id", kid)
        self.same("enable-key-rotation", "--key-id", kid)
        ja, jc = self.same("get-key-rotation-status", "--key-id", kid)
        self.assertTrue(jc["KeyRotationEnabled"])
        self.same("disable-key-rotation", "--key-id", kid)
        self.assertFalse(self.same("get-key-rotation-status", "--key-id", kid)[1]["KeyRotationEnabled"])
        self.each(["create-alias", "--alias-name", "alias/parity-a-" + kid[:8], "--target-key-id", kid],
                  ["create-alias", "--alias-name", "alias/parity-c-" + kid[:8], "--target-key-id", kid])
        self.same("list-aliases", "--key-id", kid)
        self.same("list-aliases", "--limit", "1", values=False)
        policy = self.same("get-key-policy", "--key-id", kid, "--policy-name", "default")[1]["Policy"]
        pfile = self.path("policy.json", policy.encode())
        self.same("put-key-policy", "--key-id", kid, "--policy-name", "default", "--policy", "file://" + pfile)
        # the policy name may be left out (a key has one, "default"), and --policy may be a bare path
        self.e.cloister("kms", "put-key-policy", "--key-id", kid, "--policy", pfile, "--endpoint-url", self.ep)
        self.same("list-keys", values=False)
        a, c = self.both("list-keys", "--output", "text")
        self.assertEqual(c.stdout, a.stdout)

    def test_policy_errors_say_what_is_wrong(self):
        kid = self.key()
        bad = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Alow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}]}
        pfile = self.path("bad.json", json.dumps(bad).encode())
        a, c = self.both("put-key-policy", "--key-id", kid, "--policy-name", "default", "--policy",
                         "file://" + pfile, check=False)
        want = 'MalformedPolicyDocumentException: Statement[1]: "Effect" must be "Allow" or "Deny", not "Alow"'
        self.assertEqual(c.returncode, 1)
        self.assertIn(want, c.stderr)
        self.assertIn('Statement[1]: "Effect" must be "Allow" or "Deny", not "Alow"', a.stderr)

    def test_options_are_the_service_models(self):
        """Every subcommand's options are its operation's input members as the aws CLI names
        them (botocore's xform_name), required where the model requires them."""
        model = botocore.session.get_session().get_service_model("kms")
        usage = self.e.cloister("kms", "--help").stdout
        subs = re.findall(r"^  ([a-z][a-z-]+) ", usage.split("Subcommands:\n")[1].split("\n\n")[0], re.M)
        self.assertIn("encrypt", subs)
        by_cli = {xform_name(op, "-"): op for op in model.operation_names}
        # newer than Debian's botocore 1.29: in today's model, and served by cloister-kms
        newer = {"list-key-rotations": None, "rotate-key-on-demand": None,
                 "enable-key-rotation": {"rotation-period-in-days"}}
        for sub in subs:
            if sub == "audit-verify":
                continue
            line = self.e.cloister("kms", sub, "--help").stdout.splitlines()[0]
            opts = re.findall(r"(\[?)--([a-z0-9-]+)", line)
            ours = {name for _, name in opts}
            required = {name for br, name in opts if not br}
            if sub in newer and newer[sub] is None:
                self.assertNotIn(sub, by_cli)
                continue
            self.assertIn(sub, by_cli, "%s is not an operation of the KMS model" % sub)
            shape_ = model.operation_model(by_cli[sub]).input_shape
            members = {xform_name(m, "-"): m for m in shape_.members}
            extra = ours - set(members) - (newer.get(sub) or set())
            self.assertEqual(extra, set(), sub)
            # the model's members we leave to the aws CLI: none but DryRun/Recipient (newer models)
            self.assertEqual(set(members) - ours, set(), sub)
            model_required = {xform_name(m, "-") for m in shape_.required_members} - {"policy-name"}
            self.assertEqual(required, model_required, sub)

    def test_refusals(self):
        e = self.e
        cases = [
            (["kms", "connect-custom-key-store", "--custom-key-store-id", "x"],
             ["unknown subcommand 'connect-custom-key-store'", "aws kms connect-custom-key-store"]),
            (["kms", "encrpyt", "--key-id", "k"], ["unknown subcommand 'encrpyt'; did you mean 'encrypt'?"]),
            (["kms", "encrypt", "--key-id", "k"], ["encrypt is missing --plaintext"]),
            (["kms", "list-keys", "--key-id", "k"], ["list-keys does not take --key-id; its options: --limit --marker"]),
            (["kms", "encrypt", "--key-id", "k", "--plaintext", "not base64!"],
             ['--plaintext: Invalid base64: "..."', "fileb://FILE"]),
            (["kms", "decrypt", "--ciphertext-blob", "@@@"], ['--ciphertext-blob: Invalid base64: "@@@"']),
            (["kms", "encrypt", "--key-id", "k", "--plaintext", "fileb:///nonexistent/x"],
             ["--plaintext fileb:///nonexistent/x", "cannot open"]),
            (["kms", "list-keys", "--output", "yaml"], ["--output is json or text, not 'yaml'"]),
            (["kms", "list-keys", "--query", "Keys[?KeyId=='x']"], ["--query takes identifiers joined by '.'"]),
            (["kms", "list-keys", "--limit", "x"], ["--limit must be a whole number from 0 to 2147483647, not 'x'"]),
            (["kms", "create-grant", "--key-id", "k", "--grantee-principal", "g", "--operations", "Decrypt,,Encrypt"],
             ["--operations: an empty item"]),
            (["kms", "encrypt", "--key-id", "k", "--plaintext", "aGk=", "--encryption-context", "novalue"],
             ["--encryption-context: 'novalue' is not key=value"]),
            (["kms", "tag-resource", "--key-id", "k", "--tags", "Key=a,Value=b"],
             ["--tags: 'Key=a,Value=b' is not TagKey=KEY,TagValue=VALUE"]),
            (["kms", "describe-key", "--key-id", "a", "--key-id", "b"], ["--key-id is given twice"]),
            (["kms", "list-keys", "--page-size", "5", "--limit", "2"], ["--page-size cannot go with --limit"]),
        ]
        for args, needles in cases:
            p = e.cloister(*args, "--endpoint-url", self.ep, check=False)
            self.assertEqual(p.returncode, 1 if "cannot open" in needles else 2, (args, p.stderr))
            for n in needles:
                self.assertIn(n, p.stderr, args)
        # a plaintext given as an argument is not echoed in the message
        p = e.cloister("kms", "encrypt", "--key-id", "k", "--plaintext", "secret words", "--endpoint-url", self.ep,
                       check=False)
        self.assertNotIn("secret", p.stderr)


class Profiles(unittest.TestCase):
    """~/.aws/credentials and ~/.aws/config as the aws CLI reads them: each case run through both."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli-aws-profiles-")
        cls.cm = kms_harness.kms_server(principals=[kms_harness.principal(
            "AKIDPROFILE", "profile-secret", "arn:aws:iam::111122223333:user/profile")])
        cls.srv = cls.cm.__enter__()
        cls.ep = cls.srv.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    CREDENTIALS = ("[default]\naws_access_key_id = test\naws_secret_access_key = test\n\n"
                   "[dev]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n\n"
                   "[wrong]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = not-the-secret\n")
    CONFIG = ("[default]\nregion = us-east-1\n\n[profile dev]\nregion = us-east-1\n\n"
              "[profile wrong]\nregion = us-east-1\n\n[profile elsewhere]\nregion = moon-base-1\n"
              "aws_access_key_id = test\naws_secret_access_key = test\n")

    def run_both(self, env, *args):
        a = env.aws("kms", "list-keys", "--endpoint-url", self.ep, *args, check=False)
        c = env.cloister("kms", "list-keys", "--endpoint-url", self.ep, *args, check=False)
        return a, c

    def assert_alike(self, env, *args, ok, needle=None):
        a, c = self.run_both(env, *args)
        self.assertEqual(a.returncode == 0, ok, (args, a.stderr))
        self.assertEqual(c.returncode == 0, ok, (args, c.stderr))
        if needle is not None:
            self.assertIn(needle, a.stderr)
            self.assertIn(needle, c.stderr)
        return a, c

    def test_profiles_as_the_aws_cli_reads_them(self):
        env = Env(self.tmp, self.CREDENTIALS, self.CONFIG)
        self.assert_alike(env, ok=True)                                    # [default]
        self.assert_alike(env, "--profile", "dev", ok=True)                # [dev] / [profile dev]
        self.assert_alike(env, "--profile", "wrong", ok=False, needle="InvalidSignatureException")
        env.env["AWS_PROFILE"] = "wrong"
        self.assert_alike(env, ok=False, needle="InvalidSignatureException")
        self.assert_alike(env, "--profile", "dev", ok=True)                # --profile over AWS_PROFILE
        # the region comes from the profile: the server answers AWS regions, not moon-base-1
        env.env.pop("AWS_PROFILE")
        self.assert_alike(env, "--profile", "elsewhere", ok=False, needle="moon-base-1")
        self.assert_alike(env, "--profile", "elsewhere", "--region", "us-east-1", ok=True)
        env.env["AWS_DEFAULT_REGION"] = "us-east-1"
        self.assert_alike(env, "--profile", "elsewhere", ok=True)          # the environment's region first

    def test_environment_and_explicit_profiles(self):
        env = Env(self.tmp, self.CREDENTIALS, self.CONFIG, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        env.env["AWS_PROFILE"] = "wrong"
        self.assert_alike(env, ok=True)   # the environment's keys win over AWS_PROFILE's
        env.env.pop("AWS_PROFILE")
        self.assert_alike(env, "--profile", "wrong", ok=False, needle="InvalidSignatureException")  # not over --profile
        env.env["AWS_PROFILE"] = "missing"
        a, c = self.run_both(env)
        self.assertNotEqual(a.returncode, 0)
        self.assertIn("could not be found", a.stderr)
        self.assertEqual(c.returncode, 2)
        self.assertIn("profile missing (from AWS_PROFILE) is in neither the AWS config file nor the credentials file",
                      c.stderr)

    def test_files_from_the_environment_variables(self):
        env = Env(self.tmp)
        env.env["AWS_SHARED_CREDENTIALS_FILE"] = env.write("creds", self.CREDENTIALS)
        env.env["AWS_CONFIG_FILE"] = env.write("conf", self.CONFIG)
        self.assert_alike(env, "--profile", "dev", ok=True)

    def test_broken_files_are_refused_with_their_line(self):
        env = Env(self.tmp, self.CREDENTIALS + "[dev]\naws_access_key_id = again\n", self.CONFIG)
        a, c = self.run_both(env)
        self.assertNotEqual(a.returncode, 0)   # configparser's strict mode
        self.assertEqual(c.returncode, 1)
        self.assertIn("credentials line 12: section [dev] is already at line 5", c.stderr)
        env = Env(self.tmp, CREDS, CONFIG)
        env.write(".aws/config", "[default]\nregion us-east-1\n")
        a, c = self.run_both(env)
        self.assertNotEqual(a.returncode, 0)
        self.assertIn("config line 2: expected \"name = value\"", c.stderr)

    def test_no_credentials_or_region_say_what_to_do(self):
        env = Env(self.tmp, None, CONFIG)
        p = env.cloister("kms", "list-keys", "--endpoint-url", self.ep, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put", p.stderr)
        self.assertNotEqual(env.aws("kms", "list-keys", "--endpoint-url", self.ep, check=False).returncode, 0)
        env = Env(self.tmp, CREDS, None)
        p = env.cloister("kms", "list-keys", "--endpoint-url", self.ep, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no AWS region: pass --region", p.stderr)
        env = Env(self.tmp, CREDS, "[profile sso]\nsso_session = corp\nregion = us-east-1\n")
        p = env.cloister("kms", "list-keys", "--profile", "sso", "--endpoint-url", self.ep, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("aws configure export-credentials --profile sso --format env", p.stderr)

    def test_endpoints_newer_sdks_read(self):
        """AWS_ENDPOINT_URL_KMS over AWS_ENDPOINT_URL over the profile's services section over its
        endpoint_url; a wrong endpoint is a port nothing listens on, so only the right one works."""
        dead = "http://127.0.0.1:%d" % kms_harness.free_port()
        conf = ("[default]\nregion = us-east-1\nendpoint_url = %s\n\n"
                "[profile svc]\nregion = us-east-1\nendpoint_url = %s\nservices = local\n"
                "aws_access_key_id = test\naws_secret_access_key = test\n\n"
                "[services local]\nkms =\n  endpoint_url = %s\n" % (dead, dead, self.ep))
        env = Env(self.tmp, CREDS, conf)
        p = env.cloister("kms", "list-keys", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(dead, p.stderr)   # the profile's endpoint_url was used, and is named
        env.cloister("kms", "list-keys", "--profile", "svc")   # the services section's kms endpoint_url
        env.env["AWS_ENDPOINT_URL"] = self.ep
        env.cloister("kms", "list-keys")
        env.env["AWS_ENDPOINT_URL"] = dead
        env.env["AWS_ENDPOINT_URL_KMS"] = self.ep
        env.cloister("kms", "list-keys")
        env.env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
        env.cloister("kms", "list-keys", "--endpoint-url", self.ep)

    def test_seal_unseal_with_a_profile(self):
        env = Env(self.tmp, self.CREDENTIALS, self.CONFIG)
        kid = json.loads(env.cloister("kms", "create-key", "--profile", "dev", "--endpoint-url", self.ep).stdout)[
            "KeyMetadata"]["KeyId"]
        src = env.write("in.txt", "sealed with a profile\n")
        sealed = os.path.join(env.home, "in.sealed")
        env.cloister("seal", "--profile", "dev", "--endpoint-url", self.ep, "--key", kid, src, "-o", sealed)
        p = env.cloister("unseal", "--profile", "dev", "--endpoint-url", self.ep, sealed, "-o", "-")
        self.assertEqual(p.stdout, "sealed with a profile\n")
        p = env.cloister("unseal", "--profile", "wrong", "--endpoint-url", self.ep, sealed, "-o", "-", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("InvalidSignatureException", p.stderr)


class CaBundle(unittest.TestCase):
    """An https cloister-kms trusted through the profile's ca_bundle, as the aws CLI trusts it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli-aws-tls-")
        cls.cert, cls.keyf = os.path.join(cls.tmp, "cert.pem"), os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cls.keyf, "-out", cls.cert, "-days", "2", "-subj", "/CN=cloister-kms test",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        cls.cm = kms_harness.kms_server(extra_args=["--tls-cert", cls.cert, "--tls-key", cls.keyf])
        cls.srv = cls.cm.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_ca_bundle_from_profile_and_environment(self):
        ep = self.srv.endpoint
        self.assertTrue(ep.startswith("https://"))
        env = Env(self.tmp, CREDS, CONFIG)
        for tool in (env.aws, env.cloister):
            p = tool("kms", "list-keys", "--endpoint-url", ep, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("certificate", p.stderr.lower())
        env.write(".aws/config", CONFIG + "ca_bundle = %s\n" % self.cert)
        env.aws("kms", "list-keys", "--endpoint-url", ep)
        env.cloister("kms", "list-keys", "--endpoint-url", ep)
        env = Env(self.tmp, CREDS, CONFIG, AWS_CA_BUNDLE=self.cert)
        env.aws("kms", "list-keys", "--endpoint-url", ep)
        env.cloister("kms", "list-keys", "--endpoint-url", ep)
        env.cloister("kms", "list-keys", "--endpoint-url", ep, "--ca-bundle", self.cert)


if __name__ == "__main__":
    unittest.main(verbosity=2)
