// rescnn/data/image_codecs.hpp — PNG and JPEG files to 8-bit images, as
// torchvision's default loader (PIL) sees them. Link rescnn::images.
//
//   rn::data::Image img = rn::data::read_image("cat.jpg");               // RGB
//   auto gray = rn::data::read_image("digit.png", {.channels = 1});
//
// Decoders: libpng and libjpeg-turbo, the libraries PIL itself links, so the
// pixels are PIL's (JPEG: the same IDCT and upsampling; PNG: exact). Both
// are fuzzed upstream (OSS-Fuzz) and written for untrusted input;
// stb_image, the single-header alternative, warns in its README that its
// security fixes "may take significant time" and that projects for which
// that is an unreasonable risk should not use it; an image folder is
// untrusted input. (Decode speed against stb_image is not measured yet.)
//
// What each file becomes (then converted to DecodeOptions::channels as PIL's
// convert does, data/image.hpp):
//   PNG   8-bit gray, gray+alpha, RGB, RGBA as they are; 1/2/4-bit gray
//         expanded to 8 bits; palettes expanded to RGB (RGBA with a tRNS
//         chunk); 16-bit samples keep their high byte, as PIL does for
//         16-bit RGB, RGBA and LA (for 16-bit gray PIL's convert clips every
//         value above 255 to white; rescnn keeps the high byte there too,
//         as torchvision.io does); interlaced files de-interlaced.
//   JPEG  baseline and progressive, gray or YCbCr/RGB (CMYK and YCCK are
//         refused). EXIF orientation is NOT applied: the pixels are stored
//         order, as PIL's Image.open and torchvision's ImageFolder give them
//         (apply PIL.ImageOps.exif_transpose there and rotate here yourself
//         if your camera files need it).
//
// Hostile files: the dimensions are checked against DecodeOptions::max_pixels
// before anything is allocated for the pixels (a header claiming
// 50,000x50,000 is refused), ancillary PNG chunks are capped at 8 MiB, and a
// progressive JPEG may have at most 1,000 scans (libjpeg-turbo's advice
// against scan-count attacks). A corrupt or truncated file throws IoError
// naming it and the decoder's reason; libjpeg's warnings (a truncated file
// is one: libjpeg would pad it with gray) are errors too, except extraneous
// bytes between markers and other metadata warnings, which are harmless.
#pragma once

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

// jpeglib.h needs <cstdio> (FILE) first; jerror.h has its message codes.
#include <jerror.h>
#include <jpeglib.h>

#include "rescnn/core/error.hpp"
#include "rescnn/data/image.hpp"

namespace rescnn::data {

struct DecodeOptions {
  int channels = 3;  // 1 (gray), 3 (RGB) or 4 (RGBA); 0 keeps the file's own
  // PIL's Image.MAX_IMAGE_PIXELS: a larger image is refused before decoding.
  std::int64_t max_pixels = 89'478'485;
};

namespace detail {

[[noreturn]] inline void image_error(const std::string& name, const std::string& why) {
  throw IoError("image '" + name + "': " + why);
}

inline void check_pixel_limit(const std::string& name, std::uint64_t width, std::uint64_t height,
                              const DecodeOptions& options) {
  if (width == 0 || height == 0)
    image_error(name, rescnn::detail::concat("its header claims an empty image (", width, "x", height, ")"));
  if (width * height > static_cast<std::uint64_t>(options.max_pixels))
    image_error(name, rescnn::detail::concat("its header claims ", width, "x", height, " = ", width * height,
                                             " pixels, more than the limit of ", options.max_pixels,
                                             " (DecodeOptions::max_pixels); refused before decoding"));
}

inline Image to_requested_channels(Image image, const DecodeOptions& options) {
  return options.channels == 0 || options.channels == image.channels ? image
                                                                     : convert_channels(image, options.channels);
}

// ---- PNG (libpng) ----
// libpng reports errors by longjmp to the setjmp in decode_png: everything
// with a destructor there is constructed before that setjmp, so the jump
// skips no destructor; decode_png then throws from its own frame.

struct PngSource {
  const std::uint8_t* data;
  std::size_t size, offset;
};

struct PngError {
  char message[256];
};

inline void png_read_from_memory(png_structp png, png_bytep out, std::size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->offset) png_error(png, "the file is truncated");
  std::memcpy(out, src->data + src->offset, n);
  src->offset += n;
}

inline void png_on_error(png_structp png, png_const_charp message) {
  auto* e = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof e->message, "%s", message);
  png_longjmp(png, 1);
}

// Warnings (an unknown ancillary chunk, an sRGB profile libpng dislikes) do
// not change the pixels: PIL ignores them too.
inline void png_on_warning(png_structp, png_const_charp) {}

// ---- JPEG (libjpeg-turbo) ----

