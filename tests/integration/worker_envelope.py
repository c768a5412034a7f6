# SPDX-License-Identifier: Apache-2.0
"""The envelope path end to end (docs/worker.md): the cloister-infer worker in a sim
enclave unseals a model sealed under the model owner's key, whose policy names the worker image's
PCR0; a hospital seals one patient record under its own key on its own cloister-kms;
`cloister infer --enclave` sends it with a fresh request id; the result comes back sealed under
the hospital's key, bound to the request, and the client unseals it: it equals
`cloister infer-local` on the plaintext record.

Failures, each one clear line on stderr, exit 1, no output file, and the worker then serves a
good request: a tampered sealed input; a sealed input that is not a record (not quoted back);
a replayed request; the hospital's KMS down mid-flight (then back). Then a stop frame makes the
worker exit 0. The plaintext record never appears in the bytes the host sees (the host channel
and the KMS traffic, captured by relays). Startup: the model owner's KMS down when the enclave
starts and back a moment later (the worker retries with backoff and starts), a KMS that never
answers and a key policy naming another PCR0 (one line, non-zero exit), and with
start_failure_report the reason answered to the host's client on the envelope port.

Skips (prints the reason, exits 0) only when the kernel refuses unprivileged user namespaces."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402
import worker_harness as wh  # noqa: E402

passed = failed = 0


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
        with wh.world() as w:
            p = w.p
            proc, env_sock, _ = w.start_enclave()
            host = wh.Relay(env_sock, unix_path=p("host.sock"))

            def infer(inp, out, *extra):
                return w.run("infer", "--enclave", host.path, inp, "-o", out, *extra, env=w.henv)

            r = infer(p("patient.sealed"), p("result.json"))
            check(r.returncode == 0, "cloister infer sends the sealed record and unseals the bound result: " +
                  r.stderr.strip())
            got = json.loads(open(p("result.json")).read()) if r.returncode == 0 else {}
            check(wh.same_result(got, w.expected), f"the enclave's result {got} equals infer-local's {w.expected}")

            r = infer(p("patient.sealed"), p("replayed.json"))
            check(one_line_failure(r, p("replayed.json"), "the enclave refused the request",
                                   "this sealed input was already served (replayed request)"),
                  f"a replayed sealed input is refused with one line, exit 1 (exit {r.returncode}): {r.stderr.strip()}")

            sealed = bytearray(open(p("patient.sealed"), "rb").read())
            sealed[-1] ^= 1
            open(p("tampered.sealed"), "wb").write(bytes(sealed))
            r = infer(p("tampered.sealed"), p("tampered.out"))
            check(one_line_failure(r, p("tampered.out"), "the enclave refused the request", "unsealing the request"),
                  f"a tampered input gets one clear line, exit 1, no output (exit {r.returncode}): {r.stderr.strip()}")

            notes = w.seal_record("notes.sealed", b"secret-diagnosis-xyz: not a record\n")
            r = infer(notes, p("notes.out"))
            check(one_line_failure(r, p("notes.out"), "not a record this classifier reads") and
                  "secret-diagnosis" not in r.stderr,
                  "a sealed input that is not a record is refused without quoting it: " + r.stderr.strip())

            second = w.seal_record("patient2.sealed", w.record)
            r = infer(second, p("result2.sealed"), "--keep-sealed")
            check(r.returncode == 0, "the worker serves the next request after bad ones (--keep-sealed): " +
                  r.stderr.strip())
            r = w.run("unseal", "--key", wh.PATIENT_ALIAS, p("result2.sealed"), "-o", p("result2.json"), env=w.henv)
            check(r.returncode == 0 and wh.same_result(json.loads(open(p("result2.json")).read()), w.expected),
                  "the kept sealed result unseals with the hospital's key to the same result: " + r.stderr.strip())
            head = open(p("result2.sealed"), "rb").read()[:4096]
            check(b"cloister:request-id" in head and b"cloister:input-sha384" in head,
                  "the sealed result's header carries the request binding")

            # The hospital's KMS goes down while a request is in flight (the worker's Decrypt
            # fails after its retries), then comes back: the same sealed input is served.
            third = w.seal_record("patient3.sealed", w.record)
            w.hosp_relay.down = True
            t0 = time.time()
            r = infer(third, p("kmsdown.json"))
            check(one_line_failure(r, p("kmsdown.json"), "the enclave refused the request"),
                  f"the hospital's KMS down mid-flight: one line, exit 1, in {time.time() - t0:.1f} s "
                  f"(exit {r.returncode}): {r.stderr.strip()}")
            w.hosp_relay.down = False
            r = infer(third, p("kmsback.json"))
            check(r.returncode == 0 and wh.same_result(json.loads(open(p("kmsback.json")).read()), w.expected),
                  "once the KMS is back the worker serves that same sealed input: " + r.stderr.strip())

            r = w.run("infer", "--enclave", host.path, "--stop")
            check(r.returncode == 0, "the stop frame is sent: " + r.stderr.strip())
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            check(proc.returncode == 0, f"the worker finishes and exits 0 after a stop frame (exit {proc.returncode})")

            seen = host.seen()
            hosp_seen, owner_seen = w.hosp_relay.seen(), w.kms_relay.seen()
            check(b"X-Amz-Target: TrentService.GenerateDataKey" in hosp_seen and
                  b"X-Amz-Target: TrentService.Decrypt" in hosp_seen,
                  "the record's keys came from the hospital's KMS (Decrypt, then GenerateDataKey for the result)")
            check(b"TrentService.Decrypt" in owner_seen and b"TrentService.GenerateDataKey" not in owner_seen,
                  "the model owner's KMS saw only the model key's Decrypt")
            check(b"CLSEAL" in seen and len(seen) > 2 * len(w.record),
                  f"the host relay saw the exchanges ({len(seen)} bytes)")
            needles = [w.record, w.record[:40], b"mean_radius", b"17.99", b"secret-diagnosis",
                       b'"label"', b"probabilities", w.expected["label"].encode()]
            check(not any(n in seen for n in needles),
                  "neither the record nor the result appears in the host channel's bytes")
            check(b"CiphertextForRecipient" in hosp_seen + owner_seen and
                  not any(n in hosp_seen + owner_seen for n in needles[:3]),
                  "the record does not appear in the KMS traffic either")
            host.sock.close()

            # Startup: the model owner's KMS is down when the enclave starts and back 1.5 s later;
            # the worker retries with backoff and starts.
            w.kms_relay.down = True
            threading.Timer(1.5, lambda: setattr(w.kms_relay, "down", False)).start()
            proc2, env2, _ = w.start_enclave(state="state2")
            r = w.run("infer", "--enclave", env2, w.seal_record("patient4.sealed", w.record), "-o", p("late.json"),
                      env=w.henv)
            check(r.returncode == 0 and wh.same_result(json.loads(open(p("late.json")).read()), w.expected),
                  "a worker whose KMS was down at start retries, starts, and serves: " + r.stderr.strip())
            r = w.run("infer", "--enclave", env2, "--stop")
            proc2.wait(timeout=30)

            # Startup failures: one line on the console (only --debug enclaves show it, and their
            # documents carry PCR0 zero, which is exactly the refused case) and a non-zero exit.
            def debug_run(proxy_port, img="worker.img"):
                dp = subprocess.run([wh.C, "enclave", "run", p(img), "--state-dir", p("state-debug"), "--pki",
                                     p("pki"), "--memory", "512", "--quiet", "--debug", "--attach-console", "--proxy",
                                     f"8000=127.0.0.1:{proxy_port}"], capture_output=True, text=True, timeout=120)
                lines = [ln for ln in (dp.stdout + dp.stderr).splitlines() if "cannot start" in ln]
                return dp.returncode, lines

            rc, lines = debug_run(w.kms_relay.port)
            check(rc != 0 and len(lines) == 1 and "unsealing the model" in lines[0] and
                  "AccessDeniedException" in lines[0] and "kms:RecipientAttestation:PCR0" in lines[0],
                  f"a worker whose PCR0 the model key does not name stops with one line (exit {rc}): {lines}")
            rc, lines = debug_run(kms_harness.free_port())
            check(rc != 0 and len(lines) == 1 and "unsealing the model" in lines[0],
                  f"a worker that cannot reach its KMS stops with one line after retrying (exit {rc}): {lines}")

            # A bad value in the image's configuration stops the start with one line naming it.
            for key, value, says in (("direct_conv", "yes", '"direct_conv" must be true or false'),
                                     ("model_memory_mib", 8, '"model_memory_mib" must be an integer from 16 to')):
                os.makedirs(p("bad-" + key))
                cfg = json.load(open(p("worker.json")))
                cfg[key] = value
                open(p("bad-" + key, "worker.json"), "w").write(json.dumps(cfg))
                r = w.run("enclave", "build", "--exe", wh.WORKER, "--file", p("model.sealed"), "--file",
                          p("bad-" + key, "worker.json"), "-o", p("bad-%s.img" % key))
                assert r.returncode == 0, r.stderr
                rc, lines = debug_run(w.kms_relay.port, "bad-%s.img" % key)
                check(rc != 0 and len(lines) == 1 and says in lines[0],
                      f"a configuration with {key} {value!r} stops with one line (exit {rc}): {lines}")

            # A production (non-debug) enclave has no console: with start_failure_report the
            # failed start is answered on the envelope port instead, until a stop frame.
            os.makedirs(p("report"))
            cfg = json.load(open(p("worker.json")))
            cfg["start_failure_report"] = 60
            cfg["start_attempts"] = 1
            open(p("report", "worker.json"), "w").write(json.dumps(cfg))
            r = w.run("enclave", "build", "--exe", wh.WORKER, "--file", p("model.sealed"), "--file",
                      p("report", "worker.json"), "-o", p("report.img"))
            assert r.returncode == 0, r.stderr
            state = p("state-report")
            rp = subprocess.Popen([wh.C, "enclave", "run", p("report.img"), "--state-dir", state, "--pki", p("pki"),
                                   "--memory", "512", "--quiet", "--proxy", f"8000=127.0.0.1:{kms_harness.free_port()}",
                                   "--proxy", f"8001=127.0.0.1:{w.hosp_relay.port}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            w.procs.append(rp)
            sock = None
            deadline = time.time() + 60
            while sock is None and time.time() < deadline and rp.poll() is None:
                ds = [d for d in os.listdir(state) if d.startswith("i-sim-enc")] if os.path.isdir(state) else []
                cand = os.path.join(state, ds[0], f"vsock-{wh.LISTEN_PORT}.sock") if ds else None
                sock = cand if cand and os.path.exists(cand) else None
                time.sleep(0.05)
            r = w.run("infer", "--enclave", sock or "/nonexistent", p("patient.sealed"), "-o", p("report.json"),
                      env=w.henv)
            check(one_line_failure(r, p("report.json"), "the enclave refused the request: the worker could not start",
                                   "unsealing the model", "through vsock port 8000", "refused by the host"),
                  f"a failed start is reported to the host's client in one line (exit {r.returncode}): "
                  f"{r.stderr.strip()}")
            r = w.run("infer", "--enclave", sock or "/nonexistent", "--stop")
            try:
                rp.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            check(rp.returncode == 1, f"after the stop frame that enclave exits 1 (exit {rp.returncode})")
    except wh.Skip as e:
        print("SKIP:", e)
        return 77
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
