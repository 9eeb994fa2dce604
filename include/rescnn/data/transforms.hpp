// rescnn/data/transforms.hpp — image transforms for the data loader.
//
// Pure functions on one float image plane (H x W, row-major); an image of C
// channels is C such planes one after the other, and a transform is applied
// plane by plane (with the same random draw for every plane of an image: use
// `crop_at` with the offsets `random_crop` returned).
//
// Each transform matches its torchvision counterpart on tensors, so a model
// trained here sees what it would see in PyTorch:
//  - `resize_bilinear` is torch.nn.functional.interpolate(mode="bilinear",
//    align_corners=False, antialias=...), which torchvision 0.14's
//    `Resize` calls (antialias=False there by default, True from 0.17 on);
//  - `to_unit_range` is ToTensor's uint8 -> [0, 1];
//  - `normalize` is Normalize((mean,), (std,));
//  - `random_crop` is RandomCrop(size=(h, w), padding=p) with zero fill;
//  - `horizontal_flip` is RandomHorizontalFlip's flip (the loader draws the
//    probability 0.5);
//  - `random_erasing` is RandomErasing(p, scale, ratio, value) on the
//    (normalised) tensor, with torchvision's defaults and its way of drawing
//    the rectangle.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::data {

namespace detail {

inline void check_size(const char* op, const char* what, index_t h, index_t w) {
  check(h > 0 && w > 0, op, ": ", what, " size ", h, "x", w, " must be positive");
}

// One axis of a separable resampling: output i reads `count[i]` inputs from
// `start[i]` with weights `weights[i * taps ...]`.
struct ResampleAxis {
  index_t taps = 0;
  std::vector<index_t> start;
  std::vector<index_t> count;
  std::vector<float> weights;  // out * taps, computed in double, rounded once
};

// Plain bilinear, align_corners=False (ATen's area_pixel_compute_source_index
// and compute_source_index_and_lambda): source x = scale * (i + 0.5) - 0.5,
// clamped at 0, and its two neighbours (one at the last pixel).
inline ResampleAxis bilinear_axis(index_t in, index_t out) {
  ResampleAxis ax;
  ax.taps = 2;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (index_t i = 0; i < out; ++i) {
    const double src = std::max(scale * (static_cast<double>(i) + 0.5) - 0.5, 0.0);
    const auto i0 = static_cast<index_t>(src);
    const double lambda = src - static_cast<double>(i0);
    ax.start.push_back(i0);
    ax.count.push_back(i0 < in - 1 ? 2 : 1);
    if (i0 < in - 1) {
      ax.weights.push_back(static_cast<float>(1.0 - lambda));
      ax.weights.push_back(static_cast<float>(lambda));
    } else {  // at the last pixel both taps are that pixel: weight 1
      ax.weights.push_back(1.0f);
      ax.weights.push_back(0.0f);
    }
  }
  return ax;
}

// Antialiased bilinear (ATen's _upsample_bilinear2d_aa,
// HelperInterpBase::_compute_indices_min_size_weights_aa with
// HelperInterpLinear::aa_filter, as PIL does it): a triangle filter whose
// support grows with the downscaling factor, so every input pixel under an
// output pixel contributes, weights normalised per output pixel. For
// upscaling it reduces to plain bilinear.
inline ResampleAxis antialias_axis(index_t in, index_t out) {
  ResampleAxis ax;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = scale >= 1.0 ? scale : 1.0;  // interp_size 2, times 0.5, times the scale
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  ax.taps = static_cast<index_t>(std::ceil(support)) * 2 + 1;
  std::vector<double> w(static_cast<std::size_t>(ax.taps));
  for (index_t i = 0; i < out; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const index_t xmin = std::max(static_cast<index_t>(center - support + 0.5), index_t{0});
    // (ATen clamps too: rounding can make the range one longer than `taps`.)
    const index_t xsize =
        std::clamp(std::min(static_cast<index_t>(center + support + 0.5), in) - xmin, index_t{0}, ax.taps);
    double total = 0;
    for (index_t j = 0; j < xsize; ++j) {
      const double x = std::abs((static_cast<double>(j + xmin) - center + 0.5) * invscale);
      w[static_cast<std::size_t>(j)] = x < 1.0 ? 1.0 - x : 0.0;
      total += w[static_cast<std::size_t>(j)];
    }
    ax.start.push_back(xmin);
    ax.count.push_back(xsize);
    for (index_t j = 0; j < ax.taps; ++j)
      ax.weights.push_back(j < xsize && total != 0.0 ? static_cast<float>(w[static_cast<std::size_t>(j)] / total)
                                                     : 0.0f);
  }
  return ax;
}

}  // namespace detail

