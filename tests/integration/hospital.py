# SPDX-License-Identifier: Apache-2.0
"""./scripts/hospital up / status / down (issue 17, "The deployment on one machine") against this
build, as a user runs it: `up --dir TMP --port FREEPORT` from an empty current directory, then the
walk-through's commands exactly as up printed them, run by sh with the variables of the
hospital.env it wrote (parsed, not sourced), each with ` -w "\\n%{http_code}"` appended to see the
status. Checks: the POST gives the record (fields byte-exact, id, score null), the GET the same,
/score 422 NoMeasurements for it and the classifier's number (equal to `cloister infer-local` on
the deployment's model) for a record with the 30 measurements of wdbc.csv's row 1, /delineate a PNG
mask of the slice's size, no token 401 and a read token writing 403; status lists everything; a
second up refuses, saying how to stop; down stops every process up started (the pid files' and
the enclave launchers' with their descendants, each identified by pid and start time), frees
the API's, Redis's and the channels' ports, keeps the state directory and, run again, changes
nothing. up over the stopped deployment starts it again with its records and tokens. Ctrl-C
while up starts things, and a step that fails (a redis-server that cannot start): exit 1, the
step (and its log) named, nothing left running; a port already taken: refused before anything
starts. Exits 77 only when the kernel refuses unprivileged user namespaces (no sim enclave)."""
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

ROOT = os.environ["CLOISTER_SOURCE_DIR"]
SCRIPT = os.path.join(ROOT, "scripts", "hospital")
CLOISTER = os.environ["CLOISTER_BIN"]
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def identity(pid):
    """(pid, start time) of a live process, else None (zombies count as gone)."""
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    f = stat[stat.rindex(")") + 2:].split()
    return None if f[0] == "Z" else (pid, int(f[19]))


def descendants(pids):
    """pids and every process below them."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open("/proc/%s/stat" % d).read()
                parent[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def in_dir(d):
    """Processes whose current directory is d or below it (up runs everything it starts there)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cwd = os.readlink("/proc/%s/cwd" % p)
            except OSError:
                continue
            if (cwd == d or cwd.startswith(d + "/")) and identity(int(p)):
                out.append(int(p))
    return out


def parse_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = shlex.split(v)[0] if v else ""
    return env


def hospital(cwd, *args, timeout=900):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def png_size(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def run_printed(cmd, env, cwd):
    """One printed command, as sh runs it with hospital.env's variables; (status, body)."""
    r = subprocess.run(["sh", "-c", cmd + ' -sS -w "\\n%{http_code}"'], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300)
    body, _, code = r.stdout.rpartition("\n")
    return code, body, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="cloister-hospital-")
    cwd, state = os.path.join(tmp, "cwd"), os.path.join(tmp, "state")
    os.mkdir(cwd)
    port = free_port()
    up = None
    try:
        up = hospital(cwd, "up", "--dir", state, "--port", str(port))
        out = up.stdout + up.stderr
        if up.returncode != 0 and "forbids unprivileged user namespaces" in out:
            print("SKIP: the kernel forbids unprivileged user namespaces; the sim enclaves cannot run here")
            return 77
        if not check(up.returncode == 0, "hospital up exits 0"):
            print(out[-4000:])
            return 1
        rc = walkthrough(cwd, state, port, out)
        interrupted(tmp)
        refusals(tmp)
        return 1 if failed else rc
    finally:
        if up is not None and up.returncode == 0 and os.path.isdir(state):
            hospital(cwd, "down", "--dir", state)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"{passed} passed, {failed} failed")


