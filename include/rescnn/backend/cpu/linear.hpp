// rescnn/backend/cpu/linear.hpp — fully connected layer as GEMMs: float
// through sgemm (the level in use), double through Eigen.
//   y = x W^T + b,  x [N, in], W [out, in]
#pragma once

#include <Eigen/Core>

#include <type_traits>

#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/backend/cpu/isa.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

template <class T>
using RowMajorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMajorMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

template <class T>
void linear_forward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* bias, T* y) {
  RowMajorMap<T> Y(y, batch, out);
  if constexpr (std::is_same_v<T, float>) {
    layer_gemm(batch, out, in, x, in, false, w, in, true, y, out, false);
  } else {
    ConstRowMajorMap<T> X(x, batch, in), W(w, out, in);
    Y.noalias() = X * W.transpose();
  }
  if (bias) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, out);
}

// Adds into dw/db; overwrites dx when non-null.
template <class T>
void linear_backward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  ConstRowMajorMap<T> X(x, batch, in), W(w, out, in), dY(dy, batch, out);
  if (db) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, out) += dY.colwise().sum();
  if constexpr (std::is_same_v<T, float>) {
    if (dw) layer_gemm(out, in, batch, dy, out, true, x, in, false, dw, in, true);
    if (dx) layer_gemm(batch, in, out, dy, out, false, w, in, false, dx, in, false);
  } else {
    if (dw) RowMajorMap<T>(dw, out, in).noalias() += dY.transpose() * X;
    if (dx) RowMajorMap<T>(dx, batch, in).noalias() = dY * W;
  }
}

}  // namespace rescnn::cpu
