# SPDX-License-Identifier: Apache-2.0
"""cloister-api, the patient-records API (docs/api.md), in a sim enclave with everything real: the
hospital's cloister-kms releasing the records' data key to the API's PCR0 only, the certificate
service (on the model owner's cloister-kms) issuing its certificate for `api`, the classifier worker
enclave (cloister-infer) reached over RA-TLS with its PCR0 pinned, SQLite in the directory the
launcher's --data mounts at /data. Clients: curl (the walk-through's commands, with the bearer
token, --unix-socket to the enclave's host socket instead of --resolve to the TCP port another
part publishes) and Python's ssl + http.client, both trusting only the session's CA.

Checks every route and the contract's errors (messages included), a kill -9 of the API losing no
acknowledged record, the store holding no field value in plaintext, a restart reading the records
again, and an image changed by one byte (a configuration with one token more) being refused the
data key. Skips (exit 77) when the kernel refuses unprivileged user namespaces."""
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cas_harness as ch  # noqa: E402
import kms_harness  # noqa: E402
import worker_harness as wh  # noqa: E402

API = os.environ["CLOISTER_API"]
ROOT = os.environ["CLOISTER_SOURCE_DIR"]
# The demo's MRI model (trained on TCGA-LGG FLAIR slices, TCGA_CS_4944 held out) and the walk-through's slice.
MRI_MODEL = os.path.join(ROOT, "models", "tcga-lgg-unet", "tcga-lgg-unet.onnx")
SLICE = os.path.join(ROOT, "models", "tcga-lgg-unet", "samples", "TCGA_CS_4944.png")
TCGA = os.path.join(ROOT, "models", "tcga-lgg-unet", "samples", "TCGA_CS_4944-10.png")
API_PORT = 4996
passed = failed = 0

WALKTHROUGH = ("fname=Jane&lname=Doe&address='123 Main Street'&city=Richmond&state=Washington&ssn=123-223-2345"
               "&email=nr@aaa.com&dob=01/01/2010&contactphone=123-234-3456&drugallergies='Sulpha, Penicillin, "
               "Tree Nut'&preexistingconditions='diabetes, hypertension, asthma'&dateadmitted=01/05/2010"
               "&insurancedetails='Primera Blue Cross'")
SECRETS = [b"123-223-2345", b"Primera Blue Cross", b"Sulpha, Penicillin", b"nr@aaa.com", b"123 Main Street",
           b"diabetes, hypertension"]


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


class UnixHTTPS(http.client.HTTPSConnection):
    """HTTPS to host api, over the enclave's host socket."""

    def __init__(self, path, cafile):
        super().__init__("api", API_PORT, context=ssl.create_default_context(cafile=cafile), timeout=120)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(120)
        s.connect(self.unix_path)
        self.sock = self._context.wrap_socket(s, server_hostname="api")


class Api:
    def __init__(self, sock, cafile):
        self.sock, self.cafile = sock, cafile
        self.conn = UnixHTTPS(sock, cafile)

    def call(self, method, path, body=None, token=None, headers=None, fresh=False):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        conn = UnixHTTPS(self.sock, self.cafile) if fresh else self.conn
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        if fresh:
            conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def err(data):
    try:
        return json.loads(data)
    except ValueError:
        return {}


def wdbc_row(i):
    lines = open(wh.DATA).read().splitlines()
    names, values = lines[0].split(","), lines[i].split(",")
    return {n: v for n, v in zip(names, values) if n != "diagnosis"}


def main():
    try:
        with wh.world(tls=True) as w:
            return run_redis(w) if sys.argv[1:] == ["redis"] else run(w)
    except wh.Skip as e:
        print("SKIP:", e)
        return 77


