#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms's S3 driven by boto3, unmodified but for endpoint_url: every operation, and the
refusals with S3's error code and message (docs/s3.md)."""
import base64
import datetime
import hashlib
import json
import os
import re
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import s3_helpers as s3_harness  # noqa: E402
from s3_helpers import error  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

OTHER = kms_harness.principal("AKIAOTHER00000000000", "other-secret", "arn:aws:iam::444455556666:user/other")
MATE = kms_harness.principal("AKIAMATE000000000000", "mate-secret", "arn:aws:iam::111122223333:user/mate")


def md5(b):
    return hashlib.md5(b).hexdigest()


class S3Boto3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server(principals=[OTHER, MATE])
        cls.srv = cls.cm.__enter__()
        cls.s3 = s3_harness.s3_client(cls.srv.endpoint)
        cls.other = s3_harness.s3_client(cls.srv.endpoint, key=OTHER["access_key_id"], secret=OTHER["secret"])
        cls.anon_url = cls.srv.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def bucket(self, name):
        self.s3.create_bucket(Bucket=name)
        return name

    def refused(self, call, code, message, **kw):
        with self.assertRaises(ClientError) as e:
            call(**kw)
        got = error(e)
        self.assertEqual(got[0], code, got)
        if message is not None:
            self.assertIn(message, got[1] or "", got)
        return e.exception.response

    # --- buckets -----------------------------------------------------------------------------------

    def test_bucket_lifecycle(self):
        b = self.bucket("life-cycle")
        self.assertIn(b, [x["Name"] for x in self.s3.list_buckets()["Buckets"]])
        h = self.s3.head_bucket(Bucket=b)
        self.assertEqual(h["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"], "us-east-1")
        self.assertIsNone(self.s3.get_bucket_location(Bucket=b)["LocationConstraint"])
        # The owner creating it again in us-east-1: 200, as S3 answers there.
        self.s3.create_bucket(Bucket=b)
        self.refused(self.other.create_bucket, "BucketAlreadyExists", "The requested bucket name is not available",
                     Bucket=b)
        self.s3.put_object(Bucket=b, Key="k", Body=b"x")
        self.refused(self.s3.delete_bucket, "BucketNotEmpty", "The bucket you tried to delete is not empty", Bucket=b)
        self.s3.delete_object(Bucket=b, Key="k")
        self.s3.delete_bucket(Bucket=b)
        self.assertNotIn(b, [x["Name"] for x in self.s3.list_buckets()["Buckets"]])
        self.refused(self.s3.head_bucket, "404", None, Bucket=b)
        self.refused(self.s3.delete_bucket, "NoSuchBucket", "The specified bucket does not exist", Bucket=b)
        self.refused(self.s3.put_object, "NoSuchBucket", "The specified bucket does not exist", Bucket=b, Key="k",
                     Body=b"x")

    def test_bucket_names_and_regions(self):
        for bad in ("ab", "Upper-case", "has_underscore", "-dash", "a..b", "192.168.1.1", "x" * 64):
            self.refused(self.s3.create_bucket, "InvalidBucketName", "The specified bucket is not valid.",
                         Bucket=bad)
        eu = s3_harness.s3_client(self.srv.endpoint, region="eu-west-1")
        self.refused(eu.create_bucket, "IllegalLocationConstraintException",
                     "The unspecified location constraint is incompatible", Bucket="no-constraint")
        self.refused(self.s3.create_bucket, "IllegalLocationConstraintException",
                     "The eu-west-1 location constraint is incompatible", Bucket="wrong-endpoint",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        eu.create_bucket(Bucket="in-ireland", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.assertEqual(eu.get_bucket_location(Bucket="in-ireland")["LocationConstraint"], "eu-west-1")
        self.refused(eu.create_bucket, "BucketAlreadyOwnedByYou", "you already own it", Bucket="in-ireland",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        # Buckets are listed to their owner's account only.
        self.assertNotIn("in-ireland", [x["Name"] for x in self.other.list_buckets()["Buckets"]])

    # --- objects -----------------------------------------------------------------------------------

    def test_put_get_head_metadata_etag(self):
        b = self.bucket("objects")
        body = b"hello, object\n" * 100
        r = self.s3.put_object(Bucket=b, Key="dir/obj.txt", Body=body, ContentType="text/plain",
                               Metadata={"Owner": "alice", "purpose": "test"}, ContentDisposition="inline")
        self.assertEqual(r["ETag"], '"%s"' % md5(body))
        g = self.s3.get_object(Bucket=b, Key="dir/obj.txt")
        self.assertEqual(g["Body"].read(), body)
        self.assertEqual(g["ContentType"], "text/plain")
        self.assertEqual(g["Metadata"], {"owner": "alice", "purpose": "test"})
        self.assertEqual(g["ContentDisposition"], "inline")
        self.assertEqual(g["ETag"], '"%s"' % md5(body))
        self.assertEqual(g["ContentLength"], len(body))
        h = self.s3.head_object(Bucket=b, Key="dir/obj.txt")
        self.assertEqual((h["ContentLength"], h["ETag"], h["Metadata"]["owner"]), (len(body), r["ETag"], "alice"))
        # No Content-Type given: S3's default.
        self.s3.put_object(Bucket=b, Key="untyped", Body=b"")
        self.assertEqual(self.s3.head_object(Bucket=b, Key="untyped")["ContentType"], "binary/octet-stream")
        self.assertEqual(self.s3.get_object(Bucket=b, Key="untyped")["Body"].read(), b"")
        resp = self.refused(self.s3.get_object, "NoSuchKey", "The specified key does not exist.", Bucket=b,
                            Key="missing/key")
        self.assertEqual(resp["Error"]["Key"], "missing/key")
        self.assertRegex(resp["ResponseMetadata"]["RequestId"], "^[0-9a-f-]{36}$")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 404)
        self.refused(self.s3.head_object, "404", None, Bucket=b, Key="missing/key")
        self.refused(self.s3.put_object, "MetadataTooLarge", "Your metadata headers exceed", Bucket=b, Key="m",
                     Body=b"x", Metadata={"big": "v" * 2100})
        self.refused(self.s3.put_object, "BadDigest", "The Content-MD5 you specified did not match", Bucket=b,
                     Key="m", Body=b"x", ContentMD5=base64.b64encode(hashlib.md5(b"y").digest()).decode())
        self.assertEqual(self.s3.put_object(Bucket=b, Key="m", Body=b"x",
                                            ContentMD5=base64.b64encode(hashlib.md5(b"x").digest()).decode())["ETag"],
                         '"%s"' % md5(b"x"))
        self.refused(self.s3.put_object, "KeyTooLongError", "Your key is too long", Bucket=b, Key="k" * 1025,
                     Body=b"x")

    def test_ranges(self):
        b = self.bucket("ranges")
        body = bytes(range(256)) * 4
        self.s3.put_object(Bucket=b, Key="r", Body=body)
        for rng, want, cr in (("bytes=1-2", body[1:3], "bytes 1-2/1024"), ("bytes=1000-", body[1000:], "bytes 1000-1023/1024"),
                              ("bytes=-5", body[-5:], "bytes 1019-1023/1024"), ("bytes=1020-5000", body[1020:],
                                                                                "bytes 1020-1023/1024")):
            g = self.s3.get_object(Bucket=b, Key="r", Range=rng)
            self.assertEqual((g["ResponseMetadata"]["HTTPStatusCode"], g["Body"].read(), g["ContentRange"]),
                             (206, want, cr), rng)
        resp = self.refused(self.s3.get_object, "InvalidRange", "The requested range is not satisfiable", Bucket=b,
                            Key="r", Range="bytes=1024-")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 416)
        self.assertEqual(resp["ResponseMetadata"]["HTTPHeaders"]["content-range"], "bytes */1024")
        # Several ranges: S3 answers the whole object.
        g = self.s3.get_object(Bucket=b, Key="r", Range="bytes=0-1,5-6")
        self.assertEqual((g["ResponseMetadata"]["HTTPStatusCode"], len(g["Body"].read())), (200, 1024))

    def test_conditional_requests(self):
        b = self.bucket("conditions")
        etag = self.s3.put_object(Bucket=b, Key="c", Body=b"conditional")["ETag"]
        past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        self.assertEqual(self.s3.get_object(Bucket=b, Key="c", IfMatch=etag)["Body"].read(), b"conditional")
        self.refused(self.s3.get_object, "PreconditionFailed", "At least one of the pre-conditions you specified did "
                     "not hold", Bucket=b, Key="c", IfMatch='"0123"')
        self.refused(self.s3.get_object, "PreconditionFailed", "At least one of the pre-conditions", Bucket=b,
                     Key="c", IfUnmodifiedSince=past)
        for kw in ({"IfNoneMatch": etag}, {"IfModifiedSince": future}):
            resp = self.refused(self.s3.get_object, "304", None, Bucket=b, Key="c", **kw)
            self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 304)
        self.assertEqual(self.s3.get_object(Bucket=b, Key="c", IfNoneMatch='"other"')["Body"].read(), b"conditional")
        self.assertEqual(self.s3.get_object(Bucket=b, Key="c", IfModifiedSince=past)["Body"].read(), b"conditional")
        # If-Match holds, so If-Unmodified-Since is not looked at (RFC 7232 section 6).
        self.assertEqual(self.s3.get_object(Bucket=b, Key="c", IfMatch=etag, IfUnmodifiedSince=past)["Body"].read(),
                         b"conditional")
        self.refused(self.s3.head_object, "412", None, Bucket=b, Key="c", IfMatch='"nope"')

    def test_delete_and_delete_objects(self):
        b = self.bucket("deletes")
        for k in ("a", "b", "c/d"):
            self.s3.put_object(Bucket=b, Key=k, Body=k.encode())
        r = self.s3.delete_object(Bucket=b, Key="a")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(self.s3.delete_object(Bucket=b, Key="never")["ResponseMetadata"]["HTTPStatusCode"], 204)
        r = self.s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "b"}, {"Key": "c/d"}, {"Key": "none"}]})
        self.assertEqual(sorted(d["Key"] for d in r["Deleted"]), ["b", "c/d", "none"])
        self.assertEqual(self.s3.list_objects_v2(Bucket=b)["KeyCount"], 0)
        self.s3.put_object(Bucket=b, Key="q", Body=b"q")
        r = self.s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
        self.assertNotIn("Deleted", r)
        self.assertNotIn("Errors", r)

    def test_copy_object(self):
        b = self.bucket("copies")
        self.s3.put_object(Bucket=b, Key="src", Body=b"copy me", ContentType="text/x-src", Metadata={"m": "1"})
        r = self.s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"})
        self.assertEqual(r["CopyObjectResult"]["ETag"], '"%s"' % md5(b"copy me"))
        g = self.s3.get_object(Bucket=b, Key="dst")
        self.assertEqual((g["Body"].read(), g["ContentType"], g["Metadata"]), (b"copy me", "text/x-src", {"m": "1"}))
        self.s3.copy_object(Bucket=b, Key="dst2", CopySource=b + "/src", MetadataDirective="REPLACE",
                            ContentType="text/new", Metadata={"n": "2"})
        g = self.s3.get_object(Bucket=b, Key="dst2")
        self.assertEqual((g["ContentType"], g["Metadata"]), ("text/new", {"n": "2"}))
        self.refused(self.s3.copy_object, "InvalidRequest", "This copy request is illegal because it is trying to "
                     "copy an object to itself", Bucket=b, Key="src", CopySource={"Bucket": b, "Key": "src"})
        self.refused(self.s3.copy_object, "NoSuchKey", "The specified key does not exist.", Bucket=b, Key="x",
                     CopySource={"Bucket": b, "Key": "absent"})
        # Another account may not read the source.
        self.other.create_bucket(Bucket="others-bucket")
        self.refused(self.other.copy_object, "AccessDenied", "Access Denied", Bucket="others-bucket", Key="stolen",
                     CopySource={"Bucket": b, "Key": "src"})

    def test_listing(self):
        b = self.bucket("listing")
        keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "d", "e+f g"]
        for k in keys:
            self.s3.put_object(Bucket=b, Key=k, Body=k.encode())
        r = self.s3.list_objects_v2(Bucket=b)
        self.assertEqual([c["Key"] for c in r["Contents"]], sorted(keys))
        self.assertEqual((r["KeyCount"], r["IsTruncated"]), (7, False))
        self.assertEqual(r["Contents"][0]["Size"], 3)
        r = self.s3.list_objects_v2(Bucket=b, Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["a/", "b/"])
        self.assertEqual([c["Key"] for c in r["Contents"]], ["c", "d", "e+f g"])
        self.assertEqual(r["KeyCount"], 5)
        r = self.s3.list_objects_v2(Bucket=b, Prefix="a/", Delimiter="/")
        self.assertEqual(([c["Key"] for c in r["Contents"]], [p["Prefix"] for p in r["CommonPrefixes"]]),
                         (["a/1", "a/2"], ["a/b/"]))
        # Pages of 2, with continuation tokens, prefixes counted like keys.
        seen, token = [], None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.s3.list_objects_v2(Bucket=b, MaxKeys=2, Delimiter="/", **kw)
            self.assertLessEqual(r["KeyCount"], 2)
            seen += [p["Prefix"] for p in r.get("CommonPrefixes", [])] + [c["Key"] for c in r.get("Contents", [])]
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        self.assertEqual(sorted(seen), ["a/", "b/", "c", "d", "e+f g"])
        r = self.s3.list_objects_v2(Bucket=b, StartAfter="b/4")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["c", "d", "e+f g"])
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={"PageSize": 3})
        self.assertEqual([c["Key"] for p in pages for c in p["Contents"]], sorted(keys))
        # ListObjects (v1), with markers, as s3cmd lists.
        r = self.s3.list_objects(Bucket=b, MaxKeys=3)
        self.assertEqual(([c["Key"] for c in r["Contents"]], r["IsTruncated"], r["NextMarker"]),
                         (["a/1", "a/2", "a/b/3"], True, "a/b/3"))
        r = self.s3.list_objects(Bucket=b, Marker="a/b/3")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["b/4", "c", "d", "e+f g"])
        self.assertEqual(r["Contents"][0]["Owner"]["ID"], s3_harness.ACCOUNT)
        self.refused(self.s3.list_objects_v2, "InvalidArgument", "The continuation token provided is incorrect",
                     Bucket=b, ContinuationToken="!!!")
        self.refused(self.s3.list_objects_v2, "NoSuchBucket", "The specified bucket does not exist",
                     Bucket="not-there")

    def test_keys_stay_inside_the_bucket(self):
        b = self.bucket("layout")
        keys = ["../../escape", "/leading/slash", "a/../../b", "./dot", "üñï/çødé", "x" * 1024, "a" + "/" * 20]
        for k in keys:
            self.s3.put_object(Bucket=b, Key=k, Body=k.encode())
        for k in keys:
            self.assertEqual(self.s3.get_object(Bucket=b, Key=k)["Body"].read(), k.encode())
        self.assertEqual(sorted(c["Key"] for c in self.s3.list_objects_v2(Bucket=b)["Contents"]), sorted(keys))
        root = os.path.join(self.srv.data_dir, "s3")
        odir = os.path.join(root, b, "o")
        names = os.listdir(odir)
        self.assertEqual(len(names), len(keys))
        for n in names:
            self.assertRegex(n, r"^[0-9a-f]{64}$")
        # Nothing anywhere but the buckets' own directories.
        for dirpath, _dirs, _files in os.walk(self.srv.data_dir):
            self.assertTrue(dirpath.startswith(self.srv.data_dir), dirpath)
        self.assertFalse(os.path.exists(os.path.join(self.srv.data_dir, "escape")))

    # --- multipart ---------------------------------------------------------------------------------

    def test_multipart(self):
        b = self.bucket("multipart")
        p1, p2 = os.urandom(5 << 20), b"tail"
        up = self.s3.create_multipart_upload(Bucket=b, Key="big", ContentType="application/x-big",
                                             Metadata={"kind": "mp"})
        uid = up["UploadId"]
        e1 = self.s3.upload_part(Bucket=b, Key="big", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = self.s3.upload_part(Bucket=b, Key="big", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        self.assertEqual((e1, e2), ('"%s"' % md5(p1), '"%s"' % md5(p2)))
        parts = self.s3.list_parts(Bucket=b, Key="big", UploadId=uid)["Parts"]
        self.assertEqual([(p["PartNumber"], p["ETag"], p["Size"]) for p in parts],
                         [(1, e1, len(p1)), (2, e2, len(p2))])
        ups = self.s3.list_multipart_uploads(Bucket=b)["Uploads"]
        self.assertEqual([(u["Key"], u["UploadId"]) for u in ups], [("big", uid)])
        self.refused(self.s3.complete_multipart_upload, "InvalidPartOrder", "The list of parts was not in ascending "
                     "order", Bucket=b, Key="big", UploadId=uid,
                     MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
        self.refused(self.s3.complete_multipart_upload, "InvalidPart", "One or more of the specified parts could not "
                     "be found", Bucket=b, Key="big", UploadId=uid,
                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}]})
        r = self.s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        # S3's multipart ETag: MD5 of the parts' binary MD5s, "-", the number of parts.
        want = '"%s-2"' % hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
        self.assertEqual(r["ETag"], want)
        g = self.s3.get_object(Bucket=b, Key="big")
        self.assertEqual((g["Body"].read() == p1 + p2, g["ETag"], g["ContentType"], g["Metadata"]),
                         (True, want, "application/x-big", {"kind": "mp"}))
        self.assertEqual(self.s3.get_object(Bucket=b, Key="big", Range="bytes=%d-" % (len(p1) - 2))["Body"].read(),
                         p1[-2:] + p2)
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=b).get("Uploads", []), [])
        self.refused(self.s3.upload_part, "NoSuchUpload", "The specified upload does not exist", Bucket=b, Key="big",
                     UploadId=uid, PartNumber=3, Body=b"late")
        # Parts under 5 MiB but the last: EntityTooSmall; abort removes the upload.
        uid = self.s3.create_multipart_upload(Bucket=b, Key="small")["UploadId"]
        es = [self.s3.upload_part(Bucket=b, Key="small", UploadId=uid, PartNumber=n, Body=b"s")["ETag"]
              for n in (1, 2)]
        self.refused(self.s3.complete_multipart_upload, "EntityTooSmall", "Your proposed upload is smaller than the "
                     "minimum allowed object size", Bucket=b, Key="small", UploadId=uid,
                     MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), es)]})
        self.refused(self.s3.upload_part, "InvalidArgument", "Part number must be an integer between 1 and 10000",
                     Bucket=b, Key="small", UploadId=uid, PartNumber=10001, Body=b"x")
        self.assertEqual(self.s3.abort_multipart_upload(Bucket=b, Key="small", UploadId=uid)
                         ["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.refused(self.s3.abort_multipart_upload, "NoSuchUpload", "The specified upload does not exist", Bucket=b,
                     Key="small", UploadId=uid)
        self.refused(self.s3.list_parts, "NoSuchUpload", "The specified upload does not exist", Bucket=b,
                     Key="small", UploadId="../../etc")
        self.assertFalse(self.s3.list_objects_v2(Bucket=b, Prefix="small").get("Contents"))

    # --- authorization -----------------------------------------------------------------------------

    def anonymous(self, method, path, body=b""):
        req = urllib.request.Request(self.srv.endpoint + path, data=body if method == "PUT" else None, method=method)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_bucket_policy_and_anonymous_access(self):
        b = self.bucket("policies")
        self.s3.put_object(Bucket=b, Key="pub/readme", Body=b"public words")
        self.s3.put_object(Bucket=b, Key="private", Body=b"private words")
        status, body = self.anonymous("GET", "/%s/pub/readme" % b)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>AccessDenied</Code><Message>Access Denied</Message>", body)
        self.refused(self.other.get_object, "AccessDenied", "Access Denied", Bucket=b, Key="pub/readme")
        # The same account's other principals: the owner's account is allowed (until identity policies).
        mate = s3_harness.s3_client(self.srv.endpoint, key=MATE["access_key_id"], secret=MATE["secret"])
        self.assertEqual(mate.get_object(Bucket=b, Key="private")["Body"].read(), b"private words")
        self.refused(self.s3.get_bucket_policy, "NoSuchBucketPolicy", "The bucket policy does not exist", Bucket=b)
        self.refused(self.s3.put_bucket_policy, "MalformedPolicy", "not JSON", Bucket=b, Policy="{not json")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::%s/pub/*" % b},
            {"Sid": "OtherAccount", "Effect": "Allow", "Principal": {"AWS": OTHER["arn"]},
             "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": ["arn:aws:s3:::%s" % b, "arn:aws:s3:::%s/*" % b],
             "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
            {"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
             "Resource": "arn:aws:s3:::%s/private" % b}]}
        self.s3.put_bucket_policy(Bucket=b, Policy=json.dumps(policy))
        self.assertEqual(json.loads(self.s3.get_bucket_policy(Bucket=b)["Policy"]), policy)
        self.assertEqual(self.anonymous("GET", "/%s/pub/readme" % b), (200, b"public words"))
        self.assertEqual(self.anonymous("GET", "/%s/private" % b)[0], 403)
        self.assertEqual(self.anonymous("PUT", "/%s/pub/new" % b, b"x")[0], 403)
        self.assertEqual(self.other.get_object(Bucket=b, Key="private")["Body"].read(), b"private words")
        self.assertEqual(self.other.list_objects_v2(Bucket=b)["KeyCount"], 2)
        self.refused(self.other.put_object, "AccessDenied", "Access Denied", Bucket=b, Key="x", Body=b"x")
        # An explicit Deny binds the owner too.
        self.refused(self.s3.delete_object, "AccessDenied", "Access Denied", Bucket=b, Key="private")
        self.refused(self.other.put_bucket_policy, "AccessDenied", "Access Denied", Bucket=b, Policy=json.dumps(policy))
        self.s3.delete_bucket_policy(Bucket=b)
        self.assertEqual(self.anonymous("GET", "/%s/pub/readme" % b)[0], 403)
        self.s3.delete_object(Bucket=b, Key="private")

    def test_iam_user_needs_an_identity_policy(self):
        """Within the bucket owner's account an IAM user is allowed what its identity policies (or the
        bucket policy) allow, no more (kms_authorize, the IAM engineer's evaluator)."""
        import boto3
        b = self.bucket("iam-users")
        self.s3.put_object(Bucket=b, Key="k", Body=b"for readers")
        iam = boto3.session.Session().client("iam", endpoint_url=self.srv.endpoint, region_name="us-east-1",
                                             aws_access_key_id="test", aws_secret_access_key="test")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        reader = s3_harness.s3_client(self.srv.endpoint, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        self.refused(reader.get_object, "AccessDenied", "Access Denied", Bucket=b, Key="k")
        iam.attach_user_policy(UserName="reader", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        self.assertEqual(reader.get_object(Bucket=b, Key="k")["Body"].read(), b"for readers")
        self.assertEqual(reader.list_objects_v2(Bucket=b)["KeyCount"], 1)
        self.refused(reader.put_object, "AccessDenied", "Access Denied", Bucket=b, Key="k2", Body=b"x")

    # --- authentication ----------------------------------------------------------------------------

    def test_signature_refusals(self):
        b = self.bucket("signatures")
        wrong = s3_harness.s3_client(self.srv.endpoint, secret="not-the-secret")
        self.refused(wrong.list_buckets, "SignatureDoesNotMatch", "The request signature we calculated does not "
                     "match the signature you provided")
        unknown = s3_harness.s3_client(self.srv.endpoint, key="AKIANOBODY0000000000")
        self.refused(unknown.list_buckets, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist "
                     "in our records.")
        port = self.srv.port
        url = "http://127.0.0.1:%d/%s/k" % (port, b)
        st, _h, body = s3_harness.send(port, "PUT", url, b"body", {"X-Amz-Content-SHA256": hashlib.sha256(b"other")
                                                                   .hexdigest()})
        self.assertEqual(st, 400)
        self.assertIn(b"<Code>XAmzContentSHA256Mismatch</Code><Message>The provided 'x-amz-content-sha256' header "
                      b"does not match what was computed.</Message>", body)
        st, _h, body = s3_harness.send(port, "PUT", url, b"body", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.s3.get_object(Bucket=b, Key="k")["Body"].read(), b"body")
        st, _h, body = s3_harness.send(port, "PUT", url, b"body", {"X-Amz-Content-SHA256": "not-a-hash"})
        self.assertEqual(st, 400)
        self.assertIn(b"<Code>InvalidArgument</Code><Message>x-amz-content-sha256 must be UNSIGNED-PAYLOAD", body)
        self.assertEqual(self.anonymous("GET", "/?list-type=2")[0], 403)
        st, _h, body = s3_harness.send(port, "GET", "http://127.0.0.1:%d/%s?acl" % (port, b))
        self.assertEqual(st, 501)
        self.assertIn(b"<Code>NotImplemented</Code>", body)

    def head_only(self, headers):
        """Sends a header block announcing a 10 MiB body, and nothing of the body: the status line."""
        import socket
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=30) as sock:
            sock.sendall(b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
                         .join([b"PUT /body-limits/big HTTP/1.1\r\n", b"\r\n"]))
            return sock.recv(4096).split(b"\r\n", 1)[0]

    def test_body_limit_before_the_body(self):
        """A body over max_body is refused from its headers unless the header signature verifies
        (then s3_max_body applies): a client without credentials holds no more than before S3."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        self.bucket("body-limits")
        size = 10 << 20
        host = "127.0.0.1:%d" % self.srv.port
        anon = {"Host": host, "Content-Length": str(size)}
        self.assertEqual(self.head_only(anon), b"HTTP/1.1 413 Request Entity Too Large")

        def signed(secret):
            req = AWSRequest(method="PUT", url="http://%s/body-limits/big" % host, data=b"",
                             headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
            SigV4Auth(Credentials("test", secret), "s3", "us-east-1").add_auth(req)
            return dict(req.headers.items(), **{"Host": host, "Content-Length": str(size)})
        self.assertEqual(self.head_only(signed("wrong-secret")), b"HTTP/1.1 413 Request Entity Too Large")
        good = signed("test")
        st, _h, body = s3_harness.send(self.srv.port, "PUT", "http://%s/body-limits/big" % host, b"z" * size,
                                       {k: v for k, v in good.items() if k not in ("Host", "Content-Length")})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.s3.head_object(Bucket="body-limits", Key="big")["ContentLength"], size)
        # The next request on a connection starts at max_body again (KMS's limit still holds for KMS).
        kms = s3_harness.kms_client(self.srv.endpoint)
        with self.assertRaises(ClientError) as e:
            kms.encrypt(KeyId="alias/none", Plaintext=b"x" * 4096, EncryptionContext={"pad": "p" * (300 << 10)})
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 413)

    def test_virtual_host_style(self):
        b = self.bucket("virtual-host")
        port = self.srv.port
        url = "http://%s.s3.localhost:%d/dir/v-key" % (b, port)
        st, h, body = s3_harness.send(port, "PUT", url, b"by host", {"Content-Type": "text/plain"})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.s3.get_object(Bucket=b, Key="dir/v-key")["Body"].read(), b"by host")
        st, h, body = s3_harness.send(port, "GET", url)
        self.assertEqual((st, body, h["Content-Type"]), (200, b"by host", "text/plain"))
        st, h, body = s3_harness.send(port, "GET", "http://%s.s3.localhost:%d/?list-type=2" % (b, port))
        self.assertEqual(st, 200)
        self.assertIn(b"<Key>dir/v-key</Key>", body)

    def test_presigned_urls(self):
        b = self.bucket("presigned")
        self.s3.put_object(Bucket=b, Key="p k+", Body=b"presigned body")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p k+"}, ExpiresIn=300)
        self.assertIn("X-Amz-Signature=", url)
        self.assertEqual(urllib.request.urlopen(url).read(), b"presigned body")
        put = self.s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "up"}, ExpiresIn=300)
        urllib.request.urlopen(urllib.request.Request(put, data=b"uploaded", method="PUT")).read()
        self.assertEqual(self.s3.get_object(Bucket=b, Key="up")["Body"].read(), b"uploaded")

        def status_of(u):
            try:
                return urllib.request.urlopen(u).status, b""
            except urllib.error.HTTPError as e:
                return e.code, e.read()
        st, body = status_of(re.sub(r"X-Amz-Signature=[0-9a-f]{8}", "X-Amz-Signature=00000000", url))
        self.assertEqual(st, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", body)
        st, body = status_of(url.replace("X-Amz-Expires=300", "X-Amz-Expires=604801"))
        self.assertEqual(st, 400)
        self.assertIn(b"<Code>AuthorizationQueryParametersError</Code><Message>X-Amz-Expires must be less than a "
                      b"week (in seconds) that is 604800</Message>", body)
        with kms_harness.frozen_clock(datetime.datetime.utcnow() - datetime.timedelta(hours=2)):
            old = self.s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p k+"}, ExpiresIn=60)
        st, body = status_of(old)
        self.assertEqual(st, 403)
        self.assertIn(b"<Code>AccessDenied</Code><Message>Request has expired</Message>", body)
        st, body = status_of(url.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"))
        self.assertEqual(st, 400)
        self.assertIn(b"X-Amz-Algorithm only supports", body)

    def test_streaming_chunked_upload(self):
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the seed signature over the headers, then each chunk's."""
        b = self.bucket("streaming")
        port = self.srv.port
        data = os.urandom(150000)
        now = datetime.datetime.utcnow()
        amz_date, date8 = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        scope = "%s/us-east-1/s3/aws4_request" % date8
        key = s3_harness.signing_key("test", date8, "us-east-1")

        def put(key_name, tamper=None, decoded=len(data)):
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            hdrs = {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
                    "X-Amz-Decoded-Content-Length": str(decoded), "X-Amz-Date": amz_date}
            url = "http://127.0.0.1:%d/%s/%s" % (port, b, key_name)
            # The seed signature is botocore's over the headers (the body is not hashed: the marker is).
            req = AWSRequest(method="PUT", url=url, data=b"", headers=dict(hdrs))
            signer = SigV4Auth(Credentials("test", "test"), "s3", "us-east-1")
            with kms_harness.frozen_clock(now):
                signer.add_auth(req)
            seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
            body = s3_harness.chunked_body(data, 65536, seed, key, amz_date, scope, tamper)
            hdrs["Authorization"] = req.headers["Authorization"]
            return s3_harness.send(port, "PUT", url, body, dict(hdrs, **{"X-Amz-Date": amz_date}), sign=False)
        st, _h, body = put("chunked")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.s3.get_object(Bucket=b, Key="chunked")["Body"].read(), data)
        st, _h, body = put("tampered", tamper=lambda i, c: bytes([c[0] ^ 1]) + c[1:] if i == 1 else c)
        self.assertEqual(st, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", body)
        self.assertIn(b"chunk 1 of the aws-chunked body", body)
        st, _h, body = put("short", decoded=len(data) + 1)
        self.assertEqual(st, 400)
        self.assertIn(b"<Code>IncompleteBody</Code>", body)
        self.refused(self.s3.head_object, "404", None, Bucket=b, Key="tampered")


if __name__ == "__main__":
    unittest.main(verbosity=2)
