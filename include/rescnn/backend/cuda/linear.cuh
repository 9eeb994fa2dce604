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
//
// Under bf16 or fp16 autocast the float operands are rounded to 16 bits
// (autocast.cuh) and multiplied by cublasGemmEx on tensor cores with float
// accumulation and a float result: unlike a convolution's (conv2d.hpp), the
// product itself is not rounded to 16 bits.
#pragma once

#include <limits>
#include <optional>
#include <type_traits>

#include "rescnn/backend/cuda/autocast.cuh"
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

template <class T>
constexpr cudaDataType_t blas_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "linear (cuBLAS): float or double");
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_64F;
}

// One input of a product as cuBLAS takes it: T's own numel elements, or
// their 16-bit copy under autocast (compute_precision).
template <class T>
class GemmInput {
 public:
  GemmInput(const T* data, index_t numel) : data_(data), type_(blas_type<T>()) {
    if constexpr (std::is_same_v<T, float>) {
      const Precision p = compute_precision<T>();
      if (p == Precision::fp32) return;
      copy_.emplace(rounded_copy(p, data, numel));
      data_ = copy_->data();
      type_ = blas_half_type(p);
    }
  }
  const void* data() const { return data_; }
  cudaDataType_t type() const { return type_; }

 private:
  std::optional<HalfBuffer> copy_;
  const void* data_;
  cudaDataType_t type_;
};

// C = op(A) op(B) + beta * C, column-major; C is always T.
template <class T>
void gemm(cublasOperation_t ta, cublasOperation_t tb, index_t m, index_t n, index_t k, const GemmInput<T>& a,
          index_t lda, const GemmInput<T>& b, index_t ldb, T beta, T* c, index_t ldc) {
  const cublasHandle_t h = context().cublas();
  RESCNN_CUBLAS_CHECK(
      cublasSetMathMode(h, math_settings().matmul_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const T alpha = 1;
  const int M = blas_int(m, "rows"), N = blas_int(n, "columns"), K = blas_int(k, "inner extent");
  const int LDA = blas_int(lda, "lda"), LDB = blas_int(ldb, "ldb"), LDC = blas_int(ldc, "ldc");
  const auto* A = static_cast<const T*>(a.data());
  const auto* B = static_cast<const T*>(b.data());
  if (a.type() != blas_type<T>()) {
    // 16-bit inputs (autocast, float only): float accumulation and result.
    RESCNN_CUBLAS_CHECK(cublasGemmEx(h, ta, tb, M, N, K, &alpha, a.data(), a.type(), LDA, b.data(), b.type(), LDB,
                                     &beta, c, CUDA_R_32F, LDC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else if constexpr (std::is_same_v<T, float>) {
    RESCNN_CUBLAS_CHECK(cublasSgemm(h, ta, tb, M, N, K, &alpha, A, LDA, B, LDB, &beta, c, LDC));
  } else {
    RESCNN_CUBLAS_CHECK(cublasDgemm(h, ta, tb, M, N, K, &alpha, A, LDA, B, LDB, &beta, c, LDC));
  }
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
    const detail::GemmInput<T> wi(w, out * in), xi(x, batch * in);
    detail::gemm<T>(CUBLAS_OP_T, CUBLAS_OP_N, out, batch, in, wi, in, xi, in, T(0), y, out);
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
  const detail::GemmInput<T> dyi(dy, batch * out);
  if (dw)  // null: a frozen layer
    detail::gemm<T>(CUBLAS_OP_N, CUBLAS_OP_T, in, out, batch, detail::GemmInput<T>(x, batch * in), in, dyi, out, T(1),
                    dw, in);
  if (db) {
    detail::bias_grad_kernel<<<detail::grid_for(out), detail::kThreads, 0, context().compute_stream()>>>(batch, out, dy,
                                                                                                         db);
    RESCNN_CUDA_CHECK_LAUNCH();
  }
  if (dx)
    detail::gemm<T>(CUBLAS_OP_N, CUBLAS_OP_N, in, batch, out, detail::GemmInput<T>(w, out * in), in, dyi, out, T(0), dx,
                    in);
}

}  // namespace rescnn::cuda
