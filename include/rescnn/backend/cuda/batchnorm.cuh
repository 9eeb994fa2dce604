// rescnn/backend/cuda/batchnorm.cuh — BatchNorm2d on the GPU, NCHW.
//
// The same semantics as the CPU twin (cpu/batchnorm.hpp): statistics in
// double, the biased variance for normalising and the unbiased one for the
// running estimate, saved mean and 1/sqrt(var + eps) for backward, gamma and
// beta optional. rescnn's own kernels rather than cuDNN's batch norm, because
// cuDNN's has no "affine=False", no backward through running statistics
// (eval-mode backward) and rounds its statistics in float.
//
// A channel's statistics are a reduction over N * H * W values that lie in N
// separate planes. The grid is (channel, split): each block reduces one
// split of one channel, then one thread per channel combines the splits in
// order. Nothing uses atomics, so results repeat bit for bit.
//
//  - Mean and variance: Welford's update per thread, merged with Chan's
//    formula (numerically stable for any offset of the data, as the CPU's
//    two passes are, in one pass over memory).
//  - Backward: plain double sums of dy and dy * xhat, as on the CPU.
//  - The element-wise passes (normalise; dx) run over the flat tensor; the
//    channel of element e is (e / plane) % channels, with 32-bit division
//    when every index the loops compute fits (index_width.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/index_width.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/backend/cuda/reduce.cuh"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cuda {
namespace detail {

// ---- where a block's values are ----------------------------------------------------------------

// The values of channel c form N planes of `plane` elements, plane n
// starting at (n * channels + c) * plane. Split `split` of `splits` covers
// positions [begin, end) of the channel's m = N * plane values.
template <class I>
struct ChannelSpan {
  I plane, channels;
  I begin, end;

  __device__ static ChannelSpan make(const BatchNormSizes& s, I split, I splits) {
    const I m = static_cast<I>(s.per_channel());
    const I chunk = (m + splits - 1) / splits;
    const I b = split * chunk;
    return {static_cast<I>(s.plane), static_cast<I>(s.channels), b < m ? b : m, b + chunk < m ? b + chunk : m};
  }
  // Flat tensor index of the channel's k-th value.
  __device__ I at(I c, I k) const {
    const I n = k / plane;
    return (n * channels + c) * plane + (k - n * plane);
  }
};

// ---- statistics: Welford per thread, Chan's merge ---------------------------------------------

struct Moments {
  double count, mean, m2;  // m2: sum of squared deviations from the mean
};

struct MergeMoments {
  __device__ Moments operator()(const Moments& a, const Moments& b) const {
    if (b.count == 0) return a;
    if (a.count == 0) return b;
    const double n = a.count + b.count, delta = b.mean - a.mean;
    return {n, a.mean + delta * (b.count / n), a.m2 + b.m2 + delta * delta * (a.count * b.count / n)};
  }
};

// partial[c * splits + split] = the moments of that split of channel c.
template <class T, class I>
__global__ void bn_moments_kernel(BatchNormSizes s, const T* x, I splits, Moments* partial) {
  const I c = blockIdx.x, split = blockIdx.y;
  const auto span = ChannelSpan<I>::make(s, split, splits);
  Moments acc{0, 0, 0};
  for (I k = span.begin + threadIdx.x; k < span.end; k += kThreads) {
    const double v = static_cast<double>(x[span.at(c, k)]);
    acc.count += 1;
    const double delta = v - acc.mean;
    acc.mean += delta / acc.count;
    acc.m2 += delta * (v - acc.mean);
  }
  acc = block_reduce(acc, MergeMoments{});
  if (threadIdx.x == 0) partial[static_cast<index_t>(c) * splits + split] = acc;
}

// One thread per channel: combines the splits in order, saves the
// statistics, updates the running ones, and leaves the per-channel affine
// map (scale, shift) of the normalisation in `affine`. The arithmetic is the
// CPU twin's, expression for expression.
template <class T>
__global__ void bn_finalize_forward_kernel(BatchNormSizes s, index_t splits, const Moments* partial, const T* gamma,
                                           const T* beta, T eps, T momentum, T* running_mean, T* running_var,
                                           T* save_mean, T* save_invstd, T* affine) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= s.channels) return;
  Moments m{0, 0, 0};
  const MergeMoments merge;
  for (index_t k = 0; k < splits; ++k) m = merge(m, partial[c * splits + k]);
  const double count = static_cast<double>(s.per_channel());
  const double mean = m.mean;
  const double var = m.m2 / count;
  const double invstd = 1.0 / ::sqrt(var + static_cast<double>(eps));
  save_mean[c] = static_cast<T>(mean);
  save_invstd[c] = static_cast<T>(invstd);
  if (running_mean) {
    const double unbiased = count > 1 ? m.m2 / (count - 1) : var;
    running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
  }
  const T scale = static_cast<T>(invstd) * (gamma ? gamma[c] : T(1));
  affine[2 * c] = scale;
  affine[2 * c + 1] = (beta ? beta[c] : T(0)) - static_cast<T>(mean) * scale;
}

