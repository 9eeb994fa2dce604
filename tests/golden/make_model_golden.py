#!/usr/bin/env python3
"""Generate the block-, model- and parameter-name golden fixtures for rescnn.

Run with Debian's Python (it has PyTorch and torchvision):

    /usr/bin/python3 tests/golden/make_model_golden.py [--out DIR]

Writes into ``tests/golden/fixtures`` (or DIR):

* ``names__<model>.safetensors``   parameter / buffer names and shapes, in order
* ``fill__check.safetensors``      two tensors filled by ``fill_value`` (below)
* ``block__<case>_<mode>.safetensors``  one residual block, forward + backward
* ``model__<model>_<mode>.safetensors``  a whole network, forward + backward

See the "Block, model and name fixtures" section of tests/golden/README.md.

Deterministic weights, shared with the C++ side
-----------------------------------------------
Weights are not committed; both sides fill every state-dict entry with::

    def fill_value(name: str, i: int, scale: float) -> float:
        # 64-bit FNV-1a of the UTF-8 name, then splitmix64 of (hash + i)
        h = 0xcbf29ce484222325
        for b in name.encode(): h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        z = (h + (i + 1) * 0x9e3779b97f4a7c15) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & 0xFFFFFFFFFFFFFFFF
        z = z ^ (z >> 31)
        u = (z >> 11) * 2.0**-53          # uniform in [0, 1), exact double
        return (2.0 * u - 1.0) * scale    # in double, then rounded to float32

``name`` is the state-dict name (no "module." / "net." prefix), ``i`` the
row-major element index. Per entry (all arithmetic in double, one final
rounding to float32):

* Conv2d / Linear weight (rank >= 2): fill_value(name, i, sqrt(3 / fan_in)),
  fan_in = shape[1] * prod(shape[2:])   (variance 1 / fan_in)
* Conv2d / Linear bias:               fill_value(name, i, 0.1)
* BatchNorm2d weight:                 1 + fill_value(name, i, 0.2)
* BatchNorm2d bias:                   fill_value(name, i, 0.1)
* BatchNorm2d running_mean:           fill_value(name, i, 0.1)
* BatchNorm2d running_var:            1 + fill_value(name, i, 0.25)
* num_batches_tracked: left at 0 (never used: momentum is 0.1)

The safetensors writer/reader is the one in make_golden.py (imported).
"""

import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import FixtureWriter, finish, setup  # noqa: E402

GENERATOR = "tests/golden/make_model_golden.py"
PREFIXES = ("block__", "model__", "names__", "fill__")

# Large checked gradients in the model fixtures are stored as a leading slice
# of whole output rows (dim 0) so the committed files stay small; see README.
GRAD_CAP_ELEMENTS = 20480  # = 10 * 2048, resnet50 fc.weight whole
# The float64 copies ("f64.grad.<name>") keep fewer of those leading rows (at
# least one); metadata "f64_grad_rows" says how many. Keeps model__* < 2.5 MB.
F64_GRAD_CAP_ELEMENTS = 1024

# ---------------------------------------------------------------------------
# deterministic fill (see the module docstring)
# ---------------------------------------------------------------------------

