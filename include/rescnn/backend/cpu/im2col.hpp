// rescnn/backend/cpu/im2col.hpp — unfolding convolution patches into a
// matrix (im2col), its adjoint (col2im), and channel gathers, for the
// GEMM-based convolutions of conv2d.hpp and conv_gemm.hpp.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu {

namespace conv_detail {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using UnalignedMatrixMap = Eigen::Map<RowMatrix<T>>;
// One sample's block of the column matrix: rows are `count * OHW` apart.
template <class T>
using StridedMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using StridedConstMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// Bytes of im2col matrix per chunk: large enough for an efficient GEMM, small
// enough to stay in the last-level cache's neighbourhood and not to balloon
// memory on big batches.
inline constexpr std::size_t kColumnBudgetBytes = std::size_t{16} << 20;

inline index_t samples_per_chunk(const Conv2dGeometry& g, std::size_t element_size) {
  const std::size_t per_sample = static_cast<std::size_t>(g.patch_size() * g.out_plane()) * element_size;
  const index_t fit = per_sample ? static_cast<index_t>(kColumnBudgetBytes / per_sample) : g.batch;
  return std::clamp<index_t>(fit, 1, std::max<index_t>(g.batch, 1));
}

// Range of output positions o in [0, out) whose input position
// o*stride - pad + offset lies inside [0, in).
inline void valid_output_range(index_t in, index_t out, index_t stride, index_t pad, index_t offset, index_t& lo,
                               index_t& hi) {
  // o*stride >= pad - offset  and  o*stride <= in - 1 + pad - offset
  const index_t low_num = pad - offset;
  lo = low_num <= 0 ? 0 : std::min(out, (low_num + stride - 1) / stride);
  const index_t high_num = in - 1 + pad - offset;
  hi = high_num < 0 ? 0 : std::min(out, high_num / stride + 1);
  if (hi < lo) hi = lo;
}

// One kernel tap (i, j) of one (sample, channel) plane: where its im2col row
// starts, and which outputs read inside the input (the rest read padding).
struct KernelTap {
  index_t plane;                       // index of the (sample, channel) plane in the NCHW tensor
  index_t col_row;                     // offset of this tap's row segment in the column matrix
  index_t oh_lo, oh_hi, ow_lo, ow_hi;  // outputs whose input lies inside
  index_t ih0, iw0;                    // input position of output (0, 0): i*dilation - padding
};

// Visits every tap of channels [c0, c0 + C/g) of samples [n0, n0 + count),
// parallel over (sample, channel), so each input plane is touched by one
// thread only. im2col and its adjoint col2im share this traversal and differ
// only in the direction of the copy.
template <class Visit>
void for_each_kernel_tap(const Conv2dGeometry& g, index_t n0, index_t count, index_t c0, Visit&& visit) {
  const index_t cpg = g.in_channels_per_group(), kh = g.kernel.h, kw = g.kernel.w;
  const index_t row_stride = count * g.out_plane();
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t s = 0; s < count; ++s) {
    for (index_t c = 0; c < cpg; ++c) {
      KernelTap t{};
      t.plane = (n0 + s) * g.in_channels + c0 + c;
      for (index_t i = 0; i < kh; ++i) {
        t.ih0 = i * g.dilation.h - g.padding.h;
        valid_output_range(g.in_h, g.out_h, g.stride.h, g.padding.h, i * g.dilation.h, t.oh_lo, t.oh_hi);
        for (index_t j = 0; j < kw; ++j) {
          t.iw0 = j * g.dilation.w - g.padding.w;
          valid_output_range(g.in_w, g.out_w, g.stride.w, g.padding.w, j * g.dilation.w, t.ow_lo, t.ow_hi);
          t.col_row = ((c * kh + i) * kw + j) * row_stride + s * g.out_plane();
          visit(t);
        }
      }
    }
  }
}

// Unfolds channels [c0, c0 + C/g) of samples [n0, n0 + count) into `col`,
// laid out [K rows][count * OHW columns]; padding reads as zero.
template <class T>
void im2col(const Conv2dGeometry& g, const T* x, index_t n0, index_t count, index_t c0, T* col) {
  for_each_kernel_tap(g, n0, count, c0, [&](const KernelTap& t) {
    const T* plane = x + t.plane * g.in_plane();
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      T* out_row = col + t.col_row + oh * g.out_w;
      if (oh < t.oh_lo || oh >= t.oh_hi) {
        std::fill(out_row, out_row + g.out_w, T(0));
        continue;
      }
      const T* in_row = plane + (oh * g.stride.h + t.ih0) * g.in_w;
      std::fill(out_row, out_row + t.ow_lo, T(0));
      if (g.stride.w == 1) {
        std::memcpy(out_row + t.ow_lo, in_row + t.ow_lo + t.iw0,
                    static_cast<std::size_t>(t.ow_hi - t.ow_lo) * sizeof(T));
      } else {
        for (index_t ow = t.ow_lo; ow < t.ow_hi; ++ow) out_row[ow] = in_row[ow * g.stride.w + t.iw0];
      }
      std::fill(out_row + t.ow_hi, out_row + g.out_w, T(0));
    }
  });
}

// The adjoint of im2col: adds the columns back into channels [c0, c0 + C/g)
// of dx (padding positions are dropped).
template <class T>
void col2im_add(const Conv2dGeometry& g, const T* col, index_t n0, index_t count, index_t c0, T* dx) {
  for_each_kernel_tap(g, n0, count, c0, [&](const KernelTap& t) {
    T* plane = dx + t.plane * g.in_plane();
    for (index_t oh = t.oh_lo; oh < t.oh_hi; ++oh) {
      T* in_row = plane + (oh * g.stride.h + t.ih0) * g.in_w;
      const T* col_row = col + t.col_row + oh * g.out_w;
      for (index_t ow = t.ow_lo; ow < t.ow_hi; ++ow) in_row[ow * g.stride.w + t.iw0] += col_row[ow];
    }
  });
}

// Copies output channels [o0, o0 + OC/g) of samples [n0, n0 + count) of an
// NCHW tensor into a [OC/g rows][count * OHW] matrix, or back (scatter).
template <class T>
void gather_channels(const Conv2dGeometry& g, const T* nchw, index_t n0, index_t count, index_t o0, T* mat) {
  const index_t ocpg = g.out_channels_per_group(), ohw = g.out_plane();
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t o = 0; o < ocpg; ++o)
    for (index_t s = 0; s < count; ++s)
      std::memcpy(mat + o * count * ohw + s * ohw, nchw + ((n0 + s) * g.out_channels + o0 + o) * ohw,
                  static_cast<std::size_t>(ohw) * sizeof(T));
}

template <class T>
void scatter_channels(const Conv2dGeometry& g, const T* mat, const T* bias, index_t n0, index_t count, index_t o0,
                      T* nchw) {
  const index_t ocpg = g.out_channels_per_group(), ohw = g.out_plane();
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t o = 0; o < ocpg; ++o) {
    for (index_t s = 0; s < count; ++s) {
      const T* src = mat + o * count * ohw + s * ohw;
      T* dst = nchw + ((n0 + s) * g.out_channels + o0 + o) * ohw;
      const T b = bias ? bias[o0 + o] : T(0);
      for (index_t p = 0; p < ohw; ++p) dst[p] = src[p] + b;
    }
  }
}

}  // namespace conv_detail

}  // namespace rescnn::cpu
