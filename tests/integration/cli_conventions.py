#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The command line's conventions, as a user meets them (README, "Command-line conventions"):
--help on every subcommand; a short flag means one thing in every command; seal and unseal
read - and write -o -; unseal finds a KMS key in the file's header; `cloister seal inspect`
prints the header, checked against the Python reference parser (envelope_ref.py); the README
and docs/worker.md name the demo's ports. Runs with Debian's /usr/bin/python3."""
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import envelope_ref  # noqa: E402  (Python cryptography: Debian's python3-cryptography)
import kms_harness  # noqa: E402

CLI = kms_harness.CLI_BIN
SRC = os.environ.get("CLOISTER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))

# Subcommands that take --help (cloister enclave's verbs are src/cli/cmd_enclave.c's, whose
# `describe|console|terminate|measure --help` the ops branch fixes; they join this list then).
SUBCOMMANDS = [["seal"], ["seal", "inspect"], ["unseal"], ["key"], ["key", "local-create"], ["key", "local-id"],
               ["fernet"], ["fernet", "generate-key"], ["fernet", "encrypt"], ["fernet", "decrypt"], ["attest"],
               ["attest", "verify"], ["kms"], ["kms", "audit-verify"], ["infer"], ["infer-local"], ["train-local"],
               ["enclave"], ["enclave", "build"], ["enclave", "run"], ["enclave", "init-root"], ["cas"],
               ["cas", "session"], ["cas", "get-cert"], ["api"], ["api", "token"], ["api", "token", "create"],
               ["s3"], ["train-job"], ["train-job", "run"]]


def run(*args, env=None, input=None, check=True):
    p = subprocess.run([CLI, *args], env=env, input=input, capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("cloister %s: %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


class Help(unittest.TestCase):
    def test_every_subcommand_has_help(self):
        top = run("--help").stdout.decode()
        commands = re.findall(r"^  ([a-z][a-z0-9-]+) ", top, re.M)
        self.assertEqual(sorted({c[0] for c in SUBCOMMANDS}), sorted(commands))
        kms = run("kms", "--help").stdout.decode()
        kms_subs = re.findall(r"^  ([a-z][a-z-]+) ", kms.split("Subcommands:\n")[1].split("\n\n")[0], re.M)
        self.assertGreater(len(kms_subs), 30)
        for sub in SUBCOMMANDS + [["kms", s] for s in kms_subs]:
            for flag in ("--help", "-h"):
                with self.subTest(sub=sub, flag=flag):
                    p = run(*sub, flag, check=False)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertTrue(p.stdout.startswith(b"Usage: cloister " + " ".join(sub[:1]).encode()), p.stdout)
                    self.assertEqual(p.stderr, b"")
            if sub[0] == "kms" and len(sub) == 2 and sub[1] != "audit-verify":
                # its own options, not the list of subcommands
                self.assertIn(("cloister kms %s " % sub[1]).encode(), run(*sub, "--help").stdout)


class ShortFlags(unittest.TestCase):
    def test_a_short_flag_means_one_thing(self):
        meaning = {}
        for sub in SUBCOMMANDS:
            text = run(*sub, "--help").stdout.decode()
            for letter, long in re.findall(r"^\s+-([a-zA-Z]), --([a-z0-9-]+)", text, re.M):
                meaning.setdefault(letter, {}).setdefault(long, []).append(" ".join(sub))
        clashes = {k: v for k, v in meaning.items() if len(v) > 1}
        self.assertEqual(clashes, {}, "short flags with two meanings")
        self.assertEqual(list(meaning["c"]), ["context"])
        self.assertEqual(list(meaning["k"]), ["key"])
        self.assertEqual(list(meaning["o"]), ["output"])

    def test_dropped_short_flags_are_refused(self):
        # infer's --channel, --keep-sealed and --stop, infer-local's --reference and --profile and
        # train-local's --test-fraction have no short form (their letters mean something else)
        for args in (["infer", "-c", "x.sock"], ["infer", "-k"], ["infer", "-s"], ["infer-local", "-r"],
                     ["infer-local", "-p"], ["train-local", "-t", "0.2"]):
            p = run(*args, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(b"invalid option", p.stderr, args)


class SealPipes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli-conv-")
        cls.key = os.path.join(cls.tmp, "k.key")
        cls.key_id = run("key", "local-create", "-o", cls.key).stdout.decode().strip()
        cls.data = os.urandom(300000)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_stdin_to_stdout_and_back(self):
        sealed = run("seal", "--key", self.key, "-c", "patient=7", "--chunk-size", "65536", "-", "-o", "-",
                     input=self.data).stdout
        h = envelope_ref.parse_header(sealed)
        self.assertEqual((h["provider"], h["key_id"], h["context"], h["chunk_size"]),
                         ("local", self.key_id, {"patient": "7"}, 65536))
        # the reference implementation opens it
        kek = envelope_ref.read_local_key(self.key)
        plain, _ = envelope_ref.unseal(sealed, lambda hh: envelope_ref.local_unwrap(kek, hh["key_id"], hh["wrapped"],
                                                                                   hh["context"]))
        self.assertEqual(plain, self.data)
        self.assertEqual(run("unseal", "--key", self.key, "-", "-o", "-", input=sealed).stdout, self.data)
        path = os.path.join(self.tmp, "s.sealed")
        with open(path, "wb") as f:
            f.write(sealed)
        self.assertEqual(run("unseal", "-k", self.key, "-c", "patient=7", path, "-o", "-").stdout, self.data)
        # a tampered chunk: exit 1, and what came out before it is only what authenticated
        bad = bytearray(sealed)
        bad[-100] ^= 1
        p = run("unseal", "--key", self.key, "-", "-o", "-", input=bytes(bad), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"cloister: error:", p.stderr)
        self.assertTrue(self.data.startswith(p.stdout) and len(p.stdout) < len(self.data))
        # `-o -` is the standard output, not a file named "-"
        self.assertFalse(os.path.exists(os.path.join(os.getcwd(), "-")))

    def test_sealed_bytes_are_not_written_to_a_terminal(self):
        master, slave = pty.openpty()
        p = subprocess.run([CLI, "seal", "--key", self.key, "-", "-o", "-"], input=b"x", stdout=slave,
                           stderr=subprocess.PIPE, timeout=60)
        os.close(slave)
        os.close(master)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"refusing to write a sealed file to a terminal", p.stderr)

    def test_unseal_without_key_names_the_local_key(self):
        path = os.path.join(self.tmp, "local.sealed")
        src = os.path.join(self.tmp, "in")
        with open(src, "wb") as f:
            f.write(b"abc")
        run("seal", "--key", self.key, src, "-o", path)
        p = run("unseal", path, "-o", os.path.join(self.tmp, "out"), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(("was sealed with the local key %s: give its key file with --key FILE" % self.key_id).encode(),
                      p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out")))

    def test_inspect(self):
        path = os.path.join(self.tmp, "i.sealed")
        for size, chunk in ((0, 4096), (4096, 4096), (4097, 4096), (300000, 65536)):
            with self.subTest(size=size, chunk=chunk):
                data = os.urandom(size)
                if os.path.exists(path):
                    os.unlink(path)
                run("seal", "--key", self.key, "-c", "b=2", "-c", "a=1", "--chunk-size", str(chunk), "-", "-o", path,
                    input=data)
                with open(path, "rb") as f:
                    blob = f.read()
                h = envelope_ref.parse_header(blob)
                got = json.loads(run("seal", "inspect", path).stdout)
                self.assertEqual(got, {
                    "Format": "cloister sealed envelope", "Version": 1,
                    "Algorithm": "AES-256-GCM, HKDF-SHA256 chunk key", "KeyProvider": h["provider"],
                    "KeyId": h["key_id"], "EncryptionContext": h["context"], "ChunkSize": h["chunk_size"],
                    "WrappedKeyBytes": len(h["wrapped"]), "HeaderBytes": len(h["header"]), "SealedBytes": len(blob),
                    # docs/formats/envelope.md: every chunk but the last is chunk size + 16 bytes
                    "Chunks": -(-(len(blob) - len(h["header"])) // (chunk + 16)),
                    "PlaintextBytes": size})
                self.assertEqual(json.loads(run("seal", "inspect", "-", input=blob).stdout), got)
        # what is not a sealed file, or is cut short, is refused with the reason
        for content, needle in ((b"hello world, not sealed", b"not a sealed file"),
                                (blob[:20], b"truncated in its header"),
                                (blob[:len(h["header"]) + 10], b"is truncated: 10 bytes after the header")):
            with open(path, "wb") as f:
                f.write(content)
            p = run("seal", "inspect", path, check=False)
            self.assertEqual(p.returncode, 1, content[:20])
            self.assertIn(needle, p.stderr)
        p = run("seal", "inspect", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"expected one sealed FILE", p.stderr)


class UnsealFromHeader(unittest.TestCase):
    """Without --key, a file sealed under a KMS key is opened with the key its header names."""

    def test_kms_key_from_header(self):
        with kms_harness.kms_server() as srv, tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(kms_harness.DEV_ENV, HOME=tmp, AWS_ENDPOINT_URL=srv.endpoint)
            kid = json.loads(run("kms", "create-key", env=env).stdout)["KeyMetadata"]["KeyId"]
            data = os.urandom(5000)
            sealed = run("seal", "--key", kid, "-c", "a=b", "-", "-o", "-", env=env, input=data).stdout
            self.assertEqual(run("unseal", "-", "-o", "-", env=env, input=sealed).stdout, data)
            self.assertEqual(run("unseal", "-c", "a=b", "-", "-o", "-", env=env, input=sealed).stdout, data)
            p = run("unseal", "-c", "a=c", "-", "-o", "-", env=env, input=sealed, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertEqual(p.stdout, b"")
            self.assertIn(b"wrong encryption context", p.stderr)


class Docs(unittest.TestCase):
    def test_ports_agree(self):
        with open(os.path.join(SRC, "scripts/demo")) as f:
            m = re.search(r"ENVELOPE_PORT, CHANNEL_PORT = (\d+), (\d+)", f.read())
        envelope, channel = m.group(1), m.group(2)
        for doc in ("README.md", "docs/worker.md"):
            with open(os.path.join(SRC, doc)) as f:
                text = f.read()
            self.assertEqual(set(re.findall(r"--enclave [^\n]*?vsock-(\d+)\.sock", text)), {envelope}, doc)
            self.assertEqual(set(re.findall(r"--channel [^\n]*?vsock-(\d+)\.sock", text)), {channel}, doc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
