#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The enclave commands as nitro-cli's users type them (cloister enclave --help; nitro-cli's
reference: build-enclave, run-enclave, describe-enclaves, describe-eif, console,
terminate-enclave).

    enclave_nitro.py cli   --help on every subcommand; nitro-cli's options mapped or refused
                           with a reason (no user namespaces needed)
    enclave_nitro.py run   run-enclave returns once the enclave runs, with nitro-cli's JSON;
                           describe-enclaves lists it; --cpu-count pins its threads (seen from
                           inside, and it cannot widen them); names and CIDs are unique; console
                           follows; --attach-console stays in the foreground; terminate-enclave
                           --all stops them all; a launcher's leftover directory is never
                           signalled. Exits 77 when the kernel forbids unprivileged user
                           namespaces, which sim enclaves need.

The enclave program is tests/enclave/enclave_probe.c (modes spin and cpus). Runs with Debian's
/usr/bin/python3; waits on the programs' output and exit, never on a sleep."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

C = os.environ.get("CLOISTER_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/cloister"))
PROBE = os.environ.get("ENCLAVE_PROBE", os.path.join(os.path.dirname(__file__), "../../build/tests/enclave_probe"))
passed = failed = 0
children = []


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def first(text):
    """A message's first line, for a check's description."""
    return text.strip().split("\n")[0][:200]


def run(*args, timeout=60):
    return subprocess.run([C, *args], capture_output=True, text=True, timeout=timeout)


def image(tmp, name, mode, *extra):
    d = os.path.join(tmp, "src-" + name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "mode"), "w") as f:
        f.write(mode + "\n")
    out = os.path.join(tmp, name + ".eif")
    r = run("enclave", "build-enclave", "--exe", PROBE, "--file", os.path.join(d, "mode"), "--output-file", out,
            *extra)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)["Measurements"]


