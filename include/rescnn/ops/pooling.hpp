// rescnn/ops/pooling.hpp — max, average and adaptive average pooling.
#pragma once

#include <cstdint>

#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

struct Pool2dParams {
  Size2 kernel, stride, padding{0}, dilation{1};
};

// Validates the window against input x (N, C, H, W); `op` names the layer in
// messages.
inline Pool2dGeometry pool2d_geometry(const char* op, const Shape& x, const Pool2dParams& p) {
  check<ShapeError>(x.rank() == 4, op, ": expected input of shape (N, C, H, W), got ", x);
  check(p.kernel.h >= 1 && p.kernel.w >= 1, op, ": kernel_size must be positive, got ", p.kernel);
  check(p.stride.h >= 1 && p.stride.w >= 1, op, ": stride must be positive, got ", p.stride);
  check(p.dilation.h >= 1 && p.dilation.w >= 1, op, ": dilation must be positive, got ", p.dilation);
  check(p.padding.h >= 0 && p.padding.w >= 0 && 2 * p.padding.h <= p.kernel.h && 2 * p.padding.w <= p.kernel.w, op,
        ": padding ", p.padding, " must be non-negative and at most half the kernel ", p.kernel);
  Pool2dGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.kernel = p.kernel;
  g.stride = p.stride;
  g.padding = p.padding;
  g.dilation = p.dilation;
  const index_t eff_h = p.dilation.h * (p.kernel.h - 1) + 1, eff_w = p.dilation.w * (p.kernel.w - 1) + 1;
  check<ShapeError>(g.in_h + 2 * p.padding.h >= eff_h && g.in_w + 2 * p.padding.w >= eff_w, op, ": input ", x,
                    " padded by ", p.padding, " is smaller than the kernel ", p.kernel);
  g.out_h = window_output_extent(g.in_h, p.kernel.h, p.stride.h, p.padding.h, p.dilation.h);
  g.out_w = window_output_extent(g.in_w, p.kernel.w, p.stride.w, p.padding.w, p.dilation.w);
  return g;
}

template <class T, class D>
Tensor<T, D> maxpool2d_forward(const Tensor<T, D>& x, const Pool2dParams& p, Tensor<std::int32_t, D>& argmax) {
  const auto g = pool2d_geometry("max_pool2d", x.shape(), p);
  auto y = Tensor<T, D>::empty(g.output_shape());
  argmax = Tensor<std::int32_t, D>::empty(g.output_shape());
  RESCNN_DISPATCH(D, maxpool2d_forward(g, x.data(), y.data(), argmax.data()));
  return y;
}

template <class T, class D>
Tensor<T, D> maxpool2d_backward(const Shape& x_shape, const Tensor<T, D>& dy, const Pool2dParams& p,
                                const Tensor<std::int32_t, D>& argmax) {
  const auto g = pool2d_geometry("max_pool2d", x_shape, p);
  check<ShapeError>(dy.shape() == g.output_shape(), "max_pool2d backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", g.output_shape());
  auto dx = Tensor<T, D>::empty(x_shape);
  RESCNN_DISPATCH(D, maxpool2d_backward(g, dy.data(), argmax.data(), dx.data()));
  return dx;
}

template <class T, class D>
Tensor<T, D> avgpool2d_forward(const Tensor<T, D>& x, const Pool2dParams& p, bool count_include_pad) {
  const auto g = pool2d_geometry("avg_pool2d", x.shape(), p);
  auto y = Tensor<T, D>::empty(g.output_shape());
  RESCNN_DISPATCH(D, avgpool2d_forward(g, count_include_pad, x.data(), y.data()));
  return y;
}

template <class T, class D>
Tensor<T, D> avgpool2d_backward(const Shape& x_shape, const Tensor<T, D>& dy, const Pool2dParams& p,
                                bool count_include_pad) {
  const auto g = pool2d_geometry("avg_pool2d", x_shape, p);
  check<ShapeError>(dy.shape() == g.output_shape(), "avg_pool2d backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", g.output_shape());
  auto dx = Tensor<T, D>::empty(x_shape);
  RESCNN_DISPATCH(D, avgpool2d_backward(g, count_include_pad, dy.data(), dx.data()));
  return dx;
}

inline Pool2dGeometry adaptive_pool_geometry(const Shape& x, Size2 output_size) {
  check<ShapeError>(x.rank() == 4, "adaptive_avg_pool2d: expected input of shape (N, C, H, W), got ", x);
  check(output_size.h >= 1 && output_size.w >= 1, "adaptive_avg_pool2d: output_size must be positive, got ",
        output_size);
  check<ShapeError>(x[2] >= 1 && x[3] >= 1, "adaptive_avg_pool2d: input ", x, " has an empty spatial extent");
  Pool2dGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_h = output_size.h;
  g.out_w = output_size.w;
  return g;
}

template <class T, class D>
Tensor<T, D> adaptive_avgpool2d_forward(const Tensor<T, D>& x, Size2 output_size) {
  const auto g = adaptive_pool_geometry(x.shape(), output_size);
  auto y = Tensor<T, D>::empty(g.output_shape());
  RESCNN_DISPATCH(D, adaptive_avgpool2d_forward(g, x.data(), y.data()));
  return y;
}

template <class T, class D>
Tensor<T, D> adaptive_avgpool2d_backward(const Shape& x_shape, const Tensor<T, D>& dy, Size2 output_size) {
  const auto g = adaptive_pool_geometry(x_shape, output_size);
  check<ShapeError>(dy.shape() == g.output_shape(), "adaptive_avg_pool2d backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", g.output_shape());
  auto dx = Tensor<T, D>::empty(x_shape);
  RESCNN_DISPATCH(D, adaptive_avgpool2d_backward(g, dy.data(), dx.data()));
  return dx;
}

}  // namespace rescnn::ops
