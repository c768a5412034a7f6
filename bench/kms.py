#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/kms: Decrypt throughput and latency of cloister-kms next to
moto_server (when one is installed: Debian has no moto), under the same load
in the same run; and attested Decrypt (with Recipient: an attestation document
verified against the sim root, policy condition keys, CiphertextForRecipient
as CMS EnvelopedData to an RSA-2048 key), which moto does not implement.

    /usr/bin/python3 bench/kms.py [--duration S] [--connections N] [--wrk-threads N] [--server-threads N]
                                  [--documents N] [--pg]

Each server gets one symmetric key and a ciphertext of a 32-byte data key;
one Decrypt request is signed with SigV4 by botocore (valid 15 minutes) and
replayed by wrk over keep-alive connections (wrk's Lua `request` hook is not
needed: the request is identical every time). Every answer must be 200: wrk's
"Non-2xx" count is checked. cloister-kms runs with --server-threads workers
(default 2). --pg adds plain Decrypt with the PostgreSQL key store, on a
private PostgreSQL started as tests/integration/kms_pg.py starts it (Unix
socket, same machine). wrk, the servers and anything else on the machine share its
cores: read the figures with that in mind, and record only those taken on a
quiet machine (docs/performance.md says how they were taken)."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import kms_harness  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def signed_decrypt(endpoint, blob, document=None):
    """One Decrypt request signed by botocore: (body, headers without Host)."""
    import base64
    req_body = {"CiphertextBlob": base64.b64encode(blob).decode(), "EncryptionContext": {"bench": "1"}}
    if document is not None:
        req_body["Recipient"] = {"AttestationDocument": base64.b64encode(document).decode(),
                                 "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    body = json.dumps(req_body)
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(),
                     headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Decrypt"})
    SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
    return body, {k: v for k, v in req.headers.items() if k.lower() != "host"}


def bench_blob(endpoint):
    kms = kms_harness.boto_client(endpoint)
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    return kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext={"bench": "1"})["CiphertextBlob"]


def presigned_decrypt(endpoint, document=None):
    """A wrk script replaying one signed Decrypt (with document: attested, the same document each time)."""
    body, headers = signed_decrypt(endpoint, bench_blob(endpoint), document)
    lines = ['wrk.method = "POST"', "wrk.body = " + lua_string(body)]
    for k, v in headers.items():
        lines.append("wrk.headers[%s] = %s" % (lua_string(k), lua_string(v)))
    return "\n".join(lines) + "\n"


def presigned_decrypts(endpoint, documents):
    """A wrk script sending one signed attested Decrypt per document, in turn: each request carries
    a document the server has not verified in the last len(documents) requests (its verified-
    signature memory holds 256), as when every call comes from an enclave that just started."""
    blob = bench_blob(endpoint)
    lines = ["local reqs = {}"]
    host = endpoint.split("://", 1)[1]
    for i, doc in enumerate(documents):
        body, headers = signed_decrypt(endpoint, blob, doc)
        # wrk.format's own Host is wrk.host without the port; the signature covers host:port.
        headers["Host"] = host
        hs = ", ".join("[%s] = %s" % (lua_string(k), lua_string(v)) for k, v in headers.items())
        lines.append('reqs[%d] = wrk.format("POST", "/", {%s}, %s)' % (i + 1, hs, lua_string(body)))
    lines.append("local i = 0")
    lines.append("request = function() i = i %% %d + 1; return reqs[i] end" % len(documents))
    return "\n".join(lines) + "\n"


def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]


def cpu_seconds(pid):
    """utime + stime of every thread of pid so far (proc(5): fields 14 and 15, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(endpoint, script, args, duration, pid=None):
    """wrk against endpoint; with pid, also the server's CPU time per answered request."""
    cpu0 = cpu_seconds(pid) if pid else None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", "%ds" % duration,
                              "--latency", "-s", path, endpoint + "/"], capture_output=True, text=True,
                             timeout=duration + 60).stdout
    finally:
        os.unlink(path)
    cpu = cpu_seconds(pid) - cpu0 if pid else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": unit(*p50.groups()), "p99_ms": unit(*p99.groups()),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else "",
            "cpu_us": cpu / max(total, 1) * 1e6 if cpu is not None else None, "raw": out}


