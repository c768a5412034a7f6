# SPDX-License-Identifier: Apache-2.0
"""The certificate and configuration service of cloister-kms (docs/cas.md) through real peers,
without an enclave: curl and jq read the exported CA as the walk-through does, botocore signs the
session admins' requests, Python's `cryptography` (recipient_ref.py) makes the attestation
documents under the sim platform of `cloister enclave init-root` and cas_harness.py the PKCS#10
requests with the draft-ietf-lamps-csr-attestation attribute, `openssl verify` checks the issued
certificates and `openssl cms -decrypt` opens the secrets.

- Sessions: created, read, updated only with the predecessor's hash (both hashes in the refusal),
  refused with a clear message and no change when the document is bad, and only for the principals
  the session names; the author cannot lock itself out.
- GET /v1/values/session=NAME answers exactly the exported CA certificate; 404 for no session.
- Issuance: a document whose PCR0 the session lists gets a certificate for `api` that `openssl
  verify -CAfile cacert.pem` accepts and the secrets, sealed to its key; each refusal (a replayed
  request, a key the document does not bind, another root, a measurement not in the session, a
  debug-mode document, a stale document, a nonce not from the service, no evidence) names its
  reason and carries no certificate; each is in the hash-chained audit log.
- Regions: a session admin signs in any region the KMS answers, and sessions are global (one put in
  one region is read in another, by botocore and by `cloister cas session get`); a region the server
  does not answer is refused as the KMS refuses it, in AWS's words, changing nothing.
- The sessions survive a restart."""
import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import cas_harness as ch  # noqa: E402
import kms_harness  # noqa: E402
import recipient_ref  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

