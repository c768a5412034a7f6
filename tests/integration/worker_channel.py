# SPDX-License-Identifier: Apache-2.0
"""The channel path end to end (docs/worker.md): the cloister-infer worker in a sim
enclave serves RA-TLS on its channel port; `cloister infer --channel SOCKET --root ROOT.pem
--expect-pcr0 HEX record.json` checks the enclave in the handshake and sends the plaintext
record inside TLS 1.3: the result equals `cloister infer-local` on the same record, and neither
appears in the bytes the host relays.

Failures, each one clear line on stderr, exit 1, no output file, and the worker then serves a
good request: a client expecting another PCR0 (both values printed); a client trusting another
root; a record the model does not read. Concurrency: four clients at once; four stalled clients
that send nothing do not pin the worker's threads past its read timeout. Last, the enclave is
killed while a request is in flight: the client says so, and writes no output.

Skips (prints the reason, exits 0) only when the kernel refuses unprivileged user namespaces."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import worker_harness as wh  # noqa: E402

passed = failed = 0
READ_TIMEOUT = 3


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def one_line_failure(r, out, *needles):
    lines = r.stderr.strip().splitlines()
    return (r.returncode == 1 and len(lines) == 1 and lines[0].startswith("cloister: error: ") and
            all(n in lines[0] for n in needles) and not os.path.exists(out))


def main():
    try:
        with wh.world({"read_timeout": READ_TIMEOUT}) as w:
            p = w.p
            r = w.run("enclave", "init-root", "-o", p("other"))
            assert r.returncode == 0, r.stderr
            proc, env_sock, chan_sock = w.start_enclave()
            relay = wh.Relay(chan_sock, unix_path=p("chan.sock"))
            root = p("pki", "root.pem")

            def infer(inp, out, pcr0=None, root_pem=root, sock=relay.path):
                return w.run("infer", "--channel", sock, "--root", root_pem, "--expect-pcr0", pcr0 or w.pcr0, inp,
                             "-o", out, env=w.henv)

            r = infer(p("patient.json"), p("result.json"))
            check(r.returncode == 0, "cloister infer --channel verifies the enclave and sends the record: " +
                  r.stderr.strip())
            got = json.loads(open(p("result.json")).read()) if r.returncode == 0 else {}
            check(wh.same_result(got, w.expected), f"the enclave's result {got} equals infer-local's {w.expected}")
            r = infer(p("patient.json"), p("result.json"))
            check(r.returncode == 1 and "exists" in r.stderr, "an existing output is not replaced without --force")
            r = w.run("infer", "--channel", relay.path, "--root", root, "--expect-pcr0", w.pcr0, p("patient.json"),
                      "-o", p("result.json"), "--force")
            check(r.returncode == 0, "--force replaces it: " + r.stderr.strip())

            other = "ab" * 48
            r = infer(p("patient.json"), p("other.json"), pcr0=other)
            check(one_line_failure(r, p("other.json"), "PCR0", w.pcr0.lower(), other),
                  f"a client expecting another PCR0 stops with both values on one line (exit {r.returncode}): "
                  f"{r.stderr.strip()}")
            r = infer(p("patient.json"), p("other.json"), root_pem=p("other", "root.pem"))
            check(one_line_failure(r, p("other.json"), "the enclave at"),
                  f"a client trusting another root refuses the enclave (exit {r.returncode}): {r.stderr.strip()}")
            open(p("notes.txt"), "w").write("secret-diagnosis-xyz: not a record\n")
            r = infer(p("notes.txt"), p("notes.out"))
            check(one_line_failure(r, p("notes.out"), "not a record this classifier reads"),
                  "a record the model does not read is refused with one line: " + r.stderr.strip())
            r = infer(p("patient.json"), p("after.json"))
            check(r.returncode == 0 and wh.same_result(json.loads(open(p("after.json")).read()), w.expected),
                  "the worker serves a good request after the bad ones: " + r.stderr.strip())

            r = infer(p("patient.json"), p("bad.json"), pcr0="xyz")
            check(r.returncode == 2 and "--expect-pcr0" in r.stderr and "must be 96 hex digits" in r.stderr and
                  not os.path.exists(p("bad.json")), "a malformed --expect-pcr0 is a usage error: " + r.stderr.strip())
            r = w.run("infer", "--enclave", env_sock, "--expect-pcr0", w.pcr0, p("patient.sealed"), "-o", p("bad.json"))
            check(r.returncode == 2 and "the KMS key policy decides" in r.stderr,
                  "--expect-pcr0 on the envelope path is refused, saying what pins the enclave there: " +
                  r.stderr.strip().splitlines()[0])

            def infer_policy(policy_path, out):
                return w.run("infer", "--channel", relay.path, "--root", root, "--policy", policy_path,
                             p("patient.json"), "-o", out, env=w.henv)

            r = infer_policy(p("build.json"), p("policy.json"))
            check(r.returncode == 0 and wh.same_result(json.loads(open(p("policy.json")).read()), w.expected),
                  "--policy with cloister enclave build's output (PCR0, PCR1, PCR2) accepts the enclave: " +
                  r.stderr.strip())
            measured = json.load(open(p("build.json")))["Measurements"]
            open(p("wrong-pcr1.json"), "w").write(json.dumps({"PCR0": w.pcr0, "PCR1": "cd" * 48}))
            r = infer_policy(p("wrong-pcr1.json"), p("policy2.json"))
            check(one_line_failure(r, p("policy2.json"), "PCR1 is " + measured["PCR1"].lower(), "cd" * 48),
                  "a policy naming another PCR1 is refused with both values: " + r.stderr.strip())
            open(p("bad-policy.json"), "w").write(json.dumps({"PCR99": w.pcr0}))
            r = infer_policy(p("bad-policy.json"), p("policy3.json"))
            check(r.returncode == 2 and "is not a \"PCR<n>\": \"HEX\" entry" in r.stderr,
                  "a malformed policy is a usage error: " + r.stderr.strip())

            seen = relay.seen()
            needles = [w.record, w.record[:40], b"mean_radius", b"17.99", b"secret-diagnosis", b'"label"',
                       b"probabilities"]
            check(len(seen) > 4000 and not any(n in seen for n in needles),
                  f"the host saw {len(seen)} bytes of TLS and neither record nor result in them")

            # Four clients at once.
            results = [None] * 4

            def client(i):
                results[i] = infer(p("patient.json"), p(f"par{i}.json"))

            ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            check(all(r.returncode == 0 for r in results) and
                  all(wh.same_result(json.loads(open(p(f"par{i}.json")).read()), w.expected) for i in range(4)),
                  "four clients at once all get the result: " + " | ".join(r.stderr.strip() for r in results))

            # Four stalled clients (one per serving thread) send nothing; the read timeout frees them.
            stalled = []
            for _ in range(4):
                s = socket.socket(socket.AF_UNIX)
                s.connect(chan_sock)
                stalled.append(s)
            t0 = time.time()
            r = infer(p("patient.json"), p("unstalled.json"))
            took = time.time() - t0
            check(r.returncode == 0 and took < READ_TIMEOUT + 20,
                  f"with every thread pinned by a silent client, a request is served after the read timeout "
                  f"({took:.1f} s): {r.stderr.strip()}")
            for s in stalled:
                s.close()

            # The enclave dies while a request is in flight: the relay holds back its answer.
            host = wh.Relay(env_sock, unix_path=p("host.sock"))
            host.hold = True
            box = {}

            def in_flight():
                box["r"] = w.run("infer", "--enclave", host.path, p("patient.sealed"), "-o", p("killed.json"),
                                 env=w.henv)

            t = threading.Thread(target=in_flight)
            t.start()
            # In flight: the enclave has read the request and answered; the relay keeps the answer.
            check(host.held.wait(60), "the enclave answered the request the relay holds back")
            proc.kill()
            proc.wait()
            t.join(60)
            r = box.get("r")
            check(r is not None and one_line_failure(r, p("killed.json"), "the enclave"),
                  f"the enclave killed mid-request: the client says so in one line, no output "
                  f"(exit {r.returncode if r else None}): {r.stderr.strip() if r else 'no answer'}")
    except wh.Skip as e:
        print("SKIP:", e)
        return 77
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
