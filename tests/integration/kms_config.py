#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""cloister-kms --config FILE: the settings it takes, the ones it refuses
(exit 2, naming the key), HTTPS with a certificate made here by `openssl req`
(boto3 with verify=cert.pem and the aws CLI with --ca-bundle; TLS 1.1
refused), and a root key derived from a passphrase that is never echoed."""
import base64
import json
import os
import re
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import unittest
import warnings

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402

from botocore.exceptions import ClientError, SSLError  # noqa: E402

ALICE = {"access_key_id": "AKIAALICE0001", "secret": "alice-Secret-9f3b", "arn": "arn:aws:iam::123456789012:user/alice"}
BOB = {"access_key_id": "AKIABOB000002", "secret": "bob-Secret-77aa", "arn": "arn:aws:iam::210987654321:role/bob"}
PASSPHRASE = "correct horse battery staple 7311"


def client(srv, who=ALICE, region="eu-west-1", verify=None):
    return kms_harness.boto_client(srv.endpoint, key=who["access_key_id"], secret=who["secret"], region=region,
                                   verify=verify)


class KmsConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kms-config-")
        cls.cert = os.path.join(cls.tmp, "cert.pem")
        cls.key = os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=cloister-kms test",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
        # A second, unrelated key: a cert/key mismatch.
        cls.other_key = os.path.join(cls.tmp, "other.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                        cls.other_key], check=True, capture_output=True)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write_config(self, cfg, raw=None):
        KmsConfig.n += 1
        path = os.path.join(self.tmp, "cfg%d.json" % KmsConfig.n)
        with open(path, "w") as f:
            f.write(raw if raw is not None else json.dumps(cfg))
        os.chmod(path, 0o600)
        return path

    def base(self, **kw):
        KmsConfig.n += 1
        cfg = {"listen": "127.0.0.1:0", "threads": 2, "region": "eu-west-1",
               "data_dir": os.path.join(self.tmp, "data%d" % KmsConfig.n), "principals": [ALICE, BOB]}
        cfg.update(kw)
        return cfg

    def run_kms(self, *args, env=None):
        return subprocess.run([kms_harness.KMS_BIN, *args], capture_output=True, text=True, timeout=60, env=env)

    # --- refused configurations -----------------------------------------------------

    def test_bad_configs_exit_2_naming_the_key(self):
        good = self.base()
        cases = [
            (dict(good, bogus=1), "unknown key 'bogus'"),
            (dict(good, tls={"cert": self.cert, "key": self.key, "ciphers": "x"}), "unknown key 'tls.ciphers'"),
            (dict(good, principals=[dict(ALICE, role="x")]), "unknown key 'principals[0].role'"),
            (dict(good, threads=0), "'threads' must be an integer 1..256"),
            (dict(good, threads="2"), "'threads' must be an integer"),
            (dict(good, threads=2.5), "'threads' must be an integer"),
            (dict(good, max_body=100), "'max_body' must be an integer 1024..67108864"),
            (dict(good, listen="127.0.0.1"), "'listen' must be HOST:PORT"),
            (dict(good, listen="127.0.0.1:65536"), "the 'listen' port must be a whole number from 0 to 65535, not '65536'"),
            (dict(good, listen="127.0.0.1:-1"), "'listen' port"),
            (dict(good, listen=""), "'listen' must be 1..263 characters"),
            (dict(good, region="US_EAST_1"), "'region' must be"),
            (dict(good, region=7), "'region' must be a string"),
            ({k: v for k, v in good.items() if k != "data_dir"}, "'data_dir' is required"),
            ({k: v for k, v in good.items() if k != "principals"}, "'principals' is required"),
            (dict(good, principals=[]), "'principals' must be a list of 1..64"),
            (dict(good, principals={"a": 1}), "'principals' must be a list"),
            (dict(good, principals=[ALICE] * 65), "'principals' must be a list of 1..64"),
            (dict(good, principals=["AKIA:x:arn"]), "'principals[0]' must be an object"),
            (dict(good, principals=[dict(ALICE, arn="arn:aws:iam::12345:user/a")]), "12-digit account"),
            (dict(good, principals=[dict(ALICE, arn="arn:aws:s3:::bucket")]), "principal ARN"),
            (dict(good, principals=[dict(ALICE, secret="")]), "'principals[0].secret' must be 1..128"),
            (dict(good, principals=[dict(ALICE, secret="s" * 129)]), "'principals[0].secret' must be 1..128"),
            (dict(good, principals=[dict(ALICE, access_key_id="AK IA")]), "access key id"),
            (dict(good, principals=[ALICE, dict(BOB, access_key_id=ALICE["access_key_id"])]),
             "'principals[1].access_key_id' AKIAALICE0001 is also principals[0]'s"),
            (dict(good, principals=[{"access_key_id": "A", "arn": ALICE["arn"]}]), "needs access_key_id, secret"),
            (dict(good, root_key={}), "exactly one of 'file', 'passphrase_file' and 'passphrase_env' (it gives 0)"),
            (dict(good, root_key={"file": "k", "passphrase_env": "P"}), "(it gives 2)"),
            (dict(good, root_key={"passphrase_env": "1BAD"}), "'root_key.passphrase_env' must be an environment"),
            (dict(good, root_key={"passphrase_env": "A-B"}), "'root_key.passphrase_env' must be an environment"),
            (dict(good, root_key={"passphrase_env": "P", "scrypt_log2_n": 30}), "'root_key.scrypt_log2_n' must be"),
            (dict(good, root_key={"file": "k", "scrypt_log2_n": 15}), "applies to a passphrase"),
            (dict(good, root_key="k"), "'root_key' must be an object"),
            (dict(good, store={"type": "postgres"}), "'store.type' postgres is not available"),
            (dict(good, store={"path": ""}), "'store.path' must be 1.."),
            (dict(good, store={"type": "postgresql"}), "'store.conninfo' is required"),
            (dict(good, store={"type": "postgresql", "conninfo": ""}), "'store.conninfo' must be 1..1023"),
            (dict(good, store={"type": "postgresql", "conninfo": 7}), "'store.conninfo' must be a string"),
            (dict(good, store={"type": "postgresql", "conninfo": "host=/tmp", "path": "k.db"}),
             "'store.path' applies to the SQLite store"),
            (dict(good, store={"type": "sqlite", "conninfo": "host=/tmp"}), "'store.conninfo' applies to"),
            (dict(good, store={"conninfo": "host=/tmp"}), "'store.conninfo' applies to"),
            (dict(good, store={"type": "postgresql", "conninfo": "host=/tmp passwd=pg-Secret-41"}),
             "'store.conninfo' is not a libpq connection string"),
            (dict(good, store={"type": "postgresql", "conninfo": "postgresql://kms:pg-Secret-41@h:99999999999/x%zz"}),
             "'store.conninfo' is not a libpq connection string"),
            (dict(good, tls={"cert": self.cert}), "'tls' needs both 'cert' and 'key'"),
            (dict(good, tls=True), "'tls' must be an object"),
            (dict(good, audit_log="x" * 2000), "'audit_log' must be 1..1023"),
            (dict(good, data_dir="d\u0000x"), "not JSON"),  # jansson refuses NUL in strings
            (dict(good, attestation_roots="root.pem"), "'attestation_roots' must be an array of 1..8"),
            (dict(good, attestation_roots=[]), "'attestation_roots' must be an array of 1..8"),
            (dict(good, attestation_roots=["r.pem"] * 9), "'attestation_roots' must be an array of 1..8"),
            (dict(good, attestation_roots=[7]), "'attestation_roots[0]' must be a path"),
            (dict(good, attestation_roots=[self.cert, "missing-root.pem"]), "attestation_roots[1]"),
            (dict(good, attestation_max_age=0), "'attestation_max_age' must be an integer 1..86400"),
            (dict(good, attestation_max_age="300"), "'attestation_max_age' must be an integer 1..86400"),
        ]
        for cfg, needle in cases:
            p = self.run_kms("--config", self.write_config(cfg))
            self.assertEqual(p.returncode, 2, (cfg, p.stderr))
            self.assertIn(needle, p.stderr, cfg)
            self.assertEqual(p.stdout, "", "refused config still started: %r" % cfg)
            for who in (ALICE, BOB):
                self.assertNotIn(who["secret"], p.stderr, "a secret in an error message")
            self.assertNotIn("pg-Secret-41", p.stderr, "a database password in an error message")
        raws = [
            ("{not json", "not JSON: line 1"),
            ('{"threads": 1, "threads": 2}', "duplicate"),
            ("[]", "must be a JSON object"),
            ("", "not JSON"),
            ('{"data_dir": "d", "principals": [' + ",".join(['{"x": "' + "a" * 1000 + '"}'] * 1100) + "]}",
             "over 1048576 bytes"),
        ]
        for raw, needle in raws:
            p = self.run_kms("--config", self.write_config(None, raw=raw))
            self.assertEqual(p.returncode, 2, (raw[:40], p.stderr))
            self.assertIn(needle, p.stderr)
        p = self.run_kms("--config", os.path.join(self.tmp, "absent.json"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("absent.json", p.stderr)
        for extra in (["--dev"], ["--listen", "127.0.0.1:0"], ["--principals-file", "p.json"]):
            p = self.run_kms("--config", self.write_config(good), *extra)
            self.assertEqual(p.returncode, 2, extra)
            self.assertIn("cannot be combined with " + extra[0], p.stderr)
        p = self.run_kms()
        self.assertEqual(p.returncode, 2)
        self.assertIn("--config FILE", p.stderr)

    # --- principals outside a config file: never on the command line (docs/security.md, finding 9) ----

    def test_secret_on_the_command_line_is_refused(self):
        """The attack: `--principal ID:SECRET:ARN` put the secret in /proc/PID/cmdline, which every
        user of the machine can read. Now refused, saying where secrets go instead."""
        secret = "cmdline-Secret-5e1d"
        for value in ("alice:%s:%s" % (secret, ALICE["arn"]), "alice::" + ALICE["arn"], "alice"):
            p = self.run_kms("--dev", "--data", os.path.join(self.tmp, "never"), "--principal", value)
            self.assertEqual(p.returncode, 2, p.stderr)
            for words in ("--principal is refused", "/proc/PID/cmdline", "--principals-file FILE",
                          "CLOISTER_KMS_PRINCIPALS", "mode-0600"):
                self.assertIn(words, p.stderr)
            self.assertNotIn(secret, p.stderr + p.stdout, "the refusal echoes the secret")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never")), "a refused start made its data directory")

    def principals_file(self, principals, mode=0o600):
        KmsConfig.n += 1
        path = os.path.join(self.tmp, "principals%d.json" % KmsConfig.n)
        with open(path, "w") as f:
            json.dump(principals, f)
        os.chmod(path, mode)
        return path

    def test_principals_file(self):
        path = self.principals_file([ALICE, BOB])
        data = os.path.join(self.tmp, "pf-data")
        with kms_harness.kms_server(data_dir=data, extra_args=["--principals-file", path]) as srv:
            kms_harness.assert_no_secret_in_cmdline(srv.proc.pid, [ALICE["secret"], BOB["secret"]])
            m = client(srv, region="us-east-1").create_key()["KeyMetadata"]
            self.assertEqual(m["Arn"].split(":")[4], "123456789012")
            self.assertEqual(client(srv, BOB, region="us-east-1").list_keys()["Keys"], [])
            kms_harness.boto_client(srv.endpoint).list_keys()  # --dev's own principal is still there
        # Refused: readable by others, a bad list, a duplicate of --dev's access key id; no secret echoed.
        for path, needle in [
                (self.principals_file([ALICE], 0o644), "readable or writable by group or others"),
                (self.principals_file([ALICE], 0o620), "chmod 600 it"),
                (self.principals_file({"a": ALICE}), "'principals' must be a list"),
                (self.principals_file([dict(ALICE, secret="")]), "'principals[0].secret' must be 1..128"),
                (self.principals_file([dict(ALICE, access_key_id="test")]), "test is taken already"),
                (os.path.join(self.tmp, "absent.json"), "absent.json")]:
            p = self.run_kms("--dev", "--data", data, "--principals-file", path)
            self.assertEqual(p.returncode, 2, (path, p.stderr))
            self.assertIn(needle, p.stderr)
            self.assertNotIn(ALICE["secret"], p.stderr)

    def test_principals_environment(self):
        """CLOISTER_KMS_PRINCIPALS: read, then wiped in place (so /proc/PID/environ no longer
        shows it) and unset."""
        env = dict(os.environ, CLOISTER_KMS_PRINCIPALS=json.dumps([ALICE]))
        proc = subprocess.Popen([kms_harness.KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data",
                                 os.path.join(self.tmp, "env-data")], env=env, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
            srv = type("Srv", (), {"endpoint": "http://127.0.0.1:%d" % port})
            self.assertEqual(client(srv, region="us-east-1").list_keys()["Keys"], [])
            with open("/proc/%d/environ" % proc.pid, "rb") as f:
                environ = f.read()
            self.assertNotIn(ALICE["secret"].encode(), environ)
            self.assertNotIn(b"CLOISTER_KMS_PRINCIPALS=[", environ)
        finally:
            kms_harness._stop(proc)
        env["CLOISTER_KMS_PRINCIPALS"] = "[" + json.dumps(ALICE)
        p = self.run_kms("--dev", "--data", os.path.join(self.tmp, "env-data"), env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("environment variable CLOISTER_KMS_PRINCIPALS: not JSON", p.stderr)
        self.assertNotIn(ALICE["secret"], p.stderr)

    def test_help_mentions_config_and_https(self):
        p = self.run_kms("--help")
        self.assertEqual(p.returncode, 0)
        for words in ("--config FILE", "TLS 1.2/1.3", "passphrase", "--dev"):
            self.assertIn(words, p.stdout)

    # --- a configured server ------------------------------------------------------

    def test_principals_region_paths(self):
        audit = os.path.join(self.tmp, "audit-custom.log")
        store = os.path.join(self.tmp, "store-custom.db")
        root = os.path.join(self.tmp, "root-custom.key")
        cfg = self.base(audit_log=audit, store={"type": "sqlite", "path": store}, root_key={"file": root},
                        max_body=4096)
        with kms_harness.kms_server_config(self.write_config(cfg)) as srv:
            self.assertTrue(srv.endpoint.startswith("http://"))
            a = client(srv)
            m = a.create_key(Description="alice's")["KeyMetadata"]
            self.assertEqual(m["Arn"].split(":")[3:5], ["eu-west-1", "123456789012"])
            ct = a.encrypt(KeyId=m["KeyId"], Plaintext=b"hello")["CiphertextBlob"]
            # Bob is another account: Alice's key policy (the default: her account's root) refuses
            # him her ciphertext, as AWS does; by bare key id her key is not even in his account.
            b = client(srv, BOB)
            with self.assertRaises(ClientError) as e:
                b.decrypt(CiphertextBlob=ct)
            self.assertEqual(e.exception.response["Error"]["Code"], "AccessDeniedException")
            with self.assertRaises(ClientError) as e:
                b.describe_key(KeyId=m["KeyId"])
            self.assertEqual(e.exception.response["Error"]["Code"], "NotFoundException")
            self.assertEqual(b.list_keys()["Keys"], [])
            # Another region has its own keys (none); the dev credentials are not configured.
            self.assertEqual(client(srv, region="us-east-1").list_keys()["Keys"], [])
            with self.assertRaises(ClientError) as e:
                kms_harness.boto_client(srv.endpoint, region="eu-west-1").list_keys()
            self.assertEqual(e.exception.response["Error"]["Code"], "UnrecognizedClientException")
            with self.assertRaises(ClientError) as e:
                client(srv, dict(ALICE, secret="wrong")).list_keys()
            self.assertEqual(e.exception.response["Error"]["Code"], "InvalidSignatureException")
            with self.assertRaises(ClientError) as e:  # over max_body: 413 from evhttp
                a.encrypt(KeyId=m["KeyId"], Plaintext=b"x" * 4000)
        self.assertEqual(oct(os.stat(root).st_mode & 0o777), "0o600")
        self.assertTrue(os.path.getsize(store) > 0)
        with open(audit) as f:
            log = f.read()
        self.assertIn("arn:aws:iam::123456789012:user/alice", log)
        for who in (ALICE, BOB):
            self.assertNotIn(who["secret"], log)
        self.assertFalse(os.path.exists(os.path.join(cfg["data_dir"], "root.key")))
        self.assertFalse(os.path.exists(os.path.join(cfg["data_dir"], "audit.log")))

    def test_relative_paths_are_relative_to_the_config_file(self):
        sub = tempfile.mkdtemp(dir=self.tmp)
        cfg = {"listen": "127.0.0.1:0", "data_dir": "state", "audit_log": "logs-audit.log",
               "principals": [ALICE], "region": "eu-west-1"}
        path = os.path.join(sub, "kms.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        os.chmod(path, 0o600)
        with kms_harness.kms_server_config(path) as srv:
            client(srv).create_key()
        self.assertTrue(os.path.exists(os.path.join(sub, "state", "keys.db")))
        self.assertTrue(os.path.exists(os.path.join(sub, "logs-audit.log")))

    # --- passphrase-derived root key ------------------------------------------------

    def test_passphrase_root_key(self):
        cfg = self.base(root_key={"passphrase_env": "CLOISTER_TEST_PASS", "scrypt_log2_n": 14})
        path = self.write_config(cfg)
        env = dict(os.environ, CLOISTER_TEST_PASS=PASSPHRASE, CLOISTER_LOG="debug")
        with kms_harness.kms_server_config(path, env=env) as srv:
            # The variable is wiped from the process's environment once read.
            with open("/proc/%d/environ" % srv.proc.pid, "rb") as f:
                self.assertNotIn(PASSPHRASE.encode(), f.read())
            a = client(srv)
            kid = a.create_key()["KeyMetadata"]["KeyId"]
            ct = a.encrypt(KeyId=kid, Plaintext=b"survives restarts")["CiphertextBlob"]
        self.assertNotIn(PASSPHRASE, srv.stderr_text)
        kdf_path = os.path.join(cfg["data_dir"], "root.kdf")
        self.assertEqual(oct(os.stat(kdf_path).st_mode & 0o777), "0o600")
        with open(kdf_path) as f:
            kdf = json.load(f)
        self.assertEqual((kdf["kdf"], kdf["n"], kdf["r"], kdf["p"]), ("scrypt", 16384, 8, 1))
        self.assertEqual(len(base64.b64decode(kdf["salt"])), 32)
        self.assertFalse(os.path.exists(os.path.join(cfg["data_dir"], "root.key")))
        # The same passphrase from a file (one trailing newline ignored) opens the same store.
        pf = os.path.join(self.tmp, "pass.txt")
        with open(pf, "w") as f:
            f.write(PASSPHRASE + "\n")
        os.chmod(pf, 0o600)
        cfg2 = dict(cfg, root_key={"passphrase_file": pf})
        with kms_harness.kms_server_config(self.write_config(cfg2)) as srv:
            self.assertEqual(client(srv).decrypt(CiphertextBlob=ct)["Plaintext"], b"survives restarts")
        # A wrong passphrase is refused at start, and not echoed.
        env = dict(os.environ, CLOISTER_TEST_PASS=PASSPHRASE + "x", CLOISTER_LOG="debug")
        p = self.run_kms("--config", path, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("passphrase is not the one", p.stderr)
        self.assertNotIn(PASSPHRASE, p.stderr + p.stdout)
        # Missing variable, too short, group-readable file.
        p = self.run_kms("--config", path, env={k: v for k, v in os.environ.items() if k != "CLOISTER_TEST_PASS"})
        self.assertEqual(p.returncode, 1)
        self.assertIn("CLOISTER_TEST_PASS", p.stderr)
        p = self.run_kms("--config", path, env=dict(os.environ, CLOISTER_TEST_PASS="short"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("passphrase must be 8..1024 bytes", p.stderr)
        os.chmod(pf, 0o640)
        p = self.run_kms("--config", self.write_config(cfg2))
        self.assertEqual(p.returncode, 1)
        self.assertIn("readable by group or others", p.stderr)
        # A tampered root.kdf (other salt) is refused rather than deriving another key.
        os.chmod(pf, 0o600)
        kdf["salt"] = base64.b64encode(b"\x01" * 32).decode()
        with open(kdf_path, "w") as f:
            json.dump(kdf, f)
        p = self.run_kms("--config", self.write_config(cfg2))
        self.assertEqual(p.returncode, 1)
        self.assertIn("passphrase is not the one", p.stderr)
        kdf["n"] = 1000
        with open(kdf_path, "w") as f:
            json.dump(kdf, f)
        p = self.run_kms("--config", self.write_config(cfg2))
        self.assertEqual(p.returncode, 1)
        self.assertIn("'n' must be", p.stderr)

    # --- HTTPS ----------------------------------------------------------------------

    def tls_config(self, **kw):
        return self.write_config(self.base(tls={"cert": self.cert, "key": self.key}, **kw))

    def test_https_boto3_and_aws_cli(self):
        with kms_harness.kms_server_config(self.tls_config()) as srv:
            self.assertTrue(srv.endpoint.startswith("https://"))
            a = client(srv, verify=self.cert)
            kid = a.create_key()["KeyMetadata"]["KeyId"]
            ct = a.encrypt(KeyId=kid, Plaintext=b"over TLS")["CiphertextBlob"]
            self.assertEqual(a.decrypt(CiphertextBlob=ct)["Plaintext"], b"over TLS")
            sk = a.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
            s = a.sign(KeyId=sk, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
            self.assertTrue(a.verify(KeyId=sk, Message=b"m", Signature=s,
                                     SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"])
            # Without the CA, the client refuses the self-signed certificate: TLS is really checked.
            with self.assertRaises(SSLError):
                client(srv).list_keys()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"AWS_ACCESS_KEY_ID": ALICE["access_key_id"], "AWS_SECRET_ACCESS_KEY": ALICE["secret"],
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                        "AWS_MAX_ATTEMPTS": "1"})
            cmd = [kms_harness.AWS_CLI, "--endpoint-url", srv.endpoint, "--region", "eu-west-1", "--output", "json"]
            p = subprocess.run(cmd + ["--ca-bundle", self.cert, "kms", "describe-key", "--key-id", kid],
                               capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)["KeyMetadata"]["KeyId"], kid)
            p = subprocess.run(cmd + ["--ca-bundle", self.cert, "kms", "get-public-key", "--key-id", sk],
                               capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)["KeySpec"], "ECC_NIST_P256")
            p = subprocess.run(cmd + ["kms", "list-keys"], capture_output=True, text=True, env=env, timeout=120)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("SSL", p.stderr)
            # Plain HTTP to the TLS port gets no HTTP answer.
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                try:
                    data = s.recv(100)
                except (ConnectionResetError, socket.timeout):
                    data = b""
                self.assertFalse(data.startswith(b"HTTP/"))
            # The server is still serving after all that.
            self.assertIn(kid, [k["KeyId"] for k in a.list_keys()["Keys"]])

    def handshake(self, port, version):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert)
        # Let this client offer old versions at all, so that a refusal is the server's.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.0/1.1 is the point
            ctx.minimum_version = version
            ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.version()

    def test_tls_versions(self):
        with kms_harness.kms_server_config(self.tls_config()) as srv:
            self.assertEqual(self.handshake(srv.port, ssl.TLSVersion.TLSv1_2), "TLSv1.2")
            self.assertEqual(self.handshake(srv.port, ssl.TLSVersion.TLSv1_3), "TLSv1.3")
            for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
                with self.assertRaises(ssl.SSLError) as e:
                    self.handshake(srv.port, old)
                # The server's alert, not this client declining to try.
                self.assertIn("PROTOCOL_VERSION", str(e.exception).upper().replace(" ", "_"))
            self.assertEqual(self.handshake(srv.port, ssl.TLSVersion.TLSv1_3), "TLSv1.3")

    def test_tls_bad_files(self):
        for tls, needle in (({"cert": self.cert, "key": self.other_key}, "mismatch"),
                            ({"cert": os.path.join(self.tmp, "none.pem"), "key": self.key}, "tls.cert"),
                            ({"cert": self.key, "key": self.key}, "tls.cert"),
                            ({"cert": self.cert, "key": self.cert}, "tls.key")):
            p = self.run_kms("--config", self.write_config(self.base(tls=tls)))
            self.assertEqual(p.returncode, 1, tls)
            self.assertIn(needle, p.stderr)
            self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
