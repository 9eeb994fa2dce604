#!/usr/bin/env python3
"""Image files and PIL's decoding of them, for test_image_codecs and test_image_folder.

  /usr/bin/python3 tests/golden/make_image_golden.py [DIR]

Writes into DIR (default tests/golden/fixtures/images):
  codecs/<kind>.<png|jpg>   one small odd-sized image (13x9) of every kind the
                            decoders handle: PNG gray 1/4/8/16-bit, gray+alpha,
                            RGB 8/16-bit, RGBA, palette with and without tRNS,
                            Adam7-interlaced RGB; JPEG baseline RGB, progressive
                            RGB, gray, 4:2:0 subsampled
  codecs/<kind>.rgb.ppm     what torchvision's loader makes of it:
                            PIL Image.open(f).convert("RGB"), as binary PPM
  codecs/<kind>.l.pgm       PIL .convert("L"), as binary PGM (16-bit gray: the
                            high byte, not PIL's clipping; see below)
  bad/                      files that must be refused: cmyk.jpg, truncated.png,
                            truncated.jpg, corrupt.png (a bad IDAT CRC),
                            corrupt.jpg (garbage entropy data), huge.png (a header
                            claiming 50,000x50,000), empty.png, text.jpg
  transforms/manifest.txt   torchvision's transforms of codecs/rgb8.png (13x9 RGB),
                            codecs/gray8.png and a 39x27 RGB image, one line per
                            case: "<kind> <source> <parameters...> <golden>":
                              resize S: transforms.Resize(S) (shorter side)
                              resize_to W H: F.resize(img, [H, W])
                              center_crop H W: transforms.CenterCrop((H, W))
                              resized_crop T L H W S: F.resized_crop(img, T, L, H, W, [S, S])
                              normalize: ToTensor + Normalize(ImageNet), float32 CHW
                            (bilinear with antialias: PIL's resize, torchvision 0.14)
  fashion/<class>/<i>.png|jpg  Fashion-MNIST test images 0.. of three classes
                            (gray PNG: the IDX pixels exactly; JPEG quality 95),
                            with fashion_pixels.pgm: the PNGs' pixels in
                            ImageFolder's order, stacked
  photos/manifest.txt       real photographs from Debian's python3-skimage
                            (PHOTO_DIR, skimage/data), one line per photo:
                            "<file> <file crc32> <width> <height> <crc32 of
                            PIL's .convert("RGB")> <crc32 of Resize(128) +
                            CenterCrop(112) of that, torchvision's eval
                            transform>", zlib's CRC-32 as 8 hex digits; and
                            "truncated <file>" for a photo PIL refuses
PNG kinds PIL cannot write (1/4/16-bit, 16-bit RGB, interlaced) come from the
minimal PNG writer below; PIL decodes them for the goldens all the same.
"""
import gzip
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

