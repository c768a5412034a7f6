#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Key policies and grants with several principals, through boto3: a
principal the policy does not name is refused; a grant lets it in at once,
within its operations and encryption-context constraints; a revoked or
retired grant stops working at once; an explicit Deny beats a grant;
CreateGrant condition keys (kms:GranteePrincipal, kms:GrantOperations); a grant
created through a grant stays within it (docs/security.md, finding 1); grant tokens; the
key policy lockout safety check (docs/security.md, finding 12)."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

ACCT = "111122223333"
DEV = "arn:aws:iam::%s:user/dev" % ACCT
ALICE = "arn:aws:iam::%s:user/alice" % ACCT
CAROL = "arn:aws:iam::%s:role/carol" % ACCT
BOB = "arn:aws:iam::444455556666:user/bob"


def code(e):
    return e.exception.response["Error"]["Code"]


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


DEV_ONLY = {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "kms:*", "Resource": "*"}


class Grants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server(principals=(
            kms_harness.principal("alice", "alice-secret", ALICE),
            kms_harness.principal("carol", "carol-secret", CAROL),
            kms_harness.principal("bob", "bob-secret", BOB)))
        cls.srv = cls.cm.__enter__()
        cls.dev = kms_harness.boto_client(cls.srv.endpoint)
        cls.alice = kms_harness.boto_client(cls.srv.endpoint, key="alice", secret="alice-secret")
        cls.carol = kms_harness.boto_client(cls.srv.endpoint, key="carol", secret="carol-secret")
        cls.bob = kms_harness.boto_client(cls.srv.endpoint, key="bob", secret="bob-secret")

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def key(self, *statements):
        return self.dev.create_key(Policy=policy(*(statements or (DEV_ONLY,))))["KeyMetadata"]["KeyId"]

    def denied(self, fn):
        with self.assertRaises(ClientError) as e:
            fn()
        self.assertEqual(code(e), "AccessDeniedException")

    def refused(self, fn, needle, exc="AccessDeniedException"):
        """fn fails with exc and a message containing needle; returns the message."""
        with self.assertRaises(ClientError) as e:
            fn()
        msg = e.exception.response["Error"]["Message"]
        self.assertEqual(code(e), exc, msg)
        self.assertIn(needle, msg)
        return msg

    def grant_ids(self, kid):
        return sorted(g["GrantId"] for g in self.dev.list_grants(KeyId=kid)["Grants"])

    def test_principal_not_allowed(self):
        kid = self.key()
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x"))
        self.denied(lambda: self.alice.describe_key(KeyId=kid))
        # The default policy (account root) lets every principal of the account in.
        k2 = self.dev.create_key()["KeyMetadata"]["KeyId"]
        self.alice.encrypt(KeyId=k2, Plaintext=b"x")
        # Another account's principal: the account root of the default policy is not his, so the
        # key ARN is refused by the policy (as AWS answers); a bare key id names his own account's.
        self.denied(lambda: self.bob.describe_key(KeyId="arn:aws:kms:us-east-1:%s:key/%s" % (ACCT, k2)))
        with self.assertRaises(ClientError) as e:
            self.bob.describe_key(KeyId=k2)
        self.assertEqual(code(e), "NotFoundException")

    def test_cross_account_by_policy(self):
        """A key policy naming a principal of another account lets him use the key by its key or
        alias ARN, and decrypt its ciphertexts (the blob names the key); a bare key id or alias name
        stays in his own account; he cannot point an alias of his account at it."""
        kid = self.key(DEV_ONLY, {"Effect": "Allow", "Principal": {"AWS": BOB}, "Resource": "*",
                                  "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey",
                                             "kms:CreateAlias"]})
        arn = "arn:aws:kms:us-east-1:%s:key/%s" % (ACCT, kid)
        self.dev.create_alias(AliasName="alias/shared-x", TargetKeyId=kid)
        self.assertEqual(self.bob.describe_key(KeyId=arn)["KeyMetadata"]["Arn"], arn)
        alias_arn = "arn:aws:kms:us-east-1:%s:alias/shared-x" % ACCT
        self.assertEqual(self.bob.describe_key(KeyId=alias_arn)["KeyMetadata"]["KeyId"], kid)
        ct = self.bob.encrypt(KeyId=arn, Plaintext=b"cross")["CiphertextBlob"]
        self.assertEqual(self.bob.decrypt(CiphertextBlob=ct)["Plaintext"], b"cross")
        dk = self.bob.generate_data_key(KeyId=alias_arn, KeySpec="AES_256")
        self.assertEqual(self.dev.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"], dk["Plaintext"])
        for other in (kid, "alias/shared-x"):
            with self.assertRaises(ClientError) as e:
                self.bob.encrypt(KeyId=other, Plaintext=b"x")
            self.assertEqual(code(e), "NotFoundException", other)
        with self.assertRaises(ClientError) as e:
            self.bob.create_alias(AliasName="alias/mine", TargetKeyId=arn)
        self.assertEqual(code(e), "NotFoundException")
        # Carol, of the key's account but not in its policy, decrypts nothing.
        self.denied(lambda: self.carol.decrypt(CiphertextBlob=ct))
        # Malformed ARNs are refused, not looked up.
        for bad in ("arn:aws:kms:us-east-1:%s:key/%s" % (ACCT[:-1], kid), "arn:aws:kms:us-east-1:%s:thing/x" % ACCT,
                    "arn:aws:kms:eu-west-1:%s:key/%s" % (ACCT, kid)):
            with self.assertRaises(ClientError) as e:
                self.bob.describe_key(KeyId=bad)
            self.assertEqual(code(e), "NotFoundException", bad)

    def test_grant_works_at_once_then_revoked(self):
        kid = self.key()
        g = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt", "Decrypt"],
                                  Constraints={"EncryptionContextSubset": {"tenant": "h1"}}, Name="alice-h1")
        self.assertEqual(len(g["GrantId"]), 64)
        ct = self.alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"tenant": "h1", "f": "a"},
                                GrantTokens=[g["GrantToken"]])["CiphertextBlob"]
        pt = self.alice.decrypt(CiphertextBlob=ct, EncryptionContext={"tenant": "h1", "f": "a"})
        self.assertEqual(pt["Plaintext"], b"x")
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"tenant": "h2"}))
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x"))
        self.denied(lambda: self.alice.generate_data_key(KeyId=kid, KeySpec="AES_256",
                                                         EncryptionContext={"tenant": "h1"}))
        grants = self.dev.list_grants(KeyId=kid)["Grants"]
        self.assertEqual(len(grants), 1)
        gr = grants[0]
        self.assertEqual((gr["GrantId"], gr["GranteePrincipal"], gr["Name"]), (g["GrantId"], ALICE, "alice-h1"))
        self.assertEqual(sorted(gr["Operations"]), ["Decrypt", "Encrypt"])
        self.assertEqual(gr["Constraints"], {"EncryptionContextSubset": {"tenant": "h1"}})
        self.assertEqual(gr["IssuingAccount"], "arn:aws:iam::%s:root" % ACCT)
        self.dev.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
        self.denied(lambda: self.alice.decrypt(CiphertextBlob=ct, EncryptionContext={"tenant": "h1", "f": "a"}))
        self.assertEqual(self.dev.list_grants(KeyId=kid)["Grants"], [])
        with self.assertRaises(ClientError) as e:
            self.dev.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
        self.assertEqual(code(e), "NotFoundException")

    def test_encryption_context_equals(self):
        kid = self.key()
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt"],
                              Constraints={"EncryptionContextEquals": {"a": "1"}})
        self.alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"a": "1"})
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"a": "1", "b": "2"}))

    def test_retire_by_retiring_principal(self):
        kid = self.key()
        g = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, RetiringPrincipal=CAROL,
                                  Operations=["GenerateDataKey"])
        self.alice.generate_data_key(KeyId=kid, KeySpec="AES_256")
        ret = self.dev.list_retirable_grants(RetiringPrincipal=CAROL)["Grants"]
        self.assertIn(g["GrantId"], [x["GrantId"] for x in ret])
        self.denied(lambda: self.alice.retire_grant(GrantToken=g["GrantToken"]))  # grantee without RetireGrant
        self.carol.retire_grant(GrantToken=g["GrantToken"])
        self.denied(lambda: self.alice.generate_data_key(KeyId=kid, KeySpec="AES_256"))
        with self.assertRaises(ClientError) as e:
            self.carol.retire_grant(GrantToken=g["GrantToken"])
        self.assertEqual(code(e), "InvalidGrantTokenException")

    def test_grantee_retires_own_grant(self):
        kid = self.key()
        g = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Decrypt", "RetireGrant"])
        self.alice.retire_grant(KeyId=kid, GrantId=g["GrantId"])
        self.assertEqual(self.dev.list_grants(KeyId=kid)["Grants"], [])

    def test_explicit_deny_beats_grant(self):
        kid = self.key(DEV_ONLY, {"Effect": "Deny", "Principal": {"AWS": ALICE}, "Action": "kms:Encrypt",
                                  "Resource": "*"})
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt"])
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x"))

    def test_create_grant_condition_keys(self):
        # dev may create grants only for alice, and never for Decrypt.
        kid = self.key(
            {"Effect": "Allow", "Principal": {"AWS": DEV}, "NotAction": "kms:CreateGrant", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "kms:CreateGrant", "Resource": "*",
             "Condition": {"StringEquals": {"kms:GranteePrincipal": ALICE},
                           "ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "DescribeKey"]}}})
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt"])
        self.denied(lambda: self.dev.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Encrypt"]))
        self.denied(lambda: self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE,
                                                  Operations=["Encrypt", "Decrypt"]))
        # A principal without CreateGrant cannot hand out access.
        self.denied(lambda: self.alice.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Encrypt"]))

    # --- docs/security.md, finding 1: grant escalation ---------------------------------------------------

    def test_grant_escalation_replayed(self):
        """The attack: a grantee whose grant allows only CreateGrant created a grant to itself with
        Decrypt/Encrypt/CreateGrant, and to principals of other accounts, then decrypted. A grant made
        through a grant may allow only that grant's operations ("Granting CreateGrant permission")."""
        kid = self.key()
        ct = self.dev.encrypt(KeyId=kid, Plaintext=b"the owner's secret")["CiphertextBlob"]
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["CreateGrant"])
        before = self.grant_ids(kid)
        for grantee in (ALICE, BOB, CAROL):
            msg = self.refused(lambda: self.alice.create_grant(
                KeyId=kid, GranteePrincipal=grantee, Operations=["Decrypt", "Encrypt", "CreateGrant"]),
                "the grant that allows it allows only CreateGrant, not Decrypt, Encrypt")
            self.assertIn("User: %s is not authorized to perform: kms:CreateGrant" % ALICE, msg)
        self.assertEqual(self.grant_ids(kid), before, "a refused CreateGrant made a grant")
        self.denied(lambda: self.alice.decrypt(CiphertextBlob=ct))
        self.denied(lambda: self.bob.decrypt(CiphertextBlob=ct))
        # What it may still do, as in AWS: pass CreateGrant alone on; that grantee is held the same way.
        self.alice.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["CreateGrant"])
        self.refused(lambda: self.carol.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Decrypt"]),
                     "allows only CreateGrant, not Decrypt")
        self.denied(lambda: self.carol.decrypt(CiphertextBlob=ct))

    def test_grantee_delegates_a_subset(self):
        """The legitimate use: a grantee with CreateGrant hands on some of its operations with
        constraints at least as strict (more Subset pairs, or Subset made Equals), never looser."""
        kid = self.key()
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt", "Decrypt", "CreateGrant"],
                              Constraints={"EncryptionContextSubset": {"tenant": "h1"}})
        ctx = {"tenant": "h1", "app": "x"}
        ct = self.dev.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext=ctx)["CiphertextBlob"]
        g = self.alice.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Decrypt"],
                                    Constraints={"EncryptionContextSubset": {"tenant": "h1", "app": "x"}})
        self.assertEqual(self.carol.decrypt(CiphertextBlob=ct, EncryptionContext=ctx,
                                            GrantTokens=[g["GrantToken"]])["Plaintext"], b"x")
        ctx_y = {"tenant": "h1", "app": "y"}
        ct_y = self.dev.encrypt(KeyId=kid, Plaintext=b"y", EncryptionContext=ctx_y)["CiphertextBlob"]
        self.denied(lambda: self.carol.decrypt(CiphertextBlob=ct_y, EncryptionContext=ctx_y))
        self.denied(lambda: self.carol.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext=ctx))
        # Subset made Equals with the same pairs, to another account's principal: allowed.
        self.alice.create_grant(KeyId=kid, GranteePrincipal=BOB, Operations=["Encrypt"],
                                Constraints={"EncryptionContextEquals": {"tenant": "h1"}})
        before = self.grant_ids(kid)
        for ops, cons, needle in (
                (["Decrypt"], None, "requires the key 'tenant'"),
                (["Decrypt"], {"EncryptionContextSubset": {"tenant": "h2"}}, "requires the key 'tenant'"),
                (["Decrypt"], {"EncryptionContextSubset": {"app": "x"}}, "requires the key 'tenant'"),
                (["Decrypt"], {"EncryptionContextEquals": {"app": "x"}}, "is not an encryption context that grant"),
                (["Decrypt", "GenerateDataKey"], {"EncryptionContextSubset": {"tenant": "h1"}},
                 "not GenerateDataKey")):
            kw = dict(KeyId=kid, GranteePrincipal=CAROL, Operations=ops)
            if cons:
                kw["Constraints"] = cons
            self.refused(lambda: self.alice.create_grant(**kw), needle)
        self.assertEqual(self.grant_ids(kid), before)
        # An Equals parent: only the same Equals passes on.
        k2 = self.key()
        self.dev.create_grant(KeyId=k2, GranteePrincipal=ALICE, Operations=["Decrypt", "CreateGrant"],
                              Constraints={"EncryptionContextEquals": {"tenant": "h1"}})
        self.alice.create_grant(KeyId=k2, GranteePrincipal=CAROL, Operations=["Decrypt"],
                                Constraints={"EncryptionContextEquals": {"tenant": "h1"}})
        self.refused(lambda: self.alice.create_grant(KeyId=k2, GranteePrincipal=CAROL, Operations=["Decrypt"],
                                                     Constraints={"EncryptionContextSubset": {"tenant": "h1"}}),
                     "needs one with the same pairs")
        self.refused(lambda: self.alice.create_grant(
            KeyId=k2, GranteePrincipal=CAROL, Operations=["Decrypt"],
            Constraints={"EncryptionContextEquals": {"tenant": "h1", "x": "y"}}), "is not an encryption context")

    def test_policy_deny_holds_on_the_grant_path(self):
        """kms:GranteePrincipal and kms:GrantOperations in a key-policy Deny hold whatever allows the
        caller's CreateGrant, a grant included: here, grants stay in the account and only dev hands out
        Decrypt."""
        stay = {"Sid": "GrantsStayInTheAccount", "Effect": "Deny", "Principal": "*", "Action": "kms:CreateGrant",
                "Resource": "*", "Condition": {"StringNotLike": {"kms:GranteePrincipal": "arn:aws:iam::%s:*" % ACCT}}}
        only_dev = {"Sid": "OnlyDevGrantsDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:CreateGrant",
                    "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"kms:GrantOperations": "Decrypt"},
                                                   "StringNotEquals": {"aws:PrincipalArn": DEV}}}
        kid = self.key(DEV_ONLY, stay, only_dev)
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt", "Decrypt", "CreateGrant"])
        self.refused(lambda: self.alice.create_grant(KeyId=kid, GranteePrincipal=BOB, Operations=["Encrypt"]),
                     "because of an explicit deny in the key policy (statement GrantsStayInTheAccount denies it)")
        self.refused(lambda: self.alice.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Decrypt"]),
                     "because of an explicit deny in the key policy (statement OnlyDevGrantsDecrypt denies it)")
        self.refused(lambda: self.dev.create_grant(KeyId=kid, GranteePrincipal=BOB, Operations=["Encrypt"]),
                     "explicit deny")
        self.alice.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Encrypt"])

    def test_retire_grant_is_for_the_grant_itself(self):
        """A grant's RetireGrant lets its grantee retire that grant, not the key's other grants."""
        kid = self.key()
        mine = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Decrypt", "RetireGrant"])
        carols = self.dev.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Decrypt"])
        self.refused(lambda: self.alice.retire_grant(KeyId=kid, GrantId=carols["GrantId"]),
                     "is not authorized to perform: kms:RetireGrant")
        self.assertIn(carols["GrantId"], self.grant_ids(kid))
        self.alice.retire_grant(GrantToken=mine["GrantToken"])
        self.assertEqual(self.grant_ids(kid), [carols["GrantId"]])

    def test_constraints_ignored_by_describe_key(self):
        """DescribeKey has no encryption context, and grant constraints do not apply to it (API
        Reference, GrantConstraints); an operation with a context still needs them to hold."""
        kid = self.key()
        self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["DescribeKey", "Encrypt"],
                              Constraints={"EncryptionContextSubset": {"tenant": "h1"}})
        self.assertEqual(self.alice.describe_key(KeyId=kid)["KeyMetadata"]["KeyId"], kid)
        self.denied(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x"))

    def test_grant_tokens(self):
        """Tokens a CreateGrant answered are accepted; a malformed one, or one of a grant that is gone,
        is InvalidGrantTokenException (before any work); a token adds nothing to what its grant gives."""
        kid = self.key()
        g = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["Encrypt", "Decrypt",
                                                                                   "GenerateDataKey"])
        other = self.dev.create_grant(KeyId=kid, GranteePrincipal=ALICE, Operations=["DescribeKey"])
        tokens = [g["GrantToken"], other["GrantToken"]]
        ct = self.alice.encrypt(KeyId=kid, Plaintext=b"x", GrantTokens=tokens)["CiphertextBlob"]
        self.assertEqual(self.alice.decrypt(CiphertextBlob=ct, GrantTokens=tokens)["Plaintext"], b"x")
        self.alice.generate_data_key(KeyId=kid, KeySpec="AES_256", GrantTokens=tokens)
        for bad, needle in (("not-a-token", "is not a grant token of this server"),
                            (g["GrantToken"].upper(), "is not a grant token of this server"),
                            ("0" * 64, "names no grant")):
            for call in (lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x", GrantTokens=[g["GrantToken"], bad]),
                         lambda: self.alice.decrypt(CiphertextBlob=ct, GrantTokens=[g["GrantToken"], bad]),
                         lambda: self.dev.create_grant(KeyId=kid, GranteePrincipal=CAROL, Operations=["Encrypt"],
                                                       GrantTokens=[g["GrantToken"], bad])):
                msg = self.refused(call, needle, "InvalidGrantTokenException")
                self.assertIn("Grant token 2 of GrantTokens", msg)
        self.refused(lambda: self.alice.encrypt(KeyId=kid, Plaintext=b"x", GrantTokens=[g["GrantToken"]] * 11),
                     "less than or equal to 10", "ValidationException")
        self.assertEqual(self.grant_ids(kid), sorted([g["GrantId"], other["GrantId"]]))
        # Someone else's token lets carol in to nothing.
        self.denied(lambda: self.carol.decrypt(CiphertextBlob=ct, GrantTokens=[g["GrantToken"]]))
        # The token of a revoked grant names no grant; RetireGrant with it says the same.
        self.dev.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
        self.refused(lambda: self.alice.decrypt(CiphertextBlob=ct, GrantTokens=[g["GrantToken"]]),
                     "Grant token 1 of GrantTokens names no grant", "InvalidGrantTokenException")
        self.refused(lambda: self.alice.retire_grant(GrantToken=g["GrantToken"]), "The grant token names no grant",
                     "InvalidGrantTokenException")
        self.refused(lambda: self.alice.retire_grant(GrantToken="x" * 80), "is not a grant token",
                     "InvalidGrantTokenException")

    # --- docs/security.md, finding 12: the key policy lockout safety check --------------------------------

    def test_policy_lockout_safety_check(self):
        """A policy that would not let the caller call PutKeyPolicy afterwards is refused with AWS's
        MalformedPolicyDocumentException unless BypassPolicyLockoutSafetyCheck is true."""
        lockout = "The new key policy will not allow you to update the key policy in the future."
        alice_only = policy({"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "kms:*", "Resource": "*"})
        dev_uses = policy({"Effect": "Allow", "Principal": {"AWS": DEV}, "NotAction": "kms:PutKeyPolicy",
                           "Resource": "*"})
        kid = self.key()
        before = self.dev.get_key_policy(KeyId=kid, PolicyName="default")["Policy"]
        for p in (alice_only, dev_uses):
            msg = self.refused(lambda: self.dev.put_key_policy(KeyId=kid, PolicyName="default", Policy=p), lockout,
                               "MalformedPolicyDocumentException")
            self.assertIn("BypassPolicyLockoutSafetyCheck", msg)
            self.refused(lambda: self.dev.create_key(Policy=p), lockout, "MalformedPolicyDocumentException")
        self.assertEqual(self.dev.get_key_policy(KeyId=kid, PolicyName="default")["Policy"], before)
        # With the flag, as asked: dev is locked out, alice (named by the new policy) is not.
        self.dev.put_key_policy(KeyId=kid, PolicyName="default", Policy=alice_only,
                                BypassPolicyLockoutSafetyCheck=True)
        self.denied(lambda: self.dev.put_key_policy(KeyId=kid, PolicyName="default", Policy=policy(DEV_ONLY)))
        # Handing the key back to dev alone locks alice out: refused to her too, unless she says so.
        self.refused(lambda: self.alice.put_key_policy(KeyId=kid, PolicyName="default", Policy=policy(DEV_ONLY)),
                     "It must allow %s kms:PutKeyPolicy" % ALICE, "MalformedPolicyDocumentException")
        self.alice.put_key_policy(KeyId=kid, PolicyName="default", Policy=policy(DEV_ONLY),
                                  BypassPolicyLockoutSafetyCheck=True)
        k2 = self.dev.create_key(Policy=dev_uses, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
        self.dev.encrypt(KeyId=k2, Plaintext=b"x")
        # A policy that keeps the caller's PutKeyPolicy passes without the flag.
        self.dev.put_key_policy(KeyId=kid, PolicyName="default", Policy=policy(DEV_ONLY))

    def test_grant_validation(self):
        kid = self.key()
        for kw in ({"Operations": ["Encrypt"]}, {"GranteePrincipal": ALICE, "Operations": []}):
            with self.assertRaises(Exception):
                self.dev.create_grant(KeyId=kid, **kw)
        status_body = {"KeyId": kid, "GranteePrincipal": ALICE, "Operations": ["MakeCoffee"]}
        import http.client
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        body = json.dumps(status_body).encode()
        req = AWSRequest(method="POST", url=self.srv.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "TrentService.CreateGrant"})
        SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
        r = conn.getresponse()
        j = json.loads(r.read())
        conn.close()
        self.assertEqual((r.status, j["__type"]), (400, "ValidationException"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