def walkthrough(cwd, state, port, out):
    envfile = os.path.join(cwd, "hospital.env")
    check(os.path.exists(envfile) and os.stat(envfile).st_mode & 0o077 == 0, "hospital.env in the current "
          "directory, mode 0600")
    env = parse_env(envfile)
    check(set(env) == {"CAS_ADDR", "SESSION", "API_ADDR", "REDIS_ADDR", "API_TOKEN", "API_TOKEN_READ", "CACERT"},
          "hospital.env has CAS_ADDR, SESSION, API_ADDR, REDIS_ADDR, API_TOKEN, API_TOKEN_READ, CACERT: %s" %
          sorted(env))
    check(env.get("API_ADDR") == "127.0.0.1:%d" % port and env.get("SESSION") == "hospital" and
          env.get("REDIS_ADDR", "").startswith("127.0.0.1:") and env.get("CAS_ADDR", "").startswith("127.0.0.1:"),
          "API_ADDR is the --port, SESSION hospital, REDIS_ADDR and CAS_ADDR on 127.0.0.1: %s" %
          {k: env.get(k) for k in ("API_ADDR", "SESSION", "REDIS_ADDR", "CAS_ADDR")})
    # CACERT is the session's CA as the certificate service publishes it (the walk-through's first step).
    ca = subprocess.run(["curl", "-sS", "-k", "https://%s/v1/values/session=hospital" % env["CAS_ADDR"]],
                        capture_output=True, text=True, timeout=60)
    check(json.loads(ca.stdout or "{}").get("values", {}).get("api_ca_cert", {}).get("value") ==
          open(env["CACERT"]).read(), "CACERT is the session's CA from GET /v1/values/session=hospital")
    shell_env = dict(os.environ, **env)
    lines = out.splitlines()
    check(". ./hospital.env" in lines, "up prints `. ./hospital.env` before the commands")
    cmds = [ln for ln in lines if ln.startswith("curl ")]
    if not check(len(cmds) == 4, "up prints four curl commands: %s" % cmds):
        return 1
    auth = '--cacert "$CACERT" --resolve api:%d:127.0.0.1 -H "Authorization: Bearer $API_TOKEN"' % port
    check(all(auth in c for c in cmds), "each with --cacert \"$CACERT\" --resolve api:PORT:127.0.0.1 and the token")
    form = ("-d \"fname=Jane&lname=Doe&address='123 Main Street'&city=Richmond&state=Washington&ssn=123-223-2345"
            "&email=nr@aaa.com&dob=01/01/2010&contactphone=123-234-3456&drugallergies='Sulpha, Penicillin, Tree Nut'"
            "&preexistingconditions='diabetes, hypertension, asthma'&dateadmitted=01/05/2010"
            "&insurancedetails='Primera Blue Cross'\"")
    check(cmds[0].endswith("-X POST https://api:%d/patient/patient_3 %s" % (port, form)),
          "the POST's form is the issue's, byte for byte")

    code, body, err = run_printed(cmds[0], shell_env, cwd)
    rec = json.loads(body) if code == "201" else {}
    check(code == "201" and rec.get("id") == "patient_3" and "score" in rec and rec["score"] is None and
          rec.get("address") == "'123 Main Street'" and rec.get("drugallergies") == "'Sulpha, Penicillin, Tree Nut'"
          and rec.get("insurancedetails") == "'Primera Blue Cross'" and rec.get("ssn") == "123-223-2345" and
          len(rec) == 15, "POST /patient/patient_3: 201, the record with id, score null, 13 fields byte-exact "
                          "(%s %s %s)" % (code, body[:300], err[-300:]))
    code, body, err = run_printed(cmds[1], shell_env, cwd)
    check(code == "200" and json.loads(body or "{}") == rec, "GET /patient/patient_3: the same record (%s)" % code)
    code, body, err = run_printed(cmds[2], shell_env, cwd)
    e = json.loads(body or "{}")
    check(code == "422" and e.get("error") == "NoMeasurements" and e.get("reason"),
          "GET /score/patient_3 without measurements: 422 NoMeasurements with a reason (%s %s)" % (code, body))
    code, body, err = run_printed(cmds[3], shell_env, cwd)
    mask = os.path.join(cwd, "mask.png")
    slice_png = shlex.split(cmds[3].split("img=@", 1)[1])[0]
    check(os.path.basename(slice_png) == "TCGA_CS_4944.png",
          "the /delineate command uploads TCGA_CS_4944.png (../shared/data/mri's, or the model samples' copy): %s"
          % slice_png)
    size = png_size(mask) if os.path.exists(mask) else None
    check(code == "200" and size is not None and size == png_size(slice_png),
          "POST /delineate -F img=@%s: 200, mask.png a PNG of the slice's size %s (%s %s)" %
          (os.path.basename(slice_png), size, code, err[-300:]))
    # Over the lesion: TCGA_CS_4944.png is frame 8 of the held-out series, whose ground truth (the
    # radiologist's outline, filled) is in the model's samples. The floor is the one
    # integration.infer_tcga_unet documents (Dice 0.3; this slice measured 0.365).
    truth = os.path.join(ROOT, "models", "tcga-lgg-unet", "samples", "TCGA_CS_4944-08.mask.png")
    if code == "200" and size is not None and os.path.basename(slice_png) == "TCGA_CS_4944.png":
        from PIL import Image
        got = [v > 127 for v in Image.open(mask).convert("L").getdata()]
        want = [v > 127 for v in Image.open(truth).convert("L").resize(size).getdata()]
        both = sum(a and b for a, b in zip(got, want))
        dice = 2 * both / max(sum(got) + sum(want), 1)
        check(sum(got) > 0 and dice >= 0.3,
              "the mask lies over the radiologist's lesion: %d lesion pixels, %d inside it, Dice %.3f" %
              (sum(got), both, dice))

    # A record with the 30 measurements of wdbc.csv's row 1: scored by the classifier enclave.
    lines = open(os.environ["WDBC_CSV"]).read().splitlines()
    names, values = lines[0].split(","), lines[1].split(",")
    row = {n: float(v) for n, v in zip(names, values) if n != "diagnosis"}
    open(os.path.join(cwd, "p1.json"), "w").write(json.dumps(dict(row, fname="Ann")))
    open(os.path.join(cwd, "row1.json"), "w").write(json.dumps(row))
    base = ["curl", "-sS", "--cacert", env["CACERT"], "--resolve", "api:%d:127.0.0.1" % port, "-w", "\n%{http_code}"]
    tok = ["-H", "Authorization: Bearer " + env["API_TOKEN"]]
    r = subprocess.run(base + tok + ["-X", "POST", "https://api:%d/patient/p1" % port, "-H",
                                     "Content-Type: application/json", "--data-binary", "@p1.json"],
                       cwd=cwd, capture_output=True, text=True, timeout=300)
    body, _, code = r.stdout.rpartition("\n")
    got = json.loads(body) if code == "201" else {}
    local = subprocess.run([CLOISTER, "infer-local", os.path.join(state, "classifier.onnx"),
                            os.path.join(cwd, "row1.json")], capture_output=True, text=True, timeout=120)
    expected = json.loads(local.stdout)["probabilities"]["malignant"] if local.returncode == 0 else None
    check(code == "201" and isinstance(got.get("score"), (int, float)) and expected is not None and
          abs(got["score"] - expected) < 1e-6, "POST with wdbc.csv's row 1: the classifier enclave's score %s "
                                              "(cloister infer-local: %s)" % (got.get("score"), expected))
    r = subprocess.run(base + ["-H", "Authorization: Bearer " + env["API_TOKEN_READ"],
                               "https://api:%d/score/p1" % port], capture_output=True, text=True, timeout=300)
    body, _, code = r.stdout.rpartition("\n")
    got = json.loads(body) if code == "200" else {}
    check(got.get("id") == "p1" and expected is not None and abs(got.get("score", -1) - expected) < 1e-6,
          "GET /score/p1 with the read token: %s %s" % (code, body))
    r = subprocess.run(base + ["https://api:%d/patient/patient_3" % port], capture_output=True, text=True,
                       timeout=120)
    body, _, code = r.stdout.rpartition("\n")
    check(code == "401" and json.loads(body or "{}").get("error") == "Unauthorized",
          "no token: 401 Unauthorized (%s %s)" % (code, body))
    r = subprocess.run(base + ["-H", "Authorization: Bearer " + env["API_TOKEN_READ"], "-X", "POST", "-d", "fname=x",
                               "https://api:%d/patient/x" % port], capture_output=True, text=True, timeout=120)
    body, _, code = r.stdout.rpartition("\n")
    check(code == "403" and json.loads(body or "{}").get("error") == "Forbidden",
          "API_TOKEN_READ writing: 403 Forbidden (%s %s)" % (code, body))

    st = hospital(cwd, "status", "--dir", state, timeout=120)
    check(st.returncode == 0 and all(n in st.stdout for n in ("owner-kms", "hospital-kms", "redis",
                                                               "classifier enclave", "mri enclave", "api enclave"))
          and "stopped" not in st.stdout, "status: every part running, exit 0:\n" + st.stdout)
    again = hospital(cwd, "up", "--dir", state, "--port", str(free_port()), timeout=120)
    check(again.returncode == 1 and "already runs" in again.stdout and "down --dir %s" % state in again.stdout,
          "a second up over the running deployment refuses, saying how to stop it: " + again.stdout.strip())

    # Every process up started: the pid files' and the enclaves' launchers with all below them.
    pids = [json.load(open(os.path.join(state, "run", f)))["pid"] for f in os.listdir(os.path.join(state, "run"))
            if f.endswith(".pid")]
    desc = subprocess.run([CLOISTER, "enclave", "describe-enclaves", "--state-dir", os.path.join(state, "enclaves")],
                          capture_output=True, text=True, timeout=60)
    launchers = [e["ProcessID"] for e in json.loads(desc.stdout or "[]")]
    check(len(pids) == 3 and len(launchers) == 3, "three daemons (%s) and three enclave launchers (%s)" %
          (pids, launchers))
    ours = {identity(p) for p in descendants(pids + launchers)} - {None}
    ports = [port, int(env["REDIS_ADDR"].rsplit(":", 1)[1])] + list(json.load(
        open(os.path.join(state, "run", "ports.json"))).values())
    down = hospital(cwd, "down", "--dir", state, timeout=300)
    left = [p for p in ours if identity(p[0]) == p]
    check(down.returncode == 0 and not left and not in_dir(state),
          "down stops all %d processes up started (left: %s, in its directory: %s): %s" %
          (len(ours), left, in_dir(state), down.stdout.strip()))
    check(all(port_free(p) for p in ports), "the API's port, Redis's, the KMSs' and the channels' are free again")
    check(os.path.exists(os.path.join(state, "redis")) and os.path.exists(os.path.join(state, "hospital-kms")) and
          "kept" in down.stdout, "down keeps the records and keys, and says so")
    st = hospital(cwd, "status", "--dir", state, timeout=120)
    check(st.returncode == 1 and "running" not in st.stdout, "status after down: all stopped, exit 1")
    down2 = hospital(cwd, "down", "--dir", state, timeout=120)
    check(down2.returncode == 0 and "stopped nothing" in down2.stdout, "down again changes nothing: " +
          down2.stdout.strip())

    # up over the stopped deployment: the same images, keys, tokens and records, on another port.
    port2 = free_port()
    again = hospital(cwd, "up", "--dir", state, "--port", str(port2), "--quiet")
    env2 = parse_env(envfile) if again.returncode == 0 else {}
    r = subprocess.run(["curl", "-sS", "--cacert", env["CACERT"], "--resolve", "api:%d:127.0.0.1" % port2, "-H",
                        "Authorization: Bearer " + env["API_TOKEN_READ"], "https://api:%d/patient/patient_3" % port2],
                       capture_output=True, text=True, timeout=120) if again.returncode == 0 else None
    check(again.returncode == 0 and "a stopped deployment: starting it again" in again.stdout and
          env2.get("API_TOKEN") == env["API_TOKEN"] and r is not None and json.loads(r.stdout or "{}") == rec,
          "up again after down: the same tokens, and GET gives the record stored before (%s %s)" %
          (again.stdout.strip()[-600:], r.stdout if r else ""))
    if again.returncode == 0:
        browser_and_contract(cwd, port2, env2)
    down = hospital(cwd, "down", "--dir", state, timeout=300)
    check(down.returncode == 0 and not in_dir(state) and port_free(port2), "and down stops it again")
    return 1 if failed else 0


