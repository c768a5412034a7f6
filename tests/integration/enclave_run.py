# SPDX-License-Identifier: Apache-2.0
"""The sim enclave end to end: `cloister enclave build` (deterministic images, PCRs as
documented, signatures), `cloister enclave run` (isolation probed from inside, the
attestation device, the host proxy, vsock listening), describe / console / terminate.

The enclave program is tests/enclave/enclave_probe.c; its behaviour is picked by the
file /files/mode in its image. Skips (exit 77, ctest's SKIP_RETURN_CODE) only when the
kernel refuses unprivileged user namespaces."""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

C = os.environ["CLOISTER_BIN"]
PROBE = os.environ["ENCLAVE_PROBE"]
passed = failed = 0
children = []


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def run(*args, **kw):
    return subprocess.run([C, *args], capture_output=True, text=True, timeout=60, **kw)


def measurements(out):
    return json.loads(out)["Measurements"]


def pcr_extend_from_zero(data):
    return hashlib.sha384(b"\0" * 48 + hashlib.sha384(data).digest()).hexdigest()


def build(tmp, name, mode, extra=(), files=()):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "mode"), "w") as f:
        f.write(mode + "\n")
    args = ["enclave", "build", "--exe", PROBE, "--file", os.path.join(d, "mode"), *extra, "-o", os.path.join(d, "img")]
    for src, dst in files:
        args += ["--file", f"{src}:{dst}"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "img"), measurements(r.stdout)


def start(tmp, img, *args):
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", os.path.join(tmp, "state"), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "CLOISTER_LOG": "info"})
    children.append(p)
    return p


