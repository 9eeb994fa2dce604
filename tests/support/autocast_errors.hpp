// tests/support/autocast_errors.hpp — how far a whole model's output and
// gradients under bf16 or fp16 autocast are from fp32, on any device
// (test_bf16 on the CPU, tests/cuda/test_cuda_autocast on the GPU). The
// bounds, and why they hold, are at test_bf16's model test.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "rescnn/core/precision.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::testing {

// ||a - b|| / ||b|| over all elements.
inline double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

struct AutocastErrors {
  double output = 0;       // eval-mode forward, relative L2 against fp32
  double grad_median = 0;  // per gradient tensor (input and every parameter)
  double grad_worst = 0;
  std::string worst_name;
};

// The eval-mode output of `model` on x in `precision` against fp32; then, in
// train mode, the gradients of one backward pass of dy in `precision`
// against fp32, both from the same forward pass (in `precision`, so that the
// ReLU masks and BatchNorm's batch statistics are the same and only the
// backward products' rounding differs).
template <class D>
AutocastErrors autocast_errors(nn::Module<float, D>& model, const Tensor<float, D>& x, const Tensor<float, D>& dy,
                               Precision precision) {
  AutocastErrors e;
  model.eval();
  const auto forward = [&](Precision p) {
    const Autocast autocast(p);
    return model.forward(x).to_vector();
  };
  e.output = relative_l2(forward(precision), forward(Precision::fp32));

  model.train(true);
  const auto backward = [&](Precision p) {
    {
      const Autocast same(precision);  // the same bits every time
      model.forward(x);
    }
    const Autocast autocast(p);
    model.zero_grad();
    std::vector<std::vector<float>> grads{model.backward(dy).to_vector()};
    for (auto& [param_name, param] : model.named_parameters()) grads.push_back(param->grad.to_vector());
    return grads;
  };
  const auto fp32 = backward(Precision::fp32), low = backward(precision);
  const auto params = model.named_parameters();
  std::vector<double> errors;
  for (std::size_t i = 0; i < fp32.size() && i < low.size(); ++i) {
    double err = relative_l2(low[i], fp32[i]);
    if (std::isnan(err)) err = INFINITY;
    errors.push_back(err);
    if (err > e.grad_worst || errors.size() == 1) {
      e.grad_worst = err;
      e.worst_name = i == 0 ? "input gradient" : "grad." + params[i - 1].first;
    }
  }
  if (fp32.size() != low.size()) e.grad_worst = INFINITY;
  std::nth_element(errors.begin(), errors.begin() + static_cast<std::ptrdiff_t>(errors.size() / 2), errors.end());
  e.grad_median = errors.empty() ? INFINITY : errors[errors.size() / 2];
  return e;
}

}  // namespace rescnn::testing
