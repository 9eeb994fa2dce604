// rescnn/backend/cpu/conv2d.hpp — 2-D convolution on the CPU as batched GEMM.
//
// float on an AVX2 or AVX-512 CPU takes the implicit-GEMM path of
// kernels/conv_gemm.inc at the level in use (float_kernels.hpp); under bf16
// autocast (core/precision.hpp) the same path multiplies in bf16 at the
// avx512_bf16 level (bf16_kernels.hpp). Everything
// else (double, the generic level) takes the Eigen path below: for each
// chunk of samples and each group, the input patches are unfolded
// (im2col) into a matrix of (C/g * kh * kw) rows and (samples * OH * OW)
// columns, so one GEMM covers the whole chunk:
//
//   forward          Y_g  [OC/g, S*OHW]  = W_g [OC/g, K] * col_g [K, S*OHW]
//   backward-weight  dW_g [OC/g, K]     += dY_g * col_g^T
//   backward-data    dcol_g [K, S*OHW]   = W_g^T * dY_g   -> col2im into dx
//
// The chunk holds as many samples as fit a bounded column buffer, so memory
// stays small for large batches and the GEMM stays large enough to run at
// full speed. Unfolding and scattering run in parallel with OpenMP; the GEMMs
// run outside parallel regions and use Eigen's threads.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include <type_traits>

#include "rescnn/backend/cpu/bf16_kernels.hpp"
#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/backend/cpu/im2col.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cpu {

// Whether the level in use runs this convolution's forward pass by Winograd
// (false for the generic level and for double).
template <class T>
bool uses_winograd(const Conv2dGeometry& g) {
  if constexpr (std::is_same_v<T, float>) {
    if (with_bf16_kernels([](auto) { return true; })) return false;  // bf16 is never Winograd
    return with_float_kernels([&](auto k) { return k.uses_winograd(g); });
  }
  return false;
}

// Planes at least this large (OH*OW) give each sample's GEMM enough columns
// to run at full rate, so the GEMM reads its sample's block of the column
// matrix and writes straight into the NCHW output: no gather/scatter copies.
// Smaller planes (late ResNet stages: 7x7, 3x3) batch all samples of the
// chunk into one wide GEMM and pay a cheap copy instead.
inline constexpr index_t kDirectPlaneThreshold = 256;

// y = conv(x, w) + bias. `bias` may be null. y must have the output shape.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    const auto run = [&](auto k) { return k.conv2d_forward(g, x, w, bias, y); };
    if (with_bf16_kernels(run) || with_float_kernels(run)) return;
  }
  using namespace conv_detail;
  const index_t K = g.patch_size(), ocpg = g.out_channels_per_group(), ohw = g.out_plane();
  const index_t chunk = samples_per_chunk(g, sizeof(T));
  const bool direct = ohw >= kDirectPlaneThreshold;
  T* col = scratch(Scratch::kColumns).get<T>(static_cast<std::size_t>(K * chunk * ohw));
  T* out = direct ? nullptr : scratch(Scratch::kGathered).get<T>(static_cast<std::size_t>(ocpg * chunk * ohw));
  for (index_t n0 = 0; n0 < g.batch; n0 += chunk) {
    const index_t count = std::min(chunk, g.batch - n0);
    for (index_t grp = 0; grp < g.groups; ++grp) {
      im2col(g, x, n0, count, grp * g.in_channels_per_group(), col);
      ConstMatrixMap<T> W(w + grp * ocpg * K, ocpg, K);
      if (direct) {
        for (index_t s = 0; s < count; ++s) {
          StridedConstMap<T> C(col + s * ohw, K, ohw, Eigen::OuterStride<>(count * ohw));
          T* y_block = y + ((n0 + s) * g.out_channels + grp * ocpg) * ohw;
          UnalignedMatrixMap<T> Y(y_block, ocpg, ohw);
          Y.noalias() = W * C;
          if (bias) Y.colwise() += Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(bias + grp * ocpg, ocpg);
        }
      } else {
        ConstMatrixMap<T> C(col, K, count * ohw);
        UnalignedMatrixMap<T> Y(out, ocpg, count * ohw);
        Y.noalias() = W * C;
        scatter_channels(g, out, bias, n0, count, grp * ocpg, y);
      }
    }
  }
}

// Gradients of conv2d. Adds into dw (when non-null; null: a frozen layer,
// db null too) and db (when non-null); writes dx when
// non-null (dx is overwritten, not accumulated).
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if constexpr (std::is_same_v<T, float>) {
    // The input gradient first: it overwrites dx, so a level that takes it
    // and then refuses the weight gradient leaves nothing the fallback would
    // count twice (dw is accumulated into).
    const auto run = [&](auto k) {
      if (dx && !k.conv2d_backward_data(g, w, dy, dx)) return false;
      if (dw && !k.conv2d_backward_weight(g, x, dy, dw, db)) return false;
      return true;
    };
    if (with_bf16_kernels(run) || with_float_kernels(run)) return;
  }
  using namespace conv_detail;
  const index_t K = g.patch_size(), ocpg = g.out_channels_per_group(), ohw = g.out_plane();
  const index_t chunk = samples_per_chunk(g, sizeof(T));
  const bool direct = ohw >= kDirectPlaneThreshold;
  T* col = scratch(Scratch::kColumns).get<T>(static_cast<std::size_t>(K * chunk * ohw));
  T* grad_out = direct ? nullptr : scratch(Scratch::kGathered).get<T>(static_cast<std::size_t>(ocpg * chunk * ohw));
  if (dx) std::fill(dx, dx + g.input_shape().numel(), T(0));
  for (index_t n0 = 0; n0 < g.batch; n0 += chunk) {
    const index_t count = std::min(chunk, g.batch - n0);
    for (index_t grp = 0; grp < g.groups; ++grp) {
      im2col(g, x, n0, count, grp * g.in_channels_per_group(), col);
      ConstMatrixMap<T> W(w + grp * ocpg * K, ocpg, K);
      UnalignedMatrixMap<T> dW(dw ? dw + grp * ocpg * K : nullptr, dw ? ocpg : 0, dw ? K : 0);  // null: frozen
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> dB(db ? db + grp * ocpg : nullptr, db ? ocpg : 0);
      if (direct) {
        for (index_t s = 0; s < count; ++s) {
          ConstMatrixMap<T> dY(dy + ((n0 + s) * g.out_channels + grp * ocpg) * ohw, ocpg, ohw);
          StridedMap<T> C(col + s * ohw, K, ohw, Eigen::OuterStride<>(count * ohw));
          if (db) dB += dY.rowwise().sum();
          if (dw) dW.noalias() += dY * C.transpose();
          if (dx) C.noalias() = W.transpose() * dY;  // this sample's columns now hold dcol
        }
      } else {
        gather_channels(g, dy, n0, count, grp * ocpg, grad_out);
        ConstMatrixMap<T> dY(grad_out, ocpg, count * ohw);
        UnalignedMatrixMap<T> C(col, K, count * ohw);
        if (db) dB += dY.rowwise().sum();
        if (dw) dW.noalias() += dY * C.transpose();
        if (dx) C.noalias() = W.transpose() * dY;  // the column buffer now holds dcol
      }
      if (dx) col2im_add(g, col, n0, count, grp * g.in_channels_per_group(), dx);
    }
  }
}

}  // namespace rescnn::cpu
