// rescnn/backend/cpu/level_avx2.hpp — the float kernels of the avx2 level
// (AVX2 + FMA: x86-64-v3).
//
// Compiled only where isa.hpp says this unit can (RESCNN_CPU_HAS_AVX2_LEVEL):
// every function below gets exactly this level's features, whatever flags
// the unit has.
#pragma once

#include "rescnn/backend/cpu/isa.hpp"

#if RESCNN_CPU_HAS_AVX2_LEVEL

#include "rescnn/backend/cpu/level_prelude.hpp"

#if defined(__clang__)
#pragma clang attribute push(                                                                                          \
    __attribute__((target("avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2")
#endif

namespace rescnn::cpu::avx2 {
#define RESCNN_LEVEL_LANES 8
#define RESCNN_LEVEL_ISA ::rescnn::cpu::Isa::avx2
#define RESCNN_LEVEL_NS avx2
#define RESCNN_LEVEL_AMX 0
#define RESCNN_LEVEL_BF16 0
#include "rescnn/backend/cpu/kernels/level_body.inc"
#undef RESCNN_LEVEL_BF16
#undef RESCNN_LEVEL_AMX
#undef RESCNN_LEVEL_NS
#undef RESCNN_LEVEL_ISA
#undef RESCNN_LEVEL_LANES
}  // namespace rescnn::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // RESCNN_CPU_HAS_AVX2_LEVEL
