# SPDX-License-Identifier: Apache-2.0
"""What Cloister's story scripts share (./scripts/demo, ./scripts/demo-training): printing steps
and the commands a party types, checks that make the exit status, the relay that stands where the
operator's host relays bytes and keeps them for the scan at the end, and the driver that stops
every process a story started, also on Ctrl-C or SIGTERM."""
import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The build to run (tests point it at theirs); ./scripts/setup builds into build/.
BIN = os.environ.get("CLOISTER_BIN_DIR") or os.path.join(ROOT, "build", "bin")

children = []
failures = []
quiet = False


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def say(text=""):
    print(text, flush=True)


def step(title):
    say()
    say("== " + title)


def show(cmd):
    if not quiet:
        say("   $ " + " ".join(shlex.quote(c) for c in cmd))


def check(cond, what):
    say(("   [ok] " if cond else "   [FAILED] ") + what)
    if not cond:
        failures.append(what)
    return cond


class Story:
    """A work directory and the commands run in it, with build/bin first on PATH."""

    def __init__(self, work):
        self.work = work
        self.env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), AWS_REGION="us-east-1",
                        CLOISTER_STATE_DIR=os.path.join(work, "enclaves"))
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
            self.env.pop(k, None)

    def p(self, *a):
        return os.path.join(self.work, *a)

    def run(self, cmd, env=None, ok=True, display=None, timeout=120, stdin=None):
        show(display or cmd)
        r = subprocess.run(cmd, cwd=self.work, env=env or self.env, capture_output=True, text=True, timeout=timeout,
                           input=stdin)
        if ok and r.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (cmd[0] if cmd[0] != "cloister" else " ".join(cmd[:2]),
                                                            r.returncode, r.stderr.strip()))
        return r

    def start(self, cmd, display=None, env=None):
        show(display or cmd)
        proc = subprocess.Popen(cmd, cwd=self.work, env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        children.append(proc)
        return proc


class Relay:
    """Stands where the operator's host relays bytes, and keeps every byte it relays."""

    def __init__(self, listen, connect):
        self.connect = connect
        self.sock = listen
        self.lock = threading.Lock()
        self.captured = bytearray()
        threading.Thread(target=self.serve, daemon=True).start()

    @classmethod
    def tcp(cls, target_port):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        r = cls(s, lambda: socket.create_connection(("127.0.0.1", target_port)))
        r.port = s.getsockname()[1]
        return r

    @classmethod
    def unix(cls, path, target):
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen(16)

        def connect():
            u = socket.socket(socket.AF_UNIX)
            u.connect(target)
            return u

        r = cls(s, connect)
        r.path = path
        return r

    def pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.captured += d
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
                u = self.connect()
            except OSError:
                if self.sock.fileno() < 0:
                    return
                continue
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c), daemon=True).start()

    def bytes(self):
        with self.lock:
            return bytes(self.captured)

    def close(self):
        self.sock.close()


def make_tls_cert(d, name):
    """A party's KMS certificate (self-signed, P-256): its name for the enclave, 127.0.0.1 for the
    party's own tools. The enclave trusts it from a file in its image; the tools from AWS_CA_BUNDLE."""
    d.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           name + "-kms.key", "-out", name + "-kms.pem", "-days", "2", "-subj", "/CN=%s-kms.local" % name,
           "-addext", "subjectAltName=DNS:%s-kms.local,IP:127.0.0.1" % name])


def wait_for_socket(proc, path, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            err = proc.stderr.read()
            if "forbids unprivileged user namespaces" in err:
                raise RuntimeError("this kernel forbids unprivileged user namespaces, so the sim enclave cannot run "
                                   "(sysctl kernel.unprivileged_userns_clone=1)")
            raise RuntimeError("%s exited (status %d) before serving: %s" % (what, proc.returncode, err.strip()))
        time.sleep(0.05)
    raise RuntimeError("%s did not start serving within %d s" % (what, timeout))


def enclave_socket(d, proc, port, what):
    """The enclave's id is on the launcher's first line; its vsock port's host end is a socket in the state dir."""
    text = ""
    while True:  # the description is a JSON object, printed over several lines
        line = proc.stdout.readline()
        text += line
        if not line or line.rstrip() == "}":
            break
    m = re.search(r'"EnclaveID"\s*:\s*"([^"]+)"', text)
    if not m:
        raise RuntimeError("%s: the launcher did not describe the enclave: %s %s" % (what, text.strip(),
                                                                                    proc.stderr.read(2000).strip()))
    path = d.p("enclaves", m.group(1), "vsock-%d.sock" % port)
    wait_for_socket(proc, path, what)
    return path


def stop_children():
    for proc in children:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.time() + 10
    for proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()


def main(name, description, banner, binaries, story, story_class=Story):
    """Runs story(story_class(work)) in a fresh work directory with --keep/--quiet; returns the
    exit status: 0 when the story ran and every check held, 130 when interrupted, else 1."""
    global quiet
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--quiet", action="store_true", help="print only results and checks")
    args = ap.parse_args()
    quiet = args.quiet
    for b in binaries:
        if not os.access(os.path.join(BIN, b), os.X_OK):
            say("%s: %s is not built; run ./scripts/setup first" % (name, os.path.join("build", "bin", b)))
            return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    work = tempfile.mkdtemp(prefix="cloister-%s-" % name)
    say(banner)
    say("Work directory: %s" % work)
    rc = 1
    try:
        story(story_class(work))
        rc = 0 if not failures else 1
    except Interrupted as e:
        say("\n%s: interrupted (%s); stopping everything it started" % (name, e))
        rc = 130
    except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as e:
        say("\n%s: error: %s" % (name, e))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children()
        if args.keep:
            say("%s: kept %s" % (name, work))
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        say("%s: %d check(s) failed: %s" % (name, len(failures), "; ".join(failures)))
        rc = 1 if rc == 0 else rc
    return rc
