# SPDX-License-Identifier: Apache-2.0
"""Shared by the certificate-service tests (cas_service.py, cas_enclave.py): requests signed by
botocore's SigV4Auth (independent of cloister-kms's verifier), sessions, PKCS#10 requests with
the attestation attribute of draft-ietf-lamps-csr-attestation built here byte by byte (DER by
hand, so that the service's reader is checked against an encoder that is not libcloister's),
and the sockets a test enclave needs (a report collector, a capturing relay, a TCP front for a
vsock socket)."""
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

ACCOUNT = "111122223333"
DEV_ARN = "arn:aws:iam::%s:user/dev" % ACCOUNT
ATTR_OID = "1.2.840.113549.1.9.16.2.59"              # id-aa 59: the draft's attestation attribute
NITRO_OID = "2.25.287248209540010470888479378136529205347"  # cloister/csr.h: a Nitro document


def request(endpoint, method, path, body=b"", key=None, secret=None, cafile=None, headers=None, region="us-east-1"):
    """(status, parsed JSON answer) of one request, SigV4-signed (service "kms", in region) when key is given."""
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    if key is not None:
        req = AWSRequest(method=method, url=endpoint + path, data=body, headers=hdrs)
        SigV4Auth(Credentials(key, secret), "kms", region).add_auth(req)
        hdrs = dict(req.headers.items())
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=60, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, {"raw": data.decode(errors="replace")}


def session_doc(name, images, updaters=(DEV_ARN,), readers=(), allow_debug=False, extra_secrets=None,
                predecessor=None, ca_name="Hospital API CA"):
    """A session with one service, api: a CA exported as api_ca_cert, a certificate for `api`, a random
    key and an explicit value delivered to it, and a value nobody exports."""
    d = {"name": name,
         "access": {"read": list(readers), "update": list(updaters)},
         "services": {"api": {"image_sha384": list(images), "allow_debug": allow_debug, "certificate": "api_cert",
                              "secrets": ["db_key", "greeting"]}},
         "secrets": {"api_ca_cert": {"kind": "x509-ca", "common_name": ca_name, "export_public": True},
                     "api_cert": {"kind": "x509", "issuer": "api_ca_cert", "common_name": "api", "dns": ["api"],
                                  "valid_hours": 24},
                     "db_key": {"kind": "random", "size": 32},
                     "greeting": {"kind": "value", "value": "hello from the session"},
                     "internal_note": {"kind": "value", "value": "not for the public"}}}
    d["secrets"].update(extra_secrets or {})
    if predecessor is not None:
        d["predecessor"] = predecessor
    return json.dumps(d, indent=1).encode()


# --- DER, by hand (X.690) --------------------------------------------------------------------

def _len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + _len(len(content)) + content


def seq(*items):
    return tlv(0x30, b"".join(items))


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for v in [arcs[0] * 40 + arcs[1]] + arcs[2:]:
        chunk = [v & 0x7f]
        v >>= 7
        while v:
            chunk.append(0x80 | (v & 0x7f))
            v >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def attestation_bundle(doc, statement_oid=NITRO_OID):
    """AttestationBundle { attestations { AttestationStatement { type, stmt OCTET STRING doc } } }"""
    return seq(seq(seq(oid(statement_oid), tlv(0x04, doc))))


def csr(key, doc, cn="api", bundle=None):
    """A PKCS#10 request (RFC 2986) for an EC or RSA key, with the attestation attribute holding doc
    (or the given bundle bytes, or no attribute when both are None), signed with SHA-256 (ECDSA, or
    RSASSA-PKCS1-v1_5). PEM bytes."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if bundle is None and doc is not None:
        bundle = attestation_bundle(doc)
    attrs = seq(oid(ATTR_OID), tlv(0x31, bundle)) if bundle is not None else b""
    cri = seq(tlv(0x02, b"\x00"), name, spki, tlv(0xA0, attrs))
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(cri, padding.PKCS1v15(), hashes.SHA256())
        alg = seq(oid("1.2.840.113549.1.1.11"), tlv(0x05, b""))  # sha256WithRSAEncryption, NULL parameters
    else:
        sig = key.sign(cri, ec.ECDSA(hashes.SHA256()))
        alg = seq(oid("1.2.840.10045.4.3.2"))  # ecdsa-with-SHA256
    der = seq(cri, alg, tlv(0x03, b"\x00" + sig))
    import base64
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) +
            "\n-----END CERTIFICATE REQUEST-----\n").encode()


def spki_sha256(key):
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)


def first_cert(chain_pem):
    end = "-----END CERTIFICATE-----\n"
    return chain_pem[:chain_pem.index(end) + len(end)]


# --- sockets for test enclaves ----------------------------------------------------------------

class Collector:
    """Length-prefixed JSON reports a test enclave sends on a vsock port (through --proxy)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
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

    def wait(self, pred, timeout=60):
        """The first report after the ones already seen for which pred holds (None on timeout)."""
        with self.cv:
            start = len(self.reports)
            found = []

            def ready():
                found[:] = [r for r in self.reports[start:] if pred(r)]
                return bool(found)
            self.cv.wait_for(ready, timeout)
            return found[0] if found else None

    def wait_any(self, pred, timeout=60):
        """Any report so far (or to come) for which pred holds."""
        with self.cv:
            found = []

            def ready():
                found[:] = [r for r in self.reports if pred(r)]
                return bool(found)
            self.cv.wait_for(ready, timeout)
            return found[0] if found else None

    def close(self):
        self.sock.close()


class Relay:
    """Between the launcher's proxy and a server: keeps every byte, both ways (what the host sees)."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.captured = bytearray()
        threading.Thread(target=self.serve, daemon=True).start()

    def pump(self, a, b, keep):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if keep:
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
            threading.Thread(target=self.pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, True), daemon=True).start()

    def close(self):
        self.sock.close()


class TcpFront:
    """127.0.0.1:PORT in front of a Unix socket (an enclave's vsock-N.sock): what curl connects to."""

    def __init__(self, unix_path):
        self.path = unix_path
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
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
            try:
                u.connect(self.path)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c), daemon=True).start()

    def close(self):
        self.sock.close()


def tls_cert(tmp, names):
    """A self-signed server certificate for cloister-kms's listener (names: DNS names and IP addresses)."""
    key, cert = os.path.join(tmp, "tls.key"), os.path.join(tmp, "tls.pem")
    san = ",".join(("IP:" if n.replace(".", "").isdigit() else "DNS:") + n for n in names)
    r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-keyout", key, "-out", cert, "-subj", "/CN=cloister-kms", "-addext", "subjectAltName=" + san)
    assert r.returncode == 0, r.stderr
    return cert, key
