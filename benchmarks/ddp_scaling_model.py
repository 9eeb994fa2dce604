#!/usr/bin/env python3
"""The scaling model of benchmarks/results/distributed.md: data-parallel
training of ResNet-18 and ResNet-50 over 2..64 hosts with ring allreduce.

  python3 benchmarks/ddp_scaling_model.py --resnet18-imgs-per-s 9.1 --resnet50-imgs-per-s 3.2 --batch 32

Per step every host allreduces all float32 gradients (4 bytes per trainable
parameter, torchvision's counts). A ring allreduce over p hosts sends and
receives 2 (p - 1) / p of the bytes per host, in 2 (p - 1) messages per
bucket, so its time is

    t_comm = 2 (p - 1) / p * bytes / bandwidth + 2 (p - 1) * buckets * latency

(latency 30 us per message: TCP over Ethernet; bandwidth is the link's
nominal rate, so these times are lower bounds). A host's compute per step
is t_compute = batch / (its measured training images/s); backward is about
two thirds of it, and DDP overlaps the allreduce with backward, so

    step = t_compute + max(0, t_comm - hidden * t_backward)

with `hidden` the fraction of backward that communication can use (the
measured overlap of bench_ddp; 1 = perfect). Efficiency = t_compute / step:
the speed-up over one host is p times it. The last columns give the
break-even speed: the training images/s per host above which the
allreduce no longer fits behind backward (batch * 2/3 * hidden / t_comm),
so a faster host (a GPU) sees its efficiency fall below 1.
"""
import argparse

PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032}  # torchvision, 1000 classes
LATENCY_S = 30e-6
BUCKET_BYTES = 25 * 2**20


def allreduce_seconds(nbytes, hosts, gbit_per_s):
    buckets = max(1, -(-nbytes // BUCKET_BYTES))
    bandwidth = gbit_per_s * 1e9 / 8
    return 2 * (hosts - 1) / hosts * nbytes / bandwidth + 2 * (hosts - 1) * buckets * LATENCY_S


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resnet18-imgs-per-s", type=float, required=True, help="one host's training images/s")
    ap.add_argument("--resnet50-imgs-per-s", type=float, required=True, help="one host's training images/s")
    ap.add_argument("--batch", type=int, default=32, help="images per host per step")
    ap.add_argument("--hidden", type=float, default=1.0, help="fraction of backward the allreduce can overlap")
    a = ap.parse_args()
    rates = {"resnet18": a.resnet18_imgs_per_s, "resnet50": a.resnet50_imgs_per_s}
    links = (10, 25, 100)
    print(f"| model | MB per step | hosts | " + " | ".join(f"allreduce ms @{g} Gb/s" for g in links) + " | "
          + " | ".join(f"efficiency @{g} Gb/s" for g in links) + " | "
          + " | ".join(f"break-even img/s @{g} Gb/s" for g in links) + " |")
    print("|---|---|---|" + "---|" * (3 * len(links)))
    for model, params in PARAMS.items():
        nbytes = 4 * params
        compute = a.batch / rates[model]
        backward = 2 / 3 * compute
        for hosts in (2, 4, 8, 16, 32, 64):
            times = [allreduce_seconds(nbytes, hosts, g) for g in links]
            eff = [compute / (compute + max(0.0, t - a.hidden * backward)) for t in times]
            print(f"| {model} | {nbytes / 2**20:.1f} | {hosts} | " + " | ".join(f"{1e3 * t:.0f}" for t in times)
                  + " | " + " | ".join(f"{e:.2f}" for e in eff) + " | "
                  + " | ".join(f"{a.batch * 2 / 3 * a.hidden / t:.0f}" for t in times) + " |")


if __name__ == "__main__":
    main()
