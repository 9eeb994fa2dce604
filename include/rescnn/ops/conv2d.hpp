// rescnn/ops/conv2d.hpp — convolution: shape validation and dispatch.
#pragma once

#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

struct Conv2dParams {
  Size2 stride{1}, padding{0}, dilation{1};
  index_t groups = 1;
};

// Validates x (N, C, H, W) against weight (OC, C/groups, kh, kw) and returns
// every size a kernel needs. Throws ShapeError naming both shapes.
inline Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& w, const Conv2dParams& p) {
  check<ShapeError>(x.rank() == 4, "conv2d: expected input of shape (N, C, H, W), got ", x);
  check<ShapeError>(w.rank() == 4, "conv2d: expected weight of shape (out_channels, in_channels/groups, kh, kw), got ",
                    w);
  check(p.groups >= 1, "conv2d: groups must be positive, got ", p.groups);
  check(p.stride.h >= 1 && p.stride.w >= 1, "conv2d: stride must be positive, got ", p.stride);
  check(p.dilation.h >= 1 && p.dilation.w >= 1, "conv2d: dilation must be positive, got ", p.dilation);
  check(p.padding.h >= 0 && p.padding.w >= 0, "conv2d: padding must be non-negative, got ", p.padding);
  Conv2dGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_channels = w[0];
  g.kernel = {w[2], w[3]};
  g.stride = p.stride;
  g.padding = p.padding;
  g.dilation = p.dilation;
  g.groups = p.groups;
  check<ShapeError>(w[0] % p.groups == 0, "conv2d: weight ", w, " has ", w[0],
                    " output channels, not divisible by groups=", p.groups);
  check<ShapeError>(x[1] == w[1] * p.groups, "conv2d: input ", x, " has ", x[1], " channels but weight ", w,
                    " with groups=", p.groups, " expects ", w[1] * p.groups);
  const index_t eff_h = p.dilation.h * (g.kernel.h - 1) + 1, eff_w = p.dilation.w * (g.kernel.w - 1) + 1;
  check<ShapeError>(g.in_h + 2 * p.padding.h >= eff_h && g.in_w + 2 * p.padding.w >= eff_w, "conv2d: input ", x,
                    " padded by ", p.padding, " is smaller than the kernel ", g.kernel, " (dilated extent ", eff_h, "x",
                    eff_w, ")");
  g.out_h = window_output_extent(g.in_h, g.kernel.h, p.stride.h, p.padding.h, p.dilation.h);
  g.out_w = window_output_extent(g.in_w, g.kernel.w, p.stride.w, p.padding.w, p.dilation.w);
  return g;
}

template <class T, class D>
Tensor<T, D> conv2d_forward(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>* bias,
                            const Conv2dParams& p) {
  const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), p);
  if (bias)
    check<ShapeError>(bias->shape() == Shape{g.out_channels}, "conv2d: bias of shape ", bias->shape(),
                      " does not match ", g.out_channels, " output channels");
  auto y = Tensor<T, D>::empty(g.output_shape());
  RESCNN_DISPATCH(D, conv2d_forward(g, x.data(), w.data(), bias ? bias->data() : nullptr, y.data()));
  return y;
}

// Gradients of conv2d_forward. Accumulates into dw and *db (PyTorch's
// .grad semantics); returns dx, or an undefined tensor when !need_dx (the
// first layer of a network needs no input gradient).
template <class T, class D>
Tensor<T, D> conv2d_backward(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& dy,
                             const Conv2dParams& p, Tensor<T, D>& dw, Tensor<T, D>* db, bool need_dx = true,
                             bool need_dw = true) {
  const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), p);
  check<ShapeError>(dy.shape() == g.output_shape(), "conv2d backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", g.output_shape());
  Tensor<T, D> dx;
  if (need_dx) dx = Tensor<T, D>::empty(x.shape());
  if (!need_dx && !need_dw) return dx;
  RESCNN_DISPATCH(D, conv2d_backward(g, x.data(), w.data(), dy.data(), need_dx ? dx.data() : nullptr,
                                     need_dw ? dw.data() : nullptr, need_dw && db ? db->data() : nullptr));
  return dx;
}

}  // namespace rescnn::ops
