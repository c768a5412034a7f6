#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The training walk-through of issue 18 (encrypted data, a service role, a KMS grant), as its
boto3 code is written, against one cloister-kms --dev: only endpoint_url (and the region, which
the walk-through takes from the environment) are added. The role's session may not encrypt
before the grant (AccessDeniedException: the key policy delegates to IAM, and
AmazonSageMakerFullAccess allows no kms:Encrypt), may after create_grant, and may not after
revoke_grant. Its S3 lines (create_bucket, put_object of the data encrypted under the data key)
run against the same server, and the role's session reads the object back.

With --expiry: a session token is refused once it has expired (ExpiredTokenException from KMS,
ExpiredToken from STS, IAM and S3). The server is restarted on the same data directory with its clock moved
20 minutes ahead by libfaketime (LD_PRELOAD, outside the server: no test-only clock in
cloister-kms); a 900-second session issued before is then expired. Exits 77 without
libfaketime."""
import datetime
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REGION = "us-east-1"
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"]


def clients(endpoint):
    env = dict(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    return {name: boto3.client(name, endpoint_url=endpoint, **env) for name in ("sts", "iam", "kms", "s3")}


def expect(code, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            raise AssertionError("expected %s, got %s: %s" % (code, got, e.response["Error"].get("Message")))
        return e.response["Error"].get("Message", "")
    raise AssertionError("expected %s, the call succeeded" % code)


def walkthrough(endpoint):
    c = clients(endpoint)
    kms, iam = c["kms"], c["iam"]
    # --- the walk-through's code, as written, with endpoint_url ---
    root_arn = f"arn:aws:iam::{c['sts'].get_caller_identity()['Account']}:root"
    user_arn = c['sts'].get_caller_identity()['Arn']
    assert root_arn == "arn:aws:iam::111122223333:root", root_arn
    assert user_arn == "arn:aws:iam::111122223333:user/dev", user_arn
    # The console's default key policy: the root, the key administrator, the key user, and
    # grants for AWS resources.
    key_policy = json.dumps({
        "Id": "key-consolepolicy-3", "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": root_arn},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow access for Key Administrators", "Effect": "Allow", "Principal": {"AWS": user_arn},
             "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                        "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                        "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
             "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": user_arn},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*"},
            {"Sid": "Allow attachment of persistent resources", "Effect": "Allow", "Principal": {"AWS": user_arn},
             "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
        ]})
    master_key = kms.create_key(Policy=key_policy, Description="training data key", KeyUsage="ENCRYPT_DECRYPT",
                                Origin='AWS_KMS', CustomerMasterKeySpec='SYMMETRIC_DEFAULT')['KeyMetadata']['Arn']
    data_key = kms.generate_data_key(KeyId=master_key, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    # The data engineer encrypts a chunk of the dataset under the data key and uploads it (the walk-through's
    # S3 lines; its region is us-east-1, where CreateBucket takes no LocationConstraint).
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(12)
    encrypted_data = data_key["CiphertextBlob"] + nonce + AESGCM(data_key["Plaintext"]).encrypt(
        nonce, b"a chunk of secrets", None)
    s3, bucket = c["s3"], "sagemaker-training-data-111122223333"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key='data/a_chunk_of_secrets', Body=encrypted_data)
    s3.create_bucket(Bucket="other-team-data-111122223333")
    s3.put_object(Bucket="other-team-data-111122223333", Key='x', Body=b'not for the role')
    trust_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"},
        ]}
    role = iam.create_role(RoleName='example-role', AssumeRolePolicyDocument=json.dumps(trust_policy))
    role_arn = role['Role']['Arn']
    assert role_arn == "arn:aws:iam::111122223333:role/example-role", role_arn
    assert role['Role']['AssumeRolePolicyDocument'] == trust_policy, role['Role']['AssumeRolePolicyDocument']
    iam.attach_role_policy(RoleName='example-role', PolicyArn='arn:aws:iam::aws:policy/AmazonSageMakerFullAccess')
    now = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
    cred = c['sts'].assume_role(RoleArn=role_arn, RoleSessionName=now)['Credentials']
    assert cred['AccessKeyId'].startswith("ASIA") and len(cred['AccessKeyId']) == 20, cred['AccessKeyId']
    sess = boto3.session.Session(aws_access_key_id=cred['AccessKeyId'],
                                 aws_secret_access_key=cred['SecretAccessKey'],
                                 aws_session_token=cred['SessionToken'], region_name=REGION)
    role_kms = sess.client('kms', endpoint_url=endpoint)
    # The role's session reads the training data back from S3: AmazonSageMakerFullAccess allows
    # s3:GetObject on buckets whose name has "sagemaker" in it, and on no other.
    role_s3 = sess.client('s3', endpoint_url=endpoint)
    got = role_s3.get_object(Bucket=bucket, Key='data/a_chunk_of_secrets')
    assert got['Body'].read() == encrypted_data
    msg = expect("AccessDenied", role_s3.get_object, Bucket="other-team-data-111122223333", Key='x')
    assert msg == "Access Denied", msg
    who = sess.client('sts', endpoint_url=endpoint).get_caller_identity()
    assert who['Arn'] == "arn:aws:sts::111122223333:assumed-role/example-role/%s" % now, who
    msg = expect("AccessDeniedException", role_kms.encrypt, KeyId=master_key, Plaintext=b'it will not go through')
    assert "no identity-based policy allows the action" in msg, msg
    assert "assumed-role/example-role/" in msg, msg
    grant = kms.create_grant(KeyId=master_key, GranteePrincipal=role_arn, Operations=['Decrypt', 'Encrypt'])
    # --- now the role's session may encrypt and decrypt with the key ---
    blob = role_kms.encrypt(KeyId=master_key, Plaintext=b'it goes through')['CiphertextBlob']
    assert role_kms.decrypt(CiphertextBlob=blob)['Plaintext'] == b'it goes through'
    assert kms.decrypt(CiphertextBlob=blob)['Plaintext'] == b'it goes through'
    # The grant allows Encrypt and Decrypt only.
    expect("AccessDeniedException", role_kms.generate_data_key, KeyId=master_key, KeySpec="AES_256")
    kms.revoke_grant(KeyId=master_key, GrantId=grant['GrantId'])
    expect("AccessDeniedException", role_kms.encrypt, KeyId=master_key, Plaintext=b'refused again')
    # A session token altered by one character is not a session.
    bad = cred['SessionToken'][:-6] + ("A" if cred['SessionToken'][-6] != "A" else "B") + cred['SessionToken'][-5:]
    forged = boto3.client("kms", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=cred['AccessKeyId'],
                          aws_secret_access_key=cred['SecretAccessKey'], aws_session_token=bad)
    msg = expect("UnrecognizedClientException", forged.list_keys)
    assert msg == "The security token included in the request is invalid.", msg
    forged_s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=cred['AccessKeyId'],
                             aws_secret_access_key=cred['SecretAccessKey'], aws_session_token=bad)
    msg = expect("InvalidToken", forged_s3.get_object, Bucket=bucket, Key='data/a_chunk_of_secrets')
    assert msg == "The provided token is malformed or otherwise invalid.", msg
    # The temporary key without its token is no key.
    bare = boto3.client("kms", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=cred['AccessKeyId'],
                        aws_secret_access_key=cred['SecretAccessKey'])
    expect("UnrecognizedClientException", bare.list_keys)
    # Trust: a role whose trust policy names someone else is not assumed.
    other = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": "xyz-123"}}}]}
    iam.create_role(RoleName='partner-role', AssumeRolePolicyDocument=json.dumps(other))
    msg = expect("AccessDenied", c['sts'].assume_role, RoleArn="arn:aws:iam::111122223333:role/partner-role",
                 RoleSessionName="s1")
    assert "is not authorized to perform: sts:AssumeRole" in msg, msg
    # sts:ExternalId: a trust statement on the account with a condition.
    ext = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": "xyz-123"}}}]}
    iam.update_assume_role_policy(RoleName='partner-role', PolicyDocument=json.dumps(ext))
    expect("AccessDenied", c['sts'].assume_role, RoleArn="arn:aws:iam::111122223333:role/partner-role",
           RoleSessionName="s1")
    expect("AccessDenied", c['sts'].assume_role, RoleArn="arn:aws:iam::111122223333:role/partner-role",
           RoleSessionName="s1", ExternalId="xyz-124")
    c['sts'].assume_role(RoleArn="arn:aws:iam::111122223333:role/partner-role", RoleSessionName="s1",
                         ExternalId="xyz-123")
    # DurationSeconds beyond the role's maximum (3600 by default), a bad session name.
    msg = expect("ValidationError", c['sts'].assume_role, RoleArn=role_arn, RoleSessionName="s2",
                 DurationSeconds=7200)
    assert msg == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", msg
    expect("ValidationError", c['sts'].assume_role, RoleArn=role_arn, RoleSessionName="bad name")
    # A key policy statement naming the role applies to its sessions.
    k2 = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root_arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "kms:Encrypt", "Resource": "*"}]}))
    role_kms.encrypt(KeyId=k2['KeyMetadata']['KeyId'], Plaintext=b'by the key policy')
    # An explicit deny in the role's inline policy beats the key policy's allow.
    iam.put_role_policy(RoleName='example-role', PolicyName='no-encrypt', PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}]}))
    msg = expect("AccessDeniedException", role_kms.encrypt, KeyId=k2['KeyMetadata']['KeyId'], Plaintext=b'x')
    assert "explicit deny in an identity-based policy" in msg, msg
    return cred


def main_walkthrough():
    with kms_harness.kms_server() as srv:
        walkthrough(srv.endpoint)
        with open(os.path.join(srv.data_dir, "audit.log")) as f:
            audit = f.read()
        for op in ("sts:AssumeRole", "iam:CreateRole", "iam:AttachRolePolicy"):
            assert '"%s"' % op in audit, "no audit line of %s" % op
        assert "assumed-role/example-role/" in audit
    print("walk-through: ok")


def main_expiry():
    lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if lib is None:
        print("libfaketime is not installed (Debian: faketime): the expiry case cannot run here")
        return 77
    tmp = tempfile.mkdtemp(prefix="cloister-walkthrough-")
    data = os.path.join(tmp, "data")
    try:
        with kms_harness.kms_server(data_dir=data) as srv:
            c = clients(srv.endpoint)
            trust = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/dev"},
                 "Action": "sts:AssumeRole"}]}
            role_arn = c["iam"].create_role(RoleName="short", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
            cred = c["sts"].assume_role(RoleArn=role_arn, RoleSessionName="brief", DurationSeconds=900)["Credentials"]
            s = boto3.session.Session(aws_access_key_id=cred['AccessKeyId'],
                                      aws_secret_access_key=cred['SecretAccessKey'],
                                      aws_session_token=cred['SessionToken'], region_name=REGION)
            s.client("sts", endpoint_url=srv.endpoint).get_caller_identity()  # valid now
        env = dict(os.environ, LD_PRELOAD=lib, FAKETIME="+1200", FAKETIME_DONT_FAKE_MONOTONIC="1",
                   FAKETIME_NO_CACHE="1")
        with kms_harness.kms_server(data_dir=data, env=env) as srv:
            msg = expect("ExpiredTokenException", s.client("kms", endpoint_url=srv.endpoint).list_keys)
            assert msg == "The security token included in the request is expired", msg
            expect("ExpiredToken", s.client("sts", endpoint_url=srv.endpoint).get_caller_identity)
            expect("ExpiredToken", s.client("iam", endpoint_url=srv.endpoint).list_roles)
            msg = expect("ExpiredToken", s.client("s3", endpoint_url=srv.endpoint).list_buckets)
            assert msg == "The provided token has expired.", msg
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("expiry: ok")
    return 0


if __name__ == "__main__":
    if "--expiry" in sys.argv:
        sys.exit(main_expiry())
    main_walkthrough()
