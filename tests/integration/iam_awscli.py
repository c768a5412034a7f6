#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""STS and IAM of cloister-kms --dev driven by Debian's `aws` CLI (awscli 2.9), unmodified, with
--endpoint-url: users and access keys (a new user's own keys sign requests), roles, inline and
managed policies, attachments, and the refusals as the CLI reports them (the error code in
parentheses on stderr, and its message): NoSuchEntity, EntityAlreadyExists, DeleteConflict,
MalformedPolicyDocument, ValidationError, AccessDenied for a user without a policy,
InvalidClientTokenId for an unknown key, SignatureDoesNotMatch for a wrong secret."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

ACCT = "111122223333"


class IamCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = kms_harness.kms_server()
        cls.srv = cls.cm.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def aws(self, service, *args, ok=True, key="test", secret="test"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(kms_harness.DEV_ENV)
        env.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_CONFIG_FILE": os.devnull,
                    "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_MAX_ATTEMPTS": "1"})
        p = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.srv.endpoint, "--output", "json", service,
                            *args], env=env, capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, "aws %s %s: %s" % (service, " ".join(args), p.stderr))
            return json.loads(p.stdout) if p.stdout.strip() else {}
        self.assertNotEqual(p.returncode, 0, "aws %s %s unexpectedly succeeded" % (service, " ".join(args)))
        return p.stderr

    def fail_with(self, code, words, service, *args, **kw):
        err = self.aws(service, *args, ok=False, **kw)
        self.assertIn("(%s)" % code, err)
        self.assertIn(words, err)

    def test_caller_identity(self):
        who = self.aws("sts", "get-caller-identity")
        self.assertEqual(who["Account"], ACCT)
        self.assertEqual(who["Arn"], "arn:aws:iam::%s:user/dev" % ACCT)
        self.assertTrue(who["UserId"].startswith("AIDA"))
        self.fail_with("InvalidClientTokenId", "The security token included in the request is invalid.", "sts",
                       "get-caller-identity", key="AKIANOSUCHKEY0000000")
        self.fail_with("SignatureDoesNotMatch", "does not match", "sts", "get-caller-identity", secret="wrong")
        self.fail_with("InvalidClientTokenId", "invalid", "iam", "list-users", key="nobody")

    def test_users_and_keys(self):
        u = self.aws("iam", "create-user", "--user-name", "alice")["User"]
        self.assertEqual(u["Arn"], "arn:aws:iam::%s:user/alice" % ACCT)
        self.fail_with("EntityAlreadyExists", "User with name alice already exists.", "iam", "create-user",
                       "--user-name", "alice")
        self.fail_with("ValidationError", "[\\w+=,.@-]+", "iam", "create-user", "--user-name", "bad name")
        self.assertIn("alice", [x["UserName"] for x in self.aws("iam", "list-users")["Users"]])
        self.assertEqual(self.aws("iam", "get-user", "--user-name", "alice")["User"]["UserName"], "alice")
        self.fail_with("NoSuchEntity", "The user with name nobody cannot be found.", "iam", "get-user",
                       "--user-name", "nobody")
        k = self.aws("iam", "create-access-key", "--user-name", "alice")["AccessKey"]
        self.assertTrue(k["AccessKeyId"].startswith("AKIA"))
        self.assertEqual(len(k["SecretAccessKey"]), 40)
        keys = self.aws("iam", "list-access-keys", "--user-name", "alice")["AccessKeyMetadata"]
        self.assertEqual([x["AccessKeyId"] for x in keys], [k["AccessKeyId"]])
        self.assertNotIn("SecretAccessKey", keys[0])
        # Alice's key signs requests; without a policy she may do nothing in IAM.
        alice = dict(key=k["AccessKeyId"], secret=k["SecretAccessKey"])
        self.assertEqual(self.aws("sts", "get-caller-identity", **alice)["Arn"], u["Arn"])
        self.fail_with("AccessDenied",
                       "User: arn:aws:iam::%s:user/alice is not authorized to perform: iam:CreateRole on resource: "
                       "arn:aws:iam::%s:role/r because no identity-based policy allows the action" % (ACCT, ACCT),
                       "iam", "create-role", "--role-name", "r", "--assume-role-policy-document",
                       json.dumps({"Version": "2012-10-17", "Statement": [
                           {"Effect": "Allow", "Principal": {"AWS": u["Arn"]}, "Action": "sts:AssumeRole"}]}),
                       **alice)
        # KMS too: the default key policy delegates to IAM, and alice has no policy.
        kid = self.aws("kms", "create-key")["KeyMetadata"]["KeyId"]
        self.fail_with("AccessDeniedException", "no identity-based policy allows the action", "kms", "describe-key",
                       "--key-id", kid, **alice)
        # A managed policy of her own lets her list roles, and only that.
        doc = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]})
        p = self.aws("iam", "create-policy", "--policy-name", "list-roles", "--policy-document", doc)["Policy"]
        self.assertEqual(p["Arn"], "arn:aws:iam::%s:policy/list-roles" % ACCT)
        self.aws("iam", "attach-user-policy", "--user-name", "alice", "--policy-arn", p["Arn"])
        self.aws("iam", "list-roles", **alice)
        self.fail_with("AccessDenied", "iam:ListUsers", "iam", "list-users", **alice)
        self.assertEqual(self.aws("iam", "get-policy", "--policy-arn", p["Arn"])["Policy"]["AttachmentCount"], 1)
        v = self.aws("iam", "get-policy-version", "--policy-arn", p["Arn"], "--version-id", "v1")["PolicyVersion"]
        self.assertEqual(v["Document"], json.loads(doc))
        self.fail_with("DeleteConflict", "Cannot delete a policy attached to entities.", "iam", "delete-policy",
                       "--policy-arn", p["Arn"])
        self.fail_with("DeleteConflict", "must delete access keys first", "iam", "delete-user", "--user-name", "alice")
        self.aws("iam", "delete-access-key", "--user-name", "alice", "--access-key-id", k["AccessKeyId"])
        self.fail_with("InvalidClientTokenId", "invalid", "sts", "get-caller-identity", **alice)
        self.fail_with("DeleteConflict", "must detach all policies first", "iam", "delete-user", "--user-name",
                       "alice")
        self.aws("iam", "detach-user-policy", "--user-name", "alice", "--policy-arn", p["Arn"])
        self.aws("iam", "delete-policy", "--policy-arn", p["Arn"])
        self.aws("iam", "delete-user", "--user-name", "alice")
        self.fail_with("NoSuchEntity", "cannot be found", "iam", "delete-user", "--user-name", "alice")

    def test_roles_and_policies(self):
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCT}, "Action": "sts:AssumeRole"}]}
        r = self.aws("iam", "create-role", "--role-name", "trainer", "--assume-role-policy-document",
                     json.dumps(trust), "--max-session-duration", "7200")["Role"]
        self.assertEqual(r["MaxSessionDuration"], 7200)
        self.assertEqual(r["AssumeRolePolicyDocument"], trust)
        self.fail_with("EntityAlreadyExists", "Role with name trainer already exists.", "iam", "create-role",
                       "--role-name", "trainer", "--assume-role-policy-document", json.dumps(trust))
        self.fail_with("MalformedPolicyDocument", "Effect", "iam", "create-role", "--role-name", "t2",
                       "--assume-role-policy-document", json.dumps({"Statement": [{"Principal": "*",
                                                                                   "Action": "sts:AssumeRole"}]}))
        self.fail_with("MalformedPolicyDocument", "Policy document should not specify a principal.", "iam",
                       "put-role-policy", "--role-name", "trainer", "--policy-name", "p", "--policy-document",
                       json.dumps({"Version": "2012-10-17", "Statement": [
                           {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}))
        inline = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::training/*"}]}
        self.aws("iam", "put-role-policy", "--role-name", "trainer", "--policy-name", "read-data",
                 "--policy-document", json.dumps(inline))
        self.assertEqual(self.aws("iam", "list-role-policies", "--role-name", "trainer")["PolicyNames"],
                         ["read-data"])
        got = self.aws("iam", "get-role-policy", "--role-name", "trainer", "--policy-name", "read-data")
        self.assertEqual(got["PolicyDocument"], inline)
        self.aws("iam", "attach-role-policy", "--role-name", "trainer", "--policy-arn",
                 "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        self.fail_with("NoSuchEntity", "does not exist or is not attachable", "iam", "attach-role-policy",
                       "--role-name", "trainer", "--policy-arn", "arn:aws:iam::aws:policy/NoSuchPolicy")
        att = self.aws("iam", "list-attached-role-policies", "--role-name", "trainer")["AttachedPolicies"]
        self.assertEqual(att, [{"PolicyName": "AmazonS3ReadOnlyAccess",
                                "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}])
        # The dev principal (an administrator) assumes it by the account's trust; 7200 s is within its maximum.
        cred = self.aws("sts", "assume-role", "--role-arn", r["Arn"], "--role-session-name", "job-1",
                        "--duration-seconds", "7200")["Credentials"]
        self.assertTrue(cred["AccessKeyId"].startswith("ASIA"))
        self.fail_with("ValidationError", "MaxSessionDuration", "sts", "assume-role", "--role-arn", r["Arn"],
                       "--role-session-name", "job-2", "--duration-seconds", "43200")
        self.fail_with("ValidationError", "not supported", "sts", "assume-role", "--role-arn", r["Arn"],
                       "--role-session-name", "job-3", "--policy", json.dumps(inline))
        self.fail_with("AccessDenied", "sts:AssumeRole", "sts", "assume-role", "--role-arn",
                       "arn:aws:iam::%s:role/nosuchrole" % ACCT, "--role-session-name", "job-4")
        self.fail_with("DeleteConflict", "must detach all policies first", "iam", "delete-role", "--role-name",
                       "trainer")
        self.aws("iam", "detach-role-policy", "--role-name", "trainer", "--policy-arn",
                 "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        self.fail_with("DeleteConflict", "must delete policies first", "iam", "delete-role", "--role-name", "trainer")
        self.aws("iam", "delete-role-policy", "--role-name", "trainer", "--policy-name", "read-data")
        self.aws("iam", "delete-role", "--role-name", "trainer")
        self.fail_with("NoSuchEntity", "The role with name trainer cannot be found.", "iam", "get-role",
                       "--role-name", "trainer")
        # The AWS managed policies this server knows are listed and readable.
        names = [p["PolicyName"] for p in self.aws("iam", "list-policies", "--scope", "AWS")["Policies"]]
        self.assertIn("AmazonSageMakerFullAccess", names)
        v = self.aws("iam", "get-policy-version", "--policy-arn", "arn:aws:iam::aws:policy/AdministratorAccess",
                     "--version-id", "v1")["PolicyVersion"]
        self.assertEqual(v["Document"]["Statement"][0]["Action"], "*")


if __name__ == "__main__":
    unittest.main()
