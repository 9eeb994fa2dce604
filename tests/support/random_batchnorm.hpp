// tests/support/random_batchnorm.hpp — BatchNorm layers with statistics and
// affine parameters as a trained network has them, so that tests of eval
// mode (folding, ONNX export) exercise every term: a freshly built model's
// BatchNorms (mean 0, variance 1, gamma 1, beta 0) are nearly identities,
// and a fold that ignored eps or the mean would still pass on them.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "rescnn/core/rng.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::testing {

// Variances are log-uniform in [10^min_log10_var, 10^0.5]: down to 1e-3
// (the default) a few channels are nearly dead, as in trained networks, and
// eps = 1e-5 matters in them at the 1% level.
template <class T, class D>
void randomise_batchnorms(nn::Module<T, D>& model, Generator& gen, double min_log10_var = -3) {
  auto fill = [&](Tensor<T, D>& t, auto draw) {
    std::vector<T> v(static_cast<std::size_t>(t.numel()));
    for (auto& e : v) e = static_cast<T>(draw());
    t = Tensor<T, D>::from_vector(t.shape(), v);
  };
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (auto& [name, b] : model.named_buffers()) {
    if (ends_with(name, "running_mean")) fill(*b, [&] { return gen.uniform(-0.3, 0.3); });
    if (ends_with(name, "running_var")) fill(*b, [&] { return std::pow(10.0, gen.uniform(min_log10_var, 0.5)); });
  }
  // BatchNorm parameters are the rank-1 ones that sit beside running stats.
  for (auto& [name, b] : model.named_buffers()) {
    if (!ends_with(name, "running_mean")) continue;
    const std::string prefix = name.substr(0, name.size() - std::string("running_mean").size());
    for (auto& [pname, p] : model.named_parameters()) {
      if (pname == prefix + "weight") fill(p->value, [&] { return gen.uniform(0.5, 1.5); });
      if (pname == prefix + "bias") fill(p->value, [&] { return gen.uniform(-0.3, 0.3); });
    }
  }
}

}  // namespace rescnn::testing
