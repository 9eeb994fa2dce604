// rescnn/backend/cpu/conv_gemm.hpp — convolution as implicit GEMM (float,
// AVX-512).
//
// A convolution is the product of its weights [OC, K] (K = C/g * kh * kw) with
// the im2col matrix [K, J] of the input (J = N * OH * OW). The classic CPU
// implementation writes that matrix out (nine times the input for a 3x3
// kernel) and then copies it again into the GEMM's packed panels. Here the
// GEMM's B packer reads the panels straight from the image with AVX-512
// gathers (padding is a masked-off lane, read as zero), and the GEMM's
// store writes the output straight into NCHW: the im2col matrix never
// exists, no per-sample loop remains, and the output needs no copy.
//
//   forward          Y[OC, J]  = W[OC, K]  * col(x)[K, J]
//   backward-weight  dW[OC, K] += dY[OC, J] * col(x)^T[J, K]
//   backward-data    stride 1:  dx = the forward convolution of dY with the
//                    flipped, transposed weights and padding d*(k-1) - p;
//                    otherwise: dcol[K, J] = W^T dY, then col2im (chunked).
//
// Gather indices are 32-bit: tensors of 2^31 elements or more take the
// Eigen path in conv2d.hpp (usable_for()).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/backend/cpu/im2col.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu::conv_gemm {

using gemm::kMR;
using gemm::kNR;

// A lane whose position is outside the image for every tap.
inline constexpr std::int32_t kOutside = std::numeric_limits<std::int32_t>::min() / 2;

// Whether the gathers' 32-bit indices can address every tensor involved.
inline bool usable_for(const Conv2dGeometry& g) {
  const auto limit = static_cast<index_t>(std::numeric_limits<std::int32_t>::max() / 2);
  return g.input_shape().numel() < limit && g.output_shape().numel() < limit;
}

// Lanes (ih, iw) inside [0, H) x [0, W): one unsigned compare each.
inline __mmask16 inside(__m512i ih, __m512i iw, __m512i h, __m512i w) {
  return _mm512_cmplt_epu32_mask(ih, h) & _mm512_cmplt_epu32_mask(iw, w);
}

// How one vector of 16 lanes is read: lanes whose memory offsets are
// consecutive form a run, read with one masked load (lanes outside the run,
// or outside the image, are masked off and read as zero). A vector of more
// than kMaxRuns runs is gathered instead. For a stride-1 convolution a run is
// a stretch of one output row, so on planes 16 or more wide most vectors are
// one or two runs.
struct LaneRuns {
  static constexpr int kMaxRuns = 3;
  int count = 0;                   // 0: every lane is past the end; > kMaxRuns: gather
  __mmask16 mask[kMaxRuns]{};      // the run's lanes
  std::int32_t origin[kMaxRuns]{};  // offset of lane 0 as if the run started there

  static LaneRuns of(const std::int32_t* offset, const bool* valid) {
    LaneRuns r;
    int lane = 0;
    while (lane < 16) {
      if (!valid[lane]) {
        ++lane;
        continue;
      }
      int end = lane + 1;
      while (end < 16 && valid[end] && offset[end] == offset[end - 1] + 1) ++end;
      if (r.count < kMaxRuns) {
        r.mask[r.count] = static_cast<__mmask16>(((1u << end) - 1u) & ~((1u << lane) - 1u));
        r.origin[r.count] = offset[lane] - lane;
      }
      ++r.count;
      lane = end;
    }
    return r;
  }

  // The 16 values at offsets index (gather) or origin + lane (runs) plus
  // `shift`, for the lanes in `inside`; zero elsewhere.
  __m512 load(const float* x, __m512i index, std::int32_t shift, __mmask16 inside) const {
    if (count > kMaxRuns) return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, index, x, 4);
    __m512 v = _mm512_setzero_ps();
    for (int i = 0; i < count; ++i) v = _mm512_mask_loadu_ps(v, mask[i] & inside, x + origin[i] + shift);
    return v;
  }
};

// op(B) = col(x)[K, J] of one group: row k = (c, i, j) a kernel tap of input
// channel c0 + c, column = (n, oh, ow) an output position.
struct ColumnsB {
  const float* x;
  const Conv2dGeometry* g;
  index_t c0;

