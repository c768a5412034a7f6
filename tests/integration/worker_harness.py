# SPDX-License-Identifier: Apache-2.0
"""What the cloister-infer integration tests (worker_envelope.py, worker_channel.py) share: two
cloister-kms instances (the model owner's and the hospital's), a model trained and sealed by
the model owner, the worker image whose PCR0 both keys' policies name, one patient record sealed
by the hospital, and relays in front of the KMSs and of the worker's host sockets that keep every
byte and can be switched off (a KMS that is down)."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import kms_harness

C = os.environ["CLOISTER_BIN"]
WORKER = os.environ["CLOISTER_INFER"]
DATA = os.environ["WDBC_CSV"]
ACCOUNT = "111122223333"
MODEL_ALIAS = "alias/model-owner"
PATIENT_ALIAS = "alias/patient-data"
LISTEN_PORT = 5005
CHANNEL_PORT = 5007
TLS_PORT = 5009  # with cas: the certificate service's TLS port (docs/cas.md)


class Skip(Exception):
    pass


class Relay:
    """Between a client and a server (TCP to 127.0.0.1:target, or a Unix socket path): keeps every
    byte both ways. down: new connections are closed at once, and setting it closes the open
    ones (the server is unreachable; a client's kept-alive connection goes down with it).
    hold: what the server answers is kept back, not forwarded (a request left in flight); held is
    set once it has kept something back."""

    def __init__(self, target, unix_path=None):
        self.target = target
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix_path)
            self.path = unix_path
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.lock = threading.Lock()
        self.captured = bytearray()
        self.open = []  # the relayed connections' sockets, both ends
        self._down = False
        self.hold = False
        self.held = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def down(self):
        return self._down

    @down.setter
    def down(self, value):
        with self.lock:
            self._down = value
            if value:
                for s in self.open:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self.open = []

    def pump(self, a, b, upstream):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.captured += d
                if upstream and self.hold:
                    self.held.set()
                    continue
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def connect_target(self):
        if isinstance(self.target, str):
            u = socket.socket(socket.AF_UNIX)
            u.connect(self.target)
            return u
        return socket.create_connection(("127.0.0.1", self.target))

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.down:
                c.close()
                continue
            try:
                u = self.connect_target()
            except OSError:
                c.close()
                continue
            with self.lock:
                self.open += [c, u]
            threading.Thread(target=self.pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, True), daemon=True).start()

    def seen(self):
        with self.lock:
            return bytes(self.captured)


def policy(pcr0):
    stmts = [{"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/admin" % ACCOUNT},
              "Action": "kms:*", "Resource": "*"}]
    if pcr0:
        stmts.append({"Sid": "worker", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCOUNT},
                      "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
                      "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": pcr0}}})
    return json.dumps({"Version": "2012-10-17", "Statement": stmts})


class World:
    """Everything set up; p(name) is a path in the test's temporary directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def run(self, *args, env=None, timeout=120):
        return subprocess.run([C, *args], capture_output=True, text=True, timeout=timeout, env=env)

    def seal_record(self, name, data):
        """The hospital seals `data` (bytes) under its key."""
        open(self.p(name + ".plain"), "wb").write(data)
        r = self.run("seal", "--key", PATIENT_ALIAS, self.p(name + ".plain"), "-o", self.p(name), env=self.henv)
        assert r.returncode == 0, r.stderr
        return self.p(name)

    def start_enclave(self, state="state", wait=True):
        """Launches the worker image; returns (proc, envelope socket, channel socket)."""
        state = self.p(state)
        proc = subprocess.Popen([C, "enclave", "run", self.p("worker.img"), "--state-dir", state, "--pki",
                                 self.p("pki"), "--memory", "512", "--quiet", "--proxy",
                                 f"8000=127.0.0.1:{self.kms_relay.port}", "--proxy",
                                 f"8001=127.0.0.1:{self.hosp_relay.port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        if not wait:
            return proc, None, None
        socks = None
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            ds = [d for d in os.listdir(state) if d.startswith("i-sim-enc")] if os.path.isdir(state) else []
            if ds:
                env_s = os.path.join(state, ds[0], f"vsock-{LISTEN_PORT}.sock")
                chan_s = os.path.join(state, ds[0], f"vsock-{CHANNEL_PORT}.sock")
                if os.path.exists(env_s) and os.path.exists(chan_s):
                    socks = (env_s, chan_s)
                    break
            time.sleep(0.05)
        if socks is None:
            out, err = proc.communicate(timeout=60)
            if "forbids unprivileged user namespaces" in err:
                raise Skip("the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
            raise AssertionError(f"the worker did not start (exit {proc.returncode}): {err.strip()[-600:]}")
        return proc, socks[0], socks[1]


@contextlib.contextmanager
def world(config_extra=None, model=None, record=None, tls=False, cas=False):
    """model: an ONNX file to serve (default: the classifier trained here); record: the input the
    hospital seals (default: one WDBC patient). tls: both KMSs serve
    HTTPS with a certificate for kms.local, and the worker trusts its CA from a file in the image,
    so the TLS sessions end inside the enclave; the host tools trust it through AWS_CA_BUNDLE.
    cas: the worker gets its TLS port's certificate from the model owner's cloister-kms (session
    "hospital", service "api", whose only image is the worker's; w.srv is that server)."""
    tmp = tempfile.mkdtemp(prefix="cloister-worker-")
    w = World(tmp)
    try:
        p = w.p
        r = w.run("enclave", "init-root", "-o", p("pki"))
        assert r.returncode == 0, r.stderr
        if model is None:
            r = w.run("train-local", DATA, "-o", p("model.onnx"))
            assert r.returncode == 0, r.stderr
        else:
            shutil.copyfile(model, p("model.onnx"))
        tls_args, scheme, ca_env = [], "http", {}
        if tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", p("kms-key.pem"), "-out", p("kms-ca.pem"), "-days", "2", "-subj",
                            "/CN=cloister-kms test", "-addext", "subjectAltName=DNS:kms.local,IP:127.0.0.1"],
                           check=True, capture_output=True)
            tls_args = ["--tls-cert", p("kms-ca.pem"), "--tls-key", p("kms-key.pem")]
            scheme, ca_env = "https", {"AWS_CA_BUNDLE": p("kms-ca.pem")}
        if record is None:
            # One patient: the first data row as a JSON object keyed by feature name (the label dropped).
            lines = open(DATA).read().splitlines()
            names, values = lines[0].split(","), lines[1].split(",")
            w.record = json.dumps({n: float(v) for n, v in zip(names, values) if n != "diagnosis"}).encode()
            open(p("patient.json"), "wb").write(w.record)
            r = w.run("infer-local", p("model.onnx"), p("patient.json"))
            assert r.returncode == 0, r.stderr
            w.expected = json.loads(r.stdout)
        else:
            w.record = open(record, "rb").read()  # the test computes its own expectation
        kms_args = ["--attestation-root", p("pki", "root.pem"), *tls_args]
        admin_p = [kms_harness.principal("admin", "adminsecret", "arn:aws:iam::%s:user/admin" % ACCOUNT)]
        with kms_harness.kms_server(extra_args=kms_args, principals=admin_p) as srv, \
                kms_harness.kms_server(extra_args=kms_args, principals=admin_p) as hosp:
            w.env = dict(os.environ, AWS_ACCESS_KEY_ID="admin", AWS_SECRET_ACCESS_KEY="adminsecret",
                         AWS_REGION="us-east-1", AWS_ENDPOINT_URL_KMS=srv.endpoint, **ca_env)
            w.henv = dict(w.env, AWS_ENDPOINT_URL_KMS=hosp.endpoint)
            verify = {"verify": p("kms-ca.pem")} if tls else {}
            admin = kms_harness.boto_client(srv.endpoint, key="admin", secret="adminsecret", **verify)
            hadmin = kms_harness.boto_client(hosp.endpoint, key="admin", secret="adminsecret", **verify)
            model_key = admin.create_key(Policy=policy(None))["KeyMetadata"]["KeyId"]
            admin.create_alias(AliasName=MODEL_ALIAS, TargetKeyId=model_key)
            r = w.run("seal", "--key", MODEL_ALIAS, p("model.onnx"), "-o", p("model.sealed"), env=w.env)
            assert r.returncode == 0, r.stderr
            w.kms_relay, w.hosp_relay = Relay(srv.port), Relay(hosp.port)
            host = "kms.local" if tls else "127.0.0.1"
            cfg = {"model": "/files/model.sealed", "kms_endpoint": "%s://%s:4599" % (scheme, host),
                   "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test",
                   "kms_vsock_port": 8000, "data_kms_endpoint": "%s://%s:4600" % (scheme, host),
                   "data_kms_vsock_port": 8001, "listen_port": LISTEN_PORT, "channel_port": CHANNEL_PORT,
                   "read_timeout": 20}
            files = ["--file", p("model.sealed"), "--file", p("worker.json")]
            if tls:
                cfg["kms_ca_file"] = "/files/kms-ca.pem"
                files += ["--file", p("kms-ca.pem")]
            if cas:
                cfg["cas"] = {"endpoint": cfg["kms_endpoint"], "vsock_port": 8000, "session": "hospital",
                              "service": "api"}
                if tls:
                    cfg["cas"]["ca_file"] = "/files/kms-ca.pem"
                cfg["tls_port"] = TLS_PORT
            cfg.update(config_extra or {})
            open(p("worker.json"), "w").write(json.dumps(cfg))
            r = w.run("enclave", "build", "--exe", WORKER, *files, "-o", p("worker.img"))
            assert r.returncode == 0, r.stderr
            open(p("build.json"), "w").write(r.stdout)
            w.pcr0 = json.loads(r.stdout)["Measurements"]["PCR0"]
            admin.put_key_policy(KeyId=model_key, PolicyName="default", Policy=policy(w.pcr0))
            w.srv, w.hosp = srv, hosp
            if cas:
                import cas_harness
                st, a = cas_harness.request(srv.endpoint, "PUT", "/v1/sessions/hospital",
                                            cas_harness.session_doc("hospital", [w.pcr0],
                                                                    updaters=["arn:aws:iam::%s:user/admin" % ACCOUNT]),
                                            key="admin", secret="adminsecret", cafile=p("kms-ca.pem") if tls else None)
                assert st == 200, a
            patient_key = hadmin.create_key(Policy=policy(w.pcr0))["KeyMetadata"]["KeyId"]
            hadmin.create_alias(AliasName=PATIENT_ALIAS, TargetKeyId=patient_key)
            w.seal_record("patient.sealed", w.record)
            yield w
    finally:
        for proc in w.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def same_result(got, expected):
    return (got.get("label") == expected["label"] and got.get("label") in ("benign", "malignant") and
            set(got.get("probabilities", {})) == set(expected["probabilities"]) and
            all(abs(got["probabilities"][k] - v) < 1e-6 for k, v in expected["probabilities"].items()))
