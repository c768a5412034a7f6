# SPDX-License-Identifier: Apache-2.0
"""What the tests of the story scripts (scripts/demo, scripts/demo-training) share: finding the
processes a story left running, by its work directory, and waiting for the kernel to settle."""
import os
import re
import time


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


def wait_until(pred, timeout):
    """Polls a condition the kernel settles asynchronously (a process reaped after its parent
    went), up to timeout seconds; returns its last value."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(0.05)
        v = pred()
    return v


def workdir(text):
    m = re.search(r"Work directory: (\S+)", text)
    return m.group(1) if m else None