def browser_and_contract(cwd, port, env):
    """The web page the API serves at /, in headless Chromium (tests/browser/web_test.js), and the
    contract's curl checks (api_contract.py), both against this deployment's cloister-api."""
    tokens = {}
    for name in ("API_TOKEN", "API_TOKEN_READ"):
        tokens[name] = os.path.join(cwd, name.lower() + ".txt")
        with open(os.open(tokens[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(env[name])
    base = "https://api:%d" % port
    resolve = "api:%d:127.0.0.1" % port
    png = os.environ["CLOISTER_MRI_SLICE"]
    artifacts = os.path.join(os.environ.get("CLOISTER_BUILD_DIR", cwd), "artifacts", "web-hospital")
    web = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "web_test.js"), "--base-url", base,
                          "--resolve", resolve, "--token-file", tokens["API_TOKEN"], "--ca", env["CACERT"], "--png",
                          png, "--artifacts", artifacts], capture_output=True, text=True, timeout=300)
    if web.returncode == 77:
        print("SKIP (the page only): Chromium cannot start here: " + web.stdout.strip()[-300:], flush=True)
    else:
        check(web.returncode == 0, "the web page served by cloister-api at /, in headless Chromium: sign in, "
                                   "patient_3, score, the MRI mask over TCGA_CS_4944.png (screenshots in %s)%s" %
              (artifacts, "" if web.returncode == 0 else ":\n" + (web.stdout + web.stderr)[-2000:]))
    contract = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "integration", "api_contract.py"), "--base-url",
                               base, "--resolve", resolve, "--token-file", tokens["API_TOKEN"], "--read-token-file",
                               tokens["API_TOKEN_READ"], "--ca", env["CACERT"], "--png", png],
                              capture_output=True, text=True, timeout=600)
    check(contract.returncode == 0, "the contract's curl checks (api_contract.py) against cloister-api%s" %
          ("" if contract.returncode == 0 else ":\n" + "\n".join(
              l for l in contract.stdout.splitlines() if l.startswith("FAIL"))[-3000:]))


