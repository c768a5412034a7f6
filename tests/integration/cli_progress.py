# SPDX-License-Identifier: Apache-2.0
"""The progress bar: drawn on stderr for inputs over 64 MiB when stderr is a
terminal, and never otherwise (scripts and logs stay clean)."""
import os
import pty
import subprocess
import sys
import tempfile

C = os.environ["CLOISTER_BIN"]
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what)


def seal_with_tty_stderr(args):
    master, slave = pty.openpty()
    p = subprocess.Popen([C, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(), out.decode(errors="replace")


with tempfile.TemporaryDirectory() as d:
    key = os.path.join(d, "k.key")
    subprocess.run([C, "key", "local-create", "-o", key], check=True, capture_output=True)
    big, small = os.path.join(d, "big"), os.path.join(d, "small")
    with open(big, "wb") as f:
        f.truncate(80 << 20)
    with open(small, "wb") as f:
        f.truncate(1 << 20)
    rc, err = seal_with_tty_stderr(["seal", "--key", key, big, "-o", big + ".sealed"])
    check(rc == 0 and "sealing [" in err and "100%" in err, f"80 MiB to a terminal shows progress to 100% ({err[-60:]!r})")
    rc, err = seal_with_tty_stderr(["unseal", "--key", key, big + ".sealed", "-o", big + ".out"])
    check(rc == 0 and "unsealing [" in err and "100%" in err, "unseal shows progress too")
    rc, err = seal_with_tty_stderr(["seal", "--key", key, small, "-o", small + ".sealed"])
    check(rc == 0 and err == "", "1 MiB shows no progress")
    p = subprocess.run([C, "seal", "--key", key, big, "-o", big + ".2"], capture_output=True)
    check(p.returncode == 0 and p.stderr == b"", "stderr not a terminal: no progress")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
