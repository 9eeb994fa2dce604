// libFuzzer harness: the PNG and JPEG decoders (data/image_codecs.hpp) on
// arbitrary bytes, under a pixel limit of 4 Mi pixels.
//
// Decoding must end in an image whose pixel buffer has exactly the size its
// dimensions say, within the limit, or in rescnn::IoError; converting a
// decoded image to RGB must then give a consistent image too. Anything else
// (a crash, another exception, an allocation beyond -malloc_limit_mb) is a
// finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "rescnn/data/image.hpp"
#include "rescnn/data/image_codecs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace rn = rescnn;
  const rn::data::DecodeOptions options{.channels = 0, .max_pixels = std::int64_t{1} << 22};
  try {
    const auto image = rn::data::decode_image(std::span<const std::uint8_t>(data, size), "fuzz input", options);
    if (image.width <= 0 || image.height <= 0 || image.channels < 1 || image.channels > 4 ||
        image.pixels.size() != image.size() ||
        static_cast<std::int64_t>(image.width) * image.height > options.max_pixels)
      std::abort();
    const auto rgb = rn::data::convert_channels(image, 3);
    if (rgb.pixels.size() != rgb.size() || rgb.width != image.width) std::abort();
  } catch (const rn::IoError&) {
    // a documented refusal
  }
  return 0;
}
