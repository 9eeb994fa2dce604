// rescnn/backend/cuda/launch.cuh — launch geometry shared by the kernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cuda::detail {

inline constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU
// several times over, never more than the work needs.
inline unsigned grid_for(index_t n, int threads = kThreads) {
  const index_t wanted = (n + threads - 1) / threads;
  const index_t cap = static_cast<index_t>(context().properties().multiProcessorCount) * 32;
  return static_cast<unsigned>(std::max<index_t>(1, std::min(wanted, cap)));
}

// for (index_t i : grid_stride(n)) inside a kernel.
#define RESCNN_GRID_STRIDE_LOOP(i, n)                                                               \
  for (::rescnn::index_t i = static_cast<::rescnn::index_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
       i < (n); i += static_cast<::rescnn::index_t>(blockDim.x) * gridDim.x)

}  // namespace rescnn::cuda::detail
