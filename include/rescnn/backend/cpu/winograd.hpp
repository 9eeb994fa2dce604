// rescnn/backend/cpu/winograd.hpp — 3x3 stride-1 convolutions by Winograd's
// minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", CVPR 2016). float, AVX-512.
//
// Each 2x2 block ("tile") of one output channel's plane is
//
//   Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A
//
// with d_c the 4x4 input patch under the tile, g_c the 3x3 kernel of input
// channel c and "." the elementwise product. Over the 16 points xi of the
// transformed 4x4 tile, the sum over channels is 16 independent GEMMs:
//
//   M_xi[OC, tiles] = U_xi[OC, C] * V_xi[C, tiles]
//
// 16 multiplies per tile and channel pair instead of 4 x 9 = 36: 2.25 times
// fewer than the direct convolution. The transforms' coefficients are 0,
// +-1 and +-1/2, so the rounding error stays that of a few more additions
// (test_gemm bounds it like every other path: 1e-5 relative).
//
// The 3x3 stride-1 convolutions are most of a ResNet's work (two per basic
// block), and their input gradient is one too (conv_gemm::backward_data runs
// it as the forward convolution of dY with flipped weights), so both go
// through here. The weight gradient stays on the implicit GEMM.
//
// Work is done in chunks of tiles sized for the L2 cache: a chunk's 16
// transformed inputs and 16 products are written and read while still
// cached, never as whole-tensor intermediates. The threads take chunks
// first come first served; which thread computes a chunk does not change
// what it computes, so results do not depend on the thread count.
//
// Tiles are vectorised 16 to a register: a lane is one tile, and the 16
// values of a patch are gathered (masked where the patch leaves the image,
// which is how padding costs nothing), transformed with 32 vector
// additions, and stored straight into the GEMM's packed B panels.
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu::winograd {

using gemm::kKC;
using gemm::kMR;
using gemm::kNR;

inline constexpr int kPoints = 16;  // the transformed tile: (2 + 3 - 1)^2

// Measured with bench_layers (2 threads, side by side): on a 3x3 plane the
// 2x2 tiles overhang (16 outputs' worth of work for 9) and conv_gemm.hpp's
// tap classes, which skip the padding, win: 157-185 against 135 effective
// GFLOP/s for 96x96's stage 4. A 4x4 plane already favours Winograd: 240
// against 128 for 28x28's stage 2. The channel minimum is a choice, not a
// measurement: below it the GEMMs are too shallow to hide the transforms.
inline constexpr index_t kMinPlane = 4;
inline constexpr index_t kMinChannels = 16;

inline bool suitable(const Conv2dGeometry& g) {
  return g.kernel == Size2(3) && g.stride == Size2(1) && g.dilation == Size2(1) && g.groups == 1 &&
         g.padding.h <= 2 && g.padding.w <= 2 && std::min(g.out_h, g.out_w) >= kMinPlane &&
         std::min(g.in_channels, g.out_channels) >= kMinChannels;
}

// Where the 2x2 output tiles lie: tile t of the batch is sample
// t / per_sample, tile row (t % per_sample) / cols, tile column
// (t % per_sample) % cols.
struct TileGrid {
  index_t rows, cols, per_sample, total;
  explicit TileGrid(const Conv2dGeometry& g)
      : rows((g.out_h + 1) / 2), cols((g.out_w + 1) / 2), per_sample(rows * cols), total(g.batch * rows * cols) {}
};

// Tiles per chunk: a multiple of the GEMM's panel width, with the chunk's
// transformed input (C x tiles) and products (OC x tiles), 16 of each,
// in about 1 MiB.
inline index_t chunk_tiles(index_t in_channels, index_t out_channels) {
  const index_t budget = (index_t{1} << 20) / (kPoints * static_cast<index_t>(sizeof(float)));
  return std::clamp<index_t>(budget / (in_channels + out_channels) / kNR * kNR, kNR, gemm::kNC);
}

// U_xi = G g G^T for every output channel m and input channel c, written as
// the GEMM's packed A panels (gemm::Prepacked layout, padded_m rows; block
// xi at u + xi * padded_m * C). The kernel of (m, c) is read at
// w[m * row_stride + c * channel_stride + tap], taps reversed when
// `flipped` (the input gradient's view of the weights).
inline void transform_weights(const Conv2dGeometry& g, const float* w, index_t row_stride, index_t channel_stride,
                              bool flipped, index_t padded_m, float* u) {
  const index_t M = g.out_channels, C = g.in_channels, block = padded_m * C;
  std::fill(u, u + kPoints * block, 0.0f);  // rows past M stay zero
#pragma omp parallel for schedule(static)
  for (index_t m = 0; m < M; ++m)
    for (index_t c = 0; c < C; ++c) {
      const float* src = w + m * row_stride + c * channel_stride;
      float k[3][3];
      for (int t = 0; t < 9; ++t) k[t / 3][t % 3] = src[flipped ? 8 - t : t];
      float gk[4][3];  // G k
      for (int j = 0; j < 3; ++j) {
        gk[0][j] = k[0][j];
        gk[1][j] = 0.5f * (k[0][j] + k[1][j] + k[2][j]);
        gk[2][j] = 0.5f * (k[0][j] - k[1][j] + k[2][j]);
        gk[3][j] = k[2][j];
      }
      const index_t pc = c / kKC * kKC, kc = std::min(kKC, C - pc);
      const index_t at = pc * padded_m + (m / kMR * kMR) * kc + (c - pc) * kMR + m % kMR;
      for (int i = 0; i < 4; ++i) {  // (G k) G^T
        const float row[4] = {gk[i][0], 0.5f * (gk[i][0] + gk[i][1] + gk[i][2]),
                              0.5f * (gk[i][0] - gk[i][1] + gk[i][2]), gk[i][2]};
        for (int j = 0; j < 4; ++j) u[(i * 4 + j) * block + at] = row[j];
      }
    }
}

// ---- the transforms of the data -------------------------------------------------------------------
//
// Two ways each. Tile rows of at least kRowwiseMinTiles tiles are processed
// a row segment at a time: the patch rows are read with plain vector loads,
// transformed, and split into the tiles' even and odd columns with
// permutes; outputs are interleaved back the same way. Shorter tile rows
// would leave most lanes idle that way, so there one lane is one tile of
// any row, read with gathers and written with scatters. Measured with
// bench_layers, forward, effective GFLOP/s (gathers / row-wise):
// 12 tiles a row (96x96 stage 1) 265-292 / 431-442; 6 tiles (96x96 stage
// 2) about equal; 3 tiles (stage 3) 580 / 460; 2 and 4 tiles (28x28
// stages 2 and 1) 440-470 / 256-259 and 360-385 / 236.
inline constexpr index_t kRowwiseMinTiles = 8;

// V_xi = B^T d B for tiles [t0, t0 + count) of the grid and every input
// channel, written as the GEMM's packed B panels for a product of `width`
// columns (block xi at v + xi * C * width). Columns past `count`, up to the
// end of their panel, are zero.
inline void transform_input_gather(const Conv2dGeometry& g, const TileGrid& grid, const float* x, index_t t0,
                                   index_t count, index_t width, float* v) {
  const index_t C = g.in_channels, H = g.in_h, W = g.in_w, HW = H * W;
  const index_t filled = (count + kNR - 1) / kNR * kNR;  // the GEMM reads whole panels only
  for (index_t q = 0; q < filled; q += 16) {
    alignas(64) std::int32_t base[16];
    unsigned row_ok[4] = {}, col_ok[4] = {};
    for (int l = 0; l < 16; ++l) {
      base[l] = 0;
      if (q + l >= count) continue;  // no lane bit set: reads nothing, yields zero
      const index_t t = t0 + q + l, n = t / grid.per_sample, r = t % grid.per_sample;
      const index_t ih = 2 * (r / grid.cols) - g.padding.h, iw = 2 * (r % grid.cols) - g.padding.w;
      base[l] = static_cast<std::int32_t>(n * C * HW + ih * W + iw);
      for (int i = 0; i < 4; ++i) {
        if (ih + i >= 0 && ih + i < H) row_ok[i] |= 1u << l;
        if (iw + i >= 0 && iw + i < W) col_ok[i] |= 1u << l;
      }
    }
    __mmask16 ok[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) ok[i][j] = static_cast<__mmask16>(row_ok[i] & col_ok[j]);
    const __m512i vbase = _mm512_load_si512(base);
    const index_t panel = q / kNR * kNR, lane0 = q % kNR;
    for (index_t c = 0; c < C; ++c) {
      const __m512i index = _mm512_add_epi32(vbase, _mm512_set1_epi32(static_cast<std::int32_t>(c * HW)));
      __m512 d[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          d[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ok[i][j], index, x + i * W + j, 4);
      __m512 t[4][4];  // B^T d
      for (int j = 0; j < 4; ++j) {
        t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
      }
      const index_t pc = c / kKC * kKC, kc = std::min(kKC, C - pc);
      float* dst = v + pc * width + panel * kc + (c - pc) * kNR + lane0;
      const index_t block = C * width;
      for (int i = 0; i < 4; ++i) {  // (B^T d) B
        _mm512_store_ps(dst + (i * 4 + 0) * block, _mm512_sub_ps(t[i][0], t[i][2]));
        _mm512_store_ps(dst + (i * 4 + 1) * block, _mm512_add_ps(t[i][1], t[i][2]));
        _mm512_store_ps(dst + (i * 4 + 2) * block, _mm512_sub_ps(t[i][2], t[i][1]));
        _mm512_store_ps(dst + (i * 4 + 3) * block, _mm512_sub_ps(t[i][1], t[i][3]));
      }
    }
  }
}

// y (tiles [t0, t0 + count)) = A^T M A + bias, M_xi at m + xi * OC * width
// (row-major, OC x width). Output positions past the plane's edge (odd
// sizes) are not written.
inline void transform_output_scatter(const Conv2dGeometry& g, const TileGrid& grid, const float* m, index_t t0,
                                     index_t count, index_t width, const float* bias, float* y) {
  const index_t OC = g.out_channels, OH = g.out_h, OW = g.out_w, P = OH * OW, block = OC * width;
  for (index_t q = 0; q < count; q += 16) {
    alignas(64) std::int32_t base[16];
    unsigned row_ok[2] = {}, col_ok[2] = {};
    for (int l = 0; l < 16; ++l) {
      base[l] = 0;
      if (q + l >= count) continue;
      const index_t t = t0 + q + l, n = t / grid.per_sample, r = t % grid.per_sample;
      const index_t oh = 2 * (r / grid.cols), ow = 2 * (r % grid.cols);
      base[l] = static_cast<std::int32_t>(n * OC * P + oh * OW + ow);
      for (int a = 0; a < 2; ++a) {
        if (oh + a < OH) row_ok[a] |= 1u << l;
        if (ow + a < OW) col_ok[a] |= 1u << l;
      }
    }
    __mmask16 ok[2][2];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) ok[a][b] = static_cast<__mmask16>(row_ok[a] & col_ok[b]);
    const __m512i vbase = _mm512_load_si512(base);
    for (index_t oc = 0; oc < OC; ++oc) {
      const float* src = m + oc * width + q;
      __m512 s0[4], s1[4];  // M A, row by row
      for (int i = 0; i < 4; ++i) {
        const __m512 m0 = _mm512_load_ps(src + (i * 4 + 0) * block), m1 = _mm512_load_ps(src + (i * 4 + 1) * block);
        const __m512 m2 = _mm512_load_ps(src + (i * 4 + 2) * block), m3 = _mm512_load_ps(src + (i * 4 + 3) * block);
        s0[i] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s1[i] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 b = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
      const __m512 y00 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), b);
      const __m512 y01 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), b);
      const __m512 y10 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]), b);
      const __m512 y11 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]), b);
      const __m512i index = _mm512_add_epi32(vbase, _mm512_set1_epi32(static_cast<std::int32_t>(oc * P)));
      _mm512_mask_i32scatter_ps(y, ok[0][0], index, y00, 4);
      _mm512_mask_i32scatter_ps(y + 1, ok[0][1], index, y01, 4);
      _mm512_mask_i32scatter_ps(y + OW, ok[1][0], index, y10, 4);
      _mm512_mask_i32scatter_ps(y + OW + 1, ok[1][1], index, y11, 4);
    }
  }
}

