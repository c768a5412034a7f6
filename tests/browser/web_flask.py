#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The web page's browser test (tests/browser/web_test.js) against the walk-through's Flask + Redis
stack (bench/api/flask_app.py, started here by bench/api/flask_stack.py: a throw-away CA from
`openssl req`, redis-server on a Unix socket, the app on a free 127.0.0.1 port, serving web/ at /),
with --stub-delineate: POST /delineate answers a fixed disc, so the page's drawing is tested
against a known mask. Until cloister-api lands this is the page's only API; point web_test.js at
cloister-api with its own --base-url, --token-file and --ca (its header says how).

    /usr/bin/python3 tests/browser/web_flask.py --png TCGA_CS_4944.png --artifacts DIR

Exit 77 (skip) only when Chromium cannot start here (web_test.js says why)."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "api"))
from flask_stack import flask_stack  # noqa: E402


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
        with flask_stack(tmp, web=os.path.join(ROOT, "web"), stub_delineate=True, python="/usr/bin/python3") as s:
            rc = subprocess.run(["node", os.path.join(HERE, "web_test.js"), "--base-url", s.base_url,
                                 "--token-file", s.token_file, "--ca", s.ca, "--png", args.png,
                                 "--artifacts", args.artifacts], timeout=300).returncode
            if rc not in (0, 77):
                with open(s.flask_log) as f:
                    sys.stderr.write("flask_app.py's log (last lines):\n" + "".join(f.readlines()[-30:]))
            return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
