// tests/support/fill.hpp — the deterministic weight fill shared with
// tests/golden/make_model_golden.py.
//
// Model weights are too large to commit, so both sides fill every parameter
// and buffer from its state-dict name with the same function: FNV-1a 64 of
// the name, splitmix64 of (hash + (i + 1) * golden ratio), 53 bits to a double
// in [0, 1), mapped to [-scale, scale) in double and rounded once to T.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "rescnn/nn/module.hpp"

namespace rescnn::testing {

inline double fill_value(const std::string& name, std::uint64_t i, double scale) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char b : name) h = (h ^ b) * 0x100000001b3ULL;
  std::uint64_t z = h + (i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z = z ^ (z >> 31);
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
  return (2.0 * u - 1.0) * scale;
}

// The rule of make_model_golden.py for one state-dict entry.
template <class T, class D>
void fill_entry(const std::string& name, Tensor<T, D>& t) {
  auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  std::vector<T> v(static_cast<std::size_t>(t.numel()));
  const bool is_bn = t.rank() == 1 && !ends_with(".bias");
  double fan_in = 1;
  for (int a = 1; a < t.rank(); ++a) fan_in *= static_cast<double>(t.dim(a));
  for (std::size_t i = 0; i < v.size(); ++i) {
    double x;
    if (t.rank() >= 2)
      x = fill_value(name, i, std::sqrt(3.0 / fan_in));
    else if (ends_with("running_mean"))
      x = fill_value(name, i, 0.1);
    else if (ends_with("running_var"))
      x = 1.0 + fill_value(name, i, 0.25);
    else if (is_bn)
      x = 1.0 + fill_value(name, i, 0.2);  // a BatchNorm weight (rank 1, not a bias)
    else
      x = fill_value(name, i, 0.1);                // conv, linear and BatchNorm biases
    v[i] = static_cast<T>(static_cast<float>(x));  // the fixtures' weights are fp32 values, also in fp64 runs
  }
  t = Tensor<T, D>::from_vector(t.shape(), v);
}

// Fills every parameter and buffer of a model as the golden script does.
template <class T, class D>
void fill_model(nn::Module<T, D>& model) {
  for (auto& [name, p] : model.named_parameters()) fill_entry(name, p->value);
  for (auto& [name, b] : model.named_buffers()) fill_entry(name, *b);
}

}  // namespace rescnn::testing
