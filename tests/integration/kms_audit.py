# SPDX-License-Identifier: Apache-2.0
"""Issue 12, finding 2: the audit log failed open. When the audit line could not be appended
(RLIMIT_FSIZE or a full disk; a line over the 1 MiB cap), the answer was sent anyway, so a
principal could decrypt without a record. Now no answer leaves without its line on disk: the
request is answered KMSInternalException, a Decrypt or GenerateDataKey releases no plaintext, a
request that would change state is not run, and the log still verifies afterwards.

The file size limit is put on the running server (prlimit(2) on its pid) just above the log's
current size, so that only the audit log, the one file that grows on a Decrypt, reaches it."""
import base64
import json
import os
import resource
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import kms_raw  # noqa: E402

FAILED = "its audit record could not be written"


def audit_lines(srv):
    with open(os.path.join(srv.data_dir, "audit.log")) as f:
        return [json.loads(ln) for ln in f]


def audit_verify(srv):
    p = subprocess.run([kms_harness.CLI_BIN, "kms", "audit-verify", os.path.join(srv.data_dir, "audit.log")],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


class AuditFailsClosed(unittest.TestCase):
    def setUp(self):
        self.cm = kms_harness.kms_server()
        self.srv = self.cm.__enter__()
        self.kms = kms_harness.boto_client(self.srv.endpoint)
        self.key = self.kms.create_key()["KeyMetadata"]["KeyId"]
        self.secret = b"CLOISTER-AUDIT-CANARY-" + os.urandom(8).hex().encode()
        self.blob = self.kms.encrypt(KeyId=self.key, Plaintext=self.secret)["CiphertextBlob"]
        self.log = os.path.join(self.srv.data_dir, "audit.log")
        self.soft, self.hard = resource.prlimit(self.srv.proc.pid, resource.RLIMIT_FSIZE)

    def tearDown(self):
        resource.prlimit(self.srv.proc.pid, resource.RLIMIT_FSIZE, (self.soft, self.hard))
        self.cm.__exit__(None, None, None)

    def limit_file_size(self):
        """Room for a few dozen bytes more in the audit log: the next line does not fit."""
        size = os.path.getsize(self.log)
        resource.prlimit(self.srv.proc.pid, resource.RLIMIT_FSIZE, (size + 40, self.hard))
        return size

    def lift_limit(self):
        resource.prlimit(self.srv.proc.pid, resource.RLIMIT_FSIZE, (self.soft, self.hard))

    def assert_internal(self, status, answer):
        self.assertEqual(status, 500, answer)
        self.assertEqual(answer["__type"], "KMSInternalException", answer)
        self.assertIn(FAILED, answer["message"])
        self.assertNotIn("Plaintext", answer)

    def test_decrypt_without_a_record_is_refused(self):
        before = self.limit_file_size()
        b64 = base64.b64encode(self.blob).decode()
        for op, payload in (("Decrypt", {"CiphertextBlob": b64}),
                            ("GenerateDataKey", {"KeyId": self.key, "KeySpec": "AES_256"}),
                            ("GenerateRandom", {"NumberOfBytes": 32}),
                            ("Encrypt", {"KeyId": self.key, "Plaintext": base64.b64encode(b"x").decode()})):
            status, answer = kms_raw.call(self.srv.port, op, payload)
            self.assert_internal(status, answer)
            self.assertNotIn("CiphertextBlob", answer)
        # Nothing of the lines that did not fit stayed in the file: it ends with a whole line.
        self.assertEqual(os.path.getsize(self.log), before)
        rc, out = audit_verify(self.srv)
        self.assertEqual(rc, 0, out)
        # Once there is room again, the same request is answered and recorded.
        self.lift_limit()
        self.assertEqual(self.kms.decrypt(CiphertextBlob=self.blob)["Plaintext"], self.secret)
        last = audit_lines(self.srv)[-1]
        self.assertEqual((last["operation"], last["outcome"]), ("Decrypt", "ok"))
        rc, out = audit_verify(self.srv)
        self.assertEqual(rc, 0, out)

    def test_state_change_without_a_record_is_not_made(self):
        keys_before = sorted(k["KeyId"] for k in self.kms.list_keys()["Keys"])
        self.limit_file_size()
        for op, payload in (("CreateKey", {}),
                            ("CreateAlias", {"AliasName": "alias/unrecorded", "TargetKeyId": self.key}),
                            ("DisableKey", {"KeyId": self.key}),
                            ("ScheduleKeyDeletion", {"KeyId": self.key, "PendingWindowInDays": 7})):
            status, answer = kms_raw.call(self.srv.port, op, payload)
            self.assert_internal(status, answer)
        self.lift_limit()
        self.assertEqual(sorted(k["KeyId"] for k in self.kms.list_keys()["Keys"]), keys_before)
        self.assertEqual(self.kms.list_aliases()["Aliases"], [])
        self.assertEqual(self.kms.describe_key(KeyId=self.key)["KeyMetadata"]["KeyState"], "Enabled")
        # A change that is made has its "started" line on disk before it runs, then its outcome.
        self.kms.disable_key(KeyId=self.key)
        lines = audit_lines(self.srv)
        self.assertEqual([(ln["operation"], ln["outcome"]) for ln in lines[-2:]],
                         [("DisableKey", "started"), ("DisableKey", "ok")])
        self.assertEqual(lines[-2]["request_id"], lines[-1]["request_id"])
        rc, out = audit_verify(self.srv)
        self.assertEqual(rc, 0, out)


class AuditLineOverCap(unittest.TestCase):
    """A line over 1 MiB: 64 encryption context keys of 4096 bytes that JSON escapes six-fold
    (a body of 1.6 MB, so --max-body 4 MiB). The data key must not leave unrecorded. Where
    encryption contexts are bounded as in AWS, the request is refused before any work
    (ValidationException) instead; either way no plaintext and a verifiable log."""

    def test_generate_data_key_with_huge_context(self):
        with kms_harness.kms_server(extra_args=["--max-body", str(4 << 20)]) as srv:
            kms = kms_harness.boto_client(srv.endpoint)
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            ctx = {"k%02d" % i + "\x01" * 4093: "v" for i in range(64)}
            status, answer = kms_raw.call(srv.port, "GenerateDataKey",
                                          {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx})
            self.assertNotIn("Plaintext", answer)
            self.assertIn(answer["__type"], ("KMSInternalException", "ValidationException"), answer)
            last = audit_lines(srv)[-1]
            self.assertEqual(last["operation"], "GenerateDataKey")
            if answer["__type"] == "KMSInternalException":
                self.assertIn(FAILED, answer["message"])
                # recorded, without the keys that made the line too long
                self.assertEqual((last["outcome"], last["context_keys"]), ("KMSInternalException", []))
            rc, out = audit_verify(srv)
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(kms.generate_data_key(KeyId=key, KeySpec="AES_256")["Plaintext"]), 32)


if __name__ == "__main__":
    unittest.main(verbosity=2)
