# SPDX-License-Identifier: Apache-2.0
"""`cloister train-local --model mlp` and .npy tables, checked from outside.

Run with Debian's /usr/bin/python3 (numpy, onnx, torch). Usage:
  mlp_check.py OUT_DIR            the MLP, .npy tables (numpy writes them), metrics.json, CLI errors,
                                  and PyTorch training the same architecture on the same split
  mlp_check.py --ort OUT_DIR      ONNX Runtime (npm onnxruntime-node, bench/infer/package-lock.json)
                                  runs the exported MLP on every row; exits 77 when it is not installed
(CLOISTER_BIN names the command, CLOISTER_SOURCE_DIR the tree). It checks:
  - held-out accuracy >= 0.95 with the defaults, as printed and in metrics.json (prints them);
  - onnx.checker (full) accepts the model; its graph is Sub, Div, (Gemm, activation) per hidden layer,
    Gemm, Softmax, with the logistic model's classifier metadata keys;
  - numpy evaluating the stored weights reproduces metrics.json's held-out figures on the split
    re-derived here, and `cloister infer-local` agrees with numpy on patients;
  - same seed, same bytes; another seed, other bytes;
  - .npy: float64 and float32, format 1.0/2.0/3.0 from numpy; the float64 table trains the same
    weights as the CSV; object arrays, pickles, Fortran order and bad labels are refused with messages;
  - CLI refusals (exit 2 for bad options, 1 for what the data makes impossible).
Nothing compares training runs across frameworks for equality: PyTorch's held-out accuracy is
printed next to Cloister's and must only be in the same range.
"""
import csv
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

BIN = os.environ["CLOISTER_BIN"]
SRC = os.environ["CLOISTER_SOURCE_DIR"]
DATA = os.path.join(SRC, "data", "wdbc", "wdbc.csv")
ORT = sys.argv[1] == "--ort"
OUT = sys.argv[2] if ORT else sys.argv[1]
os.makedirs(OUT, exist_ok=True)
failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def train(data, out, *extra):
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    r = run("train-local", data, "-o", out, "--force", *extra)
    ms = (time.monotonic() - t0) * 1000
    if r.returncode != 0:
        sys.exit(f"train-local failed ({r.returncode}): {r.stderr}")
    return r.stdout, ms


def figures(stdout, split):
    line = next(l for l in stdout.splitlines() if l.startswith(split + ":"))
    f = line.split()
    return float(f[f.index("accuracy") + 1]), float(f[f.index("roc_auc") + 1])


with open(DATA, newline="") as fh:
    rows = list(csv.reader(fh))
header, body = rows[0], rows[1:]
names = header[:30]
X = np.array([[float(v) for v in r[:30]] for r in body])
y = np.array([1 if r[30] == "M" else 0 for r in body])


def load(path):
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    return m, init


def forward(init, ops, x):
    """The exported graph, evaluated by numpy in float64 from the stored weights."""
    h = (x - init["mean"]) / init["scale"]
    acts = {"Relu": lambda v: np.maximum(v, 0), "Tanh": np.tanh, "Sigmoid": lambda v: 1 / (1 + np.exp(-v))}
    layer = 0
    while f"W{layer}" in init:
        h = acts[ops[3 + 2 * layer]](h @ init[f"W{layer}"] + init[f"B{layer}"])
        layer += 1
    logits = h @ init["W"] + init["B"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


model_path = os.path.join(OUT, "mlp.onnx")
metrics_path = os.path.join(OUT, "metrics.json")
out, mlp_ms = train(DATA, model_path, "--model", "mlp", "--metrics", metrics_path)
m, init = load(model_path)
ops = [n.op_type for n in m.graph.node]
P = forward(init, ops, X)

if ORT:
    # ONNX Runtime, a second implementation of the graph, on every row.
    mods = [os.path.join(SRC, "bench", "infer", "node_modules"),
            os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(BIN))), "bench-infer", "node", "node_modules")]
    mods = [d for d in mods if os.path.isdir(os.path.join(d, "onnxruntime-node"))]
    if not mods:
        print("skip: onnxruntime-node is not installed (./scripts/setup runs npm ci in bench/infer)")
        sys.exit(77)
    x_path, p_path = os.path.join(OUT, "x.json"), os.path.join(OUT, "p_ort.json")
    with open(x_path, "w") as fh:
        json.dump(X.astype(np.float32).ravel().tolist(), fh)
    js = ("const ort=require('onnxruntime-node'),fs=require('fs');(async()=>{"
          "const s=await ort.InferenceSession.create(process.argv[1]);"
          "const x=Float32Array.from(JSON.parse(fs.readFileSync(process.argv[2])));"
          "const r=await s.run({[s.inputNames[0]]:new ort.Tensor('float32',x,[x.length/30,30])});"
          "fs.writeFileSync(process.argv[3],JSON.stringify(Array.from(r[s.outputNames[0]].data)));"
          "})().catch(e=>{console.error(e);process.exit(1)})")
    r = subprocess.run(["node", "-e", js, model_path, x_path, p_path], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH=mods[0]))
    check(r.returncode == 0, f"onnxruntime-node runs the exported MLP {r.stderr.strip()[:300]}")
    if r.returncode == 0:
        with open(p_path) as fh:
            p_ort = np.array(json.load(fh)).reshape(-1, 2)
        diff = np.abs(p_ort - P).max()
        check(diff < 1e-5, f"ONNX Runtime = numpy from the weights on all {len(X)} rows (max diff {diff:.2e})")
        ver = json.load(open(os.path.join(mods[0], "onnxruntime-node", "package.json")))["version"]
        print(f"onnxruntime-node {ver}")
    sys.exit(1 if failures else 0)

