// rescnn/backend/cpu/batchnorm.hpp — BatchNorm2d kernels over NCHW.
//
// Statistics are accumulated in double: with 10^5 elements per channel a
// float running sum loses about four digits, and the golden tests compare
// against PyTorch at 1e-4. The sums over a plane are SIMD reductions (eight
// double partial sums added at the end): a plain sequential double sum runs
// at one add per FP-add latency and made BatchNorm a tenth of a training
// step. The order is fixed by the code, not by the thread count, so results
// still repeat bit for bit.
#pragma once

#include <cmath>

#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

// Training forward: normalises with the batch statistics, saves mean and
// 1/sqrt(var + eps) for backward, and updates the running statistics with
// the unbiased variance (as PyTorch). gamma/beta may be null (affine=false).
template <class T>
void batchnorm_forward_train(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps, T momentum,
                             T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y) {
  const index_t m = s.per_channel();
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < s.channels; ++c) {
    double sum = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
#pragma omp simd reduction(+ : sum)
      for (index_t i = 0; i < s.plane; ++i) sum += p[i];
    }
    const double mean = sum / static_cast<double>(m);
    double sq = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
#pragma omp simd reduction(+ : sq)
      for (index_t i = 0; i < s.plane; ++i) {
        const double d = p[i] - mean;
        sq += d * d;
      }
    }
    const double var = sq / static_cast<double>(m);
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    if (running_mean) {
      const double unbiased = m > 1 ? sq / static_cast<double>(m - 1) : var;
      running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
    }
    const T scale = static_cast<T>(invstd) * (gamma ? gamma[c] : T(1));
    const T shift = (beta ? beta[c] : T(0)) - static_cast<T>(mean) * scale;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
      T* q = y + (n * s.channels + c) * s.plane;
#pragma omp simd
      for (index_t i = 0; i < s.plane; ++i) q[i] = p[i] * scale + shift;
    }
  }
}

// Inference forward with the running statistics: a per-channel affine map.
template <class T>
void batchnorm_forward_eval(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                            const T* running_mean, const T* running_var, T* y) {
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t n = 0; n < s.batch; ++n) {
    for (index_t c = 0; c < s.channels; ++c) {
      const T invstd = T(1) / std::sqrt(running_var[c] + eps);
      const T scale = invstd * (gamma ? gamma[c] : T(1));
      const T shift = (beta ? beta[c] : T(0)) - running_mean[c] * scale;
      const T* p = x + (n * s.channels + c) * s.plane;
      T* q = y + (n * s.channels + c) * s.plane;
      for (index_t i = 0; i < s.plane; ++i) q[i] = p[i] * scale + shift;
    }
  }
}

// Backward. `mean`/`invstd` are the statistics the forward used: the saved
// batch statistics in training, the running ones (as mean and
// 1/sqrt(var+eps)) in eval mode. In training the batch statistics depend on
// x, which adds the two mean terms:
//   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
// Adds into dgamma/dbeta when non-null; overwrites dx.
template <class T>
void batchnorm_backward(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                        const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
  const index_t m = s.per_channel();
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < s.channels; ++c) {
    const double mu = mean[c], is = invstd[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
      const T* g = dy + (n * s.channels + c) * s.plane;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
      for (index_t i = 0; i < s.plane; ++i) {
        sum_dy += g[i];
        sum_dy_xhat += g[i] * (p[i] - mu) * is;
      }
    }
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if (!dx) continue;
    const double scale = (gamma ? gamma[c] : 1.0) * is;
    const double mean_dy = batch_statistics ? sum_dy / static_cast<double>(m) : 0.0;
    const double mean_dy_xhat = batch_statistics ? sum_dy_xhat / static_cast<double>(m) : 0.0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
      const T* g = dy + (n * s.channels + c) * s.plane;
      T* q = dx + (n * s.channels + c) * s.plane;
#pragma omp simd
      for (index_t i = 0; i < s.plane; ++i) {
        const double xhat = (p[i] - mu) * is;
        q[i] = static_cast<T>(scale * (g[i] - mean_dy - xhat * mean_dy_xhat));
      }
    }
  }
}

}  // namespace rescnn::cpu
