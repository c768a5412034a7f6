# SPDX-License-Identifier: Apache-2.0
"""tcga-lgg-unet: the brain-MRI U-Net trained on two TCGA-LGG patients' FLAIR slices.

NOT FOR CLINICAL USE. Two patients (55 slices, 8-bit palette-quantised GIF frames) train a
demonstration that the delineation flow works on a real scan, nothing a clinician could rely on.

Data: tests/models/tcga_masks.py (the inpainted FLAIR of each frame and the ground-truth mask
filled from the radiologist's green outline). Training uses TCGA_HT_7879 and TCGA_DU_6404 only;
of their slices every fourth (index % 4 == 2) is kept apart for validation, which picks the
checkpoint. TCGA_CS_4944 is held out entirely: it is read only after training, for the report.

Input as Cloister's runtime prepares it (docs/inference.md): one channel (the model's metadata
cloister.segmentation.channel = 1 makes the runtime take the FLAIR channel, G, of an RGB upload
such as TCGA_CS_4944.png; a grey PNG is taken as it is), resized bilinearly with half-pixel centres
to 128x128, z-scored over the image. Output: the lesion probability at 128x128; the runtime
resizes it back to the image's size and thresholds it at 0.5, and so does every Dice here.

Run with Debian's /usr/bin/python3 (python3-torch, python3-onnx, python3-numpy, python3-pil):
  tcga_unet.py train --out MODEL.onnx [--report REPORT.json] [--steps N] [--data DIR]
  tcga_unet.py overlay SLICE.png MASK.png OUT.png [--truth TRUTH.png]
      the slice's FLAIR with the mask drawn over it (orange, yellow outline) and the ground truth's
      outline in green, next to the plain slice (models/tcga-lgg-unet/TCGA_CS_4944.overlay.png)
  tcga_unet.py reference MODEL.onnx SLICE.png OUT.npy
      PyTorch's probability map for SLICE.png, the weights read from the ONNX file into the
      PyTorch U-Net and the PNG prepared as the runtime does (channel selection included).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import OPSET, UNet  # noqa: E402  (the architecture the runtime is tested on)

warnings.simplefilter("ignore")

NAME = "tcga-lgg-unet"
MODEL_SIZE = 128
FEATURES = 8
THRESHOLD = 0.5
CHANNEL = 1  # FLAIR in the walk-through's 3-channel slices (pre-contrast, FLAIR, post-contrast)
TRAIN = ("TCGA_HT_7879", "TCGA_DU_6404")
HELDOUT = "TCGA_CS_4944"
SEED = 1234
NOTE = ("Demonstration model: a small U-Net trained on the FLAIR slices of two TCGA-LGG patients "
        "(lower-grade glioma; 55 slices), evaluated on a third. NOT FOR CLINICAL USE: not validated, "
        "not a medical device, three patients train nothing clinical.")
COMMAND = ("nice -n 10 /usr/bin/python3 tests/models/tcga_unet.py train --out models/tcga-lgg-unet/tcga-lgg-unet.onnx "
           "--report models/tcga-lgg-unet/report.json")


def prepare(img, size=MODEL_SIZE):
    """[B, 1, H, W] grey 0..255 -> the runtime's input: bilinear (half-pixel) resize, z-score per image."""
    t = torch.as_tensor(img, dtype=torch.float64)
    while t.dim() < 4:
        t = t[None]
    if t.shape[-1] != size or t.shape[-2] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    m = t.mean(dim=(1, 2, 3), keepdim=True)
    s = t.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
    return ((t - m) / s).float()


def full_size(prob, h, w):
    """The runtime's mask: the probability map resized back (bilinear, half-pixel), >= threshold."""
    p = F.interpolate(prob.double(), size=(h, w), mode="bilinear", align_corners=False)
    return (p >= THRESHOLD)[:, 0].numpy()


def dice(a, b):
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def augment(img, mask, gen):
    """Flips, a small rotation / scale / shift (one affine grid for image and mask) and a gamma on
    the intensities; [B, 1, 256, 256] float in 0..255 and 0/1."""
    b = img.shape[0]
    u = torch.rand(b, 6, generator=gen)
    ang = (u[:, 0] - 0.5) * 2 * np.radians(15)
    sc = 0.85 + 0.3 * u[:, 1]
    tx, ty = (u[:, 2] - 0.5) * 0.16, (u[:, 3] - 0.5) * 0.16
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.exp((u[:, 5] - 0.5) * 2 * np.log(1.4))[:, None, None, None]
    img = 255.0 * (img / 255.0).clamp(0, 1) ** gamma
    img = img + torch.randn(img.shape, generator=gen) * 2.0
    return img, mask


def evaluate(model, imgs, masks):
    """Per-slice masks at the image's size, through the runtime's pipeline."""
    model.eval()
    with torch.no_grad():
        prob = model(prepare(imgs[:, None].astype(np.float64)))
    return full_size(prob, imgs.shape[1], imgs.shape[2])


def pooled_dice(pred, truth):
    return dice(pred, truth)