CLI = kms_harness.CLI_BIN
OPS = kms_harness.principal("ops", "opssecret", "arn:aws:iam::%s:user/ops" % ch.ACCOUNT)
AUDITOR = kms_harness.principal("auditor", "auditorsecret", "arn:aws:iam::%s:user/auditor" % ch.ACCOUNT)
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-cas-")
    try:
        pki = os.path.join(tmp, "pki")
        r = subprocess.run([CLI, "enclave", "init-root", "-o", pki], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        cert, key = ch.tls_cert(tmp, ["127.0.0.1"])
        data = os.path.join(tmp, "data")
        args = ["--attestation-root", os.path.join(pki, "root.pem"), "--tls-cert", cert, "--tls-key", key]
        good = os.urandom(48)
        with kms_harness.kms_server(data_dir=data, extra_args=args, principals=[OPS, AUDITOR]) as srv:
            cacert = sessions(srv, cert, tmp, good)
            cli(srv, cert, tmp)
            regions(srv, cert, tmp)
            issuance(srv, cert, tmp, pki, good, cacert)
            audit(data)
        with kms_harness.kms_server(data_dir=data, extra_args=args, principals=[OPS, AUDITOR]) as srv:
            st, v = ch.request(srv.endpoint, "GET", "/v1/values/session=hospital", cafile=cert)
            check(st == 200 and v["values"]["api_ca_cert"]["value"] == pem(cacert),
                  "after a restart the session is there, with the same CA")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def pem(path):
    """The PEM that `jq -r` wrote (it adds a newline after the value's own)."""
    return open(path).read().rstrip("\n") + "\n"


def put(srv, cert, name, doc, who=("test", "test")):
    return ch.request(srv.endpoint, "PUT", "/v1/sessions/" + name, doc, key=who[0], secret=who[1], cafile=cert)


def get(srv, cert, name, who=("test", "test")):
    return ch.request(srv.endpoint, "GET", "/v1/sessions/" + name, key=who[0], secret=who[1], cafile=cert)


def sessions(srv, cert, tmp, good):
    doc1 = ch.session_doc("hospital", [good.hex()], readers=[AUDITOR["arn"]])
    h1 = hashlib.sha256(doc1).hexdigest()
    st, a = put(srv, cert, "hospital", doc1)
    check(st == 200 and a.get("created") is True and a.get("hash") == h1 and a.get("predecessor") is None
          and a.get("generated") == 2,
          f"a session is created; its hash is the SHA-256 of the document as sent ({st} {a})")
    st, g = get(srv, cert, "hospital")
    check(st == 200 and g["hash"] == h1 and g["session"].encode() == doc1,
          "GET /v1/sessions/hospital gives back the document byte for byte, with its hash")

    # The walk-through's command, as written (CAS_ADDR, SESSION; curl -k over the service's TLS).
    env = dict(os.environ, CAS_ADDR="127.0.0.1:%d" % srv.port, SESSION="hospital")
    cacert = os.path.join(tmp, "cacert.pem")
    r = subprocess.run('curl -k -X GET "https://${CAS_ADDR}/v1/values/session=$SESSION" | jq -r '
                       '.values.api_ca_cert.value > cacert.pem', shell=True, cwd=tmp, env=env, capture_output=True,
                       text=True, timeout=60)
    ca = x509.load_pem_x509_certificate(open(cacert, "rb").read()) if r.returncode == 0 else None
    check(ca is not None and ca.subject == ca.issuer and
          ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca and
          "Hospital API CA" in ca.subject.rfc4514_string(),
          "curl -k ... /v1/values/session=$SESSION | jq -r .values.api_ca_cert.value > cacert.pem writes the "
          "session's self-signed CA certificate")
    raw = subprocess.run(["curl", "-sk", "https://127.0.0.1:%d/v1/values/session=hospital" % srv.port],
                         capture_output=True, timeout=60).stdout
    v = json.loads(raw)
    check(list(v) == ["values"] and list(v["values"]) == ["api_ca_cert"] and list(v["values"]["api_ca_cert"]) == ["value"]
          and b"PRIVATE KEY" not in raw and b"not for the public" not in raw and b"hello from the session" not in raw,
          "the values answer is exactly {\"values\": {\"api_ca_cert\": {\"value\": PEM}}}: no key, no other secret")
    r = subprocess.run(["curl", "-sk", "-w", "%{http_code}", "https://127.0.0.1:%d/v1/values/session=nobody" % srv.port],
                       capture_output=True, text=True, timeout=60)
    body = r.stdout[:-3]
    check(r.stdout.endswith("404") and json.loads(body) == {"code": "SessionNotFound",
                                                           "message": "there is no session nobody"},
          "an unknown session's values are a 404 JSON error: " + r.stdout)

    # Updates name the predecessor's hash.
    doc2 = ch.session_doc("hospital", [good.hex(), "ab" * 48], readers=[AUDITOR["arn"]])
    h2 = hashlib.sha256(doc2).hexdigest()
    st, a = put(srv, cert, "hospital", doc2)
    check(st == 409 and a["code"] == "PredecessorMismatch" and h1 in a["message"] and h2 in a["message"],
          "an update without the predecessor's hash is refused, naming both hashes: " + a.get("message", ""))
    wrong = "0" * 64
    doc2w = ch.session_doc("hospital", [good.hex(), "ab" * 48], readers=[AUDITOR["arn"]], predecessor=wrong)
    st, a = put(srv, cert, "hospital", doc2w)
    check(st == 409 and wrong in a["message"] and h1 in a["message"],
          "an update naming another predecessor is refused, naming it and the current hash: " + a["message"])
    check(get(srv, cert, "hospital")[1]["hash"] == h1, "the refused updates changed nothing")
    doc2 = ch.session_doc("hospital", [good.hex(), "ab" * 48], readers=[AUDITOR["arn"]], predecessor=h1)
    st, a = put(srv, cert, "hospital", doc2)
    check(st == 200 and a["predecessor"] == h1 and a["created"] is False and a["generated"] == 0,
          f"with the predecessor's hash the update is accepted; unchanged secrets are kept ({a})")
    st, v = ch.request(srv.endpoint, "GET", "/v1/values/session=hospital", cafile=cert)
    check(v["values"]["api_ca_cert"]["value"] == pem(cacert), "the CA is the same after the update")
    h2 = a["hash"]

    # Bad documents: a clear error naming what is wrong, and nothing changes.
    base = json.loads(doc2)
    bad = [
        (b"{\"name\": \"hospital\", ", "not JSON"),
        (dict(base, sevices={}), 'unknown member "sevices"'),
        (dict(base, services={"api": {"image_sha384": ["abcd"]}}), "image_sha384[0] must be 96 hex digits"),
        (dict(base, secrets=dict(base["secrets"], api_cert={"kind": "x509", "issuer": "nope", "common_name": "api"})),
         "\"issuer\" names nope"),
        (dict(base, secrets=dict(base["secrets"], db_key={"kind": "random", "export_public": True})),
         "a random secret cannot be exported publicly"),
        (dict(base, name="clinic"), "\"name\" is clinic but the request puts session hospital"),
        ({k: v for k, v in base.items() if k != "access"}, "\"access\" is missing"),
        (b'{"name": "hospital", "name": "clinic"}', "duplicate object key"),
        (dict(base, secrets=dict(base["secrets"], api_cert=dict(base["secrets"]["api_cert"], dns=["a..b"]))),
         "dns[0] \"a..b\" is not a host name"),
    ]
    for doc, needle in bad:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        st, a = put(srv, cert, "hospital", body)
        check(st == 400 and a.get("code") == "InvalidSession" and needle in a.get("message", ""),
              f"a bad session is refused ({needle}): {st} {a.get('message')}")
    check(get(srv, cert, "hospital")[1]["hash"] == h2, "the bad sessions changed nothing")

    # Who may read and update.
    st, a = get(srv, cert, "hospital", (AUDITOR["access_key_id"], AUDITOR["secret"]))
    check(st == 200 and a["hash"] == h2, "a principal in access.read reads the session")
    st, a = put(srv, cert, "hospital", ch.session_doc("hospital", [], updaters=[ch.DEV_ARN, AUDITOR["arn"]],
                                                      predecessor=h2), (AUDITOR["access_key_id"], AUDITOR["secret"]))
    check(st == 403 and a["code"] == "AccessDenied" and "may not update session hospital" in a["message"],
          "a principal only in access.read may not update it: " + a.get("message", ""))
    st, a = get(srv, cert, "hospital", (OPS["access_key_id"], OPS["secret"]))
    check(st == 403 and a["code"] == "AccessDenied" and OPS["arn"] in a["message"],
          "a principal the session does not name may not read it: " + a.get("message", ""))
    st, a = put(srv, cert, "hospital", ch.session_doc("hospital", [], updaters=[OPS["arn"]], predecessor=h2))
    check(st == 403 and "could not update again" in a["message"],
          "a session its author could not update again is refused: " + a.get("message", ""))
    st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/hospital", doc2, cafile=cert)
    check(st == 403 and a["code"] == "MissingAuthenticationTokenException", "an unsigned update is refused")
    st, a = put(srv, cert, "hospital", doc2, ("test", "wrong"))
    check(st == 400 and a["code"] == "InvalidSignatureException", "an update signed with a wrong secret is refused")
    check(get(srv, cert, "hospital")[1]["hash"] == h2, "the refused requests changed nothing")
    return cacert


def cli(srv, cert, tmp):
    """cloister cas session put|get, with the AWS environment the SDKs read."""
    env = dict(os.environ, AWS_ENDPOINT_URL=srv.endpoint, AWS_CA_BUNDLE=cert, **kms_harness.DEV_ENV)
    doc = os.path.join(tmp, "clinic.json")
    open(doc, "wb").write(ch.session_doc("clinic", ["cd" * 48]))
    r = subprocess.run([CLI, "cas", "session", "put", "clinic", doc], env=env, capture_output=True, text=True,
                       timeout=60)
    a = json.loads(r.stdout) if r.returncode == 0 else {}
    h = hashlib.sha256(open(doc, "rb").read()).hexdigest()
    check(r.returncode == 0 and a.get("hash") == h and a.get("created") is True,
          f"cloister cas session put creates a session, signed as the KMS's callers ({r.returncode} {r.stderr.strip()})")
    out = os.path.join(tmp, "clinic-copy.json")
    r = subprocess.run([CLI, "cas", "session", "get", "clinic", "-o", out], env=env, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0 and json.loads(r.stdout)["hash"] == h and
          hashlib.sha256(open(out, "rb").read()).hexdigest() == h,
          "cloister cas session get -o FILE writes the document exactly: sha256sum FILE is its hash")
    open(doc, "wb").write(ch.session_doc("clinic", ["cd" * 48, "ef" * 48]))
    r = subprocess.run([CLI, "cas", "session", "put", "clinic", doc], env=env, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "PredecessorMismatch" in r.stderr and h in r.stderr,
          "cloister cas session put of an update without the predecessor exits 1 with the service's reason: " +
          r.stderr.strip())
    r = subprocess.run([CLI, "cas", "get-cert", "--endpoint-url", srv.endpoint, "--session", "clinic", "--service",
                        "api", "--output-dir", os.path.join(tmp, "certs")], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "no attestation device" in r.stderr and not os.path.exists(os.path.join(tmp, "certs")),
          "cloister cas get-cert outside an enclave says there is no attestation device, and writes nothing: " +
          r.stderr.strip())


def regions(srv, cert, tmp):
    """SigV4 in the KMS's regions (docs/kms.md, "Regions"): sessions are global, not per region."""
    _, g = get(srv, cert, "hospital")
    for region in ("eu-central-1", "ap-northeast-1"):
        st, a = ch.request(srv.endpoint, "GET", "/v1/sessions/hospital", key="test", secret="test", cafile=cert,
                           region=region)
        check(st == 200 and a["hash"] == g["hash"], f"signed in {region}, GET reads the same session ({st})")
    doc = ch.session_doc("everywhere", ["aa" * 48])
    st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/everywhere", doc, key="test", secret="test", cafile=cert,
                       region="ap-northeast-1")
    check(st == 200 and a["created"] is True, f"a session is created with a request signed in ap-northeast-1 ({a})")
    env = dict(os.environ, AWS_ENDPOINT_URL=srv.endpoint, AWS_CA_BUNDLE=cert,
               **dict(kms_harness.DEV_ENV, AWS_REGION="eu-west-3", AWS_DEFAULT_REGION="eu-west-3"))
    r = subprocess.run([CLI, "cas", "session", "get", "everywhere"], env=env, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0 and json.loads(r.stdout)["hash"] == hashlib.sha256(doc).hexdigest(),
          "cloister cas session get with AWS_REGION=eu-west-3 reads it: " + r.stderr.strip())
    st, a = ch.request(srv.endpoint, "PUT", "/v1/sessions/moon", ch.session_doc("moon", []), key="test",
                       secret="test", cafile=cert, region="moon-base-1")
    check(st == 400 and a == {"code": "InvalidSignatureException",
                              "message": "Credential should be scoped to a valid region, not 'moon-base-1'. This "
                                         "server answers every AWS region (a name like us-east-1, eu-central-1 or "
                                         "ap-northeast-1)."},
          f"a request signed in a region that is no AWS region's name is refused as the KMS refuses it: {a}")
    st, a = get(srv, cert, "moon")
    check(st == 404 and a["code"] == "SessionNotFound", f"the refused request created nothing ({a})")

    # A server that answers only the regions of its config's "regions".
    data = os.path.join(tmp, "restricted")
    cfg = {"listen": "127.0.0.1:0", "threads": 1, "data_dir": data, "regions": ["eu-central-1"],
           "principals": [kms_harness.DEV_PRINCIPAL]}
    path = os.path.join(tmp, "restricted.json")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(cfg, f)
    with kms_harness.kms_server_config(path) as r_srv:
        doc = ch.session_doc("clinic", ["bb" * 48])
        st, a = ch.request(r_srv.endpoint, "PUT", "/v1/sessions/clinic", doc, key="test", secret="test",
                           region="eu-central-1")
        check(st == 200 and a["created"] is True,
              f"with \"regions\": [\"eu-central-1\"], a put signed there works ({a})")
        st, a = ch.request(r_srv.endpoint, "GET", "/v1/sessions/clinic", key="test", secret="test",
                           region="us-east-1")
        check(st == 400 and a == {"code": "InvalidSignatureException",
                                  "message": "Credential should be scoped to a valid region, not 'us-east-1'. This "
                                             "server answers the regions eu-central-1."},
              f"... and a request signed in us-east-1 is refused, naming the regions it answers: {a}")
        for region, ok in (("eu-central-1", True), ("us-east-1", False)):
            env = dict(os.environ, AWS_ENDPOINT_URL=r_srv.endpoint,
                       **dict(kms_harness.DEV_ENV, AWS_REGION=region, AWS_DEFAULT_REGION=region))
            r = subprocess.run([CLI, "cas", "session", "get", "clinic"], env=env, capture_output=True, text=True,
                               timeout=60)
            check((r.returncode == 0) == ok and (ok or ("InvalidSignatureException" in r.stderr and
                                                        "not 'us-east-1'" in r.stderr)),
                  f"cloister cas session get with AWS_REGION={region}: exit {r.returncode} {r.stderr.strip()}")


