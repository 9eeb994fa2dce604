// rescnn/backend/cpu/bf16_kernels.hpp — whether a float product runs in bf16
// now, and the kernels that do it (the avx512_bf16 level's Bf16Kernels,
// kernels/level_body.inc).
//
//   if (with_bf16_kernels([&](auto k) { return k.conv2d_forward(g, x, w, b, y); })) return;
//
// calls the lambda when autocast asks for bf16 (core/precision.hpp) and the
// level in use is avx512_bf16, and returns what it returned; otherwise it
// returns false and the caller runs its float kernel. A CPU (or a cap,
// RESCNN_MAX_CPU_ISA) without the level, or whose vdpbf16ps does not beat
// its FMA (bf16_dot_product_pays), computes in fp32 and says so once on
// stderr: bf16 is never slower than fp32.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/core/precision.hpp"

namespace rescnn::cpu {

// Whether this CPU's vdpbf16ps outruns its fp32 FMA. AMD's (Zen 4, Zen 5)
// does twice the multiply-adds per instruction at the FMA's rate: twice
// fp32's throughput. Intel's (Cooper Lake, Sapphire and Emerald Rapids)
// issues on one port where the FMA has two, and measured slower than fp32
// on an Emerald Rapids here (benchmarks/results/bf16-peak.md); those CPUs
// compute bf16 with AMX, which rescnn does not use yet. RESCNN_CPU_BF16=1
// uses vdpbf16ps anyway, =0 never; a fixed rule, not a timing, so that a
// run and its resume compute the same bits.
inline bool bf16_dot_product_pays() {
  static const bool pays = [] {
    if (const char* v = std::getenv("RESCNN_CPU_BF16"); v && *v) {
      const std::string_view value(v);
      if (value == "1") return true;
      if (value == "0") return false;
      fail("RESCNN_CPU_BF16: expected 0 or 1, got '", value, "'");
    }
#if RESCNN_CPU_X86_LEVELS
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") != 0;
#else
    return false;
#endif
  }();
  return pays;
}

namespace bf16_detail {
inline std::atomic<int>& forced() {  // -1: the rule above; 0, 1: set_bf16_dot_product()
  static std::atomic<int> value{-1};
  return value;
}
}  // namespace bf16_detail

// Overrides bf16_dot_product_pays() from code (tests, benchmarks); returns
// whether bf16 was used before.
inline bool set_bf16_dot_product(bool use) {
  const int before = bf16_detail::forced().exchange(use ? 1 : 0);
  return before < 0 ? bf16_dot_product_pays() : before == 1;
}

// Whether bf16 autocast computes in bf16 at the level in use.
inline bool bf16_compute_available() {
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL
  if (isa() < Isa::avx512_bf16) return false;
  const int forced = bf16_detail::forced().load(std::memory_order_relaxed);
  return forced < 0 ? bf16_dot_product_pays() : forced == 1;
#else
  return false;
#endif
}

// Why bf16 autocast computes in fp32 here (empty when it does not).
inline std::string bf16_fallback_reason() {
  if (bf16_compute_available()) return {};
  if (isa() < Isa::avx512_bf16)
    return ::rescnn::detail::concat("the CPU kernel level is ", isa_name(isa()),
                                    ", and bf16 needs avx512_bf16 (AVX512_BF16)");
  return "this CPU's vdpbf16ps is not faster than its fp32 FMA (RESCNN_CPU_BF16=1 uses it anyway)";
}

namespace bf16_detail {
inline void note_fp32_fallback() {
  static std::atomic<bool> noted{false};
  if (!noted.exchange(true))
    std::fprintf(stderr, "rescnn: bf16 autocast computes in fp32: %s\n", bf16_fallback_reason().c_str());
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
