// rescnn/backend/precision_support.hpp — which autocast precisions
// (core/precision.hpp) a device computes in, for programs that take the
// precision as an option (the examples' --precision).
//
//   check_precision_supported<D>(p, "--precision")  throws a ValueError
//       naming the option when device D cannot compute in p at all;
//   precision_description<D>(p)  "bf16 (amx)", "bf16 (avx512_bf16)", or
//       "bf16 (computed in fp32: why)" where the CPU falls back; on CUDA
//       "bf16 (tensor cores)" and "fp16 (tensor cores)".
//
// On CUDA, bf16 needs a GPU of compute capability 8.0 (Ampere) or newer:
// older ones have no bf16 arithmetic, and cuDNN would fail at the first
// convolution with a message that names neither the GPU nor the option.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rescnn/backend/cpu/bf16_kernels.hpp"
#include "rescnn/core/device.hpp"
#include "rescnn/core/error.hpp"
#include "rescnn/core/precision.hpp"

#if RESCNN_WITH_CUDA
#include "rescnn/backend/cuda/context.hpp"
#endif

namespace rescnn {

namespace detail {

// Why a GPU of compute capability major.minor cannot compute in p, or
// nullopt when it can (separate from the device query, so CPU-only tests
// cover it).
inline std::optional<std::string> cuda_precision_problem(Precision p, int major, int minor,
                                                         const std::string& gpu_name) {
  if (p == Precision::bf16 && major < 8)
    return concat("bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; ", gpu_name, " is ", major, ".", minor,
                  ": use fp16 or fp32");
  return std::nullopt;
}

}  // namespace detail

template <class D>
void check_precision_supported(Precision p, std::string_view what = "precision") {
  if (p == Precision::fp32) return;
  if constexpr (is_cuda_v<D>) {
#if RESCNN_WITH_CUDA
    const cudaDeviceProp& gpu = cuda::context().properties();
    if (const auto problem = detail::cuda_precision_problem(p, gpu.major, gpu.minor, gpu.name))
      fail(what, " ", *problem);
#endif
  } else {
    if (p == Precision::fp16) fail(what, " fp16 runs on CUDA only; on the CPU use bf16");
  }
}

template <class D>
std::string precision_description(Precision p) {
  if constexpr (is_cuda_v<D>) {
    if (p != Precision::fp32) return precision_name(p) + std::string(" (tensor cores)");
  } else {
    if (p == Precision::bf16)
      return cpu::bf16_compute_available() ? std::string("bf16 (") + cpu::bf16_engine_name(cpu::bf16_engine()) + ")"
                                           : "bf16 (computed in fp32: " + cpu::bf16_fallback_reason() + ")";
  }
  return precision_name(p);
}

}  // namespace rescnn
