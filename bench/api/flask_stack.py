# SPDX-License-Identifier: Apache-2.0
"""Starts the walk-through's stack on this machine for a benchmark or a test: a throw-away CA and a
server certificate for `api`, `localhost` and 127.0.0.1 made with `openssl req`, a private
redis-server on a Unix socket (no TCP port, nothing persisted), bench/api/flask_app.py on a free
127.0.0.1 port, and two bearer tokens (read,write and read-only) in files.

    with flask_stack(tmpdir, web=..., stub_delineate=True) as s:
        s.base_url, s.ca, s.token_file, s.read_token_file, s.token

Every wait is on a readiness line the server prints, never a sleep."""
import contextlib
import os
import secrets
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args[:3]), r.returncode, r.stderr.strip()))
    return r


def make_pki(d):
    """A CA (ca.pem) and a server certificate chain (cert.pem: leaf then CA) with its key (key.pem)."""
    ca_key, ca, key, csr, cert = (os.path.join(d, n) for n in ("ca.key", "ca.pem", "key.pem", "req.csr", "leaf.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
          "-subj", "/CN=cloister bench-api test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=api"])
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:api,DNS:localhost,IP:127.0.0.1\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
          "-days", "2", "-extfile", ext, "-out", cert])
    chain = os.path.join(d, "cert.pem")
    with open(chain, "w") as out, open(cert) as a, open(ca) as b:
        out.write(a.read() + b.read())
    return ca, chain, key


def _wait_line(proc, needle, what, log):
    for line in proc.stdout:
        log.append(line)
        if needle in line.lower():
            return line
    proc.wait()
    raise RuntimeError("%s exited (%s) before it was ready: %s" % (what, proc.returncode, "".join(log[-20:])))


class Stack:
    pass


@contextlib.contextmanager
def flask_stack(d, web=None, stub_delineate=False, python="/usr/bin/python3", server="werkzeug"):
    os.makedirs(d, exist_ok=True)
    s = Stack()
    s.ca, cert, key = make_pki(d)
    s.token, s.read_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = os.path.join(d, "tokens")
    with open(os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("%s read,write\n%s read\n" % (s.token, s.read_token))
    s.token_file, s.read_token_file = os.path.join(d, "token"), os.path.join(d, "read-token")
    for path, tok in ((s.token_file, s.token), (s.read_token_file, s.read_token)):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(tok + "\n")
    sock = os.path.join(d, "redis.sock")
    procs = []
    try:
        rlog = []
        redis_p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                                    "--save", "", "--appendonly", "no", "--dir", d],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(redis_p)
        _wait_line(redis_p, "ready to accept connections", "redis-server", rlog)
        s.redis_url = "unix://" + sock
        args = [python, os.path.join(HERE, "flask_app.py"), "--listen", "127.0.0.1:0", "--cert", cert,
                "--key", key, "--tokens", tokens, "--redis", s.redis_url]
        if web:
            args += ["--web", web]
        if stub_delineate:
            args.append("--stub-delineate")
        args += ["--server", server]
        # The request log (one line per request, the walk-through's default) goes to a file.
        s.flask_log = os.path.join(d, "flask.log")
        with open(s.flask_log, "w") as errf:
            flask_p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, text=True)
        procs.append(flask_p)
        flog = []
        try:
            line = _wait_line(flask_p, "listening on ", "flask_app.py", flog)
        except RuntimeError as e:
            with open(s.flask_log) as f:
                raise RuntimeError("%s; its stderr: %s" % (e, f.read()[-2000:]))
        s.base_url = line.split("listening on ", 1)[1].strip()
        s.procs = procs
        yield s
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
