#!/usr/bin/env python3
"""Golden file for rescnn's BF16 and F16 safetensors support (test_safetensors).

  /usr/bin/python3 tests/golden/make_half_golden.py [DIR]

Writes DIR/half_dtypes.safetensors (default DIR: tests/golden/fixtures) with
  source      F32   the values: random, exact bf16 and f16 ties, subnormals of
                    f16, its largest finite value, signed zeros, infinities
  f16_source  F32   `source` without the values beyond f16 (zeroed)
  bf16, f16   BF16, F16   torch's rounding of `source` and `f16_source`
                          (.to(torch.bfloat16), .to(torch.float16)), as torch stores them
  bf16_f32, f16_f32  F32  torch's widening of those back to float32
rescnn must read bf16/f16 as bf16_f32/f16_f32 exactly, and write `source` as
BF16/F16 to the same bytes as torch. No f16 value overflows here (rescnn
refuses to write an overflow as infinity; the test checks that separately).
The safetensors package is not needed: the writer is below.
"""
import json
import os
import struct
import sys

import torch


def write(path, tensors):
    """tensors: name -> (dtype name, shape, bytes); data ordered as rescnn writes it."""
    itemsize = {"F32": 4, "BF16": 2, "F16": 2}
    order = sorted(tensors, key=lambda n: (-itemsize[tensors[n][0]], n))
    header, pos = {}, 0
    offsets = {}
    for name in order:
        offsets[name] = (pos, pos + len(tensors[name][2]))
        pos += len(tensors[name][2])
    for name in sorted(tensors):
        dtype, shape, _ = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets[name])}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    blob = struct.pack("<Q", len(text)) + text + b"".join(tensors[n][2] for n in order)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


def raw(t):
    """The little-endian bytes of a tensor (16-bit ones through int16)."""
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures")
    g = torch.Generator().manual_seed(17)
    special = [
        1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8),  # bf16 ties: to even (down, up)
        1 + 2**-11, 1 + 3 * 2**-11,              # f16 ties
        2**-24, 3 * 2**-25, 2**-25, 2**-14 - 2**-25,  # f16 subnormals and their ties
        65504.0, 65519.0, -65504.0,             # f16's largest finite, just below the overflow tie
        0.0, -0.0, float("inf"), float("-inf"), 1e-30, 3.0e38,
    ]
    source = torch.cat([torch.randn(60, generator=g) * 3, torch.tensor(special, dtype=torch.float32)])
    source = source[: (source.numel() // 6) * 6].reshape(-1, 2, 3)
    f16_source = torch.where(source.abs() > 65504, torch.zeros_like(source), source)  # no overflow for F16
    bf16, f16 = source.to(torch.bfloat16), f16_source.to(torch.float16)
    shape = tuple(source.shape)
    tensors = {
        "source": ("F32", shape, raw(source)),
        "f16_source": ("F32", shape, raw(f16_source)),
        "bf16": ("BF16", shape, raw(bf16)),
        "f16": ("F16", shape, raw(f16)),
        "bf16_f32": ("F32", shape, raw(bf16.float())),
        "f16_f32": ("F32", shape, raw(f16.float())),
    }
    path = os.path.join(out_dir, "half_dtypes.safetensors")
    write(path, tensors)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
