# SPDX-License-Identifier: Apache-2.0
"""Starts and stops servers for the KMS integration tests: cloister-kms --dev
on a port the kernel picks (read back from its first line), or moto_server on
a free port (bench/kms.py's peer only: Debian has no moto, and no test needs
it). Nothing is left running: the context managers stop what they started, by
pid. Also: boto3 clients, the requests Debian 12's botocore cannot make
(NewerKms), and a proxy that checks requests with botocore (BotocoreChecker)."""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

BUILD = os.environ.get("CLOISTER_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
KMS_BIN = os.path.join(BUILD, "bin", "cloister-kms")
CLI_BIN = os.environ.get("CLOISTER_BIN", os.path.join(BUILD, "bin", "cloister"))
# Debian's aws CLI (awscli 2.9, on /usr/bin/python3's botocore), by its path as tests/CMakeLists.txt
# gives it: an aws earlier on PATH may be another installation with other versions. It predates
# AWS_ENDPOINT_URL: every call passes --endpoint-url.
AWS_CLI = os.environ.get("AWS_CLI", "/usr/bin/aws")

DEV_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1"}


def _stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def principal(access_key_id, secret, arn):
    return {"access_key_id": access_key_id, "secret": secret, "arn": arn}


def write_principals(path, principals):
    """The --principals-file of cloister-kms --dev: mode 0600 from its creation on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(principals, f)
    return path


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def assert_no_secret_in_cmdline(pid, secrets):
    """Every user of the machine can read /proc/PID/cmdline (docs/security.md, finding 9)."""
    text = cmdline(pid)
    for s in secrets:
        if s in text:
            raise AssertionError("a principal's secret is on process %d's command line: %s" % (pid, text))


class KmsServer:
    """cloister-kms --dev; principals: more principals (principal(...) dicts), given to it in a
    mode-0600 --principals-file, never on its command line (checked once it runs)."""

    def __init__(self, data_dir, extra_args=(), principals=(), env=None):
        self.data_dir = data_dir
        args = [KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data", data_dir, *extra_args]
        if principals:
            os.makedirs(data_dir, exist_ok=True)
            path = os.path.join(data_dir, "principals.json")
            if not os.path.exists(path):
                write_principals(path, list(principals))
            args += ["--principals-file", path]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://127\.0\.0\.1:(\d+)", line)
        if not m:
            _stop(self.proc)
            raise RuntimeError("cloister-kms did not start: %r" % line)
        self.port = int(m.group(2))
        self.endpoint = "%s://127.0.0.1:%d" % (m.group(1), self.port)
        assert_no_secret_in_cmdline(self.proc.pid, [p["secret"] for p in principals])

    def stop(self):
        _stop(self.proc)
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@contextlib.contextmanager
def kms_server(data_dir=None, extra_args=(), principals=(), env=None):
    """env: the server's whole environment (None: this process's)."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="cloister-kms-test-")
        data_dir = os.path.join(tmp, "data")
    srv = KmsServer(data_dir, extra_args, principals, env)
    try:
        yield srv
    finally:
        rc = srv.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if rc not in (0, None, -signal.SIGKILL):
            raise RuntimeError("cloister-kms exited with %s" % rc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


def boto_client(endpoint, **kw):
    """A boto3 KMS client, in a boto3 Session of its own: boto3's default session is not thread-safe
    (boto3 1.26, Debian 12's, fails with KeyError('endpoint_resolver') when threads make clients
    through it at once)."""
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(
        "kms", endpoint_url=endpoint, region_name=kw.pop("region", "us-east-1"),
        aws_access_key_id=kw.pop("key", "test"), aws_secret_access_key=kw.pop("secret", "test"),
        config=Config(retries={"max_attempts": 1}), **kw)


class NewerKms:
    """KMS calls that Debian 12's boto3 1.26 / botocore 1.29.27 cannot make. Its model predates
    parts of the KMS API that cloister-kms implements: the operations RotateKeyOnDemand and
    ListKeyRotations; EnableKeyRotation's RotationPeriodInDays and GetKeyRotationStatus's
    RotationPeriodInDays and NextRotationDate; Decrypt's, GenerateDataKey's, GenerateDataKeyPair's and
    GenerateRandom's Recipient and CiphertextForRecipient; DryRun; DeriveSharedSecret; the
    KeyAgreementAlgorithms of DescribeKey and GetPublicKey. botocore refuses a parameter or operation its
    model lacks and drops the members of an answer that it does not model, so these requests are
    built here as the AWS KMS API Reference gives them (awsJson1_1: a JSON body, blobs in base64),
    signed by botocore's SigV4Auth (independent of cloister-kms's verifier) and sent with
    http.client. An error answer raises botocore's ClientError with the code and message, as a
    client would; blobs in the answer are decoded. Calls read as boto3's:
    NewerKms(endpoint).rotate_key_on_demand(KeyId=k) sends TrentService.RotateKeyOnDemand."""

    # The blob members of the requests and answers the tests send this way (API Reference, each
    # operation's "Request Syntax" and "Response Syntax").
    BLOBS = ("CiphertextBlob", "Plaintext", "CiphertextForRecipient", "Signature", "Mac", "PublicKey", "SharedSecret",
             "PrivateKeyPlaintext", "PrivateKeyCiphertextBlob", "ImportToken", "EncryptedKeyMaterial")

    def __init__(self, endpoint, key="test", secret="test", region="us-east-1", verify=None):
        self.endpoint, self.key, self.secret, self.region, self.verify = endpoint, key, secret, region, verify

    @staticmethod
    def _wire(v):
        import base64
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(v).decode()
        if isinstance(v, dict):
            return {k: NewerKms._wire(x) for k, x in v.items()}
        if isinstance(v, list):
            return [NewerKms._wire(x) for x in v]
        return v

    def call(self, operation, params):
        import base64
        import http.client
        import ssl
        import urllib.parse
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from botocore.exceptions import ClientError
        body = json.dumps(self._wire(params)).encode()
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "TrentService." + operation})
        SigV4Auth(Credentials(self.key, self.secret), "kms", self.region).add_auth(req)
        u = urllib.parse.urlsplit(self.endpoint)
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=60,
                                               context=ssl.create_default_context(cafile=self.verify))
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        answer = json.loads(data) if data else {}
        if r.status != 200:
            # awsJson1_1 errors: "__type" (possibly "namespace#Code") and "message" or "Message".
            raise ClientError({"Error": {"Code": answer.get("__type", "").split("#")[-1],
                                         "Message": answer.get("message", answer.get("Message", ""))},
                               "ResponseMetadata": {"HTTPStatusCode": r.status}}, operation)
        return {k: base64.b64decode(v) if k in self.BLOBS and isinstance(v, str) else v for k, v in answer.items()}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        operation = "".join(part.capitalize() for part in name.split("_"))
        return lambda **params: self.call(operation, params)


