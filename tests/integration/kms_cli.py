#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`cloister seal/unseal --key alias/...` and `cloister kms ...` through the
libcloister KMS client, against cloister-kms, directly AND through a proxy that
checks every request with botocore (an independent implementation of the KMS
protocol: the operation and its parameters against botocore's model, the SigV4
signature recomputed by botocore), plus audit-verify."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def run(args, env, check=True):
    p = subprocess.run([kms_harness.CLI_BIN, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("cloister %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


class SealRoundTrip:
    """Shared by both servers: endpoint in self.endpoint."""

    def env(self, **extra):
        e = dict(os.environ)
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            e.pop(k, None)
        e.update(kms_harness.DEV_ENV)
        e.update(extra)
        return e

    def test_cli_create_alias_seal_unseal(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        meta = json.loads(run(["kms", "create-key", "--description", "seal test"], env).stdout)["KeyMetadata"]
        kid = meta["KeyId"]
        alias = "alias/seal-%s" % kid[:8]
        run(["kms", "create-alias", "--alias-name", alias, "--target-key-id", kid], env)
        d = json.loads(run(["kms", "describe-key", "--key-id", alias], env).stdout)["KeyMetadata"]
        self.assertEqual(d["KeyId"], kid)
        keys = json.loads(run(["kms", "list-keys"], env).stdout)["Keys"]
        self.assertIn(kid, [k["KeyId"] for k in keys])
        with tempfile.TemporaryDirectory() as tmp:
            src, sealed, back = (os.path.join(tmp, n) for n in ("in.bin", "in.sealed", "out.bin"))
            data = os.urandom(300000)
            write(src, data)
            run(["seal", "--key", alias, "-c", "patient=42", src, "-o", sealed], env)
            self.assertNotIn(data[:64], read(sealed))
            run(["unseal", "--key", alias, "-c", "patient=42", sealed, "-o", back], env)
            self.assertEqual(read(back), data)
            # Without --context the file's own context is used.
            os.unlink(back)
            run(["unseal", "--key", alias, sealed, "-o", back], env)
            self.assertEqual(read(back), data)
            os.unlink(back)
            p = run(["unseal", "--key", alias, "-c", "patient=43", sealed, "-o", back], env, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertFalse(os.path.exists(back))
            # --kms-endpoint instead of the environment.
            env2 = self.env()
            run(["unseal", "--kms-endpoint", self.endpoint, "--key", alias, sealed, "-o", back], env2)
            self.assertEqual(read(back), data)

    def test_missing_credentials(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        env.pop("AWS_SECRET_ACCESS_KEY")
        p = run(["kms", "list-keys"], env, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("AWS_SECRET_ACCESS_KEY", p.stderr)


class AgainstCloisterKms(SealRoundTrip, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.endpoint = cls.srv.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def test_errors_reach_the_user(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        p = run(["kms", "describe-key", "--key-id", "alias/absent"], env, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("NotFoundException", p.stderr)
        p = run(["kms", "list-keys"], self.env(AWS_ENDPOINT_URL=self.endpoint, AWS_SECRET_ACCESS_KEY="bad"),
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("InvalidSignatureException", p.stderr)

    def test_key_lifecycle_grants_and_policy(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        kid = json.loads(run(["kms", "create-key"], env).stdout)["KeyMetadata"]["KeyId"]
        run(["kms", "create-alias", "--alias-name", "alias/life", "--target-key-id", kid], env)
        aliases = json.loads(run(["kms", "list-aliases", "--key-id", kid], env).stdout)["Aliases"]
        self.assertEqual([a["AliasName"] for a in aliases], ["alias/life"])
        run(["kms", "disable-key", "--key-id", kid], env)  # AWS: key id or ARN, no alias
        meta = json.loads(run(["kms", "describe-key", "--key-id", kid], env).stdout)["KeyMetadata"]
        self.assertEqual(meta["KeyState"], "Disabled")
        run(["kms", "enable-key", "--key-id", kid], env)
        out = json.loads(run(["kms", "schedule-key-deletion", "--key-id", kid, "--pending-window-in-days", "7"],
                             env).stdout)
        self.assertEqual(out["KeyState"], "PendingDeletion")
        run(["kms", "cancel-key-deletion", "--key-id", kid], env)
        meta = json.loads(run(["kms", "describe-key", "--key-id", kid], env).stdout)["KeyMetadata"]
        self.assertEqual(meta["KeyState"], "Disabled")  # as in AWS: a cancelled deletion leaves the key disabled
        run(["kms", "enable-key", "--key-id", kid], env)
        policy = json.loads(json.loads(run(["kms", "get-key-policy", "--key-id", kid], env).stdout)["Policy"])
        self.assertEqual(policy["Statement"][0]["Action"], "kms:*")
        grantee = "arn:aws:iam::111122223333:user/reader"
        g = json.loads(run(["kms", "create-grant", "--key-id", kid, "--grantee-principal", grantee,
                            "--operations", "Decrypt,GenerateDataKey"], env).stdout)
        grants = json.loads(run(["kms", "list-grants", "--key-id", kid], env).stdout)["Grants"]
        self.assertEqual([(x["GrantId"], x["GranteePrincipal"], sorted(x["Operations"])) for x in grants],
                         [(g["GrantId"], grantee, ["Decrypt", "GenerateDataKey"])])
        run(["kms", "revoke-grant", "--key-id", kid, "--grant-id", g["GrantId"]], env)
        self.assertEqual(json.loads(run(["kms", "list-grants", "--key-id", kid], env).stdout)["Grants"], [])
        p = run(["kms", "create-grant", "--key-id", kid, "--grantee-principal", grantee, "--operations", "Fly"],
                env, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("ValidationException", p.stderr)

    def test_usage_errors(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        for args, what in ((["kms", "create-grant", "--key-id", "k"], "missing"),
                           (["kms", "list-keys", "--key-id", "k"], "does not take"),
                           (["kms", "create-grant", "--key-id", "k", "--grantee-principal", "g", "--operations",
                             "Decrypt,,Encrypt"], "--operations"),
                           (["kms", "schedule-key-deletion", "--key-id", "k", "--pending-window-in-days", "x"],
                            "--pending-window-in-days"),
                           (["kms", "fly"], "unknown subcommand")):
            p = run(args, env, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(what, p.stderr, args)

    def test_disabled_key_cannot_unseal(self):
        env = self.env(AWS_ENDPOINT_URL=self.endpoint)
        kms = kms_harness.boto_client(self.endpoint)
        kid = kms.create_key()["KeyMetadata"]["KeyId"]
        with tempfile.TemporaryDirectory() as tmp:
            src, sealed, back = (os.path.join(tmp, n) for n in ("in", "sealed", "out"))
            write(src, b"hello")
            run(["seal", "--key", kid, src, "-o", sealed], env)
            kms.disable_key(KeyId=kid)
            p = run(["unseal", "--key", kid, sealed, "-o", back], env, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("DisabledException", p.stderr)

    def test_audit_verify(self):
        kms = kms_harness.boto_client(self.endpoint)
        kms.create_key()
        for _ in range(3):
            kms.list_keys()
        log = os.path.join(self.srv.data_dir, "audit.log")
        p = run(["kms", "audit-verify", log], self.env())
        self.assertIn("chain intact", p.stdout)
        lines = read(log).splitlines(keepends=True)
        self.assertGreaterEqual(len(lines), 4)
        with tempfile.TemporaryDirectory() as tmp:
            cases = {
                "edited": lines[:1] + [lines[1].replace(b'"ok"', b'"no"')] + lines[2:],
                "removed": lines[:1] + lines[2:],  # a line after it remains, so the break shows
                "reordered": [lines[1], lines[0]] + lines[2:],
                "first removed": lines[1:],
            }
            for name, content in cases.items():
                path = os.path.join(tmp, "audit.log")
                write(path, b"".join(content))
                p = run(["kms", "audit-verify", path], self.env(), check=False)
                self.assertEqual(p.returncode, 1, name)
                self.assertIn("line", p.stderr, name)


class OverHttps(unittest.TestCase):
    """cloister-kms --dev --tls-cert/--tls-key, and the libcloister client trusting its CA through
    AWS_CA_BUNDLE (as the aws CLI and SDKs do): the client verifies the peer and its name."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-https-")
        cls.cert, cls.key = os.path.join(cls.tmp, "cert.pem"), os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=cloister-kms test",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        cls.cm = kms_harness.kms_server(extra_args=["--tls-cert", cls.cert, "--tls-key", cls.key])
        cls.srv = cls.cm.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def env(self, **extra):
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        e.update(kms_harness.DEV_ENV)
        e["AWS_ENDPOINT_URL"] = self.srv.endpoint
        e.update(extra)
        return e

    def test_https_seal_round_trip(self):
        self.assertTrue(self.srv.endpoint.startswith("https://"), self.srv.endpoint)
        env = self.env(AWS_CA_BUNDLE=self.cert)
        kid = json.loads(run(["kms", "create-key"], env).stdout)["KeyMetadata"]["KeyId"]
        src, sealed, back = (os.path.join(self.tmp, n) for n in ("in", "sealed", "out"))
        write(src, b"over TLS")
        run(["seal", "--key", kid, src, "-o", sealed], env)
        run(["unseal", "--key", kid, sealed, "-o", back], env)
        self.assertEqual(read(back), b"over TLS")

    def test_untrusted_certificate_is_refused(self):
        p = run(["kms", "list-keys"], self.env(), check=False)  # the system store does not know this CA
        self.assertEqual(p.returncode, 1)
        self.assertIn("certificate", p.stderr.lower())
        p = run(["kms", "list-keys"], self.env(AWS_CA_BUNDLE=self.key), check=False)  # not a CA file
        self.assertEqual(p.returncode, 1)
        wrong_name = self.srv.endpoint.replace("127.0.0.1", "localhost")  # the certificate names only the IP
        p = run(["kms", "list-keys"], self.env(AWS_CA_BUNDLE=self.cert, AWS_ENDPOINT_URL=wrong_name), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("localhost", p.stderr)


class ThroughBotocoreChecks(SealRoundTrip, unittest.TestCase):
    """The round trips again, each request checked by kms_harness.BotocoreChecker on its way to
    cloister-kms. moto_server was the independent peer here; Debian has no moto, and botocore's
    model and signer check the client's requests more strictly than moto does (moto does not verify
    signatures)."""

    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.checker = kms_harness.BotocoreChecker(cls.srv.endpoint)
        cls.endpoint = cls.checker.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.checker.close()
        cls.cm.__exit__(None, None, None)

    def setUp(self):
        self.checker.problems.clear()
        self.seen = self.checker.requests

    def tearDown(self):
        self.assertEqual(self.checker.problems, [], "botocore finds fault with the client's requests")

    def test_cli_create_alias_seal_unseal(self):
        super().test_cli_create_alias_seal_unseal()
        self.assertGreaterEqual(self.checker.requests - self.seen, 8, "the requests did not pass the checker")

    def test_the_checker_finds_faults(self):
        """The checker is not a pass-through: a wrong signature, a parameter botocore's model does not
        have and an unknown operation are each reported."""
        with self.assertRaises(ClientError) as e:
            kms_harness.NewerKms(self.endpoint, secret="wrong").list_keys()
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidSignatureException")  # the server's
        self.assertIn("ListKeys: the signature is not the one botocore computes for this request",
                      self.checker.problems)
        self.checker.problems.clear()
        kms_harness.NewerKms(self.endpoint).list_keys(Limit=10)
        self.assertEqual(self.checker.problems, [])
        kms_harness.NewerKms(self.endpoint).list_keys(Limitt=10)
        self.assertEqual(len(self.checker.problems), 1)
        self.assertIn('Unknown parameter in input: "Limitt"', self.checker.problems[0])
        self.checker.problems.clear()
        with self.assertRaises(ClientError):
            kms_harness.NewerKms(self.endpoint).fly_away()
        self.assertEqual(self.checker.problems,
                         ["X-Amz-Target 'TrentService.FlyAway' is not an operation of botocore's KMS model"])
        self.checker.problems.clear()


if __name__ == "__main__":
    unittest.main(verbosity=2)
