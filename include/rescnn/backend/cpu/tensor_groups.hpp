// rescnn/backend/cpu/tensor_groups.hpp — element-wise updates over groups of
// tensors (see backend/tensor_groups.hpp).
#pragma once

#include <vector>

#include "rescnn/backend/tensor_groups.hpp"

namespace rescnn::cpu {

// Below this many elements a parallel region costs more than it saves.
inline constexpr index_t kForEachParallelMin = index_t{1} << 15;

// op(g.ptr, i) for every element of every group. Each element is updated on
// its own, so the result does not depend on the thread count.
template <class T, int K, class Op>
void for_each_element(const std::vector<TensorGroup<T, K>>& groups, const Op& op) {
  for (const auto& g : groups) {
    const index_t n = g.n;
#pragma omp parallel for simd schedule(static) if (n >= kForEachParallelMin)
    for (index_t i = 0; i < n; ++i) op(g.ptr, i);
  }
}

}  // namespace rescnn::cpu
