# SPDX-License-Identifier: Apache-2.0
"""./scripts/demo, the README's main command, as CI runs it: the whole story ends with exit 0
and every check held; interrupted in the middle, it stops every process it started and removes
its work directory."""
import os
import re
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


def ours(work):
    """Processes still running in the demo's work directory (other tests may be running this
    build's binaries at the same time, so the binary's name says nothing)."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % pid).removesuffix(" (deleted)")
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if work and (cwd == work or cwd.startswith(work + "/")):
            left.append("%s %s" % (pid, cmd))
    return left


def workdir(text):
    m = re.search(r"Work directory: (\S+)", text)
    return m.group(1) if m else None


def main():
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
    check(workdir(out) is not None and not ours(workdir(out)), "no process of it is left")
    # Its own directory, by the name it printed: other runs of the demo may come and go meanwhile.
    check(workdir(out) is not None and not os.path.exists(workdir(out)), "its work directory is gone")

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
    check(workdir(seen) is not None and not ours(workdir(seen)),
          "and no process of it is left: %s" % ours(workdir(seen)))
    check(workdir(seen) is not None and not os.path.exists(workdir(seen)), "nor its work directory")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
