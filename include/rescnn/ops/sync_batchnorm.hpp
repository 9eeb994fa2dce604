// rescnn/ops/sync_batchnorm.hpp — batch normalisation whose statistics are
// reduced over every process of a data-parallel job (SyncBatchNorm).
//
// Forward: each rank sums x and x^2 per channel (in double) over its own
// (N, H, W), the sums and the element count are summed over all ranks, and
// the batch's mean and biased variance are the global ones, so N ranks with
// batch B/N normalise exactly as one process with batch B. Backward needs
// two global sums per channel, sum(dy) and sum(dy * xhat); the affine
// gradients stay local (DistributedDataParallel averages them, as in
// PyTorch's SyncBatchNorm).
//
// The arithmetic runs on the host (tensors on another device are staged
// through host memory): it is per-channel reductions and one elementwise
// pass, small next to the convolutions around it.
#pragma once

#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/batchnorm.hpp"

namespace rescnn::ops {

// Sums doubles over all ranks, in place (a process group's allreduce).
using AllreduceSum = std::function<void(std::span<double>)>;

template <class T, class D>
Tensor<T, D> sync_batchnorm_forward_train(const Tensor<T, D>& x, const Tensor<T, D>* gamma, const Tensor<T, D>* beta,
                                          Tensor<T, D>* running_mean, Tensor<T, D>* running_var, double eps,
                                          double momentum, const AllreduceSum& allreduce, BatchNormSaved<T, D>& saved) {
  const index_t channels = x.rank() == 4 ? x.dim(1) : 0;
  const auto s = batchnorm_sizes(x, channels);
  const Tensor<T> host = x.template to<Cpu>();
  const auto c_count = static_cast<std::size_t>(s.channels);
  // [sum_0..sum_{C-1}, sumsq_0..sumsq_{C-1}, count]
  std::vector<double> sums(2 * c_count + 1, 0.0);
  const T* px = host.data();
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < s.channels; ++c) {
    double sum = 0, sumsq = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const T* row = px + (n * s.channels + c) * s.plane;
      for (index_t i = 0; i < s.plane; ++i) {
        const double v = static_cast<double>(row[i]);
        sum += v;
        sumsq += v * v;
      }
    }
    sums[static_cast<std::size_t>(c)] = sum;
    sums[c_count + static_cast<std::size_t>(c)] = sumsq;
  }
  sums[2 * c_count] = static_cast<double>(s.per_channel());
  allreduce(sums);
  const double count = sums[2 * c_count];
  check<ShapeError>(count > 1, "SyncBatchNorm: training needs more than one value per channel over all ranks, got ",
                    count, " (input ", x.shape(), " on this rank)");
  std::vector<T> mean(c_count), var(c_count), invstd(c_count);
  std::vector<double> unbiased(c_count);
  for (std::size_t c = 0; c < c_count; ++c) {
    const double m = sums[c] / count;
    const double v = std::max(0.0, sums[c_count + c] / count - m * m);
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(v);
    invstd[c] = static_cast<T>(1.0 / std::sqrt(v + eps));
    unbiased[c] = v * count / (count - 1);
  }
  if (running_mean && running_var) {
    std::vector<T> rm = running_mean->to_vector(), rv = running_var->to_vector();
    for (std::size_t c = 0; c < c_count; ++c) {
      rm[c] = static_cast<T>((1 - momentum) * static_cast<double>(rm[c]) + momentum * static_cast<double>(mean[c]));
      rv[c] = static_cast<T>((1 - momentum) * static_cast<double>(rv[c]) + momentum * unbiased[c]);
    }
    running_mean->copy_(Tensor<T, D>::from_vector({s.channels}, rm));
    running_var->copy_(Tensor<T, D>::from_vector({s.channels}, rv));
  }
  saved.mean = Tensor<T, D>::from_vector({s.channels}, mean);
  saved.invstd = Tensor<T, D>::from_vector({s.channels}, invstd);
  // y = (x - mean) * invstd * gamma + beta: eval-mode arithmetic with the
  // global statistics in place of the running ones.
  return batchnorm_forward_eval(x, gamma, beta, saved.mean, Tensor<T, D>::from_vector({s.channels}, var),
                                static_cast<T>(eps));
}

