#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# cloister fernet: pipes, files, and every failure a user can meet.
source "$(dirname "$0")/lib.sh"

expect 0 "" -- "$C" fernet generate-key -o f.key
"$C" fernet generate-key -o other.key
printf 'diagnosis: benign' > msg.txt
expect 0 "" -- "$C" fernet encrypt --key f.key msg.txt -o tok.txt
expect 0 "" -- "$C" fernet decrypt --key f.key tok.txt -o back.txt
same msg.txt back.txt
if printf 'piped' | "$C" fernet encrypt --key f.key | "$C" fernet decrypt --key f.key | grep -qx piped; then
  ok "stdin to stdout round trip"
else bad "stdin to stdout round trip"; fi

expect 1 "wrong key or tampered" -- "$C" fernet decrypt --key other.key tok.txt
sed 's/^\(.\{60\}\)./\1A/' tok.txt > tampered.txt
cmp -s tok.txt tampered.txt && sed 's/^\(.\{60\}\)./\1B/' tok.txt > tampered.txt
expect 1 "" -- "$C" fernet decrypt --key f.key tampered.txt -o t.out
absent t.out
printf 'not a token' > junk.txt
expect 1 "not a Fernet token" -- "$C" fernet decrypt --key f.key junk.txt
printf 'short' > bad.key
expect 1 "Fernet key file bad.key" -- "$C" fernet encrypt --key bad.key msg.txt
expect 1 "cannot open missing.key" -- "$C" fernet encrypt --key missing.key msg.txt
expect 1 "cannot open nothere" -- "$C" fernet encrypt --key f.key nothere
expect 1 "already exists" -- "$C" fernet encrypt --key f.key msg.txt -o tok.txt
expect 0 "" -- "$C" fernet encrypt --force --key f.key msg.txt -o tok.txt
expect 2 "--key FILE is required" -- "$C" fernet encrypt msg.txt
expect 2 "--ttl applies to decrypt only" -- "$C" fernet encrypt --key f.key --ttl 5 msg.txt
expect 2 "--ttl (seconds) must be a whole number from 0 to" -- "$C" fernet decrypt --key f.key --ttl -3 tok.txt
expect 2 "unknown command" -- "$C" fernet frob
no_temp_files
finish
