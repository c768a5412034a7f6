# SPDX-License-Identifier: Apache-2.0
"""Makes Nitro-format attestation documents for tests, independently of libcloister.

A minimal CBOR encoder (RFC 8949 definite lengths), COSE_Sign1 ES384 (RFC 8152 sections
4.2 and 4.4) and the payload map of aws-nitro-enclaves-nsm-api docs/attestation_process.md,
signed by a leaf certificate that Python's `cryptography` issues under the sim platform CA
(`cloister enclave init-root`): the same shape the launcher signs, made by other code."""
import datetime
import os
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < (1 << (8 * struct.calcsize(fmt))):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError("too large")


def cbor(v):
    if v is None:
        return b"\xf6"
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, bytes):
        return _head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(type(v))


def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


class Platform:
    """The sim platform CA from a `cloister enclave init-root` directory (or a fresh
    foreign root when pki is None, for documents that must not verify)."""

    def __init__(self, pki=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        if pki is not None:
            self.root = x509.load_pem_x509_certificate(open(os.path.join(pki, "root.pem"), "rb").read())
            self.ca = x509.load_pem_x509_certificate(open(os.path.join(pki, "platform.pem"), "rb").read())
            self.ca_key = serialization.load_pem_private_key(open(os.path.join(pki, "platform.key"), "rb").read(),
                                                             None)
        else:
            rk = ec.generate_private_key(ec.SECP384R1())
            self.root = self._issue(rk, rk, None, "foreign root", True, now)
            self.ca_key = ec.generate_private_key(ec.SECP384R1())
            self.ca = self._issue(self.ca_key, rk, self.root, "foreign platform", True, now)
        self.leaf_key = ec.generate_private_key(ec.SECP384R1())
        self.leaf = self._issue(self.leaf_key, self.ca_key, self.ca, "i-test-enc0000000000000001", False, now)

    @staticmethod
    def _issue(key, issuer_key, issuer, cn, ca, now):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(issuer.subject if issuer is not None else name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=3))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None if not ca else 1), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                          crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA384())

    def document(self, public_key_der, pcrs, timestamp_ms=None, nonce=None, user_data=None):
        if timestamp_ms is None:
            timestamp_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
        payload = cbor({
            "module_id": "i-test-enc0000000000000001",
            "digest": "SHA384",
            "timestamp": timestamp_ms,
            "pcrs": {i: pcrs.get(i, b"\0" * 48) for i in range(16)},
            "certificate": _der(self.leaf),
            "cabundle": [_der(self.root), _der(self.ca)],
            "public_key": public_key_der,
            "user_data": user_data,
            "nonce": nonce,
        })
        protected = cbor({1: -35})
        to_sign = cbor(["Signature1", protected, b"", payload])
        r, s = decode_dss_signature(self.leaf_key.sign(to_sign, ec.ECDSA(hashes.SHA384())))
        return cbor([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])


def rsa_recipient(bits=2048):
    """An enclave-style ephemeral key: (private key PEM, DER SubjectPublicKeyInfo)."""
    k = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    spki = k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, spki
