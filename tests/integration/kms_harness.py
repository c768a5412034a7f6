# SPDX-License-Identifier: Apache-2.0
"""Starts and stops servers for the KMS integration tests: cloister-kms --dev
on a port the kernel picks (read back from its first line), or moto_server on
a free port. Nothing is left running: the context managers stop what they
started, by pid."""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

BUILD = os.environ.get("CLOISTER_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
KMS_BIN = os.path.join(BUILD, "bin", "cloister-kms")
CLI_BIN = os.environ.get("CLOISTER_BIN", os.path.join(BUILD, "bin", "cloister"))

DEV_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1"}


def _stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class KmsServer:
    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.proc = subprocess.Popen([KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data", data_dir, *extra_args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://127\.0\.0\.1:(\d+)", line)
        if not m:
            _stop(self.proc)
            raise RuntimeError("cloister-kms did not start: %r" % line)
        self.port = int(m.group(2))
        self.endpoint = "%s://127.0.0.1:%d" % (m.group(1), self.port)

    def stop(self):
        _stop(self.proc)
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@contextlib.contextmanager
def kms_server(data_dir=None, extra_args=()):
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="cloister-kms-test-")
        data_dir = os.path.join(tmp, "data")
    srv = KmsServer(data_dir, extra_args)
    try:
        yield srv
    finally:
        rc = srv.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if rc not in (0, None, -signal.SIGKILL):
            raise RuntimeError("cloister-kms exited with %s" % rc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


def boto_client(endpoint, **kw):
    import boto3
    from botocore.config import Config
    return boto3.client("kms", endpoint_url=endpoint, region_name=kw.pop("region", "us-east-1"),
                        aws_access_key_id=kw.pop("key", "test"), aws_secret_access_key=kw.pop("secret", "test"),
                        config=Config(retries={"max_attempts": 1}), **kw)


class KmsConfigServer(KmsServer):
    """cloister-kms --config FILE; the endpoint is http:// or https:// as the file says."""

    def __init__(self, config, env=None):  # pylint: disable=super-init-not-called
        self.data_dir = None
        self.proc = subprocess.Popen([KMS_BIN, "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://127\.0\.0\.1:(\d+)", line)
        if not m:
            _stop(self.proc)
            err = self.proc.stderr.read()
            self.proc.stderr.close()
            raise RuntimeError("cloister-kms did not start: %r %r" % (line, err))
        self.port = int(m.group(2))
        self.endpoint = "%s://127.0.0.1:%d" % (m.group(1), self.port)

    def stop(self):
        rc = super().stop()
        self.stderr_text = self.proc.stderr.read()
        self.proc.stderr.close()
        return rc


@contextlib.contextmanager
def kms_server_config(config, env=None):
    srv = KmsConfigServer(config, env=env)
    try:
        yield srv
    finally:
        rc = srv.stop()
        if rc not in (0, None, -signal.SIGKILL):
            raise RuntimeError("cloister-kms exited with %s" % rc)
