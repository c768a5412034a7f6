#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# cloister seal / unseal / key local-create as a user types them, every error case.
source "$(dirname "$0")/lib.sh"

expect 0 "" -- "$C" key local-create -o hospital.key
mode=$(stat -c %a hospital.key)
[ "$mode" = 600 ] && ok "key file mode 600" || bad "key file mode $mode"
expect 1 "already exists" -- "$C" key local-create -o hospital.key
"$C" key local-create -o other.key >/dev/null

head -c 5000000 /dev/urandom > scan.bin
: > empty.bin
printf 'patient 1234: benign' > record.txt

for f in scan.bin empty.bin record.txt; do
  expect 0 "" -- "$C" seal --key hospital.key --context patient=1234 --context purpose=inference "$f" -o "$f.sealed"
  expect 0 "" -- "$C" unseal --key hospital.key --context purpose=inference --context patient=1234 "$f.sealed" -o "$f.out"
  same "$f" "$f.out"
done
expect 0 "" -- "$C" unseal --key hospital.key scan.bin.sealed -o scan.nocontext
same scan.bin scan.nocontext
expect 0 "" -- "$C" seal --key hospital.key --chunk-size 4096 record.txt -o small-chunks.sealed
expect 0 "" -- "$C" unseal --key hospital.key small-chunks.sealed -o small-chunks.out
same record.txt small-chunks.out

# Ciphertext does not contain the plaintext.
if grep -q "benign" record.txt.sealed; then bad "plaintext visible in sealed file"; else ok "plaintext not visible"; fi

# Every failure: one clear line, exit 1, no output file and no temporary left behind.
expect 1 "wrong key" -- "$C" unseal --key other.key scan.bin.sealed -o o1
absent o1
expect 1 "wrong encryption context" -- "$C" unseal --key hospital.key --context patient=9999 --context purpose=inference scan.bin.sealed -o o2
absent o2
head -c 3000000 scan.bin.sealed > truncated.sealed
expect 1 "failed authentication" -- "$C" unseal --key hospital.key truncated.sealed -o o3
absent o3
head -c 40 scan.bin.sealed > header-only.sealed
expect 1 "truncated" -- "$C" unseal --key hospital.key header-only.sealed -o o3b
absent o3b
cp scan.bin.sealed tampered.sealed
flip_byte() { # file offset: invert one byte (writing a constant would be a no-op 1 time in 256)
  "$PYTHON3" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xFF]))' "$1" "$2"
}
flip_byte tampered.sealed 2500000
expect 1 "failed authentication" -- "$C" unseal --key hospital.key tampered.sealed -o o4
absent o4
cp scan.bin.sealed header-tampered.sealed
flip_byte header-tampered.sealed 30
expect 1 "" -- "$C" unseal --key hospital.key header-tampered.sealed -o o5
absent o5
expect 1 "not a sealed file" -- "$C" unseal --key hospital.key scan.bin -o o6
absent o6
expect 1 "cannot read missing.sealed" -- "$C" unseal --key hospital.key missing.sealed -o o7
expect 1 "no key file" -- "$C" seal --key nokey.key scan.bin -o o8
absent o8
chmod 644 other.key
expect 1 "chmod 600" -- "$C" seal --key other.key scan.bin -o o9
absent o9
chmod 600 other.key
expect 1 "already exists" -- "$C" unseal --key hospital.key scan.bin.sealed -o scan.bin.out
expect 0 "" -- "$C" unseal --force --key hospital.key scan.bin.sealed -o scan.bin.out
same scan.bin scan.bin.out
mkdir adir
expect 2 "is a directory" -- "$C" seal --key hospital.key adir -o o10
no_temp_files

# An unreadable input (root reads everything, so only test where that is not us).
if [ "$(id -u)" -ne 0 ]; then
  cp record.txt unreadable.txt && chmod 000 unreadable.txt
  expect 1 "cannot read unreadable.txt" -- "$C" seal --key hospital.key unreadable.txt -o o11
else
  expect 1 "cannot read" -- "$C" seal --key hospital.key /proc/self/mem -o o11
fi
absent o11

# Usage errors exit 2; --help exits 0 on every command.
expect 2 "--key is required" -- "$C" seal scan.bin -o x
expect 2 "-o OUT is required" -- "$C" seal --key hospital.key scan.bin
expect 2 "exactly one input" -- "$C" seal --key hospital.key -o x
expect 2 "key=value" -- "$C" seal --key hospital.key --context nonsense scan.bin -o x
expect 2 "given twice" -- "$C" seal --key hospital.key --context a=1 --context a=2 scan.bin -o x
expect 2 "--chunk-size" -- "$C" seal --key hospital.key --chunk-size 10 scan.bin -o x
# Whole numbers are parsed once, without wrap-around: 2^32 + 2 is not 2.
expect 2 "--threads must be a whole number from 0 to 1024, not '4294967298'" -- \
  "$C" infer-local --threads 4294967298 model.onnx input.csv
expect 2 "--memory (MiB) must be a whole number from 16 to 1048576, not '-1'" -- "$C" enclave run --memory -1 x.img
expect 2 "unknown command" -- "$C" frobnicate
expect 2 "" -- "$C"
for cmd in "seal" "unseal" "key" "key local-create" "fernet" "--help"; do
  # shellcheck disable=SC2086
  out=$("$C" $cmd --help 2>&1); rc=$?
  if [ $rc -eq 0 ] && grep -q "Usage" <<<"$out"; then ok "cloister $cmd --help"; else bad "cloister $cmd --help: $rc"; fi
done
finish
