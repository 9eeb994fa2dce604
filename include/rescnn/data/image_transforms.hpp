// rescnn/data/image_transforms.hpp — torchvision's image transforms, on
// 8-bit images (data/image.hpp), with torchvision's (PIL's) results:
//
//   Resize(256)            the shorter side to 256, bilinear with PIL's
//                          antialiasing (its filter widens when shrinking)
//   CenterCrop(224)        torchvision's rounding, zero padding when larger
//   RandomResizedCrop(224) torchvision's parameter draw, then crop + resize
//   RandomHorizontalFlip   with probability p
//   to_tensor, Normalize   [0, 1] floats, CHW; (x - mean) / std per channel,
//                          kImageNetMean / kImageNetStd as a preset
//
// Resize is PIL's Image.resize(BILINEAR) to the byte (for gray and RGB
// images; PIL resizes RGBA and LA with premultiplied alpha, rescnn every
// channel alike): the same coefficients
// (computed in double, then 22-bit fixed point), the horizontal pass first,
// rounded to 8 bits, then the vertical pass (tests/test_image_transforms
// compares with torchvision). Randomness comes from rescnn's Generator, so
// the random transforms draw other values than torch's generator would;
// given the same parameters they give torchvision's pixels.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/data/image.hpp"

namespace rescnn::data {

namespace detail {

inline constexpr int kResamplePrecisionBits = 32 - 8 - 2;  // PIL's, for 8-bit images

// PIL's precompute_coeffs for the bilinear (triangle) filter, support 1:
// for each output index, the first input index, the count, and the weights
// in fixed point.
struct ResampleCoefficients {
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;  // count_max per output index
  int stride = 0;
};

inline ResampleCoefficients resample_coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  ResampleCoefficients c;
  c.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<std::size_t>(out_size));
  c.count.resize(static_cast<std::size_t>(out_size));
  c.weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(c.stride), 0);
  std::vector<double> k(static_cast<std::size_t>(c.stride));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filter_scale;
    // C's truncating casts, as PIL writes them.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      double t = (x + xmin - center + 0.5) * ss;
      t = t < 0 ? -t : t;
      const double w = t < 1.0 ? 1.0 - t : 0.0;
      k[static_cast<std::size_t>(x)] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[static_cast<std::size_t>(x)] / ww : k[static_cast<std::size_t>(x)];
      const double fixed = w * (1 << kResamplePrecisionBits);
      c.weights[static_cast<std::size_t>(xx) * static_cast<std::size_t>(c.stride) + static_cast<std::size_t>(x)] =
          static_cast<std::int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.first[static_cast<std::size_t>(xx)] = xmin;
    c.count[static_cast<std::size_t>(xx)] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(std::int64_t v) {
  v >>= kResamplePrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One pass along x (horizontal) or y, all channels.
inline Image resample_pass(const Image& in, int out_size, bool horizontal) {
  const int in_size = horizontal ? in.width : in.height;
  const auto c = resample_coefficients(in_size, out_size);
  Image out{horizontal ? out_size : in.width, horizontal ? in.height : out_size, in.channels, {}};
  out.pixels.resize(out.size());
  const std::size_t channels = static_cast<std::size_t>(in.channels);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const int o = horizontal ? x : y;
      const std::int32_t* w = c.weights.data() + static_cast<std::size_t>(o) * static_cast<std::size_t>(c.stride);
      const int first = c.first[static_cast<std::size_t>(o)], count = c.count[static_cast<std::size_t>(o)];
      for (std::size_t ch = 0; ch < channels; ++ch) {
        std::int64_t acc = std::int64_t{1} << (kResamplePrecisionBits - 1);
        for (int t = 0; t < count; ++t) {
          const int sx = horizontal ? first + t : x, sy = horizontal ? y : first + t;
          acc += static_cast<std::int64_t>(in.at(sy, sx, static_cast<int>(ch))) * w[t];
        }
        out.pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(out.width) + static_cast<std::size_t>(x)) *
                       channels +
                   ch] = clip8(acc);
      }
    }
  return out;
}

}  // namespace detail

