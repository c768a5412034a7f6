#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: Cloister's runtime (`cloister infer-local --bench`) next to ONNX
# Runtime (npm onnxruntime-node) on the same models and inputs, 1 and 2
# threads, in the same run. Prints a markdown table of median / p99 latency,
# Cloister's also with --direct-conv (no Winograd), peak memory, and checks
# that all three give the same output (rtol 1e-4).
#   bench/infer/run.sh [BUILD_DIR] [RUNS]
# Needs Debian's /usr/bin/python3 (torch, onnx) and node/npm (./scripts/setup installs them).
# onnxruntime-node is installed into BUILD_DIR/bench-infer/node by `npm ci`, exactly the version
# and dependencies of bench/infer/package-lock.json, with ONNXRUNTIME_NODE_INSTALL=skip (its
# install script would otherwise try to download CUDA binaries).
# Take figures on an otherwise idle machine: anything else running skews them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
runs=${2:-20}
work=$build/bench-infer
bin=$build/bin/cloister
mkdir -p "$work/node"
if [ ! -d "$work/node/node_modules/onnxruntime-node" ] || ! cmp -s "$here/package-lock.json" "$work/node/package-lock.json"; then
  cp "$here/package.json" "$here/package-lock.json" "$work/node/"
  (cd "$work/node" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >"$work/npm.log" 2>&1) ||
    { echo "bench: npm ci (onnxruntime-node, bench/infer/package-lock.json) failed: see $work/npm.log" >&2; exit 1; }
fi
ortver=$(node -e "console.log(require('$work/node/node_modules/onnxruntime-node/package.json').version)")
[ -f "$work/models/unet/model.onnx" ] || /usr/bin/python3 "$here/make_models.py" "$work/models" >/dev/null
echo "| model | threads | Cloister median (ms) | Cloister p99 | --direct-conv median | ORT $ortver median (ms) | ORT p99 | ratio | --direct-conv ratio | peak MiB (--direct-conv) | outputs match |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
field() { sed -E "s/.*$1 ([0-9.]+).*/\1/" <<<"$2"; }
for m in unet unet_folded resnet; do
  dir=$work/models/$m
  for t in 1 2; do
    c=$("$bin" infer-local "$dir/model.onnx" "$dir/input.npy" -o "$dir/cloister.npy" --force --threads "$t" \
          --bench "$runs" 2>/dev/null | grep '^bench:')
    o=$(NODE_PATH="$work/node/node_modules" node "$here/ort_bench.js" "$dir/model.onnx" "$dir/input.npy" "$t" \
          "$runs" "$dir/ort.npy")
    d=$("$bin" infer-local "$dir/model.onnx" "$dir/input.npy" -o "$dir/direct.npy" --force --threads "$t" \
          --bench "$runs" --direct-conv 2>/dev/null | grep '^bench:')
    cm=$(field median "$c"); cp=$(field p99 "$c"); cmem=$(field 'peak memory' "$c")
    dm=$(field median "$d"); dmem=$(field 'peak memory' "$d")
    om=$(field median "$o"); op=$(field p99 "$o")
    same=$(/usr/bin/python3 -c "import numpy as n,sys; o=n.load(sys.argv[1]); \
ok=[(lambda a: a.shape==o.shape and n.allclose(a,o,rtol=1e-4,atol=1e-5))(n.load(f)) for f in sys.argv[2:]]; \
print('yes' if all(ok) else 'NO')" "$dir/ort.npy" "$dir/cloister.npy" "$dir/direct.npy")
    ratio=$(awk -v a="$cm" -v b="$om" 'BEGIN { printf "%.2f", a / b }')
    dratio=$(awk -v a="$dm" -v b="$om" 'BEGIN { printf "%.2f", a / b }')
    echo "| $m | $t | $cm | $cp | $dm | $om | $op | $ratio | $dratio | $cmem ($dmem) | $same |"
  done
done