class Collector:
    """A TCP listener standing for the KMS: collects length-prefixed reports."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.reports = []
        self.cv = threading.Condition()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
            c.close()
            n = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else -1
            with self.cv:
                self.reports.append(data[4:4 + n] if n >= 0 else data)
                self.cv.notify_all()

    def wait(self, count, timeout=10):
        """Until `count` reports have arrived (the enclave's connection is read to its end)."""
        with self.cv:
            return self.cv.wait_for(lambda: len(self.reports) >= count, timeout)


def test_build(tmp):
    img1, m1 = build(tmp, "a", "probe")
    img2, m2 = build(tmp, "b", "probe")
    b1, b2 = open(img1, "rb").read(), open(img2, "rb").read()
    check(b1 == b2, "same inputs give a byte-identical image")
    check(m1 == m2, "and the same measurements")
    check(m1["HashAlgorithm"] == "Sha384 { ... }" and "PCR8" not in m1, "nitro-cli's JSON shape, no PCR8 unsigned")
    check(m1["PCR0"] == pcr_extend_from_zero(b1), "PCR0 = SHA-384(0^48 || SHA-384(image))")
    r = run("enclave", "measure", img1)
    check(r.returncode == 0 and measurements(r.stdout) == m1, "measure re-derives the same PCRs from the file")
    _, m3 = build(tmp, "c", "probf")
    check(m3["PCR0"] != m1["PCR0"] and m3["PCR2"] != m1["PCR2"], "a one-byte change in a file changes PCR0 and PCR2")
    check(m3["PCR1"] == m1["PCR1"], "but not PCR1 (runtime: loader and libraries)")
    # A one-byte change of the image file itself: rejected or measured differently.
    bad = os.path.join(tmp, "bad.img")
    data = bytearray(b1)
    data[len(data) // 2] ^= 1
    open(bad, "wb").write(bytes(data))
    r = run("enclave", "measure", bad)
    check(r.returncode == 0 and measurements(r.stdout)["PCR0"] != m1["PCR0"], "a flipped byte changes PCR0")
    open(bad, "wb").write(b1[:-10])
    r = run("enclave", "measure", bad)
    check(r.returncode == 1 and "truncated" in r.stderr, "a truncated image is refused: " + r.stderr.strip())
    # Libraries are in the image: the loader and libc at least.
    check(b"/lib64/ld-linux-x86-64.so.2" in b1 and b"libc.so.6" in b1, "the loader and libc are packed")
    # Signing: PCR8 is the certificate's; PCR0 is unchanged (the signature is outside it).
    key, crt = os.path.join(tmp, "sign.key"), os.path.join(tmp, "sign.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=cloister test signer"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True, capture_output=True).stdout
    imgs, ms = build(tmp, "s", "probe", extra=["--sign-key", key, "--sign-cert", crt])
    check(ms.get("PCR8") == pcr_extend_from_zero(der), "PCR8 = SHA-384(0^48 || SHA-384(certificate DER))")
    check(ms["PCR0"] == m1["PCR0"] and ms["PCR2"] == m1["PCR2"], "signing leaves PCR0-2 unchanged")
    data = bytearray(open(imgs, "rb").read())
    data[100] ^= 1
    open(bad, "wb").write(bytes(data))
    r = run("enclave", "measure", bad)
    check(r.returncode == 1 and "signature does not verify" in r.stderr, "a signed image modified after signing is refused")
    r = run("enclave", "build", "--exe", PROBE, "--file", "/nonexistent", "-o", os.path.join(tmp, "x.img"))
    check(r.returncode != 0 and "/nonexistent" in r.stderr, "a missing --file is named")
    r = run("enclave", "build", "--exe", PROBE, "--file", f"{img1}:../etc/passwd", "-o", os.path.join(tmp, "x.img"))
    check(r.returncode != 0 and "not a valid path" in r.stderr, "a relative or escaping destination is refused")


def test_probe(tmp):
    img, m = build(tmp, "probe", "probe")
    p = start(tmp, img, "--debug", "--attach-console", "--quiet", "--memory", "64", "--pki", os.path.join(tmp, "pki"))
    out, err = p.communicate(timeout=60)
    if "forbids unprivileged user namespaces" in err:
        return False
    results = [l.split(" ", 3) for l in out.splitlines() if l.startswith("RESULT ")]
    for r in results:
        check(r[2] == "ok", "inside the enclave: " + " ".join(r[1:]))
    names = {r[1] for r in results}
    for need in ("host_passwd", "no_inet_socket", "no_ptrace", "memory_limit", "not_dumpable", "read_only_root",
                 "pcr0_read_only", "garbage_answered", "setsockopt_timeout", "no_other_setsockopt"):
        check(need in names, f"probe {need} ran")
    check(p.returncode == 0, f"the probe exited 0 (got {p.returncode}; stderr: {err.strip()[:300]})")
    check(("PCR0 " + "0" * 96) in out, "debug mode: the enclave sees PCR0 zeroed, as on Nitro")
    return True


def fork_report(out):
    m = re.search(r"FORK forked=(\d+) alive=(\d+) killed=(\d+) errno=(\d+) threads=(\w+)", out)
    return {k: (int(v) if v.isdigit() else v) for k, v in
            zip(("forked", "alive", "killed", "errno", "threads"), m.groups())} if m else None


def test_fork(tmp):
    """Issue 12, finding 7: RLIMIT_AS alone was per process and fork was allowed, so seven
    processes of 160 MiB each held 1.2 GiB at once under --memory 256. Now the enclave is bounded
    as a whole: in a cgroup (at most one of them alive at the end), or, with no cgroup, new
    processes are refused. Threads work either way. The launcher says which applies."""
    img, _ = build(tmp, "fork", "fork")
    for extra, label in (([], "the cgroup found by itself"), (["--cgroup", "none"], "--cgroup none")):
        p = start(tmp, img, "--debug", "--attach-console", "--quiet", "--memory", "256", *extra)
        out, err = p.communicate(timeout=120)
        rep = fork_report(out)
        m = re.search(r"(cgroup v[12]) (\S+) bounds it as a whole: 256 MiB, 1024 processes", err)
        none = re.search(r"no cgroup bounds it as a whole \((.*)\): --memory limits its one process", err)
        check(p.returncode == 0 and rep is not None and rep["threads"] == "ok",
              f"{label}: the probe ran and made a thread ({rep}, exit {p.returncode}: {err.strip()[-300:]})")
        if rep is None:
            continue
        check(bool(m) != bool(none), f"{label}: the launcher says which limits apply: "
                                     f"{m.group(0) if m else none.group(0) if none else err.strip()[-300:]}")
        if m:
            check(rep["forked"] == 7 and rep["alive"] * 160 <= 256 and rep["killed"] >= 5,
                  f"{label}: in its {m.group(1)} at most 256 MiB were held at once by 7 processes of 160 MiB: {rep}")
            check(not os.path.exists(m.group(2)), f"{label}: the cgroup {m.group(2)} is removed afterwards")
        else:
            check(rep["forked"] == 0 and rep["errno"] == errno.EPERM,
                  f"{label}: no cgroup ({none.group(1) if none else '?'}), so fork is refused with EPERM: {rep}")
        if extra:
            check(none is not None and "--cgroup none" in none.group(1), "--cgroup none is obeyed")


def test_attest(tmp):
    pki = os.path.join(tmp, "pki")
    coll = Collector()
    nonce = "nonce-" + os.urandom(6).hex()
    nf = os.path.join(tmp, "nonce")
    open(nf, "w").write(nonce)
    img, m = build(tmp, "attest", "attest", files=[(nf, "/files/nonce")])
    p = start(tmp, img, "--pki", pki, "--proxy", f"5000=127.0.0.1:{coll.port}", "--memory", "128")
    out, err = p.communicate(timeout=60)
    coll.wait(1)
    check(p.returncode == 0, f"attest enclave exited 0 (got {p.returncode}: {err.strip()[:300]})")
    check(len(coll.reports) == 1, "one document crossed the proxy")
    if not coll.reports:
        return
    doc = os.path.join(tmp, "doc.cbor")
    open(doc, "wb").write(coll.reports[0])
    args = ["attest", "verify", doc, "--root", os.path.join(pki, "root.pem"), "--nonce", nonce.encode().hex()]
    for i in (0, 1, 2):
        args += ["--pcr", f"{i}={m['PCR%d' % i]}"]
    r = run(*args)
    check(r.returncode == 0, "the document verifies against the sim root with the PCRs build printed: " + r.stderr.strip())
    if r.returncode == 0:
        d = json.loads(r.stdout)
        text = json.dumps(d)
        check("probe-user-data".encode().hex() in text or "probe-user-data" in text, "user_data is the enclave's")
    # The launcher logged byte counts of the relay, not the bytes.
    check("bytes out" in err and "5000" in err, "the proxy logs byte counts")
    # The PCRs are the launcher's: an image differing by one byte gets another PCR0.
    img2, m2 = build(tmp, "attest2", "attest ", files=[(nf, "/files/nonce")])
    p = start(tmp, img2, "--pki", pki, "--proxy", f"5000=127.0.0.1:{coll.port}", "--memory", "128")
    p.communicate(timeout=60)
    coll.wait(2)
    if len(coll.reports) == 2:
        open(doc, "wb").write(coll.reports[1])
        r = run("attest", "verify", doc, "--root", os.path.join(pki, "root.pem"), "--pcr", f"0={m['PCR0']}")
        check(r.returncode == 1 and "PCR0" in r.stderr, "a one-byte different image's document fails the first PCR0")
    else:
        check(False, "second attest run reported")
    # Debug mode: the document carries zero PCR0-2.
    p = start(tmp, img, "--pki", pki, "--proxy", f"5000=127.0.0.1:{coll.port}", "--memory", "128", "--debug")
    p.communicate(timeout=60)
    coll.wait(3)
    if len(coll.reports) == 3:
        open(doc, "wb").write(coll.reports[2])
        r = run("attest", "verify", doc, "--root", os.path.join(pki, "root.pem"), "--pcr", f"0={'0' * 96}")
        check(r.returncode == 0, "a debug-mode document has PCR0 all zero")
    else:
        check(False, "debug attest run reported")
    coll.sock.close()


def test_deny(tmp):
    coll = Collector()
    img, _ = build(tmp, "deny", "deny")
    p = start(tmp, img, "--proxy", f"5000=127.0.0.1:{coll.port}")
    out, err = p.communicate(timeout=60)
    coll.wait(1)
    check(len(coll.reports) == 1 and b"refused" in coll.reports[0],
          "a connection to a port not proxied is refused: " + (coll.reports[0].decode() if coll.reports else "none"))
    coll.sock.close()


def test_echo(tmp):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    img, _ = build(tmp, "echo", "echo")
    p = start(tmp, img, "--debug", "--attach-console", "--quiet", "--proxy",
              f"5000=127.0.0.1:{srv.getsockname()[1]}")
    out, err = p.communicate(timeout=60)
    srv.close()
    check("RESULT echo_bytes ok" in out, "1 MiB goes through the proxy and back unchanged")
    check("1048576 bytes out, 1048576 bytes in" in err, "and the relay logs exactly those byte counts")


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def enclave_dir(state):
    def f():
        ds = [d for d in os.listdir(state) if d.startswith("i-sim-enc")] if os.path.isdir(state) else []
        return os.path.join(state, ds[0]) if ds else None
    return f


def test_listen(tmp):
    state = os.path.join(tmp, "state-l")
    img, _ = build(tmp, "listen", "listen")
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", state, "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    children.append(p)
    d = wait_for(enclave_dir(state))
    sockpath = wait_for(lambda: d and os.path.exists(os.path.join(d, "vsock-5005.sock")) and os.path.join(d, "vsock-5005.sock"))
    check(sockpath is not None, "the enclave's vsock listener appears as a Unix socket in its state directory")
    if sockpath:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sockpath)
        s.sendall(b"hello")
        got = s.recv(100)
        s.close()
        check(got == b"enclave:hello", f"a host program talks to the enclave over the host channel ({got!r})")
    p.communicate(timeout=30)
    check(p.returncode == 0, "listen enclave exited 0")
    check(not os.path.exists(d or "/nonexistent"), "the state directory is removed when the enclave exits")


def test_publish(tmp):
    """--publish: a TCP address on the host for the enclave's vsock port. It is bound before the
    enclave starts, so the client connects at once and its bytes wait in the backlog until the
    enclave listens (no polling); a taken port stops the launch with the reason."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    img, _ = build(tmp, "listen-pub", "listen")
    r = subprocess.run([C, "enclave", "run", img, "--state-dir", os.path.join(tmp, "state-pt"), "--quiet",
                        "--publish", f"{taken.getsockname()[1]}=5005"], capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and f"--publish 127.0.0.1:{taken.getsockname()[1]}: cannot listen there" in r.stderr,
          "a published port already taken stops the launch, naming it: " + r.stderr.strip()[-160:])
    taken.close()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    state = os.path.join(tmp, "state-p")
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", state, "--publish", f"{port}=5005"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(p)
    lines = []
    for line in p.stdout:  # the description run prints once the enclave runs; it ends with "}"
        lines.append(line)
        if line == "}\n":
            break
    info = json.loads("".join(lines))
    check(info.get("Published") == [{"Address": f"127.0.0.1:{port}", "VsockPort": 5005}],
          f"describe lists the published address ({info.get('Published')})")
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"hello")
    got = s.recv(100)
    s.close()
    check(got == b"enclave:hello", f"a TCP client reaches the enclave's vsock port 5005 ({got!r})")
    p.communicate(timeout=30)
    check(p.returncode == 0, "listen enclave exited 0")


def test_describe_terminate(tmp):
    state = os.path.join(tmp, "state-d")
    img, m = build(tmp, "spin", "spin")
    p = subprocess.Popen([C, "enclave", "run", img, "--state-dir", state, "--quiet", "--memory", "32"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(p)
    d = wait_for(lambda: enclave_dir(state)() and os.path.exists(os.path.join(enclave_dir(state)(), "info.json")))
    # A directory a SIGKILLed launcher left behind is not listed.
    stale = os.path.join(state, "i-sim-enc00")
    os.makedirs(stale)
    open(os.path.join(stale, "info.json"), "w").write('{"EnclaveID": "i-sim-enc00"}\n')
    open(os.path.join(stale, "pid"), "w").write("999999999\n")
    r = run("enclave", "describe", "--state-dir", state)
    desc = json.loads(r.stdout) if r.returncode == 0 else []
    check(len(desc) == 1 and desc[0]["Measurements"]["PCR0"] == m["PCR0"] and desc[0]["MemoryMiB"] == 32,
          "describe lists the running enclave with its measurements")
    if not desc:
        return
    lim = desc[0].get("Limits", {})
    check(lim.get("MemoryMiB") == 32 and lim.get("MaxTasks") == 1024 and
          (lim.get("Scope"), lim.get("NewProcesses")) in (("cgroup v2", "allowed"), ("cgroup v1", "allowed"),
                                                          ("process", "refused")) and
          bool(lim.get("Cgroup")) != bool(lim.get("Reason")),
          f"describe says which limits bound the enclave: {lim}")
    eid = desc[0]["EnclaveID"]
    r = run("enclave", "console", eid, "--state-dir", state)
    check(r.returncode == 1 and "--debug" in r.stderr, "a production enclave has no console")
    r = run("enclave", "console", "../../etc", "--state-dir", state)
    check(r.returncode == 2, "console refuses what is not an enclave ID")
    r = run("enclave", "terminate", eid, "--state-dir", state)
    check(r.returncode == 0 and json.loads(r.stdout)["Terminated"] is True, "terminate stops it")
    p.communicate(timeout=30)
    check(p.returncode == 128 + signal.SIGKILL, f"the launcher reports the enclave killed ({p.returncode})")
    r = run("enclave", "describe", "--state-dir", state)
    check(r.returncode == 0 and json.loads(r.stdout) == [], "describe lists nothing afterwards")


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-enclave-")
    try:
        r = run("enclave", "init-root", "-o", os.path.join(tmp, "pki"))
        assert r.returncode == 0, r.stderr
        test_build(tmp)
        if not test_probe(tmp):
            print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
            return 77
        test_fork(tmp)
        test_attest(tmp)
        test_deny(tmp)
        test_echo(tmp)
        test_listen(tmp)
        test_publish(tmp)
        test_describe_terminate(tmp)
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
