# SPDX-License-Identifier: Apache-2.0
"""cloister-kms attested key release with real peers: the requests with Recipient are signed by
botocore (kms_harness.NewerKms: Debian 12's botocore 1.29 predates Recipient, so the JSON is
built as the AWS KMS API Reference gives RecipientInfo), the documents are made by
recipient_ref.py (Python `cryptography`, not libcloister), and the openssl CLI (`openssl cms
-decrypt`) opens CiphertextForRecipient with the recipient's private key. Negative cases: a
document too old, from another root, tampered, without a public key; a wrong
KeyEncryptionAlgorithm; a PCR0 the key policy does not name (AccessDeniedException naming the
condition)."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import recipient_ref  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

CLI = kms_harness.CLI_BIN
ACCOUNT = "111122223333"
ADMIN = kms_harness.principal("admin", "adminsecret", "arn:aws:iam::%s:user/admin" % ACCOUNT)
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def error_of(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    return None, ""


def openssl_decrypt(tmp, key_pem, cms):
    kp, cp = os.path.join(tmp, "rk.pem"), os.path.join(tmp, "cfr.der")
    open(kp, "wb").write(key_pem)
    open(cp, "wb").write(cms)
    r = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", cp, "-inkey", kp, "-binary"],
                       capture_output=True, timeout=30)
    os.unlink(kp)
    return r.stdout if r.returncode == 0 else None


def policy(pcr0_upper):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/admin" % ACCOUNT},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "enclave", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:user/dev" % ACCOUNT},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         # Upper-case on purpose: the condition keys are lower-case hex, StringEqualsIgnoreCase matches.
         "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": pcr0_upper}}}]})


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-recipient-")
    try:
        pki = os.path.join(tmp, "pki")
        r = subprocess.run([CLI, "enclave", "init-root", "-o", pki], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        plat = recipient_ref.Platform(pki)
        foreign = recipient_ref.Platform(None)
        key_pem, spki = recipient_ref.rsa_recipient()
        good_pcr0 = hashlib.sha384(b"the image").digest()
        good = {0: good_pcr0, 1: hashlib.sha384(b"runtime").digest(), 2: hashlib.sha384(b"app").digest()}
        with kms_harness.kms_server(extra_args=["--attestation-root", os.path.join(pki, "root.pem")],
                                    principals=[ADMIN]) as srv:
            admin = kms_harness.boto_client(srv.endpoint, key="admin", secret="adminsecret")
            dev = kms_harness.NewerKms(srv.endpoint)
            kid = admin.create_key(Policy=policy(good_pcr0.hex().upper()))["KeyMetadata"]["KeyId"]
            blob = admin.encrypt(KeyId=kid, Plaintext=b"model key: 0123456789abcdef")["CiphertextBlob"]
            doc = plat.document(spki, good)
            rcpt = {"AttestationDocument": doc, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}

            # Decrypt: CiphertextForRecipient, no Plaintext; openssl cms opens it with the enclave's key.
            resp = dev.decrypt(CiphertextBlob=blob, Recipient=rcpt)
            check("CiphertextForRecipient" in resp and not resp.get("Plaintext"),
                  "Decrypt with Recipient answers CiphertextForRecipient and no Plaintext")
            pt = openssl_decrypt(tmp, key_pem, resp.get("CiphertextForRecipient", b""))
            check(pt == b"model key: 0123456789abcdef", "openssl cms -decrypt opens the Decrypt answer")
            out = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER"],
                                 input=resp["CiphertextForRecipient"], capture_output=True, timeout=30).stdout
            check(b"rsaesOaep" in out and b"sha256" in out and b"mgf1" in out and b"aes-256-cbc" in out and
                  b"d.subjectKeyIdentifier" in out and out.count(b"d.ktri") == 1,
                  "the envelope is one ktri by subjectKeyIdentifier, RSAES-OAEP SHA-256/MGF1, AES-256-CBC")

            # GenerateDataKey: the data key is in CiphertextForRecipient; CiphertextBlob decrypts to the same key.
            resp = dev.generate_data_key(KeyId=kid, KeySpec="AES_256", Recipient=rcpt)
            check(not resp.get("Plaintext") and resp.get("CiphertextBlob"),
                  "GenerateDataKey with Recipient: CiphertextBlob and no Plaintext")
            dk = openssl_decrypt(tmp, key_pem, resp.get("CiphertextForRecipient", b""))
            ref = admin.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"]
            check(dk is not None and len(dk) == 32 and dk == ref, "the recipient's data key is the CiphertextBlob's")

            # GenerateRandom: no key policy, a valid document is enough.
            resp = dev.generate_random(NumberOfBytes=64, Recipient=rcpt)
            rnd = openssl_decrypt(tmp, key_pem, resp.get("CiphertextForRecipient", b""))
            check(not resp.get("Plaintext") and rnd is not None and len(rnd) == 64,
                  "GenerateRandom with Recipient: 64 bytes only in CiphertextForRecipient")

            # Policy: another PCR0 is refused, naming the condition; no Recipient at all likewise.
            bad = dict(good)
            bad[0] = hashlib.sha384(b"the image, one byte off").digest()
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={**rcpt, "AttestationDocument": plat.document(spki, bad)})
            check(code == "AccessDeniedException" and "kms:RecipientAttestation:PCR0" in msg and
                  "StringEqualsIgnoreCase" in msg and bad[0].hex() in msg.lower() and
                  good_pcr0.hex() not in msg.lower(),
                  "another PCR0: AccessDeniedException naming the condition and the document's PCR0 (never the "
                  "policy's): " + msg)
            code, msg = error_of(dev.generate_data_key, KeyId=kid, KeySpec="AES_256",
                                 Recipient={**rcpt, "AttestationDocument": plat.document(spki, bad)})
            check(code == "AccessDeniedException", "another PCR0: GenerateDataKey refused too")
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob)
            check(code == "AccessDeniedException" and "kms:RecipientAttestation:PCR0" in msg and
                  "the attestation document has none" in msg,
                  "no Recipient: the condition key is absent, refused: " + msg)

            # Invalid documents: ValidationException, as AWS KMS answers them.
            old = plat.document(spki, good, timestamp_ms=int((time.time() - 6 * 60) * 1000))
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob, Recipient={**rcpt, "AttestationDocument": old})
            check(code == "ValidationException" and "attestation document" in msg and "old" in msg,
                  "a 6-minute-old document is refused: " + msg)
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={**rcpt, "AttestationDocument": foreign.document(spki, good)})
            check(code == "ValidationException" and "attestation document" in msg,
                  "a document from another root is refused: " + msg)
            t = bytearray(doc)
            t[-5] ^= 1
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={**rcpt, "AttestationDocument": bytes(t)})
            check(code == "ValidationException" and "signature" in msg.lower(),
                  "a document with a flipped signature bit is refused: " + msg)
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={**rcpt, "AttestationDocument": plat.document(None, good)})
            check(code == "ValidationException" and "public_key" in msg, "a document without public_key: " + msg)
            ec_spki = recipient_ref.Platform(None).leaf_key.public_key().public_bytes(
                recipient_ref.serialization.Encoding.DER,
                recipient_ref.serialization.PublicFormat.SubjectPublicKeyInfo)
            code, msg = error_of(dev.generate_random, NumberOfBytes=8,
                                 Recipient={**rcpt, "AttestationDocument": plat.document(ec_spki, good)})
            check(code == "ValidationException" and "RSA" in msg, "a document carrying an EC key: " + msg)
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={**rcpt, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"})
            check(code == "ValidationException" and "RSAES_OAEP_SHA_256" in msg,
                  "KeyEncryptionAlgorithm other than RSAES_OAEP_SHA_256 is refused: " + msg)
            code, msg = error_of(dev.decrypt, CiphertextBlob=blob,
                                 Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
            check(code == "ValidationException" and "attestationDocument" in msg, "Recipient without a document")

            # The audit log names the attested caller: the document's PCR0 on every Recipient request.
            lines = [json.loads(ln) for ln in open(os.path.join(srv.data_dir, "audit.log"))]
            rec = [(ln["operation"], ln["outcome"], ln.get("recipient", {}).get("pcr0")) for ln in lines]
            check(("Decrypt", "ok", good_pcr0.hex()) in rec and
                  ("Decrypt", "AccessDeniedException", bad[0].hex()) in rec and
                  ("Decrypt", "AccessDeniedException", None) in rec and
                  all(ln["recipient"]["module_id"] for ln in lines if "recipient" in ln),
                  "the audit log records each Recipient's module id and PCR0, granted and refused: %s" % rec[-12:])

        # Without --attestation-root, Recipient is refused rather than trusted.
        with kms_harness.kms_server() as srv:
            dev = kms_harness.NewerKms(srv.endpoint)
            code, msg = error_of(dev.generate_random, NumberOfBytes=8, Recipient=rcpt)
            check(code == "ValidationException" and "--attestation-root" in msg,
                  "no configured root: Recipient refused: " + msg)
        # The same from a config file: attestation_roots and attestation_max_age.
        cfg = os.path.join(tmp, "kms.json")
        with open(cfg, "w") as f:
            json.dump({"listen": "127.0.0.1:0", "region": "us-east-1", "data_dir": "cfg-data",
                       "attestation_roots": ["pki/root.pem"], "attestation_max_age": 900,
                       "principals": [{"access_key_id": "test", "secret": "test",
                                       "arn": "arn:aws:iam::111122223333:user/dev"}]}, f)
        os.chmod(cfg, 0o600)
        with kms_harness.kms_server_config(cfg) as srv:
            dev = kms_harness.NewerKms(srv.endpoint)
            resp = dev.generate_random(NumberOfBytes=8, Recipient={**rcpt, "AttestationDocument": old})
            check(len(openssl_decrypt(tmp, key_pem, resp.get("CiphertextForRecipient", b""))) == 8,
                  "config file: attestation_roots (relative path) and attestation_max_age 900 are honoured")
            code, msg = error_of(dev.generate_random, NumberOfBytes=8,
                                 Recipient={**rcpt, "AttestationDocument": foreign.document(spki, good)})
            check(code == "ValidationException", "config file: a document from another root is refused: " + msg)
        # --attestation-max-age is honoured.
        with kms_harness.kms_server(extra_args=["--attestation-root", os.path.join(pki, "root.pem"),
                                                "--attestation-max-age", "900"]) as srv:
            dev = kms_harness.NewerKms(srv.endpoint)
            resp = dev.generate_random(NumberOfBytes=8, Recipient={**rcpt, "AttestationDocument": old})
            check(resp.get("CiphertextForRecipient") is not None, "--attestation-max-age 900 accepts a 6-minute-old one")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