  void operator()(index_t k0, index_t kc, index_t j0, index_t nc, float* dst) const {
    const Conv2dGeometry& G = *g;
    const index_t P = G.out_plane(), J = G.batch * P, taps = G.kernel.h * G.kernel.w;
    const auto W = static_cast<std::int32_t>(G.in_w), HW = static_cast<std::int32_t>(G.in_plane());
    const auto CHW = static_cast<std::int32_t>(G.in_channels * G.in_plane());
    const __m512i vh = _mm512_set1_epi32(static_cast<std::int32_t>(G.in_h)), vw = _mm512_set1_epi32(W);
    for (index_t p = 0; p < nc; p += kNR) {
      // Per column: the input offset and position of its tap (0, 0).
      alignas(64) std::int32_t base[kNR], ih0[kNR], iw0[kNR];
      bool valid[kNR];
      for (index_t t = 0; t < kNR; ++t) {
        const index_t j = j0 + p + t;
        valid[t] = j < J;
        if (!valid[t]) {
          base[t] = 0;
          ih0[t] = kOutside;
          iw0[t] = kOutside;
          continue;
        }
        const index_t n = j / P, q = j - n * P, oh = q / G.out_w, ow = q - oh * G.out_w;
        ih0[t] = static_cast<std::int32_t>(oh * G.stride.h - G.padding.h);
        iw0[t] = static_cast<std::int32_t>(ow * G.stride.w - G.padding.w);
        base[t] = static_cast<std::int32_t>(n) * CHW + ih0[t] * W + iw0[t];
      }
      __m512i vbase[3], vih[3], viw[3];
      LaneRuns runs[3];
      for (int v = 0; v < 3; ++v) {
        vbase[v] = _mm512_load_si512(base + 16 * v);
        vih[v] = _mm512_load_si512(ih0 + 16 * v);
        viw[v] = _mm512_load_si512(iw0 + 16 * v);
        runs[v] = LaneRuns::of(base + 16 * v, valid + 16 * v);
      }
      float* out = dst + p * kc;
      index_t c = k0 / taps, i = (k0 % taps) / G.kernel.w, jj = k0 % G.kernel.w;
      for (index_t k = 0; k < kc; ++k) {
        const auto di = static_cast<std::int32_t>(i * G.dilation.h), dj = static_cast<std::int32_t>(jj * G.dilation.w);
        const std::int32_t shift = static_cast<std::int32_t>(c0 + c) * HW + di * W + dj;
        const __m512i off = _mm512_set1_epi32(shift);
        const __m512i vdi = _mm512_set1_epi32(di), vdj = _mm512_set1_epi32(dj);
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) {
          const __mmask16 m = inside(_mm512_add_epi32(vih[v], vdi), _mm512_add_epi32(viw[v], vdj), vh, vw);
          _mm512_store_ps(out + k * kNR + 16 * v, runs[v].load(x, _mm512_add_epi32(vbase[v], off), shift, m));
        }
        if (++jj == G.kernel.w) {
          jj = 0;
          if (++i == G.kernel.h) {
            i = 0;
            ++c;
          }
        }
      }
    }
  }
};

// op(B) = col(x)^T[J, K] of one group (for the weight gradient): row = an
// output position, column = a kernel tap.
struct ColumnsTransposedB {
  const float* x;
  const Conv2dGeometry* g;
  index_t c0;

