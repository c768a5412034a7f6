#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/e2e: confidential inference end to end, in one run:

  (i)   local     the worker's per-request work in the same runtime, no transport, no crypto
  (ii)  channel   RA-TLS into the enclave, warm connection (handshake reported apart)
  (iii) envelope  sealed input -> enclave (KMS Decrypt + GenerateDataKey with Recipient) ->
                  sealed result -> client's KMS Decrypt

on the U-Net (bench/infer's 7.76 M-parameter model, 1x3x256x256, 24.1 GFLOP) and the
breast-cancer classifier, with 1 and 2 concurrent clients. Same machine, same run; the
worker and the local run use the same number of inference threads.

  /usr/bin/python3 bench/e2e.py [--requests N] [--threads T] [--models unet,classifier] [--rounds R]

Needs ./scripts/setup's build (build/bin, build/bench/e2e) and Debian's /usr/bin/python3
(torch, onnx) for the U-Net. Take figures on an otherwise idle machine. Prints a markdown
table; nothing here fails on a time."""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
E2E = os.path.join(BUILD, "bench", "e2e")


def load_demo():
    """scripts/demo's parties, KMS and enclave helpers (one copy of that code)."""
    loader = importlib.machinery.SourceFileLoader("cloister_demo", os.path.join(ROOT, "scripts", "demo"))
    spec = importlib.util.spec_from_loader("cloister_demo", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def unet_model(work):
    """bench/infer's U-Net with the segmentation metadata the worker serves by."""
    models = os.path.join(BUILD, "bench-infer", "models")
    src = os.path.join(models, "unet", "model.onnx")
    if not os.path.exists(src):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "infer", "make_models.py"), models],
                       check=True, stdout=subprocess.DEVNULL)
    dst = os.path.join(work, "unet.onnx")
    subprocess.run(["/usr/bin/python3", "-c", """
import onnx, sys
m = onnx.load(sys.argv[1])
for k, v in (("cloister.kind", "segmentation"), ("cloister.name", "unet-bench"),
             ("cloister.note", "benchmark model with random weights: not trained")):
    p = m.metadata_props.add(); p.key = k; p.value = v
onnx.save(m, sys.argv[2])
""", src, dst], check=True)
    return dst


