#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# cloister attest verify on the real Nitro documents, and enclave init-root checked with openssl.
set -euo pipefail
BIN=${CLOISTER_BIN:?}
V=${CLOISTER_SOURCE_DIR:?}/tests/vectors/nitro
ROOT=$V/aws-nitro-enclaves-root-g1.pem
EV=$V/evervault-debug-2023-09-18.b64
NI=$V/nitrite-production-2024-09-07.b64
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS NEEDLE -- command...: runs it, checks the exit status and that stderr mentions NEEDLE
expect() {
  local want=$1 needle=$2; shift 3
  local st=0
  "$@" >"$T/out" 2>"$T/err" || st=$?
  [ "$st" -eq "$want" ] || fail "$* exited $st, expected $want: $(cat "$T/err")"
  grep -qF -- "$needle" "$T/err" || fail "$*: stderr does not mention '$needle': $(cat "$T/err")"
}

# both real documents verify at their times; JSON as documented
"$BIN" attest verify "$EV" --root "$ROOT" --at 2023-09-18T17:18:00Z >"$T/ev.json"
[ "$(jq -r .module_id "$T/ev.json")" = i-0918f6c55e3b61d89-enc018aa8b8e2285d13 ] || fail "module_id"
[ "$(jq -r .pcrs.\"0\" "$T/ev.json")" = "$(printf '0%.0s' {1..96})" ] || fail "debug PCR0 is not zero"
[ "$(jq -r .public_key "$T/ev.json")" = null ] || fail "public_key should be null"
[ "$(jq -r '.nonce | length' "$T/ev.json")" = 512 ] || fail "nonce length"
[ "$(jq -r '.cabundle | length' "$T/ev.json")" = 4 ] || fail "cabundle length"
[ "$(jq -r .timestamp_utc "$T/ev.json")" = 2023-09-18T15:03:30.860Z ] || fail "timestamp_utc"
"$BIN" attest verify "$NI" --root "$ROOT" --at 1725719859 >"$T/ni.json"
[ "$(jq -r '.user_data | length' "$T/ni.json")" = 2048 ] || fail "user_data length"
PCR0=$(jq -r .pcrs.\"0\" "$T/ni.json")
NONCE=$(jq -r .nonce "$T/ni.json")

# binary CBOR, tagged (18) and from stdin
base64 -d "$NI" >"$T/ni.cbor"
{ printf '\322'; cat "$T/ni.cbor"; } >"$T/ni-tagged.cbor"
"$BIN" attest verify "$T/ni-tagged.cbor" --root "$ROOT" --at 2024-09-07T14:37:39Z >"$T/t.json"
[ "$(jq -r .cose_tagged "$T/t.json")" = true ] || fail "tagged"
"$BIN" attest verify - --root "$ROOT" --at 2024-09-07T14:37:39Z <"$T/ni.cbor" >/dev/null

# policy: PCRs, nonce, maximum age
"$BIN" attest verify "$NI" --root "$ROOT" --at 2024-09-07T14:37:39Z --pcr "0=$PCR0" --nonce "$NONCE" --max-age 1 >/dev/null
expect 1 "PCR0 is $PCR0, expected 0000" -- "$BIN" attest verify "$NI" --root "$ROOT" --at 2024-09-07T14:37:39Z \
  --pcr "0=$(printf '0%.0s' {1..96})"
expect 1 "nonce mismatch" -- "$BIN" attest verify "$NI" --root "$ROOT" --at 2024-09-07T14:37:39Z --nonce 00
expect 1 "document is too old" -- "$BIN" attest verify "$EV" --root "$ROOT" --at 2023-09-18T17:18:00Z --max-age 3600
# outside the windows
expect 1 "is not valid before 2023-09-18T14:37:09Z" -- "$BIN" attest verify "$EV" --root "$ROOT" --at 2023-09-18T14:37:08Z
expect 1 "expired at 2024-09-07T17:37:39Z" -- "$BIN" attest verify "$NI" --root "$ROOT" --at 2024-09-07T17:37:40Z
# truncated, not a document
head -c 3000 "$T/ni.cbor" >"$T/trunc.cbor"
expect 1 "claims" -- "$BIN" attest verify "$T/trunc.cbor" --root "$ROOT" --at 2024-09-07T14:37:39Z
echo 'not base64!' >"$T/junk"
expect 1 "neither CBOR nor base64" -- "$BIN" attest verify "$T/junk" --root "$ROOT" --at 2024-09-07T14:37:39Z
# usage errors
expect 2 "--root PEM is required" -- "$BIN" attest verify "$NI"
expect 2 "--at takes" -- "$BIN" attest verify "$NI" --root "$ROOT" --at yesterday
expect 2 "--pcr takes N=HEX" -- "$BIN" attest verify "$NI" --root "$ROOT" --pcr 32=00
expect 2 "48 bytes of hex" -- "$BIN" attest verify "$NI" --root "$ROOT" --pcr 0=00
expect 2 "exactly one document" -- "$BIN" attest verify --root "$ROOT"

# enclave init-root: a P-384 root and platform CA that openssl accepts, with Nitro's extensions
"$BIN" enclave init-root -o "$T/pki" >/dev/null
for f in root.key platform.key; do
  [ "$(stat -c %a "$T/pki/$f")" = 600 ] || fail "$f is not mode 0600"
done
openssl verify -x509_strict -CAfile "$T/pki/root.pem" "$T/pki/platform.pem" >/dev/null || fail "openssl verify"
openssl x509 -in "$T/pki/platform.pem" -noout -text >"$T/plat.txt"
grep -q "NIST CURVE: P-384" "$T/plat.txt" || fail "platform key is not P-384"
grep -A1 "Basic Constraints: critical" "$T/plat.txt" | grep -q "CA:TRUE, pathlen:0" || fail "platform basic constraints"
grep -A1 "Key Usage: critical" "$T/plat.txt" | grep -q "Certificate Sign" || fail "platform key usage"
openssl pkey -in "$T/pki/platform.key" -pubout >"$T/k.pub"
openssl x509 -in "$T/pki/platform.pem" -pubkey -noout | cmp -s - "$T/k.pub" || fail "platform key does not match"
expect 1 "exists" -- "$BIN" enclave init-root -o "$T/pki"
"$BIN" enclave init-root -o "$T/pki" --force >/dev/null
# the sim root is not AWS's: a real document does not chain to it
expect 1 "is not a configured attestation root" -- "$BIN" attest verify "$NI" --root "$T/pki/root.pem" --at 1725719859
echo "cli_attest: ok"
