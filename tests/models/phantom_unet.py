# SPDX-License-Identifier: Apache-2.0
"""The synthetic-phantom segmentation U-Net: Cloister's demo model for brain-MRI delineation.

NOT CLINICALLY TRAINED. The model learns to outline bright irregular blobs in generated
"MRI-like" phantoms (a skull-like ring around textured noise, three channels standing for the
three MRI sequences of the brain-MRI U-Net: pre-contrast, FLAIR, post-contrast). It has never
seen a patient's image and says so in its ONNX metadata. It exists so that the delineation
flow can be demonstrated end to end without a clinical model.

Everything is deterministic (fixed seeds, one thread). Run with Debian's /usr/bin/python3
(python3-torch, python3-onnx, python3-pil).

  phantom_unet.py train --out MODEL.onnx [--samples DIR] [--steps N]
      trains the U-Net (tests/models/make_models.py's architecture, 8 initial features, 4 levels)
      on freshly generated phantoms, reports Dice on held-out phantoms through the runtime's own
      pipeline (resize to the model's input, z-score, resize the probability map back,
      threshold 0.5), and exports ONNX (opset 13, BatchNormalization preserved) with metadata.
  phantom_unet.py samples DIR
      writes the demo slices slice-N.png (RGB, 8-bit) and their ground truth slice-N.mask.png.
  phantom_unet.py reference MODEL.onnx SLICE.png OUT.npy
      PyTorch's probability map for SLICE.png: the weights are read from the ONNX file into the
      PyTorch U-Net, the image is prepared as the runtime does (bilinear resize with half-pixel
      centres, z-score over the whole image). Used by phantom_check.py.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import OPSET, UNet  # noqa: E402  (the same architecture the runtime is tested on)

warnings.simplefilter("ignore")

SIZE = 128  # phantom slices, pixels a side
MODEL_SIZE = 64  # the model's input, pixels a side
FEATURES = 8
THRESHOLD = 0.5
SAMPLE_SEEDS = (101, 202, 303)
HELDOUT_SEED = 7_000_000
TRAIN_SEED = 1_000_000
NOTE = ("Synthetic-phantom demo model: trained only on generated phantoms (bright irregular blobs on "
        "textured noise inside a skull-like ring). NOT clinically trained; not for clinical use.")
COMMAND = ("/usr/bin/python3 tests/models/phantom_unet.py train --out models/phantom-unet/phantom-unet.onnx "
           "--samples models/phantom-unet/samples")


def smooth_noise(rng, n, scale):
    """Gaussian noise low-passed in the Fourier domain (correlation length ~ scale pixels), unit std."""
    w = rng.standard_normal((n, n))
    f = np.fft.fftfreq(n)
    r2 = f[:, None] ** 2 + f[None, :] ** 2
    s = np.real(np.fft.ifft2(np.fft.fft2(w) * np.exp(-r2 * (np.pi * scale) ** 2 * 2)))
    return s / (s.std() + 1e-12)


def phantom(seed, n=SIZE):
    """One slice: float image [3, n, n] in 0..255 and mask [n, n] (bool)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    yy = (yy + 0.5) / n * 2 - 1
    xx = (xx + 0.5) / n * 2 - 1
    # Head: a rotated ellipse; the skull is a ring just inside its edge.
    cy, cx = rng.uniform(-0.06, 0.06, 2)
    ay, ax = rng.uniform(0.78, 0.92), rng.uniform(0.66, 0.82)
    th = rng.uniform(-0.4, 0.4)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    rho = np.sqrt((u / ax) ** 2 + (v / ay) ** 2)
    head = rho < 1.0
    brain = rho < 0.9
    skull = head & ~brain
    # Blobs: smooth star-shaped outlines r(phi) = r0 (1 + sum a_k cos(k phi + p_k)) inside the brain.
    mask = np.zeros((n, n), dtype=bool)
    k_blobs = rng.choice([1, 1, 2, 2, 3])
    for _ in range(k_blobs):
        r0 = rng.uniform(0.11, 0.26)
        for _try in range(20):
            by, bx = rng.uniform(-0.55, 0.55, 2)
            if np.hypot(by / ay, bx / ax) + r0 / min(ax, ay) < 0.85:
                break
        phi = np.arctan2(yy - by, xx - bx)
        dist = np.hypot(yy - by, xx - bx)
        rr = np.ones_like(phi)
        for k in range(2, 6):
            rr += rng.uniform(0.0, 0.14) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        mask |= (dist < r0 * rr) & brain
    # Soft edges for the image (the mask stays sharp): a 3x3 box blur of the blob indicator.
    b = mask.astype(np.float64)
    p = np.pad(b, 1, mode="edge")
    soft = sum(p[i:i + n, j:j + n] for i in range(3) for j in range(3)) / 9.0
    # Per-sequence contrast: the blob is bright in every channel, most in FLAIR (channel 1).
    base = (0.30, 0.36, 0.33)
    blob = (0.30, 0.48, 0.38)
    img = np.zeros((3, n, n))
    tex_coarse = smooth_noise(rng, n, 8)
    for c in range(3):
        tex = 0.6 * tex_coarse + 0.4 * smooth_noise(rng, n, 2)
        ch = np.where(brain, base[c] + 0.07 * tex, 0.0)
        ch = np.where(skull, 0.55 + 0.05 * tex, ch)
        ch = ch + soft * (blob[c] + 0.04 * smooth_noise(rng, n, 3))
        # Small bright specks (vessels, noise) that are not lesions.
        specks = (smooth_noise(rng, n, 1.2) > 3.0) & brain
        ch = ch + 0.18 * specks
        ch = ch + 0.025 * rng.standard_normal((n, n)) + 0.02
        gain = rng.uniform(0.8, 1.2)
        img[c] = np.clip(ch * gain, 0, 1) * 255
    return img, mask


