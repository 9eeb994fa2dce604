// rescnn/backend/cuda/index_width.hpp — when a kernel may count in 32 bits.
//
// 32-bit indices make the per-element division and modulo of the
// element-wise kernels several times cheaper than 64-bit ones, but a
// grid-stride loop
//
//     for (I e = first; e < n; e += stride)
//
// also computes e + stride after its last element, and that value must not
// wrap: with n within one stride of 2^32 a wrapped e is small again, passes
// `e < n`, and the loop never ends (or writes out of bounds). So 32 bits are
// allowed only when n + stride still fits.
//
// Plain C++: tests/cuda/test_cuda_host.cu checks it without a GPU.
#pragma once

#include <cstdint>
#include <limits>

#include "rescnn/core/shape.hpp"

namespace rescnn::cuda::detail {

// Whether a grid-stride loop over [0, n) whose stride is at most
// `max_stride` can use std::uint32_t for its index.
constexpr bool fits_uint32_loop(index_t n, index_t max_stride) {
  constexpr index_t kMax = static_cast<index_t>(std::numeric_limits<std::uint32_t>::max());
  return n >= 0 && max_stride >= 0 && n <= kMax && max_stride <= kMax - n;
}

}  // namespace rescnn::cuda::detail
