# SPDX-License-Identifier: Apache-2.0
"""The committed TCGA-LGG U-Net (models/tcga-lgg-unet/) through `cloister infer-local`, both backends.

NOT FOR CLINICAL USE (the model says so; this checks that it does).

On the walk-through's upload TCGA_CS_4944.png (RGB: pre-contrast, FLAIR, post-contrast; the model
reads channel 1 by its metadata) and on committed held-out frames of TCGA_CS_4944 (grey, outlines
inpainted; the patient the model never saw in training or validation):
- the mask the CLI writes agrees with PyTorch's mask of the same weights (read from the ONNX file
  into tests/models' U-Net, the image prepared as the runtime does): IoU >= 0.99, and the
  probability maps agree within 1e-4 relative;
- it overlaps the ground truth (tcga_masks.py: the radiologist's green outline, filled) with Dice
  at least DICE_MIN on the lesion slices and on the upload (which is frame 8 of the series: its G
  channel correlates 0.9993 with that frame's FLAIR, unshifted), and finds at most EMPTY_MAX
  pixels on the lesion-free ones; the floors sit well under what was measured (README);
- the summary agrees with the mask (area, bounding box, size) and carries the note;
- the upload read as the mean of its channels (a copy of the model without the channel
  metadata) gives another input: the channel selection is what the model is fed.
Nothing is retrained. Run with /usr/bin/python3. Usage: tcga_check.py OUT_DIR
(CLOISTER_BIN names the command, CLOISTER_SOURCE_DIR the source tree).
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tcga_unet  # noqa: E402

BIN = os.environ["CLOISTER_BIN"]
SRC = os.environ.get("CLOISTER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DIR = os.path.join(SRC, "models", "tcga-lgg-unet")
MODEL = os.path.join(DIR, "tcga-lgg-unet.onnx")
SAMPLES = os.path.join(DIR, "samples")
UPLOAD = os.path.join(SAMPLES, "TCGA_CS_4944.png")
UPLOAD_TRUTH = os.path.join(SAMPLES, "TCGA_CS_4944-08.mask.png")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
IOU_MIN = 0.99
DICE_MIN = 0.3
EMPTY_MAX = 300
RTOL, ATOL = 1e-4, 1e-6
failures = 0


def report(ok, what):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    failures += not ok


def run(args):
    return subprocess.run([BIN, "infer-local"] + args, capture_output=True, text=True)


def torch_mask(png, shape):
    want = os.path.join(OUT, "torch.npy")
    tcga_unet.main_args(["reference", MODEL, png, want])
    p = torch.from_numpy(np.load(want))
    full = F.interpolate(p.double(), size=shape, mode="bilinear", align_corners=False)
    return (full >= 0.5)[0, 0].numpy(), np.load(want)


def iou(a, b):
    u = (a | b).sum()
    return 1.0 if u == 0 else (a & b).sum() / u


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * (a & b).sum() / s


m = onnx.load(MODEL)
meta = {p.key: p.value for p in m.metadata_props}
dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
size = os.path.getsize(MODEL)
report(size < 3 << 20, f"model size {size} bytes (< 3 MB)")
report(meta.get("cloister.kind") == "segmentation" and meta.get("cloister.name") == "tcga-lgg-unet"
       and meta.get("cloister.clinical") == "false" and "NOT FOR CLINICAL USE" in meta.get("cloister.note", "")
       and meta.get("cloister.segmentation.channel") == "1" and meta.get("cloister.segmentation.threshold") == "0.5"
       and "TCGA_CS_4944" in meta.get("cloister.train.heldout_dice", "")
       and "held out entirely" in meta.get("cloister.train.data", ""),
       "metadata: segmentation, tcga-lgg-unet, NOT FOR CLINICAL USE, clinical=false, channel 1, held-out Dice")
report(dims == [1, 1, 128, 128], f"input {dims} (one channel, 128x128)")

frames = sorted(f for f in os.listdir(SAMPLES) if f.startswith("TCGA_CS_4944-") and not f.endswith(".mask.png"))
report(len(frames) >= 4, f"{len(frames)} held-out frames")
cases = [(UPLOAD, UPLOAD_TRUTH)] + [(os.path.join(SAMPLES, f), os.path.join(SAMPLES, f[:-4] + ".mask.png"))
                                    for f in frames]
for backend in ("onednn", "reference"):
    flags = ["--reference"] if backend == "reference" else []
    for png, truth_path in cases:
        stem = os.path.basename(png)[:-4]
        truth = np.asarray(Image.open(truth_path)) > 127
        mask_path = os.path.join(OUT, f"{stem}.{backend}.mask.png")
        r = run(flags + [MODEL, png, "-o", mask_path, "--force"])
        if r.returncode != 0:
            report(False, f"{backend} {stem}: exit {r.returncode}: {r.stderr.strip()}")
            continue
        s = json.loads(r.stdout)
        got = np.asarray(Image.open(mask_path))
        fg = got == 255
        want, want_prob = torch_mask(png, fg.shape)
        report(set(np.unique(got)) <= {0, 255} and iou(fg, want) >= IOU_MIN,
               f"{backend} {stem}: {int(fg.sum())} pixels, IoU {iou(fg, want):.4f} with PyTorch's "
               f"{int(want.sum())} (>= {IOU_MIN})")
        if truth.any():
            d = dice(fg, truth)
            report(d >= DICE_MIN, f"{backend} {stem}: Dice {d:.4f} against the ground truth's {int(truth.sum())} "
                                  f"pixels (>= {DICE_MIN})")
        else:
            report(fg.sum() <= EMPTY_MAX, f"{backend} {stem}: no lesion in the ground truth; {int(fg.sum())} "
                                          f"pixels found (<= {EMPTY_MAX})")
        ys, xs = np.nonzero(fg)
        box = None if len(xs) == 0 else {"x": int(xs.min()), "y": int(ys.min()),
                                         "width": int(xs.max() - xs.min() + 1), "height": int(ys.max() - ys.min() + 1)}
        ok = (s["kind"] == "segmentation" and s["model"] == "tcga-lgg-unet" and "NOT FOR CLINICAL USE" in s["note"]
              and s["width"] == fg.shape[1] and s["height"] == fg.shape[0] and s["area_pixels"] == int(fg.sum())
              and s["bounding_box"] == box and s["threshold"] == 0.5)
        report(ok, f"{backend} {stem}: summary {s['area_pixels']} pixels, box {s['bounding_box']} matches the mask")
        # The probability map itself, against PyTorch's.
        prob_path = os.path.join(OUT, f"{stem}.{backend}.npy")
        r = run(flags + [MODEL, png, "-o", prob_path, "--force"])
        if r.returncode != 0:
            report(False, f"{backend} {stem} probability map: exit {r.returncode}: {r.stderr.strip()}")
            continue
        got_p = np.load(prob_path)
        same = got_p.shape == want_prob.shape
        rel = float(np.max(np.abs(got_p - want_prob) / np.maximum(np.abs(want_prob), ATOL / RTOL))) if same else -1
        report(same and np.allclose(got_p, want_prob, rtol=RTOL, atol=ATOL),
               f"{backend} {stem}: probability map {got_p.shape} within {rel:.3g} relative of PyTorch's (<= {RTOL})")

# Without the channel metadata the upload is averaged over R, G, B: another input, so the mask above
# came from the FLAIR channel because the metadata said so.
del m.metadata_props[:]
for k, v in meta.items():
    if k != "cloister.segmentation.channel":
        e = m.metadata_props.add()
        e.key, e.value = k, v
mean_model = os.path.join(OUT, "no-channel.onnx")
onnx.save(m, mean_model)
a = os.path.join(OUT, "with.npy")
b = os.path.join(OUT, "without.npy")
r1, r2 = run([MODEL, UPLOAD, "-o", a, "--force"]), run([mean_model, UPLOAD, "-o", b, "--force"])
if r1.returncode == 0 and r2.returncode == 0:
    diff = float(np.max(np.abs(np.load(a) - np.load(b))))
    report(diff > 0.05, f"the upload averaged over R, G, B gives another map (max difference {diff:.3f})")
else:
    report(False, f"channel comparison: {r1.stderr.strip()} {r2.stderr.strip()}")

sys.exit(1 if failures else 0)
