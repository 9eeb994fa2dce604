// rescnn/backend/cpu/gemm.hpp — single-precision matrix multiply for AVX-512.
//
//   C (= or +=) op(A) * op(B),  op(A): M x K,  op(B): K x N,  all row-major,
//   op(X) = X or X^T as the caller says.
//
// Eigen's GEMM reaches about half of the FMA units' peak on the AVX-512 cores
// rescnn is benchmarked on; a convolution is almost all GEMM, so this file is
// the CPU backend's engine. It follows the BLIS design:
//
//  - The operands are copied ("packed") block by block into the order the
//    inner kernel reads them: A in panels of kMR rows (kMR values per k), B
//    in panels of kNR columns (kNR values per k). Packing also applies the
//    transposition and zero-pads partial panels, so the kernel never sees a
//    stride, a transpose or an edge.
//  - The micro-kernel keeps a kMR x kNR = 8 x 48 tile of C in 24 of the 32
//    vector registers and, for each k, loads three vectors of B and
//    broadcasts eight values of A: 24 FMAs per 11 loads, so the two FMA
//    pipes, not the loads, set the pace.
//  - Blocks are sized for the caches: a kKC x kNR micro-panel of B in L1
//    while the kMR x kKC panels of A stream past it, the kMC x kKC block of A
//    and the kKC x kNC block of B in L2/L3.
//  - The packers are function objects, so a convolution can pack its
//    im2col matrix straight from the image (an implicit GEMM) without ever
//    writing that matrix out.
//
// Threads split the columns of C (or its rows, when there are few columns)
// into disjoint parts; each thread packs and multiplies its own part, so no
// synchronisation is needed and the result does not depend on the thread
// count. Inside a parallel region the multiply runs on the calling thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

#if defined(__AVX512F__)
inline constexpr bool kHaveFastGemm = true;
#else
inline constexpr bool kHaveFastGemm = false;
#endif

namespace gemm {

inline constexpr index_t kMR = 8;    // rows of the register tile
inline constexpr index_t kNR = 48;   // columns of the register tile (three vectors of 16 floats)
inline constexpr index_t kKC = 256;  // depth of one packed block
inline constexpr index_t kMC = 128;  // rows of one packed block of A
inline constexpr index_t kNC = 1536; // columns of one packed block of B
static_assert(kMC % kMR == 0 && kNC % kNR == 0, "blocks hold whole panels (the packing buffers are sized so)");

// ---- packers ----------------------------------------------------------------------------------------

// Packs elements [at, at + n) of the panel dimension (rows of op(A), columns
// of op(B)) over depth [k0, k0 + kc) into panels of W: element (e, k) of
// panel p goes to dst[p * W * kc + k * W + e % W]; elements past `size` are
// zero. The matrix holds element (e, k) at m[k * ld + e] when
// `contiguous_across` (W consecutive values per k: a plain memcpy), else at
// m[e * ld + k].
template <index_t W>
struct PackPanels {
  const float* m;
  index_t ld;
  bool contiguous_across;
  index_t size;

