#!/usr/bin/env python3
"""A torchvision resnet18 state dict for test_transfer's fine-tune, small enough to commit.

  /usr/bin/python3 tests/golden/make_transfer_golden.py

Writes tests/golden/fixtures/transfer__torchvision_resnet18.safetensors.gz:
the state dict of torchvision.models.resnet18() (1000 classes; every
parameter and buffer under torchvision's names, float32, BatchNorm counters
int64), written by make_golden.py's safetensors writer and gzipped. The
weights are not torchvision's random ones, which would take 45 MB: element
k of every weight tensor is std * ((7 k) mod 11 - 5) / 5, with std the
tensor's Kaiming normal (fan-out) spread, so channels differ but the file
repeats every 11 values and compresses to a few hundred kilobytes.
BatchNorm keeps torchvision's initial values, with running statistics taken
from a few forward passes in train mode, so they are not the defaults.
"""
import gzip
import math
import os
import sys

import torch
import torchvision.models as tvm

sys.path.insert(0, os.path.dirname(__file__))
from make_golden import serialize  # noqa: E402


def main():
    torch.manual_seed(0)
    model = tvm.resnet18()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_out = p.shape[0] * (p[0][0].numel() if p.dim() > 2 else 1)
                std = math.sqrt(2.0 / fan_out)
                k = torch.arange(p.numel(), dtype=torch.float64)
                p.copy_((std * (torch.remainder(7 * k, 11) - 5) / 5).reshape(p.shape))
        model.train()
        for _ in range(3):
            model(torch.rand(4, 3, 64, 64))
    tensors = {name: t.detach().numpy() for name, t in model.state_dict().items()}
    blob = serialize(tensors, {"generator": "tests/golden/make_transfer_golden.py", "model": "resnet18",
                               "torchvision_version": __import__("torchvision").__version__})
    out = os.path.join(os.path.dirname(__file__), "fixtures", "transfer__torchvision_resnet18.safetensors.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(blob)
    print(out, len(blob), os.path.getsize(out))


if __name__ == "__main__":
    main()
