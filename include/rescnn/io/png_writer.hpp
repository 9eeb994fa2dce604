// rescnn/io/png_writer.hpp — grey 8-bit images as PNG bytes, with zlib only
// (the library's one compression dependency), so that reports can embed
// pictures without the optional image codecs.
//
//   std::string png = rn::io::encode_png_gray(pixels, width, height);
//
// The file is the minimal valid PNG: signature, IHDR (bit depth 8, colour
// type 0), one IDAT (every row with filter 0, deflated), IEND.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rescnn/core/error.hpp"

namespace rescnn::io {

namespace detail {

inline void put_u32_be(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// One chunk: length, type, data, CRC-32 of type and data.
inline void put_png_chunk(std::string& out, std::string_view type, std::string_view data) {
  put_u32_be(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out += type;
  out += data;
  const auto* bytes = reinterpret_cast<const Bytef*>(out.data() + start);
  put_u32_be(out, static_cast<std::uint32_t>(crc32(0L, bytes, static_cast<uInt>(out.size() - start))));
}

}  // namespace detail

// `pixels` holds height rows of width bytes (0 black .. 255 white).
inline std::string encode_png_gray(std::span<const std::uint8_t> pixels, std::int64_t width, std::int64_t height) {
  check<ValueError>(width >= 1 && height >= 1 && width <= (1 << 24) && height <= (1 << 24),
                    "encode_png_gray: image size ", width, "x", height, " is not between 1x1 and 16777216x16777216");
  check<ValueError>(static_cast<std::int64_t>(pixels.size()) == width * height, "encode_png_gray: ", pixels.size(),
                    " pixels for a ", width, "x", height, " image");
  std::string raw;  // each row: filter type 0 (none), then its bytes
  raw.reserve(static_cast<std::size_t>((width + 1) * height));
  for (std::int64_t y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(pixels.data() + y * width), static_cast<std::size_t>(width));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<Bytef> packed(packed_size);
  check<IoError>(compress2(packed.data(), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                           static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) == Z_OK,
                 "encode_png_gray: zlib failed to compress the image");

  std::string ihdr;
  detail::put_u32_be(ihdr, static_cast<std::uint32_t>(width));
  detail::put_u32_be(ihdr, static_cast<std::uint32_t>(height));
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);  // bit depth 8, grey, deflate, adaptive filters, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  detail::put_png_chunk(png, "IHDR", ihdr);
  detail::put_png_chunk(png, "IDAT", std::string_view(reinterpret_cast<const char*>(packed.data()), packed_size));
  detail::put_png_chunk(png, "IEND", {});
  return png;
}

// RFC 4648 base64 with padding (for data: URIs).
inline std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<std::uint8_t>(bytes[i + k]) : 0u);
    for (std::size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

}  // namespace rescnn::io
