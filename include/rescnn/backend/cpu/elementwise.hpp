// rescnn/backend/cpu/elementwise.hpp — ReLU and element-wise sums.
#pragma once

#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

template <class T>
void relu_forward(index_t n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

// Uses the output: y > 0 exactly where x > 0, and the output is what the
// layer keeps anyway.
template <class T>
void relu_backward(index_t n, const T* y, const T* dy, T* dx) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

// out = a + b
template <class T>
void add(index_t n, const T* a, const T* b, T* out) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// out += a
template <class T>
void add_inplace(index_t n, T* out, const T* a) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) out[i] += a[i];
}

}  // namespace rescnn::cpu
