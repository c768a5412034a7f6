# SPDX-License-Identifier: Apache-2.0
"""S3 servers for the S3 tests and bench/s3, each on 127.0.0.1 and a port of its own, stopped by pid:
npm s3rver (tests/s3rver, installed by ./scripts/setup with `npm ci`; credentials S3RVER/S3RVER, which
it checks) and moto_server where it is installed (not from Debian: MOTO_SERVER names it, else PATH;
any credentials). Readiness is each server's own line saying it listens, never a sleep."""
import contextlib
import os
import re
import shutil
import subprocess
import tempfile

import kms_harness

SRC = os.environ.get("CLOISTER_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
S3RVER = os.path.join(SRC, "tests", "s3rver", "node_modules", ".bin", "s3rver")


class Peer:
    def __init__(self, name, url, key, secret, proc):
        self.name, self.url, self.key, self.secret, self.proc = name, url, key, secret, proc

    def env(self, region="us-east-1"):
        """The environment a client signs with (AWS_* variables) for this server."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        e.update({"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_REGION": region,
                  "AWS_DEFAULT_REGION": region, "AWS_CONFIG_FILE": os.devnull,
                  "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        return e

    def boto3(self, region="us-east-1"):
        import boto3
        from botocore.config import Config
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=region, aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def s3rver_available():
    return os.access(S3RVER, os.X_OK) and shutil.which("node") is not None


def moto_path():
    p = os.environ.get("MOTO_SERVER") or shutil.which("moto_server")
    return p if p and os.access(p, os.X_OK) else None


def _wait_line(proc, pattern, what):
    """Reads the server's output until the line that says it listens; returns the match."""
    for raw in proc.stdout:
        m = re.search(pattern, raw.decode(errors="replace"))
        if m:
            return m
    raise RuntimeError("%s exited (status %s) before saying it listens" % (what, proc.wait()))


@contextlib.contextmanager
def s3rver(tls_key=None, tls_cert=None):
    d = tempfile.mkdtemp(prefix="s3rver-")
    # s3rver 3.7.1 encrypts ListObjectsV2's continuation tokens with a cipher OpenSSL 3 keeps in its
    # legacy provider (ERR_OSSL_EVP_UNSUPPORTED, an InternalError, without this flag of Node 17+).
    args = ["node", "--openssl-legacy-provider", S3RVER, "-d", d, "-a", "127.0.0.1", "-p", "0"]
    if tls_key:
        args += ["--key", tls_key, "--cert", tls_cert]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        m = _wait_line(proc, r"S3rver listening on 127\.0\.0\.1:(\d+)", "s3rver")
        scheme = "https" if tls_key else "http"
        # Its request log goes on to the pipe: drain it so that the server never blocks on a full pipe.
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        try:
            yield Peer("s3rver", "%s://127.0.0.1:%s" % (scheme, m.group(1)), "S3RVER", "S3RVER", proc)
        finally:
            kms_harness._stop(proc)
            drain.wait()
    finally:
        kms_harness._stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def moto(verify_signatures=False):
    """moto_server; verify_signatures: with its IAM authentication on (INITIAL_NO_AUTH_ACTION_COUNT:
    the first three requests, which make a user, its s3:* policy and its access key, go unchecked;
    every later one must carry that key's valid SigV4 signature, else SignatureDoesNotMatch)."""
    path = moto_path()
    if path is None:
        raise RuntimeError("moto_server is not installed")
    port = kms_harness.free_port()
    env = dict(os.environ)
    if verify_signatures:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    proc = subprocess.Popen([path, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    try:
        _wait_line(proc, r"Running on http://127\.0\.0\.1:%d" % port, "moto_server")
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        url = "http://127.0.0.1:%d" % port
        key, secret = "test", "test"
        if verify_signatures:
            import json
            import boto3
            iam = boto3.session.Session().client("iam", endpoint_url=url, region_name="us-east-1",
                                                 aws_access_key_id="x", aws_secret_access_key="x")
            iam.create_user(UserName="s3-test")
            iam.put_user_policy(UserName="s3-test", PolicyName="s3", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
            ak = iam.create_access_key(UserName="s3-test")["AccessKey"]
            key, secret = ak["AccessKeyId"], ak["SecretAccessKey"]
        try:
            yield Peer("moto_server", url, key, secret, proc)
        finally:
            kms_harness._stop(proc)
            drain.wait()
    finally:
        kms_harness._stop(proc)
