# SPDX-License-Identifier: Apache-2.0
"""Sealed envelope v1 against an independent Python implementation
(envelope_ref.py, on the `cryptography` package):
  1. the committed vectors are exactly what the reference produces;
  2. files sealed by `cloister seal` unseal with the reference, and the reverse;
  3. what the reference detects as tampering, the CLI refuses too."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import envelope_ref as ref  # noqa: E402

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


vectors = json.load(open(os.path.join(SRC, "tests", "vectors", "envelope_v1.json")))
for v in vectors["envelope_v1"]:
    sealed = ref.seal(bytes.fromhex(v["data_key"]), v["provider"], v["key_id"], bytes.fromhex(v["wrapped_key"]),
                      v["context"], v["chunk_size"], bytes.fromhex(v["salt"]), bytes.fromhex(v["plaintext"]))
    check(sealed.hex() == v["sealed"], f"vector {v['name']} matches the reference implementation")
    pt, h = ref.unseal(bytes.fromhex(v["sealed"]), lambda h: bytes.fromhex(v["data_key"]))
    check(pt.hex() == v["plaintext"] and h["context"] == v["context"], f"vector {v['name']} unseals")
for v in vectors["local_wrap_v1"]:
    dk = ref.local_unwrap(bytes.fromhex(v["kek"]), v["key_id"], bytes.fromhex(v["wrapped_key"]), v["context"])
    check(dk.hex() == v["data_key"], f"local wrap vector {v['name']}")


def cli(*args):
    return subprocess.run([C, *args], capture_output=True)


with tempfile.TemporaryDirectory() as d:
    key = os.path.join(d, "k.key")
    check(cli("key", "local-create", "-o", key).returncode == 0, "key local-create")
    kek = ref.read_local_key(key)

    for size, chunk in [(0, None), (1, None), (1 << 20, None), ((1 << 20) + 1, None), (3 * 4096 + 5, "4096")]:
        data = os.urandom(size)
        src, out = os.path.join(d, f"in{size}"), os.path.join(d, f"in{size}.sealed")
        open(src, "wb").write(data)
        args = ["seal", "--key", key, "--context", "patient=77", "--context", "site=oncology", src, "-o", out]
        if chunk:
            args[1:1] = ["--chunk-size", chunk]
        check(cli(*args).returncode == 0, f"C seals {size} bytes")
        blob = open(out, "rb").read()

        def unwrap(h):
            return ref.local_unwrap(kek, h["key_id"], h["wrapped"], h["context"])

        pt, h = ref.unseal(blob, unwrap)
        check(pt == data, f"reference unseals C's {size}-byte file")
        check(h["provider"] == "local" and h["context"] == {"patient": "77", "site": "oncology"},
              "header names the provider and carries the context")

        # The reference seals; C unseals.
        dk = os.urandom(32)
        ctx = {"patient": "77"}
        wrapped = ref.local_wrap(kek, dk, ctx, os.urandom(12))
        cs = int(chunk) if chunk else 1 << 20
        blob2 = ref.seal(dk, "local", ref.local_key_id(kek), wrapped, ctx, cs, os.urandom(32), data)
        p2, o2 = os.path.join(d, f"py{size}.sealed"), os.path.join(d, f"py{size}.out")
        open(p2, "wb").write(blob2)
        r = cli("unseal", "--key", key, "--context", "patient=77", p2, "-o", o2)
        check(r.returncode == 0 and open(o2, "rb").read() == data, f"C unseals the reference's {size}-byte file")

        # A chunk the reference refuses is refused by C.
        if size > 0:
            bad = bytearray(blob2)
            bad[len(bad) - 20] ^= 1
            try:
                ref.unseal(bytes(bad), lambda h: dk)
                ref_ok = True
            except ref.EnvelopeError:
                ref_ok = False
            open(p2, "wb").write(bytes(bad))
            r = cli("unseal", "--key", key, p2, "-o", o2 + ".bad")
            check(not ref_ok and r.returncode == 1 and not os.path.exists(o2 + ".bad"),
                  f"both refuse a flipped bit ({size} bytes)")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