  void operator()(index_t at, index_t n, index_t k0, index_t kc, float* dst) const {
    for (index_t p = 0; p < n; p += W) {
      const index_t valid = std::min(W, std::min(n - p, size - at - p));
      float* out = dst + p * kc;
      if (contiguous_across) {
        for (index_t k = 0; k < kc; ++k) {
          std::memcpy(out + k * W, m + (k0 + k) * ld + at + p, static_cast<std::size_t>(valid) * sizeof(float));
          std::fill(out + k * W + valid, out + (k + 1) * W, 0.0f);
        }
      } else {
        for (index_t e = 0; e < W; ++e) {
          if (e < valid) {
            const float* src = m + (at + p + e) * ld + k0;
            for (index_t k = 0; k < kc; ++k) out[k * W + e] = src[k];
          } else {
            for (index_t k = 0; k < kc; ++k) out[k * W + e] = 0.0f;
          }
        }
      }
    }
  }
};

// Packs rows [i0, i0 + mc) x depth [k0, k0 + kc) of op(A), op(A)(i, k) =
// transposed ? a[k * ld + i] : a[i * ld + k], into panels of kMR rows.
struct PackA {
  PackPanels<kMR> panels;
  PackA(const float* a, index_t ld, bool transposed, index_t rows) : panels{a, ld, transposed, rows} {}
  void operator()(index_t i0, index_t mc, index_t k0, index_t kc, float* dst) const { panels(i0, mc, k0, kc, dst); }
};

// Packs depth [k0, k0 + kc) x columns [j0, j0 + nc) of op(B), op(B)(k, j) =
// transposed ? b[j * ld + k] : b[k * ld + j], into panels of kNR columns.
struct PackB {
  PackPanels<kNR> panels;
  PackB(const float* b, index_t ld, bool transposed, index_t cols) : panels{b, ld, !transposed, cols} {}
  void operator()(index_t k0, index_t kc, index_t j0, index_t nc, float* dst) const { panels(j0, nc, k0, kc, dst); }
};

#if defined(__AVX512F__)

// ---- where C lives ------------------------------------------------------------------------------

// The 16-lane mask of tile columns [lo, hi) that fall in vector v (columns
// 16v .. 16v + 15).
inline __mmask16 column_mask(index_t v, index_t lo, index_t hi) {
  const index_t a = std::max(lo - 16 * v, index_t{0}), b = std::min(hi - 16 * v, index_t{16});
  if (b <= a) return 0;
  const unsigned bits = (b >= 16 ? 0xFFFFu : ((1u << b) - 1u));
  return static_cast<__mmask16>(bits & ~((1u << a) - 1u));
}

// Adds (or writes) the tile's columns [lo, hi) of one row to memory at
// `dst`, the address of tile column 0 of that row. Lanes outside [lo, hi)
// are masked: they are neither read nor written, even if their addresses lie
// outside the buffer.
inline void store_row_segment(const __m512 (&acc)[3], float* dst, index_t lo, index_t hi, bool accumulate) {
#pragma GCC unroll 3
  for (int v = 0; v < 3; ++v) {
    const __mmask16 m = column_mask(v, lo, hi);
    if (!m) continue;
    __m512 value = acc[v];
    if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(m, dst + 16 * v));
    _mm512_mask_storeu_ps(dst + 16 * v, m, value);
  }
}

// An ordinary row-major matrix: element (i, j) at c[i * ldc + j].
struct MatrixTarget {
  float* c;
  index_t ldc;

  void store(__m512 (&acc)[kMR][3], index_t i, index_t j, index_t m, index_t n, bool accumulate) const {
    for (index_t r = 0; r < m; ++r) store_row_segment(acc[r], c + (i + r) * ldc + j, 0, n, accumulate);
  }
};

// Element (i, j) at base[i * row_stride + col_offset[j]]: a matrix whose
// columns lie anywhere (the positions of an NCHW plane, the taps of a weight
// row). Columns with consecutive offsets form runs, each stored with masked
// vector stores; a tile of many short runs is stored element by element.
//
// `bias` (per row, may be null) is added when a tile is first written, that
// is by the store of the first depth block of a non-accumulating product.
struct OffsetTarget {
  float* base;
  index_t row_stride;
  const std::int32_t* col_offset;
  const float* bias = nullptr;

  void store(__m512 (&acc)[kMR][3], index_t i, index_t j, index_t m, index_t n, bool accumulate) const {
    if (bias && !accumulate)
      for (index_t r = 0; r < m; ++r) {
        const __m512 b = _mm512_set1_ps(bias[i + r]);
        for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_add_ps(acc[r][v], b);
      }
    const std::int32_t* off = col_offset + j;
    index_t runs = 1;
    for (index_t t = 1; t < n; ++t) runs += off[t] != off[t - 1] + 1;
    if (runs > 6) {  // short runs: element by element
      alignas(64) float tile[kNR];
      for (index_t r = 0; r < m; ++r) {
        for (int v = 0; v < 3; ++v) _mm512_store_ps(tile + 16 * v, acc[r][v]);
        float* row = base + (i + r) * row_stride;
        for (index_t t = 0; t < n; ++t) row[off[t]] = accumulate ? row[off[t]] + tile[t] : tile[t];
      }
      return;
    }
    index_t start = 0;
    while (start < n) {
      index_t end = start + 1;
      while (end < n && off[end] == off[end - 1] + 1) ++end;
      // Address of tile column 0 as if the run extended to it.
      float* origin = base + off[start] - start;
      for (index_t r = 0; r < m; ++r) store_row_segment(acc[r], origin + (i + r) * row_stride, start, end, accumulate);
      start = end;
    }
  }
};