struct JpegError {
  jpeg_error_mgr manager;  // first: libjpeg's error pointer is this struct's address
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

inline void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Level -1 is a warning. Those about the pixel data (a truncated file,
// corrupt entropy-coded data, a bad progression) are errors: libjpeg would
// pad or guess pixels, and PIL would hand them over without a word. Those
// about metadata are harmless and ignored, as PIL ignores them: bytes
// between markers, an unknown JFIF revision or Adobe transform code, a
// malformed ICC marker.
inline bool harmless_jpeg_warning(int code) {
  return code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC;
}

inline void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && !harmless_jpeg_warning(cinfo->err->msg_code)) jpeg_on_error(cinfo);
}

inline constexpr int kMaxJpegScans = 1000;

inline void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* e = reinterpret_cast<JpegError*>(cinfo->err);
    std::snprintf(e->message, sizeof e->message, "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(e->jump, 1);
  }
}

}  // namespace detail

inline Image decode_png(std::span<const std::uint8_t> bytes, const std::string& name,
                        const DecodeOptions& options = {}) {
  detail::PngSource source{bytes.data(), bytes.size(), 0};
  detail::PngError error{};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, detail::png_on_error, detail::png_on_warning);
  if (!png) detail::image_error(name, "libpng could not start (out of memory)");
  png_infop info = png_create_info_struct(png);
  struct Destroy {
    png_structp* png;
    png_infop* info;
    ~Destroy() { png_destroy_read_struct(png, info, nullptr); }
  } destroy{&png, &info};
  if (!info) detail::image_error(name, "libpng could not start (out of memory)");
  Image image;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) detail::image_error(name, std::string("not a valid PNG file: ") + error.message);

  png_set_read_fn(png, &source, detail::png_read_from_memory);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // the pixel limit below is the one that counts
  png_set_chunk_malloc_max(png, std::size_t{8} << 20);
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  detail::check_pixel_limit(name, width, height, options);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.channels = png_get_channels(png, info);
  const std::size_t row_bytes = static_cast<std::size_t>(width) * static_cast<std::size_t>(image.channels);
  if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row size after conversion");
  image.pixels.resize(row_bytes * height);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.pixels.data() + row_bytes * y;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  return detail::to_requested_channels(std::move(image), options);
}

inline Image decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name,
                         const DecodeOptions& options = {}) {
  jpeg_decompress_struct cinfo{};
  detail::JpegError error{};
  jpeg_progress_mgr progress{};
  cinfo.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = detail::jpeg_on_error;
  error.manager.emit_message = detail::jpeg_on_message;
  if (setjmp(error.jump)) detail::image_error(name, std::string("libjpeg could not start: ") + error.message);
  jpeg_create_decompress(&cinfo);
  struct Destroy {
    jpeg_decompress_struct* cinfo;
    ~Destroy() { jpeg_destroy_decompress(cinfo); }
  } destroy{&cinfo};
  Image image;
  if (setjmp(error.jump)) detail::image_error(name, std::string("not a valid JPEG file: ") + error.message);

  progress.progress_monitor = detail::jpeg_on_progress;
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  detail::check_pixel_limit(name, cinfo.image_width, cinfo.image_height, options);
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
    default:
      detail::image_error(name, cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK
                                    ? "CMYK JPEGs are not supported (convert the file to RGB)"
                                    : "its JPEG colour space is not supported (gray, YCbCr and RGB are)");
  }
  jpeg_start_decompress(&cinfo);
  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  image.channels = cinfo.output_components;
  const std::size_t row_bytes = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.channels);
  image.pixels.resize(row_bytes * static_cast<std::size_t>(image.height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image.pixels.data() + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  return detail::to_requested_channels(std::move(image), options);
}

inline bool is_png(std::span<const std::uint8_t> b) {
  static constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return b.size() >= 8 && std::memcmp(b.data(), kSignature, 8) == 0;
}

inline bool is_jpeg(std::span<const std::uint8_t> b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

// By content, not by the file's extension (a .jpg that is a PNG decodes).
inline Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name,
                          const DecodeOptions& options = {}) {
  check<ValueError>(options.channels == 0 || options.channels == 1 || options.channels == 3 || options.channels == 4,
                    "DecodeOptions::channels must be 0 (as stored), 1, 3 or 4, got ", options.channels);
  check<ValueError>(options.max_pixels > 0, "DecodeOptions::max_pixels must be > 0, got ", options.max_pixels);
  if (is_png(bytes)) return decode_png(bytes, name, options);
  if (is_jpeg(bytes)) return decode_jpeg(bytes, name, options);
  detail::image_error(name, bytes.empty() ? "the file is empty" : "not a PNG or JPEG file");
}

inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::image_error(path.string(), "cannot be opened: " + std::string(std::strerror(errno)));
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) detail::image_error(path.string(), "could not be read");
  return bytes;
}

inline Image read_image(const std::filesystem::path& path, const DecodeOptions& options = {}) {
  return decode_image(read_file_bytes(path), path.string(), options);
}

}  // namespace rescnn::data
