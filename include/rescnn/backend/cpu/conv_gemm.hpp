// rescnn/backend/cpu/conv_gemm.hpp — convolution as implicit GEMM (float,
// AVX-512), without the padding.
//
// A convolution is the product of its weights [OC, K] (K = C/g * kh * kw) with
// the im2col matrix [K, J] of the input (J = N * OH * OW). The classic CPU
// implementation writes that matrix out (nine times the input for a 3x3
// kernel), copies it again into the GEMM's packed panels, and multiplies the
// zeros of the padding like any other value. On the small planes of a
// ResNet's later stages that is most of the work: a 3x3 convolution with
// padding 1 on a 1x1 plane uses one tap of nine, on a 2x2 plane four.
//
// Here the output positions are split into tap classes: positions whose
// window has the same rectangle of taps inside the image (the interior, each
// edge, each corner). Each class is one GEMM whose depth runs over only its
// valid taps, so no padding is ever multiplied and no bounds are tested:
//
//   forward          Y[OC, class] = W[OC, valid taps] * col(x)[valid taps, class]
//   backward-weight  dW[OC, valid taps] += dY[OC, class] * col(x)^T[class, valid taps]
//   backward-data    stride 1: the forward convolution of dY with the
//                    flipped, transposed weights and padding d*(k-1) - p;
//                    otherwise: dcol[K, J] = W^T dY, then col2im (chunked).
//
// The GEMM's packers read the panels straight from the image through tables
// of offsets (masked loads where offsets are consecutive, gathers elsewhere),
// and its store writes straight into NCHW (or into the strided taps of dW):
// the im2col matrix never exists and no per-sample loop remains.
//
// Offsets are 32-bit: tensors of 2^30 elements or more take the Eigen path
// in conv2d.hpp (usable_for()).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/backend/cpu/im2col.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/cpu/winograd.hpp"
#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu::conv_gemm {

using gemm::kMR;
using gemm::kNR;

// Whether 32-bit offsets can address every tensor involved (offsets of
// padded positions may lie a little outside the tensor, hence the margin).
inline bool usable_for(const Conv2dGeometry& g) {
  const auto limit = index_t{1} << 30;
  return g.input_shape().numel() < limit && g.output_shape().numel() < limit;
}

// How one vector of 16 lanes is read: lanes whose memory offsets are
// consecutive form a run, read with one masked load (lanes outside the run,
// or past the end of the matrix, are masked off and read as zero). A vector
// of more than kMaxRuns runs is gathered instead. For a stride-1 convolution
// a run is a stretch of one output row (or, across taps, of one kernel row).
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

// op(A)(m, k) = a[m * row_stride + col_offset[k]]: weights restricted to a
// class's taps, or dY restricted to a class's positions.
struct OffsetColumnsA {
  const float* a;
  index_t row_stride;
  const std::int32_t* col_offset;
  index_t rows;  // M

  void operator()(index_t i0, index_t mc, index_t k0, index_t kc, float* dst) const {
    const std::int32_t* off = col_offset + k0;
    for (index_t p = 0; p < mc; p += kMR) {
      float* out = dst + p * kc;
      for (index_t r = 0; r < kMR; ++r) {
        const index_t row = i0 + p + r;
        if (row >= rows) {
          for (index_t k = 0; k < kc; ++k) out[k * kMR + r] = 0.0f;
          continue;
        }
        const float* src = a + row * row_stride;
        for (index_t k = 0; k < kc; ++k) out[k * kMR + r] = src[off[k]];
      }
    }
  }
};

// op(B)(k, j) = x[depth_offset[k] + lane_offset[j]], every element inside x.
// Forward: k = a tap of a channel, j = an output position of the class.
// Weight gradient: k = a position, j = a tap.
struct OffsetGridB {
  const float* x;
  const std::int32_t* lane_offset;   // per column j
  const std::int32_t* depth_offset;  // per row k
  index_t cols;                      // N

  void operator()(index_t k0, index_t kc, index_t j0, index_t nc, float* dst) const {
    for (index_t p = 0; p < nc; p += kNR) {
      alignas(64) std::int32_t lane[kNR];
      bool valid[kNR];
      for (index_t t = 0; t < kNR; ++t) {
        const index_t j = j0 + p + t;
        valid[t] = j < cols;
        lane[t] = valid[t] ? lane_offset[j] : 0;
      }
      __m512i vlane[3];
      LaneRuns runs[3];
      __mmask16 live[3];
      for (int v = 0; v < 3; ++v) {
        vlane[v] = _mm512_load_si512(lane + 16 * v);
        runs[v] = LaneRuns::of(lane + 16 * v, valid + 16 * v);
        live[v] = 0;
        for (int l = 0; l < 16; ++l) live[v] |= static_cast<__mmask16>(valid[16 * v + l] ? 1u << l : 0u);
      }
      float* out = dst + p * kc;
      for (index_t k = 0; k < kc; ++k) {
        const std::int32_t shift = depth_offset[k0 + k];
        const __m512i vshift = _mm512_set1_epi32(shift);
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v)
          _mm512_store_ps(out + k * kNR + 16 * v, runs[v].load(x, _mm512_add_epi32(vlane[v], vshift), shift, live[v]));
      }
    }
  }
};