// The part of one tile row inside a chunk, at most 16 tiles: sample n, tile
// row `row`, tile columns [col, col + length), the first of them tile `at`
// of the chunk.
struct Segment {
  index_t n, row, col, length, at;
};

template <class F>
void for_each_segment(const TileGrid& grid, index_t t0, index_t count, F&& f) {
  for (index_t p = 0; p < count;) {
    const index_t t = t0 + p, r = t % grid.per_sample, col = r % grid.cols;
    const index_t length = std::min({index_t{16}, grid.cols - col, count - p});
    f(Segment{t / grid.per_sample, r / grid.cols, col, length, p});
    p += length;
  }
}

inline __mmask16 first_lanes(index_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// Lanes [0, length) of `value` to columns [at, at + length) of one row of
// packed B panels (`row`: that row in the first panel; panel p at
// row + p * kNR * kc), splitting at a panel boundary.
inline void store_panel_lanes(float* row, index_t kc, index_t at, index_t length, __m512 value) {
  const index_t first = std::min(length, kNR - at % kNR);
  _mm512_mask_storeu_ps(row + (at / kNR) * kNR * kc + at % kNR, first_lanes(first), value);
  if (first < length)  // lane `first` starts the next panel
    _mm512_mask_storeu_ps(row + (at / kNR + 1) * kNR * kc - first, first_lanes(length) & ~first_lanes(first), value);
}

inline __m512 shift_by_two(__m512 lo, __m512 hi) {  // elements 2..17 of lo:hi
  return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi), _mm512_castps_si512(lo), 2));
}