def build_api(w, name, cfg):
    open(w.p(name + ".json"), "w").write(json.dumps(cfg))
    files = ["--file", w.p(name + ".json") + ":/files/api.json", "--file", w.p("kms-ca.pem"),
             "--file", w.p("pki", "root.pem")]
    for f in ("index.html", "app.js", "style.css"):
        files += ["--file", w.p("web", f) + ":/files/web/" + f]
    r = w.run("enclave", "build", "--exe", API, *files, "-o", w.p(name + ".img"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["Measurements"]["PCR0"]


def start_api(w, img, state, proxies, data_dir, wait=True, debug=False):
    state = w.p(state)
    args = [wh.C, "enclave", "run", w.p(img), "--state-dir", state, "--pki", w.p("pki"), "--memory", "256",
            "--quiet"] + (["--data", data_dir] if data_dir else []) + (["--debug", "--attach-console"] if debug else []) + (["--debug", "--attach-console"] if os.environ.get("API_DEBUG") else [])
    for p in proxies:
        args += ["--proxy", p]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w.procs.append(proc)
    if not wait:
        return proc, None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        socks = glob.glob(os.path.join(state, "i-sim-enc*", "vsock-%d.sock" % API_PORT))
        if socks:
            return proc, socks[0]
        time.sleep(0.05)
    out, e = proc.communicate(timeout=60)
    if "forbids unprivileged user namespaces" in e:
        raise wh.Skip("the kernel forbids unprivileged user namespaces")
    raise AssertionError(f"the API did not start (exit {proc.returncode}): {e.strip()[-800:]} {out.strip()[-800:]}")


def curl(*args):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=120)


def start_mri(w):
    """The MRI worker: cloister-infer with the TCGA-LGG U-Net, sealed under the model owner's key (whose
    policy then names both workers' PCR0s); returns (its PCR0, a TCP relay to its channel port)."""
    p = w.p
    r = w.run("seal", "--key", wh.MODEL_ALIAS, MRI_MODEL, "-o", p("mri.sealed"), env=w.env)
    assert r.returncode == 0, r.stderr
    cfg = json.load(open(p("worker.json")))
    cfg["model"] = "/files/mri.sealed"
    open(p("mri.json"), "w").write(json.dumps(cfg))
    r = w.run("enclave", "build", "--exe", os.environ["CLOISTER_INFER"], "--file", p("mri.sealed"), "--file",
              p("mri.json") + ":/files/worker.json", "--file", p("kms-ca.pem"), "-o", p("mri.img"))
    assert r.returncode == 0, r.stderr
    mri_pcr0 = json.loads(r.stdout)["Measurements"]["PCR0"]
    pol = json.loads(wh.policy(w.pcr0))
    pol["Statement"][1]["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR0"] = [w.pcr0, mri_pcr0]
    admin = kms_harness.boto_client(w.srv.endpoint, key="admin", secret="adminsecret", verify=p("kms-ca.pem"))
    kid = admin.describe_key(KeyId=wh.MODEL_ALIAS)["KeyMetadata"]["KeyId"]
    admin.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(pol))
    shutil.copyfile(p("worker.img"), p("classifier.img"))
    shutil.copyfile(p("mri.img"), p("worker.img"))  # start_enclave runs worker.img
    proc, _, chan = w.start_enclave(state="mri-state")
    shutil.copyfile(p("classifier.img"), p("worker.img"))
    return proc, mri_pcr0, wh.Relay(chan)


def run(w):
    p = w.p
    worker, _, chan_sock = w.start_enclave()
    chan_relay = wh.Relay(chan_sock)  # TCP -> the classifier's channel port (the launcher proxies TCP)
    w.mri_proc, mri_pcr0, mri_relay = start_mri(w)
    web_files(w)
    cfg, pcr0, proxies, cacert, rw, ro = setup(w, chan_relay, mri=(mri_pcr0, mri_relay))
    data = p("data")
    os.makedirs(data)
    proc, sock = start_api(w, "api.img", "s1", proxies, data)
    api = Api(sock, cacert)
    return records(w, cfg, pcr0, proxies, cacert, rw, ro, data, proc, sock, api, worker)


def web_files(w):
    os.makedirs(w.p("web"), exist_ok=True)
    for f, text in (("index.html", "<!doctype html><title>records</title>"), ("app.js", "console.log(1);"),
                    ("style.css", "body{margin:0}")):
        open(w.p("web", f), "w").write(text)


class Redis:
    """A private redis-server on 127.0.0.1, durable as the API requires (or not, to be refused)."""

    def __init__(self, d, fsync="always"):
        self.dir, self.port, self.fsync = d, kms_harness.free_port(), fsync
        os.makedirs(d, exist_ok=True)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      self.dir, "--appendonly", "yes", "--appendfsync", self.fsync, "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.cli("PING").stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True,
                              timeout=60)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)


