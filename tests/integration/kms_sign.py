#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Asymmetric and HMAC keys of cloister-kms, driven by boto3 and the aws CLI.
Signatures made by cloister-kms are checked by an independent implementation
(Python `cryptography`, with the public key GetPublicKey returns), and a
signature cryptography rejects must be rejected by Verify as AWS does
(KMSInvalidSignatureException)."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: E402

HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
RSA_ALGS = ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"]
SPECS = {"RSA_2048": RSA_ALGS, "RSA_3072": RSA_ALGS, "ECC_NIST_P256": ["ECDSA_SHA_256"],
         "ECC_NIST_P384": ["ECDSA_SHA_384"]}


def code(exc):
    return exc.exception.response["Error"]["Code"]


def py_verify(pub, alg, message, signature):
    """Verifies with Python cryptography; raises InvalidSignature."""
    h = HASHES[alg[-7:]]()
    if alg.startswith("ECDSA"):
        pub.verify(signature, message, ec.ECDSA(h))
    elif alg.startswith("RSASSA_PSS"):
        # AWS KMS: MGF1 with the message digest, salt as long as the digest.
        pub.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), h)


class KmsSign(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-sign-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.cm = kms_harness.kms_server(data_dir=cls.data)
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.newer = kms_harness.NewerKms(cls.srv.endpoint)  # what Debian's botocore 1.29 does not model
        cls.keys = {}
        for spec in SPECS:
            cls.keys[spec] = cls.kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        cls.hmac = cls.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def public_key(self, kid):
        r = self.kms.get_public_key(KeyId=kid)
        return r, serialization.load_der_public_key(r["PublicKey"])

    def assert_fails(self, exc_name, fn, **kw):
        with self.assertRaises(ClientError) as e:
            fn(**kw)
        self.assertEqual(code(e), exc_name, kw)
        return e.exception.response["Error"]["Message"]

    # --- interop with Python cryptography ----------------------------------------

    def test_sign_verified_by_cryptography(self):
        message = b"mammogram-0042 classification: benign 0.93"
        for spec, algs in SPECS.items():
            kid = self.keys[spec]["KeyId"]
            r, pub = self.public_key(kid)
            self.assertEqual(r["KeySpec"], spec)
            self.assertEqual(r["KeyUsage"], "SIGN_VERIFY")
            self.assertEqual(r["SigningAlgorithms"], algs)
            if spec.startswith("RSA"):
                self.assertIsInstance(pub, rsa.RSAPublicKey)
                self.assertEqual(pub.key_size, int(spec[4:]))
            else:
                self.assertIsInstance(pub, ec.EllipticCurvePublicKey)
                self.assertEqual(pub.curve.name, {"ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1"}[spec])
            for alg in algs:
                s = self.kms.sign(KeyId=kid, Message=message, SigningAlgorithm=alg)
                self.assertEqual(s["SigningAlgorithm"], alg)
                self.assertEqual(s["KeyId"], self.keys[spec]["Arn"])
                py_verify(pub, alg, message, s["Signature"])
                # ... and cryptography would have rejected it for another message.
                with self.assertRaises(InvalidSignature):
                    py_verify(pub, alg, message + b"!", s["Signature"])
                v = self.kms.verify(KeyId=kid, Message=message, Signature=s["Signature"], SigningAlgorithm=alg)
                self.assertTrue(v["SignatureValid"])
                self.assertEqual(v["SigningAlgorithm"], alg)

    def test_ecdsa_signature_is_der(self):
        for spec in ("ECC_NIST_P256", "ECC_NIST_P384"):
            alg = SPECS[spec][0]
            s = self.kms.sign(KeyId=self.keys[spec]["KeyId"], Message=b"m", SigningAlgorithm=alg)["Signature"]
            r, sv = utils.decode_dss_signature(s)  # raises on anything but a DER SEQUENCE of two INTEGERs
            self.assertEqual(utils.encode_dss_signature(r, sv), s)

    def test_digest_message_type(self):
        message = b"x" * 5000  # longer than Sign's 4096-byte Message: hence DIGEST
        for spec, algs in SPECS.items():
            kid = self.keys[spec]["KeyId"]
            _, pub = self.public_key(kid)
            for alg in algs:
                h = HASHES[alg[-7:]]()
                digest = hashlib.new(h.name, message).digest()
                s = self.kms.sign(KeyId=kid, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)
                py_verify(pub, alg, message, s["Signature"])
                self.kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST", Signature=s["Signature"],
                                SigningAlgorithm=alg)
                # A digest of the wrong length is refused before anything is signed.
                self.assert_fails("ValidationException", self.kms.sign, KeyId=kid, Message=digest[:-1],
                                  MessageType="DIGEST", SigningAlgorithm=alg)

    def test_verify_rejects_tampering(self):
        kid = self.keys["ECC_NIST_P256"]["KeyId"]
        s = self.kms.sign(KeyId=kid, Message=b"dose: 5mg", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        msg = self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=kid, Message=b"dose: 50mg",
                                Signature=s, SigningAlgorithm="ECDSA_SHA_256")
        self.assertIn("does not verify", msg)
        flipped = bytes([s[0]]) + s[1:-1] + bytes([s[-1] ^ 0x01])
        self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=kid, Message=b"dose: 5mg",
                          Signature=flipped, SigningAlgorithm="ECDSA_SHA_256")
        self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=kid, Message=b"dose: 5mg",
                          Signature=b"\x30\x00garbage", SigningAlgorithm="ECDSA_SHA_256")
        # A valid signature of another key (same spec) does not verify under this one.
        other = self.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        s2 = self.kms.sign(KeyId=other, Message=b"dose: 5mg", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=kid, Message=b"dose: 5mg",
                          Signature=s2, SigningAlgorithm="ECDSA_SHA_256")
        # RSA: PSS signature presented as PKCS#1 v1.5 is not valid.
        rk = self.keys["RSA_2048"]["KeyId"]
        ps = self.kms.sign(KeyId=rk, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=rk, Message=b"m", Signature=ps,
                          SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")

    def test_describe_key_lists_algorithms(self):
        for spec, algs in SPECS.items():
            m = self.kms.describe_key(KeyId=self.keys[spec]["KeyId"])["KeyMetadata"]
            self.assertEqual(m["KeySpec"], spec)
            self.assertEqual(m["CustomerMasterKeySpec"], spec)
            self.assertEqual(m["KeyUsage"], "SIGN_VERIFY")
            self.assertEqual(m["SigningAlgorithms"], algs)
            self.assertNotIn("EncryptionAlgorithms", m)
            self.assertNotIn("MacAlgorithms", m)
        m = self.kms.describe_key(KeyId=self.hmac["KeyId"])["KeyMetadata"]
        self.assertEqual((m["KeySpec"], m["KeyUsage"], m["MacAlgorithms"]),
                         ("HMAC_256", "GENERATE_VERIFY_MAC", ["HMAC_SHA_256"]))
        self.assertNotIn("EncryptionAlgorithms", m)
        m = self.kms.create_key()["KeyMetadata"]
        self.assertEqual(m["EncryptionAlgorithms"], ["SYMMETRIC_DEFAULT"])
        self.assertNotIn("SigningAlgorithms", m)

    # --- MAC -----------------------------------------------------------------------

    def test_mac_round_trip(self):
        kid = self.hmac["KeyId"]
        r = self.kms.generate_mac(KeyId=kid, Message=b"record 17", MacAlgorithm="HMAC_SHA_256")
        self.assertEqual(len(r["Mac"]), 32)
        self.assertEqual(r["MacAlgorithm"], "HMAC_SHA_256")
        self.assertEqual(r["KeyId"], self.hmac["Arn"])
        # Deterministic under one key, different under another.
        again = self.kms.generate_mac(KeyId=kid, Message=b"record 17", MacAlgorithm="HMAC_SHA_256")["Mac"]
        self.assertEqual(again, r["Mac"])
        other = self.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
        self.assertNotEqual(self.kms.generate_mac(KeyId=other, Message=b"record 17",
                                                  MacAlgorithm="HMAC_SHA_256")["Mac"], r["Mac"])
        v = self.kms.verify_mac(KeyId=kid, Message=b"record 17", MacAlgorithm="HMAC_SHA_256", Mac=r["Mac"])
        self.assertTrue(v["MacValid"])
        self.assertEqual(v["KeyId"], self.hmac["Arn"])
        for msg, mac in ((b"record 18", r["Mac"]), (b"record 17", r["Mac"][:-1]),
                         (b"record 17", bytes([r["Mac"][0] ^ 0x80]) + r["Mac"][1:])):
            self.assert_fails("KMSInvalidMacException", self.kms.verify_mac, KeyId=kid, Message=msg,
                              MacAlgorithm="HMAC_SHA_256", Mac=mac)
        self.assert_fails("KMSInvalidMacException", self.kms.verify_mac, KeyId=other, Message=b"record 17",
                          MacAlgorithm="HMAC_SHA_256", Mac=r["Mac"])

    # --- errors ------------------------------------------------------------------------

    def test_key_usage_mismatch(self):
        sym = self.kms.create_key()["KeyMetadata"]["KeyId"]
        ec_key = self.keys["ECC_NIST_P256"]["KeyId"]
        hk = self.hmac["KeyId"]
        cases = [
            (self.kms.encrypt, dict(KeyId=ec_key, Plaintext=b"x")),
            (self.kms.encrypt, dict(KeyId=hk, Plaintext=b"x")),
            (self.kms.generate_data_key, dict(KeyId=ec_key, KeySpec="AES_256")),
            (self.kms.sign, dict(KeyId=sym, Message=b"x", SigningAlgorithm="ECDSA_SHA_256")),
            (self.kms.sign, dict(KeyId=hk, Message=b"x", SigningAlgorithm="ECDSA_SHA_256")),
            (self.kms.verify, dict(KeyId=sym, Message=b"x", Signature=b"s", SigningAlgorithm="ECDSA_SHA_256")),
            (self.kms.generate_mac, dict(KeyId=ec_key, Message=b"x", MacAlgorithm="HMAC_SHA_256")),
            (self.kms.generate_mac, dict(KeyId=sym, Message=b"x", MacAlgorithm="HMAC_SHA_256")),
            (self.kms.verify_mac, dict(KeyId=sym, Message=b"x", MacAlgorithm="HMAC_SHA_256", Mac=b"m")),
            # Algorithms of the wrong family or curve for the key spec.
            (self.kms.sign, dict(KeyId=ec_key, Message=b"x", SigningAlgorithm="ECDSA_SHA_384")),
            (self.kms.sign, dict(KeyId=ec_key, Message=b"x", SigningAlgorithm="RSASSA_PSS_SHA_256")),
            (self.kms.sign, dict(KeyId=self.keys["RSA_2048"]["KeyId"], Message=b"x",
                                 SigningAlgorithm="ECDSA_SHA_256")),
            (self.kms.sign, dict(KeyId=ec_key, Message=b"x", SigningAlgorithm="ED25519_SHA_512")),
            (self.kms.generate_mac, dict(KeyId=hk, Message=b"x", MacAlgorithm="HMAC_SHA_384")),
            (self.kms.sign, dict(KeyId=ec_key, Message=b"x", MessageType="EXTERNAL_MU",
                                 SigningAlgorithm="ECDSA_SHA_256")),
        ]
        for fn, kw in cases:
            self.assert_fails("InvalidKeyUsageException", fn, **kw)
        for kid in (sym, hk):
            self.assert_fails("UnsupportedOperationException", self.kms.get_public_key, KeyId=kid)
        # The symmetric key still works: a refused request changed nothing.
        ct = self.kms.encrypt(KeyId=sym, Plaintext=b"still fine")["CiphertextBlob"]
        self.assertEqual(self.kms.decrypt(CiphertextBlob=ct)["Plaintext"], b"still fine")

    def test_create_key_spec_errors(self):
        cases = [
            ("ValidationException", dict(KeySpec="HMAC_256")),  # KeyUsage defaults to ENCRYPT_DECRYPT
            ("ValidationException", dict(KeySpec="ECC_NIST_P256")),
            ("ValidationException", dict(KeySpec="ECC_NIST_P256", KeyUsage="GENERATE_VERIFY_MAC")),
            ("ValidationException", dict(KeySpec="HMAC_256", KeyUsage="SIGN_VERIFY")),
            ("ValidationException", dict(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY")),
            ("ValidationException", dict(KeySpec="RSA_1024", KeyUsage="SIGN_VERIFY")),
            ("ValidationException", dict(KeySpec="RSA_2048", KeyUsage="SIGN_ONLY")),
            ("ValidationException", dict(KeySpec="RSA_2048", KeyUsage="KEY_AGREEMENT")),
            ("UnsupportedOperationException", dict(KeySpec="SM2", KeyUsage="SIGN_VERIFY")),
            ("UnsupportedOperationException", dict(KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY")),
        ]
        before = len(self.kms.list_keys(Limit=1000)["Keys"])
        for exc, kw in cases:
            self.assert_fails(exc, self.kms.create_key, **kw)
        self.assertEqual(len(self.kms.list_keys(Limit=1000)["Keys"]), before, "a refused CreateKey made a key")
        # One KeySpec table: the values a refusal lists are exactly the model's KeySpec enum (botocore's
        # copy of it is the independent source), and no value of that enum is refused as outside it
        # (with KEY_AGREEMENT only the ECC_NIST_* specs make a key: tests/integration/kms_keyspecs.py).
        model = list(self.kms.meta.service_model.shape_for("KeySpec").enum)
        # Debian's botocore 1.29 predates the ML-DSA and Ed25519 key specs (the API Reference's
        # CreateKey KeySpec, developer guide "Key spec reference"); newer copies of the enum end with
        # them in this order, so the comparison stays exact with either.
        model += [v for v in ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519") if v not in model]
        msg = self.assert_fails("ValidationException", self.kms.create_key, KeySpec="RSA_1024", KeyUsage="SIGN_VERIFY")
        self.assertEqual(msg.split("enum value set: [")[1].rstrip("]").split(", "), model, msg)
        for spec in model:
            if spec.startswith("ECC_NIST_P"):
                continue
            with self.assertRaises(ClientError) as e:
                self.kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")
            self.assertNotIn("enum value set", e.exception.response["Error"]["Message"], spec)
        # The deprecated member still works, and must agree with KeySpec when both are given.
        m = self.kms.create_key(CustomerMasterKeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        self.assertEqual(m["KeySpec"], "ECC_NIST_P384")
        self.assert_fails("ValidationException", self.kms.create_key, KeySpec="ECC_NIST_P256",
                          CustomerMasterKeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")

    def test_key_states(self):
        kid = self.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        hk = self.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
        for k in (kid, hk):
            self.kms.disable_key(KeyId=k)
        self.assert_fails("DisabledException", self.kms.sign, KeyId=kid, Message=b"x",
                          SigningAlgorithm="ECDSA_SHA_256")
        self.assert_fails("DisabledException", self.kms.get_public_key, KeyId=kid)
        self.assert_fails("DisabledException", self.kms.generate_mac, KeyId=hk, Message=b"x",
                          MacAlgorithm="HMAC_SHA_256")
        self.kms.enable_key(KeyId=kid)
        self.kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
        self.assert_fails("KMSInvalidStateException", self.kms.sign, KeyId=kid, Message=b"x",
                          SigningAlgorithm="ECDSA_SHA_256")
        self.assert_fails("KMSInvalidStateException", self.kms.verify, KeyId=kid, Message=b"x", Signature=b"s",
                          SigningAlgorithm="ECDSA_SHA_256")
        self.kms.cancel_key_deletion(KeyId=kid)
        self.kms.enable_key(KeyId=kid)
        self.kms.sign(KeyId=kid, Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
        # Asymmetric and HMAC keys do not rotate (AWS: UnsupportedOperationException).
        self.kms.enable_key(KeyId=hk)
        for k in (kid, hk):
            self.assert_fails("UnsupportedOperationException", self.kms.enable_key_rotation, KeyId=k)
            self.assert_fails("UnsupportedOperationException", self.newer.rotate_key_on_demand, KeyId=k)
            self.assertFalse(self.kms.get_key_rotation_status(KeyId=k)["KeyRotationEnabled"])
        self.kms.sign(KeyId=kid, Message=b"x", SigningAlgorithm="ECDSA_SHA_256")

    def test_not_found_and_aliases(self):
        self.assert_fails("NotFoundException", self.kms.sign, KeyId="alias/nope", Message=b"x",
                          SigningAlgorithm="ECDSA_SHA_256")
        kid = self.keys["ECC_NIST_P256"]["KeyId"]
        self.kms.create_alias(AliasName="alias/signer", TargetKeyId=kid)
        s = self.kms.sign(KeyId="alias/signer", Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
        self.assertEqual(s["KeyId"], self.keys["ECC_NIST_P256"]["Arn"])
        self.kms.verify(KeyId=self.keys["ECC_NIST_P256"]["Arn"], Message=b"x", Signature=s["Signature"],
                        SigningAlgorithm="ECDSA_SHA_256")

    def test_policy_actions(self):
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": ["kms:Sign", "kms:GenerateMac"], "Resource": "*"}]}
        kid = self.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
                                  Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
        msg = self.assert_fails("AccessDeniedException", self.kms.sign, KeyId=kid, Message=b"x",
                                SigningAlgorithm="ECDSA_SHA_256")
        self.assertIn("kms:Sign", msg)
        self.public_key(kid)  # GetPublicKey is not denied
        self.assert_fails("KMSInvalidSignatureException", self.kms.verify, KeyId=kid, Message=b"x",
                          Signature=b"\x30\x06\x02\x01\x01\x02\x01\x01", SigningAlgorithm="ECDSA_SHA_256")
        hk = self.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC",
                                 Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
        self.assert_fails("AccessDeniedException", self.kms.generate_mac, KeyId=hk, Message=b"x",
                          MacAlgorithm="HMAC_SHA_256")

    def test_message_length_bounds(self):
        """Message is 1..4096 bytes (PlaintextType): exactly 4096 was refused by Sign and GenerateMac
        (docs/security.md, finding 14). 4096 bytes now sign (Python cryptography verifies) and MAC; 4097 are
        refused with AWS's message."""
        kid = self.keys["ECC_NIST_P256"]["KeyId"]
        hk = self.hmac["KeyId"]
        msg = bytes(range(256)) * 16
        sig = self.kms.sign(KeyId=kid, Message=msg, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        py_verify(self.public_key(kid)[1], "ECDSA_SHA_256", msg, sig)
        self.kms.verify(KeyId=kid, Message=msg, Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
        mac = self.kms.generate_mac(KeyId=hk, Message=msg, MacAlgorithm="HMAC_SHA_256")["Mac"]
        self.assertTrue(self.kms.verify_mac(KeyId=hk, Message=msg, Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"])
        over = msg + b"x"
        want = ("1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have "
                "length less than or equal to 4096")
        for fn, kw in ((self.kms.sign, dict(KeyId=kid, SigningAlgorithm="ECDSA_SHA_256")),
                       (self.kms.verify, dict(KeyId=kid, Signature=sig, SigningAlgorithm="ECDSA_SHA_256")),
                       (self.kms.generate_mac, dict(KeyId=hk, MacAlgorithm="HMAC_SHA_256")),
                       (self.kms.verify_mac, dict(KeyId=hk, Mac=mac, MacAlgorithm="HMAC_SHA_256"))):
            self.assertEqual(self.assert_fails("ValidationException", fn, Message=over, **kw), want, fn)

    def test_dry_run(self):
        kid = self.keys["ECC_NIST_P256"]["KeyId"]
        # DryRun is newer than Debian's botocore (kms_harness.NewerKms).
        self.assert_fails("DryRunOperationException", self.newer.sign, KeyId=kid, Message=b"x",
                          SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
        self.assert_fails("DryRunOperationException", self.newer.generate_mac, KeyId=self.hmac["KeyId"],
                          Message=b"x", MacAlgorithm="HMAC_SHA_256", DryRun=True)

    # --- the wire, with values boto3 would not send ------------------------------------

    def raw(self, target, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target}
        req = AWSRequest(method="POST", url=self.srv.endpoint + "/", data=data, headers=h)
        SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            conn.request("POST", "/", body=data, headers=dict(req.headers.items()))
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def test_server_side_validation(self):
        kid = self.keys["ECC_NIST_P256"]["KeyId"]
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        ok = {"KeyId": kid, "Message": b64(b"x"), "SigningAlgorithm": "ECDSA_SHA_256"}
        cases = [
            ("Sign", dict(ok, Message=b64(b"x" * 4097)), "ValidationException"),
            ("Sign", dict(ok, Message=""), "ValidationException"),
            ("Sign", dict(ok, Message="not base64!"), "SerializationException"),
            ("Sign", dict(ok, Message=5), "SerializationException"),
            ("Sign", dict(ok, SigningAlgorithm="ECDSA_SHA_1"), "ValidationException"),
            ("Sign", dict(ok, MessageType="HASHED"), "ValidationException"),
            ("Sign", dict(ok, DryRun="yes"), "SerializationException"),
            ("Sign", dict(ok, GrantTokens="t"), "SerializationException"),
            ("Sign", {"KeyId": kid, "Message": b64(b"x")}, "ValidationException"),
            ("Sign", {"Message": b64(b"x"), "SigningAlgorithm": "ECDSA_SHA_256"}, "ValidationException"),
            ("Verify", dict(ok, Signature=b64(b"s" * 6145)), "ValidationException"),
            ("Verify", ok, "ValidationException"),  # no Signature
            ("GenerateMac", {"KeyId": self.hmac["KeyId"], "Message": b64(b"x"), "MacAlgorithm": "HMAC_SHA_1"},
             "ValidationException"),
            ("VerifyMac", {"KeyId": self.hmac["KeyId"], "Message": b64(b"x"), "MacAlgorithm": "HMAC_SHA_256"},
             "ValidationException"),
            ("VerifyMac", {"KeyId": self.hmac["KeyId"], "Message": b64(b"x"), "MacAlgorithm": "HMAC_SHA_256",
                           "Mac": b64(b"m" * 6145)}, "ValidationException"),
            ("GetPublicKey", {"KeyId": ""}, "ValidationException"),
            ("CreateKey", {"KeySpec": 7}, "SerializationException"),
        ]
        for target, body, exc in cases:
            status, j = self.raw(target, body)
            self.assertEqual((status, j.get("__type")), (400, exc), (target, body, j))

    def test_material_survives_restart(self):
        kid = self.keys["RSA_3072"]["KeyId"]
        hk = self.hmac["KeyId"]
        _, pub = self.public_key(kid)
        mac = self.kms.generate_mac(KeyId=hk, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
        db = b""
        for name in ("keys.db", "keys.db-wal"):
            if os.path.exists(os.path.join(self.data, name)):
                with open(os.path.join(self.data, name), "rb") as f:
                    db += f.read()
        # An RSAPrivateKey in the clear would carry the modulus: the store must not.
        modulus = pub.public_numbers().n.to_bytes(384, "big")
        self.assertGreater(len(db), 0)
        self.assertNotIn(modulus[:48], db)
        # A second server on the same key store (SQLite WAL) and root key reads the same keys. It
        # has a data directory of its own: one data directory serves one server at a time (its
        # audit log is a single chain; a second server there is refused).
        cfg = os.path.join(self.tmp, "second.json")
        with open(cfg, "w") as f:
            json.dump({"listen": "127.0.0.1:0", "data_dir": os.path.join(self.tmp, "second"),
                       "store": {"path": os.path.join(self.data, "keys.db")},
                       "root_key": {"file": os.path.join(self.data, "root.key")},
                       "principals": [kms_harness.DEV_PRINCIPAL]}, f)
        with kms_harness.kms_server_config(cfg) as other:
            k2 = kms_harness.boto_client(other.endpoint)
            s = k2.sign(KeyId=kid, Message=b"after restart", SigningAlgorithm="RSASSA_PSS_SHA_384")["Signature"]
            py_verify(pub, "RSASSA_PSS_SHA_384", b"after restart", s)
            k2.verify_mac(KeyId=hk, Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac)


class AwsCliSign(unittest.TestCase):
    """The aws CLI, unmodified: create-key, get-public-key, sign, verify, generate-mac, verify-mac."""

    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.tmp = tempfile.mkdtemp(prefix="kms-sign-cli-")

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def aws(self, *args, ok=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(kms_harness.DEV_ENV)
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env["AWS_MAX_ATTEMPTS"] = "1"
        p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, "--output", "json", "kms", *args],
                           env=env, capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, "aws kms %s: %s" % (" ".join(args), p.stderr))
            return json.loads(p.stdout) if p.stdout.strip() else {}
        self.assertNotEqual(p.returncode, 0, "aws kms %s unexpectedly succeeded" % " ".join(args))
        return p.stderr

    def file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return "fileb://" + path

    def test_sign_verify_get_public_key(self):
        m = self.aws("create-key", "--key-spec", "ECC_NIST_P384", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]
        self.assertEqual(m["SigningAlgorithms"], ["ECDSA_SHA_384"])
        kid = m["KeyId"]
        msg = self.file("msg", b"model.onnx sha384 0123")
        s = self.aws("sign", "--key-id", kid, "--message", msg, "--signing-algorithm", "ECDSA_SHA_384")
        sig = base64.b64decode(s["Signature"])
        pk = self.aws("get-public-key", "--key-id", kid)
        self.assertEqual(pk["KeySpec"], "ECC_NIST_P384")
        pub = serialization.load_der_public_key(base64.b64decode(pk["PublicKey"]))
        py_verify(pub, "ECDSA_SHA_384", b"model.onnx sha384 0123", sig)
        v = self.aws("verify", "--key-id", kid, "--message", msg, "--signature", self.file("sig", sig),
                     "--signing-algorithm", "ECDSA_SHA_384")
        self.assertTrue(v["SignatureValid"])
        err = self.aws("verify", "--key-id", kid, "--message", self.file("msg2", b"model.onnx sha384 0124"),
                       "--signature", self.file("sig", sig), "--signing-algorithm", "ECDSA_SHA_384", ok=False)
        self.assertIn("(KMSInvalidSignatureException)", err)
        err = self.aws("sign", "--key-id", kid, "--message", msg, "--signing-algorithm", "ECDSA_SHA_256", ok=False)
        self.assertIn("(InvalidKeyUsageException)", err)
        # DIGEST from the CLI: a SHA-384 digest signed, verified by cryptography over the message.
        d = hashlib.sha384(b"big file contents").digest()
        s = self.aws("sign", "--key-id", kid, "--message", self.file("d", d), "--message-type", "DIGEST",
                     "--signing-algorithm", "ECDSA_SHA_384")
        py_verify(pub, "ECDSA_SHA_384", b"big file contents", base64.b64decode(s["Signature"]))

    def test_mac(self):
        kid = self.aws("create-key", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC")["KeyMetadata"][
            "KeyId"]
        msg = self.file("m", b"hello")
        mac = base64.b64decode(self.aws("generate-mac", "--key-id", kid, "--message", msg, "--mac-algorithm",
                                        "HMAC_SHA_256")["Mac"])
        v = self.aws("verify-mac", "--key-id", kid, "--message", msg, "--mac-algorithm", "HMAC_SHA_256", "--mac",
                     self.file("mac", mac))
        self.assertTrue(v["MacValid"])
        err = self.aws("verify-mac", "--key-id", kid, "--message", self.file("m2", b"hellO"), "--mac-algorithm",
                       "HMAC_SHA_256", "--mac", self.file("mac", mac), ok=False)
        self.assertIn("(KMSInvalidMacException)", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