inline void transform_input_rows(const Conv2dGeometry& g, const TileGrid& grid, const float* x, index_t t0,
                                 index_t count, index_t width, float* v) {
  const index_t C = g.in_channels, H = g.in_h, W = g.in_w, HW = H * W, block = C * width;
  const index_t filled = (count + kNR - 1) / kNR * kNR;  // the GEMM reads whole panels: zero the tail
  for (index_t c = 0; c < C; ++c) {
    const index_t pc = c / kKC * kKC, kc = std::min(kKC, C - pc);
    for (int xi = 0; xi < kPoints; ++xi)
      for (index_t p = count; p < filled; p += 16)
        store_panel_lanes(v + xi * block + pc * width + (c - pc) * kNR, kc, p, std::min<index_t>(16, filled - p),
                          _mm512_setzero_ps());
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for_each_segment(grid, t0, count, [&](const Segment& s) {
    // The patches of the segment cover input rows ih0 .. ih0 + 3 and the
    // 2 * length + 2 columns from iw0: three vectors per row, zero outside
    // the image.
    const index_t ih0 = 2 * s.row - g.padding.h, iw0 = 2 * s.col - g.padding.w, span = 2 * s.length + 2;
    __mmask16 inside[3];
    for (int q = 0; q < 3; ++q) {
      unsigned bits = 0;
      for (int l = 0; l < 16; ++l) {
        const index_t xcol = 16 * q + l, iw = iw0 + xcol;
        if (xcol < span && iw >= 0 && iw < W) bits |= 1u << l;
      }
      inside[q] = static_cast<__mmask16>(bits);
    }
    for (index_t c = 0; c < C; ++c) {
      const float* plane = x + (s.n * C + c) * HW;
      __m512 d[4][3];
      for (int i = 0; i < 4; ++i) {
        const index_t ih = ih0 + i;
        for (int q = 0; q < 3; ++q)
          d[i][q] = (ih >= 0 && ih < H) ? _mm512_maskz_loadu_ps(inside[q], plane + ih * W + iw0 + 16 * q)
                                        : _mm512_setzero_ps();
      }
      __m512 t[4][3];  // B^T d, along whole rows
      for (int q = 0; q < 3; ++q) {
        t[0][q] = _mm512_sub_ps(d[0][q], d[2][q]);
        t[1][q] = _mm512_add_ps(d[1][q], d[2][q]);
        t[2][q] = _mm512_sub_ps(d[2][q], d[1][q]);
        t[3][q] = _mm512_sub_ps(d[1][q], d[3][q]);
      }
      const index_t pc = c / kKC * kKC, kc = std::min(kKC, C - pc);
      float* row = v + pc * width + (c - pc) * kNR;
      for (int i = 0; i < 4; ++i) {
        // Tile k of the segment reads columns 2k .. 2k + 3: e0 = column 2k,
        // o0 = 2k + 1, e1 = 2k + 2, o1 = 2k + 3.
        const __m512 s0 = shift_by_two(t[i][0], t[i][1]), s1 = shift_by_two(t[i][1], t[i][2]);
        const __m512 e0 = _mm512_permutex2var_ps(t[i][0], even, t[i][1]);
        const __m512 o0 = _mm512_permutex2var_ps(t[i][0], odd, t[i][1]);
        const __m512 e1 = _mm512_permutex2var_ps(s0, even, s1);
        const __m512 o1 = _mm512_permutex2var_ps(s0, odd, s1);
        store_panel_lanes(row + (i * 4 + 0) * block, kc, s.at, s.length, _mm512_sub_ps(e0, e1));
        store_panel_lanes(row + (i * 4 + 1) * block, kc, s.at, s.length, _mm512_add_ps(o0, e1));
        store_panel_lanes(row + (i * 4 + 2) * block, kc, s.at, s.length, _mm512_sub_ps(e1, o0));
        store_panel_lanes(row + (i * 4 + 3) * block, kc, s.at, s.length, _mm512_sub_ps(o0, o1));
      }
    }
  });
}

inline void transform_output_rows(const Conv2dGeometry& g, const TileGrid& grid, const float* m, index_t t0,
                                  index_t count, index_t width, const float* bias, float* y) {
  const index_t OC = g.out_channels, OH = g.out_h, OW = g.out_w, P = OH * OW, block = OC * width;
  // Interleaving two vectors of 16 tiles' columns b = 0 and b = 1 gives 32 consecutive outputs.
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for_each_segment(grid, t0, count, [&](const Segment& s) {
    const index_t oh = 2 * s.row, ow = 2 * s.col, columns = std::min(2 * s.length, OW - ow);
    const __mmask16 lanes = first_lanes(s.length), store_low = first_lanes(columns),
                    store_high = first_lanes(std::max<index_t>(0, columns - 16));
    const bool second_row = oh + 1 < OH;
    for (index_t oc = 0; oc < OC; ++oc) {
      const float* src = m + oc * width + s.at;
      __m512 s0[4], s1[4];  // M A, row by row
      for (int i = 0; i < 4; ++i) {
        const __m512 m0 = _mm512_maskz_loadu_ps(lanes, src + (i * 4 + 0) * block);
        const __m512 m1 = _mm512_maskz_loadu_ps(lanes, src + (i * 4 + 1) * block);
        const __m512 m2 = _mm512_maskz_loadu_ps(lanes, src + (i * 4 + 2) * block);
        const __m512 m3 = _mm512_maskz_loadu_ps(lanes, src + (i * 4 + 3) * block);
        s0[i] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s1[i] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 b = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
      float* out = y + (s.n * OC + oc) * P + oh * OW + ow;
      {
        const __m512 y00 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), b);
        const __m512 y01 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), b);
        _mm512_mask_storeu_ps(out, store_low, _mm512_permutex2var_ps(y00, low, y01));
        _mm512_mask_storeu_ps(out + 16, store_high, _mm512_permutex2var_ps(y00, high, y01));
      }
      if (second_row) {
        const __m512 y10 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]), b);
        const __m512 y11 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]), b);
        _mm512_mask_storeu_ps(out + OW, store_low, _mm512_permutex2var_ps(y10, low, y11));
        _mm512_mask_storeu_ps(out + OW + 16, store_high, _mm512_permutex2var_ps(y10, high, y11));
      }
    }
  });
}

