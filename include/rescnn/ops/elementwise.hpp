// rescnn/ops/elementwise.hpp — ReLU and tensor sums.
#pragma once

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

template <class T, class D>
Tensor<T, D> relu_forward(const Tensor<T, D>& x) {
  check<ShapeError>(x.defined(), "relu: input is undefined");
  auto y = Tensor<T, D>::empty(x.shape());
  RESCNN_DISPATCH(D, relu_forward(x.numel(), x.data(), y.data()));
  return y;
}

template <class T, class D>
Tensor<T, D> relu_backward(const Tensor<T, D>& y, const Tensor<T, D>& dy) {
  check<ShapeError>(dy.shape() == y.shape(), "relu backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", y.shape());
  auto dx = Tensor<T, D>::empty(y.shape());
  RESCNN_DISPATCH(D, relu_backward(y.numel(), y.data(), dy.data(), dx.data()));
  return dx;
}

// a + b, same shapes only: nothing broadcasts silently.
template <class T, class D>
Tensor<T, D> add(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  check<ShapeError>(a.shape() == b.shape(), "add: shapes ", a.shape(), " and ", b.shape(), " differ");
  auto out = Tensor<T, D>::empty(a.shape());
  RESCNN_DISPATCH(D, add(a.numel(), a.data(), b.data(), out.data()));
  return out;
}

template <class T, class D>
void add_(Tensor<T, D>& out, const Tensor<T, D>& a) {
  check<ShapeError>(out.shape() == a.shape(), "add_: shapes ", out.shape(), " and ", a.shape(), " differ");
  RESCNN_DISPATCH(D, add_inplace(out.numel(), out.data(), a.data()));
}

// out = relu(out + a): a residual block's sum and activation fused into one
// pass over memory (the block's backward uses relu_backward on the result).
template <class T, class D>
void add_relu_(Tensor<T, D>& out, const Tensor<T, D>& a) {
  check<ShapeError>(out.shape() == a.shape(), "add_relu_: shapes ", out.shape(), " and ", a.shape(), " differ");
  RESCNN_DISPATCH(D, add_relu_inplace(out.numel(), out.data(), a.data()));
}

}  // namespace rescnn::ops
