#!/usr/bin/env python3
"""An image folder for the input-pipeline benchmarks, made of real photographs.

  /usr/bin/python3 benchmarks/make_image_bench_folder.py OUT [--images 1000] [--seed 0]

Writes OUT/<class>/<i>.jpg (and every tenth image as .png): two classes,
each image a random crop of one of python3-skimage's photographs (astronaut,
chelsea, coffee, motorcycle, rocket, hubble_deep_field, retina) resized to
ImageNet's typical 500x375 or 375x500, JPEG quality 90. Deterministic for a
seed, so rescnn and torchvision read the same files.
"""
import argparse
import os
import random

from PIL import Image

PHOTO_DIR = "/usr/lib/python3/dist-packages/skimage/data"
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg",
          "hubble_deep_field.jpg", "retina.jpg"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    photos = [Image.open(os.path.join(PHOTO_DIR, name)).convert("RGB") for name in PHOTOS]
    for c in ("a", "b"):
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    for i in range(a.images):
        photo = rng.choice(photos)
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        size = (500, 375) if cw >= ch else (375, 500)
        image = photo.crop((left, top, left + cw, top + ch)).resize(size, Image.BILINEAR)
        stem = os.path.join(a.out, "ab"[i % 2], f"{i:05d}")
        if i % 10 == 9:
            image.save(stem + ".png")
        else:
            image.save(stem + ".jpg", quality=90)


if __name__ == "__main__":
    main()
