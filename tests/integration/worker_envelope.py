# SPDX-License-Identifier: Apache-2.0
"""The envelope path end to end (issue 6 items 1 and 2, docs/worker.md): the cloister-infer
worker in a sim enclave unseals a model sealed under the model owner's key, whose policy
names the worker image's PCR0; a hospital seals one patient record under its own key on its
own cloister-kms;
`cloister infer --enclave` sends it; the result comes back sealed under the hospital's key
and, unsealed on the host, equals `cloister infer-local` on the plaintext record.

- A tampered sealed input gets one clear error line (exit 1, no output file), and the worker
  serves the next request.
- The plaintext record never appears in the bytes the host sees: the host channel (captured
  by a relay between the client and the worker's socket) and the KMS traffic (captured by a
  relay between the launcher's proxy and the KMS).

Skips (prints the reason, exits 0) only when the kernel refuses unprivileged user namespaces."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

C = os.environ["CLOISTER_BIN"]
WORKER = os.environ["CLOISTER_INFER"]
DATA = os.environ["WDBC_CSV"]
ACCOUNT = "111122223333"
MODEL_ALIAS = "alias/model-owner"
PATIENT_ALIAS = "alias/patient-data"
LISTEN_PORT = 5005
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


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


class UnixRelay:
    """The host's view of the host channel: every byte between the client and the worker's socket."""

    def __init__(self, path, target):
        self.target = target
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(4)
        self.path = path
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
            u = socket.socket(socket.AF_UNIX)
            u.connect(self.target)
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c), daemon=True).start()


def policy(pcr0):
    stmts = [{"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/admin" % ACCOUNT},
              "Action": "kms:*", "Resource": "*"}]
    if pcr0:
        stmts.append({"Sid": "worker", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCOUNT},
                      "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
                      "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": pcr0}}})
    return json.dumps({"Version": "2012-10-17", "Statement": stmts})


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-worker-")
    proc = None
    try:
        def p(*a):
            return os.path.join(tmp, *a)

        def run(*args, env=None):
            return subprocess.run([C, *args], capture_output=True, text=True, timeout=180, env=env)

        r = run("enclave", "init-root", "-o", p("pki"))
        assert r.returncode == 0, r.stderr
        r = run("train-local", DATA, "-o", p("model.onnx"))
        assert r.returncode == 0, r.stderr
        # One patient: the first data row as a JSON object keyed by feature name (the label dropped).
        lines = open(DATA).read().splitlines()
        names, values = lines[0].split(","), lines[1].split(",")
        record = json.dumps({n: float(v) for n, v in zip(names, values) if n != "diagnosis"}).encode()
        open(p("patient.json"), "wb").write(record)
        r = run("infer-local", p("model.onnx"), p("patient.json"))
        assert r.returncode == 0, r.stderr
        expected = json.loads(r.stdout)

        kms_args = ["--principal", "admin:adminsecret:arn:aws:iam::%s:user/admin" % ACCOUNT,
                    "--attestation-root", p("pki", "root.pem")]
        # Two KMS instances: the model owner's (srv) and the hospital's (hosp).
        with kms_harness.kms_server(extra_args=kms_args) as srv, kms_harness.kms_server(extra_args=kms_args) as hosp:
            env = dict(os.environ, AWS_ACCESS_KEY_ID="admin", AWS_SECRET_ACCESS_KEY="adminsecret",
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL_KMS=srv.endpoint)
            henv = dict(env, AWS_ENDPOINT_URL_KMS=hosp.endpoint)
            admin = kms_harness.boto_client(srv.endpoint, key="admin", secret="adminsecret")
            hadmin = kms_harness.boto_client(hosp.endpoint, key="admin", secret="adminsecret")
            model_key = admin.create_key(Policy=policy(None))["KeyMetadata"]["KeyId"]
            admin.create_alias(AliasName=MODEL_ALIAS, TargetKeyId=model_key)
            # The model owner seals the model; the image holds it, so its PCR0 is known only after.
            r = run("seal", "--key", MODEL_ALIAS, p("model.onnx"), "-o", p("model.sealed"), env=env)
            assert r.returncode == 0, r.stderr
            kms_relay, hosp_relay = Relay(srv.port), Relay(hosp.port)
            cfg = {"model": "/files/model.sealed", "kms_endpoint": "http://127.0.0.1:4599", "region": "us-east-1",
                   "access_key_id": "test", "secret_access_key": "test", "kms_vsock_port": 8000,
                   "data_kms_endpoint": "http://127.0.0.1:4600", "data_kms_vsock_port": 8001,
                   "listen_port": LISTEN_PORT, "max_requests": 4}
            open(p("worker.json"), "w").write(json.dumps(cfg))
            r = run("enclave", "build", "--exe", WORKER, "--file", p("model.sealed"), "--file", p("worker.json"),
                    "-o", p("worker.img"))
            assert r.returncode == 0, r.stderr
            pcr0 = json.loads(r.stdout)["Measurements"]["PCR0"]
            admin.put_key_policy(KeyId=model_key, PolicyName="default", Policy=policy(pcr0))
            # The hospital: its own key on its own KMS, the same kind of policy.
            patient_key = hadmin.create_key(Policy=policy(pcr0))["KeyMetadata"]["KeyId"]
            hadmin.create_alias(AliasName=PATIENT_ALIAS, TargetKeyId=patient_key)
            r = run("seal", "--key", PATIENT_ALIAS, p("patient.json"), "-o", p("patient.sealed"), env=henv)
            assert r.returncode == 0, r.stderr

            state = p("state")
            proc = subprocess.Popen([C, "enclave", "run", p("worker.img"), "--state-dir", state, "--pki", p("pki"),
                                     "--memory", "256", "--quiet", "--proxy", f"8000=127.0.0.1:{kms_relay.port}",
                                     "--proxy", f"8001=127.0.0.1:{hosp_relay.port}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            path = None
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                ds = [d for d in os.listdir(state) if d.startswith("i-sim-enc")] if os.path.isdir(state) else []
                cand = os.path.join(state, ds[0], f"vsock-{LISTEN_PORT}.sock") if ds else None
                if cand and os.path.exists(cand):
                    path = cand
                    break
                time.sleep(0.05)
            if path is None:
                out, err = proc.communicate(timeout=60)
                if "forbids unprivileged user namespaces" in err:
                    print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
                    return 0
                check(False, f"the worker starts and listens on vsock port {LISTEN_PORT} (exit {proc.returncode}: "
                             f"{err.strip()[-600:]})")
                return 1
            host = UnixRelay(p("host.sock"), path)

            r = run("infer", "--enclave", host.path, p("patient.sealed"), "-o", p("result.sealed"))
            check(r.returncode == 0, "cloister infer sends the sealed record and gets a sealed result: " +
                  r.stderr.strip())
            r = run("unseal", "--key", PATIENT_ALIAS, p("result.sealed"), "-o", p("result.json"), env=henv)
            check(r.returncode == 0, "the hospital unseals the result with its own key: " + r.stderr.strip())
            got = json.loads(open(p("result.json")).read()) if r.returncode == 0 else {}
            check(got.get("label") == expected["label"] and got.get("label") in ("benign", "malignant") and
                  set(got.get("probabilities", {})) == set(expected["probabilities"]) and
                  all(abs(got["probabilities"][k] - v) < 1e-6 for k, v in expected["probabilities"].items()),
                  f"the enclave's result {got} equals infer-local's {expected}")

            sealed = bytearray(open(p("patient.sealed"), "rb").read())
            sealed[-1] ^= 1
            open(p("tampered.sealed"), "wb").write(bytes(sealed))
            r = run("infer", "--enclave", host.path, p("tampered.sealed"), "-o", p("tampered.out"))
            lines_err = r.stderr.strip().splitlines()
            check(r.returncode == 1 and len(lines_err) == 1 and "the enclave refused the request" in lines_err[0] and
                  "unsealing the request" in lines_err[0] and not os.path.exists(p("tampered.out")),
                  f"a tampered input gets one clear line, exit 1, no output (exit {r.returncode}): {r.stderr.strip()}")

            open(p("notes.txt"), "w").write("secret-diagnosis-xyz: not a record\n")
            r = run("seal", "--key", PATIENT_ALIAS, p("notes.txt"), "-o", p("notes.sealed"), env=henv)
            assert r.returncode == 0, r.stderr
            r = run("infer", "--enclave", host.path, p("notes.sealed"), "-o", p("notes.out"))
            check(r.returncode == 1 and "not a record this classifier reads" in r.stderr and
                  "secret-diagnosis" not in r.stderr and not os.path.exists(p("notes.out")),
                  "a sealed input that is not a record is refused without quoting it: " + r.stderr.strip())

            r = run("infer", "--enclave", host.path, p("patient.sealed"), "-o", p("result2.sealed"))
            check(r.returncode == 0, "the worker serves the next request after a bad one: " + r.stderr.strip())
            r = run("unseal", "--key", PATIENT_ALIAS, p("result2.sealed"), "-o", p("result2.json"), env=henv)
            check(r.returncode == 0 and json.loads(open(p("result2.json")).read())["label"] == expected["label"],
                  "and that result unseals to the same label")
            check(open(p("result.sealed"), "rb").read() != open(p("result2.sealed"), "rb").read(),
                  "each result is sealed under a fresh data key")

            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            check(proc.returncode == 0, f"the worker stops after its configured 4 requests (exit {proc.returncode})")
            with host.lock:
                seen = bytes(host.captured)
            with kms_relay.lock, hosp_relay.lock:
                kms_seen = bytes(kms_relay.captured) + bytes(hosp_relay.captured)
                hosp_seen = bytes(hosp_relay.captured)
                owner_seen = bytes(kms_relay.captured)
            check(b"X-Amz-Target: TrentService.GenerateDataKey" in hosp_seen and
                  b"X-Amz-Target: TrentService.Decrypt" in hosp_seen,
                  "the record's keys came from the hospital's KMS (Decrypt, then GenerateDataKey for the result)")
            check(b"TrentService.Decrypt" in owner_seen and b"TrentService.GenerateDataKey" not in owner_seen,
                  "the model owner's KMS saw only the model key's Decrypt")
            check(b"CLSEAL" in seen and len(seen) > 2 * len(record),
                  f"the host relay saw the exchanges ({len(seen)} bytes)")
            needles = [record, record[:40], b"mean_radius", b"17.99", b"secret-diagnosis",
                       b'"label"', b"probabilities", expected["label"].encode()]
            check(not any(n in seen for n in needles),
                  "neither the record nor the result appears in the host channel's bytes")
            check(b"CiphertextForRecipient" in kms_seen and not any(n in kms_seen for n in needles[:3]),
                  "the record does not appear in the KMS traffic either")
            host.sock.close()

            # Startup failures: one line on the console (only --debug enclaves show it, and their
            # documents carry PCR0 zero, which is exactly the refused case) and a non-zero exit.
            def debug_run(proxy_port):
                dp = subprocess.run([C, "enclave", "run", p("worker.img"), "--state-dir", p("state-debug"), "--pki",
                                     p("pki"), "--memory", "256", "--quiet", "--debug", "--attach-console", "--proxy",
                                     f"8000=127.0.0.1:{proxy_port}"], capture_output=True, text=True, timeout=120)
                lines = [ln for ln in (dp.stdout + dp.stderr).splitlines() if "cloister-infer:" in ln]
                return dp.returncode, lines

            rc, lines = debug_run(kms_relay.port)
            check(rc != 0 and len(lines) == 1 and "cannot start" in lines[0] and "unsealing the model" in lines[0] and
                  "AccessDeniedException" in lines[0] and "kms:RecipientAttestation:PCR0" in lines[0],
                  f"a worker whose PCR0 the model key does not name stops with one line (exit {rc}): {lines}")
            rc, lines = debug_run(kms_harness.free_port())
            check(rc != 0 and len(lines) == 1 and "cannot start" in lines[0] and "unsealing the model" in lines[0],
                  f"a worker that cannot reach its KMS stops with one line after retrying (exit {rc}): {lines}")
            kms_relay.sock.close()
            hosp_relay.sock.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