# --- the printed and documented figures -------------------------------------------------------
acc, auc = figures(out, "test")
print(f"measured: MLP (16,8 relu, 100 epochs) held-out accuracy {acc:.4f}, ROC AUC {auc:.4f}, "
      f"train-local {mlp_ms:.0f} ms")
check(acc >= 0.95, f"MLP held-out accuracy {acc:.4f} >= 0.95")
check(auc >= 0.97, f"MLP held-out ROC AUC {auc:.4f} >= 0.97")
check(sum(1 for l in out.splitlines() if l.startswith("epoch ")) == 100, "100 epoch lines, one per epoch")
with open(metrics_path) as fh:
    doc = json.load(fh)
check(list(doc) == ["model", "hyperparameters", "features", "rows", "train", "test", "data_sha256", "parameters",
                    "epochs", "final_metrics"], f"metrics.json members {list(doc)}")
check(doc["hyperparameters"] == {"model": "mlp", "seed": 42, "test_fraction": 0.2, "l2": 1.0, "hidden_layers": "16,8",
                                 "activation": "relu", "epochs": 100, "learning_rate": 0.01, "batch_size": 32},
      "metrics.json hyperparameters are the defaults")
check(doc["rows"] == {"train": 456, "test": 113} and doc["parameters"] == 30 * 16 + 16 + 16 * 8 + 8 + 8 + 1,
      "rows 456/113, 641 parameters")
check([f["MetricName"] for f in doc["final_metrics"]] == ["train:accuracy", "train:roc_auc", "test:accuracy",
                                                          "test:roc_auc"], "final metric names")
fm = {f["MetricName"]: f["Value"] for f in doc["final_metrics"]}
check(abs(fm["test:accuracy"] - acc) < 1e-4 and abs(fm["test:roc_auc"] - auc) < 1e-4, "final metrics = printed")
c = doc["test"]["confusion"]
check(c["tp"] + c["tn"] + c["fp"] + c["fn"] == 113 and c["tp"] + c["fn"] == 42, f"test confusion {c}")
check(len(doc["epochs"]) == 100 and doc["epochs"][-1]["epoch"] == 100 and doc["epochs"][-1]["loss"] <
      doc["epochs"][0]["loss"], "epochs: 100 entries, the loss falls")
check(os.path.getsize(metrics_path) < 16384, "metrics.json is aggregate (small)")

# --- the model's shape --------------------------------------------------------------------------
onnx.checker.check_model(m, full_check=True)
check(True, "onnx.checker.check_model(full_check=True) accepts the MLP")
check(ops == ["Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"], f"graph {ops}")
meta = {p.key: p.value for p in m.metadata_props}
check(meta["cloister.classifier.labels"] == "benign,malignant" and meta["cloister.classifier.features"] ==
      ",".join(names) and meta["cloister.classifier.input"] == "features", "the classifier metadata of logreg")
check(init["W"].shape == (8, 2) and not init["W"][:, 0].any() and init["B"][0] == 0, "output: Softmax over [0, t]")


# --- numpy reproduces the trainer's held-out figures on the re-derived split --------------------
def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return state, z ^ (z >> 31)


