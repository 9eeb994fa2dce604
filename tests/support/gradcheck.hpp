// tests/support/gradcheck.hpp — finite-difference gradient checking.
//
// For a module M and input x, the scalar L = sum(M(x) * R) with a fixed random
// R has dL/dx = M.backward(R) and dL/dp = p.grad. Each of those is compared
// with the central difference (L(v + h) - L(v - h)) / 2h for every element v
// of x and of every parameter, in double precision. Train mode is checked as
// well as eval mode (BatchNorm's batch statistics couple the whole batch, and
// the check covers that coupling).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "rescnn/nn/module.hpp"

namespace rescnn::testing {

struct GradCheckOptions {
  double step = 1e-5;  // central-difference step h
  double rtol = 1e-6;  // |analytic - numeric| <= atol + rtol * |numeric|
  double atol = 1e-7;
  std::uint64_t seed = 1234;
};

struct GradCheckReport {
  index_t checked = 0;
  double max_abs_error = 0;
  std::vector<std::string> failures;  // the first few mismatches, described
  bool ok() const { return failures.empty() && checked > 0; }
  std::string summary() const {
    std::ostringstream os;
    os << checked << " derivatives checked, max |analytic - numeric| = " << max_abs_error;
    for (const auto& f : failures) os << "\n  " << f;
    return os.str();
  }
};

namespace detail {

inline double weighted_sum(const Tensor<double>& y, const Tensor<double>& r) {
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += y[i] * r[i];
  return s;
}

inline void compare(GradCheckReport& report, const GradCheckOptions& opt, const std::string& what, index_t i,
                    double analytic, double numeric) {
  ++report.checked;
  const double err = std::abs(analytic - numeric);
  report.max_abs_error = std::max(report.max_abs_error, err);
  if (!(err <= opt.atol + opt.rtol * std::abs(numeric)) && report.failures.size() < 8) {
    std::ostringstream os;
    os << what << "[" << i << "]: analytic " << analytic << " vs numeric " << numeric;
    report.failures.push_back(os.str());
  }
}

// Central differences of `loss` with respect to each element of `v`,
// compared with `analytic`.
inline void check_elements(GradCheckReport& report, const GradCheckOptions& opt, const std::string& what,
                           Tensor<double>& v, const std::vector<double>& analytic,
                           const std::function<double()>& loss) {
  for (index_t i = 0; i < v.numel(); ++i) {
    const double saved = v[i];
    v[i] = saved + opt.step;
    const double plus = loss();
    v[i] = saved - opt.step;
    const double minus = loss();
    v[i] = saved;
    compare(report, opt, what, i, analytic[static_cast<std::size_t>(i)], (plus - minus) / (2 * opt.step));
  }
}

}  // namespace detail

// Checks dL/dx and dL/dp for every parameter of `module` at input `x`.
inline GradCheckReport check_gradients(nn::Module<double>& module, Tensor<double>& x,
                                       const GradCheckOptions& opt = {}) {
  GradCheckReport report;
  Generator gen(opt.seed);
  Tensor<double> y = module.forward(x);
  const auto r = Tensor<double>::normal(y.shape(), 0, 1, gen);
  module.zero_grad();
  const std::vector<double> dx = module.backward(r).to_vector();

  std::vector<std::pair<std::string, std::vector<double>>> param_grads;
  for (auto& [name, p] : module.named_parameters()) param_grads.emplace_back(name, p->grad.to_vector());

  const auto loss = [&] {
    nn::NoGradGuard no_grad;
    return detail::weighted_sum(module.forward(x), r);
  };
  detail::check_elements(report, opt, "input", x, dx, loss);
  std::size_t k = 0;
  for (auto& [name, p] : module.named_parameters())
    detail::check_elements(report, opt, name, p->value, param_grads[k++].second, loss);
  return report;
}

// Gives every rank-1 parameter (BatchNorm gamma/beta, biases) and every
// running statistic non-trivial values. A fresh eval-mode BatchNorm maps an
// exactly-zero input (a conv over a window a ReLU zeroed) to exactly zero,
// i.e. onto the next ReLU's kink, where a central difference measures half a
// slope; random affine parameters and statistics move values off the kink.
inline void randomise_statistics(nn::Module<double>& m, Generator& gen) {
  for (auto& [name, p] : m.named_parameters())
    if (p->value.rank() == 1) p->value = Tensor<double>::uniform(p->value.shape(), 0.5, 1.5, gen);
  for (auto& [name, b] : m.named_buffers()) {
    const bool var = name.size() >= 3 && name.compare(name.size() - 3, 3, "var") == 0;
    *b = var ? Tensor<double>::uniform(b->shape(), 0.5, 2.0, gen) : Tensor<double>::normal(b->shape(), 0, 0.5, gen);
  }
}

// An input whose elements are at least `gap` away from zero, so ReLU kinks
// are not crossed by the finite-difference step.
inline Tensor<double> away_from_zero(const Shape& s, Generator& gen, double gap = 0.05) {
  auto t = Tensor<double>::normal(s, 0, 1, gen);
  for (index_t i = 0; i < t.numel(); ++i) t[i] += t[i] >= 0 ? gap : -gap;
  return t;
}

// An input of distinct values spaced well beyond the step (a shuffled
// ramp), so max-pooling's argmax does not change under perturbation.
inline Tensor<double> distinct_values(const Shape& s, Generator& gen) {
  const index_t n = s.numel();
  std::vector<double> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(n);
  for (index_t i = n - 1; i > 0; --i)
    std::swap(v[static_cast<std::size_t>(i)], v[gen.uniform_int(static_cast<std::uint64_t>(i + 1))]);
  return Tensor<double>::from_vector(s, v);
}

}  // namespace rescnn::testing
