#!/usr/bin/env python3
"""PyTorch's throughput on the work of bench_resnet: the project's reference.

d2l.ai's ResNet-18 (chapter 8.6: 1 input channel, 7x7 stem, stages
((2,64),(2,128),(2,256),(2,512)), global average pool, 10 classes) timed
as training steps (forward, cross-entropy, backward, SGD update) and as
inference, on random data of Fashion-MNIST's shape. It also prints the
process's peak resident memory, so that the memory of one case can be read
off a process that runs only that case.

--model resnet50 (or any torchvision ResNet/ResNeXt name) times torchvision's
model instead, with a 1-channel stem as bench_resnet's `--model` models have.

On a GPU PyTorch runs at its best unless told otherwise: cudnn.benchmark on
(as rescnn's cudnnFind), TF32 for convolutions as PyTorch's default
(--no-tf32: full fp32 everywhere; --tf32: matmuls too), and --amp bf16|fp16 for
autocast mixed precision.

Prints one line per case:
  case=resnet18_train batch=128 size=28x28 threads=2 imgs_per_s=... peak_rss_mb=... device=cpu precision=fp32
Run with a python3 that has torch (Debian: /usr/bin/python3 with python3-torch).
Usage: torch_resnet_bench.py [--threads N] [--size 28] [--batch 128]
       [--steps 5] [--device cpu|cuda] [--cases train,infer] [--channels-last]
       [--model d2l_resnet18|resnet50|...] [--tf32|--no-tf32] [--amp bf16|fp16]
"""
import argparse
import resource
import time

import torch
from torch import nn
from torch.nn import functional as F


class Residual(nn.Module):
    def __init__(self, cin, cout, use_1x1conv=False, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv3 = nn.Conv2d(cin, cout, 1, stride) if use_1x1conv else None
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def resnet18(num_classes=10, arch=((2, 64), (2, 128), (2, 256), (2, 512))):
    layers = [nn.Conv2d(1, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, (n, c) in enumerate(arch):
        for j in range(n):
            first = j == 0 and i != 0
            layers.append(Residual(cin, c, use_1x1conv=first, stride=2 if first else 1))
            cin = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def torchvision_model(name, num_classes=10):
    import torchvision
    model = getattr(torchvision.models, name)(num_classes=num_classes)
    # One input channel, as bench_resnet's models (in_channels = 1).
    model.conv1 = nn.Conv2d(1, model.conv1.out_channels, 7, 2, 3, bias=False)
    return model


def bench(model, x, y, train, steps, sync, amp_dtype=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train(train)
    # fp16 needs loss scaling to train; bf16 (float's range) does not.
    scaler = torch.cuda.amp.GradScaler(enabled=amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            with torch.no_grad(), autocast():
                model(x)

    step(); step(); sync()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return x.shape[0] * steps / (time.perf_counter() - t)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", default="train,infer")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--model", default="d2l_resnet18")
    tf32 = p.add_mutually_exclusive_group()
    tf32.add_argument("--tf32", dest="tf32", action="store_const", const="all",
                      help="TF32 for convolutions and matmuls")
    tf32.add_argument("--no-tf32", dest="tf32", action="store_const", const="none", help="full fp32 everywhere")
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None,
                   help="autocast mixed precision (fp16 trains with a GradScaler)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    precision = "fp32"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # PyTorch's defaults: TF32 convolutions, fp32 matmuls.
        torch.backends.cudnn.allow_tf32 = a.tf32 != "none"
        torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "all"
        precision = {"none": "fp32", "all": "tf32"}.get(a.tf32, "tf32conv")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    if amp_dtype is not None:
        precision = "amp_" + a.amp
    make_model = resnet18 if a.model == "d2l_resnet18" else (lambda: torchvision_model(a.model))
    case_model = "resnet18" if a.model == "d2l_resnet18" else a.model
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    x = torch.randn(a.batch, 1, a.size, a.size, device=dev).to(memory_format=mf)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    for case in a.cases.split(","):
        model = make_model().to(dev).to(memory_format=mf)
        r = bench(model, x, y, case == "train", a.steps, sync, amp_dtype)
        print(f"case={case_model}_{case} batch={a.batch} size={a.size}x{a.size} "
              f"threads={a.threads} imgs_per_s={r:.1f} peak_rss_mb={peak_rss_mb():.0f} device={dev.type} "
              f"precision={precision} layout={'channels_last' if a.channels_last else 'nchw'}", flush=True)


if __name__ == "__main__":
    main()