// PIL's Image.resize((width, height), BILINEAR).
inline Image resize(const Image& image, int width, int height) {
  check<ValueError>(width >= 1 && height >= 1, "resize: the size must be at least 1x1, got ", width, "x", height);
  check<ValueError>(image.width >= 1 && image.height >= 1, "resize: the image is empty");
  Image out = image;
  if (width != image.width) out = detail::resample_pass(out, width, /*horizontal=*/true);
  if (height != image.height) out = detail::resample_pass(out, height, /*horizontal=*/false);
  return out;
}

// The region [top, top + height) x [left, left + width); parts outside the
// image are zero (PIL's crop).
inline Image crop(const Image& image, int top, int left, int height, int width) {
  check<ValueError>(width >= 1 && height >= 1, "crop: the size must be at least 1x1, got ", width, "x", height);
  Image out{width, height, image.channels, {}};
  out.pixels.assign(out.size(), 0);
  const std::size_t channels = static_cast<std::size_t>(image.channels);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int sy = top + y, sx = left + x;
      if (sy < 0 || sy >= image.height || sx < 0 || sx >= image.width) continue;
      for (std::size_t c = 0; c < channels; ++c)
        out.pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
                       channels +
                   c] = image.at(sy, sx, static_cast<int>(c));
    }
  return out;
}

inline Image horizontal_flip(const Image& image) {
  Image out = image;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      for (int c = 0; c < image.channels; ++c)
        out.pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(image.width) + static_cast<std::size_t>(x)) *
                       static_cast<std::size_t>(image.channels) +
                   static_cast<std::size_t>(c)] = image.at(y, image.width - 1 - x, c);
  return out;
}

// torchvision.transforms.Resize(size): the shorter side becomes `size`, the
// longer one int(size * long / short), the aspect ratio kept.
struct Resize {
  int size;
  Image operator()(const Image& image) const {
    check<ValueError>(size >= 1, "Resize: size must be >= 1, got ", size);
    const bool wide = image.width > image.height;
    const int shorter = wide ? image.height : image.width, longer = wide ? image.width : image.height;
    const int new_long = static_cast<int>(static_cast<double>(size) * longer / shorter);
    return wide ? resize(image, new_long, size) : resize(image, size, new_long);
  }
};

namespace detail {
// Python's round(): halves to even, as torchvision's crop offsets use it.
inline int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }
}  // namespace detail

// torchvision.transforms.CenterCrop((height, width)); an image smaller than
// the crop is padded with zeros first, as torchvision does.
struct CenterCrop {
  int height, width;
  explicit CenterCrop(int size) : height(size), width(size) {}
  CenterCrop(int h, int w) : height(h), width(w) {}
  Image operator()(const Image& image) const {
    check<ValueError>(height >= 1 && width >= 1, "CenterCrop: size must be >= 1, got ", height, "x", width);
    int w = image.width, h = image.height, pad_left = 0, pad_top = 0;
    if (width > w || height > h) {  // torchvision pads (left, top) by the floor of half the excess
      pad_left = width > w ? (width - w) / 2 : 0;
      pad_top = height > h ? (height - h) / 2 : 0;
      w = std::max(w, width);
      h = std::max(h, height);
    }
    const int top = detail::round_half_even((h - height) / 2.0), left = detail::round_half_even((w - width) / 2.0);
    return crop(image, top - pad_top, left - pad_left, height, width);
  }
};

