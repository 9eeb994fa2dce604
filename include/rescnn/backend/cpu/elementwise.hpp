// rescnn/backend/cpu/elementwise.hpp — ReLU and element-wise sums: float at
// the level in use (float_kernels.hpp), everything else at the generic level.
#pragma once

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

namespace generic {
#include "rescnn/backend/cpu/kernels/elementwise.inc"
}  // namespace generic

template <class T>
void relu_forward(index_t n, const T* x, T* y) {
  if (!run_float_kernel<T>([&](auto k) { k.relu_forward(n, x, y); })) generic::relu_forward(n, x, y);
}
template <class T>
void relu_backward(index_t n, const T* y, const T* dy, T* dx) {
  if (!run_float_kernel<T>([&](auto k) { k.relu_backward(n, y, dy, dx); })) generic::relu_backward(n, y, dy, dx);
}
template <class T>
void add(index_t n, const T* a, const T* b, T* out) {
  if (!run_float_kernel<T>([&](auto k) { k.add(n, a, b, out); })) generic::add(n, a, b, out);
}
template <class T>
void add_inplace(index_t n, T* out, const T* a) {
  if (!run_float_kernel<T>([&](auto k) { k.add_inplace(n, out, a); })) generic::add_inplace(n, out, a);
}
template <class T>
void add_relu_inplace(index_t n, T* out, const T* a) {
  if (!run_float_kernel<T>([&](auto k) { k.add_relu_inplace(n, out, a); })) generic::add_relu_inplace(n, out, a);
}

}  // namespace rescnn::cpu
