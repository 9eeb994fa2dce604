// rescnn/backend/cpu/bf16_kernels.hpp — whether a float product runs in bf16
// now, and the kernels that do it (the avx512_bf16 level's Bf16Kernels,
// kernels/level_body.inc).
//
//   if (with_bf16_kernels([&](auto k) { return k.conv2d_forward(g, x, w, b, y); })) return;
//
// calls the lambda when autocast asks for bf16 (core/precision.hpp) and the
// level in use is avx512_bf16, and returns what it returned; otherwise it
// returns false and the caller runs its float kernel. A CPU (or a cap,
// RESCNN_MAX_CPU_ISA) without the level computes in fp32 and says so once
// on stderr: fp32 is the fastest it has.
#pragma once

#include <atomic>
#include <cstdio>

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/core/precision.hpp"

namespace rescnn::cpu {

// Whether bf16 autocast computes in bf16 at the level in use.
inline bool bf16_compute_available() {
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL
  return isa() >= Isa::avx512_bf16;
#else
  return false;
#endif
}

namespace bf16_detail {
inline void note_fp32_fallback() {
  static std::atomic<bool> noted{false};
  if (!noted.exchange(true))
    std::fprintf(stderr,
                 "rescnn: bf16 autocast computes in fp32 on this CPU: its kernel level is %s, bf16 needs "
                 "avx512_bf16 (AVX512_BF16)\n",
                 isa_name(isa()));
}
}  // namespace bf16_detail

template <class F>
bool with_bf16_kernels(F&& f) {
  const Precision p = autocast_precision();
  if (p == Precision::fp32) return false;
  if (p == Precision::fp16)
    fail("fp16 autocast runs on CUDA only; on the CPU use bf16 (its level here: ", isa_name(isa()), ")");
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL
  if (bf16_compute_available()) return f(avx512_bf16::Bf16Kernels{});
#endif
  bf16_detail::note_fp32_fallback();
  return false;
}

}  // namespace rescnn::cpu
