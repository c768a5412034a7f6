#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's examples, pasted into a shell as a new user would: they must work.
source "$(dirname "$0")/lib.sh"
README="$CLOISTER_SOURCE_DIR/README.md"
# The README runs in the repository, with build/bin on PATH; here the build under test and the
# source tree stand in for them, and Debian's aws CLI (AWS_CLI) is the `aws` the examples call.
mkdir -p bin && ln -s "${AWS_CLI:-/usr/bin/aws}" bin/aws
# The README's KMS example listens on 4599; here a free port stands in for it, so
# the test does not collide with anything else on the machine.
PORT=$("$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Every ```sh block after the two-commands section, run in this directory; its scratch
# directory (mktemp -d) is made here too, and removed with it.
awk '/^## Seal and unseal/{on=1} on && /^```sh$/{inb=1; next} inb && /^```$/{inb=0; next} inb{print}' "$README" |
  sed -e "s#\"\$PWD/build/bin:#\"$(dirname "$C"):$T/bin:#" -e "s#REPO=\"\$PWD\"#REPO=\"$CLOISTER_SOURCE_DIR\"#" \
      -e "s#4599#$PORT#g" > examples.sh.body
# A background server the examples start must not outlive them, even when one fails.
{ echo "trap 'kill \$(jobs -p) 2>/dev/null' EXIT"; cat examples.sh.body; echo wait; } > examples.sh
lines=$(wc -l < examples.sh)
[ "$lines" -ge 8 ] && ok "extracted $lines example lines" || bad "only $lines example lines extracted"
grep -q "^export PATH=\"$(dirname "$C"):$T/bin:\$PATH\" REPO=\"$CLOISTER_SOURCE_DIR\"$" examples.sh &&
  ok "the examples' PATH and REPO point at this build and source tree" || bad "PATH line not replaced: $(head -3 examples.sh)"
out=$(TMPDIR=$T timeout 300 bash examples.sh 2>&1)
grep -q "round trip ok" <<<"$out" && ok "seal/unseal example round-trips" || bad "seal/unseal example: $out"
grep -q 'wrong encryption context: "patient" is "1234" in the file, not "9999"' <<<"$out" \
  && ok "wrong-context example prints the documented error" || bad "wrong-context example: $out"
grep -qx "age,radius,texture" <<<"$out" && ok "fernet example round-trips" || bad "fernet example: $out"
grep -qx "kms round trip ok" <<<"$out" && ok "cloister-kms example: aws CLI makes the key, seal/unseal round-trip" \
  || bad "kms example: $out"
grep -qx "dose: 5 mg" <<<"$out" && ok "cloister kms encrypt/decrypt with fileb:// and --query round-trip" \
  || bad "cloister kms encrypt example: $out"
grep -qxP "Decrypt\tGenerateDataKey" <<<"$out" && ok "cloister kms create-grant takes space-separated --operations" \
  || bad "cloister kms create-grant example: $out"
grep -qx "alias/patient-data" <<<"$out" && ok "a profile of a credentials file (--profile) reaches the KMS" \
  || bad "cloister kms --profile example: $out"
grep -q '"KeyProvider": "local"' <<<"$out" && ok "cloister seal inspect prints the header" \
  || bad "seal inspect example: $out"
[ "$(grep -c '^patient 1234: MRI, left temporal lobe$' <<<"$out")" -eq 1 ] \
  && ok "seal - -o - | unseal - -o - pipes the record through" || bad "seal/unseal pipe example: $out"
grep -q "^cloister-kms listening on http://127.0.0.1:$PORT" <<<"$out" && ok "cloister-kms prints where it listens" \
  || bad "kms listen line: $out"
grep -qx "nitro document verified" <<<"$out" && ok "real Nitro document example verifies" || bad "attest example: $out"
if ss -ltn "sport = :$PORT" | grep -q LISTEN; then bad "cloister-kms still listening on $PORT after the examples"
else ok "the example's cloister-kms stopped"; fi
grep -q "^test: accuracy 0.9735  roc_auc 0.9990" <<<"$out" && ok "training example prints the documented figures" \
  || bad "training example: $out"
# The label and layout, not the last digits: oneDNN's Gemm may round differently on another CPU.
grep -qE '^\{"label": "malignant", "probabilities": \{"benign": [0-9.e-]+, "malignant": [0-9.e-]+\}\}$' <<<"$out" \
  && ok "classifier example prints the documented result" || bad "classifier example: $out"
# Everything the examples wrote is in their scratch directory, none in the one they started in
# (the repository, for a user): kms-data/, hospital.key and the rest.
left=$(ls -A | grep -vxE 'bin|examples\.sh|examples\.sh\.body|tmp\..*')
[ -z "$left" ] && ok "the examples wrote nothing outside their scratch directory" || bad "left behind: $left"
scratch=$(ls -d tmp.* 2>/dev/null)
[ -n "$scratch" ] && [ -d "$scratch/kms-data" ] && [ -f "$scratch/hospital.key" ] &&
  ok "kms-data/ and hospital.key are in the scratch directory" || bad "scratch directory: $scratch: $(ls -A "$scratch")"
absent "$scratch/wrong.out"
finish
