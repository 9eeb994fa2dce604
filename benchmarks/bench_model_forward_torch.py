#!/usr/bin/env python3
"""PyTorch twin of bench_model_forward (torchvision models, eval, no_grad).

/usr/bin/python3 benchmarks/bench_model_forward_torch.py [model batch channels size reps]
"""
import statistics
import sys
import time

import os

import torch
import torchvision

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))  # Debian's build defaults to 1 here

args = sys.argv[1:]
name = args[0] if args else "resnet50"
n, c, s, reps = ([int(a) for a in args[1:]] + [8, 3, 224, 5][len(args[1:]):])[:4]
model = getattr(torchvision.models, name)(num_classes=1000)
if c != 3:
    model.conv1 = torch.nn.Conv2d(c, 64, 7, 2, 3, bias=False)
model.eval()
x = torch.randn(n, c, s, s)
with torch.no_grad():
    model(x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
t = statistics.median(times)
print(f"case={name}_infer batch={n} size={s}x{s} threads={torch.get_num_threads()} ms={t * 1e3:.1f} "
      f"imgs_per_s={n / t:.1f} (pytorch {torch.__version__})")