// y = x * scale[c] + shift[c].
template <class T, class I>
__global__ void bn_apply_kernel(I n, I plane, I channels, const T* x, const T* affine, T* y) {
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I c = (e / plane) % channels;
    y[e] = x[e] * affine[2 * c] + affine[2 * c + 1];
  }
}

// Inference: the running statistics' affine map, each element computing its
// channel's scale as the CPU twin does (in T).
template <class T, class I>
__global__ void bn_eval_kernel(I n, I plane, I channels, const T* x, const T* gamma, const T* beta, T eps,
                               const T* running_mean, const T* running_var, T* y) {
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I c = (e / plane) % channels;
    const T invstd = T(1) / ::sqrt(running_var[c] + eps);
    const T scale = invstd * (gamma ? gamma[c] : T(1));
    const T shift = (beta ? beta[c] : T(0)) - running_mean[c] * scale;
    y[e] = x[e] * scale + shift;
  }
}

// ---- backward ----------------------------------------------------------------------------------

struct GradSums {
  double dy, dy_xhat;
  __device__ GradSums operator+(const GradSums& o) const { return {dy + o.dy, dy_xhat + o.dy_xhat}; }
};

template <class T, class I>
__global__ void bn_grad_sums_kernel(BatchNormSizes s, const T* x, const T* dy, const T* mean, const T* invstd, I splits,
                                    GradSums* partial) {
  const I c = blockIdx.x, split = blockIdx.y;
  const auto span = ChannelSpan<I>::make(s, split, splits);
  const double mu = mean[c], is = invstd[c];
  GradSums acc{0, 0};
  for (I k = span.begin + threadIdx.x; k < span.end; k += kThreads) {
    const I e = span.at(c, k);
    const double g = dy[e];
    acc.dy += g;
    acc.dy_xhat += g * (x[e] - mu) * is;
  }
  acc = block_reduce(acc, SumOp{});
  if (threadIdx.x == 0) partial[static_cast<index_t>(c) * splits + split] = acc;
}

// Per-channel coefficients of dx, in double as on the CPU.
struct GradCoefficients {
  double mean, invstd, scale, mean_dy, mean_dy_xhat;
};

template <class T>
__global__ void bn_finalize_backward_kernel(BatchNormSizes s, bool batch_statistics, index_t splits,
                                            const GradSums* partial, const T* gamma, const T* mean, const T* invstd,
                                            T* dgamma, T* dbeta, GradCoefficients* coef) {
  const index_t c = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= s.channels) return;
  GradSums sum{0, 0};
  for (index_t k = 0; k < splits; ++k) sum = sum + partial[c * splits + k];
  if (dgamma) dgamma[c] += static_cast<T>(sum.dy_xhat);
  if (dbeta) dbeta[c] += static_cast<T>(sum.dy);
  const double m = static_cast<double>(s.per_channel());
  const double is = invstd[c];
  coef[c] = {static_cast<double>(mean[c]), is, (gamma ? static_cast<double>(gamma[c]) : 1.0) * is,
             batch_statistics ? sum.dy / m : 0.0, batch_statistics ? sum.dy_xhat / m : 0.0};
}

// dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)), per element in double.
template <class T, class I>
__global__ void bn_input_grad_kernel(I n, I plane, I channels, const T* x, const T* dy, const GradCoefficients* coef,
                                     T* dx) {
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const GradCoefficients k = coef[(e / plane) % channels];
    const double xhat = (x[e] - k.mean) * k.invstd;
    dx[e] = static_cast<T>(k.scale * (dy[e] - k.mean_dy - xhat * k.mean_dy_xhat));
  }
}

// ---- launch helpers ------------------------------------------------------------------------------

// Splits per channel: enough blocks in all to fill the GPU a few times over,
// none with fewer than about 8 values per thread.
inline index_t bn_splits(const BatchNormSizes& s) {
  const index_t sms = context().properties().multiProcessorCount;
  const index_t by_work = (s.per_channel() + 8 * kThreads - 1) / (8 * kThreads);
  const index_t by_fill = (4 * sms + s.channels - 1) / s.channels;
  return std::max<index_t>(1, std::min<index_t>({by_work, by_fill, 65535}));
}

// Calls f(I{}) with I = uint32_t when every index the kernels compute fits
// in it, the step past the last element included, else index_t. The
// largest stride is that of the element-wise grid-stride loops; the
// per-channel loops step by kThreads, which is smaller, and ChannelSpan's
// bounds (split * chunk + chunk) exceed the channel's count by less than the
// number of splits, at most 65535.
template <class F>
void with_index_type(index_t n, F&& f) {
  if (fits_uint32_loop(n, std::max<index_t>(max_grid_stride(), 65536)))
    f(std::uint32_t{});
  else
    f(index_t{});
}

