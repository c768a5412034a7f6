# SPDX-License-Identifier: Apache-2.0
"""Issue 12, finding 8: SigV4's header rules on the wire. Requests correctly signed by botocore,
but with `host` or an x-amz-* header left out of SignedHeaders, were accepted: "host is signed"
was a substring test (x-hostname passed), and X-Amz-Target, which names the operation, could go
unsigned, so a captured DescribeKey could be replayed as DisableKey. Each is refused now with
IncompleteSignatureException naming the header, and changes nothing."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import kms_raw  # noqa: E402


class SignedHeaderRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.key = cls.kms.create_key()["KeyMetadata"]["KeyId"]

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def refused(self, status, answer, needle):
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["__type"], "IncompleteSignatureException", answer)
        self.assertIn(needle, answer["message"])

    def test_botocore_as_is_passes(self):
        status, answer = kms_raw.call(self.srv.port, "DescribeKey", {"KeyId": self.key})
        self.assertEqual(status, 200, answer)
        # x-amzn-trace-id is not x-amz-*: botocore leaves it unsigned, and so may anyone.
        status, answer = kms_raw.call(self.srv.port, "ListKeys", {},
                                      extra={"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793"},
                                      unsigned=("x-amzn-trace-id",))
        self.assertEqual(status, 200, answer)
        # Content-Type may go unsigned, as AWS allows.
        status, answer = kms_raw.call(self.srv.port, "ListKeys", {}, unsigned=("content-type",))
        self.assertEqual(status, 200, answer)

    def test_target_unsigned_replayed_as_another_operation(self):
        body = json.dumps({"KeyId": self.key}).encode()
        headers = kms_raw.signed_headers(self.srv.port, "DescribeKey", body, unsigned=("x-amz-target",))
        self.assertNotIn("x-amz-target", headers["Authorization"])
        headers["X-Amz-Target"] = "TrentService.DisableKey"  # what an intermediary would do
        status, answer = kms_raw.send(self.srv.port, headers, body)
        self.refused(status, answer, "not signed: X-Amz-Target must be in SignedHeaders")
        self.assertEqual(self.kms.describe_key(KeyId=self.key)["KeyMetadata"]["KeyState"], "Enabled")

    def test_host_only_as_substring(self):
        status, answer = kms_raw.call(self.srv.port, "ListKeys", {}, unsigned=("host",),
                                      extra={"X-Hostname": "kms.example"})
        self.refused(status, answer, "'Host' or ':authority' must be a 'SignedHeader'")

    def test_other_x_amz_headers_unsigned(self):
        for name in ("x-amz-date", "x-amz-security-token", "x-amz-meta-anything"):
            extra = {name: "FQoGZXIvYXdzEJr"} if name != "x-amz-date" else {}
            status, answer = kms_raw.call(self.srv.port, "ListKeys", {}, unsigned=(name,), extra=extra)
            self.refused(status, answer, "must be in SignedHeaders")
            self.assertIn(name, answer["message"].lower())
        # Signed, the header is read: a session token STS did not issue (for a long-term key,
        # too) is refused as AWS refuses it (docs/iam.md, "Session tokens").
        status, answer = kms_raw.call(self.srv.port, "ListKeys", {}, extra={"X-Amz-Security-Token": "FQoGZXIvYXdzEJr"})
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["__type"], "UnrecognizedClientException")
        self.assertEqual(answer["message"], "The security token included in the request is invalid.")
        status, answer = kms_raw.call(self.srv.port, "ListKeys", {})
        self.assertEqual(status, 200, answer)

    def test_refusals_are_audited(self):
        kms_raw.call(self.srv.port, "ListKeys", {}, unsigned=("x-amz-target",))
        with open(os.path.join(self.srv.data_dir, "audit.log")) as f:
            last = f.read().splitlines()[-1]
        self.assertEqual(json.loads(last)["outcome"], "IncompleteSignatureException")


if __name__ == "__main__":
    unittest.main(verbosity=2)
