#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the data directory of a cloister-kms from before regions (tests/integration/kms_regions.py
reads it): run with CLOISTER_BUILD_DIR naming a build of main at 6a44c01 (the last commit whose
cloister-kms answers one region), e.g.

    CLOISTER_BUILD_DIR=/work/main/build tests/vectors/kms-data-v0/generate.py

That server, configured for region eu-west-1, creates keys, an alias, a grant, tags, a rotation,
ciphertexts and a signature through boto3; what it stored is written here as text: keys.sql (the
SQLite store as python's sqlite3 iterdump() gives it), audit.log (its hash chain), manifest.json
(the root key in hex, the config, the ids, ARNs and ciphertexts the test expects back). Its
output is committed; rerunning it makes new keys (and needs the old build)."""
import base64
import json
import os
import shutil
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../integration"))
import kms_harness  # noqa: E402

REGION = "eu-west-1"
ALICE = {"access_key_id": "AKIAALICE0001", "secret": "alice-Secret-9f3b", "arn": "arn:aws:iam::123456789012:user/alice"}
BOB = {"access_key_id": "AKIABOB000002", "secret": "bob-Secret-77aa", "arn": "arn:aws:iam::210987654321:role/bob"}


def b64(b):
    return base64.b64encode(b).decode()


def main():
    tmp = tempfile.mkdtemp(prefix="kms-v0-")
    try:
        data = os.path.join(tmp, "data")
        cfg = {"listen": "127.0.0.1:0", "threads": 1, "region": REGION, "data_dir": data, "principals": [ALICE, BOB]}
        path = os.path.join(tmp, "kms.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        os.chmod(path, 0o600)
        m = {"config": {"region": REGION, "principals": [ALICE, BOB]}}
        with kms_harness.kms_server_config(path) as srv:
            a = kms_harness.boto_client(srv.endpoint, key=ALICE["access_key_id"], secret=ALICE["secret"],
                                        region=REGION)
            sym = a.create_key(Description="legacy symmetric", Tags=[{"TagKey": "team", "TagValue": "radiology"}])
            kid = sym["KeyMetadata"]["KeyId"]
            ctx = {"purpose": "legacy"}
            ct1 = a.encrypt(KeyId=kid, Plaintext=b"before the rotation", EncryptionContext=ctx)["CiphertextBlob"]
            kms_harness.NewerKms(srv.endpoint, key=ALICE["access_key_id"], secret=ALICE["secret"],
                                 region=REGION).rotate_key_on_demand(KeyId=kid)
            ct2 = a.encrypt(KeyId=kid, Plaintext=b"after the rotation", EncryptionContext=ctx)["CiphertextBlob"]
            dk = a.generate_data_key(KeyId=kid, KeySpec="AES_256")
            a.create_alias(AliasName="alias/legacy", TargetKeyId=kid)
            g = a.create_grant(KeyId=kid, GranteePrincipal=BOB["arn"], Operations=["Decrypt"], Name="bob-decrypts")
            ecc = a.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
            sig = a.sign(KeyId=ecc["KeyId"], Message=b"signed before regions",
                         SigningAlgorithm="ECDSA_SHA_256")["Signature"]
            pub = a.get_public_key(KeyId=ecc["KeyId"])["PublicKey"]
            m.update({"symmetric": {"key_id": kid, "arn": sym["KeyMetadata"]["Arn"], "alias": "alias/legacy",
                                    "context": ctx, "grant_id": g["GrantId"],
                                    "ciphertexts": [[b64(ct1), "before the rotation"],
                                                    [b64(ct2), "after the rotation"]],
                                    "data_key": [b64(dk["CiphertextBlob"]), b64(dk["Plaintext"])]},
                      "ecc": {"key_id": ecc["KeyId"], "arn": ecc["Arn"], "message": "signed before regions",
                              "signature": b64(sig), "public_key": b64(pub)}})
        with open(os.path.join(data, "root.key"), "rb") as f:
            m["root_key_hex"] = f.read().hex()
        db = sqlite3.connect(os.path.join(data, "keys.db"))
        with open(os.path.join(HERE, "keys.sql"), "w") as f:
            for line in db.iterdump():
                f.write(line + "\n")
        db.close()
        shutil.copy(os.path.join(data, "audit.log"), os.path.join(HERE, "audit.log"))
        with open(os.path.join(HERE, "manifest.json"), "w") as f:
            json.dump(m, f, indent=1, sort_keys=True)
            f.write("\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