def split(seed, frac):
    state, test = seed, []
    for cls in (0, 1):
        idx = [i for i in range(len(y)) if y[i] == cls]
        for i in range(len(idx) - 1, 0, -1):
            n = i + 1
            limit = 0xFFFFFFFFFFFFFFFF - 0xFFFFFFFFFFFFFFFF % n
            while True:
                state, v = splitmix(state)
                if v < limit:
                    break
            j = v % n
            idx[i], idx[j] = idx[j], idx[i]
        k = min(max(int(np.floor(frac * len(idx) + 0.5)), 1), len(idx) - 1)
        test += idx[:k]
    test = np.array(sorted(test))
    return np.setdiff1d(np.arange(len(y)), test), test


def roc_auc(p, t):
    pos, neg = p[t == 1], p[t == 0]
    d = pos[:, None] - neg[None, :]
    return ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size


tr, te = split(42, 0.2)
np_acc = ((P[te, 1] >= 0.5) == y[te]).mean()
np_auc = roc_auc(P[te, 1], y[te])
check(abs(np_acc - fm["test:accuracy"]) < 1e-9 and abs(np_auc - fm["test:roc_auc"]) < 1e-3,
      f"numpy from the weights on the re-derived test rows: accuracy {np_acc:.4f}, AUC {np_auc:.4f} = metrics.json")
worst = 0.0
for i in (0, 19, 20, 100, 300, 568):
    path = os.path.join(OUT, f"patient{i}.json")
    with open(path, "w") as fh:
        json.dump(dict(zip(names, (float(v) for v in body[i][:30]))), fh)
    r = run("infer-local", model_path, path)
    check(r.returncode == 0, f"infer-local patient {i}: {r.stderr.strip()}")
    if r.returncode == 0:
        worst = max(worst, abs(json.loads(r.stdout)["probabilities"]["malignant"] - P[i, 1]))
check(worst < 1e-5, f"infer-local = numpy on 6 patients (max diff {worst:.2e})")

# --- determinism --------------------------------------------------------------------------------
again = os.path.join(OUT, "mlp2.onnx")
train(DATA, again, "--model", "mlp")
check(open(again, "rb").read() == open(model_path, "rb").read(), "same seed and data: the same ONNX bytes")
other = os.path.join(OUT, "mlp3.onnx")
out3, _ = train(DATA, other, "--model", "mlp", "--seed", "7", "--activation", "tanh", "--hidden-layers", "32",
                "--epochs", "50", "--batch-size", "16", "--learning-rate", "0.005")
check(open(other, "rb").read() != open(model_path, "rb").read(), "another seed and shape: another model")
m3, _ = load(other)
check([n.op_type for n in m3.graph.node] == ["Sub", "Div", "Gemm", "Tanh", "Gemm", "Softmax"], "tanh, one layer")
print(f"measured: MLP (32 tanh, 50 epochs, seed 7) held-out accuracy/AUC {figures(out3, 'test')}")

# --- .npy tables from numpy ----------------------------------------------------------------------
table = np.hstack([X, y[:, None].astype(np.float64)])
npy64 = os.path.join(OUT, "wdbc.npy")
np.save(npy64, table, allow_pickle=False)
csv_model, npy_model = os.path.join(OUT, "csv_logreg.onnx"), os.path.join(OUT, "npy_logreg.onnx")
out_csv, _ = train(DATA, csv_model)
out_npy, _ = train(npy64, npy_model)
_, ic = load(csv_model)
_, inp = load(npy_model)
check(all(np.array_equal(ic[k], inp[k]) for k in ("mean", "scale", "W", "B")) and
      figures(out_csv, "test") == figures(out_npy, "test"), "float64 .npy trains the CSV's model (same weights)")
mn = {p.key: p.value for p in onnx.load(npy_model).metadata_props}
check(mn["cloister.classifier.features"] == ",".join(f"f{j}" for j in range(30)), "npy features are f0..f29")
for version in ((2, 0), (3, 0)):
    path = os.path.join(OUT, f"wdbc_v{version[0]}.npy")
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, table.astype(np.float32), version=version, allow_pickle=False)
    o, _ = train(path, os.path.join(OUT, "f32.onnx"), "--model", "mlp", "--epochs", "20")
    check(figures(o, "test")[0] >= 0.9, f"float32 .npy, format {version}: trains ({figures(o, 'test')})")


def refused(path, needle, code=1):
    r = run("train-local", path, "-o", os.path.join(OUT, "refused.onnx"))
    check(r.returncode == code and needle in r.stderr and not os.path.exists(os.path.join(OUT, "refused.onnx")),
          f"{os.path.basename(path)}: exit {r.returncode}, {r.stderr.strip()}")