  void operator()(index_t k0, index_t kc, index_t j0, index_t nc, float* dst) const {
    const Conv2dGeometry& G = *g;
    const index_t P = G.out_plane(), taps = G.kernel.h * G.kernel.w, K = G.patch_size();
    const auto W = static_cast<std::int32_t>(G.in_w), HW = static_cast<std::int32_t>(G.in_plane());
    const auto CHW = static_cast<std::int32_t>(G.in_channels * G.in_plane());
    const __m512i vh = _mm512_set1_epi32(static_cast<std::int32_t>(G.in_h)), vw = _mm512_set1_epi32(W);
    for (index_t p = 0; p < nc; p += kNR) {
      // Per column (tap): its offset and displacement.
      alignas(64) std::int32_t off[kNR], di[kNR], dj[kNR];
      for (index_t t = 0; t < kNR; ++t) {
        const index_t k = j0 + p + t;
        if (k >= K) {
          off[t] = 0;
          di[t] = kOutside;
          dj[t] = kOutside;
          continue;
        }
        const index_t c = k / taps, i = (k % taps) / G.kernel.w, jj = k % G.kernel.w;
        di[t] = static_cast<std::int32_t>(i * G.dilation.h);
        dj[t] = static_cast<std::int32_t>(jj * G.dilation.w);
        off[t] = static_cast<std::int32_t>(c0 + c) * HW + di[t] * W + dj[t];
      }
      __m512i voff[3], vdi[3], vdj[3];
      for (int v = 0; v < 3; ++v) {
        voff[v] = _mm512_load_si512(off + 16 * v);
        vdi[v] = _mm512_load_si512(di + 16 * v);
        vdj[v] = _mm512_load_si512(dj + 16 * v);
      }
      float* out = dst + p * kc;
      index_t n = k0 / P, q = k0 - n * P, oh = q / G.out_w, ow = q - oh * G.out_w;
      for (index_t k = 0; k < kc; ++k) {
        const auto ih0 = static_cast<std::int32_t>(oh * G.stride.h - G.padding.h);
        const auto iw0 = static_cast<std::int32_t>(ow * G.stride.w - G.padding.w);
        const __m512i base = _mm512_set1_epi32(static_cast<std::int32_t>(n) * CHW + ih0 * W + iw0);
        const __m512i vih0 = _mm512_set1_epi32(ih0), viw0 = _mm512_set1_epi32(iw0);
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) {
          const __mmask16 m = inside(_mm512_add_epi32(vdi[v], vih0), _mm512_add_epi32(vdj[v], viw0), vh, vw);
          const __m512 val = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(voff[v], base), x, 4);
          _mm512_store_ps(out + k * kNR + 16 * v, val);
        }
        if (++ow == G.out_w) {
          ow = 0;
          if (++oh == G.out_h) {
            oh = 0;
            ++n;
          }
        }
      }
    }
  }
};

// op(A) = t[rows, J] for an NCHW tensor t: row r = channel r0 + r, column =
// (n, position). Used for dY in the weight gradient.
struct NchwRowsA {
  const float* t;
  index_t r0, channels, plane, rows;  // rows: M

  void operator()(index_t i0, index_t mc, index_t k0, index_t kc, float* dst) const {
    for (index_t p = 0; p < mc; p += kMR) {
      float* out = dst + p * kc;
      for (index_t r = 0; r < kMR; ++r) {
        const index_t row = i0 + p + r;
        if (row >= rows) {
          for (index_t k = 0; k < kc; ++k) out[k * kMR + r] = 0.0f;
          continue;
        }
        index_t k = 0, j = k0;
        while (k < kc) {
          const index_t n = j / plane, q = j - n * plane, run = std::min(kc - k, plane - q);
          const float* src = t + (n * channels + r0 + row) * plane + q;
          for (index_t e = 0; e < run; ++e) out[(k + e) * kMR + r] = src[e];
          k += run;
          j += run;
        }
      }
    }
  }
};

// op(B) = t[rows, J] for an NCHW tensor t (row = channel r0 + k, column =
// (n, position)). Used for dY in the strided backward-data product.
struct NchwRowsB {
  const float* t;
  index_t r0, channels, plane, cols;  // cols: N = batch * plane of this product

  void operator()(index_t k0, index_t kc, index_t j0, index_t nc, float* dst) const {
    for (index_t p = 0; p < nc; p += kNR) {
      float* out = dst + p * kc;
      const index_t valid = std::min(kNR, std::min(nc - p, cols - j0 - p));
      for (index_t k = 0; k < kc; ++k) {
        float* row_out = out + k * kNR;
        index_t e = 0, j = j0 + p;
        while (e < valid) {
          const index_t n = j / plane, q = j - n * plane, run = std::min(valid - e, plane - q);
          std::copy_n(t + (n * channels + r0 + k0 + k) * plane + q, run, row_out + e);
          e += run;
          j += run;
        }
        std::fill(row_out + valid, row_out + kNR, 0.0f);
      }
    }
  }
};

// ---- the three passes --------------------------------------------------------------------------------

// y = conv(x, w) + bias (bias may be null); y is overwritten.
inline void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const index_t K = g.patch_size(), ocpg = g.out_channels_per_group(), P = g.out_plane();
  for (index_t grp = 0; grp < g.groups; ++grp) {
    const index_t oc0 = grp * ocpg;
    sgemm_packed(ocpg, g.batch * P, K, gemm::PackA{w + oc0 * K, K, false, ocpg},
                 ColumnsB{x, &g, grp * g.in_channels_per_group()},
                 gemm::NchwTarget{y + oc0 * P, P, g.out_channels * P, bias ? bias + oc0 : nullptr}, false);
  }
}

