# SPDX-License-Identifier: Apache-2.0
"""./scripts/demo, the README's main command, as CI runs it: the whole story ends with exit 0
and every check held; interrupted in the middle, it stops every process it started and removes
its work directory."""
import glob
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "scripts", "demo")
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def ours():
    """Processes of this build's binaries still running."""
    bindir = os.environ["CLOISTER_BIN_DIR"]
    out = subprocess.run(["pgrep", "-af", bindir], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "pgrep" not in ln]


def main():
    before = set(glob.glob("/tmp/cloister-demo-*"))
    t0 = time.time()
    r = subprocess.run([sys.executable, DEMO, "--quiet"], capture_output=True, text=True, timeout=300)
    took = time.time() - t0
    out = r.stdout + r.stderr
    if r.returncode != 0 and "forbids unprivileged user namespaces" in out:
        print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
        return 0
    check(r.returncode == 0 and "[FAILED]" not in out and "Done in" in out,
          "the demo tells the whole story, every check holds (exit %d, %.1f s)%s" %
          (r.returncode, took, "" if r.returncode == 0 else ":\n" + out[-3000:]))
    for needle in ("the classifier says: malignant", "the U-Net delineates a lesion", "both paths give the same mask",
                   "a client expecting another enclave stops", "the enclaves' KMS sessions were TLS",
                   "refused the changed image"):
        check(needle in out, "it says: " + needle)
    check(not ours(), "no process of it is left")
    check(set(glob.glob("/tmp/cloister-demo-*")) == before, "its work directory is gone")

    p = subprocess.Popen([sys.executable, DEMO, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt it once the enclaves are being started
        line = p.stdout.readline()
        seen += line
        if not line or "== 4." in line:
            break
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=60)
    check(p.returncode == 130 and "interrupted" in rest, "Ctrl-C stops it with exit 130 (%s)" % p.returncode)
    time.sleep(0.5)
    check(not ours(), "and no process of it is left: %s" % ours())
    check(set(glob.glob("/tmp/cloister-demo-*")) == before, "nor its work directory")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