MASK = 0xFFFFFFFFFFFFFFFF


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def fill_value(name, i, scale):
    """Reference scalar implementation (pure Python ints), returns a double."""
    h = fnv1a64(name)
    z = (h + (i + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z = z ^ (z >> 31)
    u = (z >> 11) * 2.0**-53
    return (2.0 * u - 1.0) * scale


def fill_array(name, n, scale):
    """Vectorised fill_value(name, i, scale) for i in range(n), float64.

    numpy uint64 arithmetic wraps modulo 2**64; every constant is np.uint64 so
    nothing is promoted to float.
    """
    u64 = np.uint64
    h = u64(fnv1a64(name))
    with np.errstate(over="ignore"):
        z = h + (np.arange(n, dtype=np.uint64) + u64(1)) * u64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
        z = z ^ (z >> u64(31))
    u = (z >> u64(11)).astype(np.float64) * 2.0**-53  # exact: < 2**53
    return (2.0 * u - 1.0) * scale


def filled(name, kind, shape):
    """float32 tensor for one state-dict entry; kind as returned by entry_kind."""
    shape = tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if kind == "weight":  # conv / linear weight
        fan_in = shape[1] * int(np.prod(shape[2:], dtype=np.int64))
        v = fill_array(name, n, math.sqrt(3.0 / fan_in))
    elif kind == "bias":  # conv / linear bias
        v = fill_array(name, n, 0.1)
    elif kind == "bn_weight":
        v = 1.0 + fill_array(name, n, 0.2)
    elif kind == "bn_bias":
        v = fill_array(name, n, 0.1)
    elif kind == "running_mean":
        v = fill_array(name, n, 0.1)
    elif kind == "running_var":
        v = 1.0 + fill_array(name, n, 0.25)
    else:
        raise ValueError(kind)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def entry_kind(module, local):
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        if local == "weight":
            return "weight"
        if local == "bias":
            return "bias"
    if isinstance(module, nn.BatchNorm2d):
        return {
            "weight": "bn_weight",
            "bias": "bn_bias",
            "running_mean": "running_mean",
            "running_var": "running_var",
            "num_batches_tracked": None,
        }[local]
    raise TypeError(f"no fill rule for {type(module).__name__}.{local}")


@torch.no_grad()
def fill_module(model):
    """Fill every parameter and buffer of model in place; returns count filled."""
    count = 0
    for mname, m in model.named_modules():
        own = list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
        for local, t in own:
            kind = entry_kind(m, local)
            if kind is None:
                t.zero_()
                continue
            name = f"{mname}.{local}" if mname else local
            t.copy_(filled(name, kind, t.shape))
            count += t.numel()
    return count


# ---------------------------------------------------------------------------
# d2l ResNet, ResNeXt block, pre-activation block (plain torch, explicit
# input channels instead of d2l's Lazy modules)
# ---------------------------------------------------------------------------


class Residual(nn.Module):
    """d2l.ai Residual: registration order conv1, conv2, conv3?, bn1, bn2."""

    def __init__(self, in_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(in_channels, num_channels, 1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


def d2l_resnet(arch, in_channels=1, num_classes=10):
    net = nn.Sequential()
    net.add_module(
        "0",
        nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ),
    )
    ch = 64
    for i, (num_residuals, num_channels) in enumerate(arch):
        first_block = i == 0
        blk = []
        for j in range(num_residuals):
            if j == 0 and not first_block:
                blk.append(Residual(ch, num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(ch, num_channels))
            ch = num_channels
        net.add_module(f"b{i + 2}", nn.Sequential(*blk))
    net.add_module(
        "last", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(ch, num_classes))
    )
    return net


def d2l_resnet18(in_channels=1, num_classes=10):
    return d2l_resnet(((2, 64), (2, 128), (2, 256), (2, 512)), in_channels, num_classes)


class ResNeXtBlock(nn.Module):
    """d2l.ai ResNeXtBlock, with ``groups`` = torch's number of groups.

    d2l's own code passes ``groups=bot_channels // groups`` to the 3x3 conv,
    i.e. its argument is the channels per group; here (as rescnn does) the
    argument is the number of groups handed to Conv2d directly.
    Registration order as in d2l: conv1, conv2, conv3, bn1, bn2, bn3, conv4, bn4.
    """

    def __init__(self, in_channels, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.Conv2d(in_channels, bot_channels, 1, stride=1)
        self.conv2 = nn.Conv2d(bot_channels, bot_channels, 3, stride=strides, padding=1, groups=groups)
        self.conv3 = nn.Conv2d(bot_channels, num_channels, 1, stride=1)
        self.bn1 = nn.BatchNorm2d(bot_channels)
        self.bn2 = nn.BatchNorm2d(bot_channels)
        self.bn3 = nn.BatchNorm2d(num_channels)
        if use_1x1conv:
            self.conv4 = nn.Conv2d(in_channels, num_channels, 1, stride=strides)
            self.bn4 = nn.BatchNorm2d(num_channels)
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4 is not None:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


class PreActBlock(nn.Module):
    """He et al. 2016 pre-activation block; no final ReLU.

    Registration order: bn1, conv1, bn2, conv2, shortcut (a bare Conv2d, so
    its parameter is ``shortcut.weight``).
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def flag(b):
    return "true" if b else "false"


def seed_for(tag):
    return zlib.crc32(tag.encode()) & 0x7FFFFFFF


def shape_str(shape):
    return ",".join(str(int(d)) for d in shape)


def listed_buffers(model):
    return [(n, b) for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]


# ---------------------------------------------------------------------------
# 1. parameter-name lists
# ---------------------------------------------------------------------------

TV_MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "resnext101_64x4d",  # only where this torchvision has it
]


def names_file(w, model_name, model, extra_meta):
    params = list(model.named_parameters())
    bufs = listed_buffers(model)
    count = sum(p.numel() for _, p in params)
    nbuf = sum(b.numel() for _, b in bufs)
    meta = {
        "model": model_name,
        "parameters": "\n".join(f"{n}:{shape_str(p.shape)}" for n, p in params),
        "buffers": "\n".join(f"{n}:{shape_str(b.shape)}" for n, b in bufs),
        "num_parameters": str(count),
        "num_buffer_elements": str(nbuf),
    }
    meta.update(extra_meta)
    w.write(f"names__{model_name}.safetensors", {"count": np.array(count, dtype=np.int64)}, meta)
    return count, nbuf


def names_cases(w, log):
    for name in TV_MODELS:
        ctor = getattr(tvm, name, None)
        if ctor is None:
            log(f"names: torchvision {torchvision.__version__} has no {name}; skipped")
            continue
        model = ctor(weights=None)
        count, nbuf = names_file(w, name, model, {"in_channels": "3", "num_classes": "1000"})
        log(f"names: {name:18s} {count:>11,d} parameters, {nbuf:>7,d} buffer elements")
        del model
    model = d2l_resnet18(1, 10)
    count, nbuf = names_file(w, "d2l_resnet18", model, {"in_channels": "1", "num_classes": "10"})
    log(f"names: {'d2l_resnet18':18s} {count:>11,d} parameters, {nbuf:>7,d} buffer elements")
    assert count == 11_178_378, count
    assert nbuf == 7_808, nbuf


# ---------------------------------------------------------------------------
# 2. fill check
# ---------------------------------------------------------------------------


def fill_cases(w, log):
    a = filled("a.weight", "weight", (3, 2, 1, 1))
    rv = filled("layer1.0.bn1.running_var", "running_var", (4,))
    # Cross-check the vectorised fill against the scalar reference.
    ref_a = [np.float32(fill_value("a.weight", i, math.sqrt(3.0 / 2))) for i in range(6)]
    ref_rv = [np.float32(1.0 + fill_value("layer1.0.bn1.running_var", i, 0.25)) for i in range(4)]
    assert a.flatten().numpy().tobytes() == np.array(ref_a, dtype=np.float32).tobytes()
    assert rv.numpy().tobytes() == np.array(ref_rv, dtype=np.float32).tobytes()
    for name in ["conv1.weight", "0.0.weight", "layer4.2.bn3.running_mean", "fc.bias"]:
        for scale in (1.0, 0.1, math.sqrt(3.0 / 147)):
            v = fill_array(name, 1000, scale)
            for i in (0, 1, 2, 17, 999):
                assert v[i] == fill_value(name, i, scale), (name, i)
    w.write(
        "fill__check.safetensors",
        {"a.weight": a, "layer1.0.bn1.running_var": rv},
        {
            "a.weight": "conv/linear weight rule: fill_value(name, i, sqrt(3/fan_in)), fan_in=2",
            "layer1.0.bn1.running_var": "running_var rule: 1 + fill_value(name, i, 0.25)",
            "fnv1a64.a.weight": f"0x{fnv1a64('a.weight'):016x}",
        },
    )
    log(
        "fill: a.weight[0:3] = "
        + ", ".join(f"{float(x)!r} (0x{np.float32(x).view(np.uint32):08x})" for x in a.flatten()[:3].numpy())
    )
    log("fill: a.weight (all) = " + ", ".join(repr(float(x)) for x in a.flatten().numpy()))
    log("fill: layer1.0.bn1.running_var = " + ", ".join(repr(float(x)) for x in rv.numpy()))
    log(f"fill: fnv1a64('a.weight') = 0x{fnv1a64('a.weight'):016x}")


# ---------------------------------------------------------------------------
# 3./4. block fixtures
# ---------------------------------------------------------------------------


def block_cases():
    """(case, block kind, constructor, metadata, input shape)."""
    cases = []

    def d2l_res(case, cin, num, use1x1, strides, shape):
        meta = {
            "in_channels": cin,
            "num_channels": num,
            "use_1x1conv": flag(use1x1),
            "strides": strides,
        }
        cases.append((case, "d2l_residual", lambda: Residual(cin, num, use1x1, strides), meta, shape))

    def tv_block(case, kind, cin, planes, stride, groups, base_width, shape):
        cls = BasicBlock if kind == "basic_block" else Bottleneck
        out = planes * cls.expansion
        has_ds = stride != 1 or cin != out

        def make():
            ds = nn.Sequential(conv1x1(cin, out, stride), nn.BatchNorm2d(out)) if has_ds else None
            return cls(cin, planes, stride=stride, downsample=ds, groups=groups, base_width=base_width)

        meta = {
            "in_channels": cin,
            "inplanes": cin,
            "planes": planes,
            "stride": stride,
            "downsample": flag(has_ds),
            "groups": groups,
            "base_width": base_width,
            "width_per_group": base_width,
            "expansion": cls.expansion,
            "out_channels": out,
        }
        if kind == "bottleneck":
            meta["width"] = int(planes * (base_width / 64.0)) * groups
        cases.append((case, kind, make, meta, shape))

    def resnext(case, cin, num, groups, bot_mul, use1x1, strides, shape):
        bot = int(round(num * bot_mul))
        meta = {
            "in_channels": cin,
            "num_channels": num,
            "groups": groups,
            "conv2_groups": groups,
            "bot_mul": repr(float(bot_mul)),
            "bot_channels": bot,
            "use_1x1conv": flag(use1x1),
            "strides": strides,
        }
        cases.append(
            (case, "resnext_block", lambda: ResNeXtBlock(cin, num, groups, bot_mul, use1x1, strides), meta, shape)
        )

    def preact(case, cin, cout, stride, shape):
        meta = {
            "in_channels": cin,
            "out_channels": cout,
            "stride": stride,
            "shortcut": flag(stride != 1 or cin != cout),
        }
        cases.append((case, "preact_block", lambda: PreActBlock(cin, cout, stride), meta, shape))

    d2l_res("d2l_residual_identity", 3, 3, False, 1, (2, 3, 6, 6))
    d2l_res("d2l_residual_1x1conv_s2", 3, 6, True, 2, (2, 3, 6, 6))
    tv_block("basic_block_identity", "basic_block", 4, 4, 1, 1, 64, (2, 4, 6, 6))
    tv_block("basic_block_downsample_s2", "basic_block", 4, 8, 2, 1, 64, (2, 4, 5, 7))
    tv_block("bottleneck_identity", "bottleneck", 16, 4, 1, 1, 64, (2, 16, 6, 6))
    tv_block("bottleneck_downsample_s2", "bottleneck", 8, 4, 2, 1, 64, (2, 8, 5, 7))
    tv_block("bottleneck_resnext_g2_w8_s2", "bottleneck", 16, 8, 2, 2, 8, (2, 16, 6, 6))
    resnext("resnext_block_g2", 8, 8, 2, 1, False, 1, (2, 8, 5, 5))
    resnext("resnext_block_g4_bm0p5_1x1conv_s2", 4, 8, 4, 0.5, True, 2, (2, 4, 6, 6))
    preact("preact_block_identity", 4, 4, 1, (2, 4, 6, 6))
    preact("preact_block_shortcut_s2", 4, 8, 2, (2, 4, 5, 7))
    return cases


def forward_backward(make, shape, mode, seed, dtype=torch.float32):
    """Build, fill, forward, backward with loss = (output * grad_output).sum().

    The random input and upstream gradient are drawn in float32 (then cast),
    so a float64 rerun sees exactly the same numbers as the float32 run.
    """
    torch.manual_seed(seed)
    module = make()
    fill_module(module)
    module.train(mode == "train")
    module.to(dtype)
    x = torch.randn(*shape).to(dtype).requires_grad_(True)
    y = module(x)
    gy = torch.randn(y.shape).to(dtype)
    (y * gy).sum().backward()
    return module, x, y, gy


def rel_err(t32, t64):
    """max |float32 result - float64 result| / max |float64 result|."""
    t32, t64 = t32.detach().double(), t64.detach().double()
    scale = t64.abs().max().item()
    return (t32 - t64).abs().max().item() / scale if scale > 0 else math.inf


def is_zero_grad(t64):
    # e.g. the bias of a conv followed by a train-mode BatchNorm: exactly 0 in
    # exact arithmetic, rounding noise (~1e-8) in float32, ~1e-17 in float64.
    return t64.detach().abs().max().item() < 1e-12


def fp64_hint(pairs):
    """Metadata text: one line per compared tensor, "tensor:<max abs diff / max
    abs>", or "tensor:zero,abs=<max abs float32 value>" where the exact value
    is 0."""
    lines = []
    for k, (a, b) in pairs.items():
        if is_zero_grad(b):
            lines.append(f"{k}:zero,abs={a.detach().abs().max().item():.3g}")
        else:
            lines.append(f"{k}:{rel_err(a, b):.3g}")
    return "\n".join(lines)


def block_fixtures(w, log):
    for case, kind, make, meta, shape in block_cases():
        for mode in ("train", "eval"):
            tag = f"block__{case}_{mode}"
            # The fill does not depend on the seed; input and grad_output do.
            state_before = {}
            fill_probe = make()
            fill_module(fill_probe)
            for k, v in fill_probe.state_dict().items():
                if not k.endswith("num_batches_tracked"):
                    state_before[k] = v.clone()
            block, x, y, gy = forward_backward(make, shape, mode, seed_for(tag))
            b64, x64, y64, _ = forward_backward(make, shape, mode, seed_for(tag), torch.float64)

            tensors = {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad}
            tensors.update(state_before)
            cmp = {"output": (y, y64), "grad_input": (x.grad, x64.grad)}
            params = list(block.named_parameters())
            p64 = dict(b64.named_parameters())
            for n, p in params:
                tensors[f"grad.{n}"] = p.grad
                cmp[f"grad.{n}"] = (p.grad, p64[n].grad)
            bufs = listed_buffers(block)
            bufs64 = dict(b64.named_buffers())
            for n, b in bufs:
                tensors[f"after.{n}"] = b
                cmp[f"after.{n}"] = (b, bufs64[n])
            m = {"block": kind, "case": case, "mode": mode}
            m.update(meta)
            m["input_shape"] = shape_str(shape)
            m["output_shape"] = shape_str(y.shape)
            m["bn_eps"] = "1e-05"
            m["bn_momentum"] = "0.1"
            m["parameters"] = ",".join(n for n, _ in params)
            m["buffers"] = ",".join(n for n, _ in bufs)
            m["fp64_rel_err"] = fp64_hint(cmp)
            w.write(f"{tag}.safetensors", tensors, m)
            worst = max(rel_err(a, b) for a, b in cmp.values() if not is_zero_grad(b))
            zeros = [k for k, (_, b) in cmp.items() if is_zero_grad(b)]
            log(
                f"block: {tag:48s} in {shape_str(shape):9s} out {shape_str(y.shape):9s} "
                f"|y|max {y.abs().max().item():.3g} |dx|max {x.grad.abs().max().item():.3g} "
                f"f32-vs-f64 worst {worst:.1e}" + (f"; exactly-zero: {','.join(zeros)}" if zeros else "")
            )


# ---------------------------------------------------------------------------
# 5. model fixtures
# ---------------------------------------------------------------------------


def model_specs():
    """(name, constructor, in_channels, classes, input shape per mode, checked
    gradients, [stem BN, last BN]).

    Train mode uses 64x64 inputs, not 32x32: both nets downsample by 32, so a
    32x32 batch of 2 leaves the last stage at 1x1, and BatchNorm over 2 values
    per channel is degenerate (output +-gamma + beta, gradient all
    cancellation). Measured float32-vs-float64 discrepancy at 32x32, train:
    d2l_resnet18 output 1.6e-3 / grad_input 3e-2, resnet50 output 0.41 (!)
    / grad_input 6. At 64x64 (2x2 last stage): d2l ~3e-6, resnet50 output
    ~7e-5 but gradients still ~1e-2 (train-mode BN nets are chaotic at init;
    the same at 96, 128, 160 and with batch 4 or 8). Each fixture records the
    measured figures in its "fp64_rel_err" metadata.
    """
    d2l_checked = ["0.0.weight"]
    for s in ("b2", "b3", "b4", "b5"):
        d2l_checked += [f"{s}.0.conv1.weight", f"{s}.0.bn1.weight"]
    d2l_checked += ["last.2.weight", "last.2.bias"]
    tv_checked = ["conv1.weight"]
    for s in ("layer1", "layer2", "layer3", "layer4"):
        tv_checked += [f"{s}.0.conv1.weight", f"{s}.0.bn1.weight"]
    tv_checked += ["fc.weight", "fc.bias"]
    return [
        ("d2l_resnet18", lambda: d2l_resnet18(1, 10), 1, 10,
         {"train": (2, 1, 64, 64), "eval": (2, 1, 32, 32)}, d2l_checked, ["0.1", "b5.1.bn2"]),
        ("resnet50", lambda: tvm.resnet50(weights=None, num_classes=10), 3, 10,
         {"train": (2, 3, 64, 64), "eval": (2, 3, 32, 32)}, tv_checked, ["bn1", "layer4.2.bn3"]),
    ]


def stored_grad(g, cap=GRAD_CAP_ELEMENTS):
    """Whole tensor if small, else its leading rows (dim 0) up to the cap."""
    row = int(np.prod(g.shape[1:], dtype=np.int64)) if g.dim() > 1 else 1
    rows = max(1, cap // row)
    return g if rows >= g.shape[0] else g[:rows]


def model_fixtures(w, log):
    for name, make, cin, classes, shapes, checked, bn_names in model_specs():
        for mode in ("train", "eval"):
            tag = f"model__{name}_{mode}"
            shape = shapes[mode]
            model, x, y, gy = forward_backward(make, shape, mode, seed_for(tag))
            m64, x64, y64, gy64 = forward_backward(make, shape, mode, seed_for(tag), torch.float64)
            # The float64 run must see exactly the float32 input, upstream
            # gradient and weights, cast (the f64.* tensors are its results).
            assert torch.equal(x64.detach(), x.detach().double()), tag
            assert torch.equal(gy64, gy.double()), tag
            # (Parameters are not updated; running stats are, in train mode.)
            same = list(model.named_parameters())
            if mode == "eval":
                same += listed_buffers(model)
            state64 = m64.state_dict()
            for n, a in same:
                b = state64[n]
                assert b.dtype == torch.float64 and torch.equal(b, a.detach().double()), (tag, n)
            modules = dict(model.named_modules())
            modules64 = dict(m64.named_modules())
            # The last BatchNorm2d in module order must be the one we record.
            last_bn = [n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d)][-1]
            assert last_bn == bn_names[1], (last_bn, bn_names)

            params = dict(model.named_parameters())
            params64 = dict(m64.named_parameters())
            tensors = {"input": x, "output": y, "grad_output": gy, "grad_input": x.grad}
            # The float64 results, as F64, under the same names prefixed "f64.".
            tensors["f64.output"] = y64
            tensors["f64.grad_input"] = x64.grad
            cmp = {"output": (y, y64), "grad_input": (x.grad, x64.grad)}
            slices = []
            slices64 = []
            for p in checked:
                g = params[p].grad
                s = stored_grad(g)
                tensors[f"grad.{p}"] = s
                g64 = g.double()
                tensors[f"gradstats.{p}"] = torch.stack([g64.sum(), g64.abs().sum(), (g64 * g64).sum()])
                slices.append(f"{p}:{s.shape[0]}/{g.shape[0]}")
                # Leading rows of the float64 gradient: a prefix of the rows
                # stored for grad.<p>.
                s64 = stored_grad(params64[p].grad, min(F64_GRAD_CAP_ELEMENTS, s.numel()))
                assert s64.dtype == torch.float64 and s64.shape[0] <= s.shape[0], (tag, p)
                tensors[f"f64.grad.{p}"] = s64
                slices64.append(f"{p}:{s64.shape[0]}/{g.shape[0]}")
                cmp[f"grad.{p}"] = (g, params64[p].grad)
            after = []
            if mode == "train":
                for bn in bn_names:
                    for b in ("running_mean", "running_var"):
                        tensors[f"after.{bn}.{b}"] = getattr(modules[bn], b)
                        tensors[f"f64.after.{bn}.{b}"] = getattr(modules64[bn], b)
                        cmp[f"after.{bn}.{b}"] = (getattr(modules[bn], b), getattr(modules64[bn], b))
                        after.append(f"{bn}.{b}")
            meta = {
                "model": name,
                "in_channels": cin,
                "num_classes": classes,
                "mode": mode,
                "input_shape": shape_str(shape),
                "checked_grads": ",".join(checked),
                "grad_rows": ",".join(slices),
                "f64_grad_rows": ",".join(slices64),
                "checked_buffers": ",".join(after),
                "bn_eps": "1e-05",
                "bn_momentum": "0.1",
                "fp64_rel_err": fp64_hint(cmp),
            }
            w.write(f"{tag}.safetensors", tensors, meta)
            log(
                f"model: {tag:28s} in {shape_str(shape)} out {shape_str(y.shape)} "
                f"|y|max {y.abs().max().item():.4g} |dx|max {x.grad.abs().max().item():.4g}"
            )
            log(f"model:   output[0,:4] = {[round(v, 5) for v in y[0, :4].tolist()]}")
            log("model:   float32 vs float64 (max abs diff / max abs): "
                + ", ".join(f"{k} {rel_err(a, b):.1e}" for k, (a, b) in cmp.items()))


# ---------------------------------------------------------------------------
# self-checks
# ---------------------------------------------------------------------------


def d2l_self_check(log):
    net = d2l_resnet18(1, 10)
    nparams = sum(p.numel() for p in net.parameters())
    nbuf = sum(b.numel() for _, b in listed_buffers(net))
    log(f"d2l_resnet18: {nparams:,d} parameters, {nbuf:,d} running mean/var values")
    assert nparams == 11_178_378 and nbuf == 7_808
    net.eval()
    x = torch.zeros(1, 1, 96, 96)
    expected = {
        "0": (1, 64, 24, 24),
        "b2": (1, 64, 24, 24),
        "b3": (1, 128, 12, 12),
        "b4": (1, 256, 6, 6),
        "b5": (1, 512, 3, 3),
        "last": (1, 10),
    }
    with torch.no_grad():
        for n, child in net.named_children():
            x = child(x)
            log(f"d2l_resnet18: {n:5s} output shape {tuple(x.shape)}")
            assert tuple(x.shape) == expected[n]
    # Registration order of the Residual blocks (defines parameter order).
    assert [n for n, _ in net.b3[0].named_children()] == ["conv1", "conv2", "conv3", "bn1", "bn2"]
    r = ResNeXtBlock(4, 8, 4, 0.5, True, 2)
    order = [n for n, _ in r.named_children()]
    assert order == ["conv1", "conv2", "conv3", "bn1", "bn2", "bn3", "conv4", "bn4"], order
    log(f"resnext_block registration order: {', '.join(order)}")
    p = PreActBlock(4, 8, 2)
    assert [n for n, _ in p.named_children()] == ["bn1", "conv1", "bn2", "conv2", "shortcut"]


def main():
    args = setup(__doc__.splitlines()[0])

    log = print
    d2l_self_check(log)
    w = FixtureWriter(args.out, GENERATOR, extra_meta={"torchvision_version": torchvision.__version__})
    fill_cases(w, log)
    names_cases(w, log)
    block_fixtures(w, log)
    model_fixtures(w, log)

    return finish(w, PREFIXES)


if __name__ == "__main__":
    sys.exit(main())