inline void check_channels(const BatchNormSizes& s) {
  check<ShapeError>(s.channels <= static_cast<index_t>(std::numeric_limits<int>::max()),
                    "batch_norm (CUDA): ", s.channels, " channels exceed the grid's limit");
}

}  // namespace detail

template <class T>
void batchnorm_forward_train(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps, T momentum,
                             T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y) {
  if (s.channels <= 0) return;
  detail::check_channels(s);
  const cudaStream_t stream = context().compute_stream();
  const index_t splits = detail::bn_splits(s);
  auto partial =
      Tensor<std::uint8_t, Cuda>::empty({s.channels * splits * static_cast<index_t>(sizeof(detail::Moments))});
  auto affine = Tensor<T, Cuda>::empty({2 * s.channels});
  auto* moments = reinterpret_cast<detail::Moments*>(partial.data());
  detail::with_index_type(s.numel(), [&](auto index) {
    using I = decltype(index);
    detail::bn_moments_kernel<T, I>
        <<<dim3(static_cast<unsigned>(s.channels), static_cast<unsigned>(splits)), detail::kThreads, 0, stream>>>(
            s, x, static_cast<I>(splits), moments);
    RESCNN_CUDA_CHECK_LAUNCH();
    detail::bn_finalize_forward_kernel<T>
        <<<static_cast<unsigned>((s.channels + detail::kThreads - 1) / detail::kThreads), detail::kThreads, 0,
           stream>>>(s, splits, moments, gamma, beta, eps, momentum, running_mean, running_var, save_mean, save_invstd,
                     affine.data());
    RESCNN_CUDA_CHECK_LAUNCH();
    const I n = static_cast<I>(s.numel());
    detail::bn_apply_kernel<T, I><<<detail::grid_for(s.numel()), detail::kThreads, 0, stream>>>(
        n, static_cast<I>(s.plane), static_cast<I>(s.channels), x, affine.data(), y);
    RESCNN_CUDA_CHECK_LAUNCH();
  });
}

template <class T>
void batchnorm_forward_eval(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                            const T* running_mean, const T* running_var, T* y) {
  if (s.numel() <= 0) return;
  detail::with_index_type(s.numel(), [&](auto index) {
    using I = decltype(index);
    detail::bn_eval_kernel<T, I><<<detail::grid_for(s.numel()), detail::kThreads, 0, context().compute_stream()>>>(
        static_cast<I>(s.numel()), static_cast<I>(s.plane), static_cast<I>(s.channels), x, gamma, beta, eps,
        running_mean, running_var, y);
    RESCNN_CUDA_CHECK_LAUNCH();
  });
}

// As the CPU twin: adds into dgamma/dbeta when non-null, overwrites dx.
template <class T>
void batchnorm_backward(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                        const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
  if (s.channels <= 0) return;
  detail::check_channels(s);
  const cudaStream_t stream = context().compute_stream();
  const index_t splits = detail::bn_splits(s);
  auto partial_bytes =
      Tensor<std::uint8_t, Cuda>::empty({s.channels * splits * static_cast<index_t>(sizeof(detail::GradSums))});
  auto coef_bytes =
      Tensor<std::uint8_t, Cuda>::empty({s.channels * static_cast<index_t>(sizeof(detail::GradCoefficients))});
  auto* partial = reinterpret_cast<detail::GradSums*>(partial_bytes.data());
  auto* coef = reinterpret_cast<detail::GradCoefficients*>(coef_bytes.data());
  detail::with_index_type(s.numel(), [&](auto index) {
    using I = decltype(index);
    detail::bn_grad_sums_kernel<T, I>
        <<<dim3(static_cast<unsigned>(s.channels), static_cast<unsigned>(splits)), detail::kThreads, 0, stream>>>(
            s, x, dy, mean, invstd, static_cast<I>(splits), partial);
    RESCNN_CUDA_CHECK_LAUNCH();
    detail::bn_finalize_backward_kernel<T>
        <<<static_cast<unsigned>((s.channels + detail::kThreads - 1) / detail::kThreads), detail::kThreads, 0,
           stream>>>(s, batch_statistics, splits, partial, gamma, mean, invstd, dgamma, dbeta, coef);
    RESCNN_CUDA_CHECK_LAUNCH();
    if (dx && s.numel() > 0) {
      detail::bn_input_grad_kernel<T, I><<<detail::grid_for(s.numel()), detail::kThreads, 0, stream>>>(
          static_cast<I>(s.numel()), static_cast<I>(s.plane), static_cast<I>(s.channels), x, dy, coef, dx);
      RESCNN_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace rescnn::cuda
