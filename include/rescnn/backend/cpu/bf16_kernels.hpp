// rescnn/backend/cpu/bf16_kernels.hpp — whether a float product runs in bf16
// now, and on which engine.
//
//   if (with_bf16_kernels([&](auto k) { return k.conv2d_forward(g, x, w, b, y); })) return;
//
// calls the lambda with the chosen engine's Bf16Kernels (kernels/level_body.inc)
// when autocast asks for bf16 (core/precision.hpp), and returns what it
// returned; otherwise it returns false and the caller runs its float kernel.
//
// The engines, both at the avx512_bf16 level:
//   amx          AMX tiles (Intel Sapphire Rapids and later): 16 x 32 x 16
//                multiply-adds per instruction (level_amx.hpp)
//   avx512_bf16  vdpbf16ps (level_avx512_bf16.hpp). AMD's (Zen 4, Zen 5) does
//                twice the multiply-adds of an fp32 FMA at the FMA's rate;
//                Intel's issues on one port where the FMA has two, and
//                measured half the FMA's rate on an Emerald Rapids
//                (benchmarks/results/bf16-cpu.md), so Intel uses it only when
//                asked.
// The default is the best one this CPU has: amx, else avx512_bf16 on AMD,
// else none. With none (no AVX512_BF16, RESCNN_MAX_CPU_ISA below
// avx512_bf16, or Intel without AMX), bf16 computes in fp32 and says so once
// on stderr: bf16 is never slower than fp32. RESCNN_CPU_BF16 (auto, amx,
// avx512_bf16, off) or set_bf16_engine() choose; the choice is a fixed rule,
// never a timing, so a run and its resume compute the same bits.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/backend/cpu/level_amx.hpp"
#include "rescnn/core/precision.hpp"

#if RESCNN_CPU_HAS_AMX_KERNELS
#include <cpuid.h>
#endif

namespace rescnn::cpu {

enum class Bf16Engine { automatic, amx, avx512_bf16, off };

inline const char* bf16_engine_name(Bf16Engine e) {
  switch (e) {
    case Bf16Engine::automatic: return "auto";
    case Bf16Engine::amx: return "amx";
    case Bf16Engine::avx512_bf16: return "avx512_bf16";
    case Bf16Engine::off: return "off";
  }
  return "unknown";
}

inline Bf16Engine parse_bf16_engine(std::string_view text, std::string_view what = "bf16 engine") {
  static constexpr Bf16Engine kAll[] = {Bf16Engine::automatic, Bf16Engine::amx, Bf16Engine::avx512_bf16,
                                        Bf16Engine::off};
  return ::rescnn::detail::parse_enum_name(text, kAll, bf16_engine_name, what);
}

// Whether this process can run AMX: the CPU has AMX-TILE and AMX-BF16, and
// Linux grants the tile state (arch_prctl ARCH_REQ_XCOMP_PERM; a process
// must ask before its first tile instruction, which otherwise faults).
inline bool amx_usable() {
#if RESCNN_CPU_HAS_AMX_KERNELS && defined(__linux__) && defined(SYS_arch_prctl)
  static const bool usable = [] {
    // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE (Clang 14's
    // __builtin_cpu_supports does not know the AMX names).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if (!(edx & (1u << 22)) || !(edx & (1u << 24))) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

namespace bf16_detail {
inline Bf16Engine requested_from_environment() {
  const char* v = std::getenv("RESCNN_CPU_BF16");
  return v && *v ? parse_bf16_engine(v, "RESCNN_CPU_BF16") : Bf16Engine::automatic;
}
inline std::atomic<int>& requested() {
  static std::atomic<int> value{static_cast<int>(requested_from_environment())};
  return value;
}
inline bool amd() {
#if RESCNN_CPU_X86_LEVELS
  __builtin_cpu_init();
  return __builtin_cpu_is("amd") != 0;
#else
  return false;
#endif
}
}  // namespace bf16_detail

// Chooses the engine (RESCNN_CPU_BF16 from code); returns the previous choice.
inline Bf16Engine set_bf16_engine(Bf16Engine e) {
  return static_cast<Bf16Engine>(bf16_detail::requested().exchange(static_cast<int>(e)));
}

// The engine bf16 autocast computes on now (off: in fp32).
inline Bf16Engine bf16_engine() {
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL
  if (isa() < Isa::avx512_bf16) return Bf16Engine::off;
  switch (static_cast<Bf16Engine>(bf16_detail::requested().load(std::memory_order_relaxed))) {
    case Bf16Engine::automatic:
      return amx_usable() ? Bf16Engine::amx : bf16_detail::amd() ? Bf16Engine::avx512_bf16 : Bf16Engine::off;
    case Bf16Engine::amx: return amx_usable() ? Bf16Engine::amx : Bf16Engine::off;
    case Bf16Engine::avx512_bf16: return Bf16Engine::avx512_bf16;
    case Bf16Engine::off: return Bf16Engine::off;
  }
#endif
  return Bf16Engine::off;
}

// Whether bf16 autocast computes in bf16 here.
inline bool bf16_compute_available() { return bf16_engine() != Bf16Engine::off; }

// Why bf16 autocast computes in fp32 here (empty when it does not).
inline std::string bf16_fallback_reason() {
  if (bf16_compute_available()) return {};
  if (isa() < Isa::avx512_bf16)
    return ::rescnn::detail::concat("the CPU kernel level is ", isa_name(isa()),
                                    ", and bf16 needs avx512_bf16 (AVX512_BF16)");
  const auto requested = static_cast<Bf16Engine>(bf16_detail::requested().load());
  if (requested == Bf16Engine::off) return "RESCNN_CPU_BF16 (or set_bf16_engine) is off";
  if (requested == Bf16Engine::amx) return "AMX was asked for, but this CPU or process has no AMX";
  return "this CPU has no AMX, and its vdpbf16ps is not faster than its fp32 FMA "
         "(RESCNN_CPU_BF16=avx512_bf16 uses it anyway)";
}

namespace bf16_detail {
inline void note_fp32_fallback() {
  static std::atomic<bool> noted{false};
  if (!noted.exchange(true))
    std::fprintf(stderr, "rescnn: bf16 autocast computes in fp32: %s\n", bf16_fallback_reason().c_str());
}
}  // namespace bf16_detail

template <class F>
bool with_bf16_kernels([[maybe_unused]] F&& f) {  // unused where no level compiles (nvcc)
  const Precision p = autocast_precision();
  if (p == Precision::fp32) return false;
  if (p == Precision::fp16)
    fail("fp16 autocast runs on CUDA only; on the CPU use bf16 (its level here: ", isa_name(isa()), ")");
  switch (bf16_engine()) {
#if RESCNN_CPU_HAS_AMX_KERNELS
    case Bf16Engine::amx: return f(amx::Bf16Kernels{});
#endif
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL
    case Bf16Engine::avx512_bf16: return f(avx512_bf16::Bf16Kernels{});
#endif
    default: bf16_detail::note_fp32_fallback(); return false;
  }
}

}  // namespace rescnn::cpu
