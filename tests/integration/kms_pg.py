#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms on the PostgreSQL key store, against a private PostgreSQL
started here (initdb + pg_ctl in a temporary directory, Unix socket only,
password authentication). The store's unit cases (tests/unit/store_cases.h) run on it; boto3 drives keys, aliases, Encrypt/Decrypt,
GenerateDataKey, rotation, grants, policies, tags, deletion and ListKeys
paging; a restart of cloister-kms finds all of it; stopping the database
fails requests with an error and restarting it heals them; two servers
share one database and see each other's changes; a store of before regions
(tests/vectors/kms-data-v0 loaded into the old schema) is migrated and served; the SIGKILL storm
of kms_durability.py runs against it; the password never reaches a log.
Skips (exit 77) only when PostgreSQL's binaries are not installed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import kms_durability  # noqa: E402
import kms_regions  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

PASSWORD = "pg-Secret-5b7e1c"
GRANTEE = "arn:aws:iam::111122223333:role/trainer"


def code(e):
    return e.response["Error"]["Code"]


def expect_error(fn, want, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        assert code(e) == want, (code(e), want, str(e))
        return e
    raise AssertionError("%s succeeded; expected %s" % (fn.__name__, want))


def start(pg, data, threads=2, db=None, conninfo=None, root_key=None, extra=None):
    return kms_harness.KmsConfigServer(kms_harness.kms_pg_config(pg, data, threads=threads, db=db, conninfo=conninfo,
                                                                 extra=extra,
                                                                 root_key=root_key))


def stop_clean(srv):
    rc = srv.stop()
    assert rc == 0, "cloister-kms exited with %s: %s" % (rc, srv.stderr_text)
    assert PASSWORD not in srv.stderr_text, "the database password reached the log"
    return srv.stderr_text


def refused_starts(pg, tmp):
    """No database, or a wrong password: exit 1, a message naming the store, no password."""
    for conninfo, needle in [
        ("host=%s/absent dbname=x user=cloister password=%s" % (tmp, PASSWORD), "cannot connect to PostgreSQL"),
        (pg.conninfo().replace(PASSWORD, PASSWORD + "-wrong"), "password authentication failed"),
    ]:
        cfg = kms_harness.kms_pg_config(pg, os.path.join(tmp, "refused"), conninfo=conninfo)
        p = subprocess.run([kms_harness.KMS_BIN, "--config", cfg], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert needle in p.stderr and "key store" in p.stderr, p.stderr
        assert PASSWORD not in p.stderr, "the database password in an error message: %r" % p.stderr
        assert p.stdout == "", p.stdout


def exercise(kms):
    """Everything the store holds, written through the API; returns what to check after a restart."""
    keys = [kms.create_key(Description="pg key %d" % i, Tags=[{"TagKey": "n", "TagValue": str(i)}])
            ["KeyMetadata"]["KeyId"] for i in range(5)]
    k0, k1, k2 = keys[0], keys[1], keys[2]
    # ListKeys pages (the store's "after" and "more"), in key id order.
    seen, marker = [], None
    while True:
        r = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        assert len(r["Keys"]) <= 2
        seen += [k["KeyId"] for k in r["Keys"]]
        if not r["Truncated"]:
            break
        marker = r["NextMarker"]
    assert seen == sorted(keys), (seen, sorted(keys))
    # Aliases: create, duplicate refused, update, delete, missing.
    kms.create_alias(AliasName="alias/pg-main", TargetKeyId=k0)
    expect_error(kms.create_alias, "AlreadyExistsException", AliasName="alias/pg-main", TargetKeyId=k1)
    kms.create_alias(AliasName="alias/pg-moving", TargetKeyId=k0)
    kms.update_alias(AliasName="alias/pg-moving", TargetKeyId=k1)
    kms.create_alias(AliasName="alias/pg-gone", TargetKeyId=k1)
    kms.delete_alias(AliasName="alias/pg-gone")
    expect_error(kms.delete_alias, "NotFoundException", AliasName="alias/pg-gone")
    names = [a["AliasName"] for a in kms.list_aliases(KeyId=k1)["Aliases"]]
    assert names == ["alias/pg-moving"], names
    # Encrypt/Decrypt, GenerateDataKey.
    ctx = {"purpose": "pg-test"}
    ct1 = kms.encrypt(KeyId="alias/pg-main", Plaintext=b"version one", EncryptionContext=ctx)["CiphertextBlob"]
    dk = kms.generate_data_key(KeyId=k0, KeySpec="AES_256", EncryptionContext=ctx)
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    # Rotation: the old ciphertext still decrypts, the new one is under version 2.
    # RotateKeyOnDemand and ListKeyRotations are newer than Debian's botocore (kms_harness.NewerKms).
    newer = kms_harness.NewerKms(kms.meta.endpoint_url)
    newer.rotate_key_on_demand(KeyId=k0)
    ct2 = kms.encrypt(KeyId=k0, Plaintext=b"version two", EncryptionContext=ctx)["CiphertextBlob"]
    assert int.from_bytes(ct2[48:52], "big") == 2  # key version: after the region us-east-1 (blob format 2)
    assert kms.decrypt(CiphertextBlob=ct1, EncryptionContext=ctx)["Plaintext"] == b"version one"
    assert len(newer.list_key_rotations(KeyId=k0)["Rotations"]) == 1
    kms.enable_key_rotation(KeyId=k1)
    # Grants: create, list, revoke one.
    g1 = kms.create_grant(KeyId=k0, GranteePrincipal=GRANTEE, Operations=["Decrypt"], Name="keep")["GrantId"]
    g2 = kms.create_grant(KeyId=k0, GranteePrincipal=GRANTEE, Operations=["Encrypt"], Name="drop")["GrantId"]
    assert {g["GrantId"] for g in kms.list_grants(KeyId=k0)["Grants"]} == {g1, g2}
    kms.revoke_grant(KeyId=k0, GrantId=g2)
    expect_error(kms.revoke_grant, "NotFoundException", KeyId=k0, GrantId=g2)
    # Policy and tags.
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"}]})
    kms.put_key_policy(KeyId=k1, PolicyName="default", Policy=policy)
    kms.tag_resource(KeyId=k1, Tags=[{"TagKey": "team", "TagValue": "radiology"},
                                     {"TagKey": "n", "TagValue": "one"}])
    kms.untag_resource(KeyId=k1, TagKeys=["team"])
    # State: disabled, and pending deletion.
    kms.disable_key(KeyId=keys[3])
    kms.schedule_key_deletion(KeyId=k2, PendingWindowInDays=7)
    return dict(keys=keys, ctx=ctx, ct1=ct1, ct2=ct2, dk=dk, g1=g1, policy=policy)


def check_persisted(kms, w):
    keys, ctx = w["keys"], w["ctx"]
    k0, k1, k2 = keys[0], keys[1], keys[2]
    assert sorted(k["KeyId"] for k in kms.list_keys()["Keys"]) == sorted(keys)
    assert kms.describe_key(KeyId="alias/pg-main")["KeyMetadata"]["KeyId"] == k0
    assert kms.describe_key(KeyId="alias/pg-moving")["KeyMetadata"]["KeyId"] == k1
    assert kms.decrypt(CiphertextBlob=w["ct1"], EncryptionContext=ctx)["Plaintext"] == b"version one"
    assert kms.decrypt(CiphertextBlob=w["ct2"], EncryptionContext=ctx)["Plaintext"] == b"version two"
    assert kms.decrypt(CiphertextBlob=w["dk"]["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == \
        w["dk"]["Plaintext"]
    assert len(kms_harness.NewerKms(kms.meta.endpoint_url).list_key_rotations(KeyId=k0)["Rotations"]) == 1
    assert kms.get_key_rotation_status(KeyId=k1)["KeyRotationEnabled"] is True
    grants = kms.list_grants(KeyId=k0)["Grants"]
    assert [(g["GrantId"], g["Operations"], g["Name"]) for g in grants] == [(w["g1"], ["Decrypt"], "keep")], grants
    assert json.loads(kms.get_key_policy(KeyId=k1, PolicyName="default")["Policy"]) == json.loads(w["policy"])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k1)["Tags"]}
    assert tags == {"n": "one"}, tags
    assert kms.describe_key(KeyId=keys[3])["KeyMetadata"]["KeyState"] == "Disabled"
    md = kms.describe_key(KeyId=k2)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion" and "DeletionDate" in md, md
    expect_error(kms.encrypt, "KMSInvalidStateException", KeyId=k2, Plaintext=b"x")


def database_outage(pg, kms):
    """The database stops: requests fail (500, KMSInternalException) and the server stays up;
    it comes back: the next requests reconnect and succeed, reads and writes."""
    kid = kms.create_key(Description="outage")["KeyMetadata"]["KeyId"]
    ct = kms.encrypt(KeyId=kid, Plaintext=b"before the outage")["CiphertextBlob"]
    # A quick restart between requests: the pooled connections are dead, and are replaced
    # before use, so even a write (which cannot be retried blindly) succeeds.
    pg.stop()
    pg.start()
    kms.create_key(Description="right after a database restart")
    pg.stop()
    try:
        expect_error(kms.decrypt, "KMSInternalException", CiphertextBlob=ct)
        expect_error(kms.create_key, "KMSInternalException", Description="during the outage")
    finally:
        pg.start()
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"before the outage"
    kms.create_key(Description="after the outage")
    kms.describe_key(KeyId=kid)


def unit_cases(pg):
    """tests/unit/test_store_pg: the store's own cases (the same as SQLite's), on a database of their own."""
    pg.createdb("unit")
    exe = os.path.join(kms_harness.BUILD, "tests", "test_store_pg")
    p = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, CLOISTER_TEST_PG_CONNINFO=pg.conninfo("unit")))
    assert p.returncode == 0 and "SKIPPED" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert PASSWORD not in p.stdout + p.stderr
    print("test_store_pg: %s" % (p.stdout + p.stderr).strip().splitlines()[-1])


