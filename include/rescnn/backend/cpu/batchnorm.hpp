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
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

// ---- small planes ------------------------------------------------------------------------------------
//
// On planes of fewer than kSmallPlane positions (a 28x28 ResNet's are 49 to
// 1) a reduction per (sample, channel) is a few elements long and all
// overhead: BatchNorm took a tenth of such a training step (perf). There each
// thread takes a block of channels, whose part of a sample, channels x
// plane, is contiguous, and sums it sample by sample into per-position
// double accumulators with one vector loop; each channel then adds its
// plane's accumulators. Every sum still runs in an order fixed by the code,
// independent of the thread count.
inline constexpr index_t kSmallPlane = 64;

// Per-thread double scratch for the small-plane kernels (grows, then reused).
inline double* bn_scratch(int slot, std::size_t n) {
  thread_local std::vector<double> buffers[5];
  auto& b = buffers[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Calls body(c0, c1) on each thread of a parallel region for its block of channels.
template <class Body>
void for_channel_blocks(index_t channels, Body&& body) {
#pragma omp parallel
  {
#if defined(_OPENMP)
    const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const index_t t = 0, nt = 1;
#endif
    const index_t c0 = channels * t / nt, c1 = channels * (t + 1) / nt;
    if (c1 > c0) body(c0, c1);
  }
}

// Finishes one channel's training statistics from its mean and the sum of
// squared deviations over m values: saves mean and 1/sqrt(var + eps) for
// backward, updates the running statistics with the unbiased variance (as
// PyTorch), and returns the affine map y = x * scale + shift. Shared by both
// forward kernels.
template <class T>
void finish_channel_statistics(index_t c, double mean, double sq, index_t m, const T* gamma, const T* beta, T eps,
                               T momentum, T* running_mean, T* running_var, T* save_mean, T* save_invstd, T& scale,
                               T& shift) {
  const double var = sq / static_cast<double>(m);
  const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
  save_mean[c] = static_cast<T>(mean);
  save_invstd[c] = static_cast<T>(invstd);
  if (running_mean) {
    const double unbiased = m > 1 ? sq / static_cast<double>(m - 1) : var;
    running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
  }
  scale = static_cast<T>(invstd) * (gamma ? gamma[c] : T(1));
  shift = (beta ? beta[c] : T(0)) - static_cast<T>(mean) * scale;
}

template <class T>
void batchnorm_forward_train_small(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                                   T momentum, T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y) {
  const index_t m = s.per_channel(), P = s.plane, C = s.channels;
  for_channel_blocks(C, [&](index_t c0, index_t c1) {
    const index_t width = (c1 - c0) * P;
    double* sum = bn_scratch(0, width);
    double* sq = bn_scratch(1, width);
    double* mu = bn_scratch(2, width);  // the mean of each position's channel
    for (index_t e = 0; e < width; ++e) sum[e] = sq[e] = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * C + c0) * P;
#pragma omp simd
      for (index_t e = 0; e < width; ++e) sum[e] += p[e];
    }
    for (index_t c = c0; c < c1; ++c) {
      double total = 0;
      for (index_t i = 0; i < P; ++i) total += sum[(c - c0) * P + i];
      for (index_t i = 0; i < P; ++i) mu[(c - c0) * P + i] = total / static_cast<double>(m);
    }
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * C + c0) * P;
#pragma omp simd
      for (index_t e = 0; e < width; ++e) {
        const double d = p[e] - mu[e];
        sq[e] += d * d;
      }
    }
    T* scale = reinterpret_cast<T*>(sum);  // the sums are spent: reuse them for scale and shift
    T* shift = reinterpret_cast<T*>(bn_scratch(3, width));
    for (index_t c = c0; c < c1; ++c) {
      double total = 0;
      for (index_t i = 0; i < P; ++i) total += sq[(c - c0) * P + i];
      T sc, sh;
      finish_channel_statistics(c, mu[(c - c0) * P], total, m, gamma, beta, eps, momentum, running_mean, running_var,
                                save_mean, save_invstd, sc, sh);
      for (index_t i = 0; i < P; ++i) {
        scale[(c - c0) * P + i] = sc;
        shift[(c - c0) * P + i] = sh;
      }
    }
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * C + c0) * P;
      T* q = y + (n * C + c0) * P;
#pragma omp simd
      for (index_t e = 0; e < width; ++e) q[e] = p[e] * scale[e] + shift[e];
    }
  });
}

