# SPDX-License-Identifier: Apache-2.0
"""Starts and stops servers for the KMS integration tests: cloister-kms --dev
on a port the kernel picks (read back from its first line), or moto_server on
a free port. Nothing is left running: the context managers stop what they
started, by pid."""
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

    def __init__(self, data_dir, extra_args=(), principals=()):
        self.data_dir = data_dir
        args = [KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data", data_dir, *extra_args]
        if principals:
            os.makedirs(data_dir, exist_ok=True)
            path = os.path.join(data_dir, "principals.json")
            if not os.path.exists(path):
                write_principals(path, list(principals))
            args += ["--principals-file", path]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
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
def kms_server(data_dir=None, extra_args=(), principals=()):
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="cloister-kms-test-")
        data_dir = os.path.join(tmp, "data")
    srv = KmsServer(data_dir, extra_args, principals)
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
    import boto3
    from botocore.config import Config
    return boto3.client("kms", endpoint_url=endpoint, region_name=kw.pop("region", "us-east-1"),
                        aws_access_key_id=kw.pop("key", "test"), aws_secret_access_key=kw.pop("secret", "test"),
                        config=Config(retries={"max_attempts": 1}), **kw)


class KmsConfigServer(KmsServer):
    """cloister-kms --config FILE; the endpoint is http:// or https:// as the file says."""

    def __init__(self, config, env=None):  # pylint: disable=super-init-not-called
        self.data_dir = None
        self.proc = subprocess.Popen([KMS_BIN, "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
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


def kms_pg_config(pg, data_dir, threads=2, db=None, conninfo=None, root_key=None):
    """A config file for cloister-kms on the PostgreSQL store, with --dev's principal (test/test);
    root_key: another server's root key file, to serve the same keys."""
    import json
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(os.path.dirname(os.path.abspath(data_dir)), "kms-pg-%s.json" % os.path.basename(data_dir))
    cfg = {"listen": "127.0.0.1:0", "threads": threads, "data_dir": data_dir,
           "store": {"type": "postgresql", "conninfo": conninfo or pg.conninfo(db)}, "principals": [DEV_PRINCIPAL]}
    if root_key:
        cfg["root_key"] = {"file": root_key}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return path
