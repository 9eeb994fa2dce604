// rescnn/ops/tensor_groups.hpp — one element-wise rule applied to many
// tensors at once (an optimizer's update of every parameter).
#pragma once

#include <vector>

#include "rescnn/backend/tensor_groups.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

// op(group.ptr, i) for every element i of every group, on device D; see
// backend/tensor_groups.hpp. Op's call operator must be RESCNN_HOST_DEVICE
// so that the GPU backend can run it.
template <class D, class T, int K, class Op>
void for_each_element(const std::vector<TensorGroup<T, K>>& groups, const Op& op) {
  if (groups.empty()) return;  // e.g. an optimizer whose parameters are all frozen
  RESCNN_DISPATCH(D, for_each_element(groups, op));
}

}  // namespace rescnn::ops
