#!/usr/bin/env python3
"""Generate the PyTorch golden fixtures used by the rescnn C++ tests.

Run with Debian's Python (it has PyTorch):

    /usr/bin/python3 tests/golden/make_golden.py [--out DIR]

Writes one safetensors file per case, named ``<layer>__<case>.safetensors``,
into ``tests/golden/fixtures`` (or DIR), plus ``safetensors_roundtrip.safetensors``
for the safetensors reader test. See tests/golden/README.md for the contents.

Everything is float32 and deterministic: one thread, deterministic
algorithms, ``torch.manual_seed`` per case (seeded from the file name), so a
rerun with the same PyTorch rewrites the same bytes.

The ``safetensors`` Python package is not needed: this script has its own
small writer and, as a self-check at the end, its own reader that parses every
file back and compares it with what was written.
"""

import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "fixtures")

# ---------------------------------------------------------------------------
# safetensors writer and reader (the format: 8-byte little-endian header
# length, JSON header, data buffer)
# ---------------------------------------------------------------------------

DTYPES = {  # numpy dtype -> safetensors name
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
}
NUMPY_OF = {v: k for k, v in DTYPES.items()}


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()
    # (np.ascontiguousarray would turn a 0-d scalar into shape (1,).)
    arr = np.asarray(value, order="C")
    if arr.dtype not in DTYPES:
        raise TypeError(f"unsupported dtype {arr.dtype}")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def serialize(tensors, metadata):
    """tensors: dict name -> array/tensor; metadata: dict str -> str."""
    arrays = {name: to_numpy(t) for name, t in tensors.items()}
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata {k!r}: {v!r} must map str to str")
    # Data layout as the safetensors package (and rescnn) writes it: larger
    # item sizes first, then by name, packed; every tensor is then aligned to
    # its own item size. The header lists tensors by name.
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    offsets, pos = {}, 0
    for name in order:
        nbytes = arrays[name].nbytes
        offsets[name] = (pos, pos + nbytes)
        pos += nbytes
    header = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name in sorted(arrays):
        a = arrays[name]
        header[name] = {
            "dtype": DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": list(offsets[name]),
        }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    data = b"".join(arrays[name].tobytes() for name in order)
    return struct.pack("<Q", len(text)) + text + data


def write_file(path, tensors, metadata):
    blob = serialize(tensors, metadata)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    return blob


