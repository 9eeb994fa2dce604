// rescnn/ops/linear.hpp — fully connected layer, y = x W^T + b.
#pragma once

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

template <class T, class D>
void check_linear_shapes(const char* op, const Tensor<T, D>& x, const Tensor<T, D>& w) {
  check<ShapeError>(x.defined() && x.rank() == 2, op, ": expected input of shape (N, in_features), got ", x.shape());
  check<ShapeError>(x.dim(1) == w.dim(1), op, ": input ", x.shape(), " has ", x.dim(1), " features, but the weight ",
                    w.shape(), " expects in_features=", w.dim(1));
}

template <class T, class D>
Tensor<T, D> linear_forward(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>* bias) {
  check_linear_shapes("linear", x, w);
  auto y = Tensor<T, D>::empty({x.dim(0), w.dim(0)});
  RESCNN_DISPATCH(
      D, linear_forward(x.dim(0), w.dim(1), w.dim(0), x.data(), w.data(), bias ? bias->data() : nullptr, y.data()));
  return y;
}

// Accumulates into dw and *db; returns dx. need_dx false: returns an
// undefined dx; need_dw false: dw and db are left alone (a frozen layer).
template <class T, class D>
Tensor<T, D> linear_backward(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& dy, Tensor<T, D>& dw,
                             Tensor<T, D>* db, bool need_dx = true, bool need_dw = true) {
  check_linear_shapes("linear backward", x, w);
  check<ShapeError>(dy.shape() == Shape{x.dim(0), w.dim(0)}, "linear backward: gradient of shape ", dy.shape(),
                    " does not match the output shape ", Shape{x.dim(0), w.dim(0)});
  Tensor<T, D> dx;
  if (need_dx) dx = Tensor<T, D>::empty(x.shape());
  if (!need_dx && !need_dw) return dx;
  RESCNN_DISPATCH(
      D, linear_backward(x.dim(0), w.dim(1), w.dim(0), x.data(), w.data(), dy.data(), need_dx ? dx.data() : nullptr,
                         need_dw ? dw.data() : nullptr, need_dw && db ? db->data() : nullptr));
  return dx;
}

}  // namespace rescnn::ops
