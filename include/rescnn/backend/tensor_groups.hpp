// rescnn/backend/tensor_groups.hpp — the argument of a multi-tensor update.
//
// An optimizer updates every parameter with the same element-wise rule, from
// the parameter, its gradient and its state tensors (a momentum buffer; Adam's
// two moments). Each parameter contributes one group: K pointers to
// equally long tensors and their length. A backend's for_each_element(groups,
// op) calls op(group.ptr, i) for every element i of every group: one loop
// per group on the CPU, a few kernel launches for all of them on the GPU.
// A pointer an op does not use (no momentum) may be null.
#pragma once

#include "rescnn/core/shape.hpp"

namespace rescnn {

template <class T, int K>
struct TensorGroup {
  T* ptr[K];
  index_t n;
};

}  // namespace rescnn
