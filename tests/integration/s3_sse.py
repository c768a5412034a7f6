#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""SSE-KMS through boto3: objects sealed under a data key of a KMS key of the same server (the
encryption context S3 uses), read back whole and by range, multipart, the bucket's default
encryption, the caller's key access, and no plaintext in the data directory."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import s3_helpers as s3_harness  # noqa: E402
from s3_helpers import error  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

OTHER = kms_harness.principal("AKIAOTHER00000000000", "other-secret", "arn:aws:iam::444455556666:user/other")
CANARY = b"SSE-PLAINTEXT-CANARY-7f3a9c-"


def grep_tree(root, needle):
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                if needle in fh.read():
                    hits.append(os.path.join(dirpath, f))
    return hits


class S3Sse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server(principals=[OTHER])
        cls.srv = cls.cm.__enter__()
        cls.s3 = s3_harness.s3_client(cls.srv.endpoint)
        cls.kms = s3_harness.kms_client(cls.srv.endpoint)
        cls.key = cls.kms.create_key(Description="s3 objects")["KeyMetadata"]
        cls.s3.create_bucket(Bucket="sealed")

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def test_put_get_range_and_no_plaintext_on_disk(self):
        body = (CANARY * 9000)[:200000]  # several 64 KiB chunks and a partial one
        r = self.s3.put_object(Bucket="sealed", Key="secret/data", Body=body, ServerSideEncryption="aws:kms",
                               SSEKMSKeyId=self.key["KeyId"])
        self.assertEqual((r["ServerSideEncryption"], r["SSEKMSKeyId"]), ("aws:kms", self.key["Arn"]))
        g = self.s3.get_object(Bucket="sealed", Key="secret/data")
        self.assertEqual(g["Body"].read(), body)
        self.assertEqual((g["ServerSideEncryption"], g["SSEKMSKeyId"], g["ContentLength"]),
                         ("aws:kms", self.key["Arn"], len(body)))
        for a, b in ((0, 0), (65530, 65545), (131072, 199999), (199990, 199999)):
            g = self.s3.get_object(Bucket="sealed", Key="secret/data", Range="bytes=%d-%d" % (a, b))
            self.assertEqual(g["Body"].read(), body[a:b + 1], (a, b))
        h = self.s3.head_object(Bucket="sealed", Key="secret/data")
        self.assertEqual((h["ContentLength"], h["ServerSideEncryption"]), (len(body), "aws:kms"))
        # The same bytes stored without SSE are found by the same search: the search can fail.
        self.s3.put_object(Bucket="sealed", Key="plain", Body=b"PLAIN-CONTROL-" + CANARY)
        self.assertTrue(grep_tree(self.srv.data_dir, b"PLAIN-CONTROL-"))
        self.s3.delete_object(Bucket="sealed", Key="plain")
        self.assertEqual(grep_tree(self.srv.data_dir, CANARY), [])
        # Each KMS call S3 made is in the audit log, with the context key S3 uses.
        with open(os.path.join(self.srv.data_dir, "audit.log")) as f:
            log = f.read()
        self.assertIn('"GenerateDataKey"', log)
        self.assertIn("aws:s3:arn", log)

    def test_copy_and_multipart_sealed(self):
        body = os.urandom(1000) + CANARY + os.urandom(1000)
        self.s3.put_object(Bucket="sealed", Key="src", Body=body, ServerSideEncryption="aws:kms",
                           SSEKMSKeyId=self.key["Arn"])
        self.s3.copy_object(Bucket="sealed", Key="copy", CopySource="sealed/src")
        g = self.s3.get_object(Bucket="sealed", Key="copy")
        self.assertEqual(g["Body"].read(), body)
        self.assertNotIn("ServerSideEncryption", g)  # the copy asked for none
        self.s3.copy_object(Bucket="sealed", Key="src", CopySource="sealed/src", ServerSideEncryption="aws:kms",
                            SSEKMSKeyId=self.key["KeyId"])
        self.s3.delete_object(Bucket="sealed", Key="copy")
        # A part that is not a multiple of the chunk size, then the rest.
        p1 = (CANARY * 200000)[:(5 << 20) + 12345]
        p2 = CANARY * 10
        uid = self.s3.create_multipart_upload(Bucket="sealed", Key="mp", ServerSideEncryption="aws:kms",
                                              SSEKMSKeyId=self.key["KeyId"])["UploadId"]
        e1 = self.s3.upload_part(Bucket="sealed", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = self.s3.upload_part(Bucket="sealed", Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        self.assertEqual(grep_tree(self.srv.data_dir, CANARY), [])
        r = self.s3.complete_multipart_upload(Bucket="sealed", Key="mp", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        self.assertTrue(r["ETag"].endswith('-2"'))
        self.assertEqual(self.s3.get_object(Bucket="sealed", Key="mp")["Body"].read(), p1 + p2)
        a = len(p1) - 100
        self.assertEqual(self.s3.get_object(Bucket="sealed", Key="mp", Range="bytes=%d-" % a)["Body"].read(),
                         (p1 + p2)[a:])
        self.assertEqual(grep_tree(self.srv.data_dir, CANARY), [])

    def test_bucket_default_encryption(self):
        self.s3.create_bucket(Bucket="default-sealed")
        with self.assertRaises(ClientError) as e:
            self.s3.get_bucket_encryption(Bucket="default-sealed")
        self.assertEqual(error(e), ("ServerSideEncryptionConfigurationNotFoundError",
                                    "The server side encryption configuration was not found"))
        self.s3.put_bucket_encryption(Bucket="default-sealed", ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.key["Arn"]}}]})
        rule = self.s3.get_bucket_encryption(Bucket="default-sealed")["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"],
                         {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.key["Arn"]})
        r = self.s3.put_object(Bucket="default-sealed", Key="d", Body=CANARY)
        self.assertEqual(r["ServerSideEncryption"], "aws:kms")
        self.assertEqual(self.s3.get_object(Bucket="default-sealed", Key="d")["Body"].read(), CANARY)
        with self.assertRaises(ClientError) as e:
            self.s3.put_bucket_encryption(Bucket="default-sealed", ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        self.assertEqual(error(e)[0], "NotImplemented")
        self.assertIn("SSE-S3 (AES256) is not implemented", error(e)[1])
        self.s3.delete_bucket_encryption(Bucket="default-sealed")
        self.assertNotIn("ServerSideEncryption", self.s3.put_object(Bucket="default-sealed", Key="p", Body=b"p"))

    def test_refusals(self):
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="sealed", Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                               SSEKMSKeyId="0000dead-0000-4000-8000-000000000000")
        self.assertEqual(error(e)[0], "KMS.NotFoundException")
        self.assertIn("GenerateDataKey", error(e)[1])
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="sealed", Key="x", Body=b"x", ServerSideEncryption="aws:kms")
        self.assertEqual(error(e)[0], "KMS.NotFoundException")
        self.assertIn("alias/aws/s3", error(e)[1])
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="sealed", Key="x", Body=b"x", ServerSideEncryption="AES256")
        self.assertEqual(error(e)[0], "NotImplemented")
        self.assertIn("SSE-S3", error(e)[1])
        # Another account the bucket policy lets read, but whose key access is none: kms:Decrypt refused.
        self.s3.put_object(Bucket="sealed", Key="shared", Body=CANARY, ServerSideEncryption="aws:kms",
                           SSEKMSKeyId=self.key["KeyId"])
        import json
        self.s3.put_bucket_policy(Bucket="sealed", Policy=json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": OTHER["arn"]}, "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::sealed/shared"}]}))
        other = s3_harness.s3_client(self.srv.endpoint, key=OTHER["access_key_id"], secret=OTHER["secret"])
        with self.assertRaises(ClientError) as e:
            other.get_object(Bucket="sealed", Key="shared")
        self.assertEqual(error(e)[0], "AccessDenied")
        self.assertIn("Decrypt", error(e)[1])
        self.s3.delete_bucket_policy(Bucket="sealed")
        # The object on disk moved under another key's name does not decrypt (its context names the key).
        self.s3.put_object(Bucket="sealed", Key="stolen", Body=b"y")
        odir = os.path.join(self.srv.data_dir, "s3", "sealed", "o")
        import hashlib
        src = os.path.join(odir, hashlib.sha256(b"shared").hexdigest())
        dst = os.path.join(odir, hashlib.sha256(b"stolen").hexdigest())
        with open(src, "rb") as f:
            raw = f.read()
        with open(dst, "wb") as f:
            f.write(raw.replace(b'"key":"shared"', b'"key":"stolen"'))
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="sealed", Key="stolen")
        self.assertEqual(error(e)[0], "KMS.InvalidCiphertextException")


if __name__ == "__main__":
    unittest.main(verbosity=2)
