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
# The printed form names the output and its shape.
"$CLOISTER_BIN" infer-local "$out/mlp/model.onnx" "$out/mlp/input.npy" | grep -q '^output: float32 \[4, 2\]'
