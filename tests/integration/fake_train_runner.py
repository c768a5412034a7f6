# SPDX-License-Identifier: Apache-2.0
"""A TEST DOUBLE of the training runner (`cloister train-job run`, built by the trainer branch):
it speaks the runner's side of TRAIN-CONTRACT.md (argv, the job document on stdin, JSON event
lines on stdout, exit 0/1) without an enclave, so that tests/integration/sagemaker_jobs.py can
drive cloister-kms's supervisor through every outcome. What it does is chosen by the job's
hyperparameter `fake_mode`:

  complete   status Downloading/Training/Uploading, log and metric events, the role session's
             identity (STS GetCallerIdentity with the document's credentials) as a log line,
             result Completed; exit 0
  fail       result Failed with the FailureReason a KMS refusal gives; exit 1
  hang       status Training, then waits; SIGTERM -> result Stopped; exit 1
  hang-hard  status Training, ignores SIGTERM and its --max-runtime (the supervisor must kill it)
  garbage    a line that is not JSON, then waits; SIGTERM -> exit 1
  long-line  a line of more than 4096 bytes, then waits; SIGTERM -> exit 1
  die        a diagnostic on stderr, exit 3 without a result

`fake_dir` (a hyperparameter) is where it writes NAME.argv (its argv, JSON), NAME.doc (the
document without its secret values) and NAME.pid (its pid, when it is running) for the test."""
import json
import os
import signal
import sys
import time


def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def main():
    doc = json.loads(sys.stdin.read())
    name = doc["TrainingJobName"]
    hp = doc.get("HyperParameters", {})
    mode = hp.get("fake_mode", "complete")
    out = hp.get("fake_dir")
    if out:
        with open(os.path.join(out, name + ".argv"), "w") as f:
            json.dump(sys.argv[1:], f)
        shown = dict(doc)
        creds = dict(shown["Credentials"])
        creds["SecretAccessKey"] = "len:%d" % len(creds["SecretAccessKey"])
        creds["SessionToken"] = "len:%d" % len(creds["SessionToken"])
        shown["Credentials"] = creds
        with open(os.path.join(out, name + ".doc"), "w") as f:
            json.dump(shown, f)
        with open(os.path.join(out, name + ".pid.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(out, name + ".pid.tmp"), os.path.join(out, name + ".pid"))
    emit(event="status", SecondaryStatus="Downloading", StatusMessage="Downloading input data")
    if mode == "complete":
        import boto3
        c = doc["Credentials"]
        sts = boto3.client("sts", endpoint_url=doc["Endpoints"]["kms"], region_name=doc["Region"],
                           aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                           aws_session_token=c["SessionToken"])
        emit(event="log", message="caller " + sts.get_caller_identity()["Arn"])
        emit(event="status", SecondaryStatus="Training", StatusMessage="Training image download completed. "
             "Training in progress.")
        for epoch in (1, 2):
            emit(event="log", message="epoch %d/2 loss %.4f" % (epoch, 0.5 / epoch))
        emit(event="metric", MetricName="train:accuracy", Value=0.96)
        emit(event="status", SecondaryStatus="Uploading", StatusMessage="Uploading generated training model")
        emit(event="result", TrainingJobStatus="Completed", SecondaryStatus="Completed",
             ModelArtifacts={"S3ModelArtifacts": doc["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/" + name +
                             "/output/model.sealed"},
             FinalMetricDataList=[{"MetricName": "test:accuracy", "Value": 0.9735}],
             Timings={"enclave_start_ms": 120, "key_release_ms": 8, "transfer_ms": 30, "training_ms": 400,
                      "total_ms": 600})
        return 0
    if mode == "fail":
        emit(event="result", TrainingJobStatus="Failed", SecondaryStatus="Failed",
             FailureReason="AccessDeniedException: User: arn:aws:sts::111122223333:assumed-role/trainer/" + name +
             " is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/x")
        return 1
    if mode == "die":
        sys.stderr.write("fake runner: starting\nfake runner: the enclave image could not be loaded\n")
        return 3
    if mode == "garbage":
        sys.stdout.write("this is not json \x01 at all\n")
        sys.stdout.flush()
    if mode == "long-line":
        sys.stdout.write("{" + "x" * 5000 + "\n")
        sys.stdout.flush()
    if mode == "hang-hard":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopped = []
    if mode == "hang":
        signal.signal(signal.SIGTERM, lambda *a: stopped.append(1))
    emit(event="status", SecondaryStatus="Training", StatusMessage="Training in progress")
    while not stopped:
        signal.pause()
    emit(event="result", TrainingJobStatus="Stopped", SecondaryStatus="Stopped")
    return 1


if __name__ == "__main__":
    sys.exit(main())
