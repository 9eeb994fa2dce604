// The gradient checker itself must catch wrong gradients; otherwise every
// gradcheck test could pass vacuously.
#include <catch2/catch.hpp>

#include "rescnn/nn/linear.hpp"
#include "support/gradcheck.hpp"

using namespace rescnn;

namespace {
// Linear whose input gradient or weight gradient is deliberately wrong.
class BrokenLinear : public nn::Linear<double> {
 public:
  enum class Bug { kNone, kInputGradScaled, kWeightGradDropped };
  BrokenLinear(Bug bug, Generator& gen) : nn::Linear<double>({.in_features = 3, .out_features = 2}, gen), bug_(bug) {}
  Tensor<double> backward(const Tensor<double>& dy) override {
    auto dx = nn::Linear<double>::backward(dy);
    if (bug_ == Bug::kInputGradScaled) dx[1] *= 1.001;  // an error of 0.1% in one element
    if (bug_ == Bug::kWeightGradDropped) weight.grad[4] = 0;
    return dx;
  }

 private:
  Bug bug_;
};
}  // namespace

TEST_CASE("The gradient checker accepts a correct layer and rejects broken ones", "[gradcheck]") {
  Generator gen(9);
  auto x = Tensor<double>::normal({2, 3}, 0, 1, gen);
  BrokenLinear ok(BrokenLinear::Bug::kNone, gen);
  const auto good = testing::check_gradients(ok, x);
  CHECK(good.ok());
  CHECK(good.checked == 6 + 6 + 2);  // input, weight, bias elements

  BrokenLinear scaled(BrokenLinear::Bug::kInputGradScaled, gen);
  const auto bad_input = testing::check_gradients(scaled, x);
  CHECK_FALSE(bad_input.ok());
  REQUIRE(bad_input.failures.size() == 1);
  CHECK(bad_input.failures[0].rfind("input[1]", 0) == 0);

  BrokenLinear dropped(BrokenLinear::Bug::kWeightGradDropped, gen);
  const auto bad_weight = testing::check_gradients(dropped, x);
  CHECK_FALSE(bad_weight.ok());
  REQUIRE(bad_weight.failures.size() == 1);
  CHECK(bad_weight.failures[0].rfind("weight[4]", 0) == 0);
}
