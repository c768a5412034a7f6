# SPDX-License-Identifier: Apache-2.0
"""The committed phantom U-Net (models/phantom-unet/) through `cloister infer-local`, both backends.

- On each committed sample slice the mask the CLI writes has Dice >= 0.8 against the committed
  ground-truth mask, and the JSON summary it prints agrees with that mask (area, bounding box, size).
- The probability map the runtime computes matches PyTorch's within 1e-4 relative: PyTorch runs the
  same weights, read from the committed ONNX file into tests/models' U-Net (phantom_unet.py).
- The model says what it is: segmentation metadata, not clinically trained, under 3 MB.
Nothing is retrained. Run with /usr/bin/python3. Usage: phantom_check.py OUT_DIR
(CLOISTER_BIN names the command, CLOISTER_SOURCE_DIR the source tree).
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import phantom_unet  # noqa: E402

BIN = os.environ["CLOISTER_BIN"]
SRC = os.environ.get("CLOISTER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(SRC, "models", "phantom-unet", "phantom-unet.onnx")
SAMPLES = os.path.join(SRC, "models", "phantom-unet", "samples")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
DICE_MIN = 0.8
RTOL, ATOL = 1e-4, 1e-7
failures = 0


def report(ok, what):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    failures += not ok


def run(args):
    return subprocess.run([BIN, "infer-local"] + args, capture_output=True, text=True)


# The model's own account of itself.
size = os.path.getsize(MODEL)
meta = {p.key: p.value for p in onnx.load(MODEL).metadata_props}
report(size < 3 << 20, f"model size {size} bytes (< 3 MB)")
report(meta.get("cloister.kind") == "segmentation" and "NOT clinically trained" in meta.get("cloister.note", "")
       and meta.get("cloister.segmentation.threshold") == "0.5", "metadata: segmentation, not clinically trained, 0.5")

slices = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".png") and not f.endswith(".mask.png"))
report(len(slices) >= 2, f"{len(slices)} sample slices")
for backend in ("onednn", "reference"):
    flags = ["--reference"] if backend == "reference" else []
    for name in slices:
        stem = name[:-4]
        png = os.path.join(SAMPLES, name)
        truth = np.asarray(Image.open(os.path.join(SAMPLES, stem + ".mask.png"))) > 127
        mask_path = os.path.join(OUT, f"{stem}.{backend}.mask.png")
        r = run(flags + [MODEL, png, "-o", mask_path, "--force"])
        if r.returncode != 0:
            report(False, f"{backend} {stem}: exit {r.returncode}: {r.stderr.strip()}")
            continue
        s = json.loads(r.stdout)
        m = np.asarray(Image.open(mask_path))
        fg = m == 255
        d = 2.0 * (fg & truth).sum() / (fg.sum() + truth.sum())
        report(m.shape == truth.shape and set(np.unique(m)) <= {0, 255} and d >= DICE_MIN,
               f"{backend} {stem}: Dice {d:.4f} against the ground truth (>= {DICE_MIN})")
        ys, xs = np.nonzero(fg)
        box = None if len(xs) == 0 else {"x": int(xs.min()), "y": int(ys.min()),
                                         "width": int(xs.max() - xs.min() + 1), "height": int(ys.max() - ys.min() + 1)}
        ok = (s["kind"] == "segmentation" and s["model"] == "phantom-unet" and "NOT clinically" in s["note"]
              and s["width"] == m.shape[1] and s["height"] == m.shape[0] and s["area_pixels"] == int(fg.sum())
              and abs(s["area_fraction"] - fg.mean()) < 1e-6 and s["bounding_box"] == box and s["threshold"] == 0.5)
        report(ok, f"{backend} {stem}: summary {s['area_pixels']} pixels, box {s['bounding_box']} matches the mask")

    # The probability map against PyTorch's, for the first slice.
    png = os.path.join(SAMPLES, slices[0])
    want_path = os.path.join(OUT, "torch.npy")
    phantom_unet.main_args(["reference", MODEL, png, want_path])
    got_path = os.path.join(OUT, f"prob.{backend}.npy")
    r = run(flags + [MODEL, png, "-o", got_path, "--force"])
    if r.returncode != 0:
        report(False, f"{backend} probability map: exit {r.returncode}: {r.stderr.strip()}")
        continue
    got, want = np.load(got_path), np.load(want_path)
    same = got.shape == want.shape
    rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), ATOL / RTOL))) if same else float("nan")
    report(same and np.allclose(got, want, rtol=RTOL, atol=ATOL),
           f"{backend} probability map {got.shape} against PyTorch: max relative error {rel:.3g} (<= {RTOL})")

# Refusals through the CLI: a truncated slice, a file that is not a PNG (exit 1, a message, no mask).
data = open(os.path.join(SAMPLES, slices[0]), "rb").read()
for name, body, needle in (("truncated", data[: len(data) // 2], "PNG data is truncated"),
                           ("notpng", b"P6\n128 128\n255\n" + data[:64], "not a PNG file")):
    bad = os.path.join(OUT, name + ".png")
    open(bad, "wb").write(body)
    mask_path = os.path.join(OUT, name + ".mask.png")
    if os.path.exists(mask_path):
        os.unlink(mask_path)
    r = run([MODEL, bad, "-o", mask_path])
    report(r.returncode == 1 and needle in r.stderr and not os.path.exists(mask_path) and r.stdout == "",
           f"{name} slice refused: exit {r.returncode}: {r.stderr.strip()}")

sys.exit(1 if failures else 0)