W, H = 13, 9


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width, height, depth, color, rows, interlace=False, palette=None, trns=None):
    """rows: a function (x0, dx, y) -> the filtered-free scanline bytes of the
    pixels x0, x0+dx, ... of row y (filter type 0 is prepended here)."""
    raw = b""
    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            if x0 >= width or y0 >= height:
                continue
            for y in range(y0, height, dy):
                raw += b"\x00" + rows(x0, dx, y)
    else:
        for y in range(height):
            raw += b"\x00" + rows(0, 1, y)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette is not None:
        out += chunk(b"PLTE", palette)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def pack_bits(values, depth):
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc = (acc << depth) | v
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def save_goldens(path_stem, image_path):
    with Image.open(image_path) as im:
        im.convert("RGB").save(path_stem + ".rgb.ppm")
        im.convert("L").save(path_stem + ".l.pgm")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures", "images")
    codecs, bad, fashion = (os.path.join(out, d) for d in ("codecs", "bad", "fashion"))
    for d in (codecs, bad, fashion):
        os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(17)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[:, :, 0] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]  # some structure for the JPEGs
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    gray = rng.integers(0, 256, (H, W), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)

    written = {}
    Image.fromarray(gray, "L").save(os.path.join(codecs, "gray8.png"))
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(os.path.join(codecs, "gray_alpha.png"))
    Image.fromarray(rgb, "RGB").save(os.path.join(codecs, "rgb8.png"))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(os.path.join(codecs, "rgba8.png"))
    pal = Image.fromarray(rgb, "RGB").quantize(colors=16)
    pal.save(os.path.join(codecs, "palette.png"))
    pal.save(os.path.join(codecs, "palette_trns.png"), transparency=3)
    written["gray1.png"] = png_bytes(W, H, 1, 0, lambda x0, dx, y: pack_bits([gray[y, x] >> 7 for x in range(x0, W, dx)], 1))
    written["gray4.png"] = png_bytes(W, H, 4, 0, lambda x0, dx, y: pack_bits([gray[y, x] >> 4 for x in range(x0, W, dx)], 4))
    written["gray16.png"] = png_bytes(W, H, 16, 0, lambda x0, dx, y: b"".join(
        struct.pack(">H", int(gray16[y, x])) for x in range(x0, W, dx)))
    written["rgb16.png"] = png_bytes(W, H, 16, 2, lambda x0, dx, y: b"".join(
        struct.pack(">HHH", *map(int, rgb16[y, x])) for x in range(x0, W, dx)))
    written["rgb8_interlaced.png"] = png_bytes(W, H, 8, 2, lambda x0, dx, y: b"".join(
        bytes(rgb[y, x]) for x in range(x0, W, dx)), interlace=True)
    for name, data in written.items():
        with open(os.path.join(codecs, name), "wb") as f:
            f.write(data)
    big = Image.fromarray(np.kron(rgb, np.ones((3, 3, 1), dtype=np.uint8)), "RGB")  # 39x27: several MCUs
    big.save(os.path.join(codecs, "baseline.jpg"), quality=90, subsampling=0)
    big.save(os.path.join(codecs, "subsampled420.jpg"), quality=90, subsampling=2)
    big.save(os.path.join(codecs, "progressive.jpg"), quality=90, progressive=True)
    Image.fromarray(np.kron(gray, np.ones((3, 3), dtype=np.uint8)), "L").save(os.path.join(codecs, "gray.jpg"), quality=90)
    for name in sorted(os.listdir(codecs)):
        if name.endswith((".png", ".jpg")):
            save_goldens(os.path.join(codecs, os.path.splitext(name)[0]), os.path.join(codecs, name))
    # PIL opens 16-bit gray as mode "I" and its convert("L") clips every value
    # above 255 to white (a known Pillow quirk; its 16-bit RGB keeps the high
    # byte). rescnn keeps the high byte for gray too, as torchvision.io does:
    high = (gray16 >> 8).astype(np.uint8)
    Image.fromarray(high, "L").save(os.path.join(codecs, "gray16.l.pgm"))
    Image.fromarray(high, "L").convert("RGB").save(os.path.join(codecs, "gray16.rgb.ppm"))

    # Files to refuse.
    Image.fromarray(rgb, "RGB").convert("CMYK").save(os.path.join(bad, "cmyk.jpg"))
    rgb_png = open(os.path.join(codecs, "rgb8.png"), "rb").read()
    open(os.path.join(bad, "truncated.png"), "wb").write(rgb_png[: len(rgb_png) // 2])
    jpg = open(os.path.join(codecs, "baseline.jpg"), "rb").read()
    open(os.path.join(bad, "truncated.jpg"), "wb").write(jpg[: len(jpg) * 2 // 3])
    corrupt = bytearray(rgb_png)
    idat = corrupt.find(b"IDAT")
    corrupt[idat + 8] ^= 0xFF  # a byte of the compressed data: the chunk's CRC no longer matches
    open(os.path.join(bad, "corrupt.png"), "wb").write(bytes(corrupt))
    corrupt_jpg = bytearray(jpg)
    sos = corrupt_jpg.find(b"\xff\xda")
    for i in range(sos + 20, len(corrupt_jpg) - 2):
        corrupt_jpg[i] = 0xFF if i % 7 == 0 else corrupt_jpg[i] ^ 0x5A
    open(os.path.join(bad, "corrupt.jpg"), "wb").write(bytes(corrupt_jpg))
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    open(os.path.join(bad, "huge.png"), "wb").write(huge)
    open(os.path.join(bad, "empty.png"), "wb").close()
    open(os.path.join(bad, "text.jpg"), "w").write("not an image\n")

    # Fashion-MNIST: the first test images of classes 0 (T-shirt/top), 1 (Trouser), 9 (Ankle boot).
    root = "/usr/share/datasets/fashion-mnist"
    with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 28, 28)
    with gzip.open(os.path.join(root, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read()[8:], dtype=np.uint8)
    names = {0: "T-shirt_top", 1: "Trouser", 9: "Ankle_boot"}
    for label, cls in names.items():
        d = os.path.join(fashion, cls)
        os.makedirs(d, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(labels == label)[:4]):
            Image.fromarray(images[i], "L").save(os.path.join(d, f"{k}.png"))
            Image.fromarray(images[i], "L").save(os.path.join(d, f"{k}.jpg"), quality=95)
    # The PNGs in ImageFolder's order (classes sorted: Ankle_boot, T-shirt_top, Trouser; files sorted).
    by_class = {cls: [] for cls in names.values()}
    for (label, cls) in names.items():
        by_class[cls] = [images[i] for i in np.flatnonzero(labels == label)[:4]]
    stacked = np.concatenate([np.stack(by_class[c]) for c in sorted(by_class)]).reshape(-1, 28)
    Image.fromarray(stacked, "L").save(os.path.join(out, "fashion_pixels.pgm"))
    transforms_goldens(out, codecs)
    photos_goldens(out)


def transforms_goldens(out, codecs):
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as F

    d = os.path.join(out, "transforms")
    os.makedirs(d, exist_ok=True)
    big = Image.open(os.path.join(codecs, "baseline.rgb.ppm"))  # 39x27 RGB, decoded
    big.save(os.path.join(d, "big.ppm"))
    sources = {"rgb8": Image.open(os.path.join(codecs, "rgb8.png")).convert("RGB"),
               "gray8": Image.open(os.path.join(codecs, "gray8.png")).convert("L"),
               "big": big}
    lines = []

    def save(img, name):
        path = name + (".ppm" if img.mode == "RGB" else ".pgm")
        img.save(os.path.join(d, path))
        return path

    for src, img in sources.items():
        for size in (1, 4, 7, 9, 20, 64):
            lines.append(f"resize {src} {size} " + save(T.Resize(size)(img), f"resize_{src}_{size}"))
        for w, h in ((5, 17), (31, 3), (13, 9)):
            lines.append(f"resize_to {src} {w} {h} " + save(F.resize(img, [h, w]), f"resize_to_{src}_{w}x{h}"))
        for h, w in ((5, 5), (4, 7), (8, 12), (20, 30), (9, 40)):
            lines.append(f"center_crop {src} {h} {w} " + save(T.CenterCrop((h, w))(img), f"center_crop_{src}_{h}x{w}"))
        for t, l, h, w, size in ((1, 2, 6, 9, 16), (0, 0, 9, 13, 5), (3, 4, 4, 4, 11)):
            lines.append(f"resized_crop {src} {t} {l} {h} {w} {size} " +
                         save(F.resized_crop(img, t, l, h, w, [size, size]), f"resized_crop_{src}_{t}_{l}_{h}_{w}_{size}"))
    x = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(T.ToTensor()(sources["rgb8"]))
    x.numpy().astype("<f4").tofile(os.path.join(d, "normalize_rgb8.f32"))
    lines.append("normalize rgb8 normalize_rgb8.f32")
    with open(os.path.join(d, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


PHOTO_DIR = "/usr/lib/python3/dist-packages/skimage/data"
# scikit-image's photographs (public domain or CC0, see its README), PNG
# and JPEG, baseline and progressive, gray and RGB, up to 1411x1411.
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "motorcycle_left.png", "rocket.jpg",
          "hubble_deep_field.jpg", "retina.jpg"]


def photos_goldens(out):
    import torchvision.transforms as T

    def crc(data):
        return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"

    d = os.path.join(out, "photos")
    os.makedirs(d, exist_ok=True)
    lines = []
    for name in PHOTOS:
        path = os.path.join(PHOTO_DIR, name)
        with open(path, "rb") as f:
            file_crc = crc(f.read())
        rgb = Image.open(path).convert("RGB")
        small = T.CenterCrop(112)(T.Resize(128)(rgb))
        lines.append(f"{name} {file_crc} {rgb.width} {rgb.height} {crc(rgb.tobytes())} {crc(small.tobytes())}")
    try:
        Image.open(os.path.join(PHOTO_DIR, "truncated.jpg")).load()
        raise SystemExit("truncated.jpg decodes; pick another truncated photo")
    except OSError:
        lines.append("truncated truncated.jpg")
    with open(os.path.join(d, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
