#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's examples, pasted into a shell as a new user would: they must work.
source "$(dirname "$0")/lib.sh"
README="$CLOISTER_SOURCE_DIR/README.md"
mkdir -p bin && ln -s "$C" bin/cloister

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
absent wrong.out
finish