def two_servers(pg, tmp):
    """What the PostgreSQL store is for: two cloister-kms with one root key on one database serve
    the same keys, and each sees the other's changes at once (no stale cache of key records)."""
    pg.createdb("shared")
    a = start(pg, os.path.join(tmp, "a"), db="shared")
    b = start(pg, os.path.join(tmp, "b"), db="shared", root_key=os.path.join(tmp, "a", "root.key"))
    try:
        ka, kb = kms_harness.boto_client(a.endpoint), kms_harness.boto_client(b.endpoint)
        kid = ka.create_key(Description="shared")["KeyMetadata"]["KeyId"]
        ka.create_alias(AliasName="alias/shared", TargetKeyId=kid)
        ct1 = kb.encrypt(KeyId="alias/shared", Plaintext=b"from b")["CiphertextBlob"]
        assert ka.decrypt(CiphertextBlob=ct1)["Plaintext"] == b"from b"
        kms_harness.NewerKms(b.endpoint).rotate_key_on_demand(KeyId=kid)
        ct2 = ka.encrypt(KeyId=kid, Plaintext=b"from a")["CiphertextBlob"]
        assert int.from_bytes(ct2[48:52], "big") == 2, "a did not see b's rotation"
        assert kb.decrypt(CiphertextBlob=ct2)["Plaintext"] == b"from a"
        kb.disable_key(KeyId=kid)
        expect_error(ka.encrypt, "DisabledException", KeyId=kid, Plaintext=b"x")
        expect_error(kb.create_alias, "AlreadyExistsException", AliasName="alias/shared", TargetKeyId=kid)
    finally:
        stop_clean(a)
        stop_clean(b)
    print("two servers on one database: each saw the other's key, alias, rotation and disable")


