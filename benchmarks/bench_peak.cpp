// bench_peak — the arithmetic peak of this CPU's cores for the two products
// the CPU kernels are built on: fp32 FMA (vfmadd231ps zmm: 32 flops) and
// bf16 dot products (vdpbf16ps zmm: 16 lanes x 2 products x 2 = 64 flops),
// and where the CPU has AMX, tdpbf16ps (16 x 16 x 32 x 2 = 16,384 flops).
// Each thread runs 24 independent accumulator chains, enough to hide either
// instruction's latency, on values that stay normal (no denormal slow path).
//
//   bench_peak [--threads N] [--rounds R]
//   case=peak_fma_fp32 threads=2 gflops=...
//   case=peak_vdpbf16ps threads=2 gflops=...
//   case=peak_amx_bf16 threads=2 gflops=...      (AMX CPUs only)
//
// The kernels' GFLOP/s divided by these gives the fraction of peak they
// reach (benchmarks/results/).
#include <immintrin.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kChains = 24;
constexpr long kIterations = 20'000'000;

// Not _mm512_reduce_add_ps: GCC 12 warns that it reads an undefined vector.
__attribute__((target("avx512f"))) float lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

__attribute__((target("avx512f"))) float fma_chains(long iterations) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512 x = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(x, x, acc[j]);
    __asm__ volatile("" : "+v"(x));  // keeps the loop from being folded
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return lane_sum(s);
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_chains(long iterations) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80);  // bf16 pairs (1, 1)
  for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, x);
    __asm__ volatile("" : "+v"(x));
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return lane_sum(s);
}

// AMX: four 16 x 16 float accumulators, each tdpbf16ps 16 x 16 x 32
// multiply-adds (16,384 flops), on tiles loaded once.
__attribute__((target("amx-tile,amx-bf16"))) void amx_chains(long iterations) {
  alignas(64) unsigned char config[64] = {};
  config[0] = 1;
  for (int t = 0; t < 8; ++t) {
    config[16 + 2 * t] = 64;
    config[48 + t] = 16;
  }
  _tile_loadconfig(config);
  alignas(64) static const std::uint16_t ones[16 * 32] = {};
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
}

bool amx_available() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 22)) || !(edx & (1u << 24))) return false;
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
  return false;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_peak [--threads N] [--rounds R]\n");
      return 2;
    }
  }
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
    std::fprintf(stderr, "bench_peak: this CPU has no AVX-512 with AVX512_BF16\n");
    return 2;
  }
  // The two alternate, best of `rounds` each, as the machine is shared.
  double best[2] = {0, 0};
  for (int r = 0; r < rounds; ++r)
    for (int which = 0; which < 2; ++which) {
      float sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
      sink += which ? bf16_chains(kIterations) : fma_chains(kIterations);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double flops = double(threads) * kIterations * kChains * 16 * (which ? 4 : 2);
      if (flops / s > best[which]) best[which] = flops / s;
      if (sink == 12345.0f) std::puts("");  // uses the result
    }
  std::printf("case=peak_fma_fp32 threads=%d gflops=%.0f\n", threads, best[0] / 1e9);
  std::printf("case=peak_vdpbf16ps threads=%d gflops=%.0f\n", threads, best[1] / 1e9);
  if (amx_available()) {
    constexpr long kAmxIterations = 2'000'000;
    double amx = 0;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      amx_chains(kAmxIterations);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      amx = std::max(amx, double(threads) * kAmxIterations * 4 * 16384.0 / s);
    }
    std::printf("case=peak_amx_bf16 threads=%d gflops=%.0f\n", threads, amx / 1e9);
  }
  return 0;
}
