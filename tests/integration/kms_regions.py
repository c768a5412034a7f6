#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""One cloister-kms, every region (docs/kms.md, "Regions"): `aws --region eu-central-1 kms
create-key` (Debian's aws CLI) and a boto3 client in ap-northeast-1 against the same --dev server;
the key of one region is NotFoundException from another by id, by ARN and by alias, its
ciphertext InvalidCiphertextException; ListKeys, ListAliases and ListRetirableGrants list their
region; a grant token works in its region only; aws:RequestedRegion is the request's; ARNs carry
the partition of their region (aws-cn, aws-us-gov); a name that is no AWS region's, or one outside
the config's "regions", is InvalidSignatureException with AWS's words and what is answered.

A data directory written before regions (tests/vectors/kms-data-v0: main's cloister-kms at
6a44c01, configured for eu-west-1) serves its keys in eu-west-1 only, its old ciphertexts and
signature still check, its alias, grant and tags are there, its audit chain goes on; with the
config's region changed to us-east-1 its keys stay in eu-west-1, the region of their ARNs.
kms_pg.py runs the same check on the PostgreSQL store (legacy_pg here).

Error texts as AWS's (item 4 of issue 15), checked whole: "1 validation error detected: ..."
for lengths, ranges and patterns; NotFoundException's "Invalid keyId 'ID'", "Key 'ARN' does not
exist", "Alias ARN is not found."; the "alias/" prefix in AWS's words."""
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

ACCT = "111122223333"
LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../vectors/kms-data-v0")


def code(e):
    return e.exception.response["Error"]["Code"]


def message(e):
    return e.exception.response["Error"]["Message"]


# --- the data directory of before regions ----------------------------------------------------------------------------

def legacy_manifest():
    with open(os.path.join(LEGACY, "manifest.json")) as f:
        return json.load(f)


def legacy_root_key(path):
    """The fixture's root key into path, mode 0600 from its creation (the server refuses others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes.fromhex(legacy_manifest()["root_key_hex"]))


def legacy_db():
    """The old SQLite store, in memory, from its SQL text."""
    db = sqlite3.connect(":memory:")
    with open(os.path.join(LEGACY, "keys.sql")) as f:
        db.executescript(f.read())
    return db


def legacy_data_dir(data):
    """data/: root.key, keys.db and audit.log as the old server left them."""
    os.makedirs(data, mode=0o700)
    legacy_root_key(os.path.join(data, "root.key"))
    mem = legacy_db()
    disk = sqlite3.connect(os.path.join(data, "keys.db"))
    mem.backup(disk)
    disk.close()
    mem.close()
    shutil.copy(os.path.join(LEGACY, "audit.log"), os.path.join(data, "audit.log"))
    os.chmod(os.path.join(data, "audit.log"), 0o600)


def legacy_config(path, data, region, store=None):
    m = legacy_manifest()
    cfg = {"listen": "127.0.0.1:0", "threads": 2, "region": region, "data_dir": data,
           "principals": m["config"]["principals"]}
    if store is not None:
        cfg["store"] = store
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return path


def legacy_client(endpoint, who, region):
    p = legacy_manifest()["config"]["principals"][who]
    return kms_harness.boto_client(endpoint, key=p["access_key_id"], secret=p["secret"], region=region)


def expect(fn, want_code, want_message=None, contains=None):
    try:
        fn()
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["Error"]["Message"])
        assert got[0] == want_code, (got, want_code)
        if want_message is not None:
            assert got[1] == want_message, (got[1], want_message)
        if contains is not None:
            assert contains in got[1], (got[1], contains)
        return got[1]
    raise AssertionError("succeeded; expected %s" % want_code)


def check_legacy(endpoint):
    """What the old server made is served in its region (eu-west-1), and only there."""
    m = legacy_manifest()
    sym, ecc, region = m["symmetric"], m["ecc"], m["config"]["region"]
    alice = legacy_client(endpoint, 0, region)
    bob = legacy_client(endpoint, 1, region)
    for ident in (sym["key_id"], sym["arn"], sym["alias"], "arn:aws:kms:%s:123456789012:%s" % (region, sym["alias"])):
        meta = alice.describe_key(KeyId=ident)["KeyMetadata"]
        assert meta["Arn"] == sym["arn"] and ":%s:" % region in meta["Arn"], (ident, meta)
    ctx = sym["context"]
    for blob, plain in sym["ciphertexts"]:
        assert base64.b64decode(blob)[0] == 1  # format 1: no region in it
        got = alice.decrypt(CiphertextBlob=base64.b64decode(blob), EncryptionContext=ctx)
        assert got["Plaintext"] == plain.encode() and got["KeyId"] == sym["arn"], got
    dk_blob, dk_plain = sym["data_key"]
    assert alice.decrypt(CiphertextBlob=base64.b64decode(dk_blob))["Plaintext"] == base64.b64decode(dk_plain)
    # Bob (another account) decrypts through the old grant.
    grants = alice.list_grants(KeyId=sym["key_id"])["Grants"]
    assert [g["GrantId"] for g in grants] == [sym["grant_id"]], grants
    assert grants[0]["KeyId"] == sym["arn"]
    assert bob.decrypt(CiphertextBlob=base64.b64decode(sym["ciphertexts"][0][0]),
                       EncryptionContext=ctx)["Plaintext"] == b"before the rotation"
    assert alice.list_resource_tags(KeyId=sym["key_id"])["Tags"] == [{"TagKey": "team", "TagValue": "radiology"}]
    # Rotation went on from the old versions: new ciphertexts are format 2, of version 2, in eu-west-1.
    new = alice.encrypt(KeyId=sym["alias"], Plaintext=b"after regions", EncryptionContext=ctx)["CiphertextBlob"]
    assert new[0] == 2 and new[39:39 + new[38]] == region.encode(), new[:60]
    assert int.from_bytes(new[39 + new[38]:43 + new[38]], "big") == 2
    assert alice.decrypt(CiphertextBlob=new, EncryptionContext=ctx)["Plaintext"] == b"after regions"
    # The signing key: same public key, the old signature verifies, it signs anew.
    assert alice.get_public_key(KeyId=ecc["key_id"])["PublicKey"] == base64.b64decode(ecc["public_key"])
    assert alice.verify(KeyId=ecc["arn"], Message=ecc["message"].encode(), Signature=base64.b64decode(ecc["signature"]),
                        SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    sig = alice.sign(KeyId=ecc["key_id"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert alice.verify(KeyId=ecc["key_id"], Message=b"x", Signature=sig,
                        SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    listed = sorted(k["KeyId"] for k in alice.list_keys()["Keys"])
    assert listed == sorted([sym["key_id"], ecc["key_id"]]), listed
    assert [a["AliasName"] for a in alice.list_aliases()["Aliases"]] == [sym["alias"]]
    # From another region: none of it.
    other = legacy_client(endpoint, 0, "us-east-1")
    assert other.list_keys()["Keys"] == [] and other.list_aliases()["Aliases"] == []
    expect(lambda: other.describe_key(KeyId=sym["key_id"]), "NotFoundException",
           "Key 'arn:aws:kms:us-east-1:123456789012:key/%s' does not exist" % sym["key_id"])
    expect(lambda: other.describe_key(KeyId=sym["arn"]), "NotFoundException", "Invalid arn %s" % region)
    expect(lambda: other.describe_key(KeyId=sym["alias"]), "NotFoundException",
           "Alias arn:aws:kms:us-east-1:123456789012:alias/legacy is not found.")
    expect(lambda: other.decrypt(CiphertextBlob=base64.b64decode(sym["ciphertexts"][1][0]), EncryptionContext=ctx),
           "InvalidCiphertextException",
           "The ciphertext's key is not in region us-east-1: decrypt it in the region it was made in (a KMS key "
           "and its ciphertexts belong to one region)")
    expect(lambda: other.decrypt(CiphertextBlob=new, EncryptionContext=ctx), "InvalidCiphertextException",
           "The ciphertext was made in region %s, not us-east-1: decrypt it in %s (a KMS key and its ciphertexts "
           "belong to one region)" % (region, region))


def legacy_pg(pg, tmp):
    """The old store in PostgreSQL: its schema (version 1) and rows as the old server wrote them, then
    the new server on it. Called by kms_pg.py, which has a database server."""
    pg.createdb("legacy")
    with open(os.path.join(LEGACY, "pg-schema-v1.sql")) as f:
        pg.psql(f.read(), db="legacy")
    booleans = {"rotation_enabled", "on_demand"}

    def literal(col, v):
        if v is None:
            return "NULL"
        if isinstance(v, bytes):
            return "'\\x%s'::bytea" % v.hex()
        if col in booleans:
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return "'%s'" % v.replace("'", "''")

    db = legacy_db()
    sql = []
    for table in ("keys", "key_versions", "aliases", "grants", "tags"):
        cur = db.execute("SELECT * FROM %s" % table)
        cols = [d[0] for d in cur.description]
        for row in cur:
            sql.append("INSERT INTO %s(%s) VALUES(%s);" % (table, ",".join(cols),
                                                           ",".join(literal(c, v) for c, v in zip(cols, row))))
    assert len(sql) >= 7, sql
    pg.psql("\n".join(sql), db="legacy")
    data = os.path.join(tmp, "legacy-pg-data")
    os.makedirs(data, mode=0o700)
    root = os.path.join(tmp, "legacy-pg-root.key")
    legacy_root_key(root)
    shutil.copy(os.path.join(LEGACY, "audit.log"), os.path.join(data, "audit.log"))
    cfg = legacy_config(os.path.join(tmp, "legacy-pg.json"), data, "eu-west-1",
                        store={"type": "postgresql", "conninfo": pg.conninfo("legacy")})
    with open(cfg) as f:
        c = json.load(f)
    c["root_key"] = {"file": root}
    with open(cfg, "w") as f:
        json.dump(c, f)
    for start in range(2):  # migrated at the first start, found migrated at the second
        srv = kms_harness.KmsConfigServer(cfg)
        try:
            check_legacy(srv.endpoint)
        finally:
            srv.stop()
        assert ("written before regions" in srv.stderr_text) == (start == 0), srv.stderr_text
    # Every step ran at the first start: regions (2), the certificate service's tables (3), the
    # identities (4: the --dev principal's user, key and AdministratorAccess attachment), the
    # training jobs (5).
    assert pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version",
                   db="legacy") == "1,2,3,4,5"
    assert pg.psql("SELECT count(*) FROM cas_sessions", db="legacy") == "0"
    assert pg.psql("SELECT count(*) FROM iam_entities WHERE kind='akey'", db="legacy") != "0"
    assert pg.psql("SELECT DISTINCT region FROM aliases", db="legacy") == "eu-west-1"
    print("PostgreSQL store of before regions: migrated once, its keys served in eu-west-1 only")


# --- the tests ---------------------------------------------------------------------------------------------------------

class Regions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-regions-")
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def kms(self, region):
        return kms_harness.boto_client(self.srv.endpoint, region=region)

    def aws(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(kms_harness.DEV_ENV, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_MAX_ATTEMPTS="1")
        p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, "--output", "json", *args],
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_two_regions_one_server(self):
        eu = self.aws("--region", "eu-central-1", "kms", "create-key", "--description", "frankfurt")["KeyMetadata"]
        self.assertEqual(eu["Arn"], "arn:aws:kms:eu-central-1:%s:key/%s" % (ACCT, eu["KeyId"]))
        ap = self.kms("ap-northeast-1")
        tokyo = ap.create_key(Description="tokyo")["KeyMetadata"]
        self.assertEqual(tokyo["Arn"], "arn:aws:kms:ap-northeast-1:%s:key/%s" % (ACCT, tokyo["KeyId"]))
        fra = self.kms("eu-central-1")
        self.assertEqual(fra.describe_key(KeyId=eu["Arn"])["KeyMetadata"]["Description"], "frankfurt")
        # One alias name in each region, each its own.
        fra.create_alias(AliasName="alias/app", TargetKeyId=eu["KeyId"])
        ap.create_alias(AliasName="alias/app", TargetKeyId=tokyo["KeyId"])
        self.assertEqual(ap.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"], tokyo["KeyId"])
        self.assertEqual(fra.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"], eu["KeyId"])
        aliases = fra.list_aliases()["Aliases"]
        self.assertEqual([(a["AliasName"], a["AliasArn"], a["TargetKeyId"]) for a in aliases],
                         [("alias/app", "arn:aws:kms:eu-central-1:%s:alias/app" % ACCT, eu["KeyId"])])
        # The Frankfurt key from Tokyo: not found, by id, by ARN, by an alias there is only in Frankfurt.
        fra.create_alias(AliasName="alias/only-fra", TargetKeyId=eu["KeyId"])
        with self.assertRaises(ClientError) as e:
            ap.describe_key(KeyId=eu["KeyId"])
        self.assertEqual((code(e), message(e)), ("NotFoundException", "Key 'arn:aws:kms:ap-northeast-1:%s:key/%s' "
                                                 "does not exist" % (ACCT, eu["KeyId"])))
        with self.assertRaises(ClientError) as e:
            ap.describe_key(KeyId=eu["Arn"])
        self.assertEqual((code(e), message(e)), ("NotFoundException", "Invalid arn eu-central-1"))
        with self.assertRaises(ClientError) as e:
            ap.encrypt(KeyId="alias/only-fra", Plaintext=b"x")
        self.assertEqual((code(e), message(e)), ("NotFoundException", "Alias arn:aws:kms:ap-northeast-1:%s:"
                                                 "alias/only-fra is not found." % ACCT))
        with self.assertRaises(ClientError) as e:
            ap.create_alias(AliasName="alias/cross", TargetKeyId=eu["KeyId"])
        self.assertEqual(code(e), "NotFoundException")
        # Its ciphertext: decrypts in Frankfurt, not in Tokyo.
        ct = fra.encrypt(KeyId="alias/app", Plaintext=b"gdpr")["CiphertextBlob"]
        self.assertEqual(ct[38:39 + ct[38]], b"\x0ceu-central-1")
        self.assertEqual(fra.decrypt(CiphertextBlob=ct)["Plaintext"], b"gdpr")
        with self.assertRaises(ClientError) as e:
            ap.decrypt(CiphertextBlob=ct)
        self.assertEqual((code(e), message(e)), (
            "InvalidCiphertextException", "The ciphertext was made in region eu-central-1, not ap-northeast-1: "
            "decrypt it in eu-central-1 (a KMS key and its ciphertexts belong to one region)"))
        # ListKeys: each region its own (the other tests of this class make keys in these regions too).
        tokyo_keys = [k["KeyId"] for k in ap.list_keys()["Keys"]]
        self.assertIn(tokyo["KeyId"], tokyo_keys)
        self.assertNotIn(eu["KeyId"], tokyo_keys)
        self.assertIn(eu["KeyId"], [k["KeyId"] for k in self.aws("--region", "eu-central-1", "kms", "list-keys")["Keys"]])
        self.assertNotIn(tokyo["KeyId"], [k["KeyId"] for k in fra.list_keys()["Keys"]])
        self.assertEqual(self.kms("sa-east-1").list_keys()["Keys"], [])

    def test_grants_stay_in_their_region(self):
        fra, ap = self.kms("eu-central-1"), self.kms("ap-northeast-1")
        kid = fra.create_key()["KeyMetadata"]["KeyId"]
        retiring = "arn:aws:iam::%s:user/retirer" % ACCT
        g = fra.create_grant(KeyId=kid, GranteePrincipal="arn:aws:iam::%s:user/g" % ACCT, Operations=["Encrypt"],
                             RetiringPrincipal=retiring)
        self.assertEqual([x["GrantId"] for x in fra.list_retirable_grants(RetiringPrincipal=retiring)["Grants"]],
                         [g["GrantId"]])
        self.assertEqual(ap.list_retirable_grants(RetiringPrincipal=retiring)["Grants"], [])
        tk = ap.create_key()["KeyMetadata"]["KeyId"]
        with self.assertRaises(ClientError) as e:
            ap.encrypt(KeyId=tk, Plaintext=b"x", GrantTokens=[g["GrantToken"]])
        self.assertEqual(code(e), "InvalidGrantTokenException")
        self.assertIn("names no grant of region ap-northeast-1", message(e))
        with self.assertRaises(ClientError) as e:
            ap.retire_grant(GrantToken=g["GrantToken"])
        self.assertEqual(code(e), "InvalidGrantTokenException")
        fra.encrypt(KeyId=kid, Plaintext=b"x", GrantTokens=[g["GrantToken"]])
        fra.retire_grant(GrantToken=g["GrantToken"])

    def test_requested_region_condition(self):
        """aws:RequestedRegion is the request's region: a policy that denies Encrypt outside
        eu-central-1 lets the Frankfurt key encrypt and stops the Tokyo one."""
        policy = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCT},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "eu", "Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:RequestedRegion": "eu-central-1"}}}]})
        fra, ap = self.kms("eu-central-1"), self.kms("ap-northeast-1")
        fra.encrypt(KeyId=fra.create_key(Policy=policy)["KeyMetadata"]["KeyId"], Plaintext=b"x")
        with self.assertRaises(ClientError) as e:
            ap.encrypt(KeyId=ap.create_key(Policy=policy)["KeyMetadata"]["KeyId"], Plaintext=b"x")
        self.assertEqual(code(e), "AccessDeniedException")
        self.assertIn("because of an explicit deny in the key policy", message(e))

    def test_partitions_and_region_names(self):
        for region, partition in (("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"), ("il-central-1", "aws"),
                                  ("mx-central-1", "aws"), ("us-isob-east-1", "aws-iso-b")):
            k = self.kms(region)
            meta = k.create_key()["KeyMetadata"]
            self.assertEqual(meta["Arn"], "arn:%s:kms:%s:%s:key/%s" % (partition, region, ACCT, meta["KeyId"]))
            self.assertEqual(k.describe_key(KeyId=meta["Arn"])["KeyMetadata"]["KeyId"], meta["KeyId"])
            k.create_alias(AliasName="alias/p", TargetKeyId=meta["KeyId"])
            self.assertEqual(k.list_aliases()["Aliases"][0]["AliasArn"], "arn:%s:kms:%s:%s:alias/p" % (
                partition, region, ACCT))
            self.assertEqual(k.describe_key(KeyId="arn:%s:kms:%s:%s:alias/p" % (partition, region, ACCT))
                             ["KeyMetadata"]["KeyId"], meta["KeyId"])
        for bad in ("moon-base-1", "us-east", "useast-1", "US-EAST-1", "eu-central-1a", "local"):
            with self.assertRaises(ClientError) as e:
                kms_harness.NewerKms(self.srv.endpoint, region=bad).list_keys()
            self.assertEqual((code(e), message(e)), (
                "InvalidSignatureException",
                "Credential should be scoped to a valid region, not '%s'. This server answers every AWS region (a "
                "name like us-east-1, eu-central-1 or ap-northeast-1)." % bad), bad)

    def test_restricted_regions(self):
        data = os.path.join(self.tmp, "restricted")
        cfg = {"listen": "127.0.0.1:0", "threads": 1, "data_dir": data, "regions": ["eu-central-1", "eu-west-1"],
               "principals": [kms_harness.DEV_PRINCIPAL]}
        path = os.path.join(self.tmp, "restricted.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        with kms_harness.kms_server_config(path) as srv:
            self.assertIn("regions eu-central-1 eu-west-1, default region eu-central-1", srv.first_line)
            ok = kms_harness.boto_client(srv.endpoint, region="eu-west-1")
            self.assertTrue(ok.create_key()["KeyMetadata"]["Arn"].startswith("arn:aws:kms:eu-west-1:"))
            for region in ("ap-northeast-1", "us-east-1"):
                with self.assertRaises(ClientError) as e:
                    kms_harness.boto_client(srv.endpoint, region=region).list_keys()
                self.assertEqual((code(e), message(e)), (
                    "InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'. This "
                    "server answers the regions eu-central-1, eu-west-1." % region))
        # A private name may be listed (the region a store of before regions was made in).
        cfg.update(regions=["local", "eu-west-1"], region="local", data_dir=data + "-local")
        with open(path, "w") as f:
            json.dump(cfg, f)
        with kms_harness.kms_server_config(path) as srv:
            meta = kms_harness.boto_client(srv.endpoint, region="local").create_key()["KeyMetadata"]
            self.assertEqual(meta["Arn"], "arn:aws:kms:local:%s:key/%s" % (ACCT, meta["KeyId"]))
        for bad, needle in (({"regions": []}, "'regions' must be a list of 1..64 region names"),
                            ({"regions": ["eu-west-1", "eu-west-1"]}, "'regions[1]' eu-west-1 is also regions[0]"),
                            ({"regions": ["EU-WEST-1"]}, "'regions[0]' must be 1..31 of [a-z0-9-], like eu-central-1"),
                            ({"regions": ["eu-west-1"], "region": "us-east-1"}, "'region' us-east-1 is not in "
                             "'regions': the keys made before regions are in it")):
            c = {k: v for k, v in cfg.items() if k != "region"}
            c.update(bad)
            with open(path, "w") as f:
                json.dump(c, f)
            p = subprocess.run([kms_harness.KMS_BIN, "--config", path], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn(needle, p.stderr)

    def test_data_dir_of_before_regions(self):
        for n, region in enumerate(("eu-west-1", "us-east-1")):
            # Its config's region stays eu-west-1; an operator who changes it finds the keys where their
            # ARNs say they are all the same.
            data = os.path.join(self.tmp, "legacy%d" % n)
            legacy_data_dir(data)
            cfg = legacy_config(os.path.join(self.tmp, "legacy%d.json" % n), data, region)
            for start in range(2):
                with kms_harness.kms_server_config(cfg) as srv:
                    check_legacy(srv.endpoint)
                self.assertEqual("written before regions" in srv.stderr_text, start == 0, srv.stderr_text)
            p = subprocess.run([kms_harness.CLI_BIN, "kms", "audit-verify", os.path.join(data, "audit.log")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(LEGACY, "audit.log")) as old, open(os.path.join(data, "audit.log")) as now:
                before = old.read()
                self.assertTrue(now.read().startswith(before))  # the old chain, extended


class ErrorShapes(unittest.TestCase):
    """AWS's texts, whole (sources in src/kms/request.c, key_access.c and ops_aliases.c)."""

    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()
        cls.kms = kms_harness.boto_client(cls.srv.endpoint)
        cls.raw = kms_harness.NewerKms(cls.srv.endpoint)  # sends what botocore's own checks would stop
        cls.kid = cls.kms.create_key()["KeyMetadata"]["KeyId"]

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def check(self, fn, want_code, want_message):
        with self.assertRaises(ClientError) as e:
            fn()
        self.assertEqual((code(e), message(e)), (want_code, want_message))

    def test_validation_messages(self):
        v = "1 validation error detected: "
        long_id = "k" * 2049
        self.check(lambda: self.kms.describe_key(KeyId=long_id), "ValidationException",
                   v + "Value '%s...' at 'keyId' failed to satisfy constraint: Member must have length less than "
                   "or equal to 2048" % long_id[:256])
        self.check(lambda: self.raw.describe_key(KeyId=""), "ValidationException",
                   v + "Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or "
                   "equal to 1")
        self.check(lambda: self.kms.list_keys(Limit=1001), "ValidationException",
                   v + "Value '1001' at 'limit' failed to satisfy constraint: Member must have value less than or "
                   "equal to 1000")
        self.check(lambda: self.raw.list_aliases(Limit=0), "ValidationException",
                   v + "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or "
                   "equal to 1")
        self.check(lambda: self.kms.generate_random(NumberOfBytes=1025), "ValidationException",
                   v + "Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value less "
                   "than or equal to 1024")
        self.check(lambda: self.kms.create_alias(AliasName="alias/bad name", TargetKeyId=self.kid),
                   "ValidationException",
                   v + "Value 'alias/bad name' at 'aliasName' failed to satisfy constraint: Member must satisfy "
                   "regular expression pattern: ^[a-zA-Z0-9:/_-]+$")
        self.check(lambda: self.kms.create_alias(AliasName="alias/" + "a" * 251, TargetKeyId=self.kid),
                   "ValidationException",
                   v + "Value 'alias/%s' at 'aliasName' failed to satisfy constraint: Member must have length less "
                   "than or equal to 256" % ("a" * 250 + "..."))
        self.check(lambda: self.kms.create_grant(KeyId=self.kid, GranteePrincipal="arn:aws:iam::%s:user/x" % ACCT,
                                                 Operations=["Decrypt"], Name="two words"), "ValidationException",
                   v + "Value 'two words' at 'name' failed to satisfy constraint: Member must satisfy regular "
                   "expression pattern: ^[a-zA-Z0-9:/_-]+$")
        self.check(lambda: self.kms.encrypt(KeyId=self.kid, Plaintext=b"x" * 4097), "ValidationException",
                   v + "Value at 'plaintext' failed to satisfy constraint: Member must have length less than or "
                   "equal to 4096")

    def test_aliases_as_aws_names_them(self):
        self.check(lambda: self.kms.create_alias(AliasName="no-prefix", TargetKeyId=self.kid), "ValidationException",
                   "Alias must start with the prefix \"alias/\". Please see "
                   "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
        self.check(lambda: self.kms.create_alias(AliasName="alias/aws/ebs", TargetKeyId=self.kid),
                   "NotAuthorizedException",
                   "Cannot create, update or delete alias alias/aws/ebs: the prefix alias/aws/ is reserved for AWS "
                   "managed keys")
        self.kms.create_alias(AliasName="alias/shapes", TargetKeyId=self.kid)
        self.check(lambda: self.kms.create_alias(AliasName="alias/shapes", TargetKeyId=self.kid),
                   "AlreadyExistsException", "An alias with the name arn:aws:kms:us-east-1:%s:alias/shapes already "
                   "exists" % ACCT)
        self.check(lambda: self.kms.delete_alias(AliasName="alias/none"), "NotFoundException",
                   "Alias arn:aws:kms:us-east-1:%s:alias/none is not found." % ACCT)

    def test_not_found_texts(self):
        self.check(lambda: self.kms.describe_key(KeyId="fake-key-id"), "NotFoundException",
                   "Invalid keyId 'fake-key-id'")
        gone = "0b1e2f4a-1111-4222-8333-444455556666"
        self.check(lambda: self.kms.describe_key(KeyId=gone), "NotFoundException",
                   "Key 'arn:aws:kms:us-east-1:%s:key/%s' does not exist" % (ACCT, gone))
        arn = "arn:aws:kms:us-east-1:%s:key/%s" % (ACCT, gone)
        self.check(lambda: self.kms.encrypt(KeyId=arn, Plaintext=b"x"), "NotFoundException",
                   "Key '%s' does not exist" % arn)
        self.check(lambda: self.kms.describe_key(KeyId="alias/none"), "NotFoundException",
                   "Alias arn:aws:kms:us-east-1:%s:alias/none is not found." % ACCT)
        self.check(lambda: self.kms.enable_key(KeyId="alias/none"), "NotFoundException", "Invalid keyId 'alias/none'")


if __name__ == "__main__":
    unittest.main(verbosity=2)