// y = conv(x, w) + bias (bias may be null) for a suitable() geometry; y is
// overwritten. The weights are read as transform_weights() says.
inline void forward(const Conv2dGeometry& g, const float* x, const float* w, index_t row_stride, index_t channel_stride,
                    bool flipped, const float* bias, float* y) {
  const index_t C = g.in_channels, M = g.out_channels, padded_m = (M + kMR - 1) / kMR * kMR;
  float* u = scratch(Scratch::kWinogradWeights).get<float>(static_cast<std::size_t>(kPoints * padded_m * C));
  transform_weights(g, w, row_stride, channel_stride, flipped, padded_m, u);
  const TileGrid grid(g);
  const index_t width = chunk_tiles(C, M), chunks = (grid.total + width - 1) / width;
  const bool rowwise = grid.cols >= kRowwiseMinTiles;
#pragma omp parallel
  {
    float* v = scratch(Scratch::kWinogradInput).get<float>(static_cast<std::size_t>(kPoints * C * width));
    float* prod = scratch(Scratch::kWinogradProducts).get<float>(static_cast<std::size_t>(kPoints * M * width));
#pragma omp for schedule(dynamic)
    for (index_t chunk = 0; chunk < chunks; ++chunk) {
      const index_t t0 = chunk * width, count = std::min(width, grid.total - t0);
      const index_t cols = (count + kNR - 1) / kNR * kNR;  // whole panels; the tail is zero
      if (rowwise) transform_input_rows(g, grid, x, t0, count, width, v);
      else transform_input_gather(g, grid, x, t0, count, width, v);
      for (int xi = 0; xi < kPoints; ++xi)
        gemm::gemm_part(0, M, 0, cols, C, gemm::Prepacked{u + xi * padded_m * C, padded_m},
                        gemm::Prepacked{v + xi * C * width, width}, gemm::MatrixTarget{prod + xi * M * width, width},
                        false);
      if (rowwise) transform_output_rows(g, grid, prod, t0, count, width, bias, y);
      else transform_output_scatter(g, grid, prod, t0, count, width, bias, y);
    }
  }
}

}  // namespace rescnn::cpu::winograd

#endif  // __AVX512F__
