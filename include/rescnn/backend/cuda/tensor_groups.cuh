// rescnn/backend/cuda/tensor_groups.cuh — element-wise updates over groups of
// tensors in a few launches (see backend/tensor_groups.hpp).
//
// An optimizer step touches every parameter of a model: 62 tensors for
// ResNet-18, 161 for ResNet-50. One launch per tensor would cost more in
// launch overhead than the arithmetic, so, as PyTorch's multi_tensor_apply,
// the groups and a list of (group, chunk) pairs are passed by value in the
// kernel's argument block, each thread block updates one chunk, and a new
// launch starts only when the argument block is full. Arguments by value
// need no device-side table and no copy before the launch. The block stays
// under the 4 KiB every CUDA version accepts.
#pragma once

#include <cstdint>
#include <vector>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/backend/tensor_groups.hpp"

namespace rescnn::cuda {
namespace detail {

inline constexpr index_t kGroupChunk = 16 * 1024;  // elements one thread block updates

template <class T, int K>
struct GroupLaunch {
  // Sized so that the whole struct stays below 4 KiB for K <= 5.
  static constexpr int kMaxGroups = 32;
  static constexpr int kMaxBlocks = 256;
  TensorGroup<T, K> groups[kMaxGroups];
  std::uint8_t block_group[kMaxBlocks];  // which group block b updates
  std::int32_t block_chunk[kMaxBlocks];  // and which chunk of it
};

template <class T, int K, class Op>
__global__ void for_each_element_kernel(GroupLaunch<T, K> args, Op op) {
  const TensorGroup<T, K>& g = args.groups[args.block_group[blockIdx.x]];
  const index_t begin = static_cast<index_t>(args.block_chunk[blockIdx.x]) * kGroupChunk;
  const index_t end = begin + kGroupChunk < g.n ? begin + kGroupChunk : g.n;
  for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) op(g.ptr, i);
}

}  // namespace detail

// op(g.ptr, i) for every element of every group; Op's call operator must be
// __host__ __device__ (RESCNN_HOST_DEVICE).
template <class T, int K, class Op>
void for_each_element(const std::vector<TensorGroup<T, K>>& groups, const Op& op) {
  using Launch = detail::GroupLaunch<T, K>;
  static_assert(sizeof(Launch) + sizeof(Op) <= 4096, "for_each_element: kernel arguments exceed 4 KiB");
  const cudaStream_t stream = context().compute_stream();
  Launch args{};
  int num_groups = 0, num_blocks = 0;
  const auto flush = [&] {
    if (num_blocks > 0) {
      detail::for_each_element_kernel<T, K, Op><<<num_blocks, detail::kThreads, 0, stream>>>(args, op);
      RESCNN_CUDA_CHECK_LAUNCH();
    }
    num_groups = 0;
    num_blocks = 0;
  };
  for (const auto& g : groups) {
    if (g.n <= 0) continue;
    const index_t chunks = (g.n + detail::kGroupChunk - 1) / detail::kGroupChunk;
    check<ShapeError>(chunks <= INT32_MAX, "for_each_element: a tensor of ", g.n, " elements is too large");
    if (num_groups == Launch::kMaxGroups) flush();
    args.groups[num_groups] = g;
    for (index_t c = 0; c < chunks; ++c) {
      if (num_blocks == Launch::kMaxBlocks) {
        flush();  // the group continues in the next launch, as its first group
        args.groups[0] = g;
      }
      args.block_group[num_blocks] = static_cast<std::uint8_t>(num_groups);
      args.block_chunk[num_blocks] = static_cast<std::int32_t>(c);
      ++num_blocks;
    }
    ++num_groups;
  }
  flush();
}

}  // namespace rescnn::cuda