def train(args):
    import tcga_masks

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    data = {p: tcga_masks.load(p, args.data) for p in TRAIN}
    tr_i, tr_m, va_i, va_m = [], [], [], []
    for p in TRAIN:
        imgs, masks = data[p]
        for k in range(len(imgs)):
            (va_i if k % 4 == 2 else tr_i).append(imgs[k])
            (va_m if k % 4 == 2 else tr_m).append(masks[k])
    tr_i, tr_m = np.stack(tr_i), np.stack(tr_m)
    va_i, va_m = np.stack(va_i), np.stack(va_m)
    print(f"training slices {len(tr_i)} ({int(tr_m.any(axis=(1, 2)).sum())} with a lesion), validation "
          f"{len(va_i)} ({int(va_m.any(axis=(1, 2)).sum())}); {HELDOUT} not loaded", flush=True)
    x_all = torch.as_tensor(tr_i[:, None], dtype=torch.float32)
    y_all = torch.as_tensor(tr_m[:, None], dtype=torch.float32)

    model = UNet(1, 1, FEATURES)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    best, best_step, best_state = -1.0, -1, None
    t0 = time.time()
    for step in range(args.steps):
        model.train()
        idx = torch.randint(0, len(x_all), (args.batch,), generator=gen)
        img, mask = augment(x_all[idx], y_all[idx], gen)
        x = prepare(img)
        yt = F.interpolate(mask, size=(MODEL_SIZE, MODEL_SIZE), mode="area").clamp(0, 1)
        p = model(x)
        bce = F.binary_cross_entropy(p, yt)
        soft_dice = 1 - (2 * (p * yt).sum() + 1) / (p.sum() + yt.sum() + 1)
        loss = bce + soft_dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % args.eval_every == 0 or step == args.steps - 1:
            d = pooled_dice(evaluate(model, va_i, va_m), va_m)
            if d > best:
                best, best_step = d, step + 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            print(f"step {step + 1:4d}  loss {loss.item():.4f}  validation Dice {d:.4f}  "
                  f"(best {best:.4f} at {best_step})  {time.time() - t0:6.1f} s", flush=True)
    train_s = time.time() - t0
    model.load_state_dict(best_state)
    model.eval()

    # Only now the held-out patient.
    h_i, h_m = tcga_masks.load(HELDOUT, args.data)
    pred = evaluate(model, h_i, h_m)
    per = [dice(a, b) for a, b in zip(pred, h_m)]
    lesion = [k for k in range(len(h_m)) if h_m[k].any()]
    empty = [k for k in range(len(h_m)) if not h_m[k].any()]
    report = {
        "model": NAME,
        "train_patients": list(TRAIN),
        "heldout_patient": HELDOUT,
        "train_slices": int(len(tr_i)),
        "validation_slices": int(len(va_i)),
        "steps": args.steps,
        "batch": args.batch,
        "best_step": best_step,
        "validation_dice": round(best, 4),
        "train_seconds": round(train_s, 1),
        "threads": 2,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "heldout": {
            "per_slice": [{"slice": k, "truth_pixels": int(h_m[k].sum()), "predicted_pixels": int(pred[k].sum()),
                           "dice": round(per[k], 4)} for k in range(len(h_m))],
            "pooled_dice_all": round(pooled_dice(pred, h_m), 4),
            "mean_dice_all": round(float(np.mean(per)), 4),
            "pooled_dice_lesion_slices": round(pooled_dice(pred[lesion], h_m[lesion]), 4),
            "mean_dice_lesion_slices": round(float(np.mean([per[k] for k in lesion])), 4),
            "lesion_slices": lesion,
            "empty_slices": empty,
            "empty_slices_clean": int(sum(1 for k in empty if not pred[k].any())),
            "false_positive_pixels_empty_slices": int(sum(int(pred[k].sum()) for k in empty)),
        },
    }
    hd = report["heldout"]
    for r in hd["per_slice"]:
        print(f"  {HELDOUT} slice {r['slice']:2d}: truth {r['truth_pixels']:5d}  predicted "
              f"{r['predicted_pixels']:5d}  Dice {r['dice']:.4f}")
    print(f"trained {args.steps} steps x {args.batch} in {train_s:.1f} s; best validation Dice {best:.4f} at step "
          f"{best_step}; held-out {HELDOUT}: pooled Dice {hd['pooled_dice_all']:.4f} over {len(h_m)} slices, "
          f"{hd['pooled_dice_lesion_slices']:.4f} pooled / {hd['mean_dice_lesion_slices']:.4f} mean over the "
          f"{len(lesion)} with a lesion; {hd['empty_slices_clean']} of {len(empty)} empty slices predicted empty "
          f"({hd['false_positive_pixels_empty_slices']} false-positive pixels)", flush=True)
    export(model, args.out, report)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")


