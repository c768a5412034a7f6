#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/api/flask_app.py: the walk-through's own stack, Flask + Redis, serving the records API of
issue 17 (its HTTP contract: /patient/<id>, /patients, /score/<id>, /delineate; cloister-api,
src/guest/api, implements the same) as the reference peer that bench/api/run.py measures
cloister-api against and that the web page's browser test (tests/browser) runs against until
cloister-api lands.

    /usr/bin/python3 bench/api/flask_app.py --cert CERT.pem --key KEY.pem --tokens TOKENS \\
        --redis unix:///path/redis.sock|redis://127.0.0.1:6379 [--listen 127.0.0.1:4996]
        [--web DIR] [--cors-origin ORIGIN] [--stub-delineate]
        [--server werkzeug|gunicorn [--workers N] [--threads N]]

It prints `flask_app: listening on https://HOST:PORT` once it accepts connections (--listen with
port 0 picks a free port: read it from that line).

What it is, and is not, next to cloister-api:
- Records are JSON in Redis **in plaintext**: that is the walk-through's stack, the thing the
  enclave's AES-256-GCM store replaces. Never put real records in it.
- --server werkzeug (default): Werkzeug's threaded server, what `app.run(ssl_context=...)` runs in
  the walk-through; TLS by Python's ssl module. It answers `Connection: close` to every request
  (werkzeug/serving.py: "Always close the connection. This disables HTTP/1.1 keep-alive"), so
  each request costs a TCP connection and a TLS handshake, done one at a time by its accept loop.
- --server gunicorn: the same app under gunicorn's gthread workers (Debian's gunicorn), --workers
  processes of --threads threads, keep-alive: how Flask is deployed when it is not a demo; a
  fairer peer for throughput. No access log (gunicorn's default).
- `GET /score/<id>` answers 404 / 422 as the contract says, and **501** for a record that has
  measurements: the classifier's enclave is not part of this peer, and `score` in its records is
  always null.
- `POST /delineate` answers **501** unless started with --stub-delineate, which answers a fixed
  disc (not a model's output: a known mask so the web page's drawing can be tested).

TOKENS is a file (not argv: a token is a secret) of lines `<token> <scope>[,<scope>]`, scopes `read`
and `write`; blank lines and lines starting with # are ignored."""
import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import re
import ssl
import struct
import sys
import urllib.parse
import zlib

import flask
import redis
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

TEXT_FIELDS = ("fname", "lname", "address", "city", "state", "ssn", "email", "dob", "contactphone",
               "drugallergies", "preexistingconditions", "dateadmitted", "insurancedetails")
# The 30 WDBC columns, named as data/wdbc/wdbc.csv's header names them (the contract's source).
_WDBC = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave_points",
         "symmetry", "fractal_dimension")
MEASUREMENTS = (tuple("mean_" + m for m in _WDBC) + tuple(m + "_se" for m in _WDBC) +
                tuple("worst_" + m for m in _WDBC))
ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
FIELD_MAX = 1024
BODY_MAX = 64 * 1024
PNG_MAX = 4 * 1024 * 1024
STATIC = ("index.html", "app.js", "style.css")
STUB_NOTE = ("Stub of bench/api/flask_app.py --stub-delineate: a fixed disc, not a model's output. "
             "Not for clinical use.")
# A strict policy for the page: no inline script or style, nothing from elsewhere; the API may be
# at another https origin (the page's API base URL field).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self' https:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")


class ApiError(Exception):
    def __init__(self, status, code, reason, headers=None):
        super().__init__(reason)
        self.status, self.code, self.reason, self.headers = status, code, reason, headers or {}


