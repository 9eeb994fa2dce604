// rescnn/backend/cpu/level_avx512_bf16.hpp — the float kernels of the avx512_bf16 level
// (x86-64-v4 with AVX512_BF16 and VNNI. Its float kernels are avx512's, compiled here only in units built for a CPU
// beyond x86-64-v4, which cannot compile the avx512 level (isa.hpp)).
//
// Compiled only where isa.hpp says this unit can (RESCNN_CPU_HAS_AVX512_BF16_LEVEL):
// every function below gets exactly this level's features, whatever flags
// the unit has.
#pragma once

#include "rescnn/backend/cpu/isa.hpp"

#if RESCNN_CPU_HAS_AVX512_BF16_LEVEL

#include "rescnn/backend/cpu/level_prelude.hpp"

#if defined(__clang__)
#pragma clang attribute push(                                                                                                                                          \
    __attribute__((target(                                                                                                                                             \
        "avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512bf16,avx512vnni"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target( \
    "avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512bf16,avx512vnni")
#endif

namespace rescnn::cpu::avx512_bf16 {
#define RESCNN_LEVEL_LANES 16
#define RESCNN_LEVEL_ISA ::rescnn::cpu::Isa::avx512_bf16
#define RESCNN_LEVEL_NS avx512_bf16
#define RESCNN_LEVEL_AMX 0
#define RESCNN_LEVEL_BF16 1
#include "rescnn/backend/cpu/kernels/level_body.inc"
#undef RESCNN_LEVEL_BF16
#undef RESCNN_LEVEL_AMX
#undef RESCNN_LEVEL_NS
#undef RESCNN_LEVEL_ISA
#undef RESCNN_LEVEL_LANES
}  // namespace rescnn::cpu::avx512_bf16

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // RESCNN_CPU_HAS_AVX512_BF16_LEVEL
