#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Generates ONNX's backend node test data into the build tree, then runs the
# conformance runner over it. Args: SYSTEM_PYTHON RUNNER OUT_DIR XFAIL_FILE [BACKEND]
set -euo pipefail
py=$1 runner=$2 out=$3 xfail=$4 backend=${5:-reference}
here=$(dirname "$0")
rm -rf "$out"
"$py" "$here/gen_node_data.py" "$out" >/dev/null
exec "$runner" "$out/node" "$xfail" "$backend"
