# SPDX-License-Identifier: Apache-2.0
"""`cloister infer-local` on PNG images, checked against numpy/PyTorch.

PNGs are written with Pillow (Debian's python3-pil); the expected tensor is
computed here: pixels as float, resized with torch's bilinear interpolation
(align_corners=False, i.e. half-pixel centres) when the model's input size
differs, then z-scored over the whole image. Masks are compared with
(probability >= 0.5) computed in numpy. Run with /usr/bin/python3.
Usage: png_check.py OUT_DIR   (CLOISTER_BIN names the command)
"""
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from PIL import Image

BIN = os.environ["CLOISTER_BIN"]
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(42)
failures = 0


def model(path, op, shape):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def expected(pixels, channels, out_hw):
    """pixels: HxW or HxWxC array -> [1, channels, H', W'] z-scored."""
    a = pixels.astype(np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] != channels:
        a = np.repeat(a, channels, axis=2) if a.shape[2] == 1 else a.mean(axis=2, keepdims=True)
    t = torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
    if out_hw != t.shape[2:]:
        t = torch.nn.functional.interpolate(t, size=out_hw, mode="bilinear", align_corners=False)
    a = t.numpy()
    sd = a.std()
    return ((a - a.mean()) / (sd if sd else 1)).astype(np.float32)


def run(args):
    return subprocess.run([BIN, "infer-local"] + args, capture_output=True, text=True)


def check(name, img, mode, channels, model_hw):
    global failures
    png = os.path.join(OUT, name + ".png")
    Image.fromarray(img, mode=mode).save(png)
    onnx_path = os.path.join(OUT, name + ".onnx")
    model(onnx_path, "Identity", [1, channels, model_hw[0], model_hw[1]])
    out = os.path.join(OUT, name + ".npy")
    r = run([onnx_path, png, "-o", out, "--force"])
    if r.returncode != 0:
        print(f"FAIL {name}: exit {r.returncode}: {r.stderr.strip()}")
        failures += 1
        return
    got = np.load(out)
    want = expected(img, channels, tuple(model_hw))
    ok = got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5)
    err = np.abs(got - want).max() if got.shape == want.shape else float("nan")
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got.shape}, max abs error {err:.3g}")
    failures += not ok


check("rgb8", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB", 3, (40, 48))
check("rgb8_resized", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB", 3, (64, 64))
check("gray8_to_rgb", rng.integers(0, 256, (30, 20), dtype=np.uint8), "L", 3, (30, 20))
check("rgb8_to_gray", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), "RGB", 1, (16, 24))
check("gray16", rng.integers(0, 65536, (20, 33), dtype=np.uint16), "I;16", 1, (20, 33))
check("gray16_downsized", rng.integers(0, 65536, (64, 48), dtype=np.uint16), "I;16", 1, (32, 24))

# A probability map -> mask PNG: Sigmoid(z) >= 0.5 exactly where z >= 0.
img = rng.integers(0, 256, (36, 52), dtype=np.uint8)
png = os.path.join(OUT, "mask_in.png")
Image.fromarray(img, mode="L").save(png)
mpath = os.path.join(OUT, "sigmoid.onnx")
model(mpath, "Sigmoid", [1, 1, 36, 52])
mask = os.path.join(OUT, "mask.png")
r = run([mpath, png, "-o", mask, "--force"])
if r.returncode != 0:
    print(f"FAIL mask: {r.stderr.strip()}")
    failures += 1
else:
    got = np.asarray(Image.open(mask))
    z = expected(img, 1, (36, 52))[0, 0]
    want = np.where(1 / (1 + np.exp(-z.astype(np.float64))) >= 0.5, 255, 0).astype(np.uint8)
    ok = got.dtype == np.uint8 and got.shape == want.shape and (got == want).all()
    print(f"{'ok  ' if ok else 'FAIL'} mask: {got.shape}, {int((got == 255).sum())} foreground pixels")
    failures += not ok

# A truncated PNG is refused with exit 1 and a message naming the problem.
data = open(os.path.join(OUT, "rgb8.png"), "rb").read()
bad = os.path.join(OUT, "truncated.png")
open(bad, "wb").write(data[: len(data) // 2])
r = run([os.path.join(OUT, "rgb8.onnx"), bad])
ok = r.returncode == 1 and "PNG" in r.stderr
print(f"{'ok  ' if ok else 'FAIL'} truncated PNG: exit {r.returncode}: {r.stderr.strip()}")
failures += not ok
sys.exit(1 if failures else 0)
