#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every key spec cloister-kms makes, with every usage and algorithm AWS gives it (Developer Guide,
"Key spec reference"), driven by boto3 and, for what Debian 12's botocore 1.29 does not model
(DeriveSharedSecret, KeyAgreementAlgorithms, DryRun, Recipient), by kms_harness.NewerKms.
What cloister-kms answers is checked by independent implementations: signatures by the openssl
CLI (dgst for RAW messages, pkeyutl for DIGEST) and by Python cryptography, with the DER public
key GetPublicKey returns; ECDH secrets against cryptography's exchange on the peer's side; RSA
ciphertexts made by cryptography decrypt with Decrypt; data key pairs' private keys match their
public keys and decrypt from their ciphertext. Errors are checked for AWS's code and message
(the messages AWS gives, as recorded by localstack's tests against AWS). Keys are made once per
spec and usage (an RSA-4096 key takes a second)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import recipient_ref  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: E402

ACCT = "111122223333"
HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
RSA_SIGN = ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"]
RSA_ENCRYPT = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
# Key spec reference: the algorithms of each spec and usage.
SIGNING = {"RSA_2048": RSA_SIGN, "RSA_3072": RSA_SIGN, "RSA_4096": RSA_SIGN,
           "ECC_NIST_P256": ["ECDSA_SHA_256"], "ECC_NIST_P384": ["ECDSA_SHA_384"],
           "ECC_NIST_P521": ["ECDSA_SHA_512"], "ECC_SECG_P256K1": ["ECDSA_SHA_256"]}
ENCRYPTION = {"RSA_2048": RSA_ENCRYPT, "RSA_3072": RSA_ENCRYPT, "RSA_4096": RSA_ENCRYPT}
AGREEMENT = {"ECC_NIST_P256": ["ECDH"], "ECC_NIST_P384": ["ECDH"], "ECC_NIST_P521": ["ECDH"]}
MAC = {"HMAC_224": "HMAC_SHA_224", "HMAC_256": "HMAC_SHA_256", "HMAC_384": "HMAC_SHA_384",
       "HMAC_512": "HMAC_SHA_512"}
CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1,
          "ECC_SECG_P256K1": ec.SECP256K1}
# Encrypt's table in the API Reference: the longest plaintext of each RSA spec and algorithm.
OAEP_MAX = {("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
            ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
            ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446}
PAIR_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
              "ECC_SECG_P256K1"]


def err(e):
    return e.exception.response["Error"]["Code"], e.exception.response["Error"]["Message"]


def alg_hash(alg):
    return HASHES[alg[-7:]]()


def oaep(alg):
    h = hashes.SHA1() if alg == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def py_verify(pub, alg, data, sig, digest=False):
    """cryptography's verification; data is the message, or its digest when digest is true."""
    h = alg_hash(alg)
    algo = utils.Prehashed(h) if digest else h
    if alg.startswith("ECDSA"):
        pub.verify(sig, data, ec.ECDSA(algo))
    elif alg.startswith("RSASSA_PSS"):
        pub.verify(sig, data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), algo)
    else:
        pub.verify(sig, data, padding.PKCS1v15(), algo)


class Openssl:
    """The openssl CLI, on the GetPublicKey DER as it comes (-keyform DER)."""

    def __init__(self, tmp):
        self.tmp = tmp

    def file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    @staticmethod
    def _opts(alg, flag):
        md = "sha" + alg[-3:]
        if alg.startswith("RSASSA_PSS"):
            return [flag, "rsa_padding_mode:pss", flag, "rsa_pss_saltlen:digest", flag, "rsa_mgf1_md:" + md]
        if alg.startswith("RSASSA_PKCS1"):
            return [flag, "rsa_padding_mode:pkcs1"]
        return []

    def verify(self, pub_der, alg, data, sig, digest=False):
        """True when openssl verifies sig: `openssl dgst -verify` over the message (RAW), or
        `openssl pkeyutl -verify` over the digest (DIGEST)."""
        pub, s, d = self.file("pub.der", pub_der), self.file("sig", sig), self.file("data", data)
        md = "sha" + alg[-3:]
        if digest:
            argv = ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", pub, "-in", d,
                    "-sigfile", s, "-pkeyopt", "digest:" + md] + self._opts(alg, "-pkeyopt")
        else:
            argv = ["openssl", "dgst", "-" + md, "-keyform", "DER", "-verify", pub, "-signature", s] + \
                self._opts(alg, "-sigopt") + [d]
        r = subprocess.run(argv, capture_output=True, timeout=60)
        return r.returncode == 0 and (b"Verified OK" in r.stdout or b"Signature Verified Successfully" in r.stdout)


