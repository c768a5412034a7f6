#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Imported key material (Origin EXTERNAL) in cloister-kms, as a user following AWS's "Importing
key material" guide does it: boto3 (and the aws CLI with `openssl pkeyutl`, as the guide shows)
against the server, the key material wrapped on the client side by Python `cryptography` with the
public key GetParametersForImport returns, for each wrapping algorithm. That the imported material
is the one the key uses is checked independently: a ciphertext blob of the key is opened here with
the material and AES-256-GCM (docs/formats/kms-ciphertext.md). Refusals are checked by exception
and message. Expiry of the material and of the import parameters is replayed by starting the
server again, on the same data directory, under libfaketime with its clock a day or more ahead
(the client signs with that clock too); without libfaketime, or under a sanitizer (whose runtime
must come first in the process), those two tests are skipped."""
import base64
import datetime
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding  # noqa: E402

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
ALGORITHMS = [("RSAES_OAEP_SHA_1", "RSA_2048"), ("RSAES_OAEP_SHA_256", "RSA_3072"),
              ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"), ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")]


def error(e):
    return e.exception.response["Error"]["Code"], e.exception.response["Error"]["Message"]


def wrap(material, public_der, algorithm):
    """EncryptedKeyMaterial as the Developer Guide has a user make it ("Encrypt key material"):
    RSAES-OAEP with SHA-1 or SHA-256 (for both OAEP and MGF1), or for RSA_AES_KEY_WRAP_* a fresh
    AES-256 key under RSAES-OAEP followed by the material under that key with AES key wrap with
    padding (RFC 5649)."""
    pub = serialization.load_der_public_key(public_der)
    h = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return pub.encrypt(material, oaep)
    aes = os.urandom(32)
    return pub.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, material)


def open_blob(material, blob, context=None):
    """Decrypts a cloister-kms ciphertext blob with the key material, independently of the server
    (docs/formats/kms-ciphertext.md, version 2): header = version, id length, key id, region
    length, region, u32 key version, nonce; the whole header is in the AAD."""
    assert blob[0] == 2, blob[0]
    r = blob[38]
    end = 39 + r + 4 + 12
    header = blob[:end]
    aad = b"cloister-kms/ciphertext/v1\0" + header
    items = sorted((context or {}).items())
    aad += struct.pack(">H", len(items))
    for k, v in items:
        aad += struct.pack(">H", len(k.encode())) + k.encode() + struct.pack(">H", len(v.encode())) + v.encode()
    return AESGCM(material).decrypt(blob[end - 12:end], blob[end:], aad)


def faketime_usable():
    return os.path.exists(FAKETIME) and not os.environ.get("CLOISTER_SANITIZED")


class KmsImport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-import-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.start()

    @classmethod
    def start(cls, env=None):
        cls.cm = kms_harness.kms_server(data_dir=cls.data, env=env)
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.newer = kms_harness.NewerKms(cls.srv.endpoint)

    @classmethod
    def stop(cls):
        cls.kms.close()
        cls.cm.__exit__(None, None, None)

    @classmethod
    def tearDownClass(cls):
        cls.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def restart(self, env=None):
        type(self).stop()
        type(self).start(env)

    def external_key(self):
        m = self.kms.create_key(Origin="EXTERNAL", Description="imported")["KeyMetadata"]
        self.assertEqual((m["Origin"], m["KeyState"], m["Enabled"]), ("EXTERNAL", "PendingImport", False))
        self.assertNotIn("ExpirationModel", m)
        return m["KeyId"]

    def params(self, kid, algorithm="RSAES_OAEP_SHA_256", spec="RSA_2048"):
        return self.kms.get_parameters_for_import(KeyId=kid, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)

    def imported_key(self, material, algorithm="RSAES_OAEP_SHA_256", spec="RSA_2048", **expiry):
        kid = self.external_key()
        p = self.params(kid, algorithm, spec)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], algorithm),
                                     **(expiry or {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}))
        return kid

    def refused(self, call, want_code, *needles):
        with self.assertRaises(ClientError) as e:
            call()
        got, message = error(e)
        self.assertEqual(got, want_code, message)
        for n in needles:
            self.assertIn(n, message)
        return message

    def test_each_wrapping_algorithm(self):
        for algorithm, spec in ALGORITHMS:
            with self.subTest(algorithm=algorithm, spec=spec):
                kid = self.external_key()
                before = time.time()
                p = self.params(kid, algorithm, spec)
                self.assertTrue(p["KeyId"].endswith(":key/" + kid))
                pub = serialization.load_der_public_key(p["PublicKey"])
                self.assertEqual(pub.key_size, int(spec[4:]))
                # Valid 24 hours (GetParametersForImport); a minute of margin for a slow machine.
                valid = p["ParametersValidTo"].timestamp()
                self.assertLessEqual(abs(valid - (before + 86400)), 60)
                material = os.urandom(32)
                r = self.newer.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                                   EncryptedKeyMaterial=wrap(material, p["PublicKey"], algorithm),
                                                   ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
                self.assertTrue(r["KeyId"].endswith(":key/" + kid))
                self.assertRegex(r["KeyMaterialId"], r"^[0-9a-f]{64}$")
                m = self.kms.describe_key(KeyId=kid)["KeyMetadata"]
                self.assertEqual((m["KeyState"], m["Enabled"], m["Origin"], m["ExpirationModel"]),
                                 ("Enabled", True, "EXTERNAL", "KEY_MATERIAL_DOES_NOT_EXPIRE"))
                self.assertNotIn("ValidTo", m)
                # Imported keys encrypt and decrypt like generated ones, with the imported material.
                ctx = {"tenant": "radiology"}
                blob = self.kms.encrypt(KeyId=kid, Plaintext=b"scan 42", EncryptionContext=ctx)["CiphertextBlob"]
                self.assertEqual(open_blob(material, blob, ctx), b"scan 42")
                self.assertEqual(self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"], b"scan 42")
                dk = self.kms.generate_data_key(KeyId=kid, KeySpec="AES_256")
                self.assertEqual(open_blob(material, dk["CiphertextBlob"]), dk["Plaintext"])

    def test_reimport_same_material_sets_expiry(self):
        material = os.urandom(32)
        kid = self.imported_key(material, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
        p = self.params(kid, "RSAES_OAEP_SHA_1", "RSA_2048")  # another algorithm for the same material
        valid_to = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=30)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"], ValidTo=valid_to,
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_1"),
                                     ExpirationModel="KEY_MATERIAL_EXPIRES")
        m = self.kms.describe_key(KeyId=kid)["KeyMetadata"]
        self.assertEqual((m["KeyState"], m["ExpirationModel"]), ("Enabled", "KEY_MATERIAL_EXPIRES"))
        self.assertEqual(m["ValidTo"], valid_to)
        # The default ExpirationModel is KEY_MATERIAL_EXPIRES, so ValidTo alone is enough.
        p = self.params(kid)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"], ValidTo=valid_to,
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256"))

    def test_aws_cli_and_openssl_as_the_guide_shows(self):
        """The Developer Guide's steps with the aws CLI and OpenSSL: create-key --origin EXTERNAL,
        get-parameters-for-import written to files with --query and base64 --decode, `openssl rand`
        for the material, `openssl pkeyutl` with RSAES-OAEP SHA-256, import-key-material with
        fileb:// blobs; then the key encrypts, and its blob opens with the material."""
        d = tempfile.mkdtemp(dir=self.tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(kms_harness.DEV_ENV, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_MAX_ATTEMPTS="1")

        def aws(*args):
            p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, "kms", *args], env=env,
                               capture_output=True, text=True, timeout=120, check=False)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.strip()

        kid = aws("create-key", "--origin", "EXTERNAL", "--query", "KeyMetadata.KeyId", "--output", "text")
        for member, name in (("PublicKey", "WrappingPublicKey.bin"), ("ImportToken", "ImportToken.bin")):
            text = aws("get-parameters-for-import", "--key-id", kid, "--wrapping-algorithm", "RSAES_OAEP_SHA_256",
                       "--wrapping-key-spec", "RSA_2048", "--query", member, "--output", "text")
            with open(os.path.join(d, name), "wb") as f:
                f.write(base64.b64decode(text))
        # Two calls: the second's parameters replace the first's, so its token goes with its key.
        # (The guide takes both from one response; here both files come from the second.)
        text = aws("get-parameters-for-import", "--key-id", kid, "--wrapping-algorithm", "RSAES_OAEP_SHA_256",
                   "--wrapping-key-spec", "RSA_2048", "--query", "[PublicKey, ImportToken]", "--output", "text")
        pub_b64, token_b64 = text.split()
        for name, b64 in (("WrappingPublicKey.bin", pub_b64), ("ImportToken.bin", token_b64)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(base64.b64decode(b64))
        subprocess.run(["openssl", "rand", "-out", "PlaintextKeyMaterial.bin", "32"], cwd=d, check=True)
        subprocess.run(["openssl", "pkeyutl", "-encrypt", "-in", "PlaintextKeyMaterial.bin", "-out",
                        "EncryptedKeyMaterial.bin", "-inkey", "WrappingPublicKey.bin", "-keyform", "DER", "-pubin",
                        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt",
                        "rsa_mgf1_md:sha256"], cwd=d, check=True)
        aws("import-key-material", "--key-id", kid, "--encrypted-key-material",
            "fileb://" + os.path.join(d, "EncryptedKeyMaterial.bin"), "--import-token",
            "fileb://" + os.path.join(d, "ImportToken.bin"), "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.assertEqual(aws("describe-key", "--key-id", kid, "--query", "KeyMetadata.KeyState", "--output", "text"),
                         "Enabled")
        with open(os.path.join(d, "PlaintextKeyMaterial.bin"), "rb") as f:
            material = f.read()
        blob = self.kms.encrypt(KeyId=kid, Plaintext=b"from the guide")["CiphertextBlob"]
        self.assertEqual(open_blob(material, blob), b"from the guide")

    def test_refusals(self):
        kid = self.external_key()
        other = self.external_key()
        material = os.urandom(32)
        p = self.params(kid)
        enc = wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256")
        # A token of another key.
        q = self.params(other)
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=q["ImportToken"], EncryptedKeyMaterial=enc,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidImportTokenException",
            "associated with a different KMS key")
        # A token that is not one of ours; a token a newer GetParametersForImport replaced.
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=b"\x01" + os.urandom(68), EncryptedKeyMaterial=enc,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidImportTokenException")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=b"garbage", EncryptedKeyMaterial=enc,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidImportTokenException",
            "not one this server issued")
        p2 = self.params(kid)
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p["ImportToken"], EncryptedKeyMaterial=enc,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidImportTokenException",
            "latest GetParametersForImport")
        # Material wrapped for the replaced public key, or with another algorithm than the parameters'.
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=enc,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidCiphertextException",
            "could not decrypt the encrypted (wrapped) key material")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"],
            EncryptedKeyMaterial=wrap(material, p2["PublicKey"], "RSAES_OAEP_SHA_1"),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "InvalidCiphertextException", "RSAES_OAEP_SHA_256")
        # Wrong material size: 16 and 33 bytes.
        for n in (16, 33):
            self.refused(lambda: self.kms.import_key_material(
                KeyId=kid, ImportToken=p2["ImportToken"],
                EncryptedKeyMaterial=wrap(os.urandom(n), p2["PublicKey"], "RSAES_OAEP_SHA_256"),
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "IncorrectKeyMaterialException",
                "%d bytes" % n, "256 bits (32 bytes)")
        # The expiration members (checked before anything else).
        now = datetime.datetime.now(datetime.timezone.utc)
        good = wrap(material, p2["PublicKey"], "RSAES_OAEP_SHA_256")
        self.refused(lambda: self.kms.import_key_material(KeyId=kid, ImportToken=p2["ImportToken"],
                                                          EncryptedKeyMaterial=good),
                     "ValidationException", "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=good, ValidTo=now + datetime.timedelta(1),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "ValidationException", "ValidTo is not valid")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=good,
            ValidTo=now - datetime.timedelta(seconds=5)), "ValidationException", "is not in the future")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=good,
            ValidTo=now + datetime.timedelta(days=366)), "ValidationException", "more than 365 days")
        # None of that changed anything: still no material.
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingImport")
        # Import, then different material is refused, as AWS refuses it.
        self.kms.import_key_material(KeyId=kid, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=good,
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.refused(lambda: self.kms.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"],
            EncryptedKeyMaterial=wrap(os.urandom(32), p2["PublicKey"], "RSAES_OAEP_SHA_256"),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "IncorrectKeyMaterialException",
            "not the same key material that was previously imported")
        # New material for on-demand rotation (AWS's ImportType NEW_KEY_MATERIAL) is not taken here.
        self.refused(lambda: self.newer.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], ImportType="NEW_KEY_MATERIAL",
            EncryptedKeyMaterial=wrap(os.urandom(32), p2["PublicKey"], "RSAES_OAEP_SHA_256"),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "UnsupportedOperationException",
            "one imported material per key")
        self.refused(lambda: self.newer.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], ImportType="NEW_KEY_MATERIAL", EncryptedKeyMaterial=good,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "IncorrectKeyMaterialException",
            "already associated")
        self.refused(lambda: self.newer.import_key_material(
            KeyId=kid, ImportToken=p2["ImportToken"], KeyMaterialId="0" * 64, EncryptedKeyMaterial=good,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "IncorrectKeyMaterialException", "KeyMaterialId")
        blob = self.kms.encrypt(KeyId=kid, Plaintext=b"still the first")["CiphertextBlob"]
        self.assertEqual(open_blob(material, blob), b"still the first")
        # Parameters: AWS dropped RSAES_PKCS1_V1_5; SM2 is China-only; an AWS_KMS key takes no import.
        self.refused(lambda: self.params(kid, "RSAES_PKCS1_V1_5"), "UnsupportedOperationException",
                     "October 10, 2023")
        self.refused(lambda: self.params(kid, "RSAES_OAEP_SHA_256", "SM2"), "UnsupportedOperationException",
                     "China Regions")
        self.refused(lambda: self.params(kid, "RSA_AES_KEY_WRAP_SHA_512"), "ValidationException",
                     "Member must satisfy enum value set")
        generated = self.kms.create_key()["KeyMetadata"]["KeyId"]
        for call in (lambda: self.params(generated),
                     lambda: self.kms.delete_imported_key_material(KeyId=generated)):
            self.refused(call, "UnsupportedOperationException", "Origin AWS_KMS", "Origin EXTERNAL")

    def test_key_states(self):
        kid = self.external_key()
        for call in (lambda: self.kms.encrypt(KeyId=kid, Plaintext=b"x"),
                     lambda: self.kms.generate_data_key(KeyId=kid, KeySpec="AES_256")):
            self.refused(call, "KMSInvalidStateException", "is pending import")
        for call in (lambda: self.kms.enable_key(KeyId=kid), lambda: self.kms.disable_key(KeyId=kid)):
            self.refused(call, "KMSInvalidStateException", "pending import")
        # Imported keys do not rotate ("You cannot enable automatic rotation of ... KMS keys with
        # imported key material"; new material for on-demand rotation is not taken here).
        for call in (lambda: self.kms.enable_key_rotation(KeyId=kid),
                     lambda: self.newer.rotate_key_on_demand(KeyId=kid)):
            self.refused(call, "UnsupportedOperationException", "imported key material")
        # Only symmetric keys take imported material here.
        self.refused(lambda: self.kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_256",
                                                 KeyUsage="GENERATE_VERIFY_MAC"),
                     "UnsupportedOperationException", "SYMMETRIC_DEFAULT keys only")
        # A PendingImport key can be scheduled for deletion; cancelled, it is PendingImport again.
        self.kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingDeletion")
        self.refused(lambda: self.params(kid), "KMSInvalidStateException", "pending deletion")
        self.kms.cancel_key_deletion(KeyId=kid)
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingImport")
        # Imported into a disabled key's place: the key becomes Enabled, as AWS says.
        material = os.urandom(32)
        p = self.params(kid)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256"),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "Enabled")
        self.kms.disable_key(KeyId=kid)
        self.refused(lambda: self.kms.encrypt(KeyId=kid, Plaintext=b"x"), "DisabledException")
        # A reimport (to change the expiry) leaves a Disabled key Disabled.
        p = self.params(kid)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256"),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "Disabled")
        self.kms.enable_key(KeyId=kid)
        self.assertEqual(self.kms.decrypt(CiphertextBlob=self.kms.encrypt(KeyId=kid, Plaintext=b"y")["CiphertextBlob"])
                         ["Plaintext"], b"y")

    def test_delete_imported_key_material(self):
        material = os.urandom(32)
        kid = self.imported_key(material, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
        blob = self.kms.encrypt(KeyId=kid, Plaintext=b"before")["CiphertextBlob"]
        first_id = None
        r = self.newer.delete_imported_key_material(KeyId=kid)
        self.assertTrue(r["KeyId"].endswith(":key/" + kid))
        first_id = r["KeyMaterialId"]
        self.assertRegex(first_id, r"^[0-9a-f]{64}$")
        m = self.kms.describe_key(KeyId=kid)["KeyMetadata"]
        self.assertEqual((m["KeyState"], m["Enabled"]), ("PendingImport", False))
        self.assertNotIn("ExpirationModel", m)
        self.refused(lambda: self.kms.decrypt(CiphertextBlob=blob), "KMSInvalidStateException", "pending import")
        self.refused(lambda: self.kms.encrypt(KeyId=kid, Plaintext=b"x"), "KMSInvalidStateException")
        # The material is gone from the store, not just hidden.
        with sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "keys.db"), uri=True) as db:
            self.assertEqual(db.execute("SELECT count(*) FROM key_versions WHERE key_id=?", (kid,)).fetchone()[0], 0)
        # Deleting again changes nothing; reimporting the same material restores the key.
        self.kms.delete_imported_key_material(KeyId=kid)
        p = self.params(kid)
        r = self.newer.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                           EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256"),
                                           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
                                           ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=first_id)
        self.assertEqual(r["KeyMaterialId"], first_id)
        self.assertEqual(self.kms.decrypt(CiphertextBlob=blob)["Plaintext"], b"before")
        self.refused(lambda: self.newer.delete_imported_key_material(KeyId=kid, KeyMaterialId="a" * 64),
                     "NotFoundException", "is not a key material of")
        self.refused(lambda: self.newer.delete_imported_key_material(KeyId=kid, KeyMaterialId="G" * 64),
                     "ValidationException", "regular expression pattern")

    def test_secrets_are_not_stored_or_logged_in_the_clear(self):
        """The material and the import token are on disk only wrapped (the material, the wrapping
        key) or hashed (the token), and the audit log names neither."""
        material = os.urandom(32)
        kid = self.external_key()
        p = self.params(kid, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256"),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        token = p["ImportToken"]
        secrets = [material, material.hex().encode(), base64.b64encode(material), token, base64.b64encode(token),
                   token[-32:]]
        found = []
        for name in sorted(os.listdir(self.data)):
            path = os.path.join(self.data, name)
            if not os.path.isfile(path) or name == "root.key":
                continue
            with open(path, "rb") as f:
                content = f.read()
            found += ["%s holds secret %d" % (name, i) for i, s in enumerate(secrets) if s in content]
        self.assertEqual(found, [])
        with open(os.path.join(self.data, "audit.log"), encoding="utf-8") as f:
            log = f.read()
        self.assertIn('"operation":"ImportKeyMaterial"', log)

    def test_survives_restart(self):
        material = os.urandom(32)
        kid = self.imported_key(material)
        blob = self.kms.encrypt(KeyId=kid, Plaintext=b"durable")["CiphertextBlob"]
        self.restart()
        self.assertEqual(self.kms.decrypt(CiphertextBlob=blob)["Plaintext"], b"durable")
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["Origin"], "EXTERNAL")

    def faketime_env(self, ahead):
        if not faketime_usable():
            self.skipTest("libfaketime is not installed (apt-get install faketime), or the server is sanitized")
        env = dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME="+%ds" % ahead, FAKETIME_DONT_FAKE_MONOTONIC="1",
                   FAKETIME_NO_CACHE="1")
        return env

    def in_the_future(self, ahead, check):
        """Runs check() against the server started again with its clock `ahead` seconds on, the
        client signing with that clock; then back to the present."""
        env = self.faketime_env(ahead)
        self.restart(env)
        try:
            later = datetime.datetime.utcnow() + datetime.timedelta(seconds=ahead)
            with kms_harness.frozen_clock(later):
                check()
        finally:
            self.restart()

    def test_material_expires_at_valid_to(self):
        self.faketime_env(0)
        material = os.urandom(32)
        valid_to = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(hours=1)
        kid = self.imported_key(material, ValidTo=valid_to)
        blob = self.kms.encrypt(KeyId=kid, Plaintext=b"until ValidTo")["CiphertextBlob"]
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["ValidTo"], valid_to)

        def after_valid_to():
            self.refused(lambda: self.kms.decrypt(CiphertextBlob=blob), "KMSInvalidStateException", "pending import")
            self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingImport")
        self.in_the_future(2 * 3600, after_valid_to)
        # The expired material was deleted, not merely refused.
        with sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "keys.db"), uri=True) as db:
            self.assertEqual(db.execute("SELECT count(*) FROM key_versions WHERE key_id=?", (kid,)).fetchone()[0], 0)
        self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingImport")
        # Reimported, it works again.
        p = self.params(kid)
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                     EncryptedKeyMaterial=wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256"),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.assertEqual(self.kms.decrypt(CiphertextBlob=blob)["Plaintext"], b"until ValidTo")

    def test_expired_import_parameters(self):
        self.faketime_env(0)
        kid = self.external_key()
        material = os.urandom(32)
        p = self.params(kid)
        enc = wrap(material, p["PublicKey"], "RSAES_OAEP_SHA_256")

        def a_day_later():
            self.refused(lambda: self.kms.import_key_material(
                KeyId=kid, ImportToken=p["ImportToken"], EncryptedKeyMaterial=enc,
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"), "ExpiredImportTokenException",
                "24 hours after GetParametersForImport", "call GetParametersForImport again")
            self.assertEqual(self.kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"], "PendingImport")
        self.in_the_future(86400 + 3600, a_day_later)
        # Within the 24 hours, the same parameters import.
        self.kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"], EncryptedKeyMaterial=enc,
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")


if __name__ == "__main__":
    unittest.main(verbosity=2)