PICKLE_MSG = "pickled Python objects are refused: unpickling runs code; write CSV or numpy.save(..., allow_pickle=False)"
obj = os.path.join(OUT, "object.npy")
np.save(obj, np.array([[1.0, 0], [2.0, None]], dtype=object), allow_pickle=True)
refused(obj, "object.npy: the .npy array holds Python objects (dtype 'O'): " + PICKLE_MSG)
pkl = os.path.join(OUT, "table.pkl")
with open(pkl, "wb") as fh:
    pickle.dump(table, fh, protocol=4)
refused(pkl, "table.pkl: " + PICKLE_MSG)
fort = os.path.join(OUT, "fortran.npy")
np.save(fort, np.asfortranarray(table))
refused(fort, "fortran.npy: .npy data in Fortran order is not supported")
bad = table.copy()
bad[7, 30] = 2
badp = os.path.join(OUT, "badlabel.npy")
np.save(badp, bad)
refused(badp, "badlabel.npy, row 7: the label (last column) must be 0 (benign) or 1 (malignant)")
ints = os.path.join(OUT, "ints.npy")
np.save(ints, table.astype(np.int64))
refused(ints, "ints.npy: the array's elements are int64; a training table is float64")

# --- CLI refusals ----------------------------------------------------------------------------------
for args, code, needle in [
        (("--model", "mlp", "--activation", "gelu"), 2, "--activation must be relu, tanh or sigmoid, not 'gelu'"),
        (("--epochs", "5"), 2, "--epochs applies to model mlp only"),
        (("--model", "mlp", "--max-iter", "5"), 2, "--max-iter applies to model logreg only"),
        (("--model", "mlp", "--hidden-layers", "16,8,4,2,1"), 2, "--hidden-layers must be 1 to 4 comma-separated"),
        (("--model", "mlp", "--learning-rate", "0"), 2, "--learning-rate must be a number greater than 0"),
        (("--model", "mlp", "--epochs", "10001"), 2, "--epochs must be a whole number from 1 to 10000"),
        (("--model", "mlp", "--batch-size", "1000"), 1, "batch_size 1000 must be from 1 to the 456 training rows"),
        (("--model", "mlp", "--hidden-layers", "1024,512"), 1, "over the ceiling of 2e+10"),
        (("--model", "mlp", "--hidden-layers", "1024,1024"), 1, "network of 1082369 parameters for 30 features; at most 1048576")]:
    r = run("train-local", DATA, "-o", os.path.join(OUT, "x.onnx"), *args)
    check(r.returncode == code and needle in r.stderr, f"{' '.join(args)}: exit {r.returncode}, {r.stderr.strip()}")

# --- PyTorch, the same architecture on the same split -----------------------------------------------
try:
    import torch
except ImportError:
    print("skip: torch is not installed; the PyTorch comparison is not made")
    sys.exit(1 if failures else 0)
torch.manual_seed(42)
mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
Zt = torch.tensor((X[tr] - mu) / sd, dtype=torch.float64)
Ze = torch.tensor((X[te] - mu) / sd, dtype=torch.float64)
yt = torch.tensor(y[tr], dtype=torch.float64)
net = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                          torch.nn.Linear(8, 1)).double()
opt = torch.optim.Adam(net.parameters(), lr=0.01)
weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
t0 = time.monotonic()
for epoch in range(100):
    perm = torch.randperm(len(tr))
    for at in range(0, len(tr), 32):
        b = perm[at:at + 32]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(Zt[b]).squeeze(1), yt[b])
        loss = loss + (1.0 / len(tr)) / 2 * sum((w * w).sum() for w in weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
torch_ms = (time.monotonic() - t0) * 1000
with torch.no_grad():
    pt = torch.sigmoid(net(Ze).squeeze(1)).numpy()
t_acc, t_auc = ((pt >= 0.5) == y[te]).mean(), roc_auc(pt, y[te])
print(f"measured: PyTorch {torch.__version__} (same architecture, Adam, split, epochs) held-out accuracy "
      f"{t_acc:.4f}, ROC AUC {t_auc:.4f}, {torch_ms:.0f} ms; Cloister {acc:.4f}, {auc:.4f}")
check(t_acc >= 0.93 and abs(t_acc - acc) <= 0.04, "PyTorch's held-out accuracy is in the same range")
sys.exit(1 if failures else 0)
