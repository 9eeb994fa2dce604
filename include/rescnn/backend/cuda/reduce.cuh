// rescnn/backend/cuda/reduce.cuh — block-wide reductions in a fixed order.
//
// Results must be the same from run to run (a resumed training run
// reproduces its losses bit for bit, and a test that fails once must fail
// again), so no reduction here uses atomics: each thread's value meets the
// others' in a fixed binary tree in shared memory, the same tree every time.
#pragma once

#include "rescnn/backend/cuda/launch.cuh"

namespace rescnn::cuda::detail {

// Combines the kThreads values of a block's threads with `merge` (which
// must be associative for the result to mean anything, and is applied in
// the same tree order every time); thread 0 returns the result, the other
// threads an unspecified value. Every thread of the block must call it, and
// the block must have exactly kThreads threads.
template <class Acc, class Merge>
__device__ Acc block_reduce(Acc v, Merge merge) {
  __shared__ Acc partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width)
      partial[threadIdx.x] = merge(partial[threadIdx.x], partial[threadIdx.x + width]);
    __syncthreads();
  }
  const Acc result = partial[0];
  __syncthreads();  // the array may be reused by a following call
  return result;
}

struct SumOp {
  template <class Acc>
  __device__ Acc operator()(const Acc& a, const Acc& b) const {
    return a + b;
  }
};

}  // namespace rescnn::cuda::detail
