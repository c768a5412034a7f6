#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""libcloister's S3 client (cloister/s3_client.h, driven through `cloister s3`) against second
implementations of S3: npm s3rver always (plain and TLS), moto_server where it is installed (the
test says when it is not); with URL KEY SECRET, the same cases against that server too (cloister-kms's
S3 once it serves one: `s3_client_peers.py http://127.0.0.1:PORT test test`). Each object the C client writes is read back with boto3 too, and each
boto3 writes with the C client, so both directions are checked by an independent client. Exits 77
when s3rver is not installed (./scripts/setup installs it)."""
import contextlib
import hashlib
import http.client
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kms_harness  # noqa: E402
import s3_harness  # noqa: E402

CLI = kms_harness.CLI_BIN
BIG = 64 << 20


def cli(peer, *args, check=True, extra_env=None):
    env = peer.env()
    env.update(extra_env or {})
    p = subprocess.run([CLI, "s3", *args, "--endpoint-url", peer.url], env=env, capture_output=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError("cloister s3 %s: %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


@contextlib.contextmanager
def failing_proxy(upstream, fail_when):
    """A proxy on 127.0.0.1 in front of `upstream` that answers 500 with an S3 InternalError document to
    the requests fail_when(method, path) picks and forwards the rest; yields (url, log of (method,
    path, status))."""
    up = urlsplit(upstream)
    log = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def relay(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            if fail_when(self.command, self.path):
                doc = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>"
                       b"<Message>injected by the test</Message></Error>")
                self.send_response(500)
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                self.wfile.write(doc)
                log.append((self.command, self.path, 500))
                return
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            r = conn.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()
            log.append((self.command, self.path, r.status))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1], log
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


class PeerCase:
    """The cases, run against each server (the subclasses say which)."""
    peer = None
    bucket = "cloister-peers"
    multipart_etag = True
    lists_uploads = True
    # bytes S3's URI encoding must escape, and one it must not
    special_key = "dir one/a+b=c&d~é.bin"
    list_dir = "list/"

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        cls.peer = cls.stack.enter_context(cls.start())
        cls.tmp = tempfile.mkdtemp(prefix="s3-peers-")
        cli(cls.peer, "mb", "s3://" + cls.bucket)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name, data=None):
        p = os.path.join(self.tmp, name)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        return p

    def test_put_get_head_list_delete(self):
        data = os.urandom(100000)
        key = self.special_key
        cli(self.peer, "put", self.path("small", data), "s3://%s/%s" % (self.bucket, key))
        s3 = self.peer.boto3()
        got = s3.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(got["Body"].read(), data)
        head = cli(self.peer, "head", "s3://%s/%s" % (self.bucket, key)).stdout.decode()
        self.assertIn("size 100000\n", head)
        self.assertIn("etag \"%s\"\n" % hashlib.md5(data).hexdigest(), head)
        out = cli(self.peer, "get", "s3://%s/%s" % (self.bucket, key), "-").stdout
        self.assertEqual(out, data)
        # a range, RFC 9110's bytes=first-last
        out = cli(self.peer, "get", "--range", "10-19", "s3://%s/%s" % (self.bucket, key), "-").stdout
        self.assertEqual(out, data[10:20])
        # written by boto3, read by the C client
        s3.put_object(Bucket=self.bucket, Key="from-boto3", Body=b"written by boto3")
        dest = self.path("from-boto3.out")
        cli(self.peer, "get", "s3://%s/from-boto3" % self.bucket, dest)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"written by boto3")
        cli(self.peer, "rm", "s3://%s/%s" % (self.bucket, key))
        with self.assertRaises(s3.exceptions.ClientError) as e:
            s3.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual(e.exception.response["Error"]["Code"], "404")
        cli(self.peer, "rm", "s3://%s/from-boto3" % self.bucket)
        # an empty object: Content-Length 0 both ways
        cli(self.peer, "put", self.path("empty", b""), "s3://%s/empty" % self.bucket)
        self.assertEqual(s3.head_object(Bucket=self.bucket, Key="empty")["ContentLength"], 0)
        self.assertEqual(cli(self.peer, "get", "s3://%s/empty" % self.bucket, "-").stdout, b"")
        cli(self.peer, "rm", "s3://%s/empty" % self.bucket)

    def test_list_prefix_and_continuation(self):
        s3 = self.peer.boto3()
        keys = [self.list_dir + "%02d" % i for i in range(7)] + ["other/x"]
        for k in keys:
            s3.put_object(Bucket=self.bucket, Key=k, Body=k.encode())
        # 2 keys a page: 4 pages, each after the last one's NextContinuationToken
        out = cli(self.peer, "ls", "--max-keys", "2", "s3://%s/%s" % (self.bucket, self.list_dir)).stdout.decode()
        listed = [line.split()[-1] for line in out.splitlines()]
        self.assertEqual(listed, keys[:7])
        self.assertTrue(all(line.split()[0] == str(len(keys[0])) for line in out.splitlines()), out)
        for k in keys:
            s3.delete_object(Bucket=self.bucket, Key=k)

    def test_multipart_64mib_streamed(self):
        data = os.urandom(BIG)
        src = self.path("big", data)
        del data
        # 8 MiB parts: CreateMultipartUpload, 8 UploadParts from the file, CompleteMultipartUpload
        p = subprocess.run(["/usr/bin/time", "-f", "%M", CLI, "s3", "put", src, "s3://%s/big" % self.bucket,
                            "--endpoint-url", self.peer.url], env=self.peer.env(), capture_output=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        rss_kib = int(p.stderr.decode().strip().splitlines()[-1])
        # streamed: the client's peak memory is far below the object's 64 MiB
        self.assertLess(rss_kib, 48 << 10, "cloister s3 put held %d KiB for a 64 MiB file" % rss_kib)
        head = self.peer.boto3().head_object(Bucket=self.bucket, Key="big")
        if self.multipart_etag:  # S3's multipart ETag, "-8" for 8 parts (s3rver makes its own)
            self.assertTrue(head["ETag"].endswith('-8"'), head["ETag"])
        self.assertEqual(head["ContentLength"], BIG)
        dest = self.path("big.out")
        cli(self.peer, "get", "s3://%s/big" % self.bucket, dest)
        self.assertEqual(subprocess.run(["cmp", src, dest]).returncode, 0, "read back differs")
        cli(self.peer, "rm", "s3://%s/big" % self.bucket)

    def test_failed_part_aborts_the_upload(self):
        src = self.path("parts", os.urandom(12 << 20))  # 2 parts of 8 MiB
        with failing_proxy(self.peer.url, lambda m, p: m == "PUT" and "partNumber=2&" in p) as (url, log):
            proxied = s3_harness.Peer(self.peer.name, url, self.peer.key, self.peer.secret, None)
            p = cli(proxied, "put", src, "s3://%s/aborted" % self.bucket, check=False)
        self.assertEqual(p.returncode, 1)
        # the part's failure is what the user reads, not the abort's outcome
        self.assertIn(b"S3 UploadPart %s/aborted: InternalError: injected by the test (HTTP 500)"
                      % self.bucket.encode(), p.stderr)
        upload_id = [path for m, path, st in log if m == "POST" and path.endswith("?uploads")]
        self.assertEqual(len(upload_id), 1, log)
        aborts = [(path, st) for m, path, st in log if m == "DELETE" and "uploadId=" in path]
        self.assertEqual(len(aborts), 1, log)
        if self.lists_uploads:  # a server with AbortMultipartUpload answers 204
            self.assertEqual(aborts[0][1], 204, log)
        self.assertFalse(any(m == "POST" and "uploadId=" in path for m, path, st in log), log)  # never completed
        if self.lists_uploads:
            self.assertEqual(self.peer.boto3().list_multipart_uploads(Bucket=self.bucket).get("Uploads", []), [])
        with self.assertRaises(Exception):
            self.peer.boto3().head_object(Bucket=self.bucket, Key="aborted")

    def test_errors_carry_s3_codes(self):
        p = cli(self.peer, "get", "s3://%s/no-such-key" % self.bucket, "-", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"S3 GetObject %s/no-such-key: NoSuchKey: " % self.bucket.encode(), p.stderr)
        p = cli(self.peer, "ls", "s3://no-such-bucket-here", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"S3 ListObjectsV2 no-such-bucket-here: NoSuchBucket: ", p.stderr)
        p = cli(self.peer, "put", self.path("e", b"x"), "s3://no-such-bucket-here/k", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"NoSuchBucket", p.stderr)
        p = cli(self.peer, "head", "s3://%s/no-such-key" % self.bucket, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"HTTP 404 (NotFound; the answer has no S3 error document)", p.stderr)


@unittest.skipUnless(s3_harness.s3rver_available(), "s3rver is not installed (./scripts/setup)")
class S3rver(PeerCase, unittest.TestCase):
    start = staticmethod(s3_harness.s3rver)
    multipart_etag = False
    lists_uploads = False  # s3rver 3.7.1 has neither ListMultipartUploads nor AbortMultipartUpload (405)


@unittest.skipUnless(s3_harness.s3rver_available(), "s3rver is not installed (./scripts/setup)")
class S3rverTls(unittest.TestCase):
    """https, the certificate checked against a CA bundle, and UNSIGNED-PAYLOAD (only over TLS)."""

    def test_unsigned_payload_over_tls(self):
        tmp = tempfile.mkdtemp(prefix="s3-tls-")
        try:
            key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            data = os.urandom(300000)
            src = os.path.join(tmp, "data")
            with open(src, "wb") as f:
                f.write(data)
            with s3_harness.s3rver(tls_key=key, tls_cert=cert) as peer:
                ca = ["--ca-bundle", cert]
                cli(peer, "mb", "s3://tls", *ca)
                cli(peer, "put", "--unsigned-payload", src, "s3://tls/k", *ca)
                self.assertEqual(cli(peer, "get", "s3://tls/k", "-", *ca).stdout, data)
                # without the CA the certificate does not verify
                p = cli(peer, "ls", "s3://tls", check=False)
                self.assertEqual(p.returncode, 1)
                self.assertIn(b"does not verify", p.stderr)
                # UNSIGNED-PAYLOAD over plain http is refused before anything is sent
                plain = s3_harness.Peer("s3rver", peer.url.replace("https:", "http:"), peer.key, peer.secret, None)
                p = cli(plain, "put", "--unsigned-payload", src, "s3://tls/k2", check=False)
                self.assertEqual(p.returncode, 2)
                self.assertIn(b"UNSIGNED-PAYLOAD is for https endpoints", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@unittest.skipUnless(s3_harness.moto_path(), "moto_server is not installed here (not from Debian; optional)")
class Moto(PeerCase, unittest.TestCase):
    start = staticmethod(s3_harness.moto)


@unittest.skipUnless(s3_harness.moto_path(), "moto_server is not installed here (not from Debian; optional)")
class MotoCheckingSignatures(PeerCase, unittest.TestCase):
    """The one peer here that checks SigV4 (s3rver and moto by default take any signature): every
    case again, each request's signature recomputed by moto from the user's secret."""
    start = staticmethod(lambda: s3_harness.moto(verify_signatures=True))
    bucket = "cloister-peers-sigv4"
    # moto 5.2's checker refuses botocore's own signature (boto3 gets SignatureDoesNotMatch too) for
    # a key with '+', '=', '&' or a non-ASCII letter, and for a query value with an encoded '/': the
    # C client and boto3 agree on every such case, so these cases use keys and prefixes without them
    special_key = "dir one/a~b.bin"
    list_dir = "list-"

    def test_wrong_secret_is_refused(self):
        p = cli(self.peer, "ls", "s3://" + self.bucket, check=False, extra_env={"AWS_SECRET_ACCESS_KEY": "wrong"})
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"S3 ListObjectsV2 %s: SignatureDoesNotMatch: The request signature we calculated does not "
                      b"match" % self.bucket.encode(), p.stderr)


# URL KEY SECRET on the command line (before unittest's own arguments), or --cloister: a
# `cloister-kms --dev` of this build (test/test), started for the cases and stopped after them.
TARGET = tuple(sys.argv[1:4]) if len(sys.argv) >= 4 and sys.argv[1].startswith(("http://", "https://")) else None
CLOISTER = len(sys.argv) >= 2 and sys.argv[1] == "--cloister"


@contextlib.contextmanager
def _target():
    if CLOISTER:
        import kms_harness
        with kms_harness.kms_server() as srv:
            yield s3_harness.Peer("cloister-kms", srv.endpoint, "test", "test", None)
    else:
        yield s3_harness.Peer("target", *TARGET, None)


@unittest.skipUnless(TARGET or CLOISTER, "no URL KEY SECRET given")
class Target(PeerCase, unittest.TestCase):
    start = staticmethod(_target)


if __name__ == "__main__":
    if CLOISTER:
        del sys.argv[1]
        unittest.main(verbosity=2, defaultTest="Target")
    if TARGET:
        del sys.argv[1:4]
    if not s3_harness.s3rver_available():
        print("s3rver is not installed (./scripts/setup runs npm ci in tests/s3rver)", file=sys.stderr)
        sys.exit(77)
    if not s3_harness.moto_path():
        print("note: moto_server is not installed here; only s3rver is tested", file=sys.stderr)
    unittest.main(verbosity=2)
