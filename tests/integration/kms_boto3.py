#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms driven by boto3, unmodified: every implemented operation and
the error cases, each asserting the AWS exception name boto3 reports."""
import base64
import datetime
import http.client
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def code(exc):
    return exc.exception.response["Error"]["Code"]


class KmsBoto3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.newer = kms_harness.NewerKms(cls.srv.endpoint)  # what Debian's botocore 1.29 does not model

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def new_key(self, **kw):
        return self.kms.create_key(**kw)["KeyMetadata"]

    # --- operations ------------------------------------------------------------

    def test_create_describe_every_identifier_form(self):
        m = self.new_key(Description="model key")
        self.assertEqual(m["KeyState"], "Enabled")
        self.assertEqual(m["KeySpec"], "SYMMETRIC_DEFAULT")
        self.assertEqual(m["AWSAccountId"], "111122223333")
        self.assertTrue(m["Arn"].endswith(":key/" + m["KeyId"]))
        self.assertIsInstance(m["CreationDate"], datetime.datetime)
        self.kms.create_alias(AliasName="alias/forms", TargetKeyId=m["KeyId"])
        alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/forms"
        for ident in (m["KeyId"], m["Arn"], "alias/forms", alias_arn):
            d = self.kms.describe_key(KeyId=ident)["KeyMetadata"]
            self.assertEqual(d["KeyId"], m["KeyId"], ident)
            self.assertEqual(d["Description"], "model key")

    def test_list_keys_pagination(self):
        made = {self.new_key()["KeyId"] for _ in range(5)}
        seen, marker = [], None
        while True:
            kw = {"Limit": 2}
            if marker:
                kw["Marker"] = marker
            r = self.kms.list_keys(**kw)
            self.assertLessEqual(len(r["Keys"]), 2)
            seen += [k["KeyId"] for k in r["Keys"]]
            if not r["Truncated"]:
                break
            marker = r["NextMarker"]
        self.assertTrue(made <= set(seen))
        self.assertEqual(len(seen), len(set(seen)))
        # The paginator boto3 ships for ListKeys walks the same pages.
        pag = [k["KeyId"] for p in self.kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3})
               for k in p["Keys"]]
        self.assertEqual(sorted(pag), sorted(seen))

    def test_encrypt_decrypt_with_context(self):
        kid = self.new_key()["KeyId"]
        ctx = {"purpose": "mammogram", "hospital": "h1"}
        ct = self.kms.encrypt(KeyId=kid, Plaintext=b"secret bytes", EncryptionContext=ctx)
        self.assertEqual(ct["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT")
        pt = self.kms.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext=ctx)
        self.assertEqual(pt["Plaintext"], b"secret bytes")
        self.assertTrue(pt["KeyId"].endswith(kid))
        pt = self.kms.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext=ctx, KeyId=kid)
        self.assertEqual(pt["Plaintext"], b"secret bytes")
        # The blob carries its format version (2), key id, the key's region and key version 1
        # (docs/formats/kms-ciphertext.md).
        blob = ct["CiphertextBlob"]
        self.assertEqual(blob[0], 2)
        self.assertEqual(blob[2:38].decode(), kid)
        self.assertEqual(blob[38], 9)
        self.assertEqual(blob[39:48], b"us-east-1")
        self.assertEqual(int.from_bytes(blob[48:52], "big"), 1)

    def test_wrong_context_fails(self):
        kid = self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"a": "1"})["CiphertextBlob"]
        for bad in ({"a": "2"}, {}, {"a": "1", "b": "2"}, {"A": "1"}):
            with self.assertRaises(ClientError) as e:
                self.kms.decrypt(CiphertextBlob=ct, EncryptionContext=bad)
            self.assertEqual(code(e), "InvalidCiphertextException", bad)

    def test_tampered_and_garbage_ciphertext(self):
        kid = self.new_key()["KeyId"]
        ct = bytearray(self.kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"])
        ct[-1] ^= 1
        for blob in (bytes(ct), b"\x01garbage", b"\x02garbage", b"\x03" + bytes(ct[1:])):
            with self.assertRaises(ClientError) as e:
                self.kms.decrypt(CiphertextBlob=blob)
            self.assertEqual(code(e), "InvalidCiphertextException")

    def test_decrypt_with_other_key_id(self):
        k1, k2 = self.new_key()["KeyId"], self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=k1, Plaintext=b"x")["CiphertextBlob"]
        with self.assertRaises(ClientError) as e:
            self.kms.decrypt(CiphertextBlob=ct, KeyId=k2)
        self.assertEqual(code(e), "IncorrectKeyException")

    def test_re_encrypt(self):
        k1, k2 = self.new_key()["KeyId"], self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=k1, Plaintext=b"move me", EncryptionContext={"a": "1"})["CiphertextBlob"]
        r = self.kms.re_encrypt(CiphertextBlob=ct, SourceEncryptionContext={"a": "1"}, DestinationKeyId=k2,
                                DestinationEncryptionContext={"b": "2"})
        self.assertTrue(r["SourceKeyId"].endswith(k1))
        self.assertTrue(r["KeyId"].endswith(k2))
        pt = self.kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"b": "2"})
        self.assertEqual(pt["Plaintext"], b"move me")
        with self.assertRaises(ClientError) as e:
            self.kms.re_encrypt(CiphertextBlob=ct, SourceEncryptionContext={"a": "2"}, DestinationKeyId=k2)
        self.assertEqual(code(e), "InvalidCiphertextException")

    def test_generate_data_key(self):
        kid = self.new_key()["KeyId"]
        r = self.kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext={"f": "model.onnx"})
        self.assertEqual(len(r["Plaintext"]), 32)
        back = self.kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"f": "model.onnx"})
        self.assertEqual(back["Plaintext"], r["Plaintext"])
        r = self.kms.generate_data_key(KeyId=kid, NumberOfBytes=64)
        self.assertEqual(len(r["Plaintext"]), 64)
        r = self.kms.generate_data_key(KeyId=kid, KeySpec="AES_128")
        self.assertEqual(len(r["Plaintext"]), 16)
        for kw in ({}, {"KeySpec": "AES_256", "NumberOfBytes": 32}, {"NumberOfBytes": 1025}):
            with self.assertRaises(ClientError) as e:
                self.kms.generate_data_key(KeyId=kid, **kw)
            self.assertEqual(code(e), "ValidationException", kw)

    def test_generate_data_key_without_plaintext(self):
        kid = self.new_key()["KeyId"]
        r = self.kms.generate_data_key_without_plaintext(KeyId=kid, KeySpec="AES_256")
        self.assertNotIn("Plaintext", r)
        self.assertEqual(len(self.kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"]), 32)

    def test_generate_random(self):
        a = self.kms.generate_random(NumberOfBytes=32)["Plaintext"]
        b = self.kms.generate_random(NumberOfBytes=32)["Plaintext"]
        self.assertEqual(len(a), 32)
        self.assertNotEqual(a, b)
        with self.assertRaises(ClientError) as e:
            self.kms.generate_random(NumberOfBytes=1025)
        self.assertEqual(code(e), "ValidationException")

    def test_aliases(self):
        k1, k2 = self.new_key()["KeyId"], self.new_key()["KeyId"]
        self.kms.create_alias(AliasName="alias/rot", TargetKeyId=k1)
        with self.assertRaises(ClientError) as e:
            self.kms.create_alias(AliasName="alias/rot", TargetKeyId=k2)
        self.assertEqual(code(e), "AlreadyExistsException")
        self.kms.update_alias(AliasName="alias/rot", TargetKeyId=k2)
        self.assertEqual(self.kms.describe_key(KeyId="alias/rot")["KeyMetadata"]["KeyId"], k2)
        mine = self.kms.list_aliases(KeyId=k2)["Aliases"]
        self.assertEqual([a["AliasName"] for a in mine], ["alias/rot"])
        self.assertEqual(mine[0]["AliasArn"], "arn:aws:kms:us-east-1:111122223333:alias/rot")
        self.assertEqual(self.kms.list_aliases(KeyId=k1)["Aliases"], [])
        ct = self.kms.encrypt(KeyId="alias/rot", Plaintext=b"x")["CiphertextBlob"]
        self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")
        self.kms.delete_alias(AliasName="alias/rot")
        with self.assertRaises(ClientError) as e:
            self.kms.describe_key(KeyId="alias/rot")
        self.assertEqual(code(e), "NotFoundException")
        with self.assertRaises(ClientError) as e:
            self.kms.delete_alias(AliasName="alias/rot")
        self.assertEqual(code(e), "NotFoundException")
        for bad in ("noprefix", "alias/bad name", "alias/"):
            with self.assertRaises(ClientError) as e:
                self.kms.create_alias(AliasName=bad, TargetKeyId=k1)
            self.assertEqual(code(e), "ValidationException", bad)
        with self.assertRaises(ClientError) as e:
            self.kms.create_alias(AliasName="alias/aws/s3", TargetKeyId=k1)
        self.assertEqual(code(e), "NotAuthorizedException")

    def test_alias_pagination(self):
        kid = self.new_key()["KeyId"]
        names = {"alias/page-%d" % i for i in range(5)}
        for n in names:
            self.kms.create_alias(AliasName=n, TargetKeyId=kid)
        got = [a["AliasName"] for p in self.kms.get_paginator("list_aliases").paginate(
            KeyId=kid, PaginationConfig={"PageSize": 2}) for a in p["Aliases"]]
        self.assertEqual(sorted(got), sorted(names))

    def test_policy_change_applies_on_next_decrypt(self):
        # Policies are parsed once per worker thread (cached by their text): a changed policy must still
        # decide the very next request, in both directions, on every worker.
        kid = self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"]
        allow = self.kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"]
        for _ in range(4):
            self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")
        deny = json.loads(allow)
        deny["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})
        self.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(deny))
        for _ in range(4):
            with self.assertRaises(ClientError) as e:
                self.kms.decrypt(CiphertextBlob=ct)
            self.assertEqual(code(e), "AccessDeniedException")
        self.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=allow)
        for _ in range(4):
            self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")

    def test_disable_enable(self):
        kid = self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"]
        # Used first, so that the server holds its record (key_cache.h): the next request after
        # the change must still see it.
        for _ in range(4):
            self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")
        self.kms.disable_key(KeyId=kid)
        m = self.kms.describe_key(KeyId=kid)["KeyMetadata"]
        self.assertEqual((m["KeyState"], m["Enabled"]), ("Disabled", False))
        for call in (lambda: self.kms.encrypt(KeyId=kid, Plaintext=b"x"),
                     lambda: self.kms.decrypt(CiphertextBlob=ct),
                     lambda: self.kms.generate_data_key(KeyId=kid, KeySpec="AES_256")):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual(code(e), "DisabledException")
        self.kms.enable_key(KeyId=kid)
        self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")

    def test_schedule_cancel_deletion(self):
        kid = self.new_key()["KeyId"]
        ct = self.kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"]
        for days in (6, 31):
            with self.assertRaises(ClientError) as e:
                self.kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=days)
            self.assertEqual(code(e), "ValidationException")
        r = self.kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
        self.assertEqual(r["KeyState"], "PendingDeletion")
        self.assertEqual(r["PendingWindowInDays"], 7)
        m = self.kms.describe_key(KeyId=kid)["KeyMetadata"]
        self.assertEqual(m["KeyState"], "PendingDeletion")
        self.assertIn("DeletionDate", m)
        for call in (lambda: self.kms.encrypt(KeyId=kid, Plaintext=b"x"),
                     lambda: self.kms.decrypt(CiphertextBlob=ct),
                     lambda: self.kms.enable_key(KeyId=kid),
                     lambda: self.kms.disable_key(KeyId=kid),
                     lambda: self.kms.schedule_key_deletion(KeyId=kid)):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual(code(e), "KMSInvalidStateException")
        self.kms.cancel_key_deletion(KeyId=kid)
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "Disabled")
        self.kms.enable_key(KeyId=kid)
        self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"x")
        with self.assertRaises(ClientError) as e:
            self.kms.cancel_key_deletion(KeyId=kid)
        self.assertEqual(code(e), "KMSInvalidStateException")

    def test_rotation(self):
        kid = self.new_key()["KeyId"]
        st = self.kms.get_key_rotation_status(KeyId=kid)
        self.assertFalse(st["KeyRotationEnabled"])
        old = self.kms.encrypt(KeyId=kid, Plaintext=b"v1", EncryptionContext={"a": "1"})["CiphertextBlob"]
        self.assertEqual(int.from_bytes(old[48:52], "big"), 1)  # after "us-east-1" (blob format 2)
        for days in (89, 2561):  # boto3 refuses these itself: send them raw
            status, j = self.raw(json.dumps({"KeyId": kid, "RotationPeriodInDays": days}).encode(),
                                 target="TrentService.EnableKeyRotation")
            self.assertEqual((status, j["__type"]), (400, "ValidationException"))
        # RotationPeriodInDays, NextRotationDate, RotateKeyOnDemand and ListKeyRotations are newer
        # than Debian's botocore (kms_harness.NewerKms).
        self.newer.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
        st = self.newer.get_key_rotation_status(KeyId=kid)
        self.assertTrue(st["KeyRotationEnabled"])
        self.assertEqual(st["RotationPeriodInDays"], 90)
        self.assertIn("NextRotationDate", st)
        self.assertTrue(self.kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"])  # boto3 parses it
        self.assertEqual(self.newer.list_key_rotations(KeyId=kid)["Rotations"], [])
        for _ in range(2):
            self.assertTrue(self.newer.rotate_key_on_demand(KeyId=kid)["KeyId"].endswith(kid))
        rot = self.newer.list_key_rotations(KeyId=kid)["Rotations"]
        self.assertEqual([r["RotationType"] for r in rot], ["ON_DEMAND", "ON_DEMAND"])
        new = self.kms.encrypt(KeyId=kid, Plaintext=b"v3", EncryptionContext={"a": "1"})["CiphertextBlob"]
        self.assertEqual(int.from_bytes(new[48:52], "big"), 3)
        # Old ciphertexts still decrypt after rotation; ReEncrypt moves them to the current version.
        self.assertEqual(self.kms.decrypt(CiphertextBlob=old, EncryptionContext={"a": "1"})["Plaintext"], b"v1")
        self.assertEqual(self.kms.decrypt(CiphertextBlob=new, EncryptionContext={"a": "1"})["Plaintext"], b"v3")
        re = self.kms.re_encrypt(CiphertextBlob=old, SourceEncryptionContext={"a": "1"}, DestinationKeyId=kid,
                                 DestinationEncryptionContext={"a": "1"})["CiphertextBlob"]
        self.assertEqual(int.from_bytes(re[48:52], "big"), 3)
        page = self.newer.list_key_rotations(KeyId=kid, Limit=1)
        self.assertTrue(page["Truncated"])
        page2 = self.newer.list_key_rotations(KeyId=kid, Limit=1, Marker=page["NextMarker"])
        self.assertEqual(len(page2["Rotations"]), 1)
        self.assertFalse(page2["Truncated"])
        self.kms.disable_key_rotation(KeyId=kid)
        self.assertFalse(self.kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"])
        self.kms.disable_key(KeyId=kid)
        for call in (lambda: self.kms.enable_key_rotation(KeyId=kid),
                     lambda: self.newer.rotate_key_on_demand(KeyId=kid)):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual(code(e), "DisabledException")

    def test_tags(self):
        kid = self.new_key(Tags=[{"TagKey": "owner", "TagValue": "radiology"}])["KeyId"]
        self.kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "test"},
                                               {"TagKey": "owner", "TagValue": "oncology"}])
        tags = self.kms.list_resource_tags(KeyId=kid)["Tags"]
        self.assertEqual(tags, [{"TagKey": "env", "TagValue": "test"}, {"TagKey": "owner", "TagValue": "oncology"}])
        page = self.kms.list_resource_tags(KeyId=kid, Limit=1)
        self.assertTrue(page["Truncated"])
        self.assertEqual(self.kms.list_resource_tags(KeyId=kid, Marker=page["NextMarker"])["Tags"],
                         [{"TagKey": "owner", "TagValue": "oncology"}])
        self.kms.untag_resource(KeyId=kid, TagKeys=["env"])
        self.assertEqual([t["TagKey"] for t in self.kms.list_resource_tags(KeyId=kid)["Tags"]], ["owner"])
        with self.assertRaises(ClientError) as e:
            self.kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "aws:x", "TagValue": "y"}])
        self.assertEqual(code(e), "TagException")
        with self.assertRaises(ClientError) as e:
            self.kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "t%d" % i, "TagValue": ""} for i in range(50)])
        self.assertEqual(code(e), "LimitExceededException")
        self.assertEqual(len(self.kms.list_resource_tags(KeyId=kid)["Tags"]), 1)  # all or nothing

    def test_not_found(self):
        for ident in ("00000000-0000-4000-8000-000000000000", "alias/none",
                      "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000", "not-a-key"):
            with self.assertRaises(ClientError) as e:
                self.kms.describe_key(KeyId=ident)
            self.assertEqual(code(e), "NotFoundException", ident)

    def test_key_policy_denies_and_allows(self):
        kid = self.new_key()["KeyId"]
        pol = json.loads(self.kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])
        self.assertEqual(pol["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::111122223333:root")
        self.assertEqual(self.kms.list_key_policies(KeyId=kid)["PolicyNames"], ["default"])
        deny = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:EncryptionContext:tenant": "h1"}}}]}
        self.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(deny))
        ok = self.kms.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"tenant": "h1"})["CiphertextBlob"]
        no = self.kms.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"tenant": "h2"})["CiphertextBlob"]
        self.assertEqual(self.kms.decrypt(CiphertextBlob=ok, EncryptionContext={"tenant": "h1"})["Plaintext"], b"x")
        with self.assertRaises(ClientError) as e:
            self.kms.decrypt(CiphertextBlob=no, EncryptionContext={"tenant": "h2"})
        self.assertEqual(code(e), "AccessDeniedException")
        # A policy for another principal only: the dev user is not allowed.
        other = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/someone"}, "Action": "kms:*",
             "Resource": "*"}]}
        # It locks dev out of PutKeyPolicy too, so, as in AWS, it takes BypassPolicyLockoutSafetyCheck.
        k2 = self.new_key(Policy=json.dumps(other), BypassPolicyLockoutSafetyCheck=True)["KeyId"]
        with self.assertRaises(ClientError) as e:
            self.kms.encrypt(KeyId=k2, Plaintext=b"x")
        self.assertEqual(code(e), "AccessDeniedException")

    def test_malformed_policy(self):
        kid = self.new_key()["KeyId"]
        bad = ["not json", "{}", json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*",
                                                           "Resource": "*"}]}),
               json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                          "Condition": {"StringEqualsish": {"a": "b"}}}]})]
        for p in bad:
            with self.assertRaises(ClientError) as e:
                self.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=p)
            self.assertEqual(code(e), "MalformedPolicyDocumentException", p)
            with self.assertRaises(ClientError) as e:
                self.kms.create_key(Policy=p)
            self.assertEqual(code(e), "MalformedPolicyDocumentException", p)

    def test_validation(self):
        kid = self.new_key()["KeyId"]
        # Plaintext is 1..4096 bytes (PlaintextType): exactly 4096 was refused (docs/security.md, finding 14).
        for n in (1, 4095, 4096):
            pt = bytes(range(256)) * (n // 256) + b"p" * (n % 256)
            ct = self.kms.encrypt(KeyId=kid, Plaintext=pt)["CiphertextBlob"]
            self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], pt, n)
        with self.assertRaises(ClientError) as e:
            self.kms.encrypt(KeyId=kid, Plaintext=b"x" * 4097)
        self.assertEqual(code(e), "ValidationException")
        self.assertEqual(e.exception.response["Error"]["Message"],
                         "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must "
                         "have length less than or equal to 4096")
        with self.assertRaises(ClientError) as e:
            self.kms.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")  # in the model, not built here
        self.assertEqual(code(e), "UnsupportedOperationException")
        self.assertIn("China Regions only", e.exception.response["Error"]["Message"])

    # --- authentication and wire errors -----------------------------------------

    def test_wrong_secret(self):
        bad = kms_harness.boto_client(self.srv.endpoint, secret="nope")
        with self.assertRaises(ClientError) as e:
            bad.list_keys()
        self.assertEqual(code(e), "InvalidSignatureException")

    def test_unknown_access_key(self):
        bad = kms_harness.boto_client(self.srv.endpoint, key="AKIDUNKNOWN")
        with self.assertRaises(ClientError) as e:
            bad.list_keys()
        self.assertEqual(code(e), "UnrecognizedClientException")

    def test_wrong_region(self):
        """Every AWS region is answered (its own keys: none yet in eu-west-1); a name that is no AWS
        region's is refused as AWS refuses a wrong one (tests/integration/kms_regions.py has more)."""
        self.assertEqual(kms_harness.boto_client(self.srv.endpoint, region="eu-west-1").list_keys()["Keys"], [])
        bad = kms_harness.boto_client(self.srv.endpoint, region="moon-base-1")
        with self.assertRaises(ClientError) as e:
            bad.list_keys()
        self.assertEqual(code(e), "InvalidSignatureException")
        self.assertIn("Credential should be scoped to a valid region, not 'moon-base-1'.", str(e.exception))

    def test_expired_signature(self):
        old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
        with kms_harness.frozen_clock(old):
            with self.assertRaises(ClientError) as e:
                self.kms.list_keys()
        self.assertEqual(code(e), "InvalidSignatureException")
        self.assertIn("Signature expired", str(e.exception))

    def raw(self, body, target="TrentService.ListKeys", sign=True, headers=None):
        h = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        h.update(headers or {})
        req = AWSRequest(method="POST", url=self.srv.endpoint + "/", data=body, headers=h)
        if sign:
            SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        try:
            conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def test_malformed_json(self):
        for body in (b"{not json", b"[1,2]", b"", b'{"a":1,"a":2}'):
            status, j = self.raw(body)
            self.assertEqual(status, 400, body)
            self.assertEqual(j["__type"], "SerializationException", body)

    def test_server_side_validation(self):
        # Values boto3 would refuse to send: the server checks them too.
        for target, body in (("GenerateRandom", {"NumberOfBytes": 0}), ("GenerateRandom", {}),
                             ("GenerateDataKey", {"KeyId": "alias/x", "NumberOfBytes": -1}),
                             ("ScheduleKeyDeletion", {"KeyId": "alias/x", "PendingWindowInDays": 100}),
                             ("Encrypt", {"KeyId": "alias/x"}), ("ListKeys", {"Limit": 0})):
            status, j = self.raw(json.dumps(body).encode(), target="TrentService." + target)
            self.assertEqual((status, j["__type"]), (400, "ValidationException"), (target, body))

    def test_wrong_member_type(self):
        status, j = self.raw(json.dumps({"KeyId": 5}).encode(), target="TrentService.DescribeKey")
        self.assertEqual((status, j["__type"]), (400, "SerializationException"))

    def test_unknown_operation(self):
        status, j = self.raw(b"{}", target="TrentService.MakeCoffee")
        self.assertEqual((status, j["__type"]), (400, "UnknownOperationException"))
        status, j = self.raw(b"{}", target="OtherService.ListKeys")
        self.assertEqual((status, j["__type"]), (400, "UnknownOperationException"))

    def test_unsigned(self):
        status, j = self.raw(b"{}", sign=False)
        self.assertEqual(j["__type"], "MissingAuthenticationTokenException")
        self.assertEqual(status, 403)

    def test_body_signed_then_altered(self):
        body = b'{"Limit": 5}'
        req = AWSRequest(method="POST", url=self.srv.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "TrentService.ListKeys"})
        SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        conn.request("POST", "/", body=b'{"Limit": 6}', headers=dict(req.headers.items()))
        r = conn.getresponse()
        j = json.loads(r.read())
        conn.close()
        self.assertEqual((r.status, j["__type"]), (400, "InvalidSignatureException"))

    def test_body_too_large_then_still_serving(self):
        body = b'{"Pad": "' + b"a" * (300 << 10) + b'"}'
        status, _ = self.raw(body)
        self.assertEqual(status, 413)
        self.assertIn("Keys", self.kms.list_keys())

    def test_audit_log_has_no_secrets(self):
        kid = self.new_key()["KeyId"]
        secret = b"PLAINTEXT-CANARY-0123456789"
        ct = self.kms.encrypt(KeyId=kid, Plaintext=secret, EncryptionContext={"ctxkey": "CTXVALUE-CANARY"})
        self.kms.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"ctxkey": "CTXVALUE-CANARY"})
        log = open(os.path.join(self.srv.data_dir, "audit.log"), "rb").read()
        self.assertIn(b'"operation":"Decrypt"', log)
        self.assertIn(b'"ctxkey"', log)
        for canary in (secret, base64.b64encode(secret), b"CTXVALUE-CANARY"):
            self.assertNotIn(canary, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
