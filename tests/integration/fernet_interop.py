# SPDX-License-Identifier: Apache-2.0
"""Fernet byte compatibility: tokens made by `cloister fernet` decrypt with
Python cryptography's Fernet and the reverse, keys from either side work on
the other, and TTL semantics agree."""
import json
import os
import subprocess
import sys
import tempfile
import time

from cryptography.fernet import Fernet, InvalidToken

C = os.environ["CLOISTER_BIN"]
SRC = os.environ["CLOISTER_SOURCE_DIR"]
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok -", what)
    else:
        failed += 1
        print("not ok -", what)


def run(*args, stdin=b""):
    return subprocess.run([C, *args], input=stdin, capture_output=True)


with tempfile.TemporaryDirectory() as d:
    py_key = Fernet.generate_key()
    key_file = os.path.join(d, "py.key")
    with open(key_file, "wb") as f:
        f.write(py_key + b"\n")
    os.chmod(key_file, 0o600)

    messages = [b"", b"x", b"hello", bytes(range(256)) * 5, os.urandom(100000), "patient: é 中".encode()]
    for m in messages:
        # C encrypts, Python decrypts.
        r = run("fernet", "encrypt", "--key", key_file, stdin=m)
        check(r.returncode == 0, f"C encrypts {len(m)} bytes")
        token = r.stdout.strip()
        try:
            check(Fernet(py_key).decrypt(token) == m, f"Python decrypts C token of {len(m)} bytes")
        except InvalidToken:
            check(False, f"Python rejected C token of {len(m)} bytes")
        # Python encrypts, C decrypts (also from a file, with -o).
        t = Fernet(py_key).encrypt(m)
        r = run("fernet", "decrypt", "--key", key_file, stdin=t)
        check(r.returncode == 0 and r.stdout == m, f"C decrypts Python token of {len(m)} bytes")
        tf = os.path.join(d, "t.txt")
        out = os.path.join(d, f"out-{len(m)}.bin")
        with open(tf, "wb") as f:
            f.write(t)
        r = run("fernet", "decrypt", "--key", key_file, tf, "-o", out)
        check(r.returncode == 0 and open(out, "rb").read() == m, "C decrypts a token file to -o")

    # A key made by C works in Python.
    r = run("fernet", "generate-key")
    c_key = r.stdout.strip()
    check(r.returncode == 0 and len(c_key) == 44, "C generates a 44-character key")
    Fernet(c_key)  # raises if Python does not accept it
    check(True, "Python accepts C's key")
    c_key_file = os.path.join(d, "c.key")
    r = run("fernet", "generate-key", "-o", c_key_file)
    check(r.returncode == 0 and oct(os.stat(c_key_file).st_mode & 0o777) == "0o600", "generate-key -o writes 0600")
    tok = run("fernet", "encrypt", "--key", c_key_file, stdin=b"abc").stdout.strip()
    check(Fernet(open(c_key_file, "rb").read().strip()).decrypt(tok) == b"abc", "Python decrypts with C's key file")

    # TTL: the same rule on both sides (expired when timestamp + ttl < now).
    old = Fernet(py_key).encrypt_at_time(b"old", int(time.time()) - 100)
    r = run("fernet", "decrypt", "--key", key_file, "--ttl", "50", stdin=old)
    check(r.returncode == 1 and b"expired" in r.stderr, "C refuses a token older than --ttl")
    try:
        Fernet(py_key).decrypt(old, ttl=50)
        check(False, "Python refuses it too")
    except InvalidToken:
        check(True, "Python refuses it too")
    r = run("fernet", "decrypt", "--key", key_file, "--ttl", "1000", stdin=old)
    check(r.returncode == 0 and r.stdout == b"old", "C accepts it within a longer TTL")

    # Cross-key and tamper: both refuse.
    other = Fernet.generate_key()
    r = run("fernet", "decrypt", "--key", key_file, stdin=Fernet(other).encrypt(b"z"))
    check(r.returncode == 1 and b"wrong key" in r.stderr, "C refuses another key's token")

# The committed specification vectors, checked against Python cryptography
# (a check that the copy is faithful). Python accepts two of the spec's invalid
# tokens (it decodes base64 leniently); C refuses all of them (test_fernet).
import datetime  # noqa: E402


def ts(s):
    return int(datetime.datetime.fromisoformat(s).timestamp())


vec = os.path.join(SRC, "tests", "vectors", "fernet")
for v in json.load(open(os.path.join(vec, "verify.json"))):
    got = Fernet(v["secret"]).decrypt_at_time(v["token"].encode(), ttl=v["ttl_sec"], current_time=ts(v["now"]))
    check(got == v["src"].encode(), "Python agrees with verify.json")
lenient = []
for v in json.load(open(os.path.join(vec, "invalid.json"))):
    try:
        Fernet(v["secret"]).decrypt_at_time(v["token"].encode(), ttl=v["ttl_sec"], current_time=ts(v["now"]))
        lenient.append(v["desc"])
    except InvalidToken:
        pass
print("note: Python cryptography accepts these spec-invalid tokens (C refuses them):", lenient)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