class BotocoreChecker:
    """A proxy in front of a KMS endpoint that checks every request passing through it with botocore,
    an implementation independent of libcloister's client and of cloister-kms: the X-Amz-Target
    operation is in botocore's KMS model and its JSON parameters validate against the operation's
    input shape (botocore's ParamValidator: names, types, required members, lengths); the SigV4
    signature is the one botocore's SigV4Auth computes for the request as received (the secret of
    its access key from `secrets`), over exactly the headers it names, and X-Amz-Content-Sha256,
    when sent, is the body's. What fails goes to .problems; the request is forwarded either way, so
    the server's answer reaches the client unchanged. Plain HTTP upstream only."""

    def __init__(self, upstream, secrets=None):
        import http.server
        import threading
        import urllib.parse
        import botocore.session
        self.model = botocore.session.get_session().get_service_model("kms")
        self.secrets = dict(secrets or {"test": "test"})
        self.upstream = urllib.parse.urlsplit(upstream)
        self.problems = []
        self.requests = 0
        self.lock = threading.Lock()
        checker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client uses it

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                checker.check(self.path, self.headers, body)
                status, headers, answer = checker.forward(self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def problem(self, what):
        with self.lock:
            self.problems.append(what)

    def check(self, path, headers, body):
        import hashlib
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from botocore.validate import ParamValidator
        with self.lock:
            self.requests += 1
        target = headers.get("X-Amz-Target", "")
        op = target[len("TrentService."):] if target.startswith("TrentService.") else None
        if op not in self.model.operation_names:
            self.problem("X-Amz-Target %r is not an operation of botocore's KMS model" % target)
        else:
            try:
                params = json.loads(body)
            except ValueError as e:
                params = None
                self.problem("%s: the body is not JSON (%s)" % (op, e))
            if params is not None:
                report = ParamValidator().validate(params, self.model.operation_model(op).input_shape)
                if report.has_errors():
                    self.problem("%s: %s" % (op, report.generate_report()))
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/kms/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", headers.get("Authorization", ""))
        if not m:
            self.problem("%s: Authorization is not a SigV4 header botocore would write: %r"
                         % (op, headers.get("Authorization")))
            return
        key, day, region, signed, signature = m.groups()
        if key not in self.secrets:
            return  # an unknown access key: the server's refusal is the test's business
        names = signed.split(";")
        amz_date = headers.get("X-Amz-Date", "")
        if not amz_date.startswith(day):
            self.problem("%s: X-Amz-Date %r is not of the credential's day %s" % (op, amz_date, day))
        sent_hash = headers.get("X-Amz-Content-Sha256")
        if sent_hash is not None and sent_hash != hashlib.sha256(body).hexdigest():
            self.problem("%s: X-Amz-Content-Sha256 is not the body's" % op)
        req = AWSRequest(method="POST", url="http://%s%s" % (headers.get("Host", ""), path), data=body,
                         headers={n: headers.get(n, "") for n in names if n != "host"})
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(key, self.secrets[key]), "kms", region)
        mine = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        if signer.signed_headers(signer.headers_to_sign(req)) != signed:
            self.problem("%s: SignedHeaders %s, botocore signs %s for them" %
                         (op, signed, signer.signed_headers(signer.headers_to_sign(req))))
        elif mine != signature:
            self.problem("%s: the signature is not the one botocore computes for this request" % op)

    def forward(self, path, headers, body):
        import http.client
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers={k: v for k, v in headers.items()
                                                           if k.lower() != "connection"})
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def frozen_clock(when):
    """Makes botocore sign as if it were `when` (a naive UTC datetime). botocore reads the clock
    through botocore.auth.get_current_datetime() since 1.31; Debian 12's 1.29 calls
    datetime.datetime.utcnow() in SigV4Auth.add_auth."""
    import datetime
    from unittest import mock
    import botocore.auth
    if hasattr(botocore.auth, "get_current_datetime"):
        return mock.patch("botocore.auth.get_current_datetime", return_value=when)

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when
    return mock.patch.object(botocore.auth.datetime, "datetime", Fixed)


