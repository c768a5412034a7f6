#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The web page's browser test (tests/browser/web_test.js) against the walk-through's Flask + Redis
stack (bench/api/flask_app.py, started here by bench/api/flask_stack.py: a throw-away CA from
`openssl req`, redis-server on a Unix socket, the app on a free 127.0.0.1 port, serving web/ at /),
with --stub-delineate: POST /delineate answers a fixed disc, so the page's drawing is tested
against a known mask. It runs twice: the page as the API serves it at /, then the same files from
a static host of another origin (a plain HTTP server here, with a strict CSP of its own) with the
API's URL typed into the page: CORS. Until cloister-api lands this is the page's only API; point web_test.js at
cloister-api with its own --base-url, --token-file and --ca (its header says how).

    /usr/bin/python3 tests/browser/web_flask.py --png TCGA_CS_4944.png --artifacts DIR

Exit 77 (skip) only when Chromium cannot start here (web_test.js says why)."""
import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "api"))
from flask_stack import flask_stack  # noqa: E402


class StaticHost(http.server.SimpleHTTPRequestHandler):
    csp = ""

    def end_headers(self):
        self.send_header("Content-Security-Policy", self.csp)
        super().end_headers()

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--png", required=True, help="the MRI slice to upload (TCGA_CS_4944.png)")
    ap.add_argument("--artifacts", required=True, help="directory for the screenshots")
    args = ap.parse_args()
    if not os.path.isfile(args.png):
        sys.exit("web_flask: %s is missing: it is ../shared/data/mri/TCGA_CS_4944.png beside the repository "
                 "(configure with -DCLOISTER_MRI_SLICE=PATH to use another copy)" % args.png)
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        sys.exit("web_flask: npm playwright-core is not installed in %s/node_modules: run ./scripts/setup "
                 "(it runs `npm ci` there)" % HERE)
    tmp = tempfile.mkdtemp(prefix="web-flask-")
    try:
        with flask_stack(tmp, web=os.path.join(ROOT, "web"), stub_delineate=True) as s:
            StaticHost.csp = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src %s; "
                              "frame-ancestors 'none'" % s.base_url)
            static = http.server.ThreadingHTTPServer(
                ("127.0.0.1", 0), functools.partial(StaticHost, directory=os.path.join(ROOT, "web")))
            threading.Thread(target=static.serve_forever, daemon=True).start()
            try:
                cmd = ["node", os.path.join(HERE, "web_test.js"), "--base-url", s.base_url, "--token-file",
                       s.token_file, "--ca", s.ca, "--png", args.png, "--artifacts", args.artifacts]
                print("== the page served by the API", flush=True)
                rc = subprocess.run(cmd, timeout=300).returncode
                if rc == 0:
                    print("== the page from a static host, http://127.0.0.1:%d/" % static.server_port, flush=True)
                    rc = subprocess.run(cmd + ["--page-url", "http://127.0.0.1:%d/" % static.server_port],
                                        timeout=300).returncode
            finally:
                static.shutdown()
            if rc not in (0, 77):
                with open(s.flask_log) as f:
                    sys.stderr.write("flask_app.py's log (last lines):\n" + "".join(f.readlines()[-30:]))
            return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
