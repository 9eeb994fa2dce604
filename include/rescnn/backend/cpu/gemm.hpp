// rescnn/backend/cpu/gemm.hpp — single-precision matrix multiply at the
// level in use: the packed GEMM of kernels/gemm.inc on AVX2 and AVX-512
// CPUs, Eigen's elsewhere.
//
//   C (= or +=) op(A) * op(B),  op(A): M x K,  op(B): K x N,  all row-major
//   with leading dimensions, op(X) = X or X^T as the caller says.
#pragma once

#include <Eigen/Core>
#include <algorithm>

#include "rescnn/backend/cpu/bf16_kernels.hpp"
#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

inline void sgemm(index_t M, index_t N, index_t K, const float* a, index_t lda, bool trans_a, const float* b,
                  index_t ldb, bool trans_b, float* c, index_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // an empty sum
    if (!accumulate)
      for (index_t i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
    return;
  }
  if (with_float_kernels([&](auto k) {
        k.sgemm(M, N, K, a, lda, trans_a, b, ldb, trans_b, c, ldc, accumulate);
        return true;
      }))
    return;
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  using Stride = Eigen::OuterStride<>;
  // A row-major X^T is a column-major X with the same leading dimension.
  const auto product = [&](const auto& A, const auto& B) {
    Eigen::Map<RowMajor, Eigen::Unaligned, Stride> C(c, M, N, Stride(ldc));
    if (accumulate)
      C.noalias() += A * B;
    else
      C.noalias() = A * B;
  };
  const auto with_b = [&](const auto& A) {
    if (trans_b)
      product(A, Eigen::Map<const ColMajor, Eigen::Unaligned, Stride>(b, K, N, Stride(ldb)));
    else
      product(A, Eigen::Map<const RowMajor, Eigen::Unaligned, Stride>(b, K, N, Stride(ldb)));
  };
  if (trans_a)
    with_b(Eigen::Map<const ColMajor, Eigen::Unaligned, Stride>(a, M, K, Stride(lda)));
  else
    with_b(Eigen::Map<const RowMajor, Eigen::Unaligned, Stride>(a, M, K, Stride(lda)));
}

// The matrix products of the layers (Linear): sgemm, or under bf16 autocast
// (core/precision.hpp) at the avx512_bf16 level the same product with the
// operands rounded to bf16 and float accumulation.
inline void layer_gemm(index_t M, index_t N, index_t K, const float* a, index_t lda, bool trans_a, const float* b,
                       index_t ldb, bool trans_b, float* c, index_t ldc, bool accumulate) {
  if (with_bf16_kernels([&](auto k) {
        k.gemm(M, N, K, a, lda, trans_a, b, ldb, trans_b, c, ldc, accumulate);
        return true;
      }))
    return;
  sgemm(M, N, K, a, lda, trans_a, b, ldb, trans_b, c, ldc, accumulate);
}

}  // namespace rescnn::cpu
