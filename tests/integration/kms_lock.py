# SPDX-License-Identifier: Apache-2.0
"""Issue 12, finding 13: two servers on one data directory (`--data kmsA` twice) both started;
each extended the audit chain from its own last line, the chain broke, and the next start was
refused. Now the second one is refused at once, naming the directory and the first one's pid,
and so is a server with its own data directory but the same audit log. The first one keeps
serving, and once it stops the directory is free (also after SIGKILL: the lock is the kernel's)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402


def start_refused(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class DataDirectoryLock(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cloister-kms-lock-")
        self.data = os.path.join(self.tmp, "kmsA")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_second_server_refused(self):
        with kms_harness.kms_server(data_dir=self.data) as first:
            kms = kms_harness.boto_client(first.endpoint)
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            rc, out, err = start_refused([kms_harness.KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data", self.data])
            self.assertEqual(rc, 1, err)
            self.assertIn("data directory %s is in use by another cloister-kms (pid %d" % (self.data, first.proc.pid),
                          err)
            self.assertIn("stop the other one, or give this one its own --data", err)
            self.assertNotIn("listening", out)
            # Its own data directory, but the first one's audit log: refused as well.
            cfg = os.path.join(self.tmp, "other.json")
            with open(cfg, "w") as f:
                json.dump({"listen": "127.0.0.1:0", "data_dir": os.path.join(self.tmp, "kmsB"),
                           "audit_log": os.path.join(self.data, "audit.log"),
                           "principals": [kms_harness.DEV_PRINCIPAL]}, f)
            rc, out, err = start_refused([kms_harness.KMS_BIN, "--config", cfg])
            self.assertEqual(rc, 1, err)
            self.assertIn("audit log %s is in use by another process" % os.path.join(self.data, "audit.log"), err)
            # The first server was not disturbed.
            self.assertEqual(kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"], "Enabled")
        # Stopped: the directory is free, the keys and the chain intact.
        with kms_harness.kms_server(data_dir=self.data) as again:
            kms = kms_harness.boto_client(again.endpoint)
            self.assertEqual(kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"], "Enabled")
        p = subprocess.run([kms_harness.CLI_BIN, "kms", "audit-verify", os.path.join(self.data, "audit.log")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_lock_released_when_killed(self):
        first = kms_harness.KmsServer(self.data)
        first.kill9()
        with kms_harness.kms_server(data_dir=self.data) as again:
            kms_harness.boto_client(again.endpoint).list_keys()


if __name__ == "__main__":
    unittest.main(verbosity=2)
