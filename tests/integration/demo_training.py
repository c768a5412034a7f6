# SPDX-License-Identifier: Apache-2.0
"""./scripts/demo-training, the confidential-training story (issue 19's "Done when"), as CI runs
it: boto3's sagemaker client creates the job and polls it to Completed, the sealed model from S3
classifies a patient through the inference worker, the held-out accuracy is in the job's final
metrics; after RevokeGrant the next job fails with AccessDenied and writes nothing; the scan of
what the host and S3 hold finds no row and no model weights (and finds a planted row). The
script exits 0 only if each of its checks held; this test also reads the [ok] lines it needs,
checks that no process of it is left and its work directory is gone, and interrupts a second
run while its service and an enclave run: exit 130, and nothing left. (A job's runner killed
with its service takes its enclave with it: integration.train_job.)"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from story_harness import ours, wait_until, workdir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "scripts", "demo-training")
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def main():
    t0 = time.time()
    p = subprocess.run([sys.executable, DEMO], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    out = p.stdout
    if p.returncode != 0 and "forbids unprivileged user namespaces" in out:
        print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
        return 77
    check(p.returncode == 0 and "[FAILED]" not in out and "Done in" in out,
          "the story runs whole and every check of it holds (exit %d, %.1f s)%s" %
          (p.returncode, time.time() - t0, "" if p.returncode == 0 else ":\n" + out[-4000:]))
    for needle in ("[ok] the job completed (Completed)", "is in the job's final metrics",
                   "[ok] the sealed model and metrics.json landed in s3://",
                   "[ok] the model from the training enclave classifies the patient",
                   "[ok] the job failed with KMS's AccessDenied as its reason", "[ok] and left no output object",
                   "[ok] control: the scan finds a row planted", "[ok] control: it finds the model's",
                   "[ok] the job enclaves' sessions with KMS and S3 were TLS ending inside them", "[ok] no row of the data and no model bytes in "
                   "the relayed traffic", "[ok] no row of the data and no model bytes in the service's data"):
        check(needle in out, "it says: " + needle)
    w = workdir(out)
    check(w is not None and wait_until(lambda: not ours(w), 10), "no process of it is left: %s" % ours(w))
    check(w is not None and not os.path.exists(w), "its work directory is gone")

    p = subprocess.Popen([sys.executable, DEMO, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    seen = ""
    deadline = time.time() + 300
    while time.time() < deadline:  # interrupt it once the inference enclave is being started
        line = p.stdout.readline()
        seen += line
        if not line or "== 7." in line:
            break
    w = workdir(seen)
    running = wait_until(lambda: [c for c in ours(w) if "enclave run" in c], 60)
    check(bool(running), "an enclave of the interrupted story was starting: %s" % running)
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=60)
    check(p.returncode == 130 and "interrupted" in rest, "Ctrl-C stops it with exit 130 (%s)" % p.returncode)
    check(w is not None and wait_until(lambda: not ours(w), 15), "and no process of it is left: %s" % ours(w))
    check(w is not None and not os.path.exists(w), "nor its work directory")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
