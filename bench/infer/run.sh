#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: Cloister's runtime (`cloister infer-local --bench`) next to ONNX
# Runtime (npm onnxruntime-node) on the same models and inputs, 1 and 2
# threads, in the same run. Prints a markdown table of median / p99 latency and
# checks that both give the same output (rtol 1e-4).
#   bench/infer/run.sh [BUILD_DIR] [RUNS]
# Needs Debian's /usr/bin/python3 (torch, onnx) and node/npm. onnxruntime-node is
# installed into BUILD_DIR/bench-infer/node with ONNXRUNTIME_NODE_INSTALL=skip
# (its install script would otherwise try to download CUDA binaries).
# Take figures on an otherwise idle machine: anything else running skews them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
runs=${2:-20}
work=$build/bench-infer
bin=$build/bin/cloister
mkdir -p "$work/node"
if [ ! -d "$work/node/node_modules/onnxruntime-node" ]; then
  (cd "$work/node" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node \
     >"$work/npm.log" 2>&1) || { echo "bench: npm install onnxruntime-node failed: see $work/npm.log" >&2; exit 1; }
fi
ortver=$(node -e "console.log(require('$work/node/node_modules/onnxruntime-node/package.json').version)")
[ -f "$work/models/unet/model.onnx" ] || /usr/bin/python3 "$here/make_models.py" "$work/models" >/dev/null
echo "| model | threads | Cloister median (ms) | Cloister p99 | ORT $ortver median (ms) | ORT p99 | ratio | outputs match |"
echo "|---|---|---|---|---|---|---|---|"
for m in unet unet_folded resnet; do
  dir=$work/models/$m
  for t in 1 2; do
    c=$("$bin" infer-local "$dir/model.onnx" "$dir/input.npy" -o "$dir/cloister.npy" --force --threads "$t" \
          --bench "$runs" 2>/dev/null | grep '^bench:')
    o=$(NODE_PATH="$work/node/node_modules" node "$here/ort_bench.js" "$dir/model.onnx" "$dir/input.npy" "$t" \
          "$runs" "$dir/ort.npy")
    cm=$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$c"); cp=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$c")
    om=$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$o"); op=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$o")
    same=$(/usr/bin/python3 -c "import numpy as n,sys; a=n.load(sys.argv[1]); b=n.load(sys.argv[2]); \
print('yes' if a.shape==b.shape and n.allclose(a,b,rtol=1e-4,atol=1e-5) else 'NO')" "$dir/cloister.npy" "$dir/ort.npy")
    ratio=$(awk -v a="$cm" -v b="$om" 'BEGIN { printf "%.2f", a / b }')
    echo "| $m | $t | $cm | $cp | $om | $op | $ratio | $same |"
  done
done