def refusals(tmp):
    """A port already taken: refused before anything starts. A step that fails (a redis-server that
    cannot start): exit 1 naming the step and its log, and what started before it stopped."""
    cwd = os.path.join(tmp, "cwd3")
    os.mkdir(cwd)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    tport = taken.getsockname()[1]
    r = hospital(cwd, "up", "--dir", os.path.join(tmp, "state3"), "--port", str(tport))
    taken.close()
    check(r.returncode == 1 and "127.0.0.1:%d is taken by another program; give another port with --port" %
          tport in r.stdout and not os.path.exists(os.path.join(tmp, "state3")),
          "up on a taken port: exit 1 saying so, nothing made: " + r.stdout.strip())
    fake = os.path.join(tmp, "fakebin")
    os.mkdir(fake)
    open(os.path.join(fake, "redis-server"), "w").write(
        "#!/bin/sh\necho 'fake redis-server: cannot open the append-only file' >&2\nexit 1\n")
    os.chmod(os.path.join(fake, "redis-server"), 0o755)
    state = os.path.join(tmp, "state4")
    r = subprocess.run([sys.executable, SCRIPT, "up", "--dir", state, "--port", str(free_port())], cwd=cwd,
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, PATH=fake + os.pathsep + os.environ.get("PATH", "")))
    check(r.returncode == 1 and "step 7. Redis for the API's sealed records failed: redis-server exited (status 1)"
          in r.stdout and "see its log: %s" % os.path.join(state, "logs", "redis.log") in r.stdout and
          "fake redis-server: cannot open the append-only file" in r.stdout and
          "stopped owner-kms, hospital-kms" in r.stdout.replace("hospital-kms, owner-kms", "owner-kms, hospital-kms")
          and not in_dir(state), "a step that fails: exit 1, the step, its log and its last lines, the KMSs "
                                 "stopped: " + r.stdout.strip()[-700:])


