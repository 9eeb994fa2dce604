// rescnn/backend/cuda/autocast.cuh — the 16-bit operands of a bf16 or fp16
// autocast product on the GPU (core/precision.hpp).
//
// Under autocast, float convolutions (conv2d.hpp) and Linear (linear.cuh)
// round their operands to bf16 or fp16 (round to nearest even, as the CPU
// engines and torch do), multiply on tensor cores with float accumulation,
// and hand back float results, so that everything around them (BatchNorm,
// ReLU, the loss, the optimizer) stays float, as in torch.autocast.
//
// The operand copies live in the caching allocator (allocator.hpp) only for
// the duration of one call; kernels on the compute stream are ordered, so a
// copy is released as soon as the call is queued.
//
// double never autocasts (as in PyTorch): compute_precision<double>() is fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>
#include <library_types.h>

#include <cstdint>
#include <type_traits>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/backend/cuda/memory.hpp"
#include "rescnn/core/precision.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cuda::detail {

// The precision a product of T elements computes in.
template <class T>
Precision compute_precision() {
  return std::is_same_v<T, float> ? autocast_precision() : Precision::fp32;
}

inline cudnnDataType_t cudnn_half_type(Precision p) {
  return p == Precision::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
}

inline cudaDataType_t blas_half_type(Precision p) { return p == Precision::bf16 ? CUDA_R_16BF : CUDA_R_16F; }

__device__ inline void round_into(float v, __nv_bfloat16& out) { out = __float2bfloat16_rn(v); }
__device__ inline void round_into(float v, __half& out) { out = __float2half_rn(v); }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float widen(__half v) { return __half2float(v); }

template <class H>
__global__ void round_kernel(index_t n, const float* in, H* out) {
  RESCNN_GRID_STRIDE_LOOP(i, n) round_into(in[i], out[i]);
}

// out = widen(in), or out += widen(in) when accumulating (a gradient).
template <class H>
__global__ void widen_kernel(index_t n, const H* in, float* out, bool accumulate) {
  RESCNN_GRID_STRIDE_LOOP(i, n) out[i] = accumulate ? out[i] + widen(in[i]) : widen(in[i]);
}

// n 16-bit elements of device memory, from the caching allocator.
class HalfBuffer {
 public:
  explicit HalfBuffer(index_t n) : storage_(Tensor<std::uint16_t, Cuda>::empty({n})) {}
  void* data() { return storage_.data(); }
  const void* data() const { return storage_.data(); }

 private:
  Tensor<std::uint16_t, Cuda> storage_;
};

// The n floats at `in`, rounded to precision p (bf16 or fp16).
inline HalfBuffer rounded_copy(Precision p, const float* in, index_t n) {
  HalfBuffer out(n);
  if (n == 0) return out;
  const cudaStream_t stream = context().compute_stream();
  if (p == Precision::bf16)
    round_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, in, static_cast<__nv_bfloat16*>(out.data()));
  else
    round_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, in, static_cast<__half*>(out.data()));
  RESCNN_CUDA_CHECK_LAUNCH();
  return out;
}

// out[i] (+)= the n 16-bit values at `in`, widened exactly to float.
inline void widen_into(Precision p, const HalfBuffer& in, float* out, index_t n, bool accumulate) {
  if (n == 0) return;
  const cudaStream_t stream = context().compute_stream();
  if (p == Precision::bf16)
    widen_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, static_cast<const __nv_bfloat16*>(in.data()), out,
                                                       accumulate);
  else
    widen_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, static_cast<const __half*>(in.data()), out, accumulate);
  RESCNN_CUDA_CHECK_LAUNCH();
}

}  // namespace rescnn::cuda::detail
