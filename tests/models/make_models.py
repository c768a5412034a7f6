# SPDX-License-Identifier: Apache-2.0
"""Builds Cloister's reference models with PyTorch and writes, per model,
model.onnx, input.npy and expected.npy (PyTorch's own output) into OUT_DIR/<name>/.

Run with Debian's /usr/bin/python3 (python3-torch, python3-onnx). Seeds are
fixed; weights are generated here at test time and never committed.

Models:
  mlp            tabular classifier (30 features, as the Wisconsin breast-cancer set)
  unet_small     the brain-MRI U-Net architecture with 8 initial features, 64x64
  unet_small_bn  the same exported with BatchNormalization preserved
  resnet_small   a ResNet-22-style classifier (basic blocks 2-3-3-2), 64x64
  unet           the full U-Net (32 features, 4 levels, 7.76 M parameters) on a
                 64x64 slice (only with --large: slow with reference kernels)
Usage: make_models.py OUT_DIR [--large]
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.simplefilter("ignore")
OPSET = 13


class UNet(nn.Module):
    """The brain-MRI segmentation U-Net (mateuszbuda/brain-segmentation-pytorch layout)."""

    def __init__(self, in_channels=3, out_channels=1, init_features=32):
        super().__init__()
        f = init_features
        self.encoder1 = UNet._block(in_channels, f)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.encoder2 = UNet._block(f, f * 2)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.encoder3 = UNet._block(f * 2, f * 4)
        self.pool3 = nn.MaxPool2d(2, 2)
        self.encoder4 = UNet._block(f * 4, f * 8)
        self.pool4 = nn.MaxPool2d(2, 2)
        self.bottleneck = UNet._block(f * 8, f * 16)
        self.upconv4 = nn.ConvTranspose2d(f * 16, f * 8, kernel_size=2, stride=2)
        self.decoder4 = UNet._block(f * 16, f * 8)
        self.upconv3 = nn.ConvTranspose2d(f * 8, f * 4, kernel_size=2, stride=2)
        self.decoder3 = UNet._block(f * 8, f * 4)
        self.upconv2 = nn.ConvTranspose2d(f * 4, f * 2, kernel_size=2, stride=2)
        self.decoder2 = UNet._block(f * 4, f * 2)
        self.upconv1 = nn.ConvTranspose2d(f * 2, f, kernel_size=2, stride=2)
        self.decoder1 = UNet._block(f * 2, f)
        self.conv = nn.Conv2d(f, out_channels, kernel_size=1)

    def forward(self, x):
        e1 = self.encoder1(x)
        e2 = self.encoder2(self.pool1(e1))
        e3 = self.encoder3(self.pool2(e2))
        e4 = self.encoder4(self.pool3(e3))
        b = self.bottleneck(self.pool4(e4))
        d4 = self.decoder4(torch.cat((self.upconv4(b), e4), dim=1))
        d3 = self.decoder3(torch.cat((self.upconv3(d4), e3), dim=1))
        d2 = self.decoder2(torch.cat((self.upconv2(d3), e2), dim=1))
        d1 = self.decoder1(torch.cat((self.upconv1(d2), e1), dim=1))
        return torch.sigmoid(self.conv(d1))

    @staticmethod
    def _block(cin, f):
        return nn.Sequential(
            nn.Conv2d(cin, f, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(inplace=True),
            nn.Conv2d(f, f, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(inplace=True),
        )


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet22(nn.Module):
    """ResNet-style classifier: stem + basic blocks (2, 3, 3, 2) + average pool + fc (22 weight layers)."""

    def __init__(self, in_channels=1, classes=2, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], width
        for i, n in enumerate((2, 3, 3, 2)):
            cout = width * (2 ** i)
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        y = self.layers(self.stem(x))
        y = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
        return torch.softmax(self.fc(y), dim=1)


def mlp():
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 2), nn.Softmax(dim=1))


def randomize_bn(model, gen):
    """Non-trivial running statistics, so BatchNormalization is not the identity."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def export(out, name, model, x, preserve_bn=False):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.eval()
    with torch.no_grad():
        y = model(x)
    kw = {}
    if preserve_bn:
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(model, x, os.path.join(d, "model.onnx"), opset_version=OPSET, input_names=["input"],
                      output_names=["output"], do_constant_folding=not preserve_bn, **kw)
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "expected.npy"), y.numpy().astype(np.float32))
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters, input {tuple(x.shape)}, output {tuple(y.shape)}")


def main():
    out = sys.argv[1]
    large = "--large" in sys.argv
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(5678)
    torch.set_num_threads(1)

    export(out, "mlp", mlp(), torch.randn(4, 30, generator=gen))

    unet = UNet(3, 1, 8)
    randomize_bn(unet, gen)
    x = torch.randn(1, 3, 64, 64, generator=gen)
    export(out, "unet_small", unet, x)
    export(out, "unet_small_bn", unet, x, preserve_bn=True)

    res = ResNet22(1, 2, 16)
    randomize_bn(res, gen)
    export(out, "resnet_small", res, torch.randn(1, 1, 64, 64, generator=gen))

    if large:
        unet = UNet(3, 1, 32)
        randomize_bn(unet, gen)
        export(out, "unet", unet, torch.randn(1, 3, 64, 64, generator=gen), preserve_bn=True)


if __name__ == "__main__":
    main()