class KmsConfigServer(KmsServer):
    """cloister-kms --config FILE; the endpoint is http:// or https:// as the file says."""

    def __init__(self, config, env=None):  # pylint: disable=super-init-not-called
        self.data_dir = None
        self.proc = subprocess.Popen([KMS_BIN, "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.first_line = self.proc.stdout.readline()
        m = re.search(r"(https?)://127\.0\.0\.1:(\d+)", line)
        if not m:
            _stop(self.proc)
            err = self.proc.stderr.read()
            self.proc.stderr.close()
            raise RuntimeError("cloister-kms did not start: %r %r" % (line, err))
        self.port = int(m.group(2))
        self.endpoint = "%s://127.0.0.1:%d" % (m.group(1), self.port)

    def stop(self):
        rc = super().stop()
        if not self.proc.stderr.closed:
            self.stderr_text = self.proc.stderr.read()
            self.proc.stderr.close()
        return rc

    def kill9(self):
        super().kill9()
        self.stderr_text = self.proc.stderr.read()
        self.proc.stderr.close()


def assert_refused(tc, call, want_code, *needles):
    """call() must raise botocore's ClientError with want_code and a message containing each
    needle; returns the message. tc: the unittest.TestCase checking it."""
    from botocore.exceptions import ClientError
    with tc.assertRaises(ClientError) as e:
        call()
    got, message = e.exception.response["Error"]["Code"], e.exception.response["Error"]["Message"]
    tc.assertEqual(got, want_code, message)
    for n in needles:
        tc.assertIn(n, message)
    return message


@contextlib.contextmanager
def kms_server_config(config, env=None):
    srv = KmsConfigServer(config, env=env)
    try:
        yield srv
    finally:
        rc = srv.stop()
        if rc not in (0, None, -signal.SIGKILL):
            raise RuntimeError("cloister-kms exited with %s" % rc)


# --- a private PostgreSQL server for the PostgreSQL key store ---------------------------------------------------

def pg_bindir():
    """The newest /usr/lib/postgresql/N/bin with initdb and pg_ctl (Debian's layout), or None."""
    import glob
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK)]
    found.sort(key=lambda d: int(re.sub(r"\D", "", d.split("/")[-2]) or 0))
    return found[-1] if found else None


