#!/usr/bin/env python3
"""Generate the data-pipeline golden fixtures (bilinear resize) for rescnn.

Run with Debian's Python (it has PyTorch and torchvision):

    /usr/bin/python3 tests/golden/make_data_golden.py [--out DIR]

Writes ``resize__<case>.safetensors`` into ``tests/golden/fixtures`` (or DIR):
an image ``input`` (F32, C x H x W, values in [0, 1]) and ``output`` (F32,
C x out_h x out_w) = ``F.interpolate(input[None], size=(out_h, out_w),
mode="bilinear", align_corners=False, antialias=...)[0]``, which is what
torchvision's ``Resize`` does to a float tensor. Metadata: ``in_h``, ``in_w``,
``out_h``, ``out_w``, ``antialias`` ("true"/"false"), ``via`` (the call that
made ``output``). See tests/golden/README.md ("Data fixtures").

The safetensors writer and reader are the ones in make_golden.py (imported).
"""

import os
import sys
import zlib

import torch
import torchvision
import torch.nn.functional as F
import torchvision.transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import FixtureWriter, finish, setup  # noqa: E402

GENERATOR = "tests/golden/make_data_golden.py"
PREFIXES = ("resize__",)


def seed_for(case):
    return zlib.crc32(f"resize__{case}".encode()) & 0x7FFFFFFF


def clothing_like(h, w):
    """A uint8 image like a Fashion-MNIST item: a dark background, a bright
    textured blob with hard edges (where resampling differs the most)."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    blob = ((x / 0.6) ** 2 + (y / 0.85) ** 2 < 1).float()
    texture = 0.6 + 0.4 * torch.sin(9 * x) * torch.cos(7 * y) + 0.15 * torch.rand(h, w)
    img = (blob * texture).clamp(0, 1) * 255
    return img.round().to(torch.uint8)


def resize_cases(w):
    # (case, C, (H, W), (out_h, out_w), antialias, input kind)
    cases = [
        ("up_28_to_96", 1, (28, 28), (96, 96), False, "rand"),
        ("up_28_to_96_aa", 1, (28, 28), (96, 96), True, "rand"),
        ("down_28_to_20", 1, (28, 28), (20, 20), False, "rand"),
        ("down_28_to_20_aa", 1, (28, 28), (20, 20), True, "rand"),
        ("down_96_to_28", 1, (96, 96), (28, 28), False, "rand"),
        ("down_96_to_28_aa", 1, (96, 96), (28, 28), True, "rand"),
        ("identity_28", 1, (28, 28), (28, 28), False, "rand"),
        ("identity_28_aa", 1, (28, 28), (28, 28), True, "rand"),
        ("nonsquare_7x5_to_3x11", 2, (7, 5), (3, 11), False, "rand"),
        ("nonsquare_7x5_to_3x11_aa", 2, (7, 5), (3, 11), True, "rand"),
        ("clothing_96_to_28_aa", 1, (96, 96), (28, 28), True, "clothing"),
    ]
    for case, c, (h, wd), (oh, ow), aa, kind in cases:
        torch.manual_seed(seed_for(case))
        if kind == "rand":
            x = torch.rand(c, h, wd)
        else:
            x = torch.stack([clothing_like(h, wd) for _ in range(c)]).float() / 255
        y = F.interpolate(x[None], size=(oh, ow), mode="bilinear", align_corners=False, antialias=aa)[0]
        meta = {"in_h": h, "in_w": wd, "out_h": oh, "out_w": ow, "antialias": "true" if aa else "false",
                "via": "F.interpolate"}
        w.write(f"resize__{case}.safetensors", {"input": x, "output": y}, meta)

    # torchvision.transforms.Resize(96), as d2l's load_data_fashion_mnist(resize=96)
    # applies it (after ToTensor): must be F.interpolate without antialias.
    case = "torchvision_resize_96"
    torch.manual_seed(seed_for(case))
    x = T.ToTensor()(clothing_like(28, 28).numpy())  # 1 x 28 x 28, uint8 / 255
    y = T.Resize(96)(x)
    ref = F.interpolate(x[None], size=(96, 96), mode="bilinear", align_corners=False, antialias=False)[0]
    assert torch.equal(y, ref), "torchvision Resize(96) differs from F.interpolate(antialias=False)"
    meta = {"in_h": 28, "in_w": 28, "out_h": 96, "out_w": 96, "antialias": "false",
            "via": "torchvision.transforms.Resize(96) after ToTensor"}
    w.write(f"resize__{case}.safetensors", {"input": x, "output": y}, meta)


def main():
    args = setup(__doc__.splitlines()[0])
    w = FixtureWriter(args.out, GENERATOR, extra_meta={"torchvision_version": torchvision.__version__})
    resize_cases(w)

    return finish(w, PREFIXES)


if __name__ == "__main__":
    sys.exit(main())