def cli(tmp):
    verbs = ["init-root", "build", "build-enclave", "measure", "describe-eif", "run", "run-enclave", "describe",
             "describe-enclaves", "console", "terminate", "terminate-enclave"]
    for v in verbs:
        try:
            r = run("enclave", v, "--help", timeout=30)
            ok = r.returncode == 0 and r.stdout.startswith("Usage: cloister enclave ") and r.stderr == ""
            check(ok and f"cloister enclave {v}" in r.stdout or ok and v in ("build-enclave",),
                  f"enclave {v} --help prints its usage and exits 0 ({r.returncode}, {first(r.stderr)!r})")
        except subprocess.TimeoutExpired:
            check(False, f"enclave {v} --help returns")
    r = run("enclave", "--help")
    check(r.returncode == 0 and all(v in r.stdout for v in verbs), "enclave --help lists every command")

    # build-enclave: nitro-cli's --output-file, --private-key, --signing-certificate; the same image.
    img1, m1 = image(tmp, "spin", "spin")
    d = os.path.join(tmp, "src-spin")
    r = run("enclave", "build", "--exe", PROBE, "--file", os.path.join(d, "mode"), "-o", os.path.join(tmp, "ours.img"))
    check(r.returncode == 0 and open(img1, "rb").read() == open(os.path.join(tmp, "ours.img"), "rb").read(),
          "build-enclave --output-file makes the image build -o makes")
    key, crt = os.path.join(tmp, "sign.key"), os.path.join(tmp, "sign.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=nitro names"],
                   check=True, capture_output=True)
    _, ms = image(tmp, "signed", "spin", "--private-key", key, "--signing-certificate", crt)
    check("PCR8" in ms and ms["PCR0"] == m1["PCR0"], "--private-key / --signing-certificate sign it (PCR8)")
    for opt in ("--docker-uri", "--docker-dir"):
        out = os.path.join(tmp, "docker.eif")
        r = run("enclave", "build-enclave", opt, "x", "--exe", PROBE, "--output-file", out)
        check(r.returncode == 2 and "not from Docker images" in r.stderr and "--exe BIN" in r.stderr
              and not os.path.exists(out), f"build-enclave {opt} is refused, saying what to give instead")
    r1, r2 = run("enclave", "describe-eif", "--eif-path", img1), run("enclave", "measure", img1)
    check(r1.returncode == 0 and r1.stdout == r2.stdout and '"PCR0"' in r1.stdout, "describe-eif --eif-path = measure")

    # Refused before anything runs, each with what is wrong.
    state = os.path.join(tmp, "refusals")
    cfg = os.path.join(tmp, "bad.json")
    with open(cfg, "w") as f:
        json.dump({"eif_path": img1, "memory_mib": 64, "cpus": 2}, f)
    cases = [
        (["--cpu-count", "1", "--cpu-ids", "0"], "not both"),
        (["--cpu-count", "0"], "--cpu-count"),
        (["--cpu-ids", "x"], "--cpu-ids"),
        (["--cpu-count", str(len(os.sched_getaffinity(0)) + 1)], "this launcher may use %d CPUs"
         % len(os.sched_getaffinity(0))),
        (["--cpu-ids", str(max(os.sched_getaffinity(0)) + 1)], "is not one this launcher may use"),
        (["--attach-console"], "--attach-console needs --debug"),
        (["--enclave-name", "bad name"], "give 1 to 64 letters"),
        (["--memory", "8"], "--memory"),
        (["--enclave-cid", "2"], "--cid"),
        (["--bogus"], "unknown option --bogus"),
    ]
    for extra, needle in cases:
        r = run("enclave", "run-enclave", "--eif-path", img1, "--state-dir", state, *extra)
        check(r.returncode == 2 and needle in r.stderr and r.stdout == "",
              f"run-enclave {' '.join(extra)}: refused ({needle}): {first(r.stderr)}")
    r = run("enclave", "run-enclave", "--config", cfg, "--state-dir", state)
    check(r.returncode == 2 and 'unknown key "cpus"' in r.stderr, "--config: an unknown key is refused")
    r = run("enclave", "run-enclave", "--config", cfg, "--memory", "64", "--state-dir", state)
    check(r.returncode == 2 and "says it all" in r.stderr, "--config with the settings as options too is refused")
    r = run("enclave", "terminate-enclave", "--state-dir", state)
    check(r.returncode == 2 and "--all" in r.stderr, "terminate-enclave needs an enclave or --all")
    r = run("enclave", "console", "--enclave-id", "../../etc", "--state-dir", state)
    check(r.returncode == 2 and "not an enclave ID" in r.stderr, "console refuses what is not an enclave ID")
    r = run("enclave", "describe-enclaves", "--state-dir", state)
    check(r.returncode == 0 and json.loads(r.stdout) == [], "nothing ran")
    return True


