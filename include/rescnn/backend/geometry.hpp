// rescnn/backend/geometry.hpp — validated sizes of convolution and pooling
// windows, shared by every backend. Computed once in ops::, so kernels can
// assume consistent, positive sizes.
#pragma once

#include "rescnn/core/config.hpp"
#include "rescnn/core/error.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn {

// A pair of extents (height, width). Converts from one number, so options
// read like PyTorch's: `.kernel_size = 3` or `.kernel_size = {7, 5}`.
struct Size2 {
  index_t h = 0, w = 0;
  constexpr Size2() = default;
  constexpr Size2(index_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose
  constexpr Size2(index_t height, index_t width) : h(height), w(width) {}
  friend constexpr bool operator==(const Size2&, const Size2&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Size2& s) { return os << "(" << s.h << ", " << s.w << ")"; }

// Output extent of a sliding window along one axis (floor mode, as PyTorch).
inline index_t window_output_extent(index_t in, index_t kernel, index_t stride, index_t pad, index_t dilation) {
  const index_t effective = dilation * (kernel - 1) + 1;
  return (in + 2 * pad - effective) / stride + 1;
}

struct Conv2dGeometry {
  index_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  index_t out_channels = 0, out_h = 0, out_w = 0;
  Size2 kernel, stride, padding, dilation;
  index_t groups = 1;

  index_t in_channels_per_group() const { return in_channels / groups; }
  index_t out_channels_per_group() const { return out_channels / groups; }
  // Rows of the im2col matrix of one group: (C/g) * kh * kw.
  index_t patch_size() const { return in_channels_per_group() * kernel.h * kernel.w; }
  index_t out_plane() const { return out_h * out_w; }
  index_t in_plane() const { return in_h * in_w; }
  Shape input_shape() const { return {batch, in_channels, in_h, in_w}; }
  Shape output_shape() const { return {batch, out_channels, out_h, out_w}; }
  Shape weight_shape() const { return {out_channels, in_channels_per_group(), kernel.h, kernel.w}; }
  // A 1x1, stride-1, unpadded convolution needs no im2col: the input is
  // already the patch matrix.
  bool is_pointwise() const { return kernel == Size2(1) && stride == Size2(1) && padding == Size2(0); }
  double macs() const { return static_cast<double>(batch) * out_channels * out_plane() * patch_size(); }
};

struct Pool2dGeometry {
  index_t batch = 0, channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  Size2 kernel, stride, padding, dilation{1};
  Shape input_shape() const { return {batch, channels, in_h, in_w}; }
  Shape output_shape() const { return {batch, channels, out_h, out_w}; }
};

// The extents of a batch-normalised NCHW tensor.
struct BatchNormSizes {
  index_t batch = 0, channels = 0, plane = 0;  // plane = H * W
  RESCNN_HOST_DEVICE index_t per_channel() const { return batch * plane; }
  RESCNN_HOST_DEVICE index_t numel() const { return batch * channels * plane; }
};

}  // namespace rescnn