// The crop RandomResizedCrop takes: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// torchvision.transforms.RandomResizedCrop(size, scale, ratio), bilinear.
struct RandomResizedCrop {
  int height, width;
  std::array<double, 2> scale{0.08, 1.0};
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};

  explicit RandomResizedCrop(int size) : height(size), width(size) {}

  // torchvision's get_params: 10 tries at a random area and aspect ratio,
  // then the whole image clamped to the ratio range, centred.
  CropBox params(const Image& image, Generator& gen) const {
    check<ValueError>(scale[0] > 0 && scale[0] <= scale[1], "RandomResizedCrop: scale must be 0 < min <= max, got (",
                      scale[0], ", ", scale[1], ")");
    check<ValueError>(ratio[0] > 0 && ratio[0] <= ratio[1], "RandomResizedCrop: ratio must be 0 < min <= max, got (",
                      ratio[0], ", ", ratio[1], ")");
    const double area = static_cast<double>(image.width) * image.height;
    const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * gen.uniform(scale[0], scale[1]);
      const double aspect = std::exp(gen.uniform(log_lo, log_hi));
      const int w = detail::round_half_even(std::sqrt(target * aspect));
      const int h = detail::round_half_even(std::sqrt(target / aspect));
      if (w > 0 && w <= image.width && h > 0 && h <= image.height) {
        const int top = static_cast<int>(gen.uniform(0, image.height - h + 1)) % (image.height - h + 1);
        const int left = static_cast<int>(gen.uniform(0, image.width - w + 1)) % (image.width - w + 1);
        return {top, left, h, w};
      }
    }
    const double in_ratio = static_cast<double>(image.width) / image.height;
    int w = image.width, h = image.height;
    if (in_ratio < ratio[0]) {
      h = detail::round_half_even(w / ratio[0]);
    } else if (in_ratio > ratio[1]) {
      w = detail::round_half_even(h * ratio[1]);
    }
    return {(image.height - h) / 2, (image.width - w) / 2, h, w};
  }

  // torchvision.transforms.functional.resized_crop with these parameters.
  Image apply(const Image& image, const CropBox& box) const {
    return resize(crop(image, box.top, box.left, box.height, box.width), width, height);
  }
  Image operator()(const Image& image, Generator& gen) const { return apply(image, params(image, gen)); }
};

struct RandomHorizontalFlip {
  double p = 0.5;
  Image operator()(const Image& image, Generator& gen) const {
    return gen.uniform(0, 1) < p ? horizontal_flip(image) : image;
  }
};

// torchvision's ToTensor: CHW float in [0, 1] (byte / 255).
inline Tensor<float> to_tensor(const Image& image) {
  auto t = Tensor<float>::empty({image.channels, image.height, image.width});
  float* out = t.data();
  const std::size_t plane = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < image.channels; ++c)
      out[static_cast<std::size_t>(c) * plane + i] =
          static_cast<float>(image.pixels[i * static_cast<std::size_t>(image.channels) + static_cast<std::size_t>(c)]) /
          255.0f;
  return t;
}

inline constexpr std::array<float, 3> kImageNetMean{0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd{0.229f, 0.224f, 0.225f};

// torchvision's Normalize on a CHW tensor: (x - mean[c]) / std[c], in float.
struct Normalize {
  std::vector<float> mean, std;
  static Normalize imagenet() {
    return {{kImageNetMean.begin(), kImageNetMean.end()}, {kImageNetStd.begin(), kImageNetStd.end()}};
  }
  void operator()(Tensor<float>& chw) const {
    check<ShapeError>(chw.rank() == 3, "Normalize: expects a CHW tensor, got shape ", chw.shape());
    const index_t channels = chw.dim(0), plane = chw.dim(1) * chw.dim(2);
    check<ValueError>(static_cast<index_t>(mean.size()) == channels && static_cast<index_t>(std.size()) == channels,
                      "Normalize: ", mean.size(), " means and ", std.size(), " stds for an image of ", channels,
                      " channels");
    for (index_t c = 0; c < channels; ++c) {
      check<ValueError>(std[static_cast<std::size_t>(c)] != 0.0f, "Normalize: std of channel ", c, " is zero");
      float* p = chw.data() + c * plane;
      for (index_t i = 0; i < plane; ++i)
        p[i] = (p[i] - mean[static_cast<std::size_t>(c)]) / std[static_cast<std::size_t>(c)];
    }
  }
};

}  // namespace rescnn::data
