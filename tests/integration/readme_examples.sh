#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's examples, pasted into a shell as a new user would: they must work.
source "$(dirname "$0")/lib.sh"
README="$CLOISTER_SOURCE_DIR/README.md"
mkdir -p bin && ln -s "$C" bin/cloister
ln -s "$CLOISTER_SOURCE_DIR/data" data # the training example reads data/wdbc/wdbc.csv

# Every ```sh block after the two-commands section, run in this directory.
awk '/^## Seal and unseal/{on=1} on && /^```sh$/{inb=1; next} inb && /^```$/{inb=0; next} inb{print}' "$README" |
  sed "s#^export PATH=.*#export PATH=\"$T/bin:\$PATH\"#" > examples.sh
lines=$(wc -l < examples.sh)
[ "$lines" -ge 8 ] && ok "extracted $lines example lines" || bad "only $lines example lines extracted"
out=$(bash examples.sh 2>&1)
grep -q "round trip ok" <<<"$out" && ok "seal/unseal example round-trips" || bad "seal/unseal example: $out"
grep -q 'wrong encryption context: "patient" is "1234" in the file, not "9999"' <<<"$out" \
  && ok "wrong-context example prints the documented error" || bad "wrong-context example: $out"
grep -qx "age,radius,texture" <<<"$out" && ok "fernet example round-trips" || bad "fernet example: $out"
grep -q "^test: accuracy 0.9735  roc_auc 0.9990" <<<"$out" && ok "training example prints the documented figures" \
  || bad "training example: $out"
# The label and layout, not the last digits: oneDNN's Gemm may round differently on another CPU.
grep -qE '^\{"label": "malignant", "probabilities": \{"benign": [0-9.e-]+, "malignant": [0-9.e-]+\}\}$' <<<"$out" \
  && ok "classifier example prints the documented result" || bad "classifier example: $out"
absent wrong.out
finish