def issuance(srv, cert, tmp, pki, good, cacert):
    platform, foreign = recipient_ref.Platform(pki), recipient_ref.Platform(None)

    def nonce():
        st, a = ch.request(srv.endpoint, "GET", "/v1/nonce", cafile=cert)
        assert st == 200, a
        return bytes.fromhex(a["nonce"])

    def attest(pcr0, plat=platform, key=None, n=None, ts=None, user_data=None, recipient=True):
        key = key or ec.generate_private_key(ec.SECP256R1())
        rk_pem, rk_spki = recipient_ref.rsa_recipient() if recipient else (None, None)
        doc = plat.document(rk_spki, {0: pcr0}, timestamp_ms=ts, nonce=nonce() if n is None else n,
                            user_data=ch.spki_sha256(key) if user_data is None else user_data)
        return key, rk_pem, doc

    def issue(csr_pem, session="hospital"):
        body = json.dumps({"session": session, "service": "api", "csr": csr_pem.decode()}).encode()
        return ch.request(srv.endpoint, "POST", "/v1/certificate", body, cafile=cert)

    key, rk_pem, doc = attest(good)
    req = ch.csr(key, doc)
    path = os.path.join(tmp, "req.pem")
    open(path, "wb").write(req)
    r = ch.openssl("req", "-in", path, "-verify", "-noout")
    check(r.returncode == 0, "the test's PKCS#10 request with the attestation attribute is one openssl verifies")
    st, a = issue(req)
    check(st == 200 and "certificate" in a, f"a document whose PCR0 the session lists gets a certificate ({st} "
                                            f"{a.get('message', '')})")
    if st == 200:
        leaf = os.path.join(tmp, "leaf.pem")
        open(leaf, "w").write(a["certificate"])
        r = ch.openssl("verify", "-CAfile", cacert, "-purpose", "sslserver", "-verify_hostname", "api", leaf)
        check(r.returncode == 0 and b"leaf.pem: OK" in r.stdout,
              "openssl verify -CAfile cacert.pem accepts it for host api: " + (r.stdout + r.stderr).decode().strip())
        c = x509.load_pem_x509_certificate(a["certificate"].encode())
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        life = c.not_valid_after - c.not_valid_before
        check(san == ["api"] and c.public_key().public_bytes(serialization.Encoding.DER,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo) ==
              key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
              and datetime.timedelta(hours=24) <= life <= datetime.timedelta(hours=24, minutes=2),
              f"the certificate is for the request's key, DNS name api, about 24 h ({life})")
        check(a["certificate_chain"] == a["certificate"] + pem(cacert) and a["ca_certificate"] == pem(cacert),
              "the chain is the leaf and the session's CA")
        cms = os.path.join(tmp, "secrets.der")
        open(cms, "wb").write(base64.b64decode(a["secrets"]))
        kp = os.path.join(tmp, "rk.pem")
        open(kp, "wb").write(rk_pem)
        r = ch.openssl("cms", "-decrypt", "-inform", "DER", "-in", cms, "-inkey", kp, "-binary")
        s = json.loads(r.stdout) if r.returncode == 0 else {}
        sec = s.get("secrets", {})
        check(sorted(sec) == ["db_key", "greeting"] and len(base64.b64decode(sec["db_key"])) == 32 and
              base64.b64decode(sec["greeting"]) == b"hello from the session",
              "openssl cms -decrypt opens the secrets with the document's key: the service's two, nothing else")
    st, a = issue(req)
    check(st == 403 and a["code"] == "NonceReused" and "certificate" not in a,
          "the same request again (a replayed document) is refused: " + a.get("message", ""))

    key2 = ec.generate_private_key(ec.SECP256R1())
    _, _, doc = attest(good)
    st, a = issue(ch.csr(key2, doc))
    check(st == 403 and a["code"] == "KeyNotBound" and "certificate" not in a,
          "a request whose key the document does not bind is refused: " + a.get("message", ""))
    key, _, doc = attest(good, plat=foreign)
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "UntrustedRoot" and "wrong root" in a["message"] and "certificate" not in a,
          "a document from another root is refused: " + a.get("message", ""))
    other = os.urandom(48)
    key, _, doc = attest(other)
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "MeasurementNotInSession" and other.hex() in a["message"]
          and "certificate" not in a, "a measurement not in the session is refused, naming it: " + a.get("message", ""))
    key, _, doc = attest(b"\0" * 48)
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "DebugModeRefused" and "debug-mode" in a["message"] and "certificate" not in a,
          "a debug-mode document (PCR0 zero) is refused: " + a.get("message", ""))
    old = int((datetime.datetime.now(datetime.timezone.utc).timestamp() - 600) * 1000)
    key, _, doc = attest(good, ts=old)
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "StaleDocument" and "certificate" not in a,
          "a document older than attestation_max_age is refused: " + a.get("message", ""))
    key, _, doc = attest(good, n=os.urandom(41))
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "NonceInvalid" and "not one this service issued" in a["message"],
          "a document whose nonce the service did not issue is refused: " + a.get("message", ""))
    key, _, doc = attest(good)
    st, a = issue(ch.csr(key, None))
    check(st == 400 and a["code"] == "NoEvidence", "a request without evidence is refused: " + a.get("message", ""))
    st, a = issue(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    check(st == 400 and a["code"] == "InvalidCsr", "a request that is not PKCS#10 is refused: " + a.get("message", ""))
    st, a = issue(ch.csr(key, doc), session="nobody")
    check(st == 404 and a["code"] == "SessionNotFound", "a request for no session is a 404")
    body = json.dumps({"session": "hospital", "service": "db", "csr": ch.csr(key, doc).decode()}).encode()
    st, a = ch.request(srv.endpoint, "POST", "/v1/certificate", body, cafile=cert)
    check(st == 404 and a["code"] == "ServiceNotFound" and "has no service db" in a["message"],
          "a request for a service the session does not have is a 404: " + a.get("message", ""))
    rkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key, _, doc = attest(good, key=rkey)
    st, a = issue(ch.csr(rkey, doc))
    check(st == 403 and a["code"] == "KeyTypeMismatch" and "RSA 2048 bits" in a["message"] and "EC_P256" in a["message"],
          "a request whose key is not the session's key_type is refused: " + a.get("message", ""))
    key, _, doc = attest(good, recipient=False)
    st, a = issue(ch.csr(key, doc))
    check(st == 403 and a["code"] == "NoRecipientKey" and "certificate" not in a,
          "a document without a public_key for the service's secrets is refused: " + a.get("message", ""))

    # At once: eight enclaves' requests, and one request sent twice together (one wins, one is a replay).
    import threading
    reqs = [ch.csr(k, d) for k, _, d in (attest(good) for _ in range(8))]
    twice = reqs[0]
    results = [None] * (len(reqs) + 1)

    def go(i, r):
        results[i] = issue(r)
    ts = [threading.Thread(target=go, args=(i, r)) for i, r in enumerate(reqs + [twice])]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = sorted(str(st) if st == 200 else a["code"] for st, a in results)
    check(codes == ["200"] * 8 + ["NonceReused"],
          f"eight requests at once are issued, and the one sent twice together is issued once ({codes})")

    # allow_debug: the session's admin may let debug-mode enclaves in (they carry no measurement).
    h = get(srv, cert, "hospital")[1]["hash"]
    st, _ = put(srv, cert, "hospital", ch.session_doc("hospital", [good.hex()], readers=[AUDITOR["arn"]],
                                                      allow_debug=True, predecessor=h))
    key, _, doc = attest(b"\0" * 48)
    st, a = issue(ch.csr(key, doc))
    check(st == 200 and "certificate" in a, "with allow_debug a debug-mode document gets a certificate")


def audit(data):
    r = subprocess.run([CLI, "kms", "audit-verify", os.path.join(data, "audit.log")], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "the audit log's chain verifies: " + (r.stdout + r.stderr).strip()[:200])
    lines = [json.loads(x) for x in open(os.path.join(data, "audit.log"))]
    issued = [x for x in lines if x["operation"] == "cas:IssueCertificate"]
    outcomes = {x["outcome"] for x in issued}
    want = {"ok", "NonceReused", "KeyNotBound", "UntrustedRoot", "MeasurementNotInSession", "DebugModeRefused",
            "StaleDocument", "NonceInvalid", "NoEvidence", "InvalidCsr", "SessionNotFound"}
    check(want <= outcomes, f"issuance and every refusal are in the audit log ({sorted(outcomes)})")
    ok = [x for x in issued if x["outcome"] == "ok"]
    check(all(x.get("resource") == "cas:session/hospital/service/api" and len(x["recipient"]["pcr0"]) == 96 for x in ok),
          "an issuance's line names the session, the service and the enclave's PCR0")
    puts = [x for x in lines if x["operation"] == "cas:PutSession"]
    started = {x["request_id"] for x in puts if x["outcome"] == "started"}
    ran = [x for x in puts if x["outcome"] not in ("started", "MissingAuthenticationTokenException",
                                                    "InvalidSignatureException")]
    outs = {x["outcome"] for x in ran}
    check(all(x["request_id"] in started for x in ran) and {"ok", "PredecessorMismatch", "InvalidSession",
                                                            "AccessDenied"} <= outs,
          f"each session update that ran has its started line; refusals are recorded ({sorted(outs)})")


if __name__ == "__main__":
    sys.exit(main())
