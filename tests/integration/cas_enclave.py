# SPDX-License-Identifier: Apache-2.0
"""The certificate service end to end with sim enclaves: tests/enclave/enclave_cas.c, built into
images with `cloister enclave build` and run with `cloister enclave run`, obtains its certificate
and secrets from cloister-kms --dev with the guest library (cloister/cas.h) through the launcher's
proxy, and serves HTTPS with it on a vsock port.

- The image the session names gets a certificate for `api`: `openssl verify -CAfile cacert.pem`
  accepts it and `curl --cacert cacert.pem --resolve api:PORT:127.0.0.1` trusts the enclave (cacert.pem
  fetched from GET /v1/values/session=NAME); its secret reached it and crossed the host in no
  readable form.
- It renews in the background (a new serial, the same secret); after an admin removes its
  measurement from the session (an update naming the predecessor's hash), the renewal is refused
  and the enclave keeps serving its current certificate.
- An image changed by one byte, the right image in debug mode, the right image attested by another
  root (a second `cloister enclave init-root`) and a replayed request (the bytes the host relayed,
  sent again) are each refused with their reason, and get no certificate.

Exits 77 when the kernel refuses unprivileged user namespaces (no sim enclave can run)."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import cas_harness as ch  # noqa: E402
import kms_harness  # noqa: E402

C = os.environ["CLOISTER_BIN"]
ENCLAVE = os.environ["ENCLAVE_CAS"]
ADMIN = kms_harness.principal("admin", "adminsecret", "arn:aws:iam::%s:user/admin" % ch.ACCOUNT)
passed = failed = 0
children = []


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def build(tmp, name, pad):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    cfg = {"endpoint": "http://127.0.0.1:4599", "vsock_port": 8000, "session": "hospital", "service": "api",
           "listen_port": 5010, "renew_after": 3, "retry_after": 2}
    open(os.path.join(d, "cas.json"), "w").write(json.dumps(cfg))
    open(os.path.join(d, "pad"), "w").write(pad)
    r = subprocess.run([C, "enclave", "build", "--exe", ENCLAVE, "--file", os.path.join(d, "cas.json"), "--file",
                        os.path.join(d, "pad"), "-o", os.path.join(d, "img")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "img"), json.loads(r.stdout)["Measurements"]["PCR0"]


def launch(tmp, img, pki, relay, coll, *extra):
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", os.path.join(tmp, "state"), "--pki", pki,
                          "--memory", "256", "--quiet", "--proxy", f"8000=127.0.0.1:{relay.port}", "--proxy",
                          f"5000=127.0.0.1:{coll.port}", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    children.append(p)
    return p


def refused_run(tmp, img, pki, relay, coll, *extra):
    """An enclave whose first issuance should fail: its report, once it has exited."""
    seen = len(coll.reports)
    p = launch(tmp, img, pki, relay, coll, *extra)
    p.communicate(timeout=120)
    rep = coll.wait_any(lambda r: r.get("event") == "obtain" and coll.reports.index(r) >= seen, 30)
    return p.returncode, rep or {}


def secret_crossed(captured, digest_hex):
    """Whether bytes whose SHA-256 is digest_hex appear in captured, raw or in base64."""
    want = bytes.fromhex(digest_hex)
    for i in range(len(captured) - 31):
        if hashlib.sha256(captured[i:i + 32]).digest() == want:
            return True
    for m in re.finditer(rb"[A-Za-z0-9+/]{43}=", captured):
        if hashlib.sha256(base64.b64decode(m.group(0))).digest() == want:
            return True
    return False


def curl(front, cacert):
    r = subprocess.run(["curl", "-sS", "--cacert", cacert, "--resolve", f"api:{front.port}:127.0.0.1",
                        f"https://api:{front.port}/health"], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-cas-enclave-")
    proc = None
    try:
        pki, pki2 = os.path.join(tmp, "pki"), os.path.join(tmp, "pki2")
        for d in (pki, pki2):
            r = subprocess.run([C, "enclave", "init-root", "-o", d], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        img_a, pcr_a = build(tmp, "a", "a")
        img_b, pcr_b = build(tmp, "b", "b")
        check(pcr_a != pcr_b, "images differing by one byte have different PCR0s")
        data = os.path.join(tmp, "kms")
        with kms_harness.kms_server(data_dir=data, extra_args=["--attestation-root", os.path.join(pki, "root.pem")],
                                    principals=[ADMIN]) as srv:
            admin = (ADMIN["access_key_id"], ADMIN["secret"])
            doc = ch.session_doc("hospital", [pcr_a], updaters=[ADMIN["arn"]])
            st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/hospital", doc, *admin)
            assert st == 200, a
            r = subprocess.run(f'curl -s -X GET "http://127.0.0.1:{srv.port}/v1/values/session=hospital" | '
                               'jq -r .values.api_ca_cert.value > cacert.pem', shell=True, cwd=tmp, timeout=60)
            cacert = os.path.join(tmp, "cacert.pem")
            relay, coll = ch.Relay(srv.port), ch.Collector()

            proc = launch(tmp, img_a, pki, relay, coll)
            rep = coll.wait(lambda x: x.get("event") == "obtain", 120)
            if rep is None and proc.poll() is not None:
                _, err = proc.communicate(timeout=30)
                if "forbids unprivileged user namespaces" in err:
                    print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
                    return 77
            check(rep is not None and rep.get("ok"), f"the image the session names gets its certificate ({rep})")
            if not (rep and rep.get("ok")):
                return 1
            leaf = os.path.join(tmp, "leaf.pem")
            open(leaf, "w").write(ch.first_cert(rep["chain"]))
            r = ch.openssl("verify", "-CAfile", cacert, "-purpose", "sslserver", "-verify_hostname", "api", leaf)
            check(r.returncode == 0 and b": OK" in r.stdout,
                  "openssl verify -CAfile cacert.pem accepts the enclave's certificate for api: " +
                  (r.stdout + r.stderr).decode().strip())
            check(rep.get("db_key_sha256") is not None, "the enclave got the session's secret (its SHA-256 reported)")
            state = os.path.join(tmp, "state")
            ids = [d for d in os.listdir(state) if os.path.exists(os.path.join(state, d, "vsock-5010.sock"))]
            front = ch.TcpFront(os.path.join(state, ids[0], "vsock-5010.sock"))
            rc, out, err = curl(front, cacert)
            served = json.loads(out) if rc == 0 else {}
            check(rc == 0 and served.get("serial") == rep["serial"],
                  f"curl --cacert cacert.pem --resolve api:{front.port}:127.0.0.1 trusts the enclave ({out.strip()} "
                  f"{err.strip()})")
            r = subprocess.run(["curl", "-sS", "--resolve", f"api:{front.port}:127.0.0.1",
                                f"https://api:{front.port}/"], capture_output=True, text=True, timeout=60)
            check(r.returncode == 60, "without cacert.pem curl does not trust it (exit 60, " + r.stderr.strip() + ")")

            ren = coll.wait(lambda x: x.get("event") == "renewal" and x.get("ok") and x["generation"] >= 2, 60)
            check(ren is not None and ren["serial"] != rep["serial"] and ren["db_key_sha256"] == rep["db_key_sha256"],
                  "the enclave renews in the background: a new certificate, the same secret")
            with relay.lock:
                cap = bytes(relay.captured)
            check(b"POST /v1/certificate" in cap and not secret_crossed(cap, rep["db_key_sha256"]),
                  f"the secret crossed the host proxy in no readable form (raw or base64; {len(cap)} bytes seen)")

            # The host replays a request it relayed: refused, no certificate.
            m = re.search(rb"POST /v1/certificate HTTP/1.1\r\n(.*?)\r\n\r\n", cap, re.S)
            n = int(re.search(rb"Content-Length: (\d+)", m.group(1)).group(1))
            body = cap[m.end():m.end() + n]
            st, a = ch.request(srv.endpoint, "POST", "/v1/certificate", body)
            check(st == 403 and a.get("code") == "NonceReused" and "certificate" not in a,
                  "a replayed request (the bytes the host relayed) is refused: " + a.get("message", ""))

            # The admin takes the image out of the session: its renewals stop; it keeps serving.
            st, g = ch.request(srv.endpoint, "GET", "/v1/sessions/hospital", b"", *admin)
            st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/hospital",
                               ch.session_doc("hospital", [], updaters=[ADMIN["arn"]]), *admin)
            check(st == 409 and g["hash"] in a["message"], "removing it without the predecessor's hash is refused")
            st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/hospital",
                               ch.session_doc("hospital", [], updaters=[ADMIN["arn"]], predecessor=g["hash"]), *admin)
            check(st == 200, f"the admin removes the measurement, naming the predecessor's hash ({a})")
            no = coll.wait(lambda x: x.get("event") == "renewal" and not x.get("ok"), 60)
            check(no is not None and "MeasurementNotInSession" in no["error"] and pcr_a in no["error"],
                  "the next renewal is refused, naming the measurement: " + (no or {}).get("error", ""))
            rc, out, err = curl(front, cacert)
            served = json.loads(out) if rc == 0 else {}
            check(rc == 0 and no is not None and served.get("serial") == no["serial"],
                  f"the enclave keeps serving its current certificate, which curl still trusts ({out.strip()})")
            proc.terminate()
            proc.communicate(timeout=60)
            proc = None
            front.close()
            st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/hospital",
                               ch.session_doc("hospital", [pcr_a], updaters=[ADMIN["arn"]],
                                              predecessor=hashlib.sha256(ch.session_doc(
                                                  "hospital", [], updaters=[ADMIN["arn"]],
                                                  predecessor=g["hash"])).hexdigest()), *admin)
            assert st == 200, a

            rc, rep = refused_run(tmp, img_b, pki, relay, coll)
            check(rc != 0 and not rep.get("ok") and "MeasurementNotInSession" in rep.get("error", "") and
                  pcr_b in rep.get("error", ""), "an image changed by one byte is refused: " + rep.get("error", ""))
            rc, rep = refused_run(tmp, img_a, pki, relay, coll, "--debug")
            check(rc != 0 and not rep.get("ok") and "DebugModeRefused" in rep.get("error", ""),
                  "the right image in debug mode is refused: " + rep.get("error", ""))
            rc, rep = refused_run(tmp, img_a, pki2, relay, coll)
            check(rc != 0 and not rep.get("ok") and "UntrustedRoot" in rep.get("error", ""),
                  "the right image attested by another root is refused: " + rep.get("error", ""))
            relay.close()
            coll.close()
        lines = [json.loads(x) for x in open(os.path.join(data, "audit.log"))]
        issued = [x for x in lines if x["operation"] == "cas:IssueCertificate"]
        outs = {x["outcome"] for x in issued}
        check({"ok", "NonceReused", "MeasurementNotInSession", "DebugModeRefused", "UntrustedRoot"} <= outs,
              f"the audit log has the issuances and each refusal ({sorted(outs)})")
        check(any(x["outcome"] == "MeasurementNotInSession" and x.get("recipient", {}).get("pcr0") == pcr_a
                  for x in issued), "the refused renewal's line names the enclave's PCR0")
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
