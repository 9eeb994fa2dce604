// tests/support/netpbm.hpp — the binary PGM (P5) and PPM (P6) files that
// make_image_golden.py writes with PIL, as rescnn images, and a pixel-exact
// comparison of two images.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>

#include "rescnn/data/image.hpp"

namespace rescnn::testing {

// PIL's P5 (gray) or P6 (RGB) with maxval 255.
inline data::Image read_netpbm(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  INFO(path.string());
  REQUIRE(in);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  in >> magic >> width >> height >> maxval;
  in.get();  // the single whitespace before the pixels
  REQUIRE((magic == "P5" || magic == "P6"));
  REQUIRE(maxval == 255);
  data::Image image{width, height, magic == "P5" ? 1 : 3, {}};
  image.pixels.resize(image.size());
  in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(image.pixels.size()));
  return image;
}

// How many bytes differ (a count, so a failure prints one number); the
// images must have the same size and channels.
inline std::size_t differing(const data::Image& a, const data::Image& b) {
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  REQUIRE(a.channels == b.channels);
  REQUIRE(a.pixels.size() == b.pixels.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) n += a.pixels[i] != b.pixels[i];
  return n;
}

}  // namespace rescnn::testing
