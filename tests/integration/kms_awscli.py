#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms driven by Debian's `aws` CLI (awscli 2.9), unmodified, with
--endpoint-url (it predates AWS_ENDPOINT_URL): every implemented operation, and
the error cases as the CLI reports them (exit status 254/255 and the AWS
exception name on stderr). Blob parameters are given as fileb:// files: version
2 of the CLI reads a blob given inline as base64 (cli_binary_format), version 1
as raw bytes; a file means the same to both."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402


class AwsCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.tmp = tempfile.mkdtemp(prefix="kms-awscli-")
        cls.x = cls.bytes_file(cls, b"x", "x")

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def aws(self, *args, ok=True, env_extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(kms_harness.DEV_ENV)
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env["AWS_MAX_ATTEMPTS"] = "1"
        env.update(env_extra or {})
        p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, "--output", "json", "kms", *args],
                           env=env, capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, "aws kms %s: %s" % (" ".join(args), p.stderr))
            return json.loads(p.stdout) if p.stdout.strip() else {}
        self.assertNotEqual(p.returncode, 0, "aws kms %s unexpectedly succeeded" % " ".join(args))
        return p.stderr

    def fail_with(self, exc, *args, env_extra=None):
        err = self.aws(*args, ok=False, env_extra=env_extra)
        self.assertIn("(%s)" % exc, err)

    def blob_file(self, b64, name):
        return self.bytes_file(base64.b64decode(b64), name)

    def bytes_file(self, data, name):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return "fileb://" + path

    def test_key_lifecycle(self):
        m = self.aws("create-key", "--description", "cli key")["KeyMetadata"]
        kid = m["KeyId"]
        self.assertEqual(m["KeyState"], "Enabled")
        self.assertIn(kid, [k["KeyId"] for k in self.aws("list-keys")["Keys"]])
        self.aws("create-alias", "--alias-name", "alias/cli", "--target-key-id", kid)
        self.assertEqual(self.aws("describe-key", "--key-id", "alias/cli")["KeyMetadata"]["KeyId"], kid)
        self.assertIn("alias/cli", [a["AliasName"] for a in self.aws("list-aliases")["Aliases"]])
        k2 = self.aws("create-key")["KeyMetadata"]["KeyId"]
        self.aws("update-alias", "--alias-name", "alias/cli", "--target-key-id", k2)
        self.assertEqual(self.aws("describe-key", "--key-id", "alias/cli")["KeyMetadata"]["KeyId"], k2)
        self.aws("delete-alias", "--alias-name", "alias/cli")
        self.fail_with("NotFoundException", "describe-key", "--key-id", "alias/cli")

        self.aws("disable-key", "--key-id", kid)
        self.assertEqual(self.aws("describe-key", "--key-id", kid)["KeyMetadata"]["KeyState"], "Disabled")
        self.fail_with("DisabledException", "encrypt", "--key-id", kid, "--plaintext", self.x)
        self.aws("enable-key", "--key-id", kid)
        r = self.aws("schedule-key-deletion", "--key-id", kid, "--pending-window-in-days", "7")
        self.assertEqual(r["KeyState"], "PendingDeletion")
        self.fail_with("KMSInvalidStateException", "encrypt", "--key-id", kid, "--plaintext", self.x)
        self.aws("cancel-key-deletion", "--key-id", kid)
        self.assertEqual(self.aws("describe-key", "--key-id", kid)["KeyMetadata"]["KeyState"], "Disabled")

    def test_crypto_operations(self):
        kid = self.aws("create-key")["KeyMetadata"]["KeyId"]
        k2 = self.aws("create-key")["KeyMetadata"]["KeyId"]
        pt = self.bytes_file(b"hello cli", "pt")
        ct = self.aws("encrypt", "--key-id", kid, "--plaintext", pt, "--encryption-context", "dept=radiology")[
            "CiphertextBlob"]
        blob = self.blob_file(ct, "ct")
        pt = self.aws("decrypt", "--ciphertext-blob", blob, "--encryption-context", "dept=radiology")
        self.assertEqual(base64.b64decode(pt["Plaintext"]), b"hello cli")
        self.fail_with("InvalidCiphertextException", "decrypt", "--ciphertext-blob", blob, "--encryption-context",
                       "dept=oncology")
        self.fail_with("IncorrectKeyException", "decrypt", "--ciphertext-blob", blob, "--encryption-context",
                       "dept=radiology", "--key-id", k2)
        re = self.aws("re-encrypt", "--ciphertext-blob", blob, "--source-encryption-context", "dept=radiology",
                      "--destination-key-id", k2)
        self.assertTrue(re["KeyId"].endswith(k2))
        pt = self.aws("decrypt", "--ciphertext-blob", self.blob_file(re["CiphertextBlob"], "re"))
        self.assertEqual(base64.b64decode(pt["Plaintext"]), b"hello cli")
        dk = self.aws("generate-data-key", "--key-id", kid, "--key-spec", "AES_256")
        self.assertEqual(len(base64.b64decode(dk["Plaintext"])), 32)
        back = self.aws("decrypt", "--ciphertext-blob", self.blob_file(dk["CiphertextBlob"], "dk"))
        self.assertEqual(back["Plaintext"], dk["Plaintext"])
        wo = self.aws("generate-data-key-without-plaintext", "--key-id", kid, "--number-of-bytes", "24")
        self.assertNotIn("Plaintext", wo)
        back = self.aws("decrypt", "--ciphertext-blob", self.blob_file(wo["CiphertextBlob"], "wo"))
        self.assertEqual(len(base64.b64decode(back["Plaintext"])), 24)
        rnd = self.aws("generate-random", "--number-of-bytes", "16")
        self.assertEqual(len(base64.b64decode(rnd["Plaintext"])), 16)

    def test_key_policies(self):
        kid = self.aws("create-key")["KeyMetadata"]["KeyId"]
        self.assertEqual(self.aws("list-key-policies", "--key-id", kid)["PolicyNames"], ["default"])
        pol = json.loads(self.aws("get-key-policy", "--key-id", kid, "--policy-name", "default")["Policy"])
        pol["Statement"].append({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt",
                                 "Resource": "*"})
        self.aws("put-key-policy", "--key-id", kid, "--policy-name", "default", "--policy", json.dumps(pol))
        self.fail_with("AccessDeniedException", "encrypt", "--key-id", kid, "--plaintext", self.x)
        self.fail_with("MalformedPolicyDocumentException", "put-key-policy", "--key-id", kid, "--policy-name",
                       "default", "--policy", '{"Statement": "nope"}')

    def test_authentication_errors(self):
        self.fail_with("InvalidSignatureException", "list-keys", env_extra={"AWS_SECRET_ACCESS_KEY": "wrong"})
        self.fail_with("UnrecognizedClientException", "list-keys", env_extra={"AWS_ACCESS_KEY_ID": "nobody"})
        self.fail_with("NotFoundException", "describe-key", "--key-id", "alias/never")


if __name__ == "__main__":
    unittest.main(verbosity=2)