// A bilinear resize from one size to another, with its weight tables built
// once (the loader resizes thousands of images of the same size).
class BilinearResize {
 public:
  BilinearResize(index_t in_h, index_t in_w, index_t out_h, index_t out_w, bool antialias)
      : in_h_(in_h), in_w_(in_w), out_h_(out_h), out_w_(out_w) {
    detail::check_size("resize_bilinear", "input", in_h, in_w);
    detail::check_size("resize_bilinear", "output", out_h, out_w);
    rows_ = antialias ? detail::antialias_axis(in_h, out_h) : detail::bilinear_axis(in_h, out_h);
    cols_ = antialias ? detail::antialias_axis(in_w, out_w) : detail::bilinear_axis(in_w, out_w);
  }

  index_t out_height() const { return out_h_; }
  index_t out_width() const { return out_w_; }

  // dst (out_h x out_w) from src (in_h x in_w). `scratch` holds the
  // horizontally resampled rows; pass the same vector to reuse its memory.
  void operator()(const float* src, float* dst, std::vector<float>& scratch) const {
    scratch.resize(static_cast<std::size_t>(in_h_ * out_w_));
    // Horizontal pass: every input row to out_w columns.
    for (index_t y = 0; y < in_h_; ++y) {
      const float* row = src + y * in_w_;
      float* out = scratch.data() + y * out_w_;
      for (index_t x = 0; x < out_w_; ++x) {
        const float* w = cols_.weights.data() + x * cols_.taps;
        const float* in = row + cols_.start[static_cast<std::size_t>(x)];
        float acc = 0;
        for (index_t k = 0; k < cols_.count[static_cast<std::size_t>(x)]; ++k) acc += w[k] * in[k];
        out[x] = acc;
      }
    }
    // Vertical pass: combine whole rows (contiguous, vectorises).
    for (index_t y = 0; y < out_h_; ++y) {
      float* out = dst + y * out_w_;
      std::fill(out, out + out_w_, 0.0f);
      const float* w = rows_.weights.data() + y * rows_.taps;
      const index_t first = rows_.start[static_cast<std::size_t>(y)];
      for (index_t k = 0; k < rows_.count[static_cast<std::size_t>(y)]; ++k) {
        const float* in = scratch.data() + (first + k) * out_w_;
        const float wk = w[k];
        for (index_t x = 0; x < out_w_; ++x) out[x] += wk * in[x];
      }
    }
  }

 private:
  index_t in_h_, in_w_, out_h_, out_w_;
  detail::ResampleAxis rows_, cols_;
};

// One plane, src (h x w) -> dst (out_h x out_w); see BilinearResize.
inline void resize_bilinear(const float* src, index_t h, index_t w, float* dst, index_t out_h, index_t out_w,
                            bool antialias) {
  std::vector<float> scratch;
  BilinearResize(h, w, out_h, out_w, antialias)(src, dst, scratch);
}

