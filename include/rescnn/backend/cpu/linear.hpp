// rescnn/backend/cpu/linear.hpp — fully connected layer as Eigen GEMMs.
//   y = x W^T + b,  x [N, in], W [out, in]
#pragma once

#include <Eigen/Core>

#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

template <class T>
using RowMajorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMajorMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

template <class T>
void linear_forward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* bias, T* y) {
  ConstRowMajorMap<T> X(x, batch, in), W(w, out, in);
  RowMajorMap<T> Y(y, batch, out);
  Y.noalias() = X * W.transpose();
  if (bias) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, out);
}

// Adds into dw/db; overwrites dx when non-null.
template <class T>
void linear_backward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db) {
  ConstRowMajorMap<T> X(x, batch, in), W(w, out, in), dY(dy, batch, out);
  RowMajorMap<T> dW(dw, out, in);
  dW.noalias() += dY.transpose() * X;
  if (db) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, out) += dY.colwise().sum();
  if (dx) RowMajorMap<T>(dx, batch, in).noalias() = dY * W;
}

}  // namespace rescnn::cpu