def cas_two_servers(pg, tmp):
    """The certificate service over the shared store (docs/cas.md): a session put through one server
    is read and served by the other; a nonce one issued is accepted once by either, and the request
    replayed to the other is refused."""
    import cas_harness as ch
    import recipient_ref
    from cryptography.hazmat.primitives.asymmetric import ec
    pki = os.path.join(tmp, "cas-pki")
    r = subprocess.run([kms_harness.CLI_BIN, "enclave", "init-root", "-o", pki], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    pg.createdb("cas")
    extra = {"attestation_roots": [os.path.join(pki, "root.pem")]}
    a = start(pg, os.path.join(tmp, "cas-a"), db="cas", extra=extra)
    b = start(pg, os.path.join(tmp, "cas-b"), db="cas", root_key=os.path.join(tmp, "cas-a", "root.key"), extra=extra)
    try:
        pcr0 = os.urandom(48)
        st, ans = ch.request(a.endpoint, "PUT", "/v1/sessions/hospital", ch.session_doc("hospital", [pcr0.hex()]),
                             key="test", secret="test")
        assert st == 200, ans
        st, va = ch.request(a.endpoint, "GET", "/v1/values/session=hospital")
        st, vb = ch.request(b.endpoint, "GET", "/v1/values/session=hospital")
        assert st == 200 and va == vb and "BEGIN CERTIFICATE" in vb["values"]["api_ca_cert"]["value"], (va, vb)
        st, n = ch.request(a.endpoint, "GET", "/v1/nonce")
        key = ec.generate_private_key(ec.SECP256R1())
        _, rk_spki = recipient_ref.rsa_recipient()
        doc = recipient_ref.Platform(pki).document(rk_spki, {0: pcr0}, nonce=bytes.fromhex(n["nonce"]),
                                                   user_data=ch.spki_sha256(key))
        body = json.dumps({"session": "hospital", "service": "api", "csr": ch.csr(key, doc).decode()}).encode()
        st, got = ch.request(b.endpoint, "POST", "/v1/certificate", body)
        assert st == 200 and "certificate" in got, got
        st, again = ch.request(a.endpoint, "POST", "/v1/certificate", body)
        assert st == 403 and again["code"] == "NonceReused", again
    finally:
        stop_clean(a)
        stop_clean(b)
    print("certificate service on one database: a session put through one server is served by the other; a "
          "nonce from one is used once across both")


def main():
    if kms_harness.pg_bindir() is None:
        print("SKIP: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); ./scripts/setup installs it")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="cloister-kms-pg-")
    try:
        with kms_harness.pg_server(PASSWORD) as pg:
            refused_starts(pg, tmp)
            unit_cases(pg)
            data = os.path.join(tmp, "data")
            srv = start(pg, data)
            try:
                written = exercise(kms_harness.boto_client(srv.endpoint))
            finally:
                stop_clean(srv)
            # A database that would acknowledge commits before they are on disk: our sessions turn
            # synchronous_commit back on, and say so.
            pg.psql("ALTER DATABASE cloister SET synchronous_commit TO off")
            srv = start(pg, data, threads=3)
            try:
                kms = kms_harness.boto_client(srv.endpoint)
                check_persisted(kms, written)
                database_outage(pg, kms)
            finally:
                log = stop_clean(srv)
            assert "cannot connect to PostgreSQL" in log, "the outage was not logged: %r" % log
            assert "synchronous_commit off" in log, log
            print("PostgreSQL store: every operation persisted across a restart; a database outage healed")
            two_servers(pg, tmp)
            cas_two_servers(pg, tmp)
            # A store written before regions (schema version 1): migrated at start, served in its region.
            kms_regions.legacy_pg(pg, tmp)

            pg.createdb("storm")

            def storm_server(data_dir, threads=None):
                return start(pg, data_dir, threads=threads or 2, db="storm")

            kms_durability.run(storm_server, label="PostgreSQL")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
