#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Durability: SIGKILL cloister-kms in the middle of a storm of CreateKey,
Encrypt, RotateKeyOnDemand and alias changes from several clients, restart it
on the same data directory, and check that nothing acknowledged was lost:
every key whose creation was answered still exists and decrypts every
ciphertext it was answered with (before and after rotation), every answered
alias exists, and each moving alias points at the key of its last answered
update or of the update in flight at the kill. Bounded: 4 clients, at most
~3 s of storm, then the kill. run() takes the server to start, so that
kms_pg.py runs the same storm against the PostgreSQL store."""
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.config import Config  # noqa: E402

CLIENTS = 4
STORM_SECONDS = 3.0
MAX_ITER = 400


class Client(threading.Thread):
    def __init__(self, n, endpoint, stop):
        super().__init__(daemon=True)
        self.n, self.stop = n, stop
        import boto3
        self.kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                                aws_secret_access_key="test",
                                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
        self.newer = kms_harness.NewerKms(endpoint)  # RotateKeyOnDemand: newer than Debian's botocore
        self.keys = []         # acknowledged key ids
        self.cts = []          # (key id, ciphertext, plaintext, context) acknowledged
        self.aliases = {}      # alias -> key id, acknowledged creations
        self.moving = "alias/moving-%d" % n
        self.moving_acked = None
        self.moving_inflight = None
        self.ops = 0
        self.error = None

    def run(self):
        try:
            for i in range(MAX_ITER):
                if self.stop.is_set():
                    return
                kid = self.kms.create_key(Description="storm %d/%d" % (self.n, i))["KeyMetadata"]["KeyId"]
                self.keys.append(kid)
                ctx = {"client": str(self.n), "i": str(i)}
                pt = os.urandom(32)
                ct = self.kms.encrypt(KeyId=kid, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
                self.cts.append((kid, ct, pt, ctx))
                if i % 3 == 0:
                    self.newer.rotate_key_on_demand(KeyId=kid)
                    ct2 = self.kms.encrypt(KeyId=kid, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
                    assert int.from_bytes(ct2[48:52], "big") == 2  # key version, after the region (blob format 2)
                    self.cts.append((kid, ct2, pt, ctx))
                alias = "alias/storm-%d-%d" % (self.n, i)
                self.kms.create_alias(AliasName=alias, TargetKeyId=kid)
                self.aliases[alias] = kid
                self.moving_inflight = kid
                if i == 0:
                    self.kms.create_alias(AliasName=self.moving, TargetKeyId=kid)
                else:
                    self.kms.update_alias(AliasName=self.moving, TargetKeyId=kid)
                self.moving_acked, self.moving_inflight = kid, None
                self.ops += 1
        except Exception as e:  # the kill: connection refused/reset
            if not self.stop.is_set():
                self.error = e


def dev_server(data, threads=None):
    """The SQLite store: cloister-kms --dev on a data directory."""
    return kms_harness.KmsServer(data, extra_args=("--threads", str(threads)) if threads else ())


def run(start_server=dev_server, label="SQLite"):
    """The storm, the kill and the checks against the server start_server(data_dir, threads=N) starts
    (kms_pg.py passes one with the PostgreSQL store)."""
    tmp = tempfile.mkdtemp(prefix="cloister-kms-kill9-")
    data = os.path.join(tmp, "data")
    try:
        srv = start_server(data, threads=2)
        stop = threading.Event()
        clients = [Client(n, srv.endpoint, stop) for n in range(CLIENTS)]
        for c in clients:
            c.start()
        deadline = time.time() + STORM_SECONDS
        while time.time() < deadline and not any(c.error for c in clients):
            time.sleep(0.05)
        errors = [c.error for c in clients if c.error]
        if errors:
            srv.kill9()
            raise SystemExit("storm failed before the kill: %r" % errors[0])
        stop.set()
        srv.kill9()  # SIGKILL, mid-storm: requests are in flight
        for c in clients:
            c.join(timeout=30)
        acked_keys = sum(len(c.keys) for c in clients)
        acked_cts = sum(len(c.cts) for c in clients)
        print("%s: killed after %d acknowledged keys, %d ciphertexts, %d aliases" %
              (label, acked_keys, acked_cts, sum(len(c.aliases) for c in clients)))
        if acked_keys < CLIENTS:
            raise SystemExit("the storm made too little progress to test anything")

        srv2 = start_server(data)
        try:
            kms = kms_harness.boto_client(srv2.endpoint)
            for c in clients:
                for kid in c.keys:
                    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled", kid
                for kid, ct, pt, ctx in c.cts:
                    r = kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)
                    assert r["Plaintext"] == pt and r["KeyId"].endswith(kid), kid
                for alias, kid in c.aliases.items():
                    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == kid, alias
                if c.moving_acked is not None:
                    now = kms.describe_key(KeyId=c.moving)["KeyMetadata"]["KeyId"]
                    assert now in (c.moving_acked, c.moving_inflight), (c.moving, now)
            # The audit log survived too (a torn last line is cut off at restart).
            kms.list_keys()
        finally:
            rc = srv2.stop()
        assert rc == 0, "restarted server exited with %s" % rc
        import subprocess
        p = subprocess.run([kms_harness.CLI_BIN, "kms", "audit-verify", os.path.join(data, "audit.log")],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        print("%s: after restart: every acknowledged key, ciphertext and alias is there; %s" %
              (label, p.stdout.strip()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    run()


if __name__ == "__main__":
    main()
