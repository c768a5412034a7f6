#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms's S3 driven by Debian's aws CLI (${AWS_CLI}, every call with --endpoint-url): a 300 MiB
file up with `aws s3 cp` (multipart: 8 MiB parts) and back byte-identical (cmp), `aws s3 ls`, `aws
s3 sync` both ways, `aws s3 presign` fetched with curl, `aws s3api` calls and their refusals. Prints
how long the 300 MiB round trip took."""
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

BIG = 300 << 20


class S3AwsCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cloister-s3-cli-")
        cls.cm = kms_harness.kms_server(data_dir=os.path.join(cls.tmp, "data"))
        cls.srv = cls.cm.__enter__()
        cls.env = dict(os.environ, **kms_harness.DEV_ENV, AWS_CONFIG_FILE="/dev/null",
                       AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="")

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def aws(self, *args, ok=True):
        p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, *args], env=self.env,
                           capture_output=True, text=True, timeout=600)
        if ok:
            self.assertEqual(p.returncode, 0, "aws %s: %s" % (" ".join(args), p.stderr))
        return p

    def test_cp_300_mib_multipart_round_trip(self):
        self.aws("s3", "mb", "s3://big-files")
        src, back = os.path.join(self.tmp, "big.bin"), os.path.join(self.tmp, "big.back")
        with open(src, "wb") as f:
            for _ in range(BIG >> 20):
                f.write(os.urandom(1 << 20))
        t0 = time.monotonic()
        self.aws("s3", "cp", src, "s3://big-files/dir/big.bin")
        t1 = time.monotonic()
        self.aws("s3", "cp", "s3://big-files/dir/big.bin", back)
        t2 = time.monotonic()
        self.assertTrue(filecmp.cmp(src, back, shallow=False), "the 300 MiB file came back different")
        head = json.loads(self.aws("s3api", "head-object", "--bucket", "big-files", "--key", "dir/big.bin").stdout)
        self.assertEqual(head["ContentLength"], BIG)
        self.assertTrue(head["ETag"].endswith('-38"'), head["ETag"])  # 300 MiB in the CLI's 8 MiB parts
        print("300 MiB: aws s3 cp up %.1f s, down %.1f s" % (t1 - t0, t2 - t1))
        os.unlink(src)
        os.unlink(back)
        self.aws("s3", "rm", "s3://big-files/dir/big.bin")
        self.aws("s3", "rb", "s3://big-files")

    def test_ls_sync_presign(self):
        self.aws("s3", "mb", "s3://sync-me")
        tree = os.path.join(self.tmp, "tree")
        for rel, data in (("a.txt", b"a"), ("sub/b.txt", b"bb"), ("sub/deeper/c d.txt", b"ccc")):
            os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
            with open(os.path.join(tree, rel), "wb") as f:
                f.write(data)
        out = self.aws("s3", "sync", tree, "s3://sync-me/t").stdout
        self.assertEqual(out.count("upload:"), 3, out)
        self.assertEqual(self.aws("s3", "sync", tree, "s3://sync-me/t").stdout.count("upload:"), 0)
        ls = self.aws("s3", "ls", "s3://sync-me/t/").stdout
        self.assertIn("PRE sub/", ls)
        self.assertRegex(ls, r"\s1 a\.txt")
        ls = self.aws("s3", "ls", "--recursive", "s3://sync-me").stdout
        self.assertIn("t/sub/deeper/c d.txt", ls)
        self.assertIn("sync-me", self.aws("s3", "ls").stdout)
        down = os.path.join(self.tmp, "down")
        self.aws("s3", "sync", "s3://sync-me/t", down)
        self.assertEqual(filecmp.dircmp(tree, down).diff_files, [])
        with open(os.path.join(down, "sub/deeper/c d.txt"), "rb") as f:
            self.assertEqual(f.read(), b"ccc")
        url = self.aws("s3", "presign", "s3://sync-me/t/sub/deeper/c d.txt", "--expires-in", "300").stdout.strip()
        self.assertIn("X-Amz-Signature=", url)
        curl = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, timeout=60)
        self.assertEqual((curl.returncode, curl.stdout), (0, b"ccc"), curl.stderr)
        bad = subprocess.run(["curl", "-sS", "-w", "%{http_code}", url.replace("X-Amz-Expires=300",
                                                                                  "X-Amz-Expires=301")],
                             capture_output=True, timeout=60)
        self.assertTrue(bad.stdout.endswith(b"403"), bad.stdout)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", bad.stdout)
        self.aws("s3", "rm", "--recursive", "s3://sync-me")
        self.aws("s3", "rb", "s3://sync-me")

    def test_s3api(self):
        self.aws("s3api", "create-bucket", "--bucket", "api-bucket")
        f = os.path.join(self.tmp, "api.txt")
        with open(f, "wb") as fh:
            fh.write(b"via s3api")
        put = json.loads(self.aws("s3api", "put-object", "--bucket", "api-bucket", "--key", "k", "--body", f,
                                  "--metadata", "who=cli", "--content-type", "text/plain").stdout)
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(b"via s3api").hexdigest())
        head = json.loads(self.aws("s3api", "head-object", "--bucket", "api-bucket", "--key", "k").stdout)
        self.assertEqual((head["Metadata"], head["ContentType"]), ({"who": "cli"}, "text/plain"))
        lst = json.loads(self.aws("s3api", "list-objects-v2", "--bucket", "api-bucket").stdout)
        self.assertEqual([o["Key"] for o in lst["Contents"]], ["k"])
        p = self.aws("s3api", "get-object", "--bucket", "api-bucket", "--key", "nope", os.path.join(self.tmp, "o"),
                     ok=False)
        self.assertEqual(p.returncode, 254)
        self.assertIn("An error occurred (NoSuchKey) when calling the GetObject operation: The specified key does "
                      "not exist.", p.stderr)
        p = self.aws("s3api", "delete-bucket", "--bucket", "api-bucket", ok=False)
        self.assertIn("(BucketNotEmpty)", p.stderr)
        self.aws("s3api", "delete-object", "--bucket", "api-bucket", "--key", "k")
        self.aws("s3api", "delete-bucket", "--bucket", "api-bucket")


if __name__ == "__main__":
    unittest.main(verbosity=2)