// ---- the micro-kernel -----------------------------------------------------------------------------

// Tile (i, j) of C, m <= kMR rows by n <= kNR columns, (=|+=) the product of
// one packed A panel and one packed B panel over depth kc. Partial tiles at
// the edges are computed whole and stored with masks.
template <class Target>
inline void micro_kernel(index_t kc, const float* __restrict ap, const float* __restrict bp, const Target& target,
                         index_t i, index_t j, index_t m, index_t n, bool accumulate) {
  __m512 acc[kMR][3];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r) {
    acc[r][0] = _mm512_setzero_ps();
    acc[r][1] = _mm512_setzero_ps();
    acc[r][2] = _mm512_setzero_ps();
  }
  for (index_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(bp);
    const __m512 b1 = _mm512_load_ps(bp + 16);
    const __m512 b2 = _mm512_load_ps(bp + 32);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kNR), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512 a = _mm512_set1_ps(ap[r]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
    }
    ap += kMR;
    bp += kNR;
  }
  target.store(acc, i, j, m, n, accumulate);
}

// ---- where the packed panels come from ---------------------------------------------------------------

// Packs on demand into the calling thread's buffer.
template <class Packer>
struct PackOnDemand {
  Packer pack;  // APacker or BPacker
  float* buffer;
  const float* operator()(index_t at, index_t extent, index_t pc, index_t kc) const {
    pack(at, extent, pc, kc, buffer);
    return buffer;
  }
};

// Panels packed beforehand, shared by the threads: depth block pc (of kKC)
// starts at base + pc * padded (padded: the extent rounded up to whole
// panels), and within it the panel of row (or column) `at` at at * kc.
struct Prepacked {
  const float* base;
  index_t padded;
  const float* operator()(index_t at, index_t /*extent*/, index_t pc, index_t kc) const {
    return base + pc * padded + at * kc;
  }
};

// Packs every panel of one operand into `dst` (the Prepacked layout), the
// threads of the enclosing parallel region sharing the panels.
template <class PackFn>
void prepack(const PackFn& pack, index_t extent, index_t K, index_t panel, float* dst, index_t thread,
             index_t threads) {
  const index_t padded = (extent + panel - 1) / panel * panel, panels = padded / panel;
  const index_t blocks = (K + kKC - 1) / kKC;
  for (index_t u = thread; u < blocks * panels; u += threads) {
    const index_t pc = (u / panels) * kKC, at = (u % panels) * panel, kc = std::min(kKC, K - pc);
    pack(at, panel, pc, kc, dst + pc * padded + at * kc);
  }
}

// ---- one thread's part ------------------------------------------------------------------------------

// C[i0.., j0..] for rows [i0, i0 + m) and columns [j0, j0 + n) of the whole
// product. a_src(i, mc, pc, kc) gives the packed panels of rows [i, i + mc)
// over depth [pc, pc + kc), b_src(j, nc, pc, kc) those of columns [j, j + nc).
template <class ASrc, class BSrc, class Target>
void gemm_part(index_t i0, index_t m, index_t j0, index_t n, index_t K, const ASrc& a_src, const BSrc& b_src,
               const Target& target, bool accumulate) {
  for (index_t jc = 0; jc < n; jc += kNC) {
    const index_t nc = std::min(kNC, n - jc);
    for (index_t pc = 0; pc < K; pc += kKC) {
      const index_t kc = std::min(kKC, K - pc);
      const bool acc = accumulate || pc > 0;
      const float* bpack = b_src(j0 + jc, nc, pc, kc);
      for (index_t ic = 0; ic < m; ic += kMC) {
        const index_t mc = std::min(kMC, m - ic);
        const float* apack = a_src(i0 + ic, mc, pc, kc);
        for (index_t jr = 0; jr < nc; jr += kNR) {
          const float* bp = bpack + jr * kc;
          for (index_t ir = 0; ir < mc; ir += kMR) {
            micro_kernel(kc, apack + ir * kc, bp, target, i0 + ic + ir, j0 + jc + jr, std::min(kMR, mc - ir),
                         std::min(kNR, nc - jr), acc);
          }
        }
      }
    }
  }
}