def quantise(img):
    """As the PNG holds it: 8-bit."""
    return np.clip(np.rint(img), 0, 255)


def prepare(img_u8, size=MODEL_SIZE):
    """[B, 3, n, n] 0..255 -> the runtime's input: bilinear (half-pixel) resize, z-score per image."""
    t = torch.as_tensor(img_u8, dtype=torch.float64)
    if t.dim() == 3:
        t = t[None]
    if t.shape[-1] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    m = t.mean(dim=(1, 2, 3), keepdim=True)
    s = t.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
    return ((t - m) / s).float()


def batch(seeds):
    imgs, masks = zip(*(phantom(s) for s in seeds))
    x = prepare(np.stack([quantise(i) for i in imgs]))
    y = torch.as_tensor(np.stack(masks), dtype=torch.float32)[:, None]
    return x, y


def full_size_mask(prob, n=SIZE):
    """The runtime's output mask: probability map resized back (bilinear, half-pixel), >= threshold."""
    p = F.interpolate(prob.double(), size=(n, n), mode="bilinear", align_corners=False)
    return (p >= THRESHOLD)[:, 0].numpy()


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * np.logical_and(a, b).sum() / s


def evaluate(model, seeds):
    model.eval()
    ds = []
    with torch.no_grad():
        for i in range(0, len(seeds), 25):
            x, y = batch(seeds[i:i + 25])
            pred = full_size_mask(model(x))
            ds += [dice(p, t) for p, t in zip(pred, y[:, 0].numpy().astype(bool))]
    return float(np.mean(ds)), float(np.min(ds))


def train(args):
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    model = UNet(3, 1, FEATURES)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps, pct_start=0.15)
    t0 = time.time()
    for step in range(args.steps):
        model.train()
        seeds = range(TRAIN_SEED + step * args.batch, TRAIN_SEED + (step + 1) * args.batch)
        x, y = batch(seeds)
        # The target at the model's resolution: the mask's share of each model pixel.
        yt = F.interpolate(y, size=(MODEL_SIZE, MODEL_SIZE), mode="area")
        p = model(x)
        bce = F.binary_cross_entropy(p, yt)
        inter = (p * yt).sum(dim=(1, 2, 3))
        soft_dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + yt.sum(dim=(1, 2, 3)) + 1)
        loss = bce + soft_dice.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  {time.time() - t0:6.1f} s", flush=True)
    train_s = time.time() - t0
    heldout = list(range(HELDOUT_SEED, HELDOUT_SEED + 200))
    mean_d, min_d = evaluate(model, heldout)
    print(f"trained {args.steps} steps x {args.batch} phantoms in {train_s:.1f} s (1 thread); "
          f"held-out Dice over {len(heldout)} phantoms: mean {mean_d:.4f}, min {min_d:.4f}")
    export(model, args.out, mean_d, args.steps, args.batch)
    if args.samples:
        samples(args.samples)


