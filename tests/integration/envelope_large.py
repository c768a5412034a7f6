# SPDX-License-Identifier: Apache-2.0
"""A 4 GiB file seals and unseals in constant memory: peak RSS of each
`cloister` process must stay under 16 MiB, and the result must be
byte-identical. The input is a sparse file, so the test costs disk writes of
the sealed and unsealed forms only; both are deleted as soon as checked."""
import os
import subprocess
import sys
import tempfile
import time

C = os.environ["CLOISTER_BIN"]
SIZE = int(os.environ.get("CLOISTER_LARGE_BYTES", str(4 << 30)))
LIMIT_KIB = 16 * 1024


def run(args):
    # GNU time measures the peak RSS of the command alone (a fork from Python
    # would count the interpreter's pages in ru_maxrss).
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "maxrss_kib=%M", C, *args], capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    rss = int(lines[-1].split("=")[1]) if lines and lines[-1].startswith("maxrss_kib=") else 1 << 30
    return p.returncode, rss, time.monotonic() - t0, "\n".join(lines[:-1])


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


failed = 0
with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
    if free_bytes(d) < 2 * SIZE + (1 << 30):
        print(f"not ok - needs {2 * SIZE >> 30} GiB free in {d}, have {free_bytes(d) >> 30} GiB")
        print("0 passed, 1 failed")
        sys.exit(1)
    key, src = os.path.join(d, "k.key"), os.path.join(d, "big.bin")
    sealed, back = src + ".sealed", src + ".out"
    subprocess.run([C, "key", "local-create", "-o", key], check=True, capture_output=True)
    with open(src, "wb") as f:
        f.truncate(SIZE)
        f.seek(SIZE // 3)
        f.write(b"a marker in the middle")
    results = []
    for name, args, check_file in [("seal", ["seal", "--key", key, src, "-o", sealed], sealed),
                                   ("unseal", ["unseal", "--key", key, sealed, "-o", back], back)]:
        rc, rss, secs, err = run(args)
        ok = rc == 0 and rss < LIMIT_KIB
        print(f"{'ok' if ok else 'not ok'} - {name} {SIZE >> 20} MiB: exit {rc}, peak RSS {rss / 1024:.1f} MiB "
              f"(limit 16), {secs:.1f} s ({SIZE / secs / 1e9:.2f} GB/s){(' ' + err) if err else ''}")
        failed += not ok
    same = subprocess.run(["cmp", src, back]).returncode == 0
    print(f"{'ok' if same else 'not ok'} - unsealed file is identical to the input")
    failed += not same
print(f"{3 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
