# SPDX-License-Identifier: Apache-2.0
"""SageMaker's training-job API and CloudWatch Logs' reads of a job's log in cloister-kms
(docs/sagemaker.md), through Debian's boto3 `sagemaker` and `logs` clients and the aws CLI, against
a --dev server of this build whose training.runner is tests/integration/fake_train_runner.py, a
TEST DOUBLE of the runner (the real `cloister train-job run` is the trainer branch's; its
end-to-end test comes with it). Checked: create/describe/list/stop, every refusal with its __type
and message, iam:PassRole and the role's trust in sagemaker.amazonaws.com (and that no SigV4
caller is that service), the status transitions, the supervisor's outcomes (completed, failed,
died, broke the protocol, overstayed MaxRuntimeInSeconds), training.max_jobs, a restart failing
the jobs that ran, and the job's log through GetLogEvents and DescribeLogStreams."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

ACCT = "111122223333"
HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_RUNNER = os.path.join(HERE, "fake_train_runner.py")
TRUST_SAGEMAKER = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
TRUST_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCT}, "Action": "sts:AssumeRole"}]})
ROLE = "arn:aws:iam::%s:role/trainer" % ACCT
# Generous: the fake runner is a Python process (its `complete` mode imports boto3: ~1 s).
WAIT = 60


def client(service, endpoint, key="test", secret="test"):
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name="us-east-1",
                                          aws_access_key_id=key, aws_secret_access_key=secret,
                                          config=Config(retries={"max_attempts": 1}))


class Server:
    def __init__(self, tmp, max_jobs=8, data=None):
        self.tmp = tmp
        self.images = os.path.join(tmp, "images")
        self.fake = os.path.join(tmp, "fake")
        os.makedirs(self.images, exist_ok=True)
        os.makedirs(self.fake, exist_ok=True)
        with open(os.path.join(self.images, "trainer.eif"), "wb") as f:
            f.write(b"not a real image: the test double does not start it")
        cfg = os.path.join(tmp, "training.json")
        with open(cfg, "w") as f:
            json.dump({"runner": [sys.executable, FAKE_RUNNER], "images_dir": self.images, "max_jobs": max_jobs,
                       "max_memory_mib": 2048, "stop_grace_seconds": 1}, f)
        self.srv = kms_harness.KmsServer(data or os.path.join(tmp, "data"), ["--training", cfg])
        self.endpoint = self.srv.endpoint
        self.sm = client("sagemaker", self.endpoint)
        self.logs = client("logs", self.endpoint)
        self.iam = client("iam", self.endpoint)


def job_request(name, mode="complete", **over):
    req = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "trainer.eif", "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {"model": "logreg", "fake_mode": mode},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://sagemaker-data/wdbc/", "S3DataDistributionType":
            "FullyReplicated"}}, "ContentType": "text/csv"}],
        "OutputDataConfig": {"S3OutputPath": "s3://sagemaker-data/out/",
                             "KmsKeyId": "arn:aws:kms:us-east-1:%s:key/00000000-0000-4000-8000-000000000000" % ACCT},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    for k, v in over.items():
        req[k] = v
    return req


class SageMakerJobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cloister-sagemaker-")
        cls.s = Server(cls.tmp)
        cls.s.iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=TRUST_SAGEMAKER)
        cls.s.iam.create_role(RoleName="untrusting", AssumeRolePolicyDocument=TRUST_ACCOUNT)

    @classmethod
    def tearDownClass(cls):
        rc = cls.s.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        # A clean stop, its runners killed (under the sanitizers: no leak, no error report).
        assert rc == 0, "cloister-kms exited with %s" % rc

    def fake_hp(self, mode):
        return {"model": "logreg", "fake_mode": mode, "fake_dir": self.s.fake}

    def create(self, name, mode="complete", **over):
        over.setdefault("HyperParameters", self.fake_hp(mode))
        return self.s.sm.create_training_job(**job_request(name, mode, **over))

    def wait_status(self, name, statuses, sm=None):
        """Polls DescribeTrainingJob until the job's status is one of statuses (the condition waited
        on; the bound is a failure, not a timing)."""
        deadline = time.monotonic() + WAIT
        while True:
            d = (sm or self.s.sm).describe_training_job(TrainingJobName=name)
            if d["TrainingJobStatus"] in statuses:
                return d
            if time.monotonic() > deadline:
                self.fail("job %s still %s after %d s" % (name, d["TrainingJobStatus"], WAIT))
            time.sleep(0.05)

    def wait_secondary(self, name, secondary):
        deadline = time.monotonic() + WAIT
        while True:
            d = self.s.sm.describe_training_job(TrainingJobName=name)
            if d["SecondaryStatus"] == secondary:
                return d
            if time.monotonic() > deadline:
                self.fail("job %s still %s after %d s" % (name, d["SecondaryStatus"], WAIT))
            time.sleep(0.05)

    def refused(self, code, message, fn, **kw):
        from botocore.exceptions import ClientError
        with self.assertRaises(ClientError) as cm:
            fn(**kw)
        err = cm.exception.response["Error"]
        self.assertEqual(err["Code"], code, err)
        self.assertIn(message, err["Message"])
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400 if code != "x" else 0)
        return err["Message"]

    # --- a job that completes ---------------------------------------------------------------

    def test_complete(self):
        arn = self.create("job-complete")["TrainingJobArn"]
        self.assertEqual(arn, "arn:aws:sagemaker:us-east-1:%s:training-job/job-complete" % ACCT)
        d = self.wait_status("job-complete", ["Completed", "Failed", "Stopped"])
        self.assertEqual(d["TrainingJobStatus"], "Completed", d.get("FailureReason"))
        self.assertEqual(d["SecondaryStatus"], "Completed")
        self.assertEqual([t["Status"] for t in d["SecondaryStatusTransitions"]],
                         ["Starting", "Downloading", "Training", "Uploading", "Completed"])
        for t in d["SecondaryStatusTransitions"]:
            self.assertIn("EndTime", t)
            self.assertLessEqual(t["StartTime"], t["EndTime"])
        self.assertEqual(d["SecondaryStatusTransitions"][2]["StatusMessage"],
                         "Training image download completed. Training in progress.")
        self.assertEqual(d["ModelArtifacts"]["S3ModelArtifacts"], "s3://sagemaker-data/out/job-complete/output/model.sealed")
        metrics = {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}
        self.assertEqual(metrics, {"test:accuracy": 0.9735, "train:accuracy": 0.96})
        self.assertGreaterEqual(d["TrainingTimeInSeconds"], 1)
        self.assertEqual(d["BillableTimeInSeconds"], d["TrainingTimeInSeconds"])
        self.assertLessEqual(d["CreationTime"], d["TrainingStartTime"])
        self.assertLessEqual(d["TrainingStartTime"], d["TrainingEndTime"])
        self.assertEqual(d["LastModifiedTime"], d["TrainingEndTime"])
        # The request's fields, echoed.
        self.assertEqual(d["RoleArn"], ROLE)
        self.assertEqual(d["HyperParameters"]["fake_mode"], "complete")
        self.assertEqual(d["ResourceConfig"]["InstanceType"], "ml.m5.xlarge")
        self.assertEqual(d["StoppingCondition"], {"MaxRuntimeInSeconds": 60})
        self.assertEqual(d["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"], "s3://sagemaker-data/wdbc/")
        self.assertNotIn("FailureReason", d)
        # The runner's argv: ml.m5.xlarge's 16 GiB capped at training.max_memory_mib, no secret.
        with open(os.path.join(self.s.fake, "job-complete.argv")) as f:
            argv = json.load(f)
        self.assertEqual(argv, ["--image", os.path.join(self.s.images, "trainer.eif"), "--memory", "2048",
                                "--max-runtime", "60"])
        with open(os.path.join(self.s.fake, "job-complete.doc")) as f:
            doc = json.load(f)
        self.assertEqual(doc["Endpoints"], {"kms": self.s.endpoint, "s3": self.s.endpoint})
        self.assertEqual(doc["Region"], "us-east-1")
        self.assertTrue(doc["Credentials"]["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(doc["Credentials"]["SecretAccessKey"], "len:40")
        # MaxRuntime 60 + grace 1 + 300: above STS' minimum of 900, so 900.
        self.assertAlmostEqual(doc["Credentials"]["Expiration"] - d["CreationTime"].timestamp(), 900, delta=5)
        # The job's log: the role session's identity (the service assumed the role, named after
        # the job), the epochs and the timings, through CloudWatch Logs.
        stream = "job-complete/algo-1-%d" % int(d["CreationTime"].timestamp())
        ev = self.s.logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                                        startFromHead=True)
        msgs = [e["message"] for e in ev["events"]]
        self.assertEqual(msgs, ["caller arn:aws:sts::%s:assumed-role/trainer/job-complete" % ACCT,
                                "epoch 1/2 loss 0.5000", "epoch 2/2 loss 0.2500",
                                "timings: enclave_start_ms=120 key_release_ms=8 transfer_ms=30 training_ms=400 "
                                "total_ms=600"])
        # Paging: two at a time from the head, then the forward token.
        ev = self.s.logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                                        startFromHead=True, limit=2)
        self.assertEqual([e["message"] for e in ev["events"]], msgs[:2])
        ev = self.s.logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                                        nextToken=ev["nextForwardToken"], limit=2)
        self.assertEqual([e["message"] for e in ev["events"]], msgs[2:])
        # Without startFromHead: the latest ones.
        ev = self.s.logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, limit=1)
        self.assertEqual([e["message"] for e in ev["events"]], msgs[3:])
        streams = self.s.logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                                   logStreamNamePrefix="job-complete/")["logStreams"]
        self.assertEqual([s["logStreamName"] for s in streams], [stream])
        self.assertEqual(streams[0]["arn"],
                         "arn:aws:logs:us-east-1:%s:log-group:/aws/sagemaker/TrainingJobs:log-stream:%s" % (ACCT, stream))
        # The aws CLI's logs commands.
        env = dict(os.environ, **kms_harness.DEV_ENV)
        out = subprocess.run([kms_harness.AWS_CLI, "--endpoint-url", self.s.endpoint, "logs", "get-log-events",
                              "--log-group-name", "/aws/sagemaker/TrainingJobs", "--log-stream-name", stream,
                              "--start-from-head"], env=env, capture_output=True, text=True, check=True).stdout
        self.assertEqual([e["message"] for e in json.loads(out)["events"]], msgs)
        self.refused("ResourceNotFoundException", "The specified log stream does not exist.",
                     self.s.logs.get_log_events, logGroupName="/aws/sagemaker/TrainingJobs",
                     logStreamName="job-complete/algo-1-1")
        self.refused("ResourceNotFoundException", "The specified log group does not exist.",
                     self.s.logs.get_log_events, logGroupName="/aws/lambda/x", logStreamName=stream)
        self.refused("InvalidParameterException", "The specified nextToken is invalid.",
                     self.s.logs.get_log_events, logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                     nextToken="x/1")
        # The audit log: the request's lines and the service's AssumeRole, under one request id;
        # never the request body (hyperparameters).
        with open(os.path.join(self.tmp, "data", "audit.log")) as f:
            lines = [json.loads(l) for l in f if "job-complete" in l or "sts:AssumeRole" in l]
        mine = [l for l in lines if l.get("resource") == arn]
        self.assertEqual([l["outcome"] for l in mine if l["operation"] == "sagemaker:CreateTrainingJob"], ["ok"])
        rid = [l for l in mine if l["operation"] == "sagemaker:CreateTrainingJob"][0]["request_id"]
        assumed = [l for l in lines if l["operation"] == "sts:AssumeRole" and l["request_id"] == rid]
        self.assertEqual(len(assumed), 1)
        self.assertEqual((assumed[0]["principal"], assumed[0]["resource"]), ("sagemaker.amazonaws.com", ROLE))
        with open(os.path.join(self.tmp, "data", "audit.log")) as f:
            self.assertNotIn("fake_mode", f.read())
        # A second job of the name.
        self.refused("ResourceInUse", "a training job with this name already exists (%s)" % arn, self.create,
                     name="job-complete")
        self.refused("ValidationException", "The request was rejected because the training job is in status "
                     "Completed.", self.s.sm.stop_training_job, TrainingJobName="job-complete")

    # --- refusals ------------------------------------------------------------------------------

    def test_refusals(self):
        sm = self.s.sm
        base = job_request("refused")

        def with_(**kw):
            req = json.loads(json.dumps(base))
            for path, v in kw.items():
                o = req
                keys = path.split("__")
                for k in keys[:-1]:
                    o = o[k]
                if v is None:
                    del o[keys[-1]]
                else:
                    o[keys[-1]] = v
            return req
        cases = [
            (with_(TrainingJobName="bad_name"), "Value 'bad_name' at 'trainingJobName' failed to satisfy constraint: "
             "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
            (with_(TrainingJobName="a" * 64), "Member must have length between 1 and 63"),
            (with_(AlgorithmSpecification__TrainingImage="../etc/passwd"),
             "AlgorithmSpecification.TrainingImage '../etc/passwd' must be the file name of an enclave image in %s "
             "(no '/', no '..'" % self.s.images),
            (with_(AlgorithmSpecification__TrainingImage="missing.eif"),
             "AlgorithmSpecification.TrainingImage 'missing.eif': there is no such enclave image file in %s" %
             self.s.images),
            (with_(AlgorithmSpecification__TrainingImage=None),
             "AlgorithmSpecification.TrainingImage is required here: the file name of a Cloister enclave image in "
             "the training images directory %s" % self.s.images),
            (with_(AlgorithmSpecification__TrainingInputMode="Pipe"),
             "AlgorithmSpecification.TrainingInputMode Pipe is not supported by this server: give File"),
            (with_(AlgorithmSpecification__AlgorithmName="xgboost"),
             "AlgorithmSpecification.AlgorithmName is not supported by this server: name the enclave image in "
             "TrainingImage"),
            (with_(OutputDataConfig__KmsKeyId=None), "OutputDataConfig.KmsKeyId is required here: the model is "
             "sealed under this KMS key"),
            (with_(OutputDataConfig__S3OutputPath="https://example.com/out"),
             "OutputDataConfig.S3OutputPath 'https://example.com/out' must be an S3 URI: s3://BUCKET/PREFIX"),
            (with_(ResourceConfig__InstanceCount=2), "ResourceConfig.InstanceCount must be 1 here: a job runs in "
             "one enclave"),
            (with_(ResourceConfig__InstanceType="ml.x9.huge"),
             "Value 'ml.x9.huge' at 'resourceConfig.instanceType' failed to satisfy constraint"),
            (with_(ResourceConfig__InstanceType=None), "ResourceConfig.InstanceType is required here"),
            (with_(ResourceConfig__KeepAlivePeriodInSeconds=60),
             "ResourceConfig.KeepAlivePeriodInSeconds is not supported by this server: there are no warm pools "
             "here"),
            (with_(StoppingCondition__MaxRuntimeInSeconds=28 * 86400 + 1),
             "StoppingCondition.MaxRuntimeInSeconds must be 1 to 2419200 (28 days)"),
            (with_(StoppingCondition__MaxWaitTimeInSeconds=100),
             "StoppingCondition.MaxWaitTimeInSeconds is not supported by this server"),
            (with_(RoleArn="arn:aws:iam::444455556666:role/trainer"),
             "RoleArn arn:aws:iam::444455556666:role/trainer must be a role of the caller's account %s" % ACCT),
            (with_(RoleArn="arn:aws:iam::%s:role/untrusting" % ACCT),
             "Could not assume role arn:aws:iam::%s:role/untrusting. Please ensure that the role exists and allows "
             "principal 'sagemaker.amazonaws.com' to assume the role." % ACCT),
            (with_(RoleArn="arn:aws:iam::%s:role/nobody" % ACCT),
             "Could not assume role arn:aws:iam::%s:role/nobody." % ACCT),
            (with_(HyperParameters={"k%d" % i: "v" for i in range(101)}),
             "Value at 'hyperParameters' failed to satisfy constraint: Member must have length less than or equal "
             "to 100"),
            (with_(HyperParameters={"k": "v" * 2501}),
             "HyperParameters 'k': the value must be a string of at most 2500 characters"),
            (with_(InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "ManifestFile", "S3Uri": "s3://b/m"}}}]),
             "InputDataConfig[0].DataSource.S3DataSource.S3DataType ManifestFile is not supported by this server: "
             "give S3Prefix"),
            (with_(InputDataConfig=[{"ChannelName": "train", "DataSource": {"FileSystemDataSource": {
                "FileSystemId": "fs-0123456789", "FileSystemAccessMode": "ro", "FileSystemType": "EFS",
                "DirectoryPath": "/d"}}}]),
             "InputDataConfig[0].DataSource.FileSystemDataSource is not supported by this server: the enclave "
             "reads its inputs from S3 only"),
            (with_(InputDataConfig=[{"ChannelName": "train", "CompressionType": "Gzip", "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/p"}}}]),
             "InputDataConfig[0].CompressionType Gzip is not supported by this server: give None"),
            (with_(VpcConfig={"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}),
             "VpcConfig is not supported by this server"),
            (with_(EnableManagedSpotTraining=True), "EnableManagedSpotTraining is not supported by this server: "
             "there are no spot instances here"),
            (with_(Environment={"A": "b"}), "Environment is not supported by this server"),
        ]
        for req, message in cases:
            with self.subTest(message=message[:60]):
                self.refused("ValidationException", message, sm.create_training_job, **req)
        # Refused requests left nothing behind.
        self.refused("ResourceNotFound", "Requested resource not found.", sm.describe_training_job,
                     TrainingJobName="refused")
        self.refused("ValidationException", "Value 'no_such' at 'trainingJobName' failed to satisfy constraint",
                     sm.describe_training_job, TrainingJobName="no_such")
        self.refused("ResourceNotFound", "Requested resource not found.", sm.stop_training_job,
                     TrainingJobName="never-made")
        # Ignored members are accepted (Tags, EnableNetworkIsolation, MetricDefinitions).
        req = with_(TrainingJobName="ignored-fields", Tags=[{"Key": "k", "Value": "v"}], EnableNetworkIsolation=True)
        req["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "m", "Regex": "m=(.*)"}]
        req["HyperParameters"] = self.fake_hp("fail")
        sm.create_training_job(**req)
        self.wait_status("ignored-fields", ["Failed"])

    # --- who may --------------------------------------------------------------------------------

    def user(self, name, policy=None, managed=None):
        iam = self.s.iam
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        if managed is not None:
            iam.attach_user_policy(UserName=name, PolicyArn=managed)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return client("sagemaker", self.s.endpoint, k["AccessKeyId"], k["SecretAccessKey"])

    def test_authorization(self):
        nobody = self.user("nobody")
        self.refused("AccessDeniedException", "User: arn:aws:iam::%s:user/nobody is not authorized to perform: "
                     "sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:%s:training-job/denied "
                     "because no identity-based policy allows the action" % (ACCT, ACCT),
                     nobody.create_training_job, **job_request("denied"))
        no_pass = self.user("no-pass", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]})
        self.refused("AccessDeniedException", "User: arn:aws:iam::%s:user/no-pass is not authorized to perform: "
                     "iam:PassRole on resource: %s because no identity-based policy allows the action" % (ACCT, ROLE),
                     no_pass.create_training_job, **job_request("denied"))
        # PassRole for another service only: the condition iam:PassedToService does not hold.
        other = self.user("pass-elsewhere", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
             "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}]})
        self.refused("AccessDeniedException", "iam:PassRole on resource: %s" % ROLE, other.create_training_job,
                     **job_request("denied"))
        self.refused("ResourceNotFound", "Requested resource not found.", self.s.sm.describe_training_job,
                     TrainingJobName="denied")
        # AmazonSageMakerFullAccess, as AWS defines it: sagemaker:* and iam:PassRole to SageMaker.
        full = self.user("scientist", managed="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
        full.create_training_job(**job_request("by-scientist", HyperParameters=self.fake_hp("fail")))
        d = self.wait_status("by-scientist", ["Failed"], sm=full)
        self.assertTrue(d["FailureReason"].startswith("AccessDeniedException: User: "), d["FailureReason"])
        self.refused("AccessDeniedException", "sagemaker:DescribeTrainingJob on resource: "
                     "arn:aws:sagemaker:us-east-1:%s:training-job/by-scientist" % ACCT,
                     nobody.describe_training_job, TrainingJobName="by-scientist")
        self.refused("AccessDeniedException", "sagemaker:ListTrainingJobs on resource: *", nobody.list_training_jobs)
        # No SigV4 caller is the service: the administrator cannot assume a role that trusts only
        # sagemaker.amazonaws.com.
        from botocore.exceptions import ClientError
        sts = client("sts", self.s.endpoint)
        with self.assertRaises(ClientError) as cm:
            sts.assume_role(RoleArn=ROLE, RoleSessionName="pretend")
        self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDenied")

    # --- the supervisor's outcomes ------------------------------------------------------------

    def test_failed_died_and_garbage(self):
        self.create("job-fail", "fail")
        self.create("job-die", "die")
        d = self.wait_status("job-fail", ["Completed", "Failed", "Stopped"])
        self.assertEqual((d["TrainingJobStatus"], d["SecondaryStatus"]), ("Failed", "Failed"))
        self.assertTrue(d["FailureReason"].startswith("AccessDeniedException: User: arn:aws:sts::"), d)
        self.assertNotIn("ModelArtifacts", d)
        d = self.wait_status("job-die", ["Completed", "Failed", "Stopped"])
        self.assertEqual(d["TrainingJobStatus"], "Failed")
        self.assertEqual(d["FailureReason"], "the training runner exited with status 3 without reporting a result: "
                         "fake runner: the enclave image could not be loaded")
        self.create("job-garbage", "garbage")
        d = self.wait_status("job-garbage", ["Completed", "Failed", "Stopped"])
        self.assertEqual(d["FailureReason"], "the training runner broke its event protocol (not a JSON object with "
                         "an \"event\"): \"this is not json ? at all\"")
        self.create("job-long", "long-line")
        d = self.wait_status("job-long", ["Completed", "Failed", "Stopped"])
        self.assertTrue(d["FailureReason"].startswith("the training runner broke its event protocol (a line longer "
                                                      "than 4096 bytes): \"{xxxx"), d["FailureReason"])

    def test_stop(self):
        self.create("job-hang-1", "hang")
        self.wait_secondary("job-hang-1", "Training")
        self.s.sm.stop_training_job(TrainingJobName="job-hang-1")
        d = self.s.sm.describe_training_job(TrainingJobName="job-hang-1")
        self.assertIn(d["TrainingJobStatus"], ["Stopping", "Stopped"])
        d = self.wait_status("job-hang-1", ["Stopped", "Failed", "Completed"])
        self.assertEqual((d["TrainingJobStatus"], d["SecondaryStatus"]), ("Stopped", "Stopped"))
        self.assertEqual([t["Status"] for t in d["SecondaryStatusTransitions"]],
                         ["Starting", "Downloading", "Training", "Stopping", "Stopped"])
        self.refused("ValidationException", "The request was rejected because the training job is in status "
                     "Stopped.", self.s.sm.stop_training_job, TrainingJobName="job-hang-1")

    def test_max_runtime(self):
        # The runner ignores SIGTERM and its own --max-runtime: the supervisor sends SIGTERM after
        # MaxRuntimeInSeconds and the grace period (1 s here), SIGKILL a grace period later.
        self.create("job-overstay", "hang-hard", StoppingCondition={"MaxRuntimeInSeconds": 1})
        d = self.wait_status("job-overstay", ["Stopped", "Failed", "Completed"])
        self.assertEqual((d["TrainingJobStatus"], d["SecondaryStatus"]), ("Stopped", "MaxRuntimeExceeded"))
        self.assertEqual(d["SecondaryStatusTransitions"][-1]["StatusMessage"],
                         "Training job runtime exceeded MaxRuntimeInSeconds provided")

    def test_list(self):
        for n in ("list-a", "list-b", "list-c"):
            self.create(n, "fail")
        for n in ("list-a", "list-b", "list-c"):
            self.wait_status(n, ["Failed"])
        sm = self.s.sm
        got = sm.list_training_jobs(NameContains="LIST-", SortBy="Name", SortOrder="Ascending")
        self.assertEqual([j["TrainingJobName"] for j in got["TrainingJobSummaries"]], ["list-a", "list-b", "list-c"])
        j = got["TrainingJobSummaries"][0]
        self.assertEqual(j["TrainingJobArn"], "arn:aws:sagemaker:us-east-1:%s:training-job/list-a" % ACCT)
        self.assertEqual(j["TrainingJobStatus"], "Failed")
        self.assertIn("TrainingEndTime", j)
        page = sm.list_training_jobs(NameContains="list-", SortBy="Name", SortOrder="Descending", MaxResults=2)
        self.assertEqual([j["TrainingJobName"] for j in page["TrainingJobSummaries"]], ["list-c", "list-b"])
        rest = sm.list_training_jobs(NameContains="list-", SortBy="Name", SortOrder="Descending", MaxResults=2,
                                     NextToken=page["NextToken"])
        self.assertEqual([j["TrainingJobName"] for j in rest["TrainingJobSummaries"]], ["list-a"])
        self.assertNotIn("NextToken", rest)
        # Default order: newest first.
        got = sm.list_training_jobs(NameContains="list-")
        self.assertEqual([j["TrainingJobName"] for j in got["TrainingJobSummaries"]][0], "list-c")
        # Timestamps go as whole seconds (botocore's JSON serialiser): bounds a day apart.
        created = sm.describe_training_job(TrainingJobName="list-b")["CreationTime"].timestamp()
        got = sm.list_training_jobs(NameContains="list-", CreationTimeAfter=created - 86400)
        self.assertEqual(len(got["TrainingJobSummaries"]), 3)
        got = sm.list_training_jobs(NameContains="list-", CreationTimeAfter=created + 86400)
        self.assertEqual(got["TrainingJobSummaries"], [])
        got = sm.list_training_jobs(NameContains="list-", CreationTimeBefore=created - 86400)
        self.assertEqual(got["TrainingJobSummaries"], [])
        got = sm.list_training_jobs(StatusEquals="Completed", NameContains="list-")
        self.assertEqual(got["TrainingJobSummaries"], [])
        paginated = [j["TrainingJobName"] for p in sm.get_paginator("list_training_jobs").paginate(
            NameContains="list-", SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 1})
            for j in p["TrainingJobSummaries"]]
        self.assertEqual(paginated, ["list-a", "list-b", "list-c"])
        self.refused("ValidationException", "Value 'Size' at 'SortBy' failed to satisfy constraint",
                     sm.list_training_jobs, SortBy="Size")
        self.refused("ValidationException", "WarmPoolStatusEquals is not supported by this server",
                     sm.list_training_jobs, WarmPoolStatusEquals="Available")


    # --- cloister train-job ----------------------------------------------------------------------

    def cli(self, *args, check=True):
        env = dict(os.environ, **kms_harness.DEV_ENV)
        p = subprocess.run([kms_harness.CLI_BIN, "train-job", *args, "--endpoint-url", self.s.endpoint], env=env,
                           capture_output=True, text=True, timeout=WAIT)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_cli(self):
        req = job_request("cli-job", HyperParameters=self.fake_hp("complete"))
        path = os.path.join(self.tmp, "cli-job.json")
        with open(path, "w") as f:
            json.dump(req, f)
        out = json.loads(self.cli("create", "--cli-input-json", "file://" + path).stdout)
        self.assertEqual(out["TrainingJobArn"], "arn:aws:sagemaker:us-east-1:%s:training-job/cli-job" % ACCT)
        # --follow prints the log until the job has ended, then its status on stderr.
        p = self.cli("logs", "--training-job-name", "cli-job", "--follow")
        self.assertEqual(p.stdout.splitlines()[:3], ["caller arn:aws:sts::%s:assumed-role/trainer/cli-job" % ACCT,
                                                     "epoch 1/2 loss 0.5000", "epoch 2/2 loss 0.2500"])
        self.assertEqual(p.stderr, "training job cli-job: Completed\n")
        d = json.loads(self.cli("describe", "--training-job-name", "cli-job").stdout)
        self.assertEqual(d["TrainingJobStatus"], "Completed")
        self.assertEqual(d["FinalMetricDataList"][0]["MetricName"], "test:accuracy")
        # Flags for the common fields.
        self.cli("create", "--training-job-name", "cli-flags", "--image", "trainer.eif", "--role-arn", ROLE,
                 "--input", "s3://sagemaker-data/wdbc/", "--output-path", "s3://sagemaker-data/out/",
                 "--kms-key-id", "alias/model", "--instance-type", "ml.c5.xlarge", "--max-runtime", "120",
                 "--hyperparameter", "fake_mode=hang", "--hyperparameter", "fake_dir=" + self.s.fake)
        self.wait_secondary("cli-flags", "Training")
        with open(os.path.join(self.s.fake, "cli-flags.argv")) as f:
            self.assertEqual(json.load(f)[2:], ["--memory", "2048", "--max-runtime", "120"])
        d = self.s.sm.describe_training_job(TrainingJobName="cli-flags")
        self.assertEqual(d["InputDataConfig"][0]["ChannelName"], "train")
        self.assertEqual(d["ResourceConfig"], {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1})
        self.cli("stop", "--training-job-name", "cli-flags")
        self.wait_status("cli-flags", ["Stopped"])
        listed = json.loads(self.cli("list", "--name-contains", "cli-").stdout)["TrainingJobSummaries"]
        self.assertEqual({j["TrainingJobName"]: j["TrainingJobStatus"] for j in listed},
                         {"cli-job": "Completed", "cli-flags": "Stopped"})
        p = self.cli("describe", "--training-job-name", "cli-none", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "cloister: error: ResourceNotFound: Requested resource not found. (HTTP 400)\n")
        p = self.cli("stop", "--training-job-name", "cli-flags", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("ValidationException: The request was rejected because the training job is in status "
                      "Stopped.", p.stderr)
        p = self.cli("create", "--image", "trainer.eif", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no training job name: give --training-job-name or TrainingJobName in --cli-input-json",
                      p.stderr)


class Configuration(unittest.TestCase):
    def test_unconfigured_and_bad_settings(self):
        # Without training.images_dir every job is refused, saying why.
        with kms_harness.kms_server() as srv:
            iam = client("iam", srv.endpoint)
            iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=TRUST_SAGEMAKER)
            from botocore.exceptions import ClientError
            with self.assertRaises(ClientError) as cm:
                client("sagemaker", srv.endpoint).create_training_job(**job_request("no-images"))
            self.assertEqual(cm.exception.response["Error"]["Code"], "ValidationException")
            self.assertEqual(cm.exception.response["Error"]["Message"],
                             "AlgorithmSpecification.TrainingImage trainer.eif: this server has no training images "
                             "directory (training.images_dir of cloister-kms's configuration): training jobs cannot "
                             "run here")
        tmp = tempfile.mkdtemp(prefix="cloister-sagemaker-cfg-")
        try:
            bad = os.path.join(tmp, "training.json")
            with open(bad, "w") as f:
                json.dump({"max_jobs": 0}, f)
            for args, needle in [
                    (["--dev", "--data", os.path.join(tmp, "d"), "--training", bad], "--training %s: training: 'max_jobs' must be an integer 1..1024" % bad),
                    (["--dev", "--data", os.path.join(tmp, "d"), "--training", os.path.join(tmp, "none.json")], "--training %s" % os.path.join(tmp, "none.json")),
                    (["--config", bad, "--training", bad], "--config cannot be combined with --training")]:
                p = subprocess.run([kms_harness.KMS_BIN, *args], capture_output=True, text=True, timeout=WAIT)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(needle, p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Restart(unittest.TestCase):
    def test_restart_fails_running_jobs(self):
        tmp = tempfile.mkdtemp(prefix="cloister-sagemaker-restart-")
        try:
            s = Server(tmp, max_jobs=1)
            s.iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=TRUST_SAGEMAKER)
            s.sm.create_training_job(**job_request("job-orphan", "hang", HyperParameters={
                "fake_mode": "hang", "fake_dir": s.fake}))
            # training.max_jobs is 1 here: a second job is refused while the first runs.
            from botocore.exceptions import ClientError
            with self.assertRaises(ClientError) as cm:
                s.sm.create_training_job(**job_request("job-second", "hang"))
            self.assertEqual(cm.exception.response["Error"]["Code"], "ResourceLimitExceeded")
            self.assertEqual(cm.exception.response["Error"]["Message"],
                             "1 training jobs are running, the most this server runs at once (training.max_jobs); "
                             "wait for one to end or stop one")
            pidfile = os.path.join(s.fake, "job-orphan.pid")
            deadline = time.monotonic() + WAIT
            while not os.path.exists(pidfile):
                self.assertLess(time.monotonic(), deadline, "the runner did not start")
                time.sleep(0.05)
            with open(pidfile) as f:
                pid = int(f.read())
            s.srv.kill9()
            os.killpg(pid, signal.SIGKILL)  # the runner's own process group
            s2 = Server(tmp, data=os.path.join(tmp, "data"))
            try:
                d = s2.sm.describe_training_job(TrainingJobName="job-orphan")
                self.assertEqual((d["TrainingJobStatus"], d["SecondaryStatus"]), ("Failed", "Failed"))
                self.assertEqual(d["FailureReason"], "the service restarted while the job ran")
            finally:
                self.assertEqual(s2.srv.stop(), 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
