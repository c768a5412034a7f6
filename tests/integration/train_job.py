# SPDX-License-Identifier: Apache-2.0
"""Issue 19, items 1, 2, 3 and 5 (docs/training-jobs.md): cloister-train in its own sim enclave,
run by `cloister train-job run` with the job document on stdin, against one cloister-kms --dev
(KMS, STS, IAM and S3). Set up with boto3 as the walk-through does: a key whose policy denies the
role Decrypt and GenerateDataKey unless the attestation document's PCR0 is the trainer image's
(Deny + StringNotEquals kms:RecipientAttestation:PCR0: the host, which holds the role's session,
cannot use it), a role, a grant to it, the data engineer's Fernet upload of data/wdbc/wdbc.csv
(Fernet(base64.b64encode(plaintext_key))) with the data key's CiphertextBlob beside it, and a
sealed-envelope input made with `cloister seal`.

Checks: the job completes, model.sealed and metrics.json land, held-out accuracy is in the result,
and the sealed model classifies a patient through the inference worker (cloister-infer in its own
enclave, `cloister infer --enclave`). Failures: the role's session itself (the host) is refused
the data key; no grant and a revoked grant fail with AccessDeniedException and write nothing; a
tampered token names the object; a pickle is refused; a KMS that never answers makes the job run
over --max-runtime (Stopped, MaxRuntimeExceeded); a too-small --memory is a clear failure; SIGTERM
stops the job. Then a scan of the runner's state directory and the server's S3 data finds no CSV
row and no ONNX plaintext (a planted plaintext is found, so the scan can find).

Exits 77 when the kernel refuses unprivileged user namespaces (no sim enclave can run)."""
import base64
import datetime
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import worker_harness as wh  # noqa: E402

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

C = os.environ["CLOISTER_BIN"]
TRAIN = os.environ["CLOISTER_TRAIN"]
INFER = os.environ["CLOISTER_INFER"]
DATA = os.environ["WDBC_CSV"]
REGION = "us-east-1"
ACCOUNT = "111122223333"
DEV = "arn:aws:iam::%s:user/dev" % ACCOUNT
BUCKET = "sagemaker-training-data-%s" % ACCOUNT

passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def key_policy(role_arn, pcr0):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "only the trainer's enclave", "Effect": "Deny", "Principal": {"AWS": role_arn},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": pcr0}}}]})


