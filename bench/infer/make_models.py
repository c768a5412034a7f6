# SPDX-License-Identifier: Apache-2.0
"""Builds the benchmark models with PyTorch (fixed seeds) into OUT_DIR:
  unet/        the brain-MRI U-Net (32 features, 4 levels, 7.76 M parameters),
               1x3x256x256, BatchNorm preserved (the runtime folds it)
  unet_folded/ the same exported with BatchNorm folded by the exporter
  resnet/      the ResNet-22-style classifier, 1x1x224x224
each with model.onnx and input.npy. Run with /usr/bin/python3.
Usage: make_models.py OUT_DIR
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "models"))
import make_models as mm  # noqa: E402


def main():
    out = sys.argv[1]
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(5678)
    unet = mm.UNet(3, 1, 32)
    mm.randomize_bn(unet, gen)
    x = torch.randn(1, 3, 256, 256, generator=gen)
    mm.export(out, "unet", unet, x, preserve_bn=True)
    mm.export(out, "unet_folded", unet, x)
    res = mm.ResNet22(1, 2, 32)
    mm.randomize_bn(res, gen)
    mm.export(out, "resnet", res, torch.randn(1, 1, 224, 224, generator=gen))


if __name__ == "__main__":
    main()
