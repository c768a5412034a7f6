#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/train: the training job of issue 19 end to end, and where its time goes: the logistic model
on the 569-row WDBC set inside a sim enclave, with attestation, key release (KMS Decrypt and
GenerateDataKey with Recipient), S3 reads and writes (the Fernet-encrypted CSV and its data key in,
the sealed model and metrics.json out), through `cloister train-job run` against one cloister-kms
--dev (KMS, STS, S3), set up as tests/integration/train_job.py does. Each run's split comes from its
result line's Timings. The peer, measured in the same run: `cloister train-local` on the plaintext
CSV (the same training, no enclave, no keys, no S3), as a process from start to exit.

    /usr/bin/python3 bench/train/run.py [--build build] [--runs N]

Benchmarks fail on nothing; the figures are printed as a table and as JSON."""
import argparse
import base64
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

REGION = "us-east-1"
DEV = "arn:aws:iam::111122223333:user/dev"
BUCKET = "sagemaker-bench-111122223333"
KEYS = ("enclave_start_ms", "recipient_key_ms", "key_release_ms", "transfer_ms", "training_ms", "job_ms", "total_ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    os.environ["CLOISTER_BUILD_DIR"] = os.path.abspath(a.build)
    import kms_harness
    import boto3
    from cryptography.fernet import Fernet
    c = os.path.join(a.build, "bin", "cloister")
    data = os.path.join(ROOT, "data", "wdbc", "wdbc.csv")
    tmp = tempfile.mkdtemp(prefix="cloister-bench-train-")
    p = lambda *x: os.path.join(tmp, *x)  # noqa: E731
    try:
        subprocess.run([c, "enclave", "init-root", "-o", p("pki")], check=True, capture_output=True)
        r = subprocess.run([c, "enclave", "build", "--exe", os.path.join(a.build, "bin", "cloister-train"), "-o",
                            p("train.img")], check=True, capture_output=True, text=True)
        pcr0 = json.loads(r.stdout)["Measurements"]["PCR0"]
        with kms_harness.kms_server(extra_args=["--attestation-root", p("pki", "root.pem")]) as srv:
            ep = srv.endpoint
            mk = lambda n: boto3.client(n, endpoint_url=ep, region_name=REGION,  # noqa: E731
                                        aws_access_key_id="test", aws_secret_access_key="test")
            kms, iam, sts, s3 = mk("kms"), mk("iam"), mk("sts"), mk("s3")
            trust = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "sts:AssumeRole"}]}
            role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
            iam.attach_role_policy(RoleName="bench", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
            policy = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "kms:*", "Resource": "*"},
                {"Effect": "Deny", "Principal": {"AWS": role}, "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                 "Resource": "*", "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": pcr0}}}]})
            key = kms.create_key(Policy=policy)["KeyMetadata"]["Arn"]
            kms.create_grant(KeyId=key, GranteePrincipal=role, Operations=["Decrypt", "GenerateDataKey"])
            s3.create_bucket(Bucket=BUCKET)
            dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
            s3.put_object(Bucket=BUCKET, Key="in/wdbc.csv",
                          Body=Fernet(base64.b64encode(dk["Plaintext"])).encrypt(open(data, "rb").read()))
            s3.put_object(Bucket=BUCKET, Key="in/wdbc.csv.key", Body=dk["CiphertextBlob"])
            runs = []
            for i in range(a.runs):
                cr = sts.assume_role(RoleArn=role, RoleSessionName="bench%d" % i)["Credentials"]
                doc = {"TrainingJobName": "bench-%d" % i, "HyperParameters": {"model": "logreg"},
                       "InputDataConfig": [{"ChannelName": "train", "S3Uri": "s3://%s/in/" % BUCKET}],
                       "OutputDataConfig": {"S3OutputPath": "s3://%s/out/" % BUCKET, "KmsKeyId": key},
                       "Credentials": {"AccessKeyId": cr["AccessKeyId"], "SecretAccessKey": cr["SecretAccessKey"],
                                       "SessionToken": cr["SessionToken"]},
                       "Region": REGION, "Endpoints": {"kms": ep, "s3": ep}}
                t0 = time.monotonic()
                r = subprocess.run([c, "train-job", "run", "--image", p("train.img"), "--pki", p("pki"),
                                    "--state-dir", p("state"), "--memory", "512"], input=json.dumps(doc),
                                   capture_output=True, text=True)
                wall = (time.monotonic() - t0) * 1000
                res = json.loads(r.stdout.splitlines()[-1])
                if res.get("TrainingJobStatus") != "Completed":
                    print("run %d: %s" % (i, res.get("FailureReason")))
                    continue
                runs.append(dict(res["Timings"], process_ms=round(wall)))
            local = []
            for _ in range(a.runs):
                t0 = time.monotonic()
                subprocess.run([c, "train-local", data, "-o", p("local.onnx"), "--force"], check=True,
                               capture_output=True)
                local.append((time.monotonic() - t0) * 1000)
        med = {k: statistics.median(r[k] for r in runs) for k in KEYS + ("process_ms",)} if runs else {}
        print("load average %s, %d runs (%s)" % (os.getloadavg(), len(runs),
                                                 datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")))
        print("| what | median ms | min ms | max ms |\n|---|---:|---:|---:|")
        for k in KEYS + ("process_ms",):
            if runs:
                print("| job: %s | %d | %d | %d |" % (k, med[k], min(r[k] for r in runs), max(r[k] for r in runs)))
        print("| peer: train-local (process) | %d | %d | %d |" % (statistics.median(local), min(local), max(local)))
        print(json.dumps({"job_median_ms": med, "train_local_median_ms": statistics.median(local), "runs": runs}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