def export(model, path, report):
    import onnx

    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    x = torch.zeros(1, 1, MODEL_SIZE, MODEL_SIZE)
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=OPSET, input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(tmp)
    os.unlink(tmp)
    hd = report["heldout"]
    meta = {
        "cloister.kind": "segmentation",
        "cloister.name": NAME,
        "cloister.note": NOTE,
        "cloister.clinical": "false",
        "cloister.segmentation.threshold": str(THRESHOLD),
        "cloister.segmentation.channel": str(CHANNEL),
        "cloister.segmentation.input": f"float32 [1, 1, {MODEL_SIZE}, {MODEL_SIZE}]: the FLAIR slice (channel "
                                       f"{CHANNEL}, G, of an RGB image; a grey image as it is), resized "
                                       "bilinearly, z-scored per image",
        "cloister.segmentation.output": f"float32 [1, 1, {MODEL_SIZE}, {MODEL_SIZE}]: lesion probability (sigmoid)",
        "cloister.train.data": f"TCGA-LGG FLAIR slices of {' and '.join(TRAIN)} ({report['train_slices']} training, "
                               f"{report['validation_slices']} validation slices; masks filled from the "
                               "radiologist's outline; mateuszbuda/brain-segmentation-pytorch assets, MIT; "
                               f"Buda et al. 2019); {HELDOUT} held out entirely",
        "cloister.train.heldout_dice": f"{hd['pooled_dice_all']:.4f} (pooled over {HELDOUT}'s "
                                       f"{len(hd['per_slice'])} slices; {hd['pooled_dice_lesion_slices']:.4f} "
                                       f"pooled, {hd['mean_dice_lesion_slices']:.4f} mean over the "
                                       f"{len(hd['lesion_slices'])} with a lesion; {hd['empty_slices_clean']} of "
                                       f"{len(hd['empty_slices'])} empty slices predicted empty)",
        "cloister.train.command": COMMAND,
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.doc_string = NOTE
    m.producer_name = "cloister tests/models/tcga_unet.py"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    size = os.path.getsize(path)
    print(f"wrote {path}: {size} bytes, {report['parameters']} parameters")
    if size >= 3 << 20:
        sys.exit(f"{path} is {size} bytes, over the 3 MB budget")


def load_onnx_unet(path):
    """The PyTorch U-Net with the weights read from the ONNX file (initializers named as the parameters)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    w = inits["encoder1.0.weight"]
    net = UNet(w.shape[1], 1, w.shape[0])
    sd = net.state_dict()
    missing = [k for k in sd if k not in inits and not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit(f"{path}: no initializer for {missing[:3]}")
    net.load_state_dict({k: inits.get(k, sd[k]) for k in sd})
    net.eval()
    return net, m


def read_png(path, channel):
    """The grey image the runtime feeds a one-channel model: a grey PNG as it is; of an RGB one the
    metadata's channel (the mean of the three when there is none)."""
    from PIL import Image

    im = Image.open(path)
    if im.mode in ("L", "I;16", "I"):
        return np.asarray(im, dtype=np.float64)
    a = np.asarray(im.convert("RGB"), dtype=np.float64)
    return a[..., channel] if channel is not None else a.mean(axis=2)


def reference(args):
    torch.set_num_threads(1)
    net, m = load_onnx_unet(args.model)
    meta = {p.key: p.value for p in m.metadata_props}
    ch = meta.get("cloister.segmentation.channel")
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    x = prepare(read_png(args.png, None if ch is None else int(ch)), dims[2])
    with torch.no_grad():
        y = net(x)
    np.save(args.out, y.numpy().astype(np.float32))


def overlay(args):
    """The slice's FLAIR in grey, the model's mask tinted orange with its outline in yellow, and the
    ground truth's outline (when given) in green, side by side with the plain slice."""
    from PIL import Image

    import tcga_masks

    grey = read_png(args.png, CHANNEL)
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    mask = np.asarray(Image.open(args.mask)) > 127
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float64)
    rgb[mask] = 0.5 * rgb[mask] + 0.5 * np.array([255.0, 140.0, 0.0])
    rgb[tcga_masks.outline(mask)] = (255, 255, 0)
    if args.truth:
        truth = np.asarray(Image.open(args.truth)) > 127
        rgb[tcga_masks.outline(truth)] = tcga_masks.GREEN
    plain = np.repeat(grey[..., None], 3, axis=2)
    out = np.concatenate([plain, np.clip(np.rint(rgb), 0, 255).astype(np.uint8)], axis=1)
    Image.fromarray(out).save(args.out, optimize=True)


def main_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--report")
    t.add_argument("--data")
    t.add_argument("--steps", type=int, default=1100)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--eval-every", type=int, default=50)
    r = sub.add_parser("reference")
    r.add_argument("model")
    r.add_argument("png")
    r.add_argument("out")
    o = sub.add_parser("overlay")
    o.add_argument("png")
    o.add_argument("mask")
    o.add_argument("out")
    o.add_argument("--truth")
    args = ap.parse_args(argv)
    {"train": train, "reference": reference, "overlay": overlay}[args.cmd](args)


if __name__ == "__main__":
    main_args(sys.argv[1:])
