#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's party block ("The story": the commands each party types), extracted from README.md
# and pasted into a shell as a new user would: two cloister-kms over HTTPS, the model sealed and its
# key pinned to the image's PCR0, the enclave run, both inference paths. Exit 77 (skipped) only when
# the kernel forbids the unprivileged user namespaces the sim enclave needs.
source "$(dirname "$0")/lib.sh"
README="$CLOISTER_SOURCE_DIR/README.md"
free_port() { "$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
OWNER_PORT=$(free_port)
HOSPITAL_PORT=$(free_port)

# The last ```sh block of the story section. As readme_examples.sh does: this build and source tree
# stand in for the repository's build/bin and $PWD, and free ports for 4599 and 4600.
awk '/^## /{on = /^## The story/} on' "$README" |
  awk '/^```sh$/{n++; body=""; inb=1; next} inb && /^```$/{inb=0; last=body; next} inb{body=body $0 "\n"}
       END{printf "%s", last}' |
  sed -e "s#\"\$PWD/build/bin:#\"$(dirname "$C"):#" -e "s#REPO=\"\$PWD\"#REPO=\"$CLOISTER_SOURCE_DIR\"#" \
      -e "s#4599#$OWNER_PORT#g" -e "s#4600#$HOSPITAL_PORT#g" > story.sh.body
# The block ends by killing its background jobs; `wait` lets them finish exiting before the checks.
{ echo "trap 'kill \$(jobs -p) 2>/dev/null' EXIT"; cat story.sh.body; echo wait; } > story.sh
lines=$(wc -l < story.sh.body)
[ "$lines" -ge 30 ] && grep -q "cloister enclave init-root" story.sh.body && grep -q "cloister infer --channel" story.sh.body &&
  ok "extracted the party block ($lines lines)" || bad "the party block was not found: $(head -5 story.sh.body)"
grep -q "^export PATH=\"$(dirname "$C"):\$PATH\" REPO=\"$CLOISTER_SOURCE_DIR\"" story.sh &&
  ok "its PATH and REPO point at this build and source tree" || bad "PATH line not replaced: $(head -3 story.sh.body)"

out=$(TMPDIR=$T timeout 300 bash story.sh 2>&1)
rc=$?
if grep -q "forbids unprivileged user namespaces" <<<"$out"; then
  echo "SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here"
  exit 77
fi
[ "$rc" -eq 0 ] && ok "the block ran to its end" || bad "the block exited $rc: $out"
grep -qE '^cloister-kms listening on https://127\.0\.0\.1:'"$OWNER_PORT"' ' <<<"$out" &&
  grep -qE '^cloister-kms listening on https://127\.0\.0\.1:'"$HOSPITAL_PORT"' ' <<<"$out" &&
  ok "both parties' cloister-kms serve HTTPS" || bad "KMS start: $out"
pcr0=$(sed -n 's/^classifier\.img PCR0 \([0-9a-f]\{96\}\)$/\1/p' <<<"$out")
[ -n "$pcr0" ] && ok "the image's full PCR0 is printed: $pcr0" || bad "no PCR0 line: $out"
grep -qE '^\{"label": "malignant", "probabilities": \{"benign": [0-9.e-]+, "malignant": [0-9.e-]+\}\}$' <<<"$out" &&
  ok "the envelope path's result is printed" || bad "no result: $out"
grep -qx "both paths agree" <<<"$out" && ok "the channel path gives the same result" || bad "channel path: $out"

scratch=$(ls -d tmp.* 2>/dev/null)
# The model owner's key went to the enclave only with its attestation, carrying that PCR0, and
# the hospital's data key likewise: the policies the block wrote are what let them through.
for party in owner hospital; do
  log="$scratch/$party-kms/audit.log"
  if grep -q "\"recipient\":{[^}]*\"pcr0\":\"$pcr0\"" "$log" 2>/dev/null &&
     ! grep '"principal":"arn:aws:iam::111122223333:user/dev"' "$log" | grep '"outcome":"ok"' | grep -qv '"recipient"'; then
    ok "$party's KMS: the worker got keys only with an attestation document of PCR0 $pcr0"
  else bad "$party's audit log: $(grep user/dev "$log" 2>/dev/null | tail -3)"; fi
done
for port in "$OWNER_PORT" "$HOSPITAL_PORT"; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then bad "a cloister-kms still listens on $port after the block"
  else ok "the cloister-kms on $port stopped"; fi
done
left=$("$(dirname "$C")/cloister" enclave describe --state-dir "$scratch/enclaves" 2>&1)
[ "$left" = "[]" ] && ok "the enclave stopped" || bad "enclaves left: $left"
left=$(ls -A | grep -vxE 'story\.sh|story\.sh\.body|tmp\..*')
[ -z "$left" ] && ok "the block wrote nothing outside its scratch directory" || bad "left behind: $left"
finish