def launcher_gone(pid):
    """Exited: no such process, or a zombie its (re)parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def run_part(tmp):
    state = os.path.join(tmp, "state")
    spin, _ = image(tmp, "spin", "spin")
    cpus, _ = image(tmp, "cpus", "cpus")
    allowed = sorted(os.sched_getaffinity(0))

    # run-enclave returns once the enclave runs: subprocess.run returning at all means the
    # launcher left the command's stdout and stderr, or it would wait for their end.
    r = run("enclave", "run-enclave", "--eif-path", spin, "--cpu-count", "1", "--memory", "64", "--state-dir", state)
    if r.returncode != 0 and "forbids unprivileged user namespaces" in r.stderr:
        return False
    check(r.returncode == 0, f"run-enclave exits 0 once the enclave runs: {first(r.stderr)}")
    pairs = json.loads(r.stdout, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    one = dict(pairs)
    check(keys[:7] == ["EnclaveName", "EnclaveID", "ProcessID", "EnclaveCID", "NumberOfCPUs", "CPUIDs", "MemoryMiB"],
          f"nitro-cli's run-enclave fields, in its order: {keys[:7]}")
    check(one["NumberOfCPUs"] == 1 and len(one["CPUIDs"]) == 1 and one["CPUIDs"][0] == allowed[-1],
          f"--cpu-count 1: one CPU, the highest-numbered allowed ({one['CPUIDs']} of {allowed})")
    check(one["MemoryMiB"] == 64 and one["EnclaveName"] == "spin" and one["EnclaveCID"] == 16,
          "--memory, the default name (the image's) and the first free CID")
    check(not launcher_gone(one["ProcessID"]), "its launcher runs in the background")
    d = run("enclave", "describe-enclaves", "--state-dir", state)
    listed = json.loads(d.stdout)
    check(d.returncode == 0 and [e["EnclaveID"] for e in listed] == [one["EnclaveID"]]
          and listed[0]["ProcessID"] == one["ProcessID"] and listed[0]["State"] == "RUNNING",
          "describe-enclaves lists it")

    # Names and CIDs: the default made unique, an explicit one in use refused.
    r = run("enclave", "run-enclave", "--eif-path", spin, "--memory", "64", "--state-dir", state)
    second = json.loads(r.stdout) if r.returncode == 0 else {}
    check(second.get("EnclaveName") == "spin-2" and second.get("EnclaveCID") == 17,
          f"a second one gets spin-2 and CID 17: {second.get('EnclaveName')} {second.get('EnclaveCID')}")
    check(second.get("NumberOfCPUs") == len(allowed) and second.get("CPUIDs") == allowed,
          "without --cpu-count it may use every CPU the launcher may")
    r = run("enclave", "run-enclave", "--eif-path", spin, "--memory", "64", "--enclave-name", "spin", "--state-dir",
            state)
    check(r.returncode == 1 and "an enclave named 'spin' is running already" in r.stderr,
          "an --enclave-name in use is refused")
    r = run("enclave", "run-enclave", "--eif-path", spin, "--memory", "64", "--enclave-cid", "16", "--state-dir",
            state)
    check(r.returncode == 1 and "vsock CID 16 is enclave %s's" % one["EnclaveID"] in r.stderr,
          "an --enclave-cid in use is refused")

    # --cpu-count seen from inside: a thread's affinity is the one CPU, and widening it is refused.
    cfg = os.path.join(tmp, "nitro.json")
    with open(cfg, "w") as f:
        json.dump({"eif_path": cpus, "memory_mib": 64, "cpu_count": 1, "enclave_name": "from-config",
                   "debug_mode": True}, f)
    r = run("enclave", "run-enclave", "--config", cfg, "--state-dir", state)
    third = json.loads(r.stdout) if r.returncode == 0 else {}
    check(third.get("EnclaveName") == "from-config" and third.get("Flags") == "DEBUG_MODE"
          and third.get("MemoryMiB") == 64, f"nitro-cli's --config JSON: {first(r.stderr)}")
    con = subprocess.Popen([C, "enclave", "console", "--enclave-name", "from-config", "--state-dir", state],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(con)
    line = con.stdout.readline()
    check(line.strip() == "CPUS n=1 ids=%d widen=refused errno=1" % third.get("CPUIDs", [-1])[0],
          f"inside, its threads run on its one CPU and cannot widen that: {line.strip()}")
    r = run("enclave", "console", "--enclave-id", third.get("EnclaveID", ""), "--disconnect-timeout", "1",
            "--state-dir", state)
    check(r.returncode == 0 and r.stdout.startswith("CPUS n=1"), "console --disconnect-timeout prints and returns")
    r = run("enclave", "console", one["EnclaveID"], "--state-dir", state)
    check(r.returncode == 1 and "--debug-mode" in r.stderr, "a production enclave has no console")
    r = run("enclave", "terminate-enclave", "--enclave-name", "from-config", "--state-dir", state)
    check(r.returncode == 0 and json.loads(r.stdout) == {"EnclaveID": third.get("EnclaveID"), "Terminated": True}
          and f"Successfully terminated enclave {third.get('EnclaveID')}." in r.stderr,
          "terminate-enclave --enclave-name: nitro-cli's answer")
    rest, _ = con.communicate(timeout=60)
    check(con.returncode == 0 and rest == "", "console follows until the enclave ends, then returns")

    # --attach-console: in the foreground, the description then the console.
    fg = subprocess.Popen([C, "enclave", "run-enclave", "--eif-path", cpus, "--debug-mode", "--attach-console",
                           "--enclave-name", "fg", "--memory", "64", "--state-dir", state],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(fg)
    text = ""
    while "CPUS" not in text:
        ln = fg.stdout.readline()
        if ln == "":
            break
        text += ln
    check("\"EnclaveName\": \"fg\"" in text and "CPUS n=" in text and fg.poll() is None,
          "run-enclave --attach-console stays in the foreground with the console")

    # A launcher killed with SIGKILL leaves its directory: not listed, never signalled. And a
    # directory whose pid file names a live process that is not a launcher (a pid reused) is
    # not that process's to be signalled: the launcher's lock, not the pid, says what runs.
    r = run("enclave", "run-enclave", "--eif-path", spin, "--memory", "64", "--enclave-name", "doomed",
            "--state-dir", state)
    doomed = json.loads(r.stdout)
    os.kill(doomed["ProcessID"], signal.SIGKILL)
    bystander = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    children.append(bystander)
    with open(os.path.join(state, doomed["EnclaveID"], "pid"), "w") as f:
        f.write("%d\n" % bystander.pid)
    d = json.loads(run("enclave", "describe-enclaves", "--state-dir", state).stdout)
    check(doomed["EnclaveID"] not in [e["EnclaveID"] for e in d], "a killed launcher's enclave is not listed")
    r = run("enclave", "terminate-enclave", "--enclave-id", doomed["EnclaveID"], "--state-dir", state)
    check(r.returncode == 1 and "no running enclave" in r.stderr and bystander.poll() is None,
          "terminating it signals nobody (the pid in its directory is another process's now)")

    # terminate-enclave --all: every one stops, each reported as nitro-cli does.
    running = [e["EnclaveID"] for e in json.loads(run("enclave", "describe-enclaves", "--state-dir", state).stdout)]
    pids = [e["ProcessID"] for e in json.loads(run("enclave", "describe-enclaves", "--state-dir", state).stdout)]
    r = run("enclave", "terminate-enclave", "--all", "--state-dir", state)
    dec, objs, pos = json.JSONDecoder(), [], 0
    while pos < len(r.stdout.strip()):
        o, pos = dec.raw_decode(r.stdout, pos)
        objs.append(o)
        while pos < len(r.stdout) and r.stdout[pos].isspace():
            pos += 1
    check(r.returncode == 0 and sorted(o["EnclaveID"] for o in objs) == sorted(running)
          and all(o["Terminated"] is True for o in objs) and len(running) == 3,
          f"terminate-enclave --all stops all {len(running)}: {first(r.stderr)}")
    check(all(f"Successfully terminated enclave {i}." in r.stderr for i in running), "each one reported")
    d = run("enclave", "describe-enclaves", "--state-dir", state)
    check(d.returncode == 0 and json.loads(d.stdout) == [], "describe-enclaves lists none afterwards")
    check(all(launcher_gone(p) for p in pids), "their launchers have exited")
    fg.communicate(timeout=60)
    check(fg.returncode == 128 + signal.SIGKILL, f"the foreground run-enclave ends with its enclave ({fg.returncode})")
    check(bystander.poll() is None, "the bystander was never signalled")
    return True


def main():
    part = sys.argv[1] if len(sys.argv) > 1 else "cli"
    tmp = tempfile.mkdtemp(prefix="cloister-nitro-")
    try:
        if part == "cli":
            cli(tmp)
        elif not run_part(tmp):
            print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclave cannot run here")
            return 77
    finally:
        subprocess.run([C, "enclave", "terminate-enclave", "--all", "--state-dir", os.path.join(tmp, "state")],
                       capture_output=True, timeout=60)
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
