// rescnn/backend/cpu/level_amx.hpp — the bf16 GEMM and convolutions of
// autocast on AMX (Intel Sapphire Rapids and later: AMX-TILE, AMX-BF16), at
// the avx512_bf16 level (bf16_kernels.hpp chooses them). The kernels are
// level_body.inc's bf16 ones with AMX's 32 x 32 tile (kernels/gemm.inc);
// this level has no float kernels (avx512's serve).
//
// Compiled wherever the avx512_bf16 level is (RESCNN_CPU_HAS_AMX_KERNELS);
// runs only where the CPU has AMX and Linux grants this process the tile
// state (bf16_kernels.hpp: amx_usable()).
#pragma once

#include "rescnn/backend/cpu/isa.hpp"

#if RESCNN_CPU_HAS_AMX_KERNELS

#include "rescnn/backend/cpu/level_prelude.hpp"

#if defined(__clang__)
#pragma clang attribute push(                                                                                                                                                            \
    __attribute__((target(                                                                                                                                                               \
        "avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512bf16,avx512vnni,amx-tile,amx-bf16"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target( \
    "avx,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe,xsave,cx16,sahf,sse3,ssse3,sse4.1,sse4.2,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512bf16,avx512vnni,amx-tile,amx-bf16")
#endif

namespace rescnn::cpu::amx {
#define RESCNN_LEVEL_LANES 16
#define RESCNN_LEVEL_ISA ::rescnn::cpu::Isa::avx512_bf16
#define RESCNN_LEVEL_NS amx
#define RESCNN_LEVEL_AMX 1
#define RESCNN_LEVEL_BF16 1
#include "rescnn/backend/cpu/kernels/level_body.inc"
#undef RESCNN_LEVEL_BF16
#undef RESCNN_LEVEL_AMX
#undef RESCNN_LEVEL_NS
#undef RESCNN_LEVEL_ISA
#undef RESCNN_LEVEL_LANES
}  // namespace rescnn::cpu::amx

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // RESCNN_CPU_HAS_AMX_KERNELS