// dL/dx from the global sums; adds the local dL/dgamma, dL/dbeta (when non-null).
template <class T, class D>
Tensor<T, D> sync_batchnorm_backward(const Tensor<T, D>& x, const Tensor<T, D>& dy, const Tensor<T, D>* gamma,
                                     const BatchNormSaved<T, D>& saved, const AllreduceSum& allreduce,
                                     Tensor<T, D>* dgamma, Tensor<T, D>* dbeta) {
  const auto s = batchnorm_sizes(x, saved.mean.numel());
  check<ShapeError>(dy.shape() == x.shape(), "SyncBatchNorm backward: gradient of shape ", dy.shape(),
                    " does not match the input shape ", x.shape());
  const Tensor<T> hx = x.template to<Cpu>(), hdy = dy.template to<Cpu>();
  const std::vector<T> mean = saved.mean.to_vector(), invstd = saved.invstd.to_vector();
  const std::vector<T> g = gamma ? gamma->to_vector() : std::vector<T>(mean.size(), T(1));
  const auto c_count = static_cast<std::size_t>(s.channels);
  // [sum_dy per channel, sum_dy_xhat per channel, count]
  std::vector<double> sums(2 * c_count + 1, 0.0);
  const T* px = hx.data();
  const T* pdy = hdy.data();
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < s.channels; ++c) {
    const double m = static_cast<double>(mean[static_cast<std::size_t>(c)]);
    const double is = static_cast<double>(invstd[static_cast<std::size_t>(c)]);
    double sdy = 0, sdyx = 0;
    for (index_t n = 0; n < s.batch; ++n) {
      const index_t base = (n * s.channels + c) * s.plane;
      for (index_t i = 0; i < s.plane; ++i) {
        const double d = static_cast<double>(pdy[base + i]);
        sdy += d;
        sdyx += d * (static_cast<double>(px[base + i]) - m) * is;
      }
    }
    sums[static_cast<std::size_t>(c)] = sdy;
    sums[c_count + static_cast<std::size_t>(c)] = sdyx;
  }
  sums[2 * c_count] = static_cast<double>(s.per_channel());
  const std::vector<double> local(sums.begin(), sums.end());
  allreduce(sums);
  const double count = sums[2 * c_count];
  Tensor<T> dx = Tensor<T>::empty(x.shape());
  T* pdx = dx.data();
#pragma omp parallel for schedule(static)
  for (index_t c = 0; c < s.channels; ++c) {
    const auto cc = static_cast<std::size_t>(c);
    const double m = static_cast<double>(mean[cc]), is = static_cast<double>(invstd[cc]);
    const double mean_dy = sums[cc] / count, mean_dyx = sums[c_count + cc] / count;
    const double scale = static_cast<double>(g[cc]) * is;
    for (index_t n = 0; n < s.batch; ++n) {
      const index_t base = (n * s.channels + c) * s.plane;
      for (index_t i = 0; i < s.plane; ++i) {
        const double xhat = (static_cast<double>(px[base + i]) - m) * is;
        pdx[base + i] = static_cast<T>(scale * (static_cast<double>(pdy[base + i]) - mean_dy - xhat * mean_dyx));
      }
    }
  }
  auto accumulate = [&](Tensor<T, D>* grad, std::size_t offset) {
    if (!grad) return;
    std::vector<T> v = grad->to_vector();
    for (std::size_t c = 0; c < c_count; ++c) v[c] = static_cast<T>(static_cast<double>(v[c]) + local[offset + c]);
    grad->copy_(Tensor<T, D>::from_vector({s.channels}, v));
  };
  accumulate(dgamma, c_count);
  accumulate(dbeta, 0);
  return dx.template to<D>();
}

}  // namespace rescnn::ops
