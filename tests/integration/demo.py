# SPDX-License-Identifier: Apache-2.0
"""./scripts/demo, the README's main command, as CI runs it: the whole story ends with exit 0
and every check held; no process of it carries a party's secret on its command line (which
every user can read in /proc/PID/cmdline); interrupted in the middle, it stops every process it
started and removes its work directory."""
import importlib.machinery
import os
import re
import shutil
import signal
import subprocess
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from story_harness import ours, wait_until, workdir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "scripts", "demo")
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def wrapped_bin_dir(tmp, log):
    """A bin directory for the demo (CLOISTER_BIN_DIR) whose cloister and cloister-kms record
    their exact argv in `log`, then exec the real binaries; cloister-infer is a link (it is
    packed into images by path, and its PCR0 must not change)."""
    real = os.environ["CLOISTER_BIN_DIR"]
    d = os.path.join(tmp, "bin")
    os.mkdir(d)
    for name in ("cloister", "cloister-kms"):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            # One record per call: its arguments, each ending in NUL, then a lone newline argument.
            f.write("#!/bin/sh\nprintf '%%s\\0' %s \"$@\" '\n' >> '%s'\nexec '%s' \"$@\"\n" %
                    (name, log, os.path.join(real, name)))
        os.chmod(path, stat.S_IRWXU)
    os.symlink(os.path.join(real, "cloister-infer"), os.path.join(d, "cloister-infer"))
    return d


def demo_secrets():
    """The parties' secrets, as the demo defines them."""
    demo = importlib.machinery.SourceFileLoader("cloister_demo", DEMO).load_module()
    return [demo.OWNER[1], demo.HOSPITAL[1]]


def main():
    secrets = demo_secrets()
    tmp = tempfile.mkdtemp(prefix="cloister-argv-log-")
    argv_log = os.path.join(tmp, "argv.log")
    env = dict(os.environ, CLOISTER_BIN_DIR=wrapped_bin_dir(tmp, argv_log))
    t0 = time.time()
    p = subprocess.Popen([sys.executable, DEMO], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env)
    out, work, cmdlines = "", None, set()
    for line in p.stdout:  # at each line, the command lines of the demo's processes running then
        out += line
        work = work or workdir(line)
        cmdlines.update(c.split(" ", 1)[1] for c in ours(work))
    p.wait(timeout=300)
    took = time.time() - t0
    if p.returncode != 0 and "forbids unprivileged user namespaces" in out:
        print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
        return 77
    check(p.returncode == 0 and "[FAILED]" not in out and "Done in" in out,
          "the demo tells the whole story, every check holds (exit %d, %.1f s)%s" %
          (p.returncode, took, "" if p.returncode == 0 else ":\n" + out[-3000:]))
    # Finding 9 in docs/security.md: --principal ID:SECRET:ARN put the parties' secrets in /proc/PID/cmdline.
    with open(argv_log, "rb") as f:
        calls = [rec.split(b"\0") for rec in f.read().split(b"\0\n\0") if rec]
    kms = [c for c in calls if c[0] == b"cloister-kms"]
    check(len(kms) == 2 and all(b"--principals-file" in c for c in kms) and len(calls) > 20,
          "every cloister and cloister-kms the demo ran was recorded (%d calls, %d cloister-kms)" %
          (len(calls), len(kms)))
    leaked = [b" ".join(c).decode(errors="replace") for c in calls if any(sec.encode() in a for sec in secrets
                                                                        for a in c)]
    check(not leaked, "no secret in the argv of any command the demo ran: %s" % leaked)
    check(sum("cloister-kms" in c for c in cmdlines) >= 2 and
          not [c for c in cmdlines if any(sec in c for sec in secrets)],
          "nor in /proc/PID/cmdline of its running processes (%d seen, both KMSs among them)" % len(cmdlines))
    # What a reader needs to type the commands again: each party's environment (the secret only by
    # where it is), and the images' full PCR0s, in the commands as printed too.
    for name in ("owner", "hospital"):
        want = (r"^   %-8s AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=<in %s-principals\.json> "
                r"AWS_ENDPOINT_URL_KMS=https://127\.0\.0\.1:\d+ AWS_CA_BUNDLE=%s-kms\.pem$" % (name, name, name, name))
        check(re.search(want, out, re.M), "it prints the %s's environment" % name)
    check(not [sec for sec in secrets if sec in out], "and never a party's secret")
    pcr0 = dict(re.findall(r"^   (classifier|mri-unet)\.img  PCR0 ([0-9a-f]{96})$", out, re.M))
    check(len(pcr0) == 2 and all(re.search(r"\$ cloister infer --channel %s-channel\.sock --root pki/root\.pem "
                                           r"--expect-pcr0 %s " % (m, v), out) for m, v in pcr0.items()),
          "the channel commands it prints carry the full PCR0s: %s" % pcr0)
    for needle in ("the classifier says: malignant", "the U-Net delineates a lesion", "both paths give the same mask",
                   "a client expecting another enclave stops", "the enclaves' KMS sessions were TLS",
                   "refused the changed image"):
        check(needle in out, "it says: " + needle)
    check(workdir(out) is not None and wait_until(lambda: not ours(workdir(out)), 10),
          "no process of it is left: %s" % ours(workdir(out)))
    # Its own work directory, by name: other tests may run demos at the same time.
    check(workdir(out) is not None and not os.path.exists(workdir(out)), "its work directory is gone")

    p = subprocess.Popen([sys.executable, DEMO, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt it once the enclaves are being started
        line = p.stdout.readline()
        seen += line
        if not line or "== 4." in line:
            break
    # Interrupted once an enclave launcher of it runs (its KMSs run since step 1).
    launching = wait_until(lambda: [c for c in ours(workdir(seen)) if "enclave run" in c], 60)
    check(bool(launching), "an enclave of the interrupted demo was starting")
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=60)
    check(p.returncode == 130 and "interrupted" in rest, "Ctrl-C stops it with exit 130 (%s)" % p.returncode)
    # The demo waited for the processes it started; what they started in turn is reaped by the
    # kernel right after.
    gone = wait_until(lambda: not ours(workdir(seen)), 10)
    check(workdir(seen) is not None and gone, "and no process of it is left: %s" % ours(workdir(seen)))
    check(workdir(seen) is not None and not os.path.exists(workdir(seen)), "nor its work directory")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