// Adapters from the packers' argument order to the sources' (at, extent, pc, kc).
template <class PA>
struct APacker {
  const PA& pack;
  void operator()(index_t i, index_t mc, index_t pc, index_t kc, float* dst) const { pack(i, mc, pc, kc, dst); }
};
template <class PB>
struct BPacker {
  const PB& pack;
  void operator()(index_t j, index_t nc, index_t pc, index_t kc, float* dst) const { pack(pc, kc, j, nc, dst); }
};

#endif  // __AVX512F__

}  // namespace gemm

#if defined(__AVX512F__)

// C (= or +=) op(A) op(B) with op(A) M x K given by pack_a, op(B) K x N
// given by pack_b (see gemm::PackA / gemm::PackB for the contract) and C by
// `target` (gemm::MatrixTarget, gemm::OffsetTarget). K must be positive.
template <class PA, class PB, class Target>
void sgemm_packed(index_t M, index_t N, index_t K, const PA& pack_a, const PB& pack_b, const Target& target,
                  bool accumulate) {
  using namespace gemm;
  if (M <= 0 || N <= 0 || K <= 0) return;
  int threads = 1;
#if defined(_OPENMP)
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  // Enough work per thread to pay for a parallel region: split the columns
  // when there are at least two register tiles' worth per thread, else the rows.
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < 4e6) threads = 1;
  const index_t col_tiles = (N + kNR - 1) / kNR, row_tiles = (M + kMR - 1) / kMR;
  const bool split_cols = col_tiles >= 2 * threads || col_tiles >= row_tiles;
  const index_t tiles = split_cols ? col_tiles : row_tiles;
  threads = static_cast<int>(std::min<index_t>(threads, tiles));
  const APacker<PA> a_packer{pack_a};
  const BPacker<PB> b_packer{pack_b};
  if (threads <= 1) {
    gemm_part(0, M, 0, N, K,
              PackOnDemand<APacker<PA>>{a_packer, scratch(Scratch::kGemmA).get<float>(std::size_t(kKC * kMC))},
              PackOnDemand<BPacker<PB>>{b_packer, scratch(Scratch::kGemmB).get<float>(std::size_t(kKC * kNC))},
              target, accumulate);
    return;
  }
  // The operand every thread needs whole (A when the threads split the
  // columns, B when they split the rows) is packed once, by all threads
  // together, before anyone multiplies; each thread packs its own part of
  // the other operand as it goes.
  const index_t shared_extent = split_cols ? M : N, panel = split_cols ? kMR : kNR;
  const index_t padded = (shared_extent + panel - 1) / panel * panel;
  float* shared = scratch(Scratch::kGemmShared).get<float>(static_cast<std::size_t>(padded * K));
  const Prepacked prepacked{shared, padded};
#pragma omp parallel num_threads(threads)
  {
#if defined(_OPENMP)
    const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const index_t t = 0, nt = 1;
#endif
    if (split_cols) prepack(a_packer, M, K, kMR, shared, t, nt);
    else prepack(b_packer, N, K, kNR, shared, t, nt);
#pragma omp barrier
    const index_t begin = tiles * t / nt, end = tiles * (t + 1) / nt;
    if (split_cols) {
      const index_t j0 = begin * kNR, j1 = std::min(N, end * kNR);
      const PackOnDemand<BPacker<PB>> b_src{b_packer, scratch(Scratch::kGemmB).get<float>(std::size_t(kKC * kNC))};
      if (j1 > j0) gemm_part(0, M, j0, j1 - j0, K, prepacked, b_src, target, accumulate);
    } else {
      const index_t i0 = begin * kMR, i1 = std::min(M, end * kMR);
      const PackOnDemand<APacker<PA>> a_src{a_packer, scratch(Scratch::kGemmA).get<float>(std::size_t(kKC * kMC))};
      if (i1 > i0) gemm_part(i0, i1 - i0, 0, N, K, a_src, prepacked, target, accumulate);
    }
  }
}

// C (= or +=) op(A) op(B) for row-major matrices with leading dimensions.
inline void sgemm(index_t M, index_t N, index_t K, const float* a, index_t lda, bool trans_a, const float* b,
                  index_t ldb, bool trans_b, float* c, index_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // an empty sum
    if (!accumulate)
      for (index_t i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
    return;
  }
  sgemm_packed(M, N, K, gemm::PackA{a, lda, trans_a, M}, gemm::PackB{b, ldb, trans_b, N}, gemm::MatrixTarget{c, ldc},
               accumulate);
}

#endif  // __AVX512F__

}  // namespace rescnn::cpu