class PgServer:
    """initdb + pg_ctl in a temporary directory: listening on a Unix socket there only
    (listen_addresses=''), password (SCRAM) authentication, database 'cloister' owned by
    role 'cloister'. PostgreSQL refuses to run as root, so as root (CI) its processes run
    as the 'postgres' user the Debian package creates (runuser); otherwise as ourselves."""

    USER = "cloister"
    DB = "cloister"

    def __init__(self, password):
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
        self.password = password
        self.tmp = tempfile.mkdtemp(prefix="cloister-pg-")
        self.dir = os.path.join(self.tmp, "pg")  # the socket lives here
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.dir, 0o711)
        self.as_user = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chmod(self.tmp, 0o711)  # postgres may pass through, not list
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = os.path.join(self.dir, "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if self.as_user:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        # --no-sync only for initdb's own files (test setup); the server runs with fsync and
        # synchronous_commit at their defaults (on).
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.USER, "--pwfile", pwfile,
                   "--auth-local=scram-sha-256", "--auth-host=reject", "-E", "UTF8", "--locale=C", "--no-sync"])
        os.unlink(pwfile)
        self.start()
        self.createdb(self.DB)

    def _run(self, argv):
        p = subprocess.run(self.as_user + argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s%s" % (os.path.basename(argv[0]), p.stdout, p.stderr))

    def conninfo(self, db=None):
        return "host=%s dbname=%s user=%s password=%s" % (self.dir, db or self.DB, self.USER, self.password)

    def psql(self, sql, db=None):
        env = dict(os.environ, PGPASSWORD=self.password)
        p = subprocess.run([os.path.join(self.bindir, "psql"), "-h", self.dir, "-U", self.USER, "-d", db or self.DB,
                            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], env=env, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql %r failed: %s" % (sql, p.stderr))
        return p.stdout.strip()

    def createdb(self, name):
        env = dict(os.environ, PGPASSWORD=self.password)
        subprocess.run([os.path.join(self.bindir, "createdb"), "-h", self.dir, "-U", self.USER, name], env=env,
                       check=True, capture_output=True, timeout=60)

    def start(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                   "-t", "60", "-o", "-c listen_addresses='' -k %s -c max_connections=40" % self.dir, "start"])

    def stop(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"])

    def close(self):
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def pg_server(password):
    pg = PgServer(password)
    try:
        yield pg
    finally:
        pg.close()


DEV_PRINCIPAL = {"access_key_id": "test", "secret": "test", "arn": "arn:aws:iam::111122223333:user/dev"}


def kms_pg_config(pg, data_dir, threads=2, db=None, conninfo=None, root_key=None, extra=None):
    """A config file for cloister-kms on the PostgreSQL store, with --dev's principal (test/test);
    root_key: another server's root key file, to serve the same keys; extra: more settings."""
    import json
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(os.path.dirname(os.path.abspath(data_dir)), "kms-pg-%s.json" % os.path.basename(data_dir))
    cfg = {"listen": "127.0.0.1:0", "threads": threads, "data_dir": data_dir,
           "store": {"type": "postgresql", "conninfo": conninfo or pg.conninfo(db)}, "principals": [DEV_PRINCIPAL]}
    if root_key:
        cfg["root_key"] = {"file": root_key}
    cfg.update(extra or {})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return path
