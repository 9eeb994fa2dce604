// rescnn/nn/init.hpp — weight initialisation, as torch.nn.init.
//
// Values are drawn on the host from a seeded Generator and copied to the
// tensor's device, so a seed gives the same network on the CPU and the GPU.
#pragma once

#include <cmath>

#include "rescnn/core/rng.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::nn::init {

struct Fans {
  double in, out;
};

// PyTorch's _calculate_fan_in_and_fan_out: for a weight (out, in, kh, kw),
// fan_in = in*kh*kw and fan_out = out*kh*kw; for (out, in), in and out.
inline Fans fans(const Shape& s) {
  check<ShapeError>(s.rank() >= 2, "init: fan in/out need a weight of rank >= 2, got ", s);
  double receptive = 1;
  for (int i = 2; i < s.rank(); ++i) receptive *= static_cast<double>(s[i]);
  return {static_cast<double>(s[1]) * receptive, static_cast<double>(s[0]) * receptive};
}

enum class FanMode { FanIn, FanOut };

template <class T, class D>
void uniform_(Tensor<T, D>& t, double lo, double hi, Generator& gen = default_generator()) {
  t = Tensor<T, D>::uniform(t.shape(), lo, hi, gen);
}

template <class T, class D>
void normal_(Tensor<T, D>& t, double mean, double stddev, Generator& gen = default_generator()) {
  t = Tensor<T, D>::normal(t.shape(), mean, stddev, gen);
}

template <class T, class D>
void constant_(Tensor<T, D>& t, T value) {
  t.fill_(value);
}

// He et al. for ReLU networks: N(0, 2/fan), torchvision's choice for convs
// (mode fan_out).
template <class T, class D>
void kaiming_normal_(Tensor<T, D>& t, FanMode mode = FanMode::FanOut, Generator& gen = default_generator()) {
  const Fans f = fans(t.shape());
  const double fan = mode == FanMode::FanIn ? f.in : f.out;
  normal_(t, 0.0, std::sqrt(2.0 / fan), gen);
}

// PyTorch's default for Conv2d and Linear weights: kaiming_uniform with
// a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <class T, class D>
void kaiming_uniform_default_(Tensor<T, D>& t, Generator& gen = default_generator()) {
  const double bound = 1.0 / std::sqrt(fans(t.shape()).in);
  uniform_(t, -bound, bound, gen);
}

// Glorot & Bengio: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); d2l's
// choice for its ResNet.
template <class T, class D>
void xavier_uniform_(Tensor<T, D>& t, Generator& gen = default_generator()) {
  const Fans f = fans(t.shape());
  const double bound = std::sqrt(6.0 / (f.in + f.out));
  uniform_(t, -bound, bound, gen);
}

}  // namespace rescnn::nn::init
