#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the reference models with PyTorch (fixed seeds) into the build tree,
# then checks the runtime against PyTorch's outputs, through the library and
# through `cloister infer-local`.
# Args: SYSTEM_PYTHON CHECKER OUT_DIR [--large]
set -euo pipefail
py=$1 checker=$2 out=$3 large=${4:-}
here=$(dirname "$0")
rm -rf "$out"
mkdir -p "$out"
"$py" "$here/make_models.py" "$out" $large
models=(mlp unet_small unet_small_bn resnet_small)
[ -n "$large" ] && models+=(unet)
dirs=()
for m in "${models[@]}"; do dirs+=("$out/$m"); done
"$checker" "${dirs[@]}"
for m in mlp unet_small_bn resnet_small; do
  "$CLOISTER_BIN" infer-local "$out/$m/model.onnx" "$out/$m/input.npy" -o "$out/$m/cli.npy"
  "$checker" --npy "$out/$m/cli.npy" "$out/$m/expected.npy"
done
# The U-Net at 64x64 runs its upper 3x3 convolutions as Winograd by default;
# --direct-conv runs them all with the direct kernel: both match PyTorch.
"$CLOISTER_BIN" infer-local --direct-conv "$out/unet_small/model.onnx" "$out/unet_small/input.npy" \
  -o "$out/unet_small/cli_direct.npy"
"$checker" --npy "$out/unet_small/cli_direct.npy" "$out/unet_small/expected.npy"
# The reference kernels through the CLI too.
"$CLOISTER_BIN" infer-local --reference "$out/unet_small/model.onnx" "$out/unet_small/input.npy" \
  -o "$out/unet_small/cli_ref.npy"
"$checker" --npy "$out/unet_small/cli_ref.npy" "$out/unet_small/expected.npy"
# Usage errors exit 2, failures 1.
set +e
"$CLOISTER_BIN" infer-local "$out/mlp/model.onnx" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "missing INPUT: expected exit 2"; exit 1; }
"$CLOISTER_BIN" infer-local "$out/mlp/input.npy" "$out/mlp/input.npy" >/dev/null 2>&1
[ $? -eq 1 ] || { echo "a .npy as model: expected exit 1"; exit 1; }
"$CLOISTER_BIN" infer-local "$out/unet_small/model.onnx" "$out/mlp/input.npy" 2>"$out/err.txt"
[ $? -eq 1 ] && grep -q "input 'input' has shape \[4,30\]" "$out/err.txt" || { echo "wrong input shape not reported"; exit 1; }
set -e
"$CLOISTER_BIN" infer-local --help | grep -q '^Usage: cloister infer-local'
# --bench and --profile report latency and per-op time (all 19 Conv nodes of the U-Net ran in oneDNN, 3 runs;
# none in a build without oneDNN, CLOISTER_TEST_ONEDNN=0).
conv_dnn=57
[ "${CLOISTER_TEST_ONEDNN:-1}" = 1 ] || conv_dnn=0
"$CLOISTER_BIN" infer-local "$out/unet_small/model.onnx" "$out/unet_small/input.npy" --bench 2 --profile \
  >/dev/null 2>"$out/profile.txt"
grep -qE "^profile \(all runs\): Conv +57 +$conv_dnn " "$out/profile.txt" || { cat "$out/profile.txt"; exit 1; }
"$CLOISTER_BIN" infer-local "$out/unet_small/model.onnx" "$out/unet_small/input.npy" --bench 2 |
  grep -qE '^bench: 2 runs, median [0-9.]+ ms, p99 [0-9.]+ ms'
# The printed form names the output and its shape.
"$CLOISTER_BIN" infer-local "$out/mlp/model.onnx" "$out/mlp/input.npy" | grep -q '^output: float32 \[4, 2\]'
