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
inline index_t max_grid_blocks() { return static_cast<index_t>(context().properties().multiProcessorCount) * 32; }

inline unsigned grid_for(index_t n, int threads = kThreads) {
  const index_t wanted = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<index_t>(1, std::min(wanted, max_grid_blocks())));
}

// The largest stride of a grid-stride loop launched with grid_for(n, threads).
inline index_t max_grid_stride(int threads = kThreads) { return max_grid_blocks() * threads; }

// for (index_t i : grid_stride(n)) inside a kernel.
#define RESCNN_GRID_STRIDE_LOOP(i, n)                                                                        \
  for (::rescnn::index_t i = static_cast<::rescnn::index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<::rescnn::index_t>(blockDim.x) * gridDim.x)

}  // namespace rescnn::cuda::detail