class KeySpecs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-keyspecs-")
        cls.cm = kms_harness.kms_server(data_dir=os.path.join(cls.tmp, "data"), principals=(
            kms_harness.principal("alice", "alice-secret", "arn:aws:iam::%s:user/alice" % ACCT),))
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.newer = kms_harness.NewerKms(cls.srv.endpoint)
        cls.alice = kms_harness.boto_client(cls.srv.endpoint, key="alice", secret="alice-secret")
        os.mkdir(os.path.join(cls.tmp, "openssl"))
        cls.openssl = Openssl(os.path.join(cls.tmp, "openssl"))
        cls.keys = {}  # (spec, usage) -> KeyMetadata
        for spec in SIGNING:
            cls.keys[spec, "SIGN_VERIFY"] = cls.create(spec, "SIGN_VERIFY")
        for spec in ENCRYPTION:
            cls.keys[spec, "ENCRYPT_DECRYPT"] = cls.create(spec, "ENCRYPT_DECRYPT")
        for spec in AGREEMENT:
            cls.keys[spec, "KEY_AGREEMENT"] = cls.create(spec, "KEY_AGREEMENT")
        for spec in MAC:
            cls.keys[spec, "GENERATE_VERIFY_MAC"] = cls.create(spec, "GENERATE_VERIFY_MAC")
        cls.sym = cls.kms.create_key()["KeyMetadata"]

    @classmethod
    def create(cls, spec, usage):
        m = cls.kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        assert (m["KeySpec"], m["KeyUsage"]) == (spec, usage), m
        return m

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def kid(self, spec, usage):
        return self.keys[spec, usage]["KeyId"]

    def fails(self, fn, **kw):
        with self.assertRaises(ClientError) as e:
            fn(**kw)
        return err(e)

    def assert_fails(self, code, message, fn, **kw):
        """The error code and exactly AWS's message."""
        got = self.fails(fn, **kw)
        self.assertEqual(got, (code, message), kw)

    def public(self, spec, usage):
        return self.newer.get_public_key(KeyId=self.kid(spec, usage))

    # --- GetPublicKey and DescribeKey: usage and algorithms ------------------------------------

    def test_public_key_and_algorithm_lists(self):
        members = {"SIGN_VERIFY": "SigningAlgorithms", "ENCRYPT_DECRYPT": "EncryptionAlgorithms",
                   "KEY_AGREEMENT": "KeyAgreementAlgorithms", "GENERATE_VERIFY_MAC": "MacAlgorithms"}
        tables = {"SIGN_VERIFY": SIGNING, "ENCRYPT_DECRYPT": ENCRYPTION, "KEY_AGREEMENT": AGREEMENT,
                  "GENERATE_VERIFY_MAC": {s: [a] for s, a in MAC.items()}}
        for (spec, usage), meta in self.keys.items():
            want = tables[usage][spec]
            # DescribeKey (through NewerKms: botocore 1.29 drops KeyAgreementAlgorithms).
            m = self.newer.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
            self.assertEqual((m["KeySpec"], m["KeyUsage"], m[members[usage]]), (spec, usage, want), m)
            for other in set(members.values()) - {members[usage]}:
                self.assertNotIn(other, m, (spec, usage))
            if usage == "GENERATE_VERIFY_MAC":
                self.assertEqual(self.fails(self.kms.get_public_key, KeyId=meta["KeyId"])[0],
                                 "UnsupportedOperationException")
                continue
            r = self.public(spec, usage)
            self.assertEqual((r["KeySpec"], r["KeyUsage"], r[members[usage]], r["KeyId"]),
                             (spec, usage, want, meta["Arn"]))
            for other in set(members.values()) - {members[usage]}:
                self.assertNotIn(other, r, (spec, usage))
            pub = serialization.load_der_public_key(r["PublicKey"])
            if spec.startswith("RSA"):
                self.assertIsInstance(pub, rsa.RSAPublicKey)
                self.assertEqual(pub.key_size, int(spec[4:]))
            else:
                self.assertIsInstance(pub, ec.EllipticCurvePublicKey)
                self.assertIsInstance(pub.curve, CURVES[spec])
            # The DER is exactly the SubjectPublicKeyInfo cryptography writes for it.
            self.assertEqual(pub.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo), r["PublicKey"])
        self.assertEqual(self.newer.describe_key(KeyId=self.sym["KeyId"])["KeyMetadata"]["EncryptionAlgorithms"],
                         ["SYMMETRIC_DEFAULT"])

    # --- Sign / Verify: RAW and DIGEST, verified by openssl and by cryptography -----------------

    def test_sign_every_algorithm_raw_and_digest(self):
        message = b"model.onnx, 93 MB, sha384 4f1c... signed for release 7"
        for spec, algs in SIGNING.items():
            kid = self.kid(spec, "SIGN_VERIFY")
            der = self.public(spec, "SIGN_VERIFY")["PublicKey"]
            pub = serialization.load_der_public_key(der)
            for alg in algs:
                digest = hashlib.new(alg_hash(alg).name, message).digest()
                raw = self.kms.sign(KeyId=kid, Message=message, SigningAlgorithm=alg)
                self.assertEqual((raw["KeyId"], raw["SigningAlgorithm"]), (self.keys[spec, "SIGN_VERIFY"]["Arn"], alg))
                dig = self.kms.sign(KeyId=kid, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)
                for sig in (raw["Signature"], dig["Signature"]):
                    # Both are signatures of the message: cryptography over the message and over its
                    # digest, openssl dgst over the message and pkeyutl over the digest.
                    py_verify(pub, alg, message, sig)
                    py_verify(pub, alg, digest, sig, digest=True)
                    self.assertTrue(self.openssl.verify(der, alg, message, sig), (spec, alg, "openssl dgst"))
                    self.assertTrue(self.openssl.verify(der, alg, digest, sig, digest=True),
                                    (spec, alg, "openssl pkeyutl"))
                    with self.assertRaises(InvalidSignature):
                        py_verify(pub, alg, message + b".", sig)
                    self.assertFalse(self.openssl.verify(der, alg, message + b".", sig), (spec, alg))
                    for mt, m in (("RAW", message), ("DIGEST", digest)):
                        v = self.kms.verify(KeyId=kid, Message=m, MessageType=mt, Signature=sig, SigningAlgorithm=alg)
                        self.assertTrue(v["SignatureValid"])
                    self.assert_fails("KMSInvalidSignatureException", "The signature does not verify with %s under %s "
                                      "for this message" % (alg, self.keys[spec, "SIGN_VERIFY"]["Arn"]),
                                      self.kms.verify, KeyId=kid, Message=message + b".", Signature=sig,
                                      SigningAlgorithm=alg)
                if alg.startswith("ECDSA"):
                    # DER ECDSA-Sig-Value, as AWS returns it.
                    r, s = utils.decode_dss_signature(raw["Signature"])
                    self.assertEqual(utils.encode_dss_signature(r, s), raw["Signature"])
                else:
                    self.assertEqual(len(raw["Signature"]), int(spec[4:]) // 8)

    def test_digest_of_wrong_length(self):
        for spec, algs in SIGNING.items():
            kid = self.kid(spec, "SIGN_VERIFY")
            for alg in algs:
                n = alg_hash(alg).digest_size
                for bad in (n - 1, n + 1, 20):
                    want = ("ValidationException", "Digest is invalid length for algorithm %s." % alg)
                    self.assertEqual(self.fails(self.kms.sign, KeyId=kid, Message=b"d" * bad, MessageType="DIGEST",
                                                SigningAlgorithm=alg), want)
                    self.assertEqual(self.fails(self.kms.verify, KeyId=kid, Message=b"d" * bad, MessageType="DIGEST",
                                                Signature=b"s" * 64, SigningAlgorithm=alg), want)

    def test_raw_message_limit(self):
        """AWS's 4096-byte Message for RAW (and DIGEST) on the new specs too."""
        kid = self.kid("ECC_NIST_P521", "SIGN_VERIFY")
        pub = serialization.load_der_public_key(self.public("ECC_NIST_P521", "SIGN_VERIFY")["PublicKey"])
        m = bytes(range(256)) * 16
        py_verify(pub, "ECDSA_SHA_512", m,
                  self.kms.sign(KeyId=kid, Message=m, SigningAlgorithm="ECDSA_SHA_512")["Signature"])
        self.assert_fails("ValidationException", "1 validation error detected: Value at 'message' failed to satisfy "
                          "constraint: Member must have length less than or equal to 4096", self.kms.sign, KeyId=kid,
                          Message=m + b"x", SigningAlgorithm="ECDSA_SHA_512")

    def test_signing_algorithm_the_key_does_not_support(self):
        cases = [("ECC_NIST_P256", "ECDSA_SHA_384"), ("ECC_NIST_P384", "ECDSA_SHA_256"),
                 ("ECC_NIST_P521", "ECDSA_SHA_384"), ("ECC_SECG_P256K1", "ECDSA_SHA_512"),
                 ("ECC_NIST_P521", "RSASSA_PSS_SHA_512"), ("RSA_4096", "ECDSA_SHA_512"),
                 ("RSA_2048", "SM2DSA")]
        for spec, alg in cases:
            self.assert_fails("InvalidKeyUsageException", "Algorithm %s is incompatible with key spec %s." % (alg, spec),
                              self.kms.sign, KeyId=self.kid(spec, "SIGN_VERIFY"), Message=b"m", SigningAlgorithm=alg)
        self.assertEqual(self.fails(self.kms.sign, KeyId=self.kid("RSA_2048", "SIGN_VERIFY"), Message=b"m",
                                    SigningAlgorithm="RSASSA_PSS_SHA_1")[0], "ValidationException")

    def test_wrong_usage_for_the_operation(self):
        """InvalidKeyUsageException with AWS's message: "<arn> key usage is X which is not valid for Op."."""
        arn = lambda spec, usage: self.keys[spec, usage]["Arn"]  # noqa: E731
        cases = [
            (self.kms.sign, dict(KeyId=self.kid("RSA_2048", "ENCRYPT_DECRYPT"), Message=b"m",
                                 SigningAlgorithm="RSASSA_PSS_SHA_256"), arn("RSA_2048", "ENCRYPT_DECRYPT"),
             "ENCRYPT_DECRYPT", "Sign"),
            (self.kms.sign, dict(KeyId=self.kid("ECC_NIST_P256", "KEY_AGREEMENT"), Message=b"m",
                                 SigningAlgorithm="ECDSA_SHA_256"), arn("ECC_NIST_P256", "KEY_AGREEMENT"),
             "KEY_AGREEMENT", "Sign"),
            (self.kms.verify, dict(KeyId=self.kid("RSA_3072", "ENCRYPT_DECRYPT"), Message=b"m", Signature=b"s",
                                   SigningAlgorithm="RSASSA_PSS_SHA_256"), arn("RSA_3072", "ENCRYPT_DECRYPT"),
             "ENCRYPT_DECRYPT", "Verify"),
            (self.kms.encrypt, dict(KeyId=self.kid("RSA_2048", "SIGN_VERIFY"), Plaintext=b"p",
                                    EncryptionAlgorithm="RSAES_OAEP_SHA_256"), arn("RSA_2048", "SIGN_VERIFY"),
             "SIGN_VERIFY", "Encrypt"),
            (self.kms.encrypt, dict(KeyId=self.kid("ECC_NIST_P384", "KEY_AGREEMENT"), Plaintext=b"p"),
             arn("ECC_NIST_P384", "KEY_AGREEMENT"), "KEY_AGREEMENT", "Encrypt"),
            (self.kms.decrypt, dict(KeyId=self.kid("RSA_4096", "SIGN_VERIFY"), CiphertextBlob=b"c" * 512,
                                    EncryptionAlgorithm="RSAES_OAEP_SHA_256"), arn("RSA_4096", "SIGN_VERIFY"),
             "SIGN_VERIFY", "Decrypt"),
            (self.kms.generate_mac, dict(KeyId=self.kid("ECC_NIST_P521", "SIGN_VERIFY"), Message=b"m",
                                         MacAlgorithm="HMAC_SHA_512"), arn("ECC_NIST_P521", "SIGN_VERIFY"),
             "SIGN_VERIFY", "GenerateMac"),
            (self.newer.derive_shared_secret, dict(KeyId=self.kid("ECC_NIST_P256", "SIGN_VERIFY"),
                                                   KeyAgreementAlgorithm="ECDH", PublicKey=self.peer_der("ECC_NIST_P256")),
             arn("ECC_NIST_P256", "SIGN_VERIFY"), "SIGN_VERIFY", "DeriveSharedSecret"),
            (self.newer.derive_shared_secret, dict(KeyId=self.sym["KeyId"], KeyAgreementAlgorithm="ECDH",
                                                   PublicKey=self.peer_der("ECC_NIST_P256")),
             self.sym["Arn"], "ENCRYPT_DECRYPT", "DeriveSharedSecret"),
            (self.kms.generate_data_key_pair, dict(KeyId=self.kid("HMAC_384", "GENERATE_VERIFY_MAC"),
                                                   KeyPairSpec="ECC_NIST_P256"), arn("HMAC_384", "GENERATE_VERIFY_MAC"),
             "GENERATE_VERIFY_MAC", "GenerateDataKeyPair"),
        ]
        for fn, kw, key_arn, usage, op in cases:
            self.assert_fails("InvalidKeyUsageException", "%s key usage is %s which is not valid for %s." %
                              (key_arn, usage, op), fn, **kw)

    # --- RSA encryption --------------------------------------------------------------------

    def test_rsa_encrypt_decrypt(self):
        for spec in ENCRYPTION:
            meta = self.keys[spec, "ENCRYPT_DECRYPT"]
            pub = serialization.load_der_public_key(self.public(spec, "ENCRYPT_DECRYPT")["PublicKey"])
            for alg in RSA_ENCRYPT:
                limit = OAEP_MAX[spec, alg]
                for n in (1, limit):
                    pt = os.urandom(n)
                    # A ciphertext made by cryptography with the public key decrypts with KMS Decrypt.
                    d = self.kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=pub.encrypt(pt, oaep(alg)),
                                         EncryptionAlgorithm=alg)
                    self.assertEqual((d["Plaintext"], d["KeyId"], d["EncryptionAlgorithm"]), (pt, meta["Arn"], alg))
                    # KMS's own: the raw OAEP output, as long as the modulus.
                    e = self.kms.encrypt(KeyId=meta["KeyId"], Plaintext=pt, EncryptionAlgorithm=alg)
                    self.assertEqual((len(e["CiphertextBlob"]), e["EncryptionAlgorithm"], e["KeyId"]),
                                     (int(spec[4:]) // 8, alg, meta["Arn"]))
                    self.assertEqual(self.kms.decrypt(KeyId=meta["Arn"], CiphertextBlob=e["CiphertextBlob"],
                                                      EncryptionAlgorithm=alg)["Plaintext"], pt)
                # One byte over AWS's bound: refused with AWS's message, nothing encrypted.
                self.assert_fails("ValidationException", "Algorithm %s and key spec %s cannot encrypt data larger than "
                                  "%d bytes." % (alg, spec, limit), self.kms.encrypt, KeyId=meta["KeyId"],
                                  Plaintext=b"x" * (limit + 1), EncryptionAlgorithm=alg)
            # The other OAEP digest does not decrypt it.
            ct = pub.encrypt(b"secret", oaep("RSAES_OAEP_SHA_256"))
            code, msg = self.fails(self.kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=ct,
                                   EncryptionAlgorithm="RSAES_OAEP_SHA_1")
            self.assertEqual(code, "InvalidCiphertextException")
            self.assertIn("does not decrypt with RSAES_OAEP_SHA_1 under %s" % meta["Arn"], msg)

    def test_rsa_decrypt_errors(self):
        meta = self.keys["RSA_2048", "ENCRYPT_DECRYPT"]
        pub = serialization.load_der_public_key(self.public("RSA_2048", "ENCRYPT_DECRYPT")["PublicKey"])
        ct = pub.encrypt(b"database password", oaep("RSAES_OAEP_SHA_256"))
        alg = "RSAES_OAEP_SHA_256"
        # Decrypt of an asymmetric ciphertext needs KeyId (the ciphertext names no key).
        code, msg = self.fails(self.kms.decrypt, CiphertextBlob=ct, EncryptionAlgorithm=alg)
        self.assertEqual(code, "ValidationException")
        self.assertIn("KeyId is required with RSAES_OAEP_SHA_256", msg)
        # ... and the key that made it: another RSA key's private key does not open it.
        other = self.keys["RSA_3072", "ENCRYPT_DECRYPT"]
        code, msg = self.fails(self.kms.decrypt, KeyId=other["KeyId"], CiphertextBlob=ct, EncryptionAlgorithm=alg)
        self.assertEqual(code, "InvalidCiphertextException")
        # Tampered.
        bad = bytes([ct[0] ^ 1]) + ct[1:]
        self.assertEqual(self.fails(self.kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=bad,
                                    EncryptionAlgorithm=alg)[0], "InvalidCiphertextException")
        # Without EncryptionAlgorithm it is read as a symmetric ciphertext blob, which it is not.
        self.assertEqual(self.fails(self.kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=ct)[0],
                         "InvalidCiphertextException")
        # An RSAES algorithm with a symmetric key, SYMMETRIC_DEFAULT with an RSA key (AWS's messages).
        self.assert_fails("InvalidKeyUsageException", "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec "
                          "SYMMETRIC_DEFAULT.", self.kms.decrypt, KeyId=self.sym["KeyId"], CiphertextBlob=ct,
                          EncryptionAlgorithm=alg)
        self.assert_fails("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec "
                          "RSA_2048.", self.kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p")
        self.assert_fails("InvalidKeyUsageException", "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec "
                          "SYMMETRIC_DEFAULT.", self.kms.encrypt, KeyId=self.sym["KeyId"], Plaintext=b"p",
                          EncryptionAlgorithm="RSAES_OAEP_SHA_1")
        # An encryption context binds nothing to an RSA ciphertext: refused rather than ignored.
        for fn, kw in ((self.kms.encrypt, dict(KeyId=meta["KeyId"], Plaintext=b"p")),
                       (self.kms.decrypt, dict(KeyId=meta["KeyId"], CiphertextBlob=ct))):
            code, msg = self.fails(fn, EncryptionContext={"tenant": "a"}, EncryptionAlgorithm=alg, **kw)
            self.assertEqual(code, "ValidationException")
            self.assertIn("encryption context is supported with symmetric encryption KMS keys only", msg)
        # Outside the EncryptionAlgorithmSpec enum; SM2PKE (China Regions only).
        code, msg = self.fails(self.kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSA_OAEP")
        self.assertEqual(code, "ValidationException")
        self.assertIn("failed to satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, "
                      "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]", msg)
        code, msg = self.fails(self.kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p", EncryptionAlgorithm="SM2PKE")
        self.assertEqual(code, "InvalidKeyUsageException")
        self.assertIn("China Regions", msg)
        # Nothing above changed the key: it still decrypts.
        self.assertEqual(self.kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=ct, EncryptionAlgorithm=alg)["Plaintext"],
                         b"database password")

    def test_re_encrypt_across_key_kinds(self):
        rsa_meta = self.keys["RSA_3072", "ENCRYPT_DECRYPT"]
        rsa4 = self.keys["RSA_4096", "ENCRYPT_DECRYPT"]
        pub = serialization.load_der_public_key(self.public("RSA_3072", "ENCRYPT_DECRYPT")["PublicKey"])
        ct = pub.encrypt(b"token 42", oaep("RSAES_OAEP_SHA_1"))
        # RSA -> symmetric: SourceKeyId and SourceEncryptionAlgorithm, as AWS requires.
        r = self.kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa_meta["KeyId"],
                                SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1", DestinationKeyId=self.sym["KeyId"],
                                DestinationEncryptionContext={"app": "x"})
        self.assertEqual((r["SourceKeyId"], r["KeyId"], r["SourceEncryptionAlgorithm"],
                          r["DestinationEncryptionAlgorithm"]),
                         (rsa_meta["Arn"], self.sym["Arn"], "RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT"))
        self.assertEqual(self.kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"app": "x"})[
            "Plaintext"], b"token 42")
        # symmetric -> RSA -> RSA.
        sym_ct = self.kms.encrypt(KeyId=self.sym["KeyId"], Plaintext=b"token 43")["CiphertextBlob"]
        r = self.kms.re_encrypt(CiphertextBlob=sym_ct, DestinationKeyId=rsa4["KeyId"],
                                DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
        self.assertEqual(len(r["CiphertextBlob"]), 512)
        r2 = self.kms.re_encrypt(CiphertextBlob=r["CiphertextBlob"], SourceKeyId=rsa4["Arn"],
                                 SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=rsa_meta["KeyId"],
                                 DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")
        self.assertEqual(self.kms.decrypt(KeyId=rsa_meta["KeyId"], CiphertextBlob=r2["CiphertextBlob"],
                                          EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"], b"token 43")
        # A destination RSA key without its algorithm, and a plaintext past its bound.
        self.assert_fails("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec "
                          "RSA_4096.", self.kms.re_encrypt, CiphertextBlob=sym_ct, DestinationKeyId=rsa4["KeyId"])
        big = self.kms.encrypt(KeyId=self.sym["KeyId"], Plaintext=b"b" * 447)["CiphertextBlob"]
        self.assert_fails("ValidationException", "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_4096 cannot encrypt "
                          "data larger than 446 bytes.", self.kms.re_encrypt, CiphertextBlob=big,
                          DestinationKeyId=rsa4["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
        code, msg = self.fails(self.kms.re_encrypt, CiphertextBlob=ct, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
                               DestinationKeyId=self.sym["KeyId"])
        self.assertEqual(code, "ValidationException")
        self.assertIn("SourceKeyId is required with RSAES_OAEP_SHA_1", msg)

    def test_generate_data_key_needs_a_symmetric_key(self):
        self.assert_fails("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec "
                          "RSA_2048.", self.kms.generate_data_key, KeyId=self.kid("RSA_2048", "ENCRYPT_DECRYPT"),
                          KeySpec="AES_256")

    # --- ECDH ----------------------------------------------------------------------------------

    @staticmethod
    def peer_der(spec, key=None):
        key = key or ec.generate_private_key(CURVES[spec]())
        return key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)

    def test_derive_shared_secret_matches_the_peer(self):
        for spec in AGREEMENT:
            meta = self.keys[spec, "KEY_AGREEMENT"]
            kms_pub = serialization.load_der_public_key(self.public(spec, "KEY_AGREEMENT")["PublicKey"])
            peer = ec.generate_private_key(CURVES[spec]())
            r = self.newer.derive_shared_secret(KeyId=meta["KeyId"], KeyAgreementAlgorithm="ECDH",
                                                PublicKey=self.peer_der(spec, peer))
            # The peer computes the same raw secret with its private key and the KMS key's public key.
            self.assertEqual(r["SharedSecret"], peer.exchange(ec.ECDH(), kms_pub), spec)
            self.assertEqual(len(r["SharedSecret"]), {"ECC_NIST_P256": 32, "ECC_NIST_P384": 48,
                                                      "ECC_NIST_P521": 66}[spec])
            self.assertEqual((r["KeyId"], r["KeyAgreementAlgorithm"], r["KeyOrigin"]),
                             (meta["KeyId"], "ECDH", "AWS_KMS"))
            # Another peer, another secret; the same peer and an alias, the same one.
            self.assertNotEqual(self.newer.derive_shared_secret(KeyId=meta["KeyId"], KeyAgreementAlgorithm="ECDH",
                                                                PublicKey=self.peer_der(spec))["SharedSecret"],
                                r["SharedSecret"])
        # Two KMS keys agree with each other.
        a = self.keys["ECC_NIST_P256", "KEY_AGREEMENT"]
        b = self.create("ECC_NIST_P256", "KEY_AGREEMENT")
        self.kms.create_alias(AliasName="alias/agree-b", TargetKeyId=b["KeyId"])
        ab = self.newer.derive_shared_secret(KeyId=a["Arn"], KeyAgreementAlgorithm="ECDH",
                                             PublicKey=self.newer.get_public_key(KeyId=b["KeyId"])["PublicKey"])
        ba = self.newer.derive_shared_secret(KeyId="alias/agree-b", KeyAgreementAlgorithm="ECDH",
                                             PublicKey=self.public("ECC_NIST_P256", "KEY_AGREEMENT")["PublicKey"])
        self.assertEqual(ab["SharedSecret"], ba["SharedSecret"])

    def test_derive_shared_secret_errors(self):
        meta = self.keys["ECC_NIST_P256", "KEY_AGREEMENT"]
        good = self.peer_der("ECC_NIST_P256")

        def derive(**kw):
            args = dict(KeyId=meta["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=good)
            args.update(kw)
            return self.newer.derive_shared_secret(**args)

        rsa_pub = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # A point not on the curve: the last byte of y changed.
        off_curve = good[:-1] + bytes([good[-1] ^ 1])
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        cases = [
            (dict(PublicKey=b"InvalidPublicKey"), "not a DER SubjectPublicKeyInfo"),
            (dict(PublicKey=point), "not a DER SubjectPublicKeyInfo"),  # a bare point is not an SPKI
            (dict(PublicKey=good + b"\0"), "bytes after its SubjectPublicKeyInfo"),
            (dict(PublicKey=off_curve), "PublicKey"),
            (dict(PublicKey=self.peer_der("ECC_NIST_P384")), "on curve secp384r1, not on this key's curve prime256v1"),
            (dict(PublicKey=self.peer_der("ECC_SECG_P256K1")), "on curve secp256k1, not on this key's curve"),
            (dict(PublicKey=rsa_pub), "is a RSA key, not an elliptic curve key"),
        ]
        for kw, needle in cases:
            code, msg = self.fails(derive, **kw)
            self.assertEqual(code, "ValidationException", kw)
            self.assertIn(needle, msg)
            self.assertIn("give the DER SubjectPublicKeyInfo of a ECC_NIST_P256 key", msg)
        # AWS's messages for the enum and for a spec that cannot agree keys.
        self.assert_fails("ValidationException", "1 validation error detected: Value 'INVALID' at "
                          "'keyAgreementAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: "
                          "[ECDH]", derive, KeyAgreementAlgorithm="INVALID")
        for spec in ("RSA_2048", "ECC_SECG_P256K1"):
            self.assert_fails("ValidationException", "KeyUsage KEY_AGREEMENT is not compatible with KeySpec %s" % spec,
                              self.kms.create_key, KeySpec=spec, KeyUsage="KEY_AGREEMENT")
        code, msg = self.fails(derive, DryRun=True)
        self.assertEqual((code, msg), ("DryRunOperationException",
                                       "The request would have succeeded, but the DryRun option is set."))
        # Still works after every refusal.
        self.assertEqual(len(derive()["SharedSecret"]), 32)

    # --- HMAC ----------------------------------------------------------------------------------

    def test_hmac_every_spec(self):
        macs = {}
        for spec, alg in MAC.items():
            meta = self.keys[spec, "GENERATE_VERIFY_MAC"]
            r = self.kms.generate_mac(KeyId=meta["KeyId"], Message=b"invoice 2291", MacAlgorithm=alg)
            self.assertEqual((r["MacAlgorithm"], r["KeyId"], len(r["Mac"])), (alg, meta["Arn"], int(spec[5:]) // 8))
            self.assertEqual(self.kms.generate_mac(KeyId=meta["KeyId"], Message=b"invoice 2291",
                                                   MacAlgorithm=alg)["Mac"], r["Mac"])
            self.assertTrue(self.kms.verify_mac(KeyId=meta["KeyId"], Message=b"invoice 2291", MacAlgorithm=alg,
                                                Mac=r["Mac"])["MacValid"])
            for msg, mac in ((b"invoice 2292", r["Mac"]), (b"invoice 2291", r["Mac"][:-1]),
                             (b"invoice 2291", bytes([r["Mac"][0] ^ 1]) + r["Mac"][1:])):
                self.assertEqual(self.fails(self.kms.verify_mac, KeyId=meta["KeyId"], Message=msg, MacAlgorithm=alg,
                                            Mac=mac)[0], "KMSInvalidMacException")
            for other in set(MAC.values()) - {alg}:
                self.assert_fails("InvalidKeyUsageException", "Algorithm %s is incompatible with key spec %s." %
                                  (other, spec), self.kms.generate_mac, KeyId=meta["KeyId"], Message=b"m",
                                  MacAlgorithm=other)
            macs[spec] = r["Mac"]
        self.assertEqual(len(set(macs.values())), 4)
        # The keys are kept: a restarted server gives the same MACs (HMAC_256's key is 32-byte
        # material, the others' are stored by length).
        self.__class__.macs = macs

    def test_zz_restart_keeps_every_key(self):
        """Last (zz): restarts the server on its data directory; every spec's key still works."""
        self.test_hmac_every_spec()
        macs = self.macs
        rsa_meta = self.keys["RSA_4096", "ENCRYPT_DECRYPT"]
        ct = self.kms.encrypt(KeyId=rsa_meta["KeyId"], Plaintext=b"across restarts",
                              EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
        pubs = {k: self.newer.get_public_key(KeyId=m["KeyId"])["PublicKey"] for k, m in self.keys.items()
                if k[1] != "GENERATE_VERIFY_MAC"}
        self.cm.__exit__(None, None, None)
        self.__class__.cm = kms_harness.kms_server(data_dir=os.path.join(self.tmp, "data"))
        srv = self.__class__.cm.__enter__()
        kms = kms_harness.boto_client(srv.endpoint)
        newer = kms_harness.NewerKms(srv.endpoint)
        for spec, alg in MAC.items():
            self.assertEqual(kms.generate_mac(KeyId=self.kid(spec, "GENERATE_VERIFY_MAC"), Message=b"invoice 2291",
                                              MacAlgorithm=alg)["Mac"], macs[spec])
        for k, der in pubs.items():
            self.assertEqual(newer.get_public_key(KeyId=self.keys[k]["KeyId"])["PublicKey"], der, k)
        self.assertEqual(kms.decrypt(KeyId=rsa_meta["KeyId"], CiphertextBlob=ct,
                                     EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"], b"across restarts")

    # --- data key pairs ------------------------------------------------------------------------

    def check_pair(self, spec, pub_der, pkcs8):
        pub = serialization.load_der_public_key(pub_der)
        priv = serialization.load_der_private_key(pkcs8, password=None)
        # PKCS #8: re-encoding it as PKCS #8 gives the same bytes.
        self.assertEqual(priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), pkcs8)
        self.assertEqual(priv.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo), pub_der)
        if spec.startswith("RSA"):
            self.assertEqual(pub.key_size, int(spec[4:]))
            sig = priv.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
            pub.verify(sig, b"m", padding.PKCS1v15(), hashes.SHA256())
        else:
            self.assertIsInstance(pub.curve, CURVES[spec])
            pub.verify(priv.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256()))

    def test_data_key_pairs(self):
        ctx = {"purpose": "device-42"}
        seen = set()
        for spec in PAIR_SPECS:
            r = self.kms.generate_data_key_pair(KeyId=self.sym["KeyId"], KeyPairSpec=spec, EncryptionContext=ctx)
            self.assertEqual((r["KeyId"], r["KeyPairSpec"]), (self.sym["Arn"], spec))
            self.check_pair(spec, r["PublicKey"], r["PrivateKeyPlaintext"])
            # The wrapped private key is the same PKCS #8, under the KMS key and this context.
            self.assertEqual(self.kms.decrypt(CiphertextBlob=r["PrivateKeyCiphertextBlob"],
                                              EncryptionContext=ctx)["Plaintext"], r["PrivateKeyPlaintext"])
            self.assertEqual(self.fails(self.kms.decrypt, CiphertextBlob=r["PrivateKeyCiphertextBlob"])[0],
                             "InvalidCiphertextException")
            w = self.kms.generate_data_key_pair_without_plaintext(KeyId=self.sym["Arn"], KeyPairSpec=spec,
                                                                  EncryptionContext=ctx)
            self.assertNotIn("PrivateKeyPlaintext", w)
            self.assertEqual((w["KeyId"], w["KeyPairSpec"]), (self.sym["Arn"], spec))
            pkcs8 = self.kms.decrypt(CiphertextBlob=w["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)["Plaintext"]
            self.check_pair(spec, w["PublicKey"], pkcs8)
            seen.update((r["PublicKey"], w["PublicKey"]))
        self.assertEqual(len(seen), 2 * len(PAIR_SPECS), "every data key pair is a fresh one")

    def test_data_key_pair_errors(self):
        self.assertEqual(self.fails(self.kms.generate_data_key_pair, KeyId=self.sym["KeyId"],
                                    KeyPairSpec="RSA_1024")[0], "ValidationException")
        code, msg = self.fails(self.kms.generate_data_key_pair, KeyId=self.sym["KeyId"], KeyPairSpec="SM2")
        self.assertEqual(code, "UnsupportedOperationException")
        self.assertIn("KeyPairSpec SM2 is not supported: SM2", msg)
        self.assertIn("China Regions only", msg)
        code, msg = self.fails(self.newer.generate_data_key_pair_without_plaintext, KeyId=self.sym["KeyId"],
                               KeyPairSpec="ECC_NIST_EDWARDS25519")
        self.assertEqual(code, "UnsupportedOperationException")
        self.assertIn("Ed25519", msg)
        # The private key is wrapped by a symmetric encryption key only.
        for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "KEY_AGREEMENT")):
            want = ("Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048." if usage == "ENCRYPT_DECRYPT"
                    else "%s key usage is KEY_AGREEMENT which is not valid for GenerateDataKeyPairWithoutPlaintext."
                    % self.keys[spec, usage]["Arn"])
            self.assert_fails("InvalidKeyUsageException", want, self.kms.generate_data_key_pair_without_plaintext,
                              KeyId=self.kid(spec, usage), KeyPairSpec="ECC_NIST_P256")
        code, msg = self.fails(self.newer.generate_data_key_pair_without_plaintext, KeyId=self.sym["KeyId"],
                               KeyPairSpec="ECC_NIST_P256", Recipient={"AttestationDocument": b"x",
                                                                      "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
        self.assertEqual(code, "ValidationException")
        self.assertIn("has no Recipient parameter", msg)
        for op in (self.newer.generate_data_key_pair, self.newer.generate_data_key_pair_without_plaintext):
            self.assert_fails("DryRunOperationException", "The request would have succeeded, but the DryRun option is "
                              "set.", op, KeyId=self.sym["KeyId"], KeyPairSpec="ECC_NIST_P256", DryRun=True)
        self.kms.disable_key(KeyId=self.sym["KeyId"])
        try:
            self.assert_fails("DisabledException", "%s is disabled." % self.sym["Arn"],
                              self.kms.generate_data_key_pair, KeyId=self.sym["KeyId"], KeyPairSpec="ECC_NIST_P256")
        finally:
            self.kms.enable_key(KeyId=self.sym["KeyId"])

    # --- CreateKey ---------------------------------------------------------------------------

    def test_create_key_spec_and_usage(self):
        before = len(self.kms.list_keys(Limit=1000)["Keys"])
        code, msg = self.fails(self.kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY")
        self.assertEqual(code, "UnsupportedOperationException")
        self.assertIn("KeySpec SM2 is not supported: SM2 (the Chinese ShangMi standard", msg)
        self.assertIn("China Regions only", msg)
        for spec in ("RSA_4096", "ECC_NIST_P521", "HMAC_224"):
            self.assert_fails("ValidationException", "You must specify a KeyUsage value for all KMS keys except for "
                              "symmetric encryption keys.", self.kms.create_key, KeySpec=spec)
        for spec, usage in (("HMAC_512", "SIGN_VERIFY"), ("ECC_NIST_P521", "ENCRYPT_DECRYPT"),
                            ("ECC_SECG_P256K1", "ENCRYPT_DECRYPT"), ("RSA_4096", "GENERATE_VERIFY_MAC"),
                            ("SYMMETRIC_DEFAULT", "KEY_AGREEMENT")):
            self.assert_fails("ValidationException", "KeyUsage %s is not compatible with KeySpec %s" % (usage, spec),
                              self.kms.create_key, KeySpec=spec, KeyUsage=usage)
        self.assertEqual(len(self.kms.list_keys(Limit=1000)["Keys"]), before, "a refused CreateKey made a key")

    # --- policies and grants -----------------------------------------------------------------

    def test_policy_and_grants(self):
        """kms:DeriveSharedSecret and kms:GenerateDataKeyPair(WithoutPlaintext) follow the key policy and
        grants like every other action."""
        dev_only = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCT}, "Action": "kms:*",
             "Resource": "*"}]})
        agree = self.kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT", Policy=dev_only)["KeyMetadata"]
        sym = self.kms.create_key(Policy=dev_only)["KeyMetadata"]
        alice_newer = kms_harness.NewerKms(self.srv.endpoint, key="alice", secret="alice-secret")
        peer = self.peer_der("ECC_NIST_P384")
        for fn, kw, action in (
                (alice_newer.derive_shared_secret, dict(KeyId=agree["Arn"], KeyAgreementAlgorithm="ECDH",
                                                        PublicKey=peer), "kms:DeriveSharedSecret"),
                (self.alice.generate_data_key_pair, dict(KeyId=sym["Arn"], KeyPairSpec="ECC_NIST_P256"),
                 "kms:GenerateDataKeyPair"),
                (self.alice.generate_data_key_pair_without_plaintext, dict(KeyId=sym["Arn"],
                                                                           KeyPairSpec="ECC_NIST_P256"),
                 "kms:GenerateDataKeyPairWithoutPlaintext")):
            code, msg = self.fails(fn, **kw)
            self.assertEqual(code, "AccessDeniedException", action)
            self.assertIn("is not authorized to perform: %s on resource" % action, msg)
        alice = "arn:aws:iam::%s:user/alice" % ACCT
        self.kms.create_grant(KeyId=agree["KeyId"], GranteePrincipal=alice, Operations=["DeriveSharedSecret"])
        self.kms.create_grant(KeyId=sym["KeyId"], GranteePrincipal=alice, Operations=["GenerateDataKeyPair"])
        self.assertEqual(len(alice_newer.derive_shared_secret(KeyId=agree["Arn"], KeyAgreementAlgorithm="ECDH",
                                                              PublicKey=peer)["SharedSecret"]), 48)
        self.assertIn("PrivateKeyPlaintext", self.alice.generate_data_key_pair(KeyId=sym["Arn"],
                                                                               KeyPairSpec="ECC_NIST_P256"))
        # A grant for GenerateDataKeyPair is not one for its WithoutPlaintext sibling.
        self.assertEqual(self.fails(self.alice.generate_data_key_pair_without_plaintext, KeyId=sym["Arn"],
                                    KeyPairSpec="ECC_NIST_P256")[0], "AccessDeniedException")
        # An explicit Deny in the key policy beats the grant.
        self.kms.put_key_policy(KeyId=agree["KeyId"], PolicyName="default", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCT}, "Action": "kms:*",
                 "Resource": "*"},
                {"Effect": "Deny", "Principal": "*", "Action": "kms:DeriveSharedSecret", "Resource": "*"}]}))
        code, msg = self.fails(alice_newer.derive_shared_secret, KeyId=agree["Arn"], KeyAgreementAlgorithm="ECDH",
                               PublicKey=peer)
        self.assertEqual(code, "AccessDeniedException")
        self.assertIn("explicit deny", msg)


class AttestedRelease(unittest.TestCase):
    """Recipient on the new operations, as on Decrypt: DeriveSharedSecret and GenerateDataKeyPair answer
    CiphertextForRecipient only, which `openssl cms -decrypt` opens with the enclave's key; Decrypt of an
    RSA ciphertext too."""

    def test_recipient(self):
        tmp = tempfile.mkdtemp(prefix="kms-keyspecs-rcpt-")
        try:
            pki = os.path.join(tmp, "pki")
            r = subprocess.run([kms_harness.CLI_BIN, "enclave", "init-root", "-o", pki], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            key_pem, spki = recipient_ref.rsa_recipient()
            doc = recipient_ref.Platform(pki).document(spki, {0: hashlib.sha384(b"image").digest()})
            rcpt = {"AttestationDocument": doc, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
            kp = os.path.join(tmp, "rk.pem")
            with open(kp, "wb") as f:
                f.write(key_pem)

            def opened(cms):
                cp = os.path.join(tmp, "cfr.der")
                with open(cp, "wb") as f:
                    f.write(cms)
                out = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", cp, "-inkey", kp,
                                      "-binary"], capture_output=True, timeout=30)
                self.assertEqual(out.returncode, 0, out.stderr)
                return out.stdout

            with kms_harness.kms_server(extra_args=["--attestation-root", os.path.join(pki, "root.pem")]) as srv:
                kms = kms_harness.boto_client(srv.endpoint)
                newer = kms_harness.NewerKms(srv.endpoint)
                agree = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
                peer = ec.generate_private_key(ec.SECP256R1())
                peer_der = peer.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
                kms_pub = serialization.load_der_public_key(kms.get_public_key(KeyId=agree["KeyId"])["PublicKey"])
                d = newer.derive_shared_secret(KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_der,
                                               Recipient=rcpt)
                self.assertNotIn("SharedSecret", d)
                self.assertEqual(opened(d["CiphertextForRecipient"]), peer.exchange(ec.ECDH(), kms_pub))

                sym = kms.create_key()["KeyMetadata"]
                p = newer.generate_data_key_pair(KeyId=sym["KeyId"], KeyPairSpec="ECC_NIST_P384", Recipient=rcpt,
                                                 EncryptionContext={"k": "v"})
                self.assertNotIn("PrivateKeyPlaintext", p)
                pkcs8 = opened(p["CiphertextForRecipient"])
                priv = serialization.load_der_private_key(pkcs8, password=None)
                self.assertEqual(priv.public_key().public_bytes(serialization.Encoding.DER,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo),
                                 p["PublicKey"])
                self.assertEqual(kms.decrypt(CiphertextBlob=p["PrivateKeyCiphertextBlob"],
                                             EncryptionContext={"k": "v"})["Plaintext"], pkcs8)

                enc = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
                rpub = serialization.load_der_public_key(kms.get_public_key(KeyId=enc["KeyId"])["PublicKey"])
                ct = rpub.encrypt(b"wrapped for the enclave", oaep("RSAES_OAEP_SHA_256"))
                r = newer.decrypt(KeyId=enc["KeyId"], CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256",
                                  Recipient=rcpt)
                self.assertNotIn("Plaintext", r)
                self.assertEqual(opened(r["CiphertextForRecipient"]), b"wrapped for the enclave")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
