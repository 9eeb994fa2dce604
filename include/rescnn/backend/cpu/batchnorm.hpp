// rescnn/backend/cpu/batchnorm.hpp — BatchNorm2d kernels over NCHW
// (kernels/batchnorm.inc): float at the level in use (float_kernels.hpp),
// everything else at the generic level.
#pragma once

#include <cmath>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

namespace generic {
#include "rescnn/backend/cpu/kernels/batchnorm.inc"
}  // namespace generic

template <class T>
void batchnorm_forward_train(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps, T momentum,
                             T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y) {
  if (!run_float_kernel<T>([&](auto k) {
        k.batchnorm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean, save_invstd,
                                  y);
      }))
    generic::batchnorm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean,
                                     save_invstd, y);
}
template <class T>
void batchnorm_forward_eval(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                            const T* running_mean, const T* running_var, T* y) {
  if (!run_float_kernel<T>(
          [&](auto k) { k.batchnorm_forward_eval(s, x, gamma, beta, eps, running_mean, running_var, y); }))
    generic::batchnorm_forward_eval(s, x, gamma, beta, eps, running_mean, running_var, y);
}
template <class T>
void batchnorm_backward(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                        const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta) {
  if (!run_float_kernel<T>(
          [&](auto k) { k.batchnorm_backward(s, batch_statistics, x, dy, gamma, mean, invstd, dx, dgamma, dbeta); }))
    generic::batchnorm_backward(s, batch_statistics, x, dy, gamma, mean, invstd, dx, dgamma, dbeta);
}

}  // namespace rescnn::cpu
