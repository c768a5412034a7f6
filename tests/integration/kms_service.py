#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms operable as a service (docs/kms.md, "Operating the service"): --version; a wrong
flag is one line and a pointer to --help; --listen takes [IPv6]:PORT and host names; GET /healthz
answers without authentication and says when the audit log fails; GET /metrics counts exactly
what happened, by operation and outcome, with a consistent histogram, and names no key, alias,
principal or access key; --metrics off closes it; the request log has one line per request with
operation, principal, key, outcome and latency, and none of the request's secrets.

Runs with Debian's /usr/bin/python3 and its python3-botocore (no boto3 needed). Servers listen on
loopback only. Lines and counts are waited for on the server's own output, never on a sleep."""
import base64
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import warnings

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("CLOISTER_BUILD_DIR", os.path.join(HERE, "../../build"))
SOURCE = os.environ.get("CLOISTER_SOURCE_DIR", os.path.join(HERE, "../.."))
KMS_BIN = os.path.join(BUILD, "bin", "cloister-kms")

ACCESS_KEY = "AKIASERVICETEST01"
SECRET = "Service-Test-Secret-6d0f2c9a"
ARN = "arn:aws:iam::123456789012:user/ops-test"


def project_version():
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        return re.search(r"project\(cloister VERSION ([0-9.]+)", f.read()).group(1)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Server:
    """cloister-kms --dev with one more principal (in a mode-0600 --principals-file), stderr
    collected line by line so that a test can wait for a line."""

    def __init__(self, tmp, listen="127.0.0.1:0", extra=(), env=None):
        data = tempfile.mkdtemp(prefix="data-", dir=tmp)
        principals = os.path.join(data, "principals.json")
        fd = os.open(principals, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([{"access_key_id": ACCESS_KEY, "secret": SECRET, "arn": ARN}], f)
        self.data = data
        self.proc = subprocess.Popen([KMS_BIN, "--dev", "--listen", listen, "--data", data, "--principals-file",
                                      principals, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "CLOISTER_LOG": "info", **(env or {})})
        self.lines = []
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.first = self.proc.stdout.readline()
        m = re.search(r"listening on (https?)://(\[[0-9a-f:]+\]|[0-9.]+):(\d+)", self.first)
        if not m:
            self.stop()
            raise RuntimeError("cloister-kms did not start: %r %r" % (self.first, self.stderr_text()))
        self.host = m.group(2).strip("[]")
        self.port = int(m.group(3))
        self.endpoint = "http://%s:%d" % (m.group(2), self.port)

    def _read(self):
        for line in self.proc.stderr:
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)  # end of output
            self.cv.notify_all()

    def wait_line(self, pattern, timeout=30):
        """The first stderr line matching pattern, waiting for the server to write it."""
        rx = re.compile(pattern)
        with self.cv:
            ok = self.cv.wait_for(lambda: any(ln is None or rx.search(ln) for ln in self.lines), timeout)
            found = [ln for ln in self.lines if ln is not None and rx.search(ln)]
            if not ok or not found:
                raise AssertionError("no line matching %r in:\n%s" % (pattern, self.stderr_text()))
            return found[0]

    def stderr_text(self):
        with self.cv:
            return "".join(ln for ln in self.lines if ln is not None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        self.proc.stdout.close()
        return self.proc.returncode

    def client(self, key=ACCESS_KEY, secret=SECRET):
        return botocore.session.get_session().create_client(
            "kms", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=key,
            aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))

    def get(self, path, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode()
        finally:
            conn.close()


def samples(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? ([0-9.]+)', line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(re.findall(r'([a-z]+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def requests_total(s, op, outcome):
    return s.get(("cloister_kms_requests_total", frozenset({("operation", op), ("outcome", outcome)})), 0)


class KmsService(unittest.TestCase):
    def setUp(self):
        # botocore keeps its connections open until the client is collected.
        warnings.simplefilter("ignore", ResourceWarning)
        self.tmp = tempfile.mkdtemp(prefix="cloister-kms-service-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            rc = s.stop()
            self.assertEqual(rc, 0, "cloister-kms exited %s: %s" % (rc, s.stderr_text()))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, **kw):
        s = Server(self.tmp, **kw)
        self.servers.append(s)
        return s

    def test_version(self):
        p = subprocess.run([KMS_BIN, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "cloister-kms %s\n" % project_version(), ""))

    def test_wrong_flag_is_one_line(self):
        cases = [
            (["--bogus"], "unknown option --bogus"),
            (["--dev=1"], "--dev=1 takes no value"),
            (["--dev", "--listen"], "--listen needs a value"),
            ([], "give --config FILE, or --dev"),
            (["--dev", "--threads", "x"], "--threads"),
            (["--dev", "--metrics", "public"], "--metrics: give loopback, any or off, not 'public'"),
            (["--dev", "--listen", "::1:4599"], "write an IPv6 address in brackets, as in [::1]:4599"),
            (["--dev", "--listen", "[::1]4599"], "HOST:PORT"),
            (["--dev", "stray"], "unexpected argument stray"),
        ]
        for args, needle in cases:
            p = subprocess.run([KMS_BIN, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(p.stdout, "", args)
            lines = p.stderr.splitlines()
            self.assertEqual(len(lines), 1, "%s: not one line: %r" % (args, p.stderr))
            self.assertIn(needle, lines[0], args)
            self.assertTrue(lines[0].startswith("cloister-kms: "), lines[0])
            self.assertIn("cloister-kms --help", lines[0], args)
        p = subprocess.run([KMS_BIN, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--metrics", p.stdout)
        self.assertIn("[::1]:4599", p.stdout)

    def test_listen_ipv6_and_names(self):
        if have_ipv6_loopback():
            s = self.start(listen="[::1]:0")
            self.assertIn("http://[::1]:", s.first)
            self.assertEqual(s.get("/healthz")[0], 200)
            self.assertEqual(s.client().list_keys()["Keys"], [])
        else:
            print("note: no IPv6 loopback here; [::1] not tried")
        s = self.start(listen="localhost:0")
        self.assertRegex(s.first, r"listening on http://(\[::1\]|127\.0\.0\.1):\d+ ")
        self.assertEqual(s.get("/healthz")[0], 200)
        p = subprocess.run([KMS_BIN, "--dev", "--data", os.path.join(self.tmp, "x"), "--listen",
                            "no-such-host.invalid:0"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("listen address no-such-host.invalid", p.stderr)

    def test_healthz(self):
        s = self.start()
        status, ctype, body = s.get("/healthz")  # no Authorization
        self.assertEqual((status, ctype), (200, "application/json"))
        h = json.loads(body)
        self.assertEqual((h["status"], h["version"], h["store"], h["audit_log"]), ("ok", project_version(), "ok", "ok"))
        # The audit log cannot grow (RLIMIT_FSIZE on the running server, as kms_audit.py does):
        # requests are refused, and /healthz says why the service is down.
        kms = s.client()
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        soft, hard = resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE)
        size = os.path.getsize(os.path.join(s.data, "audit.log"))
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (size + 40, hard))
        try:
            with self.assertRaises(ClientError) as cm:
                kms.encrypt(KeyId=key, Plaintext=b"x")
            self.assertEqual(cm.exception.response["Error"]["Code"], "KMSInternalException")
            status, _, body = s.get("/healthz")
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body)["audit_log"], "failing")
            self.assertEqual(json.loads(body)["status"], "unavailable")
        finally:
            resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        kms.encrypt(KeyId=key, Plaintext=b"x")
        status, _, body = s.get("/healthz")
        self.assertEqual((status, json.loads(body)["audit_log"]), (200, "ok"))
        # Probes leave no line in the audit log.
        with open(os.path.join(s.data, "audit.log")) as f:
            self.assertNotIn("healthz", f.read())

    def test_metrics_count_what_happened(self):
        s = self.start()
        kms = s.client()
        key = kms.create_key(Description="metrics")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/metrics-secret-name", TargetKeyId=key)
        status, ctype, before_text = s.get("/metrics")
        self.assertEqual((status, ctype), (200, "text/plain; version=0.0.4; charset=utf-8"))
        before = samples(before_text)
        blobs = [kms.encrypt(KeyId=key, Plaintext=b"p%d" % i)["CiphertextBlob"] for i in range(3)]
        for b in blobs[:2]:
            kms.decrypt(CiphertextBlob=b)
        with self.assertRaises(ClientError):
            kms.describe_key(KeyId="alias/absent")
        # Unauthenticated, with a forged operation name: counted under its outcome, the label
        # from the operation table only.
        conn = http.client.HTTPConnection(s.host, s.port, timeout=30)
        for target in ("TrentService.Decrypt", 'TrentService.Nope"} 99'):
            conn.request("POST", "/", body="{}", headers={"X-Amz-Target": target,
                                                          "Content-Type": "application/x-amz-json-1.1"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 403)
        conn.close()
        # Three idle keep-alive connections, each answered once so that it was surely accepted.
        idle = []
        for _ in range(3):
            c = http.client.HTTPConnection(s.host, s.port, timeout=30)
            c.request("GET", "/healthz")
            c.getresponse().read()
            idle.append(c)
        status, _, after_text = s.get("/metrics")
        after = samples(after_text)
        for c in idle:
            c.close()

        def delta(op, outcome):
            return requests_total(after, op, outcome) - requests_total(before, op, outcome)

        self.assertEqual(delta("Encrypt", "ok"), 3)
        self.assertEqual(delta("Decrypt", "ok"), 2)
        self.assertEqual(delta("DescribeKey", "NotFoundException"), 1)
        self.assertEqual(delta("Decrypt", "MissingAuthenticationTokenException"), 1)
        self.assertEqual(delta("unknown", "MissingAuthenticationTokenException"), 1)
        self.assertEqual(requests_total(after, "CreateKey", "ok"), 1)
        self.assertEqual(requests_total(after, "CreateAlias", "ok"), 1)
        # The histogram agrees with the counts; its buckets only grow.
        for op in ("Encrypt", "Decrypt", "DescribeKey", "unknown"):
            total = sum(v for (name, labels), v in after.items()
                        if name == "cloister_kms_requests_total" and ("operation", op) in labels)
            count = after[("cloister_kms_request_duration_seconds_count", frozenset({("operation", op)}))]
            self.assertEqual(count, total, op)
            buckets = sorted(((float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"])), v)
                             for (name, labels), v in after.items()
                             if name == "cloister_kms_request_duration_seconds_bucket" and ("operation", op) in labels)
            self.assertEqual(buckets[-1], (float("inf"), count))
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), op)
            self.assertGreater(after[("cloister_kms_request_duration_seconds_sum", frozenset({("operation", op)}))], 0)
        # Connections accepted since the first scrape: the unauthenticated one, the three idle
        # ones and this scrape's (botocore's was open before).
        accepted = ("cloister_kms_connections_accepted_total", frozenset())
        self.assertEqual(after[accepted] - before[accepted], 5)
        self.assertGreaterEqual(after[("cloister_kms_open_connections", frozenset())], 4)
        # Nothing that names a key, an alias, a principal or a credential.
        for secret in (key, "metrics-secret-name", ARN, ACCESS_KEY, "123456789012", "Nope"):
            self.assertNotIn(secret, after_text)
        self.assertIn('cloister_kms_build_info{version="%s"} 1' % project_version(), after_text)

    def test_metrics_off(self):
        s = self.start(extra=("--metrics", "off"))
        status, _, body = s.get("/metrics")
        self.assertEqual(status, 404)
        self.assertIn('"metrics": "off"', body)
        self.assertEqual(s.get("/healthz")[0], 200)
        # Any other GET without credentials is an anonymous S3 request (docs/s3.md, "One endpoint"):
        # refused as S3 refuses it, no bucket policy allowing it.
        status, _, body = s.get("/other")
        self.assertEqual(status, 403)
        self.assertIn("<Code>AccessDenied</Code><Message>Access Denied</Message>", body)

    def test_request_log_has_no_secret(self):
        s = self.start()
        kms = s.client()
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        arn = kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
        plaintext = b"patient 4711: malignant, margin 2.1 mm"
        context = {"record": "context-value-31337"}
        r = kms.encrypt(KeyId=key, Plaintext=plaintext, EncryptionContext=context)
        enc_id = r["ResponseMetadata"]["RequestId"]
        d = kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext=context)
        dec_id = d["ResponseMetadata"]["RequestId"]
        g = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
        gen_id = g["ResponseMetadata"]["RequestId"]
        with self.assertRaises(ClientError):
            kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"record": "wrong"})
        bad = s.client(secret="wrong-secret")
        with self.assertRaises(ClientError):
            bad.list_keys()
        line = s.wait_line(r"request %s " % enc_id)
        self.assertRegex(line, r"cloister-kms info: request %s Encrypt principal=%s key=%s source=127\.0\.0\.1 "
                               r"outcome=ok status=200 latency_ms=\d+\.\d{3}$" % (enc_id, re.escape(ARN),
                                                                                re.escape(arn)))
        self.assertRegex(s.wait_line(r"request %s " % dec_id), r" Decrypt principal=.* key=%s .*outcome=ok" %
                         re.escape(arn))
        self.assertIn(" GenerateDataKey ", s.wait_line(r"request %s " % gen_id))
        s.wait_line(r" Decrypt .*outcome=InvalidCiphertextException status=400 ")
        s.wait_line(r" ListKeys principal=- key=- source=127\.0\.0\.1 outcome=InvalidSignatureException status=400")
        rc = s.stop()
        self.assertEqual(rc, 0)
        self.servers.remove(s)
        log = s.stderr_text()
        secrets = [plaintext, base64.b64encode(plaintext), b"context-value-31337", SECRET.encode(),
                   base64.b64encode(g["Plaintext"]), b"wrong-secret"]
        for sec in secrets:
            self.assertNotIn(sec.decode(errors="replace"), log, "a secret in the server's log")
        self.assertNotIn("Signature=", log)


if __name__ == "__main__":
    unittest.main()