def read_file(path):
    """A strict little reader: returns (tensors as numpy arrays, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} beyond file")
    header_text = blob[8 : 8 + n].decode("utf-8")
    if not header_text.startswith("{"):
        raise ValueError(f"{path}: header does not start with '{{'")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"{path}: duplicate keys")
        return dict(pairs)

    header = json.loads(header_text, object_pairs_hook=no_duplicates)
    buf = blob[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors, extents = {}, []
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{path}: {name}: bad fields {sorted(info)}")
        dt = NUMPY_OF[info["dtype"]]
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        if not (0 <= b <= e <= len(buf)):
            raise ValueError(f"{path}: {name}: offsets out of range")
        if e - b != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise ValueError(f"{path}: {name}: size mismatch")
        tensors[name] = np.frombuffer(buf[b:e], dtype=dt.newbyteorder("<")).reshape(shape)
        extents.append((b, e))
    pos = 0
    for b, e in sorted(extents):
        if b != pos:
            raise ValueError(f"{path}: data buffer not tiled exactly")
        pos = e
    if pos != len(buf):
        raise ValueError(f"{path}: trailing bytes in data buffer")
    return tensors, metadata


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def pair(v):
    if isinstance(v, int):
        v = (v, v)
    return f"{v[0]},{v[1]}"


def flag(b):
    return "true" if b else "false"


def seed_for(layer, case):
    # Stable across runs and Python versions (unlike hash()).
    return zlib.crc32(f"{layer}__{case}".encode()) & 0x7FFFFFFF


def run_layer(module, x):
    """Forward, then backward with a random upstream gradient.

    Returns (x, y, grad_output) with x.grad and the parameters' .grad filled:
    loss = (y * grad_output).sum().
    """
    x = x.clone().requires_grad_(True)
    y = module(x)
    grad_output = torch.randn_like(y)
    y.backward(grad_output)
    return x, y, grad_output


def distinct_values(*shape):
    """Values without ties (a shuffled ramp), exact in float32, both signs."""
    n = int(np.prod(shape))
    perm = torch.randperm(n).to(torch.float32)
    return ((perm - n / 2) / 8.0).reshape(*shape)


class FixtureWriter:
    """Writes fixture files with their provenance (the generator script, the
    torch version and `extra_meta`), refusing non-finite floats, and remembers
    every file for self_check(). Shared by all the generator scripts."""

    def __init__(self, out_dir, generator, extra_meta=None):
        self.out_dir = out_dir
        self.generator = generator
        self.extra_meta = dict(extra_meta or {})
        self.written = {}  # path -> (arrays, metadata)

    def write(self, filename, tensors, metadata):
        meta = {k: str(v) for k, v in metadata.items()}
        meta["generator"] = self.generator
        meta["torch_version"] = torch.__version__
        meta.update(self.extra_meta)
        arrays = {k: to_numpy(v) for k, v in tensors.items()}
        for k, a in arrays.items():
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"{filename}: {k} has non-finite values")
        path = os.path.join(self.out_dir, filename)
        write_file(path, arrays, meta)
        self.written[path] = (arrays, meta)


class Writer(FixtureWriter):
    """Layer fixtures: "<layer>__<case>.safetensors" with layer and case in the metadata."""

    def __init__(self, out_dir):
        super().__init__(out_dir, "tests/golden/make_golden.py")

    def write(self, layer, case, tensors, metadata, filename=None):
        meta = {"layer": layer, "case": case}
        meta.update(metadata)
        super().write(filename or f"{layer}__{case}.safetensors", tensors, meta)


def finish(w, prefixes):
    """Removes fixtures named with `prefixes` that this run did not write (cases
    that no longer exist; other files in the directory are left alone), reads
    every written file back (self_check) and prints a summary."""
    for fname in sorted(os.listdir(w.out_dir)):
        path = os.path.join(w.out_dir, fname)
        if fname.startswith(tuple(prefixes)) and fname.endswith(".safetensors") and path not in w.written:
            os.remove(path)
            print(f"removed stale {fname}")
    total = self_check(w)
    print(f"wrote {len(w.written)} files, {total} bytes, to {w.out_dir}; self-check passed")
    return 0


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------


def conv2d_cases(w):
    # (case, N, Cin, Cout, (H, W), kernel, stride, padding, dilation, groups, bias)
    cases = [
        ("basic_3x3_pad1", 2, 3, 4, (8, 8), 3, 1, 1, 1, 1, True),
        ("stride2_pad1", 2, 3, 4, (8, 8), 3, 2, 1, 1, 1, True),
        ("1x1_nopad", 2, 4, 6, (5, 5), 1, 1, 0, 1, 1, True),
        ("stem_7x7_stride2_pad3", 2, 1, 4, (16, 16), 7, 2, 3, 1, 1, True),
        ("dilation2", 2, 3, 4, (9, 9), 3, 1, 2, 2, 1, True),
        ("groups2", 2, 4, 6, (6, 6), 3, 1, 1, 1, 2, True),
        ("depthwise", 2, 4, 4, (6, 6), 3, 1, 1, 1, 4, True),
        ("kernel_3x1_pad_1x0", 2, 3, 4, (6, 5), (3, 1), 1, (1, 0), 1, 1, True),
        ("odd_7x5_stride2", 2, 3, 4, (7, 5), 3, 2, 1, 1, 1, True),
        ("nobias", 2, 3, 4, (6, 6), 3, 1, 1, 1, 1, False),
        ("stride_2x1", 2, 3, 4, (8, 6), 3, (2, 1), 1, 1, 1, True),
        ("downsample_1x1_stride2", 2, 4, 8, (8, 8), 1, 2, 0, 1, 1, False),
        ("even_kernel_2x4_pad_1x2", 2, 2, 3, (5, 6), (2, 4), 1, (1, 2), 1, 1, True),
        ("groups2_stride2_dilation2", 3, 4, 6, (9, 8), 3, 2, 2, 2, 2, True),
    ]
    for case, n, cin, cout, (h, wd), k, s, p, d, g, bias in cases:
        torch.manual_seed(seed_for("conv2d", case))
        conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
        x, y, gy = run_layer(conv, torch.randn(n, cin, h, wd))
        tensors = {
            "input": x,
            "output": y,
            "grad_output": gy,
            "grad_input": x.grad,
            "weight": conv.weight,
            "grad_weight": conv.weight.grad,
        }
        if bias:
            tensors["bias"] = conv.bias
            tensors["grad_bias"] = conv.bias.grad
        meta = {
            "in_channels": cin,
            "out_channels": cout,
            "kernel_size": pair(conv.kernel_size),
            "stride": pair(conv.stride),
            "padding": pair(conv.padding),
            "dilation": pair(conv.dilation),
            "groups": g,
            "bias": flag(bias),
        }
        w.write("conv2d", case, tensors, meta)


def batchnorm2d_cases(w):
    # (case, mode, affine, N, C, (H, W), eps, momentum, stats: "fresh" | "random")
    cases = [
        ("train_affine", "train", True, 3, 4, (5, 5), 1e-5, 0.1, "fresh"),
        ("train_noaffine", "train", False, 3, 4, (5, 5), 1e-5, 0.1, "fresh"),
        ("eval_affine", "eval", True, 3, 4, (5, 5), 1e-5, 0.1, "random"),
        ("eval_noaffine", "eval", False, 3, 4, (5, 5), 1e-5, 0.1, "random"),
        ("train_momentum_0p3_eps_1e-3", "train", True, 2, 3, (4, 6), 1e-3, 0.3, "random"),
        ("train_running_stats", "train", True, 2, 5, (4, 4), 1e-5, 0.1, "random"),
        ("train_batch1_3x3", "train", True, 1, 3, (3, 3), 1e-5, 0.1, "fresh"),
        # Planes of 64 positions or more take the CPU's per-channel kernel
        # (smaller ones the small-plane kernel), and an eps far from the
        # default 1e-5 catches a kernel that ignores the configured one.
        ("eval_eps_1e-2_plane_100", "eval", True, 2, 3, (10, 10), 1e-2, 0.1, "random"),
        ("eval_noaffine_eps_1e-3_plane_64", "eval", False, 2, 3, (8, 8), 1e-3, 0.1, "random"),
        ("eval_eps_1e-2_plane_49", "eval", True, 2, 3, (7, 7), 1e-2, 0.1, "random"),
        ("train_eps_1e-2_plane_81", "train", True, 4, 3, (9, 9), 1e-2, 0.2, "random"),
        ("train_noaffine_plane_64", "train", False, 2, 5, (8, 8), 1e-5, 0.1, "fresh"),
    ]
    for case, mode, affine, n, c, (h, wd), eps, momentum, stats in cases:
        torch.manual_seed(seed_for("batchnorm2d", case))
        bn = nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine)
        with torch.no_grad():
            if affine:
                bn.weight.copy_(torch.rand(c) + 0.5)
                bn.bias.copy_(torch.randn(c) * 0.5)
            if stats == "random":
                bn.running_mean.copy_(torch.randn(c))
                bn.running_var.copy_(torch.rand(c) * 2 + 0.25)
        rm_before = bn.running_mean.clone()
        rv_before = bn.running_var.clone()
        bn.train(mode == "train")
        # Per-channel offsets and scales so the statistics are non-trivial.
        x0 = torch.randn(n, c, h, wd) * (torch.rand(1, c, 1, 1) * 2 + 0.5) + torch.randn(1, c, 1, 1)
        x, y, gy = run_layer(bn, x0)
        tensors = {
            "input": x,
            "output": y,
            "grad_output": gy,
            "grad_input": x.grad,
            "running_mean_before": rm_before,
            "running_var_before": rv_before,
            "running_mean": bn.running_mean,
            "running_var": bn.running_var,
        }
        if affine:
            tensors.update(
                weight=bn.weight, bias=bn.bias, grad_weight=bn.weight.grad, grad_bias=bn.bias.grad
            )
        meta = {
            "num_features": c,
            "eps": repr(eps),
            "momentum": repr(momentum),
            "affine": flag(affine),
            "mode": mode,
        }
        w.write("batchnorm2d", case, tensors, meta)


def relu_cases(w):
    for case, shape in [("4d", (2, 3, 5, 4)), ("2d", (3, 7))]:
        torch.manual_seed(seed_for("relu", case))
        x0 = torch.randn(*shape)
        x0[x0.abs() < 1e-3] = 0.5  # no input exactly (or nearly) at the kink
        x, y, gy = run_layer(nn.ReLU(), x0)
        w.write("relu", case, {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad}, {})


def maxpool2d_cases(w):
    # (case, N, C, (H, W), kernel, stride, padding, dilation)
    cases = [
        ("stem_3x3_s2_p1", 2, 3, (8, 8), 3, 2, 1, 1),
        ("2x2_s2", 2, 3, (6, 6), 2, 2, 0, 1),
        ("3x3_s1_p1", 2, 2, (5, 5), 3, 1, 1, 1),
        ("odd_7x5_3x3_s2_p1", 2, 2, (7, 5), 3, 2, 1, 1),
        ("odd_7x5_2x2_s2", 2, 2, (7, 5), 2, 2, 0, 1),
        ("kernel_3x2_s_1x2_p_1x0", 2, 2, (6, 7), (3, 2), (1, 2), (1, 0), 1),
        ("dilation2_p1", 2, 2, (7, 7), 3, 1, 1, 2),
    ]
    for case, n, c, (h, wd), k, s, p, d in cases:
        torch.manual_seed(seed_for("maxpool2d", case))
        pool = nn.MaxPool2d(k, stride=s, padding=p, dilation=d)
        x, y, gy = run_layer(pool, distinct_values(n, c, h, wd))
        meta = {
            "kernel_size": pair(k),
            "stride": pair(s),
            "padding": pair(p),
            "dilation": pair(d),
            "ceil_mode": "false",
        }
        w.write("maxpool2d", case, {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad}, meta)


def avgpool2d_cases(w):
    # (case, N, C, (H, W), kernel, stride, padding, count_include_pad)
    cases = [
        ("2x2_s2", 2, 3, (6, 6), 2, 2, 0, True),
        ("3x3_s1_p1_include_pad", 2, 2, (5, 5), 3, 1, 1, True),
        ("3x3_s1_p1_exclude_pad", 2, 2, (5, 5), 3, 1, 1, False),
        ("odd_7x5_3x3_s2_p1", 2, 2, (7, 5), 3, 2, 1, True),
    ]
    for case, n, c, (h, wd), k, s, p, cip in cases:
        torch.manual_seed(seed_for("avgpool2d", case))
        pool = nn.AvgPool2d(k, stride=s, padding=p, count_include_pad=cip)
        x, y, gy = run_layer(pool, torch.randn(n, c, h, wd))
        meta = {
            "kernel_size": pair(k),
            "stride": pair(s),
            "padding": pair(p),
            "count_include_pad": flag(cip),
            "ceil_mode": "false",
        }
        w.write("avgpool2d", case, {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad}, meta)


def adaptive_avgpool2d_cases(w):
    cases = [
        ("1x1_on_7x7", 2, 3, (7, 7), (1, 1)),
        ("1x1_on_5x3", 2, 3, (5, 3), (1, 1)),
        ("2x3_on_7x5", 2, 2, (7, 5), (2, 3)),
        ("3x3_on_3x3", 2, 2, (3, 3), (3, 3)),
    ]
    for case, n, c, (h, wd), out in cases:
        torch.manual_seed(seed_for("adaptive_avgpool2d", case))
        x, y, gy = run_layer(nn.AdaptiveAvgPool2d(out), torch.randn(n, c, h, wd))
        w.write(
            "adaptive_avgpool2d",
            case,
            {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad},
            {"output_size": pair(out)},
        )


def flatten_cases(w):
    torch.manual_seed(seed_for("flatten", "4d_to_2d"))
    x, y, gy = run_layer(nn.Flatten(1), torch.randn(2, 3, 4, 5))
    w.write(
        "flatten",
        "4d_to_2d",
        {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad},
        {"start_dim": "1", "end_dim": "-1"},
    )


def linear_cases(w):
    cases = [
        ("bias_batch3", 3, 5, 4, True),
        ("nobias_batch3", 3, 5, 4, False),
        ("bias_batch1", 1, 6, 3, True),
        ("nobias_batch1", 1, 6, 3, False),
    ]
    for case, n, fin, fout, bias in cases:
        torch.manual_seed(seed_for("linear", case))
        lin = nn.Linear(fin, fout, bias=bias)
        x, y, gy = run_layer(lin, torch.randn(n, fin))
        tensors = {
            "input": x,
            "output": y,
            "grad_output": gy,
            "grad_input": x.grad,
            "weight": lin.weight,
            "grad_weight": lin.weight.grad,
        }
        if bias:
            tensors.update(bias=lin.bias, grad_bias=lin.bias.grad)
        w.write("linear", case, tensors, {"in_features": fin, "out_features": fout, "bias": flag(bias)})


def cross_entropy_cases(w):
    # (case, N, K, logit scale, label_smoothing)
    cases = [
        ("small_random", 4, 3, 1.0, 0.0),
        ("large_logits", 4, 5, 1000.0, 0.0),
        ("k10_n5", 5, 10, 2.0, 0.0),
        ("n1", 1, 4, 1.0, 0.0),
        # torch.nn.CrossEntropyLoss(label_smoothing=...)
        ("smoothing_0.1_k10", 6, 10, 2.0, 0.1),
        ("smoothing_0.3_large_logits", 4, 5, 1000.0, 0.3),
        ("smoothing_1.0", 3, 4, 1.5, 1.0),
    ]
    for case, n, k, scale, smoothing in cases:
        torch.manual_seed(seed_for("cross_entropy", case))
        logits = (torch.randn(n, k) * scale).requires_grad_(True)
        labels = torch.randint(0, k, (n,), dtype=torch.int64)
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)  # mean over the batch
        (grad_logits,) = torch.autograd.grad(loss, logits, retain_graph=True)
        # The common layer interface too: output = loss, a random 0-d upstream
        # gradient, grad_input = grad_output * grad_logits.
        grad_output = torch.randn(())
        (grad_input,) = torch.autograd.grad(loss, logits, grad_outputs=grad_output)
        tensors = {
            "logits": logits,
            "labels": labels,
            "loss": loss,
            "grad_logits": grad_logits,
            "input": logits,
            "output": loss,
            "grad_output": grad_output,
            "grad_input": grad_input,
        }
        meta = {"num_classes": k, "reduction": "mean"}
        if smoothing:
            meta["label_smoothing"] = repr(smoothing)
        w.write("cross_entropy", case, tensors, meta)


def roundtrip_file(w):
    tensors = {
        "f32": (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3),  # -1.0 .. 1.5
        "f64": np.arange(4, dtype=np.float64) + 0.25,  # 0.25 1.25 2.25 3.25
        "i64": np.array([-1, 0, 2**40], dtype=np.int64),
        "u8": np.array([[0, 1], [254, 255]], dtype=np.uint8),
    }
    meta = {"format": "pt", "note": "roundtrip"}
    path = os.path.join(w.out_dir, "safetensors_roundtrip.safetensors")
    write_file(path, tensors, meta)
    w.written[path] = (tensors, meta)


# ---------------------------------------------------------------------------


def self_check(w):
    total = 0
    for path, (tensors, meta) in sorted(w.written.items()):
        got, got_meta = read_file(path)
        assert got_meta == meta, f"{path}: metadata differs"
        assert sorted(got) == sorted(tensors), f"{path}: tensor names differ"
        for name, a in tensors.items():
            b = got[name]
            assert b.dtype == a.dtype and b.shape == a.shape, f"{path}: {name}: dtype/shape differ"
            assert a.tobytes() == b.tobytes(), f"{path}: {name}: values differ"
        # The C++ reader requires an 8-byte aligned data buffer from our writer.
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        assert n % 8 == 0, f"{path}: header not padded"
        total += os.path.getsize(path)
    return total


def setup(description):
    """Parses --out and makes torch deterministic; shared by both generators."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    return args


def main():
    args = setup(__doc__.splitlines()[0])
    w = Writer(args.out)
    conv2d_cases(w)
    batchnorm2d_cases(w)
    relu_cases(w)
    maxpool2d_cases(w)
    avgpool2d_cases(w)
    adaptive_avgpool2d_cases(w)
    flatten_cases(w)
    linear_cases(w)
    cross_entropy_cases(w)
    roundtrip_file(w)

    layers = {meta["layer"] for _, meta in w.written.values() if "layer" in meta}
    return finish(w, [layer + "__" for layer in layers])


if __name__ == "__main__":
    sys.exit(main())