def interrupted(tmp):
    """Ctrl-C while up starts things (at the API's step: the KMSs, Redis and both workers run):
    up says so, exits 1 and stops all of it."""
    cwd, state = os.path.join(tmp, "cwd2"), os.path.join(tmp, "state2")
    os.mkdir(cwd)
    proc = subprocess.Popen([sys.executable, SCRIPT, "up", "--dir", state, "--port", str(free_port())], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    for line in proc.stdout:
        seen += line
        if line.startswith("== 9."):
            break
    pids = [json.load(open(os.path.join(state, "run", f)))["pid"] for f in os.listdir(os.path.join(state, "run"))
            if f.endswith(".pid")]
    desc = subprocess.run([CLOISTER, "enclave", "describe-enclaves", "--state-dir", os.path.join(state, "enclaves")],
                          capture_output=True, text=True, timeout=60)
    launchers = [e["ProcessID"] for e in json.loads(desc.stdout or "[]")]
    ours = {identity(p) for p in descendants(pids + launchers)} - {None}
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    proc.wait(timeout=300)
    left = [p for p in ours if identity(p[0]) == p]
    check(len(pids) == 3 and len(launchers) == 2, "at the API's step: three daemons and two worker enclaves run")
    check(proc.returncode == 1 and "interrupted (SIGINT) during step 9." in rest and "stopped" in rest,
          "Ctrl-C during up: exit 1, naming the step and what it stopped: " + rest.strip()[-400:])
    desc = subprocess.run([CLOISTER, "enclave", "describe-enclaves", "--state-dir", os.path.join(state, "enclaves")],
                          capture_output=True, text=True, timeout=60)
    check(not left and json.loads(desc.stdout or "[]") == [] and not in_dir(state),
          "and nothing it started runs (left: %s, enclaves: %s, in its directory: %s)" %
          (left, desc.stdout.strip(), in_dir(state)))


if __name__ == "__main__":
    sys.exit(main())