def export(model, path, heldout_dice, steps, bsz):
    import onnx

    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    x = torch.zeros(1, 3, MODEL_SIZE, MODEL_SIZE)
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=OPSET, input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(tmp)
    os.unlink(tmp)
    meta = {
        "cloister.kind": "segmentation",
        "cloister.name": "phantom-unet",
        "cloister.note": NOTE,
        "cloister.clinical": "false",
        "cloister.segmentation.threshold": str(THRESHOLD),
        "cloister.segmentation.input": f"float32 [1, 3, {MODEL_SIZE}, {MODEL_SIZE}]: three MRI sequences as "
                                       "RGB, resized bilinearly, z-scored per image",
        "cloister.segmentation.output": f"float32 [1, 1, {MODEL_SIZE}, {MODEL_SIZE}]: lesion probability (sigmoid)",
        "cloister.train.data": f"synthetic phantoms, {steps} x {bsz} generated slices of {SIZE}x{SIZE}, seeds from "
                               f"{TRAIN_SEED}",
        "cloister.train.heldout_dice": f"{heldout_dice:.4f} (mean over 200 held-out phantoms, seeds from "
                                       f"{HELDOUT_SEED})",
        "cloister.train.command": COMMAND,
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.doc_string = NOTE
    m.producer_name = "cloister tests/models/phantom_unet.py"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    size = os.path.getsize(path)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {path}: {size} bytes, {params} parameters")
    if size >= 3 << 20:
        sys.exit(f"{path} is {size} bytes, over the 3 MB budget")


def samples(d):
    from PIL import Image

    os.makedirs(d, exist_ok=True)
    for i, seed in enumerate(SAMPLE_SEEDS, 1):
        img, mask = phantom(seed)
        rgb = quantise(img).astype(np.uint8).transpose(1, 2, 0)
        Image.fromarray(rgb, mode="RGB").save(os.path.join(d, f"slice-{i}.png"), optimize=True)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(os.path.join(d, f"slice-{i}.mask.png"),
                                                                     optimize=True)
        print(f"slice-{i}: seed {seed}, {int(mask.sum())} lesion pixels")


def load_onnx_unet(path):
    """The PyTorch U-Net with the weights read from the ONNX file (initializers named as the parameters)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    feats = None
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    feats = inits["encoder1.0.weight"].shape[0]
    cin = inits["encoder1.0.weight"].shape[1]
    net = UNet(cin, 1, feats)
    sd = net.state_dict()
    missing = [k for k in sd if k not in inits and not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit(f"{path}: no initializer for {missing[:3]}")
    net.load_state_dict({k: inits.get(k, sd[k]) for k in sd})
    net.eval()
    return net, m


def reference(args):
    from PIL import Image

    torch.set_num_threads(1)
    net, m = load_onnx_unet(args.model)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    a = np.asarray(Image.open(args.png).convert("RGB"), dtype=np.float64).transpose(2, 0, 1)
    x = prepare(a, dims[2])
    with torch.no_grad():
        y = net(x)
    np.save(args.out, y.numpy().astype(np.float32))


def main_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--samples")
    t.add_argument("--steps", type=int, default=350)
    t.add_argument("--batch", type=int, default=16)
    s = sub.add_parser("samples")
    s.add_argument("dir")
    r = sub.add_parser("reference")
    r.add_argument("model")
    r.add_argument("png")
    r.add_argument("out")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        train(args)
    elif args.cmd == "samples":
        samples(args.dir)
    else:
        reference(args)


if __name__ == "__main__":
    main_args(sys.argv[1:])