def redis_reference(args, requests=200000):
    """What this machine's loopback and kernel allow a well-tuned event-loop server: redis-server's
    GET over args.connections keep-alive connections, measured by redis-benchmark (one request per
    connection in flight, as wrk does), with redis-server's CPU per request."""
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        print("bench: redis-server/redis-benchmark not installed (./scripts/setup installs them): no reference")
        return None
    port = kms_harness.free_port()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no"], stdout=subprocess.PIPE, text=True)
    try:
        for line in srv.stdout:  # readiness line, not a sleep
            if "Ready to accept connections" in line:
                break
        cpu0 = cpu_seconds(srv.pid)
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get", "-c", str(args.connections),
                              "-n", str(requests), "-q", "--csv"], capture_output=True, text=True,
                             timeout=300).stdout
        cpu = cpu_seconds(srv.pid) - cpu0
    finally:
        srv.terminate()
        srv.wait()
    row = [r for r in out.splitlines() if r.startswith('"GET"')][0]
    cols = [c.strip('"') for c in row.split(",")]
    # --csv columns: test, rps, avg, min, p50, p95, p99, max (ms)
    return {"rps": float(cols[1]), "p50_ms": float(cols[4]), "p99_ms": float(cols[6]), "non2xx": 0,
            "socket_errors": "", "cpu_us": cpu / requests * 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--moto-duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument("--documents", type=int, default=2000,
                    help="distinct attestation documents the fresh runs cycle through: more than cloister-kms "
                         "remembers (1,024 verified chains, 256 verified documents), default 2000")
    ap.add_argument("--pg", action="store_true", help="also Decrypt with the PostgreSQL key store")
    args = ap.parse_args()
    if args.documents <= 1024:
        ap.error("--documents must exceed 1024 (cloister-kms remembers 1,024 verified chains: fewer documents "
                 "would be verified once and then found)")
    results = {}
    tmp = tempfile.mkdtemp(prefix="bench-kms-")
    try:
        with kms_harness.kms_server(os.path.join(tmp, "data"),
                                    extra_args=("--threads", str(args.server_threads))) as srv:
            script = presigned_decrypt(srv.endpoint)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["cloister-kms"] = run_wrk(srv.endpoint, script, args, args.duration, srv.proc.pid)
        if args.pg:
            with kms_harness.pg_server("bench-" + os.urandom(8).hex()) as pg:
                srv = kms_harness.KmsConfigServer(kms_harness.kms_pg_config(pg, os.path.join(tmp, "data-pg"),
                                                                            threads=args.server_threads))
                try:
                    script = presigned_decrypt(srv.endpoint)
                    run_wrk(srv.endpoint, script, args, 2)  # warm-up
                    results["cloister-kms PostgreSQL"] = run_wrk(srv.endpoint, script, args, args.duration,
                                                                 srv.proc.pid)
                finally:
                    srv.stop()
        # Attested Decrypt: one document (as an enclave reuses its document for its calls);
        # the verified-chain cache leaves one ES384 check, one RSA-OAEP encryption per call.
        import recipient_ref
        pki = os.path.join(tmp, "pki")
        subprocess.run([kms_harness.CLI_BIN, "enclave", "init-root", "-o", pki], check=True, capture_output=True)
        _, spki = recipient_ref.rsa_recipient()
        platform = recipient_ref.Platform(pki)
        doc = platform.document(spki, {0: b"\x11" * 48})
        with kms_harness.kms_server(os.path.join(tmp, "data-attested"),
                                    extra_args=("--threads", str(args.server_threads), "--attestation-root",
                                                os.path.join(pki, "root.pem"))) as srv:
            script = presigned_decrypt(srv.endpoint, doc)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["cloister-kms attested"] = run_wrk(srv.endpoint, script, args, args.duration, srv.proc.pid)
            # A fresh document per request: each one's ES384 signature is checked (one P-384
            # verification); the platform's chain is the same, so its verification is cached.
            docs = [platform.document(spki, {0: b"\x11" * 48}, nonce=os.urandom(16)) for _ in range(args.documents)]
            script = presigned_decrypts(srv.endpoint, docs)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["attested, fresh documents"] = run_wrk(srv.endpoint, script, args, args.duration, srv.proc.pid)
            # A fresh enclave per request: each document also has a leaf certificate of its own (as
            # each Nitro enclave's), so the chain's last link is verified too: two P-384 checks.
            docs = [recipient_ref.Platform(pki).document(spki, {0: b"\x11" * 48}, nonce=os.urandom(16))
                    for _ in range(args.documents)]
            script = presigned_decrypts(srv.endpoint, docs)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["attested, fresh enclaves"] = run_wrk(srv.endpoint, script, args, args.duration, srv.proc.pid)
        # moto is the peer only here, and Debian does not package it: without it, say so and
        # leave the comparison out (cloister-kms's own figures stand alone).
        if shutil.which("moto_server"):
            with kms_harness.moto_server() as url:
                script = presigned_decrypt(url)
                results["moto_server"] = run_wrk(url, script, args, args.moto_duration)
        else:
            print("bench: moto_server is not installed (Debian has no moto package): no comparison with it")
        ref = redis_reference(args)
        if ref is not None:
            results["redis-server GET"] = ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("Decrypt of a 32-byte data key, wrk -t%d -c%d, keep-alive, cloister-kms --threads %d, %d cores" %
          (args.wrk_threads, args.connections, args.server_threads, os.cpu_count()))
    print("%-24s %12s %14s %10s %10s %8s" % ("server", "requests/s", "server CPU us", "p50 ms", "p99 ms", "non-2xx"))
    for name, r in results.items():
        cpu = "%.1f" % r["cpu_us"] if r.get("cpu_us") is not None else "-"
        print("%-24s %12.0f %14s %10.2f %10.2f %8d %s" % (name, r["rps"], cpu, r["p50_ms"], r["p99_ms"], r["non2xx"],
                                                         r["socket_errors"]))
    if "redis-server GET" in results:
        print("cloister-kms / redis-server GET: %.2fx requests/s (redis-benchmark's load, same machine, same run)" %
              (results["cloister-kms"]["rps"] / max(results["redis-server GET"]["rps"], 1e-9)))
    if "moto_server" in results:
        ratio = results["cloister-kms"]["rps"] / max(results["moto_server"]["rps"], 1e-9)
        print("cloister-kms / moto_server: %.1fx" % ratio)
    bad = [n for n, r in results.items() if r["non2xx"]]
    if bad:
        print("ERROR: non-2xx answers from %s: the figures above are not Decrypt throughput" % ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
