#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/kms: Decrypt throughput and latency of cloister-kms next to
moto_server (when one is installed: Debian has no moto), under the same load
in the same run; and attested Decrypt (with Recipient: an attestation document
verified against the sim root, policy condition keys, CiphertextForRecipient
as CMS EnvelopedData to an RSA-2048 key), which moto does not implement.

    /usr/bin/python3 bench/kms.py [--duration S] [--connections N] [--wrk-threads N] [--server-threads N] [--pg]

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


def presigned_decrypt(endpoint, document=None):
    kms = kms_harness.boto_client(endpoint)
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext={"bench": "1"})["CiphertextBlob"]
    import base64
    req_body = {"CiphertextBlob": base64.b64encode(blob).decode(), "EncryptionContext": {"bench": "1"}}
    if document is not None:
        req_body["Recipient"] = {"AttestationDocument": base64.b64encode(document).decode(),
                                 "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    body = json.dumps(req_body)
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(),
                     headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Decrypt"})
    SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
    lines = ['wrk.method = "POST"', "wrk.body = " + lua_string(body)]
    for k, v in req.headers.items():
        if k.lower() != "host":
            lines.append("wrk.headers[%s] = %s" % (lua_string(k), lua_string(v)))
    return "\n".join(lines) + "\n"


def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]


def run_wrk(endpoint, script, args, duration):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", "%ds" % duration,
                              "--latency", "-s", path, endpoint + "/"], capture_output=True, text=True,
                             timeout=duration + 60).stdout
    finally:
        os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": unit(*p50.groups()), "p99_ms": unit(*p99.groups()),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else "",
            "raw": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--moto-duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument("--pg", action="store_true", help="also Decrypt with the PostgreSQL key store")
    args = ap.parse_args()
    results = {}
    tmp = tempfile.mkdtemp(prefix="bench-kms-")
    try:
        with kms_harness.kms_server(os.path.join(tmp, "data"),
                                    extra_args=("--threads", str(args.server_threads))) as srv:
            script = presigned_decrypt(srv.endpoint)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["cloister-kms"] = run_wrk(srv.endpoint, script, args, args.duration)
        if args.pg:
            with kms_harness.pg_server("bench-" + os.urandom(8).hex()) as pg:
                srv = kms_harness.KmsConfigServer(kms_harness.kms_pg_config(pg, os.path.join(tmp, "data-pg"),
                                                                            threads=args.server_threads))
                try:
                    script = presigned_decrypt(srv.endpoint)
                    run_wrk(srv.endpoint, script, args, 2)  # warm-up
                    results["cloister-kms PostgreSQL"] = run_wrk(srv.endpoint, script, args, args.duration)
                finally:
                    srv.stop()
        # Attested Decrypt: one document (as an enclave reuses its document for its calls);
        # the verified-chain cache leaves one ES384 check, one RSA-OAEP encryption per call.
        import recipient_ref
        pki = os.path.join(tmp, "pki")
        subprocess.run([kms_harness.CLI_BIN, "enclave", "init-root", "-o", pki], check=True, capture_output=True)
        _, spki = recipient_ref.rsa_recipient()
        doc = recipient_ref.Platform(pki).document(spki, {0: b"\x11" * 48})
        with kms_harness.kms_server(os.path.join(tmp, "data-attested"),
                                    extra_args=("--threads", str(args.server_threads), "--attestation-root",
                                                os.path.join(pki, "root.pem"))) as srv:
            script = presigned_decrypt(srv.endpoint, doc)
            run_wrk(srv.endpoint, script, args, 2)  # warm-up
            results["cloister-kms attested"] = run_wrk(srv.endpoint, script, args, args.duration)
        # moto is the peer only here, and Debian does not package it: without it, say so and
        # leave the comparison out (cloister-kms's own figures stand alone).
        if shutil.which("moto_server"):
            with kms_harness.moto_server() as url:
                script = presigned_decrypt(url)
                results["moto_server"] = run_wrk(url, script, args, args.moto_duration)
        else:
            print("bench: moto_server is not installed (Debian has no moto package): no comparison with it")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("Decrypt of a 32-byte data key, wrk -t%d -c%d, keep-alive, cloister-kms --threads %d, %d cores" %
          (args.wrk_threads, args.connections, args.server_threads, os.cpu_count()))
    print("%-22s %12s %10s %10s %8s" % ("server", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
    for name, r in results.items():
        print("%-22s %12.0f %10.2f %10.2f %8d %s" % (name, r["rps"], r["p50_ms"], r["p99_ms"], r["non2xx"],
                                                     r["socket_errors"]))
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