def main(tmp):
    p = lambda *a: os.path.join(tmp, *a)  # noqa: E731
    r = subprocess.run([C, "enclave", "init-root", "-o", p("pki")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([C, "enclave", "build", "--exe", TRAIN, "-o", p("train.img")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pcr0 = json.loads(r.stdout)["Measurements"]["PCR0"]
    with kms_harness.kms_server(extra_args=["--attestation-root", p("pki", "root.pem")]) as srv:
        ep = srv.endpoint
        mk = lambda n: boto3.client(n, endpoint_url=ep, region_name=REGION, aws_access_key_id="test",  # noqa: E731
                                    aws_secret_access_key="test")
        kms, iam, sts, s3 = mk("kms"), mk("iam"), mk("sts"), mk("s3")
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        role_arn = iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.attach_role_policy(RoleName="trainer", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
        data_key_id = kms.create_key(Policy=key_policy(role_arn, pcr0))["KeyMetadata"]["Arn"]
        model_key_id = kms.create_key(Policy=key_policy(role_arn, pcr0))["KeyMetadata"]["Arn"]
        grants = [kms.create_grant(KeyId=k, GranteePrincipal=role_arn, Operations=["Decrypt", "GenerateDataKey"])
                  for k in (data_key_id, model_key_id)]
        s3.create_bucket(Bucket=BUCKET)
        csv = open(DATA, "rb").read()
        # The data engineer, as the walk-through: a data key, Fernet over its base64, the blob beside.
        dk = kms.generate_data_key(KeyId=data_key_id, KeySpec="AES_256")
        token = Fernet(base64.b64encode(dk["Plaintext"])).encrypt(csv)
        s3.put_object(Bucket=BUCKET, Key="fernet/wdbc.csv", Body=token)
        s3.put_object(Bucket=BUCKET, Key="fernet/wdbc.csv.key", Body=dk["CiphertextBlob"])
        open(p("wdbc.csv"), "wb").write(csv)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=REGION,
                   AWS_ENDPOINT_URL_KMS=ep)
        r = subprocess.run([C, "seal", "--key", data_key_id, p("wdbc.csv"), "-o", p("wdbc.sealed")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        s3.put_object(Bucket=BUCKET, Key="sealed/wdbc.csv.sealed", Body=open(p("wdbc.sealed"), "rb").read())

        def session():
            now = datetime.datetime.now().strftime("%Y%m%d%H%M%S%f")
            return sts.assume_role(RoleArn=role_arn, RoleSessionName=now)["Credentials"]

        cred = session()
        role_kms = boto3.client("kms", endpoint_url=ep, region_name=REGION, aws_access_key_id=cred["AccessKeyId"],
                                aws_secret_access_key=cred["SecretAccessKey"], aws_session_token=cred["SessionToken"])
        try:
            role_kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])
            check(False, "the role's session outside the enclave is refused the data key")
        except ClientError as e:
            check(e.response["Error"]["Code"] == "AccessDeniedException",
                  "the role's session outside the enclave (the host's) is refused the data key by the key "
                  "policy's PCR0 condition: " + e.response["Error"]["Message"])

        def doc(name, prefix, **kw):
            c = session()
            d = {"TrainingJobName": name, "HyperParameters": {"model": "logreg", "seed": "42"},
                 "InputDataConfig": [{"ChannelName": "train", "S3Uri": "s3://%s/%s" % (BUCKET, prefix)}],
                 "OutputDataConfig": {"S3OutputPath": "s3://%s/out/" % BUCKET, "KmsKeyId": model_key_id},
                 "Credentials": {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                                 "SessionToken": c["SessionToken"], "Expiration": 0},
                 "Region": REGION, "Endpoints": {"kms": ep, "s3": ep}, "CaFile": None}
            d.update(kw)
            return d

        def run(d, *extra, memory="512", runtime="120", kms_endpoint=None):
            if kms_endpoint:
                d["Endpoints"]["kms"] = kms_endpoint
            proc = subprocess.run([C, "train-job", "run", "--image", p("train.img"), "--pki", p("pki"),
                                   "--state-dir", p("state"), "--memory", memory, "--max-runtime", runtime, *extra],
                                  input=json.dumps(d), capture_output=True, text=True, timeout=300)
            events = [json.loads(ln) for ln in proc.stdout.splitlines()]
            res = [e for e in events if e["event"] == "result"]
            if "forbids unprivileged user namespaces" in proc.stdout + proc.stderr:
                raise wh.Skip("the kernel forbids unprivileged user namespaces")
            return proc, events, (res[0] if len(res) == 1 else {"event": "none", "FailureReason": proc.stderr})

        def outputs(name):
            got = s3.list_objects_v2(Bucket=BUCKET, Prefix="out/%s/" % name).get("Contents", [])
            return sorted(o["Key"] for o in got)

        proc, events, res = run(doc("wdbc-fernet", "fernet/"))
        check(proc.returncode == 0 and res.get("TrainingJobStatus") == "Completed",
              "the Fernet job completes: %s / %s" % (res, proc.stderr.strip()[-400:]))
        check(all(len(json.dumps(e)) <= 4096 for e in events) and events[-1]["event"] == "result" and
              [e["SecondaryStatus"] for e in events if e["event"] == "status"] ==
              ["Starting", "Downloading", "Training", "Uploading"],
              "events are JSON lines, statuses Starting, Downloading, Training, Uploading, one result last")
        fm = {m["MetricName"]: m["Value"] for m in res.get("FinalMetricDataList", [])}
        check(fm.get("test:accuracy", 0) > 0.9, "held-out accuracy is in the result: %s" % fm)
        t = res.get("Timings", {})
        check(all(k in t for k in ("enclave_start_ms", "key_release_ms", "transfer_ms", "training_ms", "total_ms")),
              "the result carries the timings split: %s" % t)
        check(outputs("wdbc-fernet") == ["out/wdbc-fernet/output/metrics.json", "out/wdbc-fernet/output/model.sealed"]
              and res.get("ModelArtifacts", {}).get("S3ModelArtifacts") ==
              "s3://%s/out/wdbc-fernet/output/model.sealed" % BUCKET, "model.sealed and metrics.json land")
        logs = [e["message"] for e in events if e["event"] == "log"]
        check(any("569 rows" in m for m in logs) and not any("17.99" in m or "842302" in m for m in logs),
              "log lines are aggregate (counts, loss), no value of the data: %s" % logs)
        sealed = s3.get_object(Bucket=BUCKET, Key="out/wdbc-fernet/output/model.sealed")["Body"].read()
        metrics = json.loads(s3.get_object(Bucket=BUCKET, Key="out/wdbc-fernet/output/metrics.json")["Body"].read())
        check(sealed.startswith(b"\x89CLSEAL\n") and "test" in metrics, "the model is sealed; metrics.json parses")
        timings = t

        # The sealed model through the inference worker of workflow 1.
        open(p("model.sealed"), "wb").write(sealed)
        lines = csv.decode().splitlines()
        names, values = lines[0].split(","), lines[1].split(",")
        record = json.dumps({n: float(v) for n, v in zip(names, values) if n != "diagnosis"}).encode()
        open(p("patient.json"), "wb").write(record)
        cfg = {"model": "/files/model.sealed", "kms_endpoint": "http://127.0.0.1:4599", "region": REGION,
               "access_key_id": "test", "secret_access_key": "test", "kms_vsock_port": 8000,
               "listen_port": wh.LISTEN_PORT, "read_timeout": 20}
        open(p("worker.json"), "w").write(json.dumps(cfg))
        r = subprocess.run([C, "enclave", "build", "--exe", INFER, "--file", p("model.sealed"), "--file",
                            p("worker.json"), "-o", p("worker.img")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        patient_key = kms.create_key()["KeyMetadata"]["Arn"]
        r = subprocess.run([C, "seal", "--key", patient_key, p("patient.json"), "-o", p("patient.sealed")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        wproc = subprocess.Popen([C, "enclave", "run", p("worker.img"), "--state-dir", p("wstate"), "--pki",
                                  p("pki"), "--memory", "512", "--quiet", "--proxy", "8000=127.0.0.1:%d" % srv.port],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sock = None
            deadline = time.time() + 120
            while sock is None and time.time() < deadline and wproc.poll() is None:
                ds = [d for d in os.listdir(p("wstate")) if d.startswith("i-sim")] if os.path.isdir(p("wstate")) else []
                cand = os.path.join(p("wstate"), ds[0], "vsock-%d.sock" % wh.LISTEN_PORT) if ds else None
                if cand and os.path.exists(cand):
                    sock = cand
                else:
                    time.sleep(0.05)
            r = subprocess.run([C, "infer", "--enclave", sock or "/nonexistent", p("patient.sealed"), "-o",
                                p("result.json")], capture_output=True, text=True, env=env, timeout=120)
            got = json.loads(open(p("result.json")).read()) if r.returncode == 0 else {}
            check(got.get("label") in ("benign", "malignant"),
                  "the trained, sealed model classifies a patient through the inference worker: %s %s" %
                  (got, r.stderr.strip()))
            subprocess.run([C, "infer", "--enclave", sock or "/nonexistent", "--stop"], capture_output=True)
        finally:
            if wproc.poll() is None:
                wproc.kill()
            wproc.wait()

        # A sealed-envelope input, with the data key given as a hyperparameter for the other run.
        proc, events, res = run(doc("wdbc-sealed", "sealed/"))
        check(res.get("TrainingJobStatus") == "Completed" and len(outputs("wdbc-sealed")) == 2,
              "the sealed-envelope job completes: %s" % res.get("FailureReason"))
        # Two CSV objects (each with the header), one data key given as the hyperparameter, a token
        # saved with a trailing newline.
        f = Fernet(base64.b64encode(dk["Plaintext"]))
        half = "\n".join(lines[:300]) + "\n", "\n".join([lines[0]] + lines[300:]) + "\n"
        s3.put_object(Bucket=BUCKET, Key="hp/part-1.csv", Body=f.encrypt(half[0].encode()) + b"\n")
        s3.put_object(Bucket=BUCKET, Key="hp/part-2.csv", Body=f.encrypt(half[1].encode()))
        d = doc("wdbc-hp", "hp/")
        d["HyperParameters"]["encrypted_data_key"] = base64.b64encode(dk["CiphertextBlob"]).decode()
        proc, events, res = run(d)
        logs = [e["message"] for e in events if e["event"] == "log"]
        check(res.get("TrainingJobStatus") == "Completed" and any(m.startswith("data: 569 rows") for m in logs),
              "two CSV objects joined into one table of 569 rows, the data key as the hyperparameter "
              "encrypted_data_key: %s %s" % (res.get("FailureReason"), logs[:1]))
        s3.put_object(Bucket=BUCKET, Key="hp/part-3.csv", Body=f.encrypt(b"a,b,diagnosis\n1,2,M\n"))
        proc, events, res = run(d)
        check(res.get("TrainingJobStatus") == "Failed" and "s3://%s/hp/part-3.csv: its header row differs" % BUCKET
              in res.get("FailureReason", ""), "a CSV object with other columns is refused by name: %s" %
              res.get("FailureReason"))

        # An .npy table (float64, the label last), sealed, and the MLP.
        rows = [ln.split(",") for ln in lines[1:]]
        di = names.index("diagnosis")
        flat = [float(v) for r_ in rows for j, v in enumerate(r_) if j != di]
        vals = []
        for k, r_ in enumerate(rows):
            vals += flat[k * (len(names) - 1):(k + 1) * (len(names) - 1)] + [1.0 if r_[di] == "M" else 0.0]
        header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), len(names))
        header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
        npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack(
            "<%dd" % len(vals), *vals)
        open(p("wdbc.npy"), "wb").write(npy)
        r = subprocess.run([C, "seal", "--key", data_key_id, p("wdbc.npy"), "-o", p("wdbc.npy.sealed")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        s3.put_object(Bucket=BUCKET, Key="npy/wdbc.npy", Body=open(p("wdbc.npy.sealed"), "rb").read())
        d = doc("wdbc-npy-mlp", "npy/")
        d["HyperParameters"] = {"model": "mlp", "hidden_layers": "8", "epochs": "30", "seed": "7"}
        proc, events, res = run(d)
        fm = {m["MetricName"]: m["Value"] for m in res.get("FinalMetricDataList", [])}
        check(res.get("TrainingJobStatus") == "Completed" and fm.get("test:accuracy", 0) > 0.9 and
              len([e for e in events if e["event"] == "log" and "epoch" in e["message"]]) >= 1,
              "a sealed .npy table trains the MLP, per-epoch progress in the log: %s %s" %
              (res.get("FailureReason"), fm))
        d = doc("bad-hp", "npy/")
        d["HyperParameters"] = {"model": "mlp", "epochs": "0"}
        proc, events, res = run(d)
        check(res.get("TrainingJobStatus") == "Failed" and "epochs" in res.get("FailureReason", "") and
              outputs("bad-hp") == [], "a bad hyperparameter fails the job naming it: %s" % res.get("FailureReason"))

        # Failures: nothing written, the reason says what.
        tampered = bytearray(token)
        tampered[-10] = ord("A") if tampered[-10] != ord("A") else ord("B")
        s3.put_object(Bucket=BUCKET, Key="tampered/wdbc.csv", Body=bytes(tampered))
        s3.put_object(Bucket=BUCKET, Key="tampered/wdbc.csv.key", Body=dk["CiphertextBlob"])
        proc, events, res = run(doc("tampered", "tampered/"))
        check(proc.returncode == 1 and res.get("TrainingJobStatus") == "Failed" and
              "s3://%s/tampered/wdbc.csv: the Fernet token's HMAC does not match" % BUCKET in res.get("FailureReason", "")
              and outputs("tampered") == [], "a tampered token fails the job naming the object: %s" %
              res.get("FailureReason"))
        import pickle
        s3.put_object(Bucket=BUCKET, Key="pickle/data.bin", Body=pickle.dumps({"rows": [1, 2]}, protocol=4))
        proc, events, res = run(doc("pickled", "pickle/"))
        check(res.get("TrainingJobStatus") == "Failed" and "pickled Python objects are refused: unpickling runs code"
              in res.get("FailureReason", "") and outputs("pickled") == [], "a pickle is refused: %s" %
              res.get("FailureReason"))

        kms.revoke_grant(KeyId=data_key_id, GrantId=grants[0]["GrantId"])
        proc, events, res = run(doc("revoked", "fernet/"))
        reason = res.get("FailureReason", "")
        check(proc.returncode == 1 and res.get("TrainingJobStatus") == "Failed" and
              "AccessDeniedException" in reason and outputs("revoked") == [],
              "after RevokeGrant the job fails with AccessDenied and writes nothing: %s" % reason)
        kms.create_grant(KeyId=data_key_id, GranteePrincipal=role_arn, Operations=["Decrypt", "GenerateDataKey"])
        nogrant_key = kms.create_key(Policy=key_policy(role_arn, pcr0))["KeyMetadata"]["Arn"]
        proc, events, res = run(doc("nogrant", "fernet/", OutputDataConfig={
            "S3OutputPath": "s3://%s/out/" % BUCKET, "KmsKeyId": nogrant_key}))
        reason = res.get("FailureReason", "")
        check(res.get("TrainingJobStatus") == "Failed" and "AccessDeniedException" in reason and
              "GenerateDataKey" in reason and outputs("nogrant") == [],
              "without a grant on the output key: AccessDenied, nothing written: %s" % reason)

        # A KMS that never answers: the job cannot finish within --max-runtime (10 s: the enclave starts in
        # 0.5 s here, 2.5 s under the sanitizers, and the job must reach its KMS call first).
        hold = wh.Relay(srv.port)
        hold.hold = True
        proc, events, res = run(doc("slow", "fernet/"), runtime="10", kms_endpoint="http://127.0.0.1:%d" % hold.port)
        check(proc.returncode == 1 and res.get("TrainingJobStatus") == "Stopped" and
              res.get("SecondaryStatus") == "MaxRuntimeExceeded" and hold.held.is_set() and outputs("slow") == [],
              "over --max-runtime: Stopped, MaxRuntimeExceeded: %s" % res)
        left = [d for d in os.listdir(p("state")) if d.startswith("i-sim")] if os.path.isdir(p("state")) else []
        check(left == [], "the runner stopped the enclave it started (its state directory is gone): %s" % left)
        # SIGTERM while the job waits on that KMS.
        sp = subprocess.Popen([C, "train-job", "run", "--image", p("train.img"), "--pki", p("pki"), "--state-dir",
                               p("state"), "--memory", "512", "--max-runtime", "120"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        hold.held.clear()
        d = doc("sigterm", "fernet/")
        d["Endpoints"]["kms"] = "http://127.0.0.1:%d" % hold.port
        sp.stdin.write(json.dumps(d))
        sp.stdin.close()
        first = sp.stdout.readline()
        kms_harness.assert_no_secret_in_cmdline(sp.pid, [d["Credentials"]["SecretAccessKey"],
                                                         d["Credentials"]["SessionToken"]])
        hold.held.wait(60)  # the job is at its KMS call
        sp.send_signal(signal.SIGTERM)
        out, err = first + sp.stdout.read(), sp.stderr.read()
        sp.wait(timeout=60)
        res = json.loads(out.splitlines()[-1]) if out.strip() else {}
        check(sp.returncode == 1 and res.get("TrainingJobStatus") == "Stopped" and res.get("SecondaryStatus") ==
              "Stopped" and '"Starting"' in first,
              "SIGTERM: Stopped (exit %s, first line %r): %s %s" % (sp.returncode, first, res, err[-300:]))

        # SIGKILL, which the runner cannot catch (its supervisor's last resort): the launcher was started
        # to stop with it (PR_SET_PDEATHSIG), so the enclave goes too and leaves no state behind.
        sp = subprocess.Popen([C, "train-job", "run", "--image", p("train.img"), "--pki", p("pki"), "--state-dir",
                               p("state"), "--memory", "512", "--max-runtime", "120"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        hold.held.clear()
        d = doc("sigkill", "fernet/")
        d["Endpoints"]["kms"] = "http://127.0.0.1:%d" % hold.port
        sp.stdin.write(json.dumps(d))
        sp.stdin.close()
        hold.held.wait(60)  # the job is at its KMS call: its enclave runs
        running = [e for e in os.listdir(p("state")) if e.startswith("i-sim")]
        sp.kill()
        sp.wait(timeout=60)
        sp.stdout.close()
        sp.stderr.close()

        def enclaves_left():
            return [e for e in os.listdir(p("state")) if e.startswith("i-sim")]
        deadline = time.time() + 30
        while enclaves_left() and time.time() < deadline:  # the launcher stops its enclave, then removes its state
            time.sleep(0.05)
        check(len(running) == 1 and enclaves_left() == [],
              "SIGKILL of the runner stops its enclave too (running %s, left %s)" % (running, enclaves_left()))

        # The job document: bad ones are refused before any enclave starts, or fail the job naming the member.
        def raw_run(text):
            return subprocess.run([C, "train-job", "run", "--image", p("train.img"), "--pki", p("pki"),
                                   "--state-dir", p("state")], input=text, capture_output=True, text=True, timeout=120)
        r = raw_run("{not json")
        check(r.returncode == 1 and r.stdout == "" and r.stderr.strip() ==
              "cloister: error: the job document on stdin is not a JSON object (line 1, column 4)",
              "a document that is not JSON: one line, exit 1, no event: %r" % r.stderr)
        r = raw_run(json.dumps(doc("big", "fernet/", Padding="x" * (64 << 10))))
        check(r.returncode == 1 and "the job document on stdin is over 65536 bytes" in r.stderr and r.stdout == "",
              "a document over 64 KiB is refused: %r" % r.stderr.strip())
        r = raw_run(json.dumps(doc("noep", "fernet/", Endpoints={"kms": "ftp://x", "s3": ep})))
        check(r.returncode == 1 and "Endpoints.kms 'ftp://x' must be an http:// or https:// URL" in r.stderr,
              "an endpoint that is not http(s) is refused: %r" % r.stderr.strip())
        r = subprocess.run([C, "train-job", "run", "--image", p("train.img"), "--max-runtime", "0"],
                           input="{}", capture_output=True, text=True)
        check(r.returncode == 2 and "--max-runtime" in r.stderr, "--max-runtime 0 is a usage error: %r" % r.stderr)
        r = subprocess.run([C, "train-job", "run", "--image", p("train.img"), "--cgroup", "rel"],
                           input="{}", capture_output=True, text=True)
        check(r.returncode == 2 and "--cgroup takes an absolute cgroup v2 directory, or none" in r.stderr,
              "a relative --cgroup is a usage error: %r" % r.stderr)
        d = doc("no-key", "fernet/")
        del d["OutputDataConfig"]["KmsKeyId"]
        proc, events, res = run(d)
        check(proc.returncode == 1 and res.get("FailureReason") == "the job document has no OutputDataConfig.KmsKeyId",
              "a document without KmsKeyId fails the job naming it: %s" % res.get("FailureReason"))
        d = doc("../escape", "fernet/")
        proc, events, res = run(d)
        check(res.get("TrainingJobStatus") == "Failed" and "TrainingJobName must be" in res.get("FailureReason", ""),
              "a job name that is not SageMaker's pattern is refused: %s" % res.get("FailureReason"))

        # The inputs are bounded by the enclave's memory, before anything is read.
        s3.put_object(Bucket=BUCKET, Key="big/blob.csv", Body=b"0" * (9 << 20))
        proc, events, res = run(doc("big-input", "big/"), memory="64")
        reason = res.get("FailureReason", "")
        check(res.get("TrainingJobStatus") == "Failed" and "over the 8388608 an enclave of 64 MiB trains on" in reason
              and "give the job more memory" in reason, "inputs over 1/8 of the enclave's memory: %s" % reason)

        # The enclave's memory limit: an MLP of two hidden layers of 1000 (about a million weights, with
        # Adam's two moments and the gradients some 33 MB of doubles) in an enclave of 24 MiB. The
        # trainer itself (no oneDNN) starts in that; the training cannot.
        big = doc("tiny", "fernet/", HyperParameters={"model": "mlp", "hidden_layers": "1000,1000", "epochs": "1"})
        proc, events, res = run(big, memory="24")
        reason = res.get("FailureReason", "")
        started = any(e.get("SecondaryStatus") == "Training" for e in events)
        check(proc.returncode == 1 and res.get("TrainingJobStatus") == "Failed" and started and
              ("memory limit of 24 MiB" in reason or "out of memory" in reason) and outputs("tiny") == [],
              "the enclave's memory limit holds: the job fails in training, saying so: %s" % reason)

        # What the operator's host and the storage hold: no row, no model in plaintext.
        row = lines[5].encode()
        needles = [row, row[:40], b"mean_radius,", b"cloister.classifier.labels"]
        def scan(*roots):
            hits = []
            for root in roots:
                for dp, _, fs in os.walk(root):
                    for f in fs:
                        try:
                            b = open(os.path.join(dp, f), "rb").read()
                        except OSError:
                            continue
                        hits += [(os.path.join(dp, f), n[:20]) for n in needles if n in b]
            return hits
        roots = [srv.data_dir, p("state")]
        check(scan(*roots) == [], "no CSV row and no ONNX plaintext in the server's data or the runner's state: %s"
              % scan(*roots)[:3])
        os.makedirs(p("state"), exist_ok=True)
        open(p("state", "planted"), "wb").write(b"x" + row + b"x")
        check(scan(*roots) != [], "control: the scan finds a planted plaintext row")
        print("timings of the Fernet job (ms): %s" % timings)


if __name__ == "__main__":
    tmp = tempfile.mkdtemp(prefix="cloister-train-job-")
    try:
        main(tmp)
    except wh.Skip as e:
        print("skip: %s" % e)
        sys.exit(77)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
