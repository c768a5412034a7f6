#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/api: the records API (issue 17), GET and POST of patient records over keep-alive HTTPS,
requests/s and p99, for each target in the same run: the walk-through's own stack (Flask + Redis,
bench/api/flask_app.py, started here, under werkzeug as the walk-through's app.run and under
gunicorn's threaded workers with keep-alive) and any deployment of the API given with --target, e.g.
cloister-api after `./scripts/hospital up`:

    /usr/bin/python3 bench/api/run.py [--duration S] [--connections N] [--wrk-threads N] [--records N]
        [--target name=cloister-api,url=https://127.0.0.1:4996,token-file=F,ca=cacert.pem,servername=api]
        [--no-flask] [--flask-servers werkzeug,gunicorn]

Each target is first seeded over one verified TLS connection (its CA) with --records records
bench_0 .. bench_<N-1> (the walk-through's 13 fields and the 30 measurements of wdbc.csv's first
row), then `wrk --latency` runs, for --duration seconds each:
  GET   GET /patient/bench_<i>, i cycling over the records
  POST  POST /patient/bench_<i>, the walk-through's form body (curl -d) plus the measurements:
        a replace of an existing record (200), each a full write of the store
over --connections keep-alive connections. The token goes to wrk in its Lua script (a 0600 temp
file), not in argv. wrk does not verify the server's certificate (the seeding did). Every answer
must be 2xx: wrk's "Non-2xx" count is checked and printed. wrk, the servers and Redis share the
machine's cores: record only figures taken on a quiet machine and say how (docs/performance.md).
Goal (issue 17): cloister-api at least 10x Flask's throughput with encryption on, p99 under 10 ms
at 32 connections."""
import argparse
import http.client
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from flask_stack import flask_stack  # noqa: E402

FIELDS = ("fname=Jane&lname=Doe&address='123 Main Street'&city=Richmond&state=Washington&ssn=123-223-2345"
          "&email=nr@aaa.com&dob=01/01/2010&contactphone=123-234-3456&drugallergies='Sulpha, Penicillin, Tree Nut'"
          "&preexistingconditions='diabetes, hypertension, asthma'&dateadmitted=01/05/2010"
          "&insurancedetails='Primera Blue Cross'")


FLASK_NAMES = {"werkzeug": "Flask (werkzeug)", "gunicorn": "Flask (gunicorn)"}


def wdbc_body():
    with open(os.path.join(HERE, "..", "..", "data", "wdbc", "wdbc.csv")) as f:
        names = f.readline().strip().split(",")
        values = f.readline().strip().split(",")
    meas = "&".join("%s=%s" % (n, v) for n, v in zip(names, values) if n != "diagnosis")
    return FIELDS + "&" + meas


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Conn(http.client.HTTPSConnection):
    """To the URL's address, verifying the certificate for another name (curl's --resolve)."""

    def __init__(self, host, port, servername, context):
        super().__init__(host, port, context=context, timeout=30)
        self.servername = servername

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.servername)


def seed(t, n, body):
    u = urllib.parse.urlsplit(t["url"])
    ctx = ssl.create_default_context(cafile=t["ca"])
    conn = _Conn(u.hostname, u.port or 443, t.get("servername", u.hostname), ctx)
    headers = {"Authorization": "Bearer " + t["token"], "Content-Type": "application/x-www-form-urlencoded"}
    try:
        for i in range(n):
            conn.request("POST", "%s/patient/bench_%d" % (u.path.rstrip("/"), i), body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if r.status not in (200, 201):
                raise RuntimeError("%s: seeding POST /patient/bench_%d answered %d: %s" %
                                   (t["name"], i, r.status, data[:300].decode(errors="replace")))
    finally:
        conn.close()


def script(kind, t, n, body):
    prefix = urllib.parse.urlsplit(t["url"]).path.rstrip("/")
    lines = ["local n = %d" % n, "local i = 0",
             'wrk.headers["Authorization"] = %s' % lua_string("Bearer " + t["token"])]
    if kind == "POST":
        lines += ['wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
                  "local body = %s" % lua_string(body)]
    # Each wrk thread starts at its own offset so the threads do not walk the same records together.
    lines += ["setup = function(thread) thread:set('i0', math.random(0, n - 1)) end",
              "init = function(args) i = tonumber(i0 or 0) end",
              "request = function()",
              "  i = (i + 1) % n",
              '  return wrk.format("%s", "%s/patient/bench_" .. i, nil, %s)' %
              (kind, prefix, "body" if kind == "POST" else "nil"),
              "end"]
    return "\n".join(lines) + "\n"


def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]


def run_wrk(t, lua, args, duration):
    fd, path = tempfile.mkstemp(suffix=".lua")  # 0600: it holds the token
    with os.fdopen(fd, "w") as f:
        f.write(lua)
    try:
        r = subprocess.run(["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", "%ds" % duration,
                            "--timeout", "10s", "--latency", "-s", path, t["url"]],
                           capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(path)
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk against %s failed (%d): %s %s" % (t["name"], r.returncode, out, r.stderr))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": float(m.group(1)), "p50_ms": unit(*p50.groups()), "p99_ms": unit(*p99.groups()),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else ""}


def parse_target(spec):
    t = dict(kv.split("=", 1) for kv in spec.split(",") if "=" in kv)
    missing = [k for k in ("name", "url", "token-file", "ca") if k not in t]
    if missing:
        raise argparse.ArgumentTypeError("--target needs name=,url=,token-file=,ca= (missing %s)" % ", ".join(missing))
    with open(t["token-file"]) as f:
        t["token"] = f.read().strip()
    return t


def bench(t, args, body, results):
    seed(t, args.records, body)
    for kind in ("GET", "POST"):
        lua = script(kind, t, args.records, body)
        run_wrk(t, lua, args, 2)  # warm-up
        results[(t["name"], kind)] = run_wrk(t, lua, args, args.duration)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per workload and target (default 10)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--target", type=parse_target, action="append", default=[],
                    help="name=NAME,url=https://HOST:PORT,token-file=FILE,ca=CA.pem[,servername=api] "
                         "(repeatable; servername: the name its certificate is for, when not URL's host)")
    ap.add_argument("--no-flask", action="store_true", help="do not start and measure the Flask peer")
    ap.add_argument("--flask-servers", default="werkzeug,gunicorn",
                    help="the Flask peer under werkzeug (the walk-through's app.run) and/or gunicorn (gthread)")
    args = ap.parse_args()
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be 1..600 seconds")
    if not shutil.which("wrk"):
        sys.exit("bench/api: wrk is not installed (./scripts/setup installs it)")
    body = wdbc_body()
    results = {}
    for t in args.target:
        bench(t, args, body, results)
    for server in [] if args.no_flask else args.flask_servers.split(","):
        tmp = tempfile.mkdtemp(prefix="bench-api-")
        try:
            with flask_stack(tmp, server=server) as s:
                bench({"name": FLASK_NAMES[server], "url": s.base_url, "ca": s.ca, "token": s.token}, args, body,
                      results)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("records API, wrk -t%d -c%d, keep-alive HTTPS, %d s per run, %d records, %d cores" %
          (args.wrk_threads, args.connections, args.duration, args.records, os.cpu_count()))
    print("%-18s %-5s %12s %10s %10s %8s" % ("server", "op", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
    for (name, kind), r in results.items():
        print("%-18s %-5s %12.0f %10.2f %10.2f %8d %s" % (name, kind, r["rps"], r["p50_ms"], r["p99_ms"], r["non2xx"],
                                                           r["socket_errors"]))
    for t in args.target:
        for kind in ("GET", "POST"):
            r = results[(t["name"], kind)]
            for peer in FLASK_NAMES.values():
                f = results.get((peer, kind))
                if f:
                    print("%s / %s, %s: %.1fx (goal >= 10x); p99 %.2f ms (goal < 10 ms)" %
                          (t["name"], peer, kind, r["rps"] / max(f["rps"], 1e-9), r["p99_ms"]))
    bad = [n for n, r in results.items() if r["non2xx"]]
    if bad:
        print("ERROR: non-2xx answers from %s: the figures above are not record throughput" %
              ", ".join("%s %s" % b for b in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
