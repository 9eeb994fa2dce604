// rescnn/ops/batchnorm.hpp — batch normalisation over (N, H, W) per channel.
#pragma once

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

template <class T, class D>
BatchNormSizes batchnorm_sizes(const Tensor<T, D>& x, index_t channels) {
  check<ShapeError>(x.defined() && x.rank() == 4, "batch_norm: expected input of shape (N, C, H, W), got ", x.shape());
  check<ShapeError>(x.dim(1) == channels, "batch_norm: input ", x.shape(), " has ", x.dim(1),
                    " channels, but the layer has num_features=", channels);
  return {x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
}

// Statistics a training-mode forward saves for backward.
template <class T, class D>
struct BatchNormSaved {
  Tensor<T, D> mean, invstd;
};

// Training forward: uses and saves batch statistics; updates running stats
// when they are given (non-null).
template <class T, class D>
Tensor<T, D> batchnorm_forward_train(const Tensor<T, D>& x, const Tensor<T, D>* gamma, const Tensor<T, D>* beta,
                                     Tensor<T, D>* running_mean, Tensor<T, D>* running_var, T eps, T momentum,
                                     BatchNormSaved<T, D>& saved) {
  const index_t channels = running_mean ? running_mean->numel() : (gamma ? gamma->numel() : x.dim(1));
  const auto s = batchnorm_sizes(x, channels);
  check<ShapeError>(s.per_channel() > 1, "batch_norm: training needs more than one value per channel, got input ",
                    x.shape());
  auto y = Tensor<T, D>::empty(x.shape());
  saved.mean = Tensor<T, D>::empty({channels});
  saved.invstd = Tensor<T, D>::empty({channels});
  RESCNN_DISPATCH(D, batchnorm_forward_train(
                         s, x.data(), gamma ? gamma->data() : nullptr, beta ? beta->data() : nullptr, eps, momentum,
                         running_mean ? running_mean->data() : nullptr, running_var ? running_var->data() : nullptr,
                         saved.mean.data(), saved.invstd.data(), y.data()));
  return y;
}

template <class T, class D>
Tensor<T, D> batchnorm_forward_eval(const Tensor<T, D>& x, const Tensor<T, D>* gamma, const Tensor<T, D>* beta,
                                    const Tensor<T, D>& running_mean, const Tensor<T, D>& running_var, T eps) {
  const auto s = batchnorm_sizes(x, running_mean.numel());
  auto y = Tensor<T, D>::empty(x.shape());
  RESCNN_DISPATCH(D, batchnorm_forward_eval(s, x.data(), gamma ? gamma->data() : nullptr, beta ? beta->data() : nullptr,
                                            eps, running_mean.data(), running_var.data(), y.data()));
  return y;
}

// Backward with the statistics used by the forward (see cpu::batchnorm_backward).
template <class T, class D>
Tensor<T, D> batchnorm_backward(const Tensor<T, D>& x, const Tensor<T, D>& dy, const Tensor<T, D>* gamma,
                                const BatchNormSaved<T, D>& stats, bool batch_statistics, Tensor<T, D>* dgamma,
                                Tensor<T, D>* dbeta) {
  const auto s = batchnorm_sizes(x, stats.mean.numel());
  check<ShapeError>(dy.shape() == x.shape(), "batch_norm backward: gradient of shape ", dy.shape(),
                    " does not match the input shape ", x.shape());
  auto dx = Tensor<T, D>::empty(x.shape());
  RESCNN_DISPATCH(D, batchnorm_backward(s, batch_statistics, x.data(), dy.data(), gamma ? gamma->data() : nullptr,
                                        stats.mean.data(), stats.invstd.data(), dx.data(),
                                        dgamma ? dgamma->data() : nullptr, dbeta ? dbeta->data() : nullptr));
  return dx;
}

}  // namespace rescnn::ops
