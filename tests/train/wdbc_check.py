# SPDX-License-Identifier: Apache-2.0
"""`cloister train-local` on the committed WDBC data, checked from outside.

Run with Debian's /usr/bin/python3 (numpy, onnx). Usage: wdbc_check.py OUT_DIR
(CLOISTER_BIN names the command, CLOISTER_SOURCE_DIR the tree). It checks:
  - held-out accuracy >= 0.93 and ROC AUC >= 0.97 as printed (and prints them);
  - the model passes onnx.checker (full check) and has the documented graph
    and metadata;
  - numpy evaluating the weights read with onnx.numpy_helper agrees with
    `cloister infer-local` on several patients given as JSON and CSV;
  - the held-out split re-derived here (splitmix64 + Fisher-Yates, as
    docs/training.md specifies) and the metrics recomputed with numpy from
    the ONNX weights equal the printed figures;
  - an independent numpy Newton fit of the same penalised objective on the
    same training rows lands on the same weights and similar accuracy;
  - same seed, same bytes; exit codes and messages of bad invocations.
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

BIN = os.environ["CLOISTER_BIN"]
DATA = os.path.join(os.environ["CLOISTER_SOURCE_DIR"], "data", "wdbc", "wdbc.csv")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def train(out, *extra):
    if os.path.exists(out):
        os.unlink(out)
    r = run("train-local", DATA, "-o", out, *extra)
    if r.returncode != 0:
        sys.exit(f"train-local failed ({r.returncode}): {r.stderr}")
    return r.stdout


def figures(stdout, split):
    line = next(l for l in stdout.splitlines() if l.startswith(split + ":"))
    f = line.split()
    return float(f[f.index("accuracy") + 1]), float(f[f.index("roc_auc") + 1])


# --- the data, read independently -------------------------------------------
with open(DATA, newline="") as fh:
    rows = list(csv.reader(fh))
header, body = rows[0], rows[1:]
names = header[:30]
X = np.array([[float(v) for v in r[:30]] for r in body])
y = np.array([1 if r[30] == "M" else 0 for r in body])
check(X.shape == (569, 30) and y.sum() == 212, "wdbc.csv: 569 rows, 212 malignant, 30 features")

# --- train, report ------------------------------------------------------------
model_path = os.path.join(OUT, "wdbc.onnx")
out = train(model_path)
print(out, end="")
acc, auc = figures(out, "test")
print(f"measured: held-out accuracy {acc:.4f}, ROC AUC {auc:.4f}")
check(acc >= 0.93, f"held-out accuracy {acc:.4f} >= 0.93")
check(auc >= 0.97, f"held-out ROC AUC {auc:.4f} >= 0.97")

# --- the ONNX file ------------------------------------------------------------
m = onnx.load(model_path)
onnx.checker.check_model(m, full_check=True)
check(True, "onnx.checker.check_model(full_check=True) accepts the model")
ops = [n.op_type for n in m.graph.node]
check(ops == ["Sub", "Div", "Gemm", "Softmax"], f"graph is Sub, Div, Gemm, Softmax ({ops})")
check(m.opset_import[0].version == 13, "opset 13")
inp = m.graph.input[0]
dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
check(inp.name == "features" and dims == ["N", 30], f"input features [N, 30] ({inp.name} {dims})")
meta = {p.key: p.value for p in m.metadata_props}
check(meta.get("cloister.classifier.labels") == "benign,malignant", "labels metadata")
check(meta.get("cloister.classifier.features", "").split(",") == names, "feature names metadata = CSV header")
import hashlib

with open(DATA, "rb") as fh:
    sha = hashlib.sha256(fh.read()).hexdigest()
check(meta.get("cloister.train.data_sha256") == sha, "data SHA-256 metadata = sha256(wdbc.csv)")
mj = json.loads(meta["cloister.train.metrics"])
check(abs(mj["test"]["accuracy"] - acc) < 1e-4 and abs(mj["test"]["auc"] - auc) < 1e-4, "metrics metadata = printed")
check(f"{acc:.4f}" in m.doc_string, "doc_string carries the held-out accuracy")

init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
mean, scale, W, B = init["mean"], init["scale"], init["W"], init["B"]


def onnx_numpy(x):
    """The graph, evaluated by numpy from the stored weights."""
    logits = ((x - mean) / scale) @ W + B
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


P = onnx_numpy(X)

# --- infer-local agrees with numpy, for every input form -----------------------
patients = [0, 19, 20, 100, 300, 568]
worst = 0.0
labels_ok = True
for i in patients:
    rec = dict(zip(names, body[i][:30]))
    forms = {
        "obj.json": json.dumps({k: float(v) for k, v in reversed(list(rec.items()))}),
        "arr.json": json.dumps([float(v) for v in body[i][:30]]),
        "row.csv": ",".join(body[i][:30]) + "\n",
        "hdr.csv": ",".join(reversed(names)) + "\r\n" + ",".join(reversed(body[i][:30])) + "\r\n",
    }
    for suffix, text in forms.items():
        path = os.path.join(OUT, f"patient{i}.{suffix}")
        with open(path, "w") as fh:
            fh.write(text)
        r = run("infer-local", model_path, path)
        if r.returncode != 0:
            check(False, f"infer-local {path}: {r.stderr.strip()}")
            continue
        res = json.loads(r.stdout)
        p = res["probabilities"]
        worst = max(worst, abs(p["benign"] - P[i, 0]), abs(p["malignant"] - P[i, 1]))
        want = "malignant" if P[i, 1] > P[i, 0] else "benign"
        labels_ok &= res["label"] == want and list(res) == ["label", "probabilities"]
    print(f"patient {i} (diagnosis {body[i][30]}): numpy p(malignant) = {P[i, 1]:.6f}, infer-local {res}")
check(worst < 1e-5, f"infer-local matches numpy on {len(patients)} patients x 4 input forms (max diff {worst:.2e})")
check(labels_ok, "infer-local labels are numpy's argmax, output keys in order")


# --- the split and metrics, re-derived ---------------------------------------
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
    """Probability that a positive outranks a negative, ties half (pairwise, no ranks)."""
    pos, neg = p[t == 1], p[t == 0]
    d = pos[:, None] - neg[None, :]
    return ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size


tr, te = split(42, 0.2)
check(len(tr) == 456 and len(te) == 113 and y[te].sum() == 42, "split: 456 train / 113 test, 42 malignant held out")
check(np.allclose(mean, X[tr].mean(axis=0), rtol=1e-6), "standardisation mean = training-split mean (float32)")
check(np.allclose(scale, X[tr].std(axis=0), rtol=1e-6), "standardisation scale = training-split std (float32)")
np_acc = ((P[te, 1] >= 0.5) == y[te]).mean()
np_auc = roc_auc(P[te, 1], y[te])
check(abs(np_acc - acc) < 1e-4 and abs(np_auc - auc) < 1e-4,
      f"numpy on the re-derived test rows: accuracy {np_acc:.4f}, AUC {np_auc:.4f} = printed")

# --- an independent fit ---------------------------------------------------------
Z = (X[tr] - X[tr].mean(axis=0)) / X[tr].std(axis=0)
A = np.hstack([np.ones((len(tr), 1)), Z])
theta = np.zeros(31)
reg = np.diag([0.0] + [1.0] * 30)  # l2 = 1 on the weights, not the bias
for _ in range(50):
    p = 1 / (1 + np.exp(-A @ theta))
    g = A.T @ (p - y[tr]) + reg @ theta
    H = A.T @ (A * (p * (1 - p))[:, None]) + reg
    theta -= np.linalg.solve(H, g)
w_np = theta[1:]
w_cl = W[:, 1] - W[:, 0]
rel = np.abs(w_np - w_cl).max() / np.abs(w_np).max()
check(rel < 1e-4, f"numpy Newton fit lands on the same weights (max relative diff {rel:.1e})")
Zt = (X[te] - X[tr].mean(axis=0)) / X[tr].std(axis=0)
pt = 1 / (1 + np.exp(-(theta[0] + Zt @ w_np)))
ind_acc, ind_auc = ((pt >= 0.5) == y[te]).mean(), roc_auc(pt, y[te])
print(f"independent numpy logistic regression: held-out accuracy {ind_acc:.4f}, AUC {ind_auc:.4f}")
check(abs(ind_acc - acc) <= 0.02 and ind_acc >= 0.93, "independent fit's accuracy is in the same range")

# --- determinism and options ----------------------------------------------------
again = os.path.join(OUT, "again.onnx")
train(again)
check(open(again, "rb").read() == open(model_path, "rb").read(), "same data, same seed: byte-identical model")
other = os.path.join(OUT, "seed7.onnx")
out7 = train(other, "--seed", "7", "--test-fraction", "0.3", "--l2", "0.1")
check(open(other, "rb").read() != open(model_path, "rb").read(), "another seed: another model")
check("171 test" in out7, "--test-fraction 0.3 holds out round(0.3*212)+round(0.3*357) = 64+107 = 171 rows")

# --- bad invocations --------------------------------------------------------------
r = run("train-local", "--help")
check(r.returncode == 0 and "Usage: cloister train-local" in r.stdout, "--help: exit 0")
for args, needle in [((), "expected one DATA.csv"), ((DATA,), "-o MODEL.onnx is required"),
                     ((DATA, "-o", "x.onnx", "--test-fraction", "1"), "--test-fraction must be a number between 0 and 1"),
                     ((DATA, "-o", "x.onnx", "--l2", "-1"), "--l2 must be a number from 0 to 1e12"),
                     ((DATA, "-o", "x.onnx", "--seed", "-3"), "--seed must be a whole number from 0 to"),
                     ((DATA, "-o", "x.onnx", "--seed", "18446744073709551616"), "--seed must be a whole number from 0 to")]:
    r = run("train-local", *args)
    check(r.returncode == 2 and needle in r.stderr, f"usage error {args}: exit 2, '{needle}'")
r = run("train-local", DATA, "-o", model_path)
check(r.returncode == 1 and "exists" in r.stderr, "existing output without --force: exit 1")
bad = os.path.join(OUT, "bad.csv")
with open(bad, "w") as fh:
    fh.write(",".join(header) + "\n" + ",".join(body[0]) + "\n" + ",".join(body[1][:5] + ["nan"] + body[1][6:]) + "\n")
bad_model = os.path.join(OUT, "bad.onnx")
r = run("train-local", bad, "-o", bad_model)
check(r.returncode == 1 and "line 3, column 6 (mean_compactness) is NaN" in r.stderr, f"NaN cell: {r.stderr.strip()}")
check(not os.path.exists(bad_model), "no model file left after a failure")
r = run("infer-local", model_path, os.path.join(OUT, "bad.csv"))
check(r.returncode == 1 and "CSV input, line 1: more than 30 columns" in r.stderr,
      f"a training table as patient input: exit 1 ({r.stderr.strip()})")

# The same shapes without the metadata: infer-local must not guess it is a classifier.
from onnx import TensorProto, helper

plain = os.path.join(OUT, "plain.onnx")
g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 30])])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), plain)
r = run("infer-local", plain, os.path.join(OUT, "patient0.obj.json"))
check(r.returncode == 1 and "carries no 'cloister.classifier.labels' metadata" in r.stderr,
      "a record for a model without classifier metadata: exit 1, says why")
# Metadata that names another input than the graph's: refused, not trusted.
renamed = onnx.load(model_path)
for p_ in renamed.metadata_props:
    if p_.key == "cloister.classifier.input":
        p_.value = "other"
renamed_path = os.path.join(OUT, "renamed.onnx")
onnx.save(renamed, renamed_path)
r = run("infer-local", renamed_path, os.path.join(OUT, "patient0.obj.json"))
check(r.returncode == 1 and "describes input 'other', but its input is 'features'" in r.stderr,
      "metadata naming another input: exit 1, says why")
r = run("infer-local", model_path, os.path.join(OUT, "patient0.obj.json"), "-o", os.path.join(OUT, "x.npy"))
check(r.returncode == 1 and "result is printed" in r.stderr, "-o with a record: refused, says why")

sys.exit(1 if failures else 0)
