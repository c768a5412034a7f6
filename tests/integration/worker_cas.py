# SPDX-License-Identifier: Apache-2.0
"""The inference worker with a certificate from the certificate service (docs/cas.md,
docs/worker.md "TLS port"): cloister-infer in a sim enclave, its worker.json naming "cas" (the model
owner's cloister-kms, over HTTPS that ends inside the enclave) and "tls_port". At start it attests,
gets a certificate for `api` from the session that names its image, and serves the channel path's
frames over ordinary TLS with it. A Python `ssl` client that trusts only the session's CA
(GET /v1/values/session=hospital) and checks the name `api` sends the patient record and gets
the same result as `cloister infer-local`; a client that trusts another CA is refused in the
handshake; RA-TLS on the channel port is unchanged.

Skips (exit 77) when the kernel refuses unprivileged user namespaces."""
import json
import os
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cas_harness as ch  # noqa: E402
import worker_harness as wh  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def tls_infer(sock_path, cafile, record):
    """One request frame over TLS to the worker's TLS port, the result frame's (type, payload)."""
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(60)
    raw.connect(sock_path)
    with ctx.wrap_socket(raw, server_hostname="api") as s:
        s.sendall(struct.pack(">BI", 1, len(record)) + record)
        head = b""
        while len(head) < 5:
            head += s.recv(5 - len(head))
        t, n = struct.unpack(">BI", head)
        body = b""
        while len(body) < n:
            body += s.recv(n - len(body))
        return t, body, s.getpeercert()


def main():
    try:
        with wh.world(tls=True, cas=True) as w:
            p = w.p
            proc, env_sock, chan_sock = w.start_enclave()
            tls_sock = os.path.join(os.path.dirname(env_sock), f"vsock-{wh.TLS_PORT}.sock")
            check(os.path.exists(tls_sock), "the worker listens on its TLS port")
            r = subprocess.run(f'curl -sk -X GET "{w.srv.endpoint}/v1/values/session=hospital" | '
                               'jq -r .values.api_ca_cert.value > cacert.pem', shell=True, cwd=w.tmp, timeout=60)
            cacert = p("cacert.pem")
            t, body, peer = tls_infer(tls_sock, cacert, w.record)
            got = json.loads(body) if t == 2 else {}
            check(t == 2 and wh.same_result(got, w.expected),
                  f"a TLS client trusting only the session's CA, checking the name api, gets the result {got}")
            check(("DNS", "api") in peer.get("subjectAltName", ()) and
                  dict(x[0] for x in peer["issuer"]).get("commonName") == "Hospital API CA",
                  f"the worker's certificate is the session's, for api ({peer.get('subjectAltName')})")
            other = os.path.join(w.tmp, "other-ca.pem")
            r = ch.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-days", "1", "-keyout", os.path.join(w.tmp, "other-ca.key"), "-out", other, "-subj",
                           "/CN=another CA")
            try:
                tls_infer(tls_sock, other, w.record)
                refused = ""
            except ssl.SSLCertVerificationError as e:
                refused = str(e)
            check("certificate verify failed" in refused,
                  "a client trusting another CA refuses the worker in the handshake: " + refused)
            r = w.run("infer", "--channel", chan_sock, "--root", p("pki", "root.pem"), "--expect-pcr0", w.pcr0,
                      p("patient.json"), "-o", p("ratls.json"), env=w.henv)
            check(r.returncode == 0 and wh.same_result(json.load(open(p("ratls.json"))), w.expected),
                  "RA-TLS on the channel port is unchanged: " + r.stderr.strip())
            audit = [json.loads(x) for x in open(os.path.join(w.srv.data_dir, "audit.log"))]
            ok = [x for x in audit if x["operation"] == "cas:IssueCertificate" and x["outcome"] == "ok"]
            check(len(ok) == 1 and ok[0]["recipient"]["pcr0"] == w.pcr0,
                  "the model owner's audit log has the worker's issuance, with its PCR0")
            with w.kms_relay.lock:
                cap = bytes(w.kms_relay.captured)
            check(b"POST /v1/certificate" not in cap and b"BEGIN CERTIFICATE REQUEST" not in cap,
                  "the exchange with the certificate service is TLS that ends in the enclave: the host sees no request")
            r = w.run("infer", "--enclave", env_sock, "--stop")
            proc.communicate(timeout=60)
            check(proc.returncode == 0, f"the worker stops cleanly, its renewal thread too (exit {proc.returncode})")
    except wh.Skip as e:
        print("SKIP:", e)
        return 77
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