// The output positions of one tap class and its rectangle of valid taps.
struct TapClass {
  index_t i_lo, i_hi, j_lo, j_hi;  // kernel rows [i_lo, i_hi) and columns [j_lo, j_hi) inside the image
  std::vector<index_t> rows, cols;  // the output rows and columns of the class
};

// The kernel taps [lo, hi) along one axis that land inside [0, extent) for
// output index o.
inline void taps_inside(index_t o, index_t stride, index_t pad, index_t dilation, index_t kernel, index_t extent,
                        index_t& lo, index_t& hi) {
  const index_t start = o * stride - pad;
  lo = start >= 0 ? 0 : std::min(kernel, (-start + dilation - 1) / dilation);
  hi = start + (kernel - 1) * dilation < extent ? kernel : std::max<index_t>(0, (extent - 1 - start) / dilation + 1);
  if (hi < lo) hi = lo;
}

// Groups the output positions by the rectangle of taps inside the image:
// (distinct row ranges) x (distinct column ranges) classes. Positions whose
// window is entirely padding belong to no class (their output is the bias).
inline std::vector<TapClass> tap_classes(const Conv2dGeometry& g) {
  const auto axis_classes = [](index_t out, index_t stride, index_t pad, index_t dilation, index_t kernel,
                               index_t extent) {
    std::vector<std::pair<std::pair<index_t, index_t>, std::vector<index_t>>> classes;
    for (index_t o = 0; o < out; ++o) {
      index_t lo, hi;
      taps_inside(o, stride, pad, dilation, kernel, extent, lo, hi);
      if (lo == hi) continue;
      auto it = std::find_if(classes.begin(), classes.end(), [&](const auto& c) { return c.first == std::pair{lo, hi}; });
      if (it == classes.end()) classes.push_back({{lo, hi}, {o}});
      else it->second.push_back(o);
    }
    return classes;
  };
  const auto rows = axis_classes(g.out_h, g.stride.h, g.padding.h, g.dilation.h, g.kernel.h, g.in_h);
  const auto cols = axis_classes(g.out_w, g.stride.w, g.padding.w, g.dilation.w, g.kernel.w, g.in_w);
  std::vector<TapClass> out;
  for (const auto& [ri, r] : rows)
    for (const auto& [ci, c] : cols) out.push_back({ri.first, ri.second, ci.first, ci.second, r, c});
  return out;
}

// How a convolution finds the weight of output channel m, input channel c
// and tap (i, j) of group grp: w[grp * group_stride + m * row_stride +
// tap_w(c, i, j)], with tap_w = c * channel_stride + (flipped ? taps - 1 -
// (i * kw + j) : i * kw + j).
// The plain layout is [out][in][kh][kw]; the stride-1 input gradient runs the
// forward convolution with the same array read transposed and flipped.
struct WeightLayout {
  index_t group_stride, row_stride, channel_stride;
  bool flipped;
};

// The offset tables of one class, for group channels starting at c0.
struct ClassTables {
  std::vector<std::int32_t> pos_in;   // per position: input offset of tap (0, 0), channel 0
  std::vector<std::int32_t> pos_out;  // per position: output offset, channel 0
  std::vector<std::int32_t> tap_in;   // per valid tap (c, i, j): input offset of that tap and channel c0 + c
  std::vector<std::int32_t> tap_w;    // per valid tap: offset within a row of the weights (WeightLayout)

  ClassTables(const Conv2dGeometry& g, const TapClass& tc, index_t c0, const WeightLayout& wl) {
    const index_t HW = g.in_plane(), P = g.out_plane(), cpg = g.in_channels_per_group();
    const index_t taps = g.kernel.h * g.kernel.w;
    pos_in.reserve(static_cast<std::size_t>(g.batch) * tc.rows.size() * tc.cols.size());
    pos_out.reserve(pos_in.capacity());
    for (index_t n = 0; n < g.batch; ++n)
      for (index_t oh : tc.rows)
        for (index_t ow : tc.cols) {
          const index_t ih = oh * g.stride.h - g.padding.h, iw = ow * g.stride.w - g.padding.w;
          pos_in.push_back(static_cast<std::int32_t>(n * g.in_channels * HW + ih * g.in_w + iw));
          pos_out.push_back(static_cast<std::int32_t>(n * g.out_channels * P + oh * g.out_w + ow));
        }
    for (index_t c = 0; c < cpg; ++c)
      for (index_t i = tc.i_lo; i < tc.i_hi; ++i)
        for (index_t j = tc.j_lo; j < tc.j_hi; ++j) {
          const index_t tap = i * g.kernel.w + j;
          tap_in.push_back(static_cast<std::int32_t>((c0 + c) * HW + i * g.dilation.h * g.in_w + j * g.dilation.w));
          tap_w.push_back(static_cast<std::int32_t>(c * wl.channel_stride + (wl.flipped ? taps - 1 - tap : tap)));
        }
  }
};

