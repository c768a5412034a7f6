#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/s3: PUT and GET of 4 KiB, 1 MiB and 256 MiB objects (requests/s and GB/s) against each S3
server in the same run, the servers' peak memory, and a plain `cp` of the same 256 MiB as the
reference for large objects.

    /usr/bin/python3 bench/s3/run.py [--build build] [--small N] [--medium N] [--large N]
                                     [--cloister-kms [URL]]

Servers: npm s3rver (always), moto_server (where installed), and cloister-kms --dev when it serves
S3: started here (or at URL) and probed with a CreateBucket; a server that refuses it is reported
and left out.

The client is libcloister's S3 client (build/bench/s3, bench/s3/s3_bench.c), not boto3: a C client
on one kept-alive connection costs tens of microseconds a request, so the figures are the server's;
boto3 spends about a millisecond of Python per request and hashes bodies in Python's hashlib, which
would put its own ceiling on small-object rates. PUT bodies are signed with their SHA-256 (over
plain http, as the aws CLI does); 256 MiB goes up as a multipart upload of 8 MiB parts streamed from
a file, and comes down streamed into a file (fsynced, as `cp` here is followed by a sync). Peak
memory is the server process's VmHWM (/proc/PID/status) after the small and after the large objects:
a server whose memory holds whole objects shows it there. Benchmarks fail on nothing; the figures
are printed as a table and as JSON."""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import kms_harness  # noqa: E402
import s3_harness  # noqa: E402

SIZES = [("4 KiB", 4 << 10), ("1 MiB", 1 << 20), ("256 MiB", 256 << 20)]


def vmhwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_client(bench, peer, op, size, count, file=None):
    args = [bench, "--endpoint", peer.url, "--bucket", "bench", "--op", op, "--size", str(size), "--count",
            str(count)]
    if file:
        args += ["--file", file]
    p = subprocess.run(args, env=peer.env(), capture_output=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("%s %s %d on %s: %s" % (op, size, count, peer.name, p.stderr.decode().strip()))
    return json.loads(p.stdout)


def bench_peer(bench, peer, counts, big_file, out_dir):
    peer.boto3().create_bucket(Bucket="bench")
    rows = []
    for label, size in SIZES:
        count = counts[label]
        for op in ("put", "get"):
            file = None
            if size == SIZES[-1][1]:
                file = big_file if op == "put" else os.path.join(out_dir, "got")
            r = run_client(bench, peer, op, size, count, file)
            r["label"] = label
            rows.append(r)
            if file and op == "get":
                if subprocess.run(["cmp", big_file, file]).returncode != 0:
                    raise RuntimeError("%s: the 256 MiB object came back different" % peer.name)
                os.unlink(file)
        if peer.proc is not None:
            rows.append({"label": label, "op": "server_vmhwm_kib", "value": vmhwm_kib(peer.proc.pid)})
    return rows


def cp_reference(big_file, out_dir):
    dest = os.path.join(out_dir, "cp-copy")
    t0 = time.monotonic()
    subprocess.run(["cp", big_file, dest], check=True)
    subprocess.run(["sync", dest], check=True)
    dt = time.monotonic() - t0
    os.unlink(dest)
    return os.path.getsize(big_file) / dt / 1e9


@contextlib.contextmanager
def cloister_kms(url):
    if url:
        yield s3_harness.Peer("cloister-kms", url, "test", "test", None)
        return
    with kms_harness.kms_server() as srv:
        yield s3_harness.Peer("cloister-kms", srv.endpoint, "test", "test", srv.proc)


def serves_s3(peer):
    try:
        peer.boto3().create_bucket(Bucket="bench-probe")
        return True
    except Exception as e:  # noqa: BLE001 - any refusal means "not an S3 server (yet)"
        print("%s does not serve S3 (CreateBucket: %s): left out" % (peer.name, str(e).splitlines()[0]),
              file=sys.stderr)
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--small", type=int, default=500, help="4 KiB objects (default 500)")
    ap.add_argument("--medium", type=int, default=50, help="1 MiB objects (default 50)")
    ap.add_argument("--large", type=int, default=1, help="256 MiB objects (default 1)")
    ap.add_argument("--cloister-kms", nargs="?", const="", default=None, metavar="URL",
                    help="also cloister-kms (started --dev here, or at URL) when it serves S3")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "s3")
    counts = {"4 KiB": a.small, "1 MiB": a.medium, "256 MiB": a.large}
    tmp = tempfile.mkdtemp(prefix="bench-s3-")
    results = {}
    try:
        big = os.path.join(tmp, "big")
        with open(big, "wb") as f:
            for _ in range(256):
                f.write(os.urandom(1 << 20))
        results["cp_256mib_gb_per_s"] = cp_reference(big, tmp)
        starters = [("s3rver", s3_harness.s3rver)]
        if s3_harness.moto_path():
            starters.append(("moto_server", s3_harness.moto))
        else:
            print("moto_server is not installed here: left out", file=sys.stderr)
        if a.cloister_kms is not None:
            starters.append(("cloister-kms", lambda: cloister_kms(a.cloister_kms)))
        for name, start in starters:
            with start() as peer:
                if name == "cloister-kms" and not serves_s3(peer):
                    continue
                results[name] = bench_peer(bench, peer, counts, big, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("cp of 256 MiB (then sync): %.2f GB/s" % results["cp_256mib_gb_per_s"])
    print("%-13s %-8s %-4s %6s %10s %8s %14s" % ("server", "size", "op", "count", "req/s", "GB/s", "server VmHWM"))
    for name, rows in results.items():
        if not isinstance(rows, list):
            continue
        hwm = {r["label"]: r["value"] for r in rows if r["op"] == "server_vmhwm_kib"}
        for r in rows:
            if r["op"] == "server_vmhwm_kib":
                continue
            m = hwm.get(r["label"])
            print("%-13s %-8s %-4s %6d %10.1f %8.3f %14s" % (name, r["label"], r["op"], r["count"], r["req_per_s"],
                                                            r["gb_per_s"], "%d MiB" % (m // 1024) if m else "-"))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
