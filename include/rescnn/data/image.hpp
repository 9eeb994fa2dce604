// rescnn/data/image.hpp — an 8-bit image in memory, and channel conversion
// as PIL's Image.convert does it (torchvision's ImageFolder loads every file
// with PIL and convert("RGB"), so these are the pixels its users expect).
//
// Pixels are interleaved, row by row (HWC, the layout decoders write);
// data/image_transforms.hpp turns them into CHW float tensors.
//
// Conversions (PIL's):
//   to 3 (RGB):  gray -> (L, L, L); gray+alpha -> (L, L, L); RGBA -> RGB
//                (alpha dropped, not composited)
//   to 1 (L):    RGB and RGBA -> ITU-R 601-2 luma,
//                L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16
//                (PIL's fixed point for 0.299 R + 0.587 G + 0.114 B);
//                gray+alpha -> L
//   to 4 (RGBA): gray -> (L, L, L, 255); gray+alpha -> (L, L, L, A);
//                RGB -> (R, G, B, 255)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rescnn/core/error.hpp"

namespace rescnn::data {

struct Image {
  int width = 0, height = 0;
  int channels = 0;                  // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  std::vector<std::uint8_t> pixels;  // height * width * channels, interleaved

  std::size_t size() const {
    return static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * static_cast<std::size_t>(channels);
  }
  std::uint8_t at(int y, int x, int c) const {
    return pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
                      static_cast<std::size_t>(channels) +
                  static_cast<std::size_t>(c)];
  }
};

namespace detail {

inline std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return static_cast<std::uint8_t>((19595u * r + 38470u * g + 7471u * b + 0x8000u) >> 16);
}

}  // namespace detail

// `image` with `channels` channels (1, 3 or 4), converted as PIL does.
inline Image convert_channels(const Image& image, int channels) {
  check<ValueError>(channels == 1 || channels == 3 || channels == 4,
                    "convert_channels: channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got ", channels);
  check<ValueError>(image.channels >= 1 && image.channels <= 4 && image.pixels.size() == image.size(),
                    "convert_channels: not a valid image (", image.width, "x", image.height, ", ", image.channels,
                    " channels, ", image.pixels.size(), " bytes)");
  if (image.channels == channels) return image;
  Image out{image.width, image.height, channels, {}};
  const std::size_t n = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
  out.pixels.resize(n * static_cast<std::size_t>(channels));
  const int in_c = image.channels;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = image.pixels.data() + i * static_cast<std::size_t>(in_c);
    std::uint8_t* q = out.pixels.data() + i * static_cast<std::size_t>(channels);
    const bool gray = in_c <= 2;
    const std::uint8_t r = p[0], g = gray ? p[0] : p[1], b = gray ? p[0] : p[2];
    const std::uint8_t alpha = in_c == 2 ? p[1] : in_c == 4 ? p[3] : 255;
    if (channels == 1) {
      q[0] = gray ? p[0] : detail::luma(r, g, b);
    } else {
      q[0] = r;
      q[1] = g;
      q[2] = b;
      if (channels == 4) q[3] = alpha;
    }
  }
  return out;
}

}  // namespace rescnn::data
