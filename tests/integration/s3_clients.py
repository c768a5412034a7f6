#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Debian's s3cmd and rclone, unmodified, against an S3 server: mb, put/copyto, ls, get/copy, sync of
a small tree, each result checked byte for byte.

    s3_clients.py                 against npm s3rver (proves the test; registered in ctest)
    s3_clients.py URL KEY SECRET  against the server at URL (the lead's switch for cloister-kms's S3:
                                  `cloister-kms --dev` serves it with test/test)

s3cmd gets a config file of its own (host_base/host_bucket = the endpoint: path-style;
signature_v2 = False; use_https as the URL says), rclone an `s3` remote (provider Other) in a temp
rclone.conf. Exits 77 when s3cmd, rclone or (without a URL) s3rver is not installed."""
import contextlib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3_harness  # noqa: E402

TARGET = None  # (url, key, secret) from the command line


def make_tree(root):
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(70000), "sub/deeper/c with space.txt": b"gamma\n"}
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return files


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        if TARGET is None:
            cls.peer = cls.stack.enter_context(s3_harness.s3rver())
        else:
            cls.peer = s3_harness.Peer("target", *TARGET, None)
        cls.tmp = tempfile.mkdtemp(prefix="s3-clients-")
        u = urlsplit(cls.peer.url)
        cls.s3cmd_cfg = os.path.join(cls.tmp, "s3cfg")
        with open(cls.s3cmd_cfg, "w") as f:
            f.write("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
                    "bucket_location = us-east-1\nsignature_v2 = False\nuse_https = %s\ncheck_ssl_certificate = True\n"
                    % (cls.peer.key, cls.peer.secret, u.netloc, u.netloc, "True" if u.scheme == "https" else "False"))
        os.chmod(cls.s3cmd_cfg, 0o600)
        cls.rclone_cfg = os.path.join(cls.tmp, "rclone.conf")
        with open(cls.rclone_cfg, "w") as f:
            f.write("[peer]\ntype = s3\nprovider = Other\naccess_key_id = %s\nsecret_access_key = %s\n"
                    "endpoint = %s\nregion = us-east-1\nforce_path_style = true\n"
                    % (cls.peer.key, cls.peer.secret, cls.peer.url))
        os.chmod(cls.rclone_cfg, 0o600)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def s3cmd(self, *args):
        p = subprocess.run(["s3cmd", "-c", self.s3cmd_cfg, *args], capture_output=True, timeout=300,
                           env={"PATH": os.environ["PATH"], "HOME": self.tmp})
        self.assertEqual(p.returncode, 0, "s3cmd %s: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout.decode()

    def rclone(self, *args):
        p = subprocess.run(["rclone", "--config", self.rclone_cfg, *args], capture_output=True, timeout=300,
                           env={"PATH": os.environ["PATH"], "HOME": self.tmp})
        self.assertEqual(p.returncode, 0, "rclone %s: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout.decode()

    def test_s3cmd(self):
        src = os.path.join(self.tmp, "s3cmd-src")
        files = make_tree(src)
        self.s3cmd("mb", "s3://s3cmd-bucket")
        self.assertIn("s3://s3cmd-bucket", self.s3cmd("ls"))
        self.s3cmd("put", os.path.join(src, "a.txt"), "s3://s3cmd-bucket/one/a.txt")
        out = self.s3cmd("ls", "s3://s3cmd-bucket/one/")
        self.assertIn("s3://s3cmd-bucket/one/a.txt", out)
        got = os.path.join(self.tmp, "s3cmd-a.txt")
        self.s3cmd("get", "s3://s3cmd-bucket/one/a.txt", got)
        with open(got, "rb") as f:
            self.assertEqual(f.read(), files["a.txt"])
        self.s3cmd("sync", src + "/", "s3://s3cmd-bucket/tree/")
        listed = self.s3cmd("ls", "--recursive", "s3://s3cmd-bucket/tree/")
        for rel in files:
            self.assertIn("s3://s3cmd-bucket/tree/" + rel, listed)
        back = os.path.join(self.tmp, "s3cmd-back")
        os.makedirs(back)
        self.s3cmd("sync", "s3://s3cmd-bucket/tree/", back + "/")
        for rel in files:
            self.assertTrue(filecmp.cmp(os.path.join(src, rel), os.path.join(back, rel), shallow=False), rel)

    def test_rclone(self):
        src = os.path.join(self.tmp, "rclone-src")
        files = make_tree(src)
        self.rclone("mkdir", "peer:rclone-bucket")
        self.assertIn("rclone-bucket", self.rclone("lsd", "peer:"))
        self.rclone("copyto", os.path.join(src, "sub/b.bin"), "peer:rclone-bucket/one/b.bin")
        self.assertIn("one/b.bin", self.rclone("ls", "peer:rclone-bucket"))
        got = os.path.join(self.tmp, "rclone-b.bin")
        self.rclone("copyto", "peer:rclone-bucket/one/b.bin", got)
        with open(got, "rb") as f:
            self.assertEqual(f.read(), files["sub/b.bin"])
        self.rclone("sync", src, "peer:rclone-bucket/tree")
        listed = self.rclone("ls", "peer:rclone-bucket/tree")
        for rel in files:
            self.assertIn(rel, listed)
        back = os.path.join(self.tmp, "rclone-back")
        self.rclone("copy", "peer:rclone-bucket/tree", back)
        for rel in files:
            self.assertTrue(filecmp.cmp(os.path.join(src, rel), os.path.join(back, rel), shallow=False), rel)
        # rclone's own byte-for-byte comparison of the tree and the bucket
        self.rclone("check", src, "peer:rclone-bucket/tree")


if __name__ == "__main__":
    missing = [t for t in ("s3cmd", "rclone") if shutil.which(t) is None]
    if missing:
        print("%s not installed (./scripts/setup installs them)" % " and ".join(missing), file=sys.stderr)
        sys.exit(77)
    if len(sys.argv) >= 2 and sys.argv[1] == "--cloister":
        # cloister-kms's own S3: a --dev server of this build (test/test), stopped when the tests end.
        del sys.argv[1]
        import kms_harness
        with kms_harness.kms_server() as srv:
            TARGET = (srv.endpoint, "test", "test")
            prog = unittest.main(verbosity=2, exit=False)
        sys.exit(0 if prog.result.wasSuccessful() else 1)
    if len(sys.argv) >= 4 and sys.argv[1].startswith(("http://", "https://")):
        TARGET = tuple(sys.argv[1:4])
        del sys.argv[1:4]
    elif not s3_harness.s3rver_available():
        print("s3rver is not installed (./scripts/setup runs npm ci in tests/s3rver)", file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)
