#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An independent verifier of Nitro attestation documents, for interoperability tests.

Written from the specifications, sharing no code with libcloister: a small CBOR decoder
(RFC 8949), COSE_Sign1 with ES384 (RFC 8152 sections 4.2, 4.4, 8.1) and the certificate
chain of aws-nitro-enclaves-nsm-api docs/attestation_process.md section 3, with Python's
`cryptography` for X.509 and ECDSA.

Usage: attest_ref.py --root ROOT.pem --at UNIX_SECONDS DOC... (DOC binary CBOR or base64)
Prints one JSON object per document; exits 1 if any document fails.
"""
import argparse
import base64
import datetime
import json
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def _head(b, i):
    ib = b[i]
    i += 1
    mt, ai = ib >> 5, ib & 31
    if ai < 24:
        return mt, ai, i
    if ai in (24, 25, 26, 27):
        w = 1 << (ai - 24)
        if i + w > len(b):
            raise ValueError("truncated")
        return mt, int.from_bytes(b[i:i + w], "big"), i + w
    if ai == 31 and mt in (2, 3, 4, 5, 7):
        return mt, None, i
    raise ValueError("reserved additional information %d" % ai)


def _decode(b, i, depth=0):
    if depth > 16:
        raise ValueError("too deep")
    mt, v, i = _head(b, i)
    if mt == 0:
        return v, i
    if mt == 1:
        return -1 - v, i
    if mt in (2, 3):
        if v is None:
            parts = []
            while b[i] != 0xFF:
                p, i = _decode(b, i, depth + 1)
                parts.append(p)
            return (b"".join(parts) if mt == 2 else "".join(parts)), i + 1
        if i + v > len(b):
            raise ValueError("truncated string")
        raw = bytes(b[i:i + v])
        return (raw if mt == 2 else raw.decode("utf-8")), i + v
    if mt == 4:
        out = []
        while (v is None and b[i] != 0xFF) or (v is not None and len(out) < v):
            x, i = _decode(b, i, depth + 1)
            out.append(x)
        return out, (i + 1 if v is None else i)
    if mt == 5:
        out, n = {}, 0
        while (v is None and b[i] != 0xFF) or (v is not None and n < v):
            k, i = _decode(b, i, depth + 1)
            x, i = _decode(b, i, depth + 1)
            if k in out:
                raise ValueError("duplicate key")
            out[k] = x
            n += 1
        return out, (i + 1 if v is None else i)
    if mt == 6:
        x, i = _decode(b, i, depth + 1)
        return Tag(v, x), i
    if v == 20:
        return False, i
    if v == 21:
        return True, i
    if v == 22:
        return None, i
    raise ValueError("unsupported simple value %r" % v)


def cbor_loads(b):
    x, i = _decode(b, 0)
    if i != len(b):
        raise ValueError("trailing bytes")
    return x


def _enc_head(mt, n):
    if n < 24:
        return bytes([mt << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([mt << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError("too large")


def sig_structure(protected, payload):
    """RFC 8152 section 4.4: ["Signature1", protected, h'', payload]."""
    ctx = b"Signature1"
    return (_enc_head(4, 4) + _enc_head(3, len(ctx)) + ctx + _enc_head(2, len(protected)) + protected +
            _enc_head(2, 0) + _enc_head(2, len(payload)) + payload)


def valid_from(cert):
    """The certificate's notBefore, aware (UTC). cryptography has not_valid_before_utc since 42;
    Debian 12's 38 has only the naive not_valid_before, in UTC."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc
    return cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def valid_until(cert):
    """The certificate's notAfter, aware (UTC), as valid_from."""
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def verify(raw, root, at):
    top = cbor_loads(raw)
    if isinstance(top, Tag):
        if top.tag != 18:
            raise ValueError("tag %d" % top.tag)
        top = top.value
    protected, unprotected, payload, signature = top
    if cbor_loads(protected) != {1: -35}:
        raise ValueError("protected header is not {1: -35}")
    if unprotected != {}:
        raise ValueError("unprotected header not empty")
    doc = cbor_loads(payload)
    if doc["digest"] != "SHA384":
        raise ValueError("digest")
    leaf = x509.load_der_x509_certificate(doc["certificate"])
    bundle = [x509.load_der_x509_certificate(c) for c in doc["cabundle"]]
    if bundle[0].public_bytes(serialization.Encoding.DER) != root.public_bytes(serialization.Encoding.DER):
        raise ValueError("cabundle[0] is not the root")
    chain = bundle + [leaf]  # root -> ... -> leaf
    for i, cert in enumerate(chain):
        if not (valid_from(cert) <= at <= valid_until(cert)):
            raise ValueError("certificate %d not valid at %s" % (i, at))
        issuer = chain[max(i - 1, 0)]
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   ec.ECDSA(cert.signature_hash_algorithm))
        if cert.issuer != issuer.subject:
            raise ValueError("certificate %d issuer name mismatch" % i)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if i < len(chain) - 1:
            if not (bc.critical and bc.value.ca and ku.key_cert_sign):
                raise ValueError("certificate %d is not a CA" % i)
            if bc.value.path_length is not None and bc.value.path_length < len(chain) - 2 - i:
                raise ValueError("certificate %d path length exceeded" % i)
        elif bc.value.ca or not ku.digital_signature:
            raise ValueError("leaf is a CA or lacks digitalSignature")
    if len(signature) != 96:
        raise ValueError("signature length")
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    leaf.public_key().verify(encode_dss_signature(r, s), sig_structure(protected, payload),
                             ec.ECDSA(hashes.SHA384()))
    return {
        "module_id": doc["module_id"],
        "timestamp": doc["timestamp"],
        "pcrs": {str(k): v.hex() for k, v in sorted(doc["pcrs"].items())},
        "cabundle": len(bundle),
        "public_key": doc.get("public_key").hex() if doc.get("public_key") is not None else None,
        "user_data": doc.get("user_data").hex() if doc.get("user_data") is not None else None,
        "nonce": doc.get("nonce").hex() if doc.get("nonce") is not None else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--at", required=True, type=int)
    ap.add_argument("docs", nargs="+")
    a = ap.parse_args()
    root = x509.load_pem_x509_certificate(open(a.root, "rb").read())
    at = datetime.datetime.fromtimestamp(a.at, datetime.timezone.utc)
    status = 0
    for path in a.docs:
        raw = open(path, "rb").read()
        if raw[:1] not in (b"\x84", b"\xd2"):
            raw = base64.b64decode(raw)
        try:
            print(json.dumps({"file": path, "ok": True, "doc": verify(raw, root, at)}))
        except Exception as e:  # noqa: BLE001 - report any failure as a verification failure
            print(json.dumps({"file": path, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