def answer(status, obj, headers=None):
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    resp = flask.Response(body + "\n", status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def load_tokens(path):
    tokens = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            scopes = set(parts[1].split(",")) if len(parts) == 2 else set()
            if not scopes or not scopes <= {"read", "write"}:
                sys.exit("flask_app: %s line %d: expected `<token> read|write|read,write`" % (path, n))
            # Kept as SHA-256 digests: compared in constant time, whatever the lengths.
            tokens.append((hashlib.sha256(parts[0].encode()).digest(), scopes))
    if not tokens:
        sys.exit("flask_app: %s holds no token: add a line `<token> read,write`" % path)
    return tokens


def png_size(data):
    # PNG signature then the IHDR chunk: width and height, big-endian (RFC 2083, 4.1.1).
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ApiError(415, "UnsupportedMediaType", "the img field is not a PNG image: upload a .png file")
    w, h = struct.unpack(">II", data[16:24])
    if not (0 < w <= 4096 and 0 < h <= 4096):
        raise ApiError(400, "BadRequest", "the PNG is %dx%d: width and height must be 1..4096" % (w, h))
    return w, h


def grey_png(w, h, pixels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def stub_mask(w, h):
    # A disc at a fixed place (centre at 60 % / 40 % of the size, radius an eighth of the smaller side).
    cx, cy, r = 0.6 * w, 0.4 * h, max(1.0, min(w, h) / 8)
    pix = bytearray(w * h)
    for y in range(h):
        for x in range(w):
            if (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r:
                pix[y * w + x] = 255
    return bytes(pix)


def create_app(args):
    app = flask.Flask(__name__, static_folder=None)
    store = redis.Redis.from_url(args.redis)
    tokens = load_tokens(args.tokens)
    web = os.path.abspath(args.web) if args.web else None

    def authorize(need, what):
        auth = flask.request.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="cloister-api"'}
        if not auth:
            raise ApiError(401, "Unauthorized", "no Authorization header: send `Authorization: Bearer <token>`",
                           challenge)
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "Unauthorized", "the Authorization header is not `Bearer <token>`", challenge)
        given = hashlib.sha256(given.strip().encode()).digest()
        found = None
        for tok, scopes in tokens:  # every token compared, in constant time
            if hmac.compare_digest(tok, given):
                found = scopes
        if found is None:
            raise ApiError(401, "Unauthorized", "unknown token: sign in with a token the hospital issued",
                           challenge)
        if need not in found:
            raise ApiError(403, "Forbidden", "this token has scope %s; %s needs %s" %
                           (",".join(sorted(found)), what, need))

    def check_id(pid):
        if not ID_RE.match(pid):
            raise ApiError(400, "BadRequest", "the patient id must be 1 to 64 of A-Z a-z 0-9 _ . -")

    def read_body(limit):
        n = flask.request.content_length
        if n is None and flask.request.headers.get("Transfer-Encoding", "").lower() != "chunked":
            raise ApiError(411, "LengthRequired", "send the body with a Content-Length")
        if n is not None and n > limit:
            # Read and drop what the client is sending (up to 1 MiB) before answering: a server that
            # answers and closes while the client still writes makes the client's send fail (EPIPE,
            # curl's "Send failure") before it reads the 413 (integration.api_contract_flask, once in CI).
            left = min(n, 1 << 20)
            while left > 0:
                chunk = flask.request.stream.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
            raise ApiError(413, "PayloadTooLarge", "the body is %d bytes, the limit is %d" % (n, limit))
        data = flask.request.stream.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "PayloadTooLarge", "the body is over the limit of %d bytes" % limit)
        return data

    def parse_fields(data):
        ctype = flask.request.mimetype
        if ctype == "application/x-www-form-urlencoded":
            try:
                pairs = urllib.parse.parse_qsl(data.decode("utf-8"), keep_blank_values=True,
                                               strict_parsing=False, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise ApiError(400, "BadRequest", "the form body is not valid URL-encoded UTF-8")
        elif ctype == "application/json":
            try:
                obj = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise ApiError(400, "BadRequest", "the body is not valid JSON")
            if not isinstance(obj, dict):
                raise ApiError(400, "BadRequest", "the JSON body must be an object of fields")
            pairs = list(obj.items())
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           "send application/x-www-form-urlencoded or application/json, not %s" % (ctype or "nothing"))
        rec, meas = {}, {}
        for k, v in pairs:
            if k in rec or k in meas:
                raise ApiError(400, "BadRequest", "field %s is given twice" % k)
            if k in TEXT_FIELDS:
                if not isinstance(v, str):
                    raise ApiError(400, "BadRequest", "field %s must be a string" % k)
                if len(v.encode("utf-8")) > FIELD_MAX:
                    raise ApiError(400, "BadRequest", "field %s is over %d bytes" % (k, FIELD_MAX))
                rec[k] = v
            elif k in MEASUREMENTS:
                try:
                    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                        raise ValueError
                    num = float(v)
                    if isinstance(v, str) and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v):
                        raise ValueError
                    if not math.isfinite(num):
                        raise ValueError
                except ValueError:
                    raise ApiError(400, "BadRequest", "measurement %s must be a decimal number" % k)
                meas[k] = num
            else:
                raise ApiError(400, "BadRequest", "unknown field %s: see the 13 record fields and the 30 "
                               "measurement columns of data/wdbc/wdbc.csv" % k)
        if meas and len(meas) != len(MEASUREMENTS):
            missing = [m for m in MEASUREMENTS if m not in meas]
            raise ApiError(400, "BadRequest", "give all 30 measurements or none: %d missing, first %s" %
                           (len(missing), missing[0]))
        rec.update(meas)
        return rec

    @app.errorhandler(ApiError)
    def api_error(e):
        return answer(e.status, {"error": e.code, "reason": e.reason}, e.headers)

    @app.errorhandler(HTTPException)
    def http_error(e):
        names = {404: ("NotFound", "no such route: see the API's routes"),
                 405: ("MethodNotAllowed", "method %s is not allowed here" % flask.request.method)}
        code, reason = names.get(e.code, (e.name.replace(" ", ""), e.description))
        headers = {"Allow": ", ".join(e.valid_methods)} if getattr(e, "valid_methods", None) else None
        return answer(e.code, {"error": code, "reason": reason}, headers)

    @app.errorhandler(redis.RedisError)
    def redis_error(e):
        app.logger.error("redis: %s", e)
        return answer(503, {"error": "ServiceUnavailable", "reason": "the record store is unreachable: retry later"})

    @app.before_request
    def before():
        if flask.request.method == "OPTIONS":
            resp = flask.Response(status=204)
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Accept"
            resp.headers["Access-Control-Max-Age"] = "600"
            return resp
        return None

    @app.after_request
    def after(resp):
        resp.headers["Access-Control-Allow-Origin"] = args.cors_origin
        resp.headers["X-Content-Type-Options"] = "nosniff"
        if resp.mimetype == "application/json":
            resp.headers["Cache-Control"] = "no-store"  # records are not for caches
        return resp

    @app.get("/")
    @app.get("/<any(%s):name>" % ",".join('"%s"' % s for s in STATIC))
    def static_file(name="index.html"):
        if web is None:
            raise ApiError(404, "NotFound", "this server was started without --web: no page here")
        resp = flask.send_from_directory(web, name, max_age=0)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @app.route("/patient/<pid>", methods=["GET", "POST", "DELETE"])
    def patient(pid):
        method = flask.request.method
        authorize("read" if method == "GET" else "write", "%s /patient" % method)
        check_id(pid)
        key = "patient:" + pid
        if method == "GET":
            raw = store.get(key)
            if raw is None:
                raise ApiError(404, "NotFound", "no patient %s" % pid)
            return answer(200, json.loads(raw))
        if method == "DELETE":
            pipe = store.pipeline(transaction=True)
            pipe.delete(key)
            pipe.zrem("patients", pid)
            if pipe.execute()[0] == 0:
                raise ApiError(404, "NotFound", "no patient %s" % pid)
            return answer(200, {"id": pid, "deleted": True})
        rec = parse_fields(read_body(BODY_MAX))
        rec["id"] = pid
        rec["score"] = None  # no classifier in this peer (see the module's docstring)
        pipe = store.pipeline(transaction=True)
        pipe.set(key, json.dumps(rec, sort_keys=True), get=True)
        pipe.zadd("patients", {pid: 0})
        old = pipe.execute()[0]
        return answer(201 if old is None else 200, rec)

    @app.get("/patients")
    def patients():
        authorize("read", "GET /patients")
        limit_s = flask.request.args.get("limit", "100")
        if not re.fullmatch(r"\d{1,4}", limit_s) or not 1 <= int(limit_s) <= 1000:
            raise ApiError(400, "BadRequest", "limit must be 1..1000")
        limit = int(limit_s)
        after = flask.request.args.get("after")
        if after is not None:
            check_id(after)
        ids = [i.decode() for i in store.zrangebylex("patients", "(" + after if after else "-", "+", 0, limit + 1)]
        nxt = ids[limit - 1] if len(ids) > limit else None
        return answer(200, {"ids": ids[:limit], "next": nxt})

    @app.get("/score/<pid>")
    def score(pid):
        authorize("read", "GET /score")
        check_id(pid)
        raw = store.get("patient:" + pid)
        if raw is None:
            raise ApiError(404, "NotFound", "no patient %s" % pid)
        if MEASUREMENTS[0] not in json.loads(raw):
            raise ApiError(422, "NoMeasurements", "patient %s has no measurements: POST the 30 WDBC "
                           "measurements to /patient/%s first" % (pid, pid))
        raise ApiError(501, "NotImplemented", "the Flask reference peer has no classifier: use cloister-api")

    @app.post("/delineate")
    def delineate():
        authorize("read", "POST /delineate")
        if flask.request.content_length is not None and flask.request.content_length > PNG_MAX + 64 * 1024:
            raise ApiError(413, "PayloadTooLarge", "the upload is over %d bytes" % PNG_MAX)
        if not args.stub_delineate:
            raise ApiError(501, "NotImplemented", "the Flask reference peer has no MRI model: use cloister-api")
        if flask.request.mimetype != "multipart/form-data":
            raise ApiError(415, "UnsupportedMediaType", "send multipart/form-data with the PNG in field img")
        f = flask.request.files.get("img")
        if f is None:
            raise ApiError(400, "BadRequest", "no img field: send the PNG as -F img=@slice.png")
        data = f.read(PNG_MAX + 1)
        if len(data) > PNG_MAX:
            raise ApiError(413, "PayloadTooLarge", "the PNG is over %d bytes" % PNG_MAX)
        w, h = png_size(data)
        pix = stub_mask(w, h)
        mask = grey_png(w, h, pix)
        if "application/json" not in flask.request.headers.get("Accept", ""):
            return flask.Response(mask, mimetype="image/png")
        xs = [i % w for i, v in enumerate(pix) if v]
        ys = [i // w for i, v in enumerate(pix) if v]
        bbox = {"x": min(xs), "y": min(ys), "width": max(xs) - min(xs) + 1, "height": max(ys) - min(ys) + 1} \
            if xs else None
        return answer(200, {"model": "flask-stub-disc", "note": STUB_NOTE, "width": w, "height": h,
                            "lesion_pixels": len(xs), "bbox": bbox,
                            "mask_png": base64.b64encode(mask).decode()})

    return app


def serve_gunicorn(args, host, port):
    from gunicorn.app.base import BaseApplication

    def when_ready(server):
        bound = server.LISTENERS[0].sock.getsockname()
        print("flask_app: listening on https://%s:%d" % (bound[0], bound[1]), flush=True)

    class App(BaseApplication):
        def load_config(self):
            for k, v in (("bind", "%s:%s" % (host, port)), ("workers", args.workers), ("worker_class", "gthread"),
                         ("threads", args.threads), ("keepalive", 30), ("certfile", args.cert),
                         ("keyfile", args.key), ("when_ready", when_ready)):
                self.cfg.set(k, v)

        def load(self):
            return create_app(args)

    App().run()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:4996", help="HOST:PORT (port 0: a free one)")
    ap.add_argument("--cert", required=True, help="server certificate chain, PEM")
    ap.add_argument("--key", required=True, help="its private key, PEM")
    ap.add_argument("--tokens", required=True, help="file of `<token> <scopes>` lines")
    ap.add_argument("--redis", required=True, help="redis://HOST:PORT or unix:///path/to/redis.sock")
    ap.add_argument("--web", help="directory of the page (index.html, app.js, style.css) served at /")
    ap.add_argument("--cors-origin", default="*")
    ap.add_argument("--server", choices=("werkzeug", "gunicorn"), default="werkzeug")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="gunicorn: processes (default: cores)")
    ap.add_argument("--threads", type=int, default=32, help="gunicorn: threads per process")
    ap.add_argument("--stub-delineate", action="store_true",
                    help="POST /delineate answers a fixed disc (for the web page's test), not 501")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    redis.Redis.from_url(args.redis).ping()  # fail now, not at the first request
    if args.server == "gunicorn":
        return serve_gunicorn(args, host, port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    app = create_app(args)
    srv = make_server(host, int(port), app, threaded=True, ssl_context=ctx)
    print("flask_app: listening on https://%s:%d" % (host, srv.server_port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