// The mean length of the runs of consecutive offsets in a table.
inline double mean_run(const std::vector<std::int32_t>& offsets) {
  if (offsets.empty()) return 0;
  std::size_t runs = 1;
  for (std::size_t t = 1; t < offsets.size(); ++t) runs += offsets[t] != offsets[t - 1] + 1;
  return static_cast<double>(offsets.size()) / static_cast<double>(runs);
}

// Below this mean run length a class's output is computed into a dense
// buffer and scattered once: storing each depth block's partial sums
// straight into positions a whole sample apart (one per sample for a
// corner of a small plane) thrashes the L1 cache, and cost more than the
// multiply itself on the 2x2 planes of a 28x28 ResNet (perf).
inline constexpr double kStageBelowRun = 8.0;

// ---- the three passes --------------------------------------------------------------------------------

// y = conv(x, w) + bias (bias may be null); y is overwritten. `wl` says
// how the weights are laid out (WeightLayout).
inline void forward(const Conv2dGeometry& g, const float* x, const float* w, const WeightLayout& wl,
                    const float* bias, float* y) {
  if (winograd::suitable(g)) return winograd::forward(g, x, w, wl.row_stride, wl.channel_stride, wl.flipped, bias, y);
  const index_t ocpg = g.out_channels_per_group(), P = g.out_plane();
  const auto classes = tap_classes(g);
  index_t covered = 0;
  for (const auto& tc : classes) covered += static_cast<index_t>(tc.rows.size() * tc.cols.size());
  if (covered < P) {
    // Windows entirely in the padding see only zeros: their output is the bias.
    for (index_t n = 0; n < g.batch; ++n)
      for (index_t oc = 0; oc < g.out_channels; ++oc)
        std::fill_n(y + (n * g.out_channels + oc) * P, P, bias ? bias[oc] : 0.0f);
  }
  for (index_t grp = 0; grp < g.groups; ++grp) {
    const index_t oc0 = grp * ocpg;
    const float* wg = w + grp * wl.group_stride;
    const float* bg = bias ? bias + oc0 : nullptr;
    float* yg = y + oc0 * P;
    for (const auto& tc : classes) {
      const ClassTables t(g, tc, grp * g.in_channels_per_group(), wl);
      const auto cols = static_cast<index_t>(t.pos_in.size()), depth = static_cast<index_t>(t.tap_in.size());
      const OffsetColumnsA a{wg, wl.row_stride, t.tap_w.data(), ocpg};
      const OffsetGridB b{x, t.pos_in.data(), t.tap_in.data(), cols};
      if (mean_run(t.pos_out) >= kStageBelowRun) {
        sgemm_packed(ocpg, cols, depth, a, b, gemm::OffsetTarget{yg, P, t.pos_out.data(), bg}, false);
        continue;
      }
      float* dense = scratch(Scratch::kGathered).get<float>(static_cast<std::size_t>(ocpg * cols));
      sgemm_packed(ocpg, cols, depth, a, b, gemm::MatrixTarget{dense, cols}, false);
#pragma omp parallel for schedule(static)
      for (index_t m = 0; m < ocpg; ++m) {
        const float* src = dense + m * cols;
        float* dst = yg + m * P;
        const float b0 = bg ? bg[m] : 0.0f;
        for (index_t c = 0; c < cols; ++c) dst[t.pos_out[static_cast<std::size_t>(c)]] = src[c] + b0;
      }
    }
  }
}

inline void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const index_t K = g.patch_size();
  forward(g, x, w, WeightLayout{g.out_channels_per_group() * K, K, g.kernel.h * g.kernel.w, false}, bias, y);
}

// dw += dW, db += the per-channel sum of dy (when db is non-null).
inline void backward_weight(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  const index_t K = g.patch_size(), ocpg = g.out_channels_per_group(), P = g.out_plane();
  const auto classes = tap_classes(g);
  for (index_t grp = 0; grp < g.groups; ++grp) {
    const index_t oc0 = grp * ocpg;
    for (const auto& tc : classes) {
      const ClassTables t(g, tc, grp * g.in_channels_per_group(), WeightLayout{ocpg * K, K, g.kernel.h * g.kernel.w, false});
      const auto cols = static_cast<index_t>(t.pos_in.size()), taps = static_cast<index_t>(t.tap_in.size());
      sgemm_packed(ocpg, taps, cols, OffsetColumnsA{dy + oc0 * P, P, t.pos_out.data(), ocpg},
                   OffsetGridB{x, t.tap_in.data(), t.pos_in.data(), taps},
                   gemm::OffsetTarget{dw + oc0 * K, K, t.tap_w.data()}, true);
    }
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
  const index_t taps = g.kernel.h * g.kernel.w, K = g.patch_size();
  Conv2dGeometry t;
  if (transposed_geometry(g, t)) {
    // The forward convolution of dy reading w[oc][c][i][j] as w'[c][oc][kh-1-i][kw-1-j]:
    // rows (output channels of t) are c, a channel step (input channels of t) is an oc.
    forward(t, dy, w, WeightLayout{ocpg * cpg * taps, taps, cpg * taps, true}, nullptr, dx);
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
