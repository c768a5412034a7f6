# SPDX-License-Identifier: Apache-2.0
"""Attested key release end to end: a test enclave (tests/enclave/enclave_kms.c)
is built into an image, launched with `cloister enclave run`, and gets a data key from
cloister-kms --dev whose key policy names the image's PCR0, through the launcher's proxy.

- The same request from an image differing by one byte, and from the right image in --debug
  mode (PCR0-2 zero), is refused with AccessDeniedException naming the failed condition.
- Every byte that crossed the host proxy is captured by a relay between the launcher and the
  KMS; the data key (recovered on the host with an admin Decrypt of the enclave's
  CiphertextBlob) appears in it in no form: raw, base64 or hex.

Skips (prints the reason, exits 0) only when the kernel refuses unprivileged user namespaces."""
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

C = os.environ["CLOISTER_BIN"]
ENCLAVE = os.environ["ENCLAVE_KMS"]
ACCOUNT = "111122223333"
ALIAS = "alias/enclave-e2e"
passed = failed = 0
children = []


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


class Collector:
    """Length-prefixed reports the enclave sends on vsock port 5000."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.reports = []
        self.cv = threading.Condition()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
            c.close()
            n = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else 0
            with self.cv:
                self.reports.append(json.loads(data[4:4 + n]) if n else {"ok": False, "error": "empty report"})
                self.cv.notify_all()

    def wait(self, count, timeout=10):
        """Until `count` reports have arrived (the enclave's connection is read to its end)."""
        with self.cv:
            return self.cv.wait_for(lambda: len(self.reports) >= count, timeout)


class Relay:
    """Stands between the launcher's proxy and the KMS and keeps every byte, both ways."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.captured = bytearray()
        threading.Thread(target=self.serve, daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.captured += d
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c), daemon=True).start()


def build(tmp, name, pad):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    files = {"key_id": ALIAS, "endpoint": "http://127.0.0.1:4599", "creds": "test:test", "pad": pad}
    args = [C, "enclave", "build", "--exe", ENCLAVE]
    for k, v in files.items():
        open(os.path.join(d, k), "w").write(v)
        args += ["--file", os.path.join(d, k)]
    r = subprocess.run(args + ["-o", os.path.join(d, "img")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "img"), json.loads(r.stdout)["Measurements"]


def run_enclave(tmp, img, relay, coll, *extra):
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", os.path.join(tmp, "state"), "--pki",
                          os.path.join(tmp, "pki"), "--memory", "256", "--quiet", "--proxy",
                          f"8000=127.0.0.1:{relay.port}", "--proxy", f"5000=127.0.0.1:{coll.port}", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(p)
    n = len(coll.reports)
    out, err = p.communicate(timeout=120)
    coll.wait(n + 1)
    return p.returncode, err, (coll.reports[-1] if len(coll.reports) > n else None)


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-enclave-kms-")
    try:
        r = subprocess.run([C, "enclave", "init-root", "-o", os.path.join(tmp, "pki")], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        img_a, m_a = build(tmp, "a", "a")
        img_b, m_b = build(tmp, "b", "b")
        check(m_a["PCR0"] != m_b["PCR0"], "images differing by one byte have different PCR0")
        with kms_harness.kms_server(
                extra_args=["--attestation-root", os.path.join(tmp, "pki", "root.pem")],
                principals=[kms_harness.principal("admin", "adminsecret",
                                                  "arn:aws:iam::%s:user/admin" % ACCOUNT)]) as srv:
            admin = kms_harness.boto_client(srv.endpoint, key="admin", secret="adminsecret")
            pol = {"Version": "2012-10-17", "Statement": [
                {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/admin" % ACCOUNT},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "enclave", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCOUNT},
                 "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
                 "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": m_a["PCR0"]}}}]}
            kid = admin.create_key(Policy=json.dumps(pol))["KeyMetadata"]["KeyId"]
            admin.create_alias(AliasName=ALIAS, TargetKeyId=kid)
            relay, coll = Relay(srv.port), Collector()

            rc, err, rep = run_enclave(tmp, img_a, relay, coll)
            if "forbids unprivileged user namespaces" in err:
                print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
                return 77
            check(rc == 0 and rep is not None and rep.get("ok"),
                  f"the enclave whose PCR0 the policy names gets a data key (exit {rc}, report {rep}, "
                  f"stderr {err.strip()[-400:]})")
            if rep and rep.get("ok"):
                check(rep["decrypt_match"], "Decrypt with Recipient inside the enclave gives back the same key")
                check(rep["random_len"] == 32, "GenerateRandom with Recipient inside the enclave gives 32 bytes")
                key = admin.decrypt(CiphertextBlob=base64.b64decode(rep["blob"]))["Plaintext"]
                check(hashlib.sha256(key).hexdigest() == rep["data_key_sha256"],
                      "the enclave's data key is the one under its CiphertextBlob (admin Decrypt on the host)")
                with relay.lock:
                    cap = bytes(relay.captured)
                check(b"X-Amz-Target: TrentService.GenerateDataKey" in cap and b"CiphertextForRecipient" in cap,
                      f"the relay saw the enclave's KMS traffic ({len(cap)} bytes)")
                forms = [key, base64.b64encode(key), key.hex().encode(), key.hex().upper().encode(),
                         base64.b64encode(key).rstrip(b"=")]
                check(not any(f in cap for f in forms),
                      "the data key crossed the host proxy in no form (raw, base64, hex)")
                check(b'"Plaintext"' not in cap, "no Plaintext member crossed the proxy")

            rc, err, rep = run_enclave(tmp, img_b, relay, coll)
            msg = (rep or {}).get("error", "")
            check(rep is not None and not rep.get("ok") and "AccessDeniedException" in msg and
                  "kms:RecipientAttestation:PCR0" in msg and m_b["PCR0"].lower() in msg.lower(),
                  "an image one byte different is refused, naming the condition and its PCR0: " + msg)

            rc, err, rep = run_enclave(tmp, img_a, relay, coll, "--debug")
            msg = (rep or {}).get("error", "")
            check(rep is not None and not rep.get("ok") and "AccessDeniedException" in msg and
                  "kms:RecipientAttestation:PCR0" in msg and "0" * 96 in msg,
                  "the right image in --debug mode (PCR0 zero) is refused, naming the condition: " + msg)
            relay.sock.close()
            coll.sock.close()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
