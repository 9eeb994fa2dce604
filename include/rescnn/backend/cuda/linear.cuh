// rescnn/backend/cuda/linear.cuh — the fully connected layer through cuBLAS.
//   y = x W^T + b,  x [N, in], W [out, in], all row-major.
//
// cuBLAS is column-major: a row-major [r, c] matrix is, to cuBLAS, the
// column-major [c, r] matrix of its transpose. So each product below is
// written for the transposes:
//   forward   y^T  = W  x^T      gemm(T, N): [out, N]  = W^T' [out, in] * x' [in, N]
//   dx        dx^T = W^T dy^T    gemm(N, N): [in, N]   = W'   [in, out] * dy' [out, N]
//   dW        dW^T = x^T dy      gemm(N, T): [in, out] = x'   [in, N]   * dy'^T [N, out]
// where M' is the column-major view of row-major M.
//
// Matrix multiplies use TF32 only when MathSettings::matmul_tf32 allows it
// (off by default, as torch.backends.cuda.matmul.allow_tf32).
#pragma once

#include <limits>
#include <type_traits>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/core/precision.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cuda {
namespace detail {

inline int blas_int(index_t v, const char* what) {
  check<ShapeError>(v >= 0 && v <= std::numeric_limits<int>::max(), "linear (cuBLAS): ", what, " = ", v,
                    " exceeds the int range cuBLAS accepts");
  return static_cast<int>(v);
}

// C = alpha * op(A) op(B) + beta * C, column-major, float or double.
template <class T>
void gemm(cublasOperation_t ta, cublasOperation_t tb, index_t m, index_t n, index_t k, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if (autocast_precision() != Precision::fp32)
    fail("linear (CUDA): ", precision_name(autocast_precision()),
         " autocast is not implemented in the CUDA backend yet (it computes in fp32 only)");
  const cublasHandle_t h = context().cublas();
  RESCNN_CUBLAS_CHECK(
      cublasSetMathMode(h, math_settings().matmul_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const T alpha = 1;
  const int M = blas_int(m, "rows"), N = blas_int(n, "columns"), K = blas_int(k, "inner extent");
  const int LDA = blas_int(lda, "lda"), LDB = blas_int(ldb, "ldb"), LDC = blas_int(ldc, "ldc");
  if constexpr (std::is_same_v<T, float>)
    RESCNN_CUBLAS_CHECK(cublasSgemm(h, ta, tb, M, N, K, &alpha, a, LDA, b, LDB, &beta, c, LDC));
  else if constexpr (std::is_same_v<T, double>)
    RESCNN_CUBLAS_CHECK(cublasDgemm(h, ta, tb, M, N, K, &alpha, a, LDA, b, LDB, &beta, c, LDC));
  else
    static_assert(std::is_same_v<T, float>, "linear (cuBLAS): float or double");
}

// y[n, j] += bias[j]
template <class T>
__global__ void add_bias_rows_kernel(index_t batch, index_t out, const T* bias, T* y) {
  RESCNN_GRID_STRIDE_LOOP(i, batch * out) y[i] += bias[i % out];
}

// db[j] += sum over n of dy[n, j], summed in T in row order as Eigen's
// column sum on the CPU.
template <class T>
__global__ void bias_grad_kernel(index_t batch, index_t out, const T* dy, T* db) {
  RESCNN_GRID_STRIDE_LOOP(j, out) {
    T s = 0;
    for (index_t n = 0; n < batch; ++n) s += dy[n * out + j];
    db[j] += s;
  }
}

}  // namespace detail

template <class T>
void linear_forward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* bias, T* y) {
  if (batch == 0 || out == 0) return;
  if (in == 0) {
    // An empty inner product is zero; cuBLAS rejects k == 0 leading dimensions.
    RESCNN_CUDA_CHECK(
        cudaMemsetAsync(y, 0, static_cast<std::size_t>(batch * out) * sizeof(T), context().compute_stream()));
  } else {
    detail::gemm<T>(CUBLAS_OP_T, CUBLAS_OP_N, out, batch, in, w, in, x, in, T(0), y, out);
  }
  if (bias) {
    detail::add_bias_rows_kernel<<<detail::grid_for(batch * out), detail::kThreads, 0, context().compute_stream()>>>(
        batch, out, bias, y);
    RESCNN_CUDA_CHECK_LAUNCH();
  }
}

// Adds into dw/db; overwrites dx when non-null.
template <class T>
void linear_backward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if (batch == 0 || out == 0 || in == 0) {
    if (dx && batch * in > 0)
      RESCNN_CUDA_CHECK(
          cudaMemsetAsync(dx, 0, static_cast<std::size_t>(batch * in) * sizeof(T), context().compute_stream()));
    return;
  }
  detail::gemm<T>(CUBLAS_OP_N, CUBLAS_OP_T, in, out, batch, x, in, dy, out, T(1), dw, in);
  if (db) {
    detail::bias_grad_kernel<<<detail::grid_for(out), detail::kThreads, 0, context().compute_stream()>>>(batch, out, dy,
                                                                                                         db);
    RESCNN_CUDA_CHECK_LAUNCH();
  }
  if (dx) detail::gemm<T>(CUBLAS_OP_N, CUBLAS_OP_N, in, batch, out, w, in, dy, out, T(0), dx, in);
}

}  // namespace rescnn::cuda
