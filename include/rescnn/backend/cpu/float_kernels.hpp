// rescnn/backend/cpu/float_kernels.hpp — run-time choice among the float
// kernels compiled at each level (isa.hpp).
//
//   with_float_kernels([&](auto k) { return k.conv2d_forward(g, x, w, b, y); })
//
// calls the lambda with the Kernels of the best level this unit compiled at
// or below isa() (level_body.inc lists them) and returns what it returned, or
// false when that level is generic (the caller then runs its Eigen path).
// The choice is a switch on one relaxed atomic load per kernel call.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rescnn/backend/cpu/isa.hpp"
#include "rescnn/backend/cpu/level_avx2.hpp"
#include "rescnn/backend/cpu/level_avx512.hpp"
#include "rescnn/backend/cpu/level_avx512_bf16.hpp"

namespace rescnn::cpu {

// The level whose float kernels run: the best compiled here at or below isa().
inline Isa float_kernel_level() {
  [[maybe_unused]] const Isa level = isa();
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL && !RESCNN_CPU_HAS_AVX512_LEVEL
  if (level >= Isa::avx512_bf16) return Isa::avx512_bf16;
#endif
#if RESCNN_CPU_HAS_AVX512_LEVEL
  if (level >= Isa::avx512) return Isa::avx512;
#endif
#if RESCNN_CPU_HAS_AVX2_LEVEL
  if (level >= Isa::avx2) return Isa::avx2;
#endif
  return Isa::generic;
}

template <class F>
bool with_float_kernels([[maybe_unused]] F&& f) {  // unused where no level compiles (nvcc)
  switch (float_kernel_level()) {
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL && !RESCNN_CPU_HAS_AVX512_LEVEL
    case Isa::avx512_bf16: return f(avx512_bf16::Kernels{});
#endif
#if RESCNN_CPU_HAS_AVX512_LEVEL
    case Isa::avx512: return f(avx512::Kernels{});
#endif
#if RESCNN_CPU_HAS_AVX2_LEVEL
    case Isa::avx2: return f(avx2::Kernels{});
#endif
    default: return false;
  }
}

// For the kernels that return nothing: runs f(k) at the level in use when
// T is float and that level has kernels, and says whether it did (the caller
// runs the generic kernel otherwise).
template <class T, class F>
bool run_float_kernel(F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    return with_float_kernels([&](auto k) {
      f(k);
      return true;
    });
  } else {
    return false;
  }
}

}  // namespace rescnn::cpu
