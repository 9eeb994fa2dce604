// rescnn/ops/dispatch.hpp — compile-time choice of backend by device type.
//
//   RESCNN_DISPATCH(D, relu_forward(n, x, y));
//
// calls cpu::relu_forward for Tensor<T, Cpu>, cuda::relu_forward for
// Tensor<T, Cuda> (in builds with the CUDA backend), and is a compile error
// naming the device otherwise. Every backend provides the same kernel
// functions with the same arguments (raw pointers and validated geometry),
// declared with their contracts in backend/kernels.hpp, so ops:: validates
// once and layers never see a backend.
#pragma once

#include <type_traits>

#include "rescnn/backend/cpu/batchnorm.hpp"
#include "rescnn/backend/cpu/conv2d.hpp"
#include "rescnn/backend/cpu/elementwise.hpp"
#include "rescnn/backend/cpu/linear.hpp"
#include "rescnn/backend/cpu/loss.hpp"
#include "rescnn/backend/cpu/pooling.hpp"
#include "rescnn/backend/cpu/tensor_groups.hpp"
#include "rescnn/backend/kernels.hpp"
#include "rescnn/core/config.hpp"
#include "rescnn/core/device.hpp"

#if RESCNN_WITH_CUDA
#include "rescnn/backend/cuda/batchnorm.cuh"
#include "rescnn/backend/cuda/conv2d.hpp"
#include "rescnn/backend/cuda/elementwise.cuh"
#include "rescnn/backend/cuda/linear.cuh"
#include "rescnn/backend/cuda/loss.cuh"
#include "rescnn/backend/cuda/pooling.cuh"
#include "rescnn/backend/cuda/tensor_groups.cuh"
#endif

namespace rescnn::ops::detail {

template <class D>
inline constexpr bool unsupported_device_v = false;

}  // namespace rescnn::ops::detail

// Used in the final `else` of a device dispatch: a device without kernels is
// a compile error naming the device, not a link error.
#define RESCNN_UNSUPPORTED_DEVICE(D) \
  static_assert(::rescnn::ops::detail::unsupported_device_v<D>, "rescnn: no kernels for this device in this build")

#if RESCNN_WITH_CUDA
#define RESCNN_DISPATCH_CUDA(D, call) else if constexpr (::rescnn::is_cuda_v<D>)::rescnn::cuda::call;
#else
#define RESCNN_DISPATCH_CUDA(D, call)
#endif

#define RESCNN_DISPATCH(D, call)                            \
  if constexpr (::rescnn::is_cpu_v<D>) ::rescnn::cpu::call; \
  RESCNN_DISPATCH_CUDA(D, call)                             \
  else RESCNN_UNSUPPORTED_DEVICE(D)
