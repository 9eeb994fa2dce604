// tests/support/half_rounding.hpp — judging a result that was rounded to
// bf16 or fp16 once, as cuDNN's 16-bit convolutions return it (see
// tests/cuda/test_cuda_autocast.cu for the criterion and why it is sharp).
// Host code only, so that the criterion itself can be checked on the CPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "rescnn/core/half.hpp"
#include "rescnn/core/precision.hpp"

namespace rescnn::testing {

// v rounded to nearest even in precision p (bf16 or fp16).
inline float round_to(Precision p, float v) {
  return p == Precision::bf16 ? round_to_bf16(v) : half_bits_to_float(float_to_half_bits(v));
}

inline std::vector<float> rounded(Precision p, std::vector<float> v) {
  for (auto& x : v) x = round_to(p, x);
  return v;
}

// The spacing of p's values around |v| (fp16's subnormals: 2^-24).
inline double spacing(Precision p, double v) {
  const int mantissa_bits = p == Precision::bf16 ? 7 : 10;
  int exponent = 0;
  std::frexp(std::abs(v), &exponent);  // |v| = m 2^exponent, m in [0.5, 1)
  const double s = std::ldexp(1.0, exponent - 1 - mantissa_bits);
  return p == Precision::fp16 ? std::max(s, 0x1p-24) : s;
}

struct RoundedOnce {
  bool ok = false;
  std::size_t mismatches = 0;  // elements != the exact value rounded once
  std::size_t beyond = 0;      // elements beyond one spacing of it
  std::string message;
};

// `got` should be fl(round_p(exact) + offset), offset being what the result
// was added to in float (zeros for an overwritten output). Every element
// must lie within one spacing of p (plus float's rounding of the sum and
// 1e-5 of the scale for float accumulation) of exact + offset, and at most
// 2% may differ from fl(round_p(exact) + offset) at all.
inline RoundedOnce rounded_once(Precision p, const std::vector<float>& got, const std::vector<double>& exact,
                                const std::vector<float>& offset) {
  RoundedOnce r;
  if (got.size() != exact.size() || offset.size() != exact.size()) {
    r.message = "sizes differ: got " + std::to_string(got.size()) + ", exact " + std::to_string(exact.size()) +
                ", offset " + std::to_string(offset.size());
    return r;
  }
  double scale = 0;
  for (double v : exact) scale = std::max(scale, std::abs(v));
  std::size_t worst = 0;
  double worst_ratio = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const float expected = round_to(p, static_cast<float>(exact[i])) + offset[i];
    if (got[i] != expected) ++r.mismatches;
    const double err = std::abs(static_cast<double>(got[i]) - (exact[i] + offset[i]));
    const double bound = spacing(p, exact[i]) + 0x1p-23 * std::abs(exact[i] + offset[i]) + 1e-5 * scale;
    const double ratio = std::isnan(err) ? INFINITY : err / bound;
    if (!(ratio <= 1)) ++r.beyond;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  std::ostringstream os;
  os.precision(9);
  os << precision_name(p) << ": " << r.mismatches << " of " << got.size()
     << " elements differ from the exact value rounded once (at most 2% may), " << r.beyond << " beyond one spacing";
  if (!got.empty())
    os << "; worst at element " << worst << ": got " << got[worst] << ", exact " << exact[worst] + offset[worst] << " ("
       << worst_ratio << " of its bound)";
  r.message = os.str();
  r.ok = r.beyond == 0 && static_cast<double>(r.mismatches) <= 0.02 * static_cast<double>(got.size());
  return r;
}

}  // namespace rescnn::testing