def run_redis(w):
    """The Redis store: records through MULTI/EXEC, kill -9 of redis-server and of the API losing no
    acknowledged record, a dump of everything Redis holds (SCAN and values, the RDB and the AOF)
    without a field value in plaintext, a restart reading them; a Redis without appendfsync always
    refused at start."""
    p = w.p
    if subprocess.run(["sh", "-c", "command -v redis-server redis-cli"], capture_output=True).returncode != 0:
        print("SKIP: redis-server is not installed (./scripts/setup installs it)")
        return 77
    worker, _, chan_sock = w.start_enclave()
    chan_relay = wh.Relay(chan_sock)
    web_files(w)
    red = Redis(p("redis"))
    lax = Redis(p("redis-lax"), fsync="everysec")
    store = {"kind": "redis", "vsock_port": 8003, "prefix": "hospital:"}
    cfg, pcr0, proxies, cacert, rw, ro = setup(w, chan_relay, store=store,
                                               extra_proxies=[f"8003=127.0.0.1:{red.port}"])
    proc, sock = start_api(w, "api.img", "s1", proxies, None)
    api = Api(sock, cacert)
    base = ["--cacert", cacert, "--unix-socket", sock, "-H", "Authorization: Bearer " + rw]
    r = curl(*base, "-X", "POST", "https://api:4996/patient/patient_3", "-d", WALKTHROUGH, "-w", "\n%{http_code}")
    body, code = r.stdout.rsplit("\n", 1)
    rec = json.loads(body) if code == "201" else {}
    check(code == "201" and rec.get("ssn") == "123-223-2345", f"the walk-through's POST into Redis: {code}")
    r = curl(*base, "https://api:4996/patient/patient_3")
    check(json.loads(r.stdout or "{}") == rec, "GET reads it back from Redis")
    acked = {}
    for i in range(20):
        st, h, d = api.call("POST", f"/patient/k{i}", body=f"fname=K{i}&ssn=999-00-{i:04d}", token=rw,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        if st == 201:
            acked[f"k{i}"] = err(d)
    check(len(acked) == 20, "20 records acknowledged")
    st, h, d = api.call("GET", "/patients?limit=2&after=k1", token=ro)
    check(st == 200 and err(d) == {"ids": ["k10", "k11"], "next": "k11"}, f"paging from Redis's sorted set: {d}")
    st, h, d = api.call("DELETE", "/patient/k19", token=rw)
    check(st == 200, "DELETE from Redis")
    del acked["k19"]
    red.kill9()
    st, h, d = api.call("GET", "/patient/k1", token=ro, fresh=True)
    check(st == 503 and err(d).get("error") == "ServiceUnavailable" and "Redis" in err(d).get("reason", ""),
          f"with redis-server killed: 503 saying so ({st} {d[:200]})")
    red.start()
    back = {k: err(api.call("GET", f"/patient/{k}", token=ro, fresh=True)[2]) for k in acked}
    check(back == acked, "kill -9 of redis-server: every acknowledged record is back after its restart (AOF, "
                         "appendfsync always), and the API reconnects by itself")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc, sock = start_api(w, "api.img", "s2", proxies, None)
    api = Api(sock, cacert)
    back = {k: err(api.call("GET", f"/patient/{k}", token=ro)[2]) for k in acked}
    check(back == acked and api.call("GET", "/patient/k19", token=ro)[0] == 404,
          "kill -9 of the API, restarted: the same data key from the blob in Redis, every record, the delete kept")
    # Everything Redis holds: SCAN and each value, then the RDB (SAVE) and the AOF files.
    keys = red.cli("--scan").stdout.split()
    dump = b"\n".join(keys)
    for k in keys:
        t = red.cli("TYPE", k).stdout.strip()
        dump += red.cli("ZRANGE", k, "0", "-1").stdout if t == b"zset" else red.cli("GET", k).stdout
    red.cli("SAVE")
    files = [os.path.join(d, f) for d, _, fs in os.walk(p("redis")) for f in fs]
    disk = b"".join(open(f, "rb").read() for f in files)
    check(any(f.endswith(".rdb") for f in files) and any(".aof" in f for f in files),
          f"Redis's files: {[os.path.relpath(f, p('redis')) for f in files]}")
    check(b"hospital:r:patient_3" in keys and b"hospital:m:data_key" in keys and len(dump) > 2000,
          f"the dump has the records' keys and values ({len(keys)} keys, {len(dump)} bytes)")
    leaked = [x for x in SECRETS + [b"999-00-0007", b"Jane"] if x in dump or x in disk]
    check(not leaked, f"no field value in plaintext in SCAN + values, the RDB or the AOF ({leaked})")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    # The data key's ciphertext removed (by the host): no new key beside the records, the start stops.
    check(red.cli("DEL", "hospital:m:data_key").stdout.strip() == b"1", "the host deletes the data key's ciphertext")
    proc3, _ = start_api(w, "api.img", "s4", proxies, None, wait=False, debug=True)
    out, e = proc3.communicate(timeout=120)
    check(proc3.returncode != 0 and "has records but not the data key's ciphertext" in out,
          "records without the data key's ciphertext: no new key, the start stops: " +
          out.strip()[-900:])
    # A Redis that does not fsync every write: refused at start (the console of a debug enclave says why).
    cfg2 = dict(cfg)
    pcr_lax = build_api(w, "api-lax", cfg2)
    proc2, _ = start_api(w, "api-lax.img", "s3", proxies[:3] + [f"8003=127.0.0.1:{lax.port}"], None, wait=False,
                         debug=True)
    out, e = proc2.communicate(timeout=120)
    check(proc2.returncode != 0 and "appendfsync everysec" in out and "appendfsync always" in out,
          "a Redis with appendfsync everysec is refused at start: " + out.strip().splitlines()[-1][-300:])
    for x in (red, lax):
        x.kill9()
    worker.kill()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def setup(w, chan_relay, store=None, extra_proxies=(), mri=None):
    """Tokens, the API's image and its PCR0 in the hospital's key policy and the CAS session."""
    p = w.p
    tokens = {}
    for scope in ("read,write", "read"):
        r = w.run("api", "token", "create", "--scope", scope, "--name", scope)
        check(r.returncode == 0 and len(r.stdout.splitlines()) == 2,
              f"cloister api token create --scope {scope} prints the token and its configuration line")
        tok, line = r.stdout.splitlines()
        tokens[scope] = (tok, json.loads(line))
    rw, ro = tokens["read,write"][0], tokens["read"][0]
    check(tokens["read"][1]["sha256"] == __import__("hashlib").sha256(ro.encode()).hexdigest() and
          tokens["read"][1]["scopes"] == "read", "the configuration line holds the token's SHA-256 and scopes only")
    r = w.run("api", "token", "create", "--scope", "admin")
    check(r.returncode == 2 and "each scope is read or write" in r.stderr, "an unknown scope is refused: " + r.stderr)
    cfg = {"listen_port": API_PORT, "read_timeout": 20, "cors_origin": "*", "static_dir": "/files/web",
           "cas": {"endpoint": "https://kms.local:4599", "vsock_port": 8000, "ca_file": "/files/kms-ca.pem",
                   "session": "hospital", "service": "api"},
           "kms": {"endpoint": "https://kms.local:4600", "vsock_port": 8001, "ca_file": "/files/kms-ca.pem",
                   "key_id": "alias/api-records", "access_key_id": "test", "secret_access_key": "test"},
           "tokens": [tokens["read,write"][1], tokens["read"][1]],
           "classifier": {"vsock_port": 8002, "root": "/files/root.pem", "pcr0": w.pcr0}}
    if store is not None:
        cfg["store"] = store
    if mri is not None:
        cfg["mri"] = {"vsock_port": 8004, "root": "/files/root.pem", "pcr0": mri[0]}
        extra_proxies = [*extra_proxies, f"8004=127.0.0.1:{mri[1].port}"]
    pcr0 = build_api(w, "api", cfg)
    hosp_ep = w.henv["AWS_ENDPOINT_URL_KMS"]
    hadmin = kms_harness.boto_client(hosp_ep, key="admin", secret="adminsecret", verify=p("kms-ca.pem"))
    key = hadmin.create_key(Policy=wh.policy(pcr0))["KeyMetadata"]["KeyId"]
    hadmin.create_alias(AliasName="alias/api-records", TargetKeyId=key)
    st, a = ch.request(w.srv.endpoint, "PUT", "/v1/sessions/hospital",
                       ch.session_doc("hospital", [pcr0], updaters=["arn:aws:iam::%s:user/admin" % wh.ACCOUNT]),
                       key="admin", secret="adminsecret", cafile=p("kms-ca.pem"))
    assert st == 200, a
    proxies = [f"8000=127.0.0.1:{w.kms_relay.port}", f"8001=127.0.0.1:{w.hosp_relay.port}",
               f"8002=127.0.0.1:{chan_relay.port}", *extra_proxies]
    r = curl("-k", f"{w.srv.endpoint}/v1/values/session=hospital")
    open(p("cacert.pem"), "w").write(json.loads(r.stdout)["values"]["api_ca_cert"]["value"])
    return cfg, pcr0, proxies, p("cacert.pem"), rw, ro


def records(w, cfg, pcr0, proxies, cacert, rw, ro, data, proc, sock, api, worker):
    p = w.p

    # --- the walk-through's commands, with the token --------------------------------------------------
    base = ["--cacert", cacert, "--unix-socket", sock, "-H", "Authorization: Bearer " + rw]
    r = curl(*base, "-X", "POST", "https://api:4996/patient/patient_3", "-d", WALKTHROUGH, "-w", "\n%{http_code}")
    body, code = r.stdout.rsplit("\n", 1)
    rec = json.loads(body) if code == "201" else {}
    check(code == "201" and rec.get("address") == "'123 Main Street'" and
          rec.get("drugallergies") == "'Sulpha, Penicillin, Tree Nut'" and rec.get("id") == "patient_3" and
          rec.get("score") is None and list(rec) == sorted(rec),
          f"curl -X POST .../patient/patient_3 -d ... : 201, fields byte-exact, sorted keys ({code} {body[:200]} {r.stderr[-300:]})")
    r = curl(*base, "-X", "GET", "https://api:4996/patient/patient_3")
    check(json.loads(r.stdout) == rec, "curl -X GET .../patient/patient_3 gives the stored record")
    r = curl(*base, "-X", "GET", "https://api:4996/score/patient_3", "-w", "\n%{http_code}")
    check(r.stdout.endswith("422") and '"error":"NoMeasurements"' in r.stdout,
          "GET /score of a record without measurements: 422 NoMeasurements: " + r.stdout)

    # --- records with measurements: scored by the classifier enclave ----------------------------------
    row = wdbc_row(1)
    st, h, d = api.call("POST", "/patient/p1", body=json.dumps(dict(row, fname="Ann")), token=rw,
                        headers={"Content-Type": "application/json"})
    expected = w.expected["probabilities"]["malignant"]
    got = err(d)
    check(st == 201 and abs(got.get("score", -1) - expected) < 1e-6 and got.get("mean_radius") == 17.99,
          f"POST JSON with the 30 measurements: 201 with the classifier's score {got.get('score')} (expected {expected})")
    st, h, d = api.call("GET", "/score/p1", token=ro)
    check(st == 200 and err(d).get("id") == "p1" and abs(err(d).get("score", -1) - expected) < 1e-6,
          f"GET /score/p1 with a read token: {st} {d[:100]}")
    st, h, d = api.call("POST", "/patient/p1", body="fname=Bob", token=rw,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 200 and err(d) == {"fname": "Bob", "id": "p1", "score": None}, f"a replaced record: 200 {d}")

    # --- authentication ------------------------------------------------------------------------------
    st, h, d = api.call("GET", "/patient/patient_3")
    check(st == 401 and h.get("www-authenticate") == 'Bearer realm="cloister-api"' and
          err(d).get("error") == "Unauthorized" and "bearer token" in err(d).get("reason", ""),
          f"no token: 401 with WWW-Authenticate ({st} {d})")
    st, h, d = api.call("GET", "/patient/patient_3", token="clapi_not-a-token")
    check(st == 401 and "not one the API's configuration names" in err(d).get("reason", ""), f"unknown token: {d}")
    st, h, d = api.call("GET", "/patient/patient_3", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    check(st == 401 and "is not \\\"Bearer <token>\\\"" in d.decode(), f"another scheme: 401 {d}")
    st, h, d = api.call("POST", "/patient/x", body="fname=a", token=ro,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 403 and err(d) == {"error": "Forbidden",
                                   "reason": "this token has scope read; POST /patient needs write"},
          f"a read token writing: 403 as the contract words it ({d})")
    st, h, d = api.call("DELETE", "/patient/p1", token=ro)
    check(st == 403, "a read token deleting: 403")

    # --- bad input: the reason says what, nothing is stored -------------------------------------------
    cases = [("/patient/bad%20id", "fname=a", 400, "is not valid"),
             ("/patient/" + "x" * 65, "fname=a", 400, "is not valid"),
             ("/patient/p2", "fname=a&colour=red", 400, 'unknown field \\"colour\\"'),
             ("/patient/p2", "fname=" + "a" * 1025, 400, "is 1025 bytes; at most 1024"),
             ("/patient/p2", "mean_radius=12", 400, "has 1 of the 30 measurements"),
             ("/patient/p2", "fname=a&fname=b", 400, "given twice"),
             ("/patient/p2", "fname=%zz", 400, "not followed by two hex digits"),
             ("/patient/p2", "x" * (64 * 1024 + 1), 413, "takes at most 65536")]
    for path, body, code, needle in cases:
        st, h, d = api.call("POST", path, body=body, token=rw, fresh=True,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(st == code and needle in d.decode(), f"POST {path[:30]} {body[:30]!r}: {code} with {needle!r} ({st} {d[:160]})")
    st, h, d = api.call("POST", "/patient/p2", body="<x/>", token=rw, headers={"Content-Type": "text/xml"})
    check(st == 415 and err(d).get("error") == "UnsupportedMediaType", f"text/xml: 415 ({d})")
    st, h, d = api.call("POST", "/patient/p2", body='{"fname": 1}', token=rw,
                        headers={"Content-Type": "application/json"})
    check(st == 400 and "must be a string" in d.decode(), f"JSON with a number for a text field: 400 ({d})")
    st, h, d = api.call("GET", "/patient/p2", token=ro)
    check(st == 404 and err(d) == {"error": "NotFound", "reason": "no patient p2"}, "nothing was stored: 404")
    st, h, d = api.call("PUT", "/patient/p2", body="", token=rw)
    check(st == 405 and h.get("allow") == "GET, POST, DELETE", f"PUT: 405 with Allow ({h.get('allow')})")

    # --- listing, deleting ------------------------------------------------------------------------------
    for i in range(5):
        st, h, d = api.call("POST", f"/patient/list_{i}", body=f"fname=n{i}", token=rw,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    st, h, d = api.call("GET", "/patients?limit=3", token=ro)
    check(st == 200 and err(d) == {"ids": ["list_0", "list_1", "list_2"], "next": "list_2"}, f"paging: {d}")
    st, h, d = api.call("GET", "/patients?limit=3&after=list_2", token=ro)
    check(st == 200 and err(d) == {"ids": ["list_3", "list_4", "p1"], "next": "p1"}, f"the next page: {d}")
    st, h, d = api.call("GET", "/patients?limit=0", token=ro)
    check(st == 400 and "from 1 to 1000" in d.decode(), f"limit 0: 400 ({d})")
    st, h, d = api.call("DELETE", "/patient/list_4", token=rw)
    check(st == 200 and err(d) == {"deleted": True, "id": "list_4"}, f"DELETE: {d}")
    st, h, d = api.call("DELETE", "/patient/list_4", token=rw)
    check(st == 404, "DELETE again: 404")

    # --- static files, CORS ------------------------------------------------------------------------------
    st, h, d = api.call("GET", "/")
    check(st == 200 and h.get("content-type", "").startswith("text/html") and b"records" in d, "GET / is index.html")
    st, h, d = api.call("GET", "/app.js")
    check(st == 200 and h.get("content-type", "").startswith("text/javascript"), "app.js as JavaScript")
    st, h, d = api.call("GET", "/style.css")
    check(st == 200 and h.get("content-type", "").startswith("text/css") and h.get("access-control-allow-origin") == "*",
          "style.css as CSS, with CORS")
    for path in ("/../files/api.json", "/%2e%2e/api.json", "/.hidden", "/web/../api.json"):
        st, h, d = api.call("GET", path, fresh=True)
        check(st == 404 and b"sha256" not in d, f"GET {path}: 404, nothing outside the web directory")
    st, h, d = api.call("OPTIONS", "/patient/p1", headers={"Origin": "http://localhost:8000",
                                                           "Access-Control-Request-Method": "POST"})
    check(st == 204 and h.get("access-control-allow-methods") == "GET, POST, DELETE" and
          h.get("access-control-allow-headers") == "Authorization, Content-Type, Accept", "OPTIONS preflight: 204")

    # --- delineation: the MRI enclave over RA-TLS ---------------------------------------------------------
    for img in [SLICE] + ([TCGA] if TCGA else []):
        r = w.run("infer-local", MRI_MODEL, img, "-o", p("expected.png"), "--force")
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        name = os.path.basename(img)
        r = subprocess.run(["curl", "-sS", "--cacert", cacert, "--unix-socket", sock, "-X", "POST",
                            "https://api:4996/delineate", "-F", "img=@" + img, "-H", "Authorization: Bearer " + ro,
                            "-o", p("got.png"), "-w", "%{http_code} %{content_type}"], capture_output=True, text=True,
                           timeout=300)
        check(r.stdout == "200 image/png" and open(p("got.png"), "rb").read() == open(p("expected.png"), "rb").read(),
              f"curl -X POST .../delineate -F img=@{name}: the mask PNG, as cloister infer-local makes it ({r.stdout})")
        st, h, d = api.call("POST", "/delineate", token=ro, headers={"Accept": "application/json",
                                                                      "Content-Type": "multipart/form-data; boundary=XyZ"},
                            body=b"--XyZ\r\nContent-Disposition: form-data; name=\"img\"; filename=\"s.png\"\r\n"
                                 b"Content-Type: image/png\r\n\r\n" + open(img, "rb").read() + b"\r\n--XyZ--\r\n")
        j = err(d)
        check(st == 200 and j.get("model") == summary["model"] and "NOT FOR CLINICAL USE" in j.get("note", "").upper() and
              j.get("width") == summary["width"] and j.get("lesion_pixels") == summary["area_pixels"] and
              j.get("bbox") == summary["bounding_box"] and
              __import__("base64").b64decode(j.get("mask_png", "")) == open(p("expected.png"), "rb").read(),
              f"Accept: application/json: the summary with the mask in base64 ({st} { {k: v for k, v in j.items() if k != 'mask_png'} })")
    st, h, d = api.call("POST", "/delineate", token=ro, body=b"--b\r\nContent-Disposition: form-data; name=\"img\""
                        b"\r\n\r\nnot a png\r\n--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"})
    check(st == 415 and err(d).get("error") == "UnsupportedMediaType" and "not a PNG" in d.decode(),
          f"a field img that is not a PNG: 415 UnsupportedMediaType, as the contract has it ({d})")
    st, h, d = api.call("POST", "/delineate", token=ro, body=b"--b\r\nContent-Disposition: form-data; name=\"x\""
                        b"\r\n\r\nx\r\n--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"})
    check(st == 400 and "no field img" in d.decode(), f"no field img: 400 ({d})")
    # Refused from Content-Length, before the body: the client gets the answer without sending it.
    s = ssl.create_default_context(cafile=cacert).wrap_socket(socket.socket(socket.AF_UNIX), server_hostname="api")
    s.settimeout(60)
    s.connect(sock)
    s.sendall(b"POST /delineate HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + ro.encode() +
              b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n" % (4 * 1024 * 1024 + 8193))
    raw = b""
    while b"}" not in raw:
        more = s.recv(4096)
        if not more:
            break
        raw += more
    s.close()
    check(raw.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in raw and b'"error":"PayloadTooLarge"' in raw and
          b"this route takes at most 4202496" in raw, f"over 4 MiB: 413 before the body is sent ({raw[-160:]})")
    # Expect: 100-continue (curl sends it for large uploads): the interim answer comes before the body.
    s = ssl.create_default_context(cafile=cacert).wrap_socket(socket.socket(socket.AF_UNIX), server_hostname="api")
    s.settimeout(60)
    s.connect(sock)
    form = (b"--b\r\nContent-Disposition: form-data; name=\"img\"\r\n\r\n" + open(SLICE, "rb").read() +
            b"\r\n--b--\r\n")
    s.sendall(b"POST /delineate HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + ro.encode() +
              b"\r\nContent-Type: multipart/form-data; boundary=b\r\nExpect: 100-continue\r\nContent-Length: %d"
              b"\r\nConnection: close\r\n\r\n" % len(form))
    interim = s.recv(4096)
    s.sendall(form)
    raw = b""
    while True:
        more = s.recv(65536)
        if not more:
            break
        raw += more
    s.close()
    check(interim == b"HTTP/1.1 100 Continue\r\n\r\n" and raw.startswith(b"HTTP/1.1 200 OK") and
          b"Content-Type: image/png" in raw and b"\x89PNG" in raw,
          f"Expect: 100-continue: 100 before the body, then the mask ({interim!r} {raw[:40]!r})")
    st, h, d = api.call("POST", "/delineate", token=ro, body=b"img=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 415 and "multipart/form-data" in d.decode(), f"not multipart: 415 ({d[:160]})")
    w.mri_proc.kill()
    w.mri_proc.wait()
    st, h, d = api.call("POST", "/delineate", token=ro, headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
                        body=b"--XyZ\r\nContent-Disposition: form-data; name=\"img\"\r\n\r\n" + open(SLICE, "rb").read() +
                        b"\r\n--XyZ--\r\n")
    check(st == 502 and err(d).get("error") == "UpstreamFailed" and "MRI" in err(d).get("reason", ""),
          f"the MRI enclave gone: 502 UpstreamFailed with the reason ({d[:240]})")

    # --- kill -9: no acknowledged write is lost; the store holds no plaintext ----------------------------
    acked = {}
    for i in range(20):
        st, h, d = api.call("POST", f"/patient/k{i}", body=f"fname=K{i}&ssn=999-00-{i:04d}", token=rw,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        if st == 201:
            acked[f"k{i}"] = err(d)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    check(len(acked) == 20, "20 records acknowledged, then the API killed with SIGKILL")
    stored = b"".join(open(f, "rb").read() for f in glob.glob(os.path.join(data, "*")))
    check(len(stored) > 0 and not any(s in stored for s in SECRETS + [b"999-00-0007", b"Jane"]),
          "the SQLite files (database and WAL) hold no field value in plaintext")
    proc, sock = start_api(w, "api.img", "s2", proxies, data)
    api = Api(sock, cacert)
    back = {k: err(api.call("GET", f"/patient/{k}", token=ro)[2]) for k in acked}
    check(back == acked, "after the restart every acknowledged record reads back as acknowledged")
    st, h, d = api.call("GET", "/patient/patient_3", token=ro)
    check(st == 200 and err(d) == rec, "the walk-through's record too")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)

    r = w.run("enclave", "run", p("api.img"), "--data", "relative/dir")
    check(r.returncode == 2 and "--data relative/dir: give an absolute path of an existing directory" in r.stderr,
          "enclave run --data refuses a relative or missing directory: " + r.stderr.strip()[:200])

    # --- an image one byte different: no data key ------------------------------------------------------
    cfg2 = dict(cfg, read_timeout=21)
    pcr2 = build_api(w, "api2", cfg2)
    check(pcr2 != pcr0, "a configuration changed by one byte is another PCR0")
    proc2, _ = start_api(w, "api2.img", "s3", proxies, data, wait=False)
    out, e = proc2.communicate(timeout=120)
    audit = [json.loads(x) for x in open(os.path.join(w.hosp.data_dir, "audit.log"))]
    denied = [x for x in audit if x.get("recipient", {}).get("pcr0") == pcr2 and x["outcome"] != "ok"]
    check(proc2.returncode != 0 and not glob.glob(p("s3", "i-sim-enc*", "vsock-%d.sock" % API_PORT)) and
          len(denied) >= 1 and denied[0]["operation"] == "Decrypt",
          f"the changed image is refused the records' data key (exit {proc2.returncode}; the hospital's audit log: "
          f"{[(x['operation'], x['outcome']) for x in denied]})")
    worker.kill()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
