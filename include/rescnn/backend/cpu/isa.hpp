// rescnn/backend/cpu/isa.hpp — which instruction-set level the CPU kernels
// run at, chosen once per process from the CPU's features.
//
// The float kernels (GEMM, implicit-GEMM and Winograd convolutions,
// BatchNorm, pooling, element-wise; kernels/level_body.inc) are compiled
// once per level, each inside its own namespace with that level's
// target attribute (level_avx2.hpp, level_avx512.hpp). A program therefore
// needs no -march to run at full speed: the level is picked at run time.
//
//   generic      Eigen and plain loops, compiled with the program's own flags
//   avx2         AVX2 + FMA (x86-64-v3: Haswell, Zen 1 and later)
//   avx512       AVX-512 F/BW/VL/DQ/CD (x86-64-v4: Skylake-SP, Zen 4 and later)
//   avx512_bf16  avx512 with AVX512_BF16 and VNNI (Cooper Lake, Sapphire
//                Rapids, Zen 4 and later); its float kernels are avx512's
//
// RESCNN_MAX_CPU_ISA (generic, avx2, avx512, avx512_bf16; any case) caps the
// level, as ONEDNN_MAX_CPU_ISA does for oneDNN; set_max_isa() does the same
// from code. isa() reports the level in use.
//
// One definition per program. A level is compiled in a translation unit only
// when the unit's own flags enable nothing beyond that level's features, so
// the level's functions get exactly the level's features whatever -march the
// unit has: two units compiled with different flags produce the same bodies,
// and compute the same bits, for the same kernel (tests/odr). GCC cannot take
// features away, so a unit built with -mavx512f has no avx2 level: capped
// below avx512 it runs the generic level. The rest of the library (the
// dispatch, the layers, the generic level's Eigen code) is compiled with each
// unit's own flags, as any header-only code is: a program runs on the CPUs
// that all of its units' flags allow, and the generic level rounds as the
// unit's Eigen was compiled.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rescnn/core/enum_names.hpp"
#include "rescnn/core/error.hpp"

// ---- which levels this translation unit compiles ------------------------------------------------------
// x86-64 with GCC or Clang (the target attribute), and not nvcc's host pass:
// cudafe does not carry the target pragmas through, so CUDA sources run
// their CPU tensors on the generic level.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__) && \
    !defined(RESCNN_CPU_GENERIC_ONLY)
#define RESCNN_CPU_X86_LEVELS 1
#else
#define RESCNN_CPU_X86_LEVELS 0
#endif

#if RESCNN_CPU_X86_LEVELS && !defined(__AVX512F__)
#define RESCNN_CPU_HAS_AVX2_LEVEL 1
#else
#define RESCNN_CPU_HAS_AVX2_LEVEL 0
#endif

// The features beyond x86-64-v4 that mark a unit as built for a newer CPU.
#if defined(__AVX512BF16__) || defined(__AVX512VNNI__) || defined(__AVX512FP16__) || defined(__AVX512VBMI__) || \
    defined(__AVX512IFMA__) || defined(__AVX512BITALG__) || defined(__AVX512VPOPCNTDQ__) || defined(__AVX512VBMI2__)
#define RESCNN_CPU_BEYOND_V4 1
#else
#define RESCNN_CPU_BEYOND_V4 0
#endif

#if RESCNN_CPU_X86_LEVELS && !RESCNN_CPU_BEYOND_V4
#define RESCNN_CPU_HAS_AVX512_LEVEL 1
#else
#define RESCNN_CPU_HAS_AVX512_LEVEL 0
#endif

// The avx512_bf16 level (its bf16 kernels) is compiled wherever there are
// x86 levels. Its float kernels are avx512's; they are compiled under the
// bf16 level's own target only in units that cannot compile avx512 (built
// for a CPU beyond x86-64-v4), whose bf16 kernels then also carry the unit's
// extra features.
#if RESCNN_CPU_X86_LEVELS
#define RESCNN_CPU_HAS_AVX512_BF16_LEVEL 1
#else
#define RESCNN_CPU_HAS_AVX512_BF16_LEVEL 0
#endif

// AMX's bf16 kernels: wherever the avx512_bf16 level is, with a compiler
// that knows the AMX intrinsics (GCC 11, Clang 12).
#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define RESCNN_CPU_HAS_AMX_KERNELS 1
#else
#define RESCNN_CPU_HAS_AMX_KERNELS 0
#endif

namespace rescnn::cpu {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3 };

inline constexpr Isa kAllIsas[] = {Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16};

inline const char* isa_name(Isa level) {
  switch (level) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512_bf16: return "avx512_bf16";
  }
  return "unknown";
}

// "avx2", "AVX512_BF16", ... to the level; anything else is a ValueError
// naming the accepted values. `what` names the source in the message.
inline Isa parse_isa(std::string_view text, std::string_view what = "CPU ISA level") {
  return ::rescnn::detail::parse_enum_name(text, kAllIsas, isa_name, what);
}

// The best level this CPU (and its operating system, which must save the
// wider registers) supports. __builtin_cpu_supports checks both.
inline Isa cpu_supported_isa() {
#if RESCNN_CPU_X86_LEVELS
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512cd");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
  return bf16 ? Isa::avx512_bf16 : avx512 ? Isa::avx512 : avx2 ? Isa::avx2 : Isa::generic;
#else
  return Isa::generic;
#endif
}

namespace isa_detail {

// The level cap from RESCNN_MAX_CPU_ISA, or the highest level when unset.
// An unknown value is an error at the first kernel call, not a silent
// fallback.
inline Isa isa_cap_from_environment() {
  const char* value = std::getenv("RESCNN_MAX_CPU_ISA");
  if (!value || !*value) return Isa::avx512_bf16;
  return parse_isa(value, "RESCNN_MAX_CPU_ISA");
}

inline std::atomic<int>& active_isa_storage() {
  static std::atomic<int> level{static_cast<int>(std::min(cpu_supported_isa(), isa_cap_from_environment()))};
  return level;
}

}  // namespace isa_detail

// The level the CPU kernels run at: the CPU's best, capped by
// RESCNN_MAX_CPU_ISA and set_max_isa(). Kernels a translation unit has not
// compiled at that level run at the next lower level it has.
inline Isa isa() { return static_cast<Isa>(isa_detail::active_isa_storage().load(std::memory_order_relaxed)); }

// Caps the level (as dnnl::set_max_cpu_isa); a cap above what the CPU
// supports runs at the CPU's best. Returns the previous level. Results can
// round differently across levels, so set it before training, not during.
inline Isa set_max_isa(Isa cap) {
  const Isa chosen = std::min(cap, cpu_supported_isa());
  return static_cast<Isa>(isa_detail::active_isa_storage().exchange(static_cast<int>(chosen)));
}

}  // namespace rescnn::cpu
