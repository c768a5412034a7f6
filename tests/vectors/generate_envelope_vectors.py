# SPDX-License-Identifier: Apache-2.0
"""Writes tests/vectors/envelope_v1.json from the independent Python
implementation (tests/integration/envelope_ref.py). Inputs are fixed, so the
output is reproducible: `/usr/bin/python3 tests/vectors/generate_envelope_vectors.py`
rewrites the same file. The C unit tests must reproduce every byte."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import envelope_ref as ref  # noqa: E402


def pattern(n):
    return bytes(i % 251 for i in range(n))


def main():
    data_key = bytes(range(32))
    salt = bytes(range(0x40, 0x60))
    wrapped = b"wrapped-data-key-for-vectors"
    cases = [
        ("empty", {}, 4096, 0),
        ("short-with-context", {"patient": "42", "purpose": "inference"}, 4096, 5),
        ("one-full-chunk", {}, 4096, 4096),
        ("two-full-chunks", {"a": "1"}, 4096, 8192),
        ("three-chunks", {"Z": "upper", "a": "lower", "hospital": "St. Elsewhere"}, 4096, 2 * 4096 + 100),
    ]
    out = {"envelope_v1": [], "local_wrap_v1": []}
    for name, ctx, cs, n in cases:
        pt = pattern(n) if name != "short-with-context" else b"hello"
        sealed = ref.seal(data_key, "test", "test-key", wrapped, ctx, cs, salt, pt)
        out["envelope_v1"].append({
            "name": name, "provider": "test", "key_id": "test-key", "wrapped_key": wrapped.hex(),
            "data_key": data_key.hex(), "context": ctx, "chunk_size": cs, "salt": salt.hex(),
            "plaintext": pt.hex(), "sealed": sealed.hex(),
        })
    kek = bytes(range(0xA0, 0xC0))
    for name, ctx in [("no-context", {}), ("context", {"patient": "42"})]:
        wn = bytes(range(12))
        w = ref.local_wrap(kek, data_key, ctx, wn)
        out["local_wrap_v1"].append({
            "name": name, "kek": kek.hex(), "key_id": ref.local_key_id(kek), "context": ctx,
            "wrapped_key": w.hex(), "data_key": data_key.hex(),
        })
    path = os.path.join(os.path.dirname(__file__), "envelope_v1.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