// uint8 0..255 -> float 0..1, as ToTensor (a float division by 255).
inline void to_unit_range(const std::uint8_t* src, float* dst, index_t n) {
  for (index_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
}

// (x - mean) / std in place, as Normalize.
inline void normalize(float* x, index_t n, float mean, float std) {
  check(std::isfinite(mean), "normalize: mean ", mean, " is not finite");
  check(std::isfinite(std) && std > 0, "normalize: std ", std, " must be positive and finite");
  for (index_t i = 0; i < n; ++i) x[i] = (x[i] - mean) / std;
}

// Where a crop starts in the padded image: rows [top, top + h) and columns
// [left, left + w) of the image padded by `padding` zeros on every side.
struct CropOffset {
  index_t top = 0, left = 0;
};

// dst (h x w) = the window at `at` of src padded with `padding` zeros.
inline void crop_at(const float* src, index_t h, index_t w, float* dst, index_t padding, CropOffset at) {
  detail::check_size("crop_at", "image", h, w);
  check(padding >= 0, "crop_at: padding ", padding, " is negative");
  check(at.top >= 0 && at.top <= 2 * padding && at.left >= 0 && at.left <= 2 * padding, "crop_at: offset (", at.top,
        ", ", at.left, ") is outside 0..", 2 * padding, " for padding ", padding);
  const index_t dy = at.top - padding, dx = at.left - padding;  // source = destination + (dy, dx)
  for (index_t y = 0; y < h; ++y) {
    float* out = dst + y * w;
    const index_t sy = y + dy;
    if (sy < 0 || sy >= h) {
      std::fill(out, out + w, 0.0f);
      continue;
    }
    const index_t x0 = std::clamp(-dx, index_t{0}, w), x1 = std::clamp(w - dx, index_t{0}, w);
    std::fill(out, out + x0, 0.0f);
    std::copy(src + sy * w + x0 + dx, src + sy * w + x1 + dx, out + x0);
    std::fill(out + x1, out + w, 0.0f);
  }
}

// RandomCrop(size=(h, w), padding=padding, fill=0): top and left uniform in
// [0, 2 * padding], drawn in that order from `gen`. Returns the offsets.
inline CropOffset random_crop(const float* src, index_t h, index_t w, float* dst, index_t padding, Generator& gen) {
  check(padding >= 0, "random_crop: padding ", padding, " is negative");
  CropOffset at;
  at.top = static_cast<index_t>(gen.uniform_int(static_cast<std::uint64_t>(2 * padding + 1)));
  at.left = static_cast<index_t>(gen.uniform_int(static_cast<std::uint64_t>(2 * padding + 1)));
  crop_at(src, h, w, dst, padding, at);
  return at;
}

// Mirrors each row in place (left <-> right).
inline void horizontal_flip(float* x, index_t h, index_t w) {
  detail::check_size("horizontal_flip", "image", h, w);
  for (index_t y = 0; y < h; ++y) std::reverse(x + y * w, x + (y + 1) * w);
}

// torchvision.transforms.RandomErasing's parameters (its defaults).
struct RandomErasingOptions {
  double p = 0.5;                               // probability of erasing an image
  std::pair<double, double> scale{0.02, 0.33};  // erased area / image area
  std::pair<double, double> ratio{0.3, 3.3};    // erased height / width
  float value = 0;                              // what erased pixels become
};

// A rectangle of an image: rows [top, top + height), columns [left, left + width).
struct EraseRect {
  index_t top = 0, left = 0, height = 0, width = 0;
  bool empty() const { return height == 0 || width == 0; }
};

inline void validate(const RandomErasingOptions& o) {
  check<ValueError>(o.p >= 0 && o.p <= 1, "RandomErasing: p ", o.p, " is outside [0, 1]");
  check<ValueError>(o.scale.first > 0 && o.scale.first <= o.scale.second && o.scale.second <= 1,
                    "RandomErasing: scale (", o.scale.first, ", ", o.scale.second,
                    ") must satisfy 0 < min <= max <= 1");
  check<ValueError>(o.ratio.first > 0 && o.ratio.first <= o.ratio.second && std::isfinite(o.ratio.second),
                    "RandomErasing: ratio (", o.ratio.first, ", ", o.ratio.second, ") must satisfy 0 < min <= max");
  check<ValueError>(std::isfinite(o.value), "RandomErasing: value ", o.value, " is not finite");
}

// RandomErasing's draw, as torchvision's forward and get_params make it: with
// probability p, up to 10 tries of an area fraction uniform in `scale` and
// an aspect ratio log-uniform in `ratio`, the first rectangle that fits
// (h < H and w < W, sides rounded) placed uniformly; none fits: no erasing.
inline EraseRect random_erasing_rect(index_t h, index_t w, const RandomErasingOptions& o, Generator& gen) {
  detail::check_size("random_erasing", "image", h, w);
  if (!(gen.uniform() < o.p)) return {};
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(o.ratio.first), log_hi = std::log(o.ratio.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double erase_area = area * gen.uniform(o.scale.first, o.scale.second);
    const double aspect = std::exp(gen.uniform(log_lo, log_hi));
    const auto eh = static_cast<index_t>(std::lround(std::sqrt(erase_area * aspect)));
    const auto ew = static_cast<index_t>(std::lround(std::sqrt(erase_area / aspect)));
    if (!(eh < h && ew < w)) continue;
    EraseRect r;
    r.height = eh;
    r.width = ew;
    r.top = static_cast<index_t>(gen.uniform_int(static_cast<std::uint64_t>(h - eh + 1)));
    r.left = static_cast<index_t>(gen.uniform_int(static_cast<std::uint64_t>(w - ew + 1)));
    return r;
  }
  return {};
}

// Sets the rectangle of plane x (h x w) to `value`.
inline void erase(float* x, index_t w, const EraseRect& r, float value) {
  for (index_t y = r.top; y < r.top + r.height; ++y) std::fill(x + y * w + r.left, x + y * w + r.left + r.width, value);
}

}  // namespace rescnn::data