def e2e(args):
    r = subprocess.run([E2E, *args], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("e2e %s failed: %s" % (args[0], r.stderr.strip()))
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="unet,classifier")
    ap.add_argument("--rounds", type=int, default=3, help="alternating (i)/(ii) rounds per row")
    a = ap.parse_args()
    if not os.access(E2E, os.X_OK):
        print("bench/e2e: %s is not built (./scripts/setup)" % E2E, file=sys.stderr)
        return 1
    demo = load_demo()
    work = tempfile.mkdtemp(prefix="cloister-bench-e2e-")
    d = demo.Demo(work)
    rows = []
    try:
        d.run(["cloister", "enclave", "init-root", "-o", "pki"])
        owner_port = demo.start_kms(d, "owner", demo.OWNER, "pki/root.pem")
        hosp_port = demo.start_kms(d, "hospital", demo.HOSPITAL, "pki/root.pem")
        owner_env = d.party_env(demo.OWNER, owner_port, "owner")
        hosp_env = d.party_env(demo.HOSPITAL, hosp_port, "hospital")
        inputs, models = {}, {}
        for m in a.models.split(","):
            if m == "classifier":
                d.run(["cloister", "train-local", os.path.join(ROOT, "data/wdbc/wdbc.csv"), "-o", "classifier.onnx"])
                lines = open(os.path.join(ROOT, "data/wdbc/wdbc.csv")).read().splitlines()
                names, values = lines[0].split(","), lines[1].split(",")
                open(d.p("patient.json"), "w").write(
                    json.dumps({n: float(v) for n, v in zip(names, values) if n != "diagnosis"}))
                models[m], inputs[m] = d.p("classifier.onnx"), d.p("patient.json")
            elif m == "unet":
                models[m] = unet_model(work)
                inputs[m] = os.path.join(ROOT, "models", "tcga-lgg-unet", "samples", "TCGA_CS_4944.png")
            else:
                raise RuntimeError("unknown model %s (unet, classifier)" % m)
        open(d.p("policy.json"), "w").write(demo.key_policy(demo.OWNER[2], []))
        owner_key = demo.create_key(d, owner_env, "alias/model-owner", "policy.json", "model key")
        pcr0, socks = {}, {}
        for m in models:
            d.run(["cloister", "seal", "--key", "alias/model-owner", models[m], "-o", m + ".sealed"], env=owner_env)
            pcr0[m] = demo.build_worker_image(d, m, threads=a.threads)
        open(d.p("policy.json"), "w").write(demo.key_policy(demo.OWNER[2], sorted(pcr0.values())))
        d.run(["cloister", "kms", "put-key-policy", "--key-id", owner_key, "--policy", "policy.json"],
              env=owner_env)
        open(d.p("hpolicy.json"), "w").write(demo.key_policy(demo.HOSPITAL[2], sorted(pcr0.values())))
        demo.create_key(d, hosp_env, "alias/patient-data", "hpolicy.json", "patient key")
        for m in models:
            socks[m] = demo.run_worker(d, m, owner_port, hosp_port, memory=4096)
            os.makedirs(d.p(m + "-sealed"), exist_ok=True)
        demo.quiet = True
        for m in models:
            for clients in (1, 2):
                common = ["--requests", str(a.requests), "--clients", str(clients)]
                # (i) and (ii) alternate in rounds: a neighbour's burst on this shared VM then
                # hits one round's pair rather than one column, and the per-round ratio says so.
                locs, chs = [], []
                for _ in range(a.rounds):
                    locs.append(e2e(["local", "--model", models[m], "--input", inputs[m], "--threads",
                                     str(a.threads), *common]))
                    chs.append(e2e(["channel", "--socket", socks[m][1], "--root", d.p("pki", "root.pem"), "--pcr0",
                                    pcr0[m], "--input", inputs[m], *common]))
                ratios = sorted(c["median_ms"] / lo["median_ms"] for lo, c in zip(locs, chs))
                loc = sorted(locs, key=lambda r: r["median_ms"])[len(locs) // 2]
                ch = sorted(chs, key=lambda r: r["median_ms"])[len(chs) // 2]
                ch["ratios"] = ratios
                # Each envelope run uses fresh sealed inputs: the worker refuses a replay.
                for i in range(a.requests + 2 * clients):
                    d.run(["cloister", "seal", "--key", "alias/patient-data", inputs[m], "-o",
                           os.path.join(m + "-sealed", "%d.sealed" % i), "--force"], env=hosp_env)
                env = subprocess.run([E2E, "envelope", "--socket", socks[m][0], "--sealed-dir", d.p(m + "-sealed"),
                                      *common], capture_output=True, text=True, timeout=1800, env=hosp_env)
                if env.returncode != 0:
                    raise RuntimeError("e2e envelope failed: %s" % env.stderr.strip())
                env = json.loads(env.stdout)
                rows.append((m, clients, loc, ch, env))
                print("measured %s, %d client(s)" % (m, clients), file=sys.stderr, flush=True)
    finally:
        demo.stop_children()
        shutil.rmtree(work, ignore_errors=True)
    print("| model | clients | (i) local median / p99 ms | (ii) channel median / p99 ms | (ii)/(i) per round "
          "(median first) | (iii) envelope median / p99 ms | (iii)/(i) | req/s local / channel / envelope | "
          "RA-TLS handshake ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, clients, loc, ch, env in rows:
        r = ch["ratios"]
        print("| %s | %d | %.2f / %.2f | %.2f / %.2f | **%.3f** (%s) | %.2f / %.2f | %.2f | %.1f / %.1f / %.1f | %.2f |" % (
            m, clients, loc["median_ms"], loc["p99_ms"], ch["median_ms"], ch["p99_ms"], r[len(r) // 2],
            ", ".join("%.3f" % x for x in r), env["median_ms"], env["p99_ms"], env["median_ms"] / loc["median_ms"],
            loc["rps"], ch["rps"], env["rps"], ch["handshake_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
