#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The API surface of cloister-kms against AWS's: UpdateKeyDescription through boto3; every
operation about custom key stores and multi-Region keys (and CreateKey's members that ask for
them) refused with UnsupportedOperationException and a message saying why; an operation outside
the model keeping its UnknownOperationException; and docs/kms.md's table of operations checked
against the current AWS KMS model, src/kms/ops.c's table and the tests it names, so that none of
the three can drift from the others."""
import ast
import os
import re
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# The operations of the AWS KMS model, kms/2014-11-01/service-2.json of botocore as of August 2026
# (Debian 12's botocore 1.29 has all but DeriveSharedSecret, GetKeyLastUsage, ListKeyRotations and
# RotateKeyOnDemand; the check below also reads that one). A newer model adds a row to
# docs/kms.md's table and a name here.
CURRENT_MODEL = """CancelKeyDeletion ConnectCustomKeyStore CreateAlias CreateCustomKeyStore CreateGrant CreateKey
Decrypt DeleteAlias DeleteCustomKeyStore DeleteImportedKeyMaterial DeriveSharedSecret DescribeCustomKeyStores
DescribeKey DisableKey DisableKeyRotation DisconnectCustomKeyStore EnableKey EnableKeyRotation Encrypt
GenerateDataKey GenerateDataKeyPair GenerateDataKeyPairWithoutPlaintext GenerateDataKeyWithoutPlaintext GenerateMac
GenerateRandom GetKeyLastUsage GetKeyPolicy GetKeyRotationStatus GetParametersForImport GetPublicKey
ImportKeyMaterial ListAliases ListGrants ListKeyPolicies ListKeyRotations ListKeys ListResourceTags
ListRetirableGrants PutKeyPolicy ReEncrypt ReplicateKey RetireGrant RevokeGrant RotateKeyOnDemand
ScheduleKeyDeletion Sign TagResource UntagResource UpdateAlias UpdateCustomKeyStore UpdateKeyDescription
UpdatePrimaryRegion Verify VerifyMac""".split()


def error(e):
    return e.exception.response["Error"]["Code"], e.exception.response["Error"]["Message"]


def arn_of(kms, kid):
    return kms.describe_key(KeyId=kid)["KeyMetadata"]["Arn"]


def snake(op):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", op).lower()


class KmsOps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.newer = kms_harness.NewerKms(cls.srv.endpoint)

    @classmethod
    def tearDownClass(cls):
        cls.kms.close()
        cls.cm.__exit__(None, None, None)

    def refused(self, call, want_code, *needles):
        with self.assertRaises(ClientError) as e:
            call()
        got, message = error(e)
        self.assertEqual(got, want_code, message)
        for n in needles:
            self.assertIn(n, message)
        return message

    def test_update_key_description(self):
        kid = self.kms.create_key(Description="first")["KeyMetadata"]["KeyId"]
        self.kms.update_key_description(KeyId=kid, Description="model weights, 2026 release")
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"],
                         "model weights, 2026 release")
        arn = self.kms.describe_key(KeyId=kid)["KeyMetadata"]["Arn"]
        self.kms.update_key_description(KeyId=arn, Description="")  # by ARN; empty is allowed (0..8192)
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"], "")
        # The server's own checks (boto3 would refuse these before sending them).
        self.refused(lambda: self.newer.update_key_description(KeyId=kid), "ValidationException",
                     "Value null at 'description'")
        self.refused(lambda: self.newer.update_key_description(KeyId=kid, Description="x" * 8193),
                     "ValidationException", "failed to satisfy constraint: Member must have length less than or equal to 8192")
        self.refused(lambda: self.kms.update_key_description(KeyId="alias/none", Description="d"),
                     "NotFoundException")
        self.refused(lambda: self.kms.update_key_description(KeyId="0" * 8 + "-0000-4000-8000-" + "0" * 12,
                                                             Description="d"), "NotFoundException", "does not exist")
        self.kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
        self.refused(lambda: self.kms.update_key_description(KeyId=kid, Description="late"),
                     "KMSInvalidStateException", "pending deletion")
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"], "")

    def test_get_key_last_usage(self):
        """GetKeyLastUsage (newer than Debian's botocore: kms_harness.NewerKms): the last successful
        cryptographic operation with its request id, which names the request's audit log line."""
        kid = self.kms.create_key()["KeyMetadata"]["KeyId"]
        created = self.kms.describe_key(KeyId=kid)["KeyMetadata"]["CreationDate"].timestamp()
        r = self.newer.get_key_last_usage(KeyId=kid)
        self.assertEqual((r["KeyId"], r["KeyLastUsage"], r["KeyCreationDate"]), (kid, {}, created))
        self.assertEqual(r["TrackingStartDate"], created)  # created after the server started
        enc = self.kms.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"a": "1"})
        last = self.newer.get_key_last_usage(KeyId=kid)["KeyLastUsage"]
        self.assertEqual((last["Operation"], last["KmsRequestId"]), ("Encrypt", enc["ResponseMetadata"]["RequestId"]))
        self.assertLessEqual(abs(last["Timestamp"] - created), 600)
        # What fails is not a use; reads and management are not cryptographic operations.
        self.refused(lambda: self.kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"a": "2"}),
                     "InvalidCiphertextException")
        self.kms.describe_key(KeyId=kid)
        self.kms.update_key_description(KeyId=kid, Description="d")
        self.assertEqual(self.newer.get_key_last_usage(KeyId=kid)["KeyLastUsage"]["Operation"], "Encrypt")
        dec = self.kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"a": "1"})
        last = self.newer.get_key_last_usage(KeyId=arn_of(self.kms, kid))["KeyLastUsage"]  # by key ARN too
        self.assertEqual((last["Operation"], last["KmsRequestId"]), ("Decrypt", dec["ResponseMetadata"]["RequestId"]))
        # ReEncrypt records both keys.
        other = self.kms.create_key()["KeyMetadata"]["KeyId"]
        re = self.kms.re_encrypt(CiphertextBlob=enc["CiphertextBlob"], SourceEncryptionContext={"a": "1"},
                                 DestinationKeyId=other)
        for k in (kid, other):
            last = self.newer.get_key_last_usage(KeyId=k)["KeyLastUsage"]
            self.assertEqual((last["Operation"], last["KmsRequestId"]),
                             ("ReEncrypt", re["ResponseMetadata"]["RequestId"]))
        self.kms.create_alias(AliasName="alias/last-usage", TargetKeyId=kid)
        self.refused(lambda: self.newer.get_key_last_usage(KeyId="alias/last-usage"), "NotFoundException")
        self.refused(lambda: self.newer.get_key_last_usage(KeyId="0" * 8 + "-0000-4000-8000-" + "0" * 12),
                     "NotFoundException")
        self.refused(lambda: self.newer.get_key_last_usage(), "ValidationException", "Value null at 'keyId'")

    def test_key_last_usage_tracking_restarts_with_the_server(self):
        with tempfile.TemporaryDirectory(prefix="kms-usage-") as tmp:
            data = os.path.join(tmp, "data")
            with kms_harness.kms_server(data_dir=data) as srv:
                kms = kms_harness.boto_client(srv.endpoint)
                kid = kms.create_key()["KeyMetadata"]["KeyId"]
                kms.generate_data_key(KeyId=kid, KeySpec="AES_256")
                self.assertEqual(kms_harness.NewerKms(srv.endpoint).get_key_last_usage(KeyId=kid)["KeyLastUsage"]
                                 ["Operation"], "GenerateDataKey")
                kms.close()
            before = time.time()
            with kms_harness.kms_server(data_dir=data) as srv:
                r = kms_harness.NewerKms(srv.endpoint).get_key_last_usage(KeyId=kid)
                # Uses before this start are not known: tracking starts again, and says so.
                self.assertEqual(r["KeyLastUsage"], {})
                self.assertGreaterEqual(r["TrackingStartDate"], int(before))
                self.assertLess(r["KeyCreationDate"], r["TrackingStartDate"] + 1)

    def test_unsupported_operations(self):
        kid = self.kms.create_key()["KeyMetadata"]["KeyId"]
        store_id = "cks-1234567890abcdef0"
        key_stores = {
            "CreateCustomKeyStore": lambda: self.kms.create_custom_key_store(
                CustomKeyStoreName="hsm", CloudHsmClusterId="cluster-1234abcdefg", TrustAnchorCertificate="pem",
                KeyStorePassword="kmsPswd1"),
            "ConnectCustomKeyStore": lambda: self.kms.connect_custom_key_store(CustomKeyStoreId=store_id),
            "DeleteCustomKeyStore": lambda: self.kms.delete_custom_key_store(CustomKeyStoreId=store_id),
            "DescribeCustomKeyStores": lambda: self.kms.describe_custom_key_stores(),
            "DisconnectCustomKeyStore": lambda: self.kms.disconnect_custom_key_store(CustomKeyStoreId=store_id),
            "UpdateCustomKeyStore": lambda: self.kms.update_custom_key_store(CustomKeyStoreId=store_id,
                                                                             NewCustomKeyStoreName="other"),
        }
        for op, call in key_stores.items():
            with self.subTest(op=op):
                self.refused(call, "UnsupportedOperationException", op + " is not supported by this server",
                             "no custom key stores")
        multi_region = {
            "ReplicateKey": lambda: self.kms.replicate_key(KeyId=kid, ReplicaRegion="eu-central-1"),
            "UpdatePrimaryRegion": lambda: self.kms.update_primary_region(KeyId=kid, PrimaryRegion="eu-central-1"),
        }
        for op, call in multi_region.items():
            with self.subTest(op=op):
                self.refused(call, "UnsupportedOperationException", op + " is not supported by this server",
                             "no multi-Region keys", "one server")

    def test_create_key_elsewhere_is_refused(self):
        before = len(self.kms.list_keys(Limit=1000)["Keys"])
        cases = [
            ({"MultiRegion": True}, "MultiRegion true is not supported", "one server"),
            ({"CustomKeyStoreId": "cks-1234567890abcdef0"}, "CustomKeyStoreId is not supported",
             "no custom key stores"),
            ({"Origin": "AWS_CLOUDHSM", "CustomKeyStoreId": "cks-1234567890abcdef0"}, "Origin AWS_CLOUDHSM",
             "no custom key stores"),
            ({"Origin": "EXTERNAL_KEY_STORE", "CustomKeyStoreId": "cks-1234567890abcdef0", "XksKeyId": "k1"},
             "Origin EXTERNAL_KEY_STORE", "no custom key stores"),
        ]
        for kw, *needles in cases:
            with self.subTest(kw=kw):
                self.refused(lambda: self.kms.create_key(**kw), "UnsupportedOperationException", *needles)
        self.refused(lambda: self.newer.create_key(XksKeyId="k1"), "UnsupportedOperationException",
                     "XksKeyId is not supported")
        self.refused(lambda: self.newer.create_key(Origin="ELSEWHERE"), "ValidationException",
                     "Member must satisfy enum value set")
        self.assertEqual(len(self.kms.list_keys(Limit=1000)["Keys"]), before)  # nothing was created
        self.assertFalse(self.kms.create_key(MultiRegion=False)["KeyMetadata"]["MultiRegion"])

    def test_unknown_operation_keeps_its_error(self):
        for op in ("FrobnicateKey", "createKey", "DescribeCustomKeyStore"):
            with self.subTest(op=op):
                self.refused(lambda: self.newer.call(op, {}), "UnknownOperationException", "Unknown operation")

    # --- docs/kms.md's table, ops.c's table and the tests -------------------------------------

    def docs_table(self):
        with open(os.path.join(ROOT, "docs", "kms.md"), encoding="utf-8") as f:
            text = f.read()
        rows = re.findall(r"^\| `(\w+)` \| (implemented|unsupported|not yet)\b[^|]*\| (?:`(\w+)\.(\w+)`|—) \|$",
                          text, re.M)
        self.assertTrue(rows, "docs/kms.md has no table of operations")
        table = {}
        for op, state, module, test in rows:
            self.assertNotIn(op, table, "docs/kms.md lists %s twice" % op)
            table[op] = (state, module, test)
        return table

    def ops_table(self):
        with open(os.path.join(ROOT, "src", "kms", "ops.c"), encoding="utf-8") as f:
            rows = re.findall(r'\{"(\w+)", (kms_op_\w+)\}', f.read())
        self.assertTrue(rows, "src/kms/ops.c has no operation table")
        return {op: ("unsupported" if fn.startswith("kms_op_unsupported") else "implemented") for op, fn in rows}

    def test_table_matches_model_code_and_tests(self):
        import botocore.session
        table = self.docs_table()
        code = self.ops_table()
        debian_model = botocore.session.get_session().get_service_model("kms").operation_names
        # Every operation of the model is in the table, and nothing else.
        self.assertEqual(sorted(table), sorted(CURRENT_MODEL), "docs/kms.md's table and the model differ")
        self.assertFalse(set(debian_model) - set(table), "botocore's own model has operations the table lacks")
        # The table's state is the code's: ops.c's table answers exactly the rows marked
        # implemented or unsupported (kms_op_unsupported_*), and nothing marked "not yet".
        for op, (state, _, _) in table.items():
            want = code.get(op, "not yet")
            self.assertEqual(state, want, "%s: docs/kms.md says %s, src/kms/ops.c makes it %s (fix the row or the "
                             "table)" % (op, state, want))
        self.assertFalse(set(code) - set(table), "src/kms/ops.c serves operations outside the model")
        # Each row names a test, which exists and calls the operation through boto3 (or, for what
        # Debian's botocore lacks, through kms_harness.NewerKms or the aws CLI), itself or through
        # a helper method of its class.
        for op, (state, module, test) in table.items():
            with self.subTest(op=op):
                if state == "not yet":
                    self.assertFalse(module, "%s is not served yet: its row names no test" % op)
                    continue
                self.assertTrue(module, "%s: its row names no test" % op)
                body = self.source_of(module, test)
                calls = (r"\.%s\(" % snake(op), r'"%s"' % op, r'"%s"' % snake(op).replace("_", "-"))
                self.assertTrue(any(re.search(c, body) for c in calls),
                                "%s.%s does not call %s" % (module, test, op))

    def source_of(self, module, test):
        """The source of test `test` in tests/integration/MODULE.py with the methods of its class it
        calls (self.helper(...)), one level deep."""
        path = os.path.join(ROOT, "tests", "integration", module + ".py")
        self.assertTrue(os.path.exists(path), "docs/kms.md names %s, which does not exist" % path)
        with open(path, encoding="utf-8") as f:
            src = f.read()
        for cls in ast.walk(ast.parse(src)):
            if not isinstance(cls, ast.ClassDef):
                continue
            methods = {n.name: ast.get_source_segment(src, n) for n in cls.body if isinstance(n, ast.FunctionDef)}
            if test in methods:
                body = methods[test]
                helpers = set(re.findall(r"self\.(\w+)\(", body)) & set(methods)
                return body + "".join(methods[h] for h in sorted(helpers))
        self.fail("docs/kms.md names %s.%s, which is not a test method there" % (module, test))
        return ""


if __name__ == "__main__":
    unittest.main(verbosity=2)