template <class T>
void batchnorm_backward_small(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                              const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
  const index_t m = s.per_channel(), P = s.plane, C = s.channels;
  for_channel_blocks(C, [&](index_t c0, index_t c1) {
    const index_t width = (c1 - c0) * P;
    double* sum_dy = bn_scratch(0, width);
    double* sum_dy_xhat = bn_scratch(1, width);
    double* mu = bn_scratch(2, width);
    double* is = bn_scratch(3, width);
    for (index_t c = c0; c < c1; ++c)
      for (index_t i = 0; i < P; ++i) {
        mu[(c - c0) * P + i] = mean[c];
        is[(c - c0) * P + i] = invstd[c];
      }
    for (index_t e = 0; e < width; ++e) sum_dy[e] = sum_dy_xhat[e] = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * C + c0) * P;
      const T* g = dy + (n * C + c0) * P;
#pragma omp simd
      for (index_t e = 0; e < width; ++e) {
        sum_dy[e] += g[e];
        sum_dy_xhat[e] += g[e] * (p[e] - mu[e]) * is[e];
      }
    }
    // Per channel: mean(dy) and mean(dy * xhat), spread over the channel's
    // positions (into the spent accumulators) for the dx pass.
    for (index_t c = c0; c < c1; ++c) {
      double a = 0, b = 0;
      for (index_t i = 0; i < P; ++i) {
        a += sum_dy[(c - c0) * P + i];
        b += sum_dy_xhat[(c - c0) * P + i];
      }
      if (dgamma) dgamma[c] += static_cast<T>(b);
      if (dbeta) dbeta[c] += static_cast<T>(a);
      const double mean_dy = batch_statistics ? a / static_cast<double>(m) : 0.0;
      const double mean_dy_xhat = batch_statistics ? b / static_cast<double>(m) : 0.0;
      for (index_t i = 0; i < P; ++i) {
        sum_dy[(c - c0) * P + i] = mean_dy;
        sum_dy_xhat[(c - c0) * P + i] = mean_dy_xhat;
      }
    }
    if (!dx) return;
    double* scale = bn_scratch(4, width);
    for (index_t c = c0; c < c1; ++c)
      for (index_t i = 0; i < P; ++i) scale[(c - c0) * P + i] = (gamma ? gamma[c] : 1.0) * invstd[c];
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * C + c0) * P;
      const T* g = dy + (n * C + c0) * P;
      T* q = dx + (n * C + c0) * P;
#pragma omp simd
      for (index_t e = 0; e < width; ++e) {
        const double xhat = (p[e] - mu[e]) * is[e];
        q[e] = static_cast<T>(scale[e] * (g[e] - sum_dy[e] - xhat * sum_dy_xhat[e]));
      }
    }
  });
}

// Training forward: normalises with the batch statistics, saves mean and
// 1/sqrt(var + eps) for backward, and updates the running statistics with
// the unbiased variance (as PyTorch). gamma/beta may be null (affine=false).
template <class T>
void batchnorm_forward_train_per_channel(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                                         T momentum, T* running_mean, T* running_var, T* save_mean, T* save_invstd,
                                         T* y) {
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
    T scale, shift;
    finish_channel_statistics(c, mean, sq, m, gamma, beta, eps, momentum, running_mean, running_var, save_mean,
                              save_invstd, scale, shift);
    for (index_t n = 0; n < s.batch; ++n) {
      const T* p = x + (n * s.channels + c) * s.plane;
      T* q = y + (n * s.channels + c) * s.plane;
#pragma omp simd
      for (index_t i = 0; i < s.plane; ++i) q[i] = p[i] * scale + shift;
    }
  }
}

template <class T>
void batchnorm_forward_train(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps, T momentum,
                             T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y) {
  if (s.plane < kSmallPlane)
    batchnorm_forward_train_small(s, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean, save_invstd, y);
  else
    batchnorm_forward_train_per_channel(s, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean,
                                        save_invstd, y);
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
void batchnorm_backward_per_channel(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy,
                                    const T* gamma, const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
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

template <class T>
void batchnorm_backward(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                        const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
  if (s.plane < kSmallPlane)
    batchnorm_backward_small(s, batch_statistics, x, dy, gamma, mean, invstd, dx, dgamma, dbeta);
  else
    batchnorm_backward_per_channel(s, batch_statistics, x, dy, gamma, mean, invstd, dx, dgamma, dbeta);
}

}  // namespace rescnn::cpu
