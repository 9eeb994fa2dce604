#!/usr/bin/env python3
"""torchvision's input pipeline, timed as bench_image_pipeline times rescnn's.

  /usr/bin/python3 benchmarks/torch_image_pipeline_bench.py --data DIR --size 128 --workers 1 [--batch 32] [--epochs 3]
  case=pipeline_train size=128x128 workers=1 batch=32 images=2000 imgs_per_s=... library=torchvision

torchvision.datasets.ImageFolder (PIL decoding, .convert("RGB")) with
RandomResizedCrop(size) + RandomHorizontalFlip + ToTensor + Normalize(ImageNet),
the train_images --size S transform, through DataLoader(num_workers=W,
shuffle=True, persistent_workers=True). The first epoch is a warm-up (worker
start-up, page cache); the others are timed. Each worker runs with one torch
thread, as DataLoader sets it.
"""
import argparse
import time

import torch
import torchvision.datasets as datasets
import torchvision.transforms as T


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    if a.epochs < 2:
        p.error("--epochs must be at least 2 (the first is a warm-up)")

    transform = T.Compose([T.RandomResizedCrop(a.size), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(a.data, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         persistent_workers=a.workers > 0)
    checksum = 0.0

    def epoch():
        nonlocal checksum
        for x, _ in loader:
            checksum += float(x[0, 0, 0, 0])

    epoch()
    t0 = time.perf_counter()
    for _ in range(a.epochs - 1):
        epoch()
    seconds = time.perf_counter() - t0
    print(f"case=pipeline_train size={a.size}x{a.size} workers={a.workers} batch={a.batch} images={len(dataset)} "
          f"imgs_per_s={len(dataset) * (a.epochs - 1) / seconds:.1f} library=torchvision", flush=True)


if __name__ == "__main__":
    main()
