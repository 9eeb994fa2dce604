#!/usr/bin/env python3
"""PyTorch reference for bench_conv2d: same arguments, same output form.

Run with Debian's python3-torch: /usr/bin/python3 benchmarks/bench_conv2d_torch.py
"""
import statistics
import sys
import time

import torch

import os

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))  # Debian's build defaults to 1 here

args = [int(a) for a in sys.argv[1:]]
n, c, s, oc, k, stride, reps = (args + [128, 64, 56, 64, 3, 1, 5][len(args):])[:7]
conv = torch.nn.Conv2d(c, oc, k, stride=stride, padding=k // 2, bias=False)
x = torch.randn(n, c, s, s)
out = (s + 2 * (k // 2) - k) // stride + 1
flops = 2.0 * n * oc * out * out * c * k * k
with torch.no_grad():
    conv(x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        conv(x)
        times.append(time.perf_counter() - t0)
t = statistics.median(times)
print(f"case=conv{k}x{k}_fwd batch={n} in={c}x{s}x{s} out={oc} stride={stride} "
      f"threads={torch.get_num_threads()} ms={t * 1e3:.2f} gflops={flops / t * 1e-9:.1f} (pytorch {torch.__version__})")
