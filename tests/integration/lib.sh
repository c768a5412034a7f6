# SPDX-License-Identifier: Apache-2.0
# Shared by the shell integration tests: assertions that print what they saw.
set -uo pipefail
: "${CLOISTER_BIN:?CLOISTER_BIN must point at the cloister binary}"
C=$CLOISTER_BIN
T=$(mktemp -d "${TMPDIR:-/tmp}/cloister-it-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
PASSED=0
FAILED=0

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
bad() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# expect CODE "needle in stderr" -- command...
expect() {
  local want=$1 needle=$2; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne "$want" ]; then bad "$* : exit $rc, want $want ($err)"; return; fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$err"; then bad "$* : stderr lacks '$needle': $err"; return; fi
  if [ "$want" -eq 1 ] && [ "$(wc -l <<<"$err")" -gt 1 ]; then bad "$* : more than one error line: $err"; return; fi
  ok "$* -> $rc"
}

same() { if cmp -s "$1" "$2"; then ok "$1 == $2"; else bad "$1 differs from $2"; fi; }
absent() { if [ ! -e "$1" ]; then ok "$1 absent"; else bad "$1 exists but should not"; fi; }
no_temp_files() {
  local left; left=$(find . -name '*.tmp' | head -5)
  if [ -z "$left" ]; then ok "no temporary files left"; else bad "temporary files left: $left"; fi
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