// dw += dW, db += the per-channel sum of dy (when db is non-null).
inline void backward_weight(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  const index_t K = g.patch_size(), ocpg = g.out_channels_per_group(), P = g.out_plane();
  for (index_t grp = 0; grp < g.groups; ++grp) {
    const index_t oc0 = grp * ocpg;
    sgemm_packed(ocpg, K, g.batch * P, NchwRowsA{dy, oc0, g.out_channels, P, ocpg},
                 ColumnsTransposedB{x, &g, grp * g.in_channels_per_group()}, gemm::MatrixTarget{dw + oc0 * K, K},
                 true);
  }
  if (db) {
#pragma omp parallel for schedule(static)
    for (index_t oc = 0; oc < g.out_channels; ++oc) {
      float s = 0;
      for (index_t n = 0; n < g.batch; ++n) {
        const float* row = dy + (n * g.out_channels + oc) * P;
        for (index_t q = 0; q < P; ++q) s += row[q];
      }
      db[oc] += s;
    }
  }
}

// The geometry of the stride-1 input gradient as a forward convolution of
// dy: channels swap, the kernel is flipped, padding becomes d*(k-1) - p.
inline bool transposed_geometry(const Conv2dGeometry& g, Conv2dGeometry& t) {
  if (g.stride != Size2(1)) return false;
  const index_t ph = g.dilation.h * (g.kernel.h - 1) - g.padding.h;
  const index_t pw = g.dilation.w * (g.kernel.w - 1) - g.padding.w;
  if (ph < 0 || pw < 0) return false;
  t = g;
  t.in_channels = g.out_channels;
  t.out_channels = g.in_channels;
  t.in_h = g.out_h;
  t.in_w = g.out_w;
  t.out_h = g.in_h;
  t.out_w = g.in_w;
  t.padding = {ph, pw};
  return true;
}

// dx (overwritten) = the gradient of conv(x, w) with respect to x.
inline void backward_data(const Conv2dGeometry& g, const float* w, const float* dy, float* dx) {
  const index_t ocpg = g.out_channels_per_group(), cpg = g.in_channels_per_group();
  const index_t kh = g.kernel.h, kw = g.kernel.w, taps = kh * kw, K = g.patch_size();
  Conv2dGeometry t;
  if (transposed_geometry(g, t)) {
    // w'[c][oc][kh-1-i][kw-1-j] = w[oc][c][i][j], group by group.
    float* wt = scratch(Scratch::kTransposedWeights).get<float>(static_cast<std::size_t>(g.weight_shape().numel()));
    for (index_t grp = 0; grp < g.groups; ++grp)
      for (index_t oc = 0; oc < ocpg; ++oc)
        for (index_t c = 0; c < cpg; ++c)
          for (index_t q = 0; q < taps; ++q)
            wt[((grp * cpg + c) * ocpg + oc) * taps + (taps - 1 - q)] = w[((grp * ocpg + oc) * cpg + c) * taps + q];
    forward(t, dy, wt, nullptr, dx);
    return;
  }
  // Strided: dcol = W^T dY for a chunk of samples, then scatter-add.
  const index_t P = g.out_plane();
  const index_t per_sample = K * P;
  const index_t chunk = std::clamp<index_t>(static_cast<index_t>((std::size_t{16} << 20) / sizeof(float)) /
                                                std::max<index_t>(per_sample, 1),
                                            1, std::max<index_t>(g.batch, 1));
  float* col = scratch(Scratch::kColumns).get<float>(static_cast<std::size_t>(per_sample * chunk));
  std::fill(dx, dx + g.input_shape().numel(), 0.0f);
  for (index_t n0 = 0; n0 < g.batch; n0 += chunk) {
    const index_t count = std::min(chunk, g.batch - n0);
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const index_t oc0 = grp * ocpg;
      sgemm_packed(K, count * P, ocpg, gemm::PackA{w + oc0 * K, K, true, K},
                   NchwRowsB{dy + n0 * g.out_channels * P, oc0, g.out_channels, P, count * P},
                   gemm::MatrixTarget{col, count * P}, false);
      conv_detail::col2im_add(g, col, n0, count, grp * cpg, dx);
    }
  }
}

}  // namespace rescnn::cpu::conv_gemm

#endif  // __AVX512F__
