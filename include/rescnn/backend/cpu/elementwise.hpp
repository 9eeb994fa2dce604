// rescnn/backend/cpu/elementwise.hpp — ReLU and element-wise sums.
#pragma once

#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

// Written so that a NaN passes through (NaN < 0 is false), as in PyTorch: a
// NaN must reach the loss and stop training, not be turned into a 0.
template <class T>
void relu_forward(index_t n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

// Uses the output: y > 0 exactly where x > 0, and the output is what the
// layer keeps anyway. Like PyTorch's threshold_backward, the gradient is
// zeroed where y <= 0 and passed elsewhere (a NaN output passes it).
template <class T>
void relu_backward(index_t n, const T* y, const T* dy, T* dx) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) dx[i] = y[i] <= T(0) ? T(0) : dy[i];
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

// out = relu(out + a), NaN-propagating as relu_forward.
template <class T>
void add_relu_inplace(index_t n, T* out, const T* a) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const T v = out[i] + a[i];
    out[i] = v < T(0) ? T(0) : v;
  }
}

}  // namespace rescnn::cpu
