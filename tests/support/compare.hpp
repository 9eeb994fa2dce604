// tests/support/compare.hpp — comparing tensors with a stated tolerance.
//
// Relative error per element, |a - e| / max(|e|, mean|e|): relative to the
// element itself, floored at the tensor's mean magnitude so that elements
// near zero (where any rounding is a large relative error) are judged on the
// scale of the tensor. The Catch matcher names the worst element.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <vector>

#include "rescnn/core/tensor.hpp"

namespace rescnn::testing {

// How many elements of two equally long vectors differ in any bit (for the
// tests that require bit-identical results: thread counts, units).
inline std::size_t count_differences(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
  return differ;
}

struct Closeness {
  double max_rel_error = 0;
  index_t worst = -1;
  double actual = 0, expected = 0;
  bool shape_ok = true;
};

template <class A, class E>
Closeness closeness(const std::vector<A>& a, const std::vector<E>& e) {
  Closeness c;
  if (a.size() != e.size()) {  // never "close": an error no tolerance accepts
    c.shape_ok = false;
    c.max_rel_error = INFINITY;
    return c;
  }
  double mean_abs = 0;
  for (auto v : e) mean_abs += std::abs(static_cast<double>(v));
  mean_abs = e.empty() ? 0 : mean_abs / static_cast<double>(e.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double ev = static_cast<double>(e[i]), av = static_cast<double>(a[i]);
    const double denom = std::max({std::abs(ev), mean_abs, 1e-30});
    const double rel = std::abs(av - ev) / denom;
    if (!(rel <= c.max_rel_error)) {  // also catches NaN
      c.max_rel_error = std::isnan(rel) ? INFINITY : rel;
      c.worst = static_cast<index_t>(i);
      c.actual = av;
      c.expected = ev;
    }
  }
  return c;
}

template <class T, class U, class D>
class IsCloseTo : public Catch::MatcherBase<Tensor<T, D>> {
 public:
  IsCloseTo(const Tensor<U, D>& expected, double rtol)
      : expected_(expected.to_vector()), shape_(expected.shape()), rtol_(rtol) {}

  bool match(const Tensor<T, D>& actual) const override {
    if (!(actual.shape() == shape_)) {
      last_ = "has shape " + actual.shape().to_string() + ", expected " + shape_.to_string();
      return false;
    }
    const Closeness c = closeness(actual.to_vector(), expected_);
    std::ostringstream os;
    os << "max relative error " << c.max_rel_error << " (element " << c.worst << ": " << c.actual << " vs "
       << c.expected << "), tolerance " << rtol_;
    last_ = os.str();
    return c.max_rel_error <= rtol_;
  }
  std::string describe() const override { return "is close to the reference: " + last_; }

 private:
  std::vector<U> expected_;
  Shape shape_;
  double rtol_;
  mutable std::string last_;
};

// REQUIRE_THAT(actual, IsClose(expected, 1e-4));
template <class T, class D>
IsCloseTo<T, T, D> IsClose(const Tensor<T, D>& expected, double rtol) {
  return IsCloseTo<T, T, D>(expected, rtol);
}

// REQUIRE_THAT(float_result, IsCloseToReference<float>(double_reference, 1e-5)):
// a result compared with a reference computed in another precision.
template <class T, class U, class D>
IsCloseTo<T, U, D> IsCloseToReference(const Tensor<U, D>& expected, double rtol) {
  return IsCloseTo<T, U, D>(expected, rtol);
}

}  // namespace rescnn::testing
