# SPDX-License-Identifier: Apache-2.0
"""Issue 12, finding 3: unauthenticated connection exhaustion. There was no connection cap; a
slowloris connection trickling a header line every 25 s stayed open past the 60 s timeout (which
each byte restarted); at EMFILE the accept loop spun a core and wrote a log line per attempt.

- the issue's bound: `cloister-kms --dev` serves a signed ListKeys within 1 s while 1,100 sockets
  hold partial headers, and uses under 5 % of a core while they sit idle (its utime+stime from
  /proc/PID/stat over 3 s);
- past --max-connections, the connections that have waited longest for a complete request are
  closed, and signed requests are still served;
- a request that trickles in (headers or body), or a connection that sends nothing, is closed
  at --request-timeout however recently it sent a byte; a keep-alive client that answers in time
  is not;
- EMFILE (the server's RLIMIT_NOFILE lowered under it with prlimit) does not spin: CPU and log
  lines stay bounded, and accepting resumes once descriptors are back.

Everything is on 127.0.0.1. Waits are on conditions (sockets becoming readable, /proc counts),
with generous timeouts; the 1 s and 5 % bounds are the issue's, asserted where the server is not
sanitized (CLOISTER_SANITIZED: the sanitizer passes look for races and memory errors here)."""
import http.client
import json
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import kms_raw  # noqa: E402

PARTIAL = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\n"
TICK = os.sysconf("SC_CLK_TCK")
BOUNDS = not os.environ.get("CLOISTER_SANITIZED")


def raise_own_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def open_sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


class Hostile:
    """n connections that each sent a partial request head and then nothing."""

    def __init__(self, port, n, payload=PARTIAL):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(payload)
            self.socks.append(s)
        self.closed = set()  # indices the server closed

    def poll_closed(self, timeout):
        """Waits up to timeout for any of them to become readable (EOF) and records those."""
        poller = select.poll()
        live = {s.fileno(): i for i, s in enumerate(self.socks) if i not in self.closed}
        for fd in live:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = poller.poll(timeout * 1000)
        for fd, _ in events:
            i = live[fd]
            try:
                data = self.socks[i].recv(4096)
            except ConnectionResetError:
                data = b""
            if data == b"":
                self.closed.add(i)
        return len(events)

    def close(self):
        for s in self.socks:
            s.close()


def signed_list_keys(port):
    t0 = time.monotonic()
    status, answer = kms_raw.call(port, "ListKeys", {})
    return status, answer, time.monotonic() - t0


class ConnectionLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_own_fd_limit(4096)

    def wait_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail("timed out after %d s waiting for %s" % (timeout, what))
            time.sleep(0.05)  # polling /proc: the condition has no file descriptor to wait on

    def test_1100_partial_headers_idle(self):
        """The issue's "done when": signed ListKeys within 1 s, under 5 % CPU while idle."""
        with kms_harness.kms_server() as srv:
            pid = srv.proc.pid
            hostile = Hostile(srv.port, 1100)
            try:
                # The server has accepted them all (1 listening socket + 1,100).
                self.wait_until(lambda: open_sockets(pid) >= 1101, 60, "1,100 connections accepted")
                status, answer, took = signed_list_keys(srv.port)
                self.assertEqual(status, 200, answer)
                self.assertIn("Keys", answer)
                print("signed ListKeys with 1,100 partial requests open: %.3f s" % took)
                if BOUNDS:
                    self.assertLess(took, 1.0)  # the bound
                # Idle: 3 s in which no hostile socket may be closed (request_timeout is 20 s),
                # during which the server may use at most 5 % of a core.
                c0, t0 = cpu_ticks(pid), time.monotonic()
                end = t0 + 3
                while time.monotonic() < end:
                    hostile.poll_closed(end - time.monotonic())
                used = (cpu_ticks(pid) - c0) / TICK / (time.monotonic() - t0)
                print("server CPU while 1,100 connections sit idle: %.2f %%" % (100 * used))
                if BOUNDS:
                    self.assertLess(used, 0.05)  # the bound
                self.assertEqual(len(hostile.closed), 0)
            finally:
                hostile.close()

    def test_cap_closes_the_longest_waiting(self):
        # One worker thread, so that "longest waiting" is one order (each thread keeps its own share).
        with kms_harness.kms_server(extra_args=["--max-connections", "64", "--threads", "1"]) as srv:
            pid = srv.proc.pid
            hostile = Hostile(srv.port, 200)
            try:
                def settled():
                    hostile.poll_closed(0.05)
                    return len(hostile.closed) + open_sockets(pid) - 1 == 200
                self.wait_until(settled, 60, "the server to account for 200 connections")
                self.assertEqual(open_sockets(pid) - 1, 64)
                # Those kept are the 64 that came last.
                self.assertEqual(sorted(set(range(200)) - hostile.closed), list(range(136, 200)))
                status, answer, took = signed_list_keys(srv.port)
                self.assertEqual(status, 200, answer)
                self.assertLessEqual(open_sockets(pid) - 1, 64)
            finally:
                hostile.close()

    def test_request_deadline(self):
        with kms_harness.kms_server(extra_args=["--request-timeout", "2"]) as srv:
            # Slowloris: a header line every 0.5 s. Each byte restarted the old 60 s timeout.
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST / HTTP/1.1\r\n")
            lines = 0
            t0 = time.monotonic()
            closed = False
            while lines < 20 and not closed:
                r, _, _ = select.select([s], [], [], 0.5)
                if r:
                    closed = s.recv(4096) == b""
                    continue
                try:
                    s.sendall(b"X-Slow-%d: 1\r\n" % lines)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                lines += 1
            took = time.monotonic() - t0
            s.close()
            self.assertTrue(closed, "a request trickling in for 10 s was not cut off at its 2 s deadline")
            self.assertGreaterEqual(lines, 2)  # not closed before its deadline
            print("slowloris headers closed after %.1f s, %d lines" % (took, lines))
            # A body that trickles, after complete headers.
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            sent, closed = 0, False
            while sent < 20 and not closed:
                r, _, _ = select.select([s], [], [], 0.5)
                if r:
                    closed = s.recv(4096) == b""
                    continue
                try:
                    s.sendall(b"{")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                sent += 1
            s.close()
            self.assertTrue(closed, "a body trickling in for 10 s was not cut off")
            # Connected, then nothing at all (and, over TLS, no handshake).
            s = socket.create_connection(("127.0.0.1", srv.port))
            r, _, _ = select.select([s], [], [], 10)
            self.assertTrue(r and s.recv(16) == b"", "an idle connection outlived its deadline")
            s.close()
            # A keep-alive client that sends each request in time keeps its connection.
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            ports = set()
            for i in range(3):
                if i:
                    time.sleep(1.2)  # pacing: idle between requests, within the 2 s deadline
                body = b"{}"
                conn.request("POST", "/", body=body, headers=kms_raw.signed_headers(srv.port, "ListKeys", body))
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertIn("Keys", json.loads(r.read()))
                ports.add(conn.sock.getsockname()[1])
            conn.close()
            self.assertEqual(len(ports), 1, "the keep-alive connection was not kept")

    def test_bad_limits_refused(self):
        for args, needle in ((["--max-connections", "15"],
                              "--max-connections must be a whole number from 16 to 1000000, not '15'"),
                             (["--max-connections", "4096x"], "--max-connections must be a whole number"),
                             (["--request-timeout", "0"],
                              "--request-timeout (seconds) must be a whole number from 1 to 3600, not '0'"),
                             (["--request-timeout", "3601"], "--request-timeout (seconds) must be a whole number")):
            p = subprocess.run([kms_harness.KMS_BIN, "--dev", "--listen", "127.0.0.1:0", *args], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr)

    def test_concurrent_clients(self):
        """Eight clients at once on the two worker threads (keys, aliases, Encrypt, Decrypt, data
        keys): every answer right, every request recorded once, the chain intact. The
        ThreadSanitizer pass runs this too: it is where the workers truly overlap."""
        with kms_harness.kms_server() as srv:
            errors = []

            def client(n):
                try:
                    kms = kms_harness.boto_client(srv.endpoint)
                    key = kms.create_key(Description="client %d" % n)["KeyMetadata"]["KeyId"]
                    kms.create_alias(AliasName="alias/client-%d" % n, TargetKeyId=key)
                    for i in range(15):
                        pt = b"client %d message %d" % (n, i)
                        blob = kms.encrypt(KeyId="alias/client-%d" % n, Plaintext=pt,
                                           EncryptionContext={"n": str(n)})["CiphertextBlob"]
                        if kms.decrypt(CiphertextBlob=blob, EncryptionContext={"n": str(n)})["Plaintext"] != pt:
                            errors.append("client %d: wrong plaintext" % n)
                        dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
                        if kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] != dk["Plaintext"]:
                            errors.append("client %d: wrong data key" % n)
                    kms.list_keys()
                except Exception as e:  # reported below, with the others
                    errors.append("client %d: %r" % (n, e))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            self.assertEqual(errors, [])
            with open(os.path.join(srv.data_dir, "audit.log")) as f:
                ids = [json.loads(ln)["request_id"] for ln in f]
            # 8 x (CreateKey and CreateAlias: "started" and outcome; 15 x 4 requests; ListKeys)
            self.assertEqual(len(ids), 8 * (2 * 2 + 15 * 4 + 1))
            self.assertEqual(len(set(ids)), 8 * (2 + 15 * 4 + 1))
            p = subprocess.run([kms_harness.CLI_BIN, "kms", "audit-verify", os.path.join(srv.data_dir, "audit.log")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_emfile_does_not_spin(self):
        tmp = tempfile.mkdtemp(prefix="cloister-kms-emfile-")
        proc = subprocess.Popen([kms_harness.KMS_BIN, "--dev", "--listen", "127.0.0.1:0", "--data",
                                 os.path.join(tmp, "data")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines = []
        reader = None
        try:
            first = proc.stdout.readline()
            port = int(first.rsplit(":", 1)[1].split()[0])
            reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
            reader.start()
            self.assertEqual(signed_list_keys(port)[0], 200)
            soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
            # No descriptor left: every accept() fails with EMFILE until the limit is back.
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (len(os.listdir("/proc/%d/fd" % proc.pid)), hard))
            waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            for s in waiting:
                s.sendall(PARTIAL)
            self.wait_until(lambda: any("cannot accept connections" in ln for ln in lines), 30, "the EMFILE message")
            c0, t0, n0 = cpu_ticks(proc.pid), time.monotonic(), len(lines)
            poller = select.poll()
            for s in waiting:
                poller.register(s.fileno(), select.POLLIN)
            poller.poll(3000)  # 3 s in which nothing should happen
            used = (cpu_ticks(proc.pid) - c0) / TICK / (time.monotonic() - t0)
            logged = len(lines) - n0
            print("at EMFILE: server CPU %.2f %%, %d log lines in 3 s" % (100 * used, logged))
            if BOUNDS:
                self.assertLess(used, 0.05)
            self.assertLessEqual(logged, 2)  # at most one every 10 s per worker thread
            self.assertIn("Too many open files", "".join(lines))
            self.assertIn("raise RLIMIT_NOFILE", "".join(lines))
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
            try:
                status, answer, took = signed_list_keys(port)  # accepting resumed (back-off at most 1 s)
            except OSError as e:
                proc.wait(timeout=30)
                self.fail("no answer once descriptors are back (%s); the server exited %s; its log:\n%s"
                          % (e, proc.returncode, "".join(lines[-80:])))
            self.assertEqual(status, 200, answer)
            for s in waiting:
                s.close()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            proc.stdout.close()
            if reader is not None:
                reader.join(timeout=10)
            proc.stderr.close()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
