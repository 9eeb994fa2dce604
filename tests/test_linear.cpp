// Linear: gradients, golden values, bad input.
#include <catch2/catch.hpp>

#include "rescnn/nn/linear.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace rescnn;
using rescnn::testing::IsClose;

TEST_CASE("Linear gradients match finite differences", "[linear][gradcheck]") {
  for (bool bias : {true, false}) {
    SECTION(bias ? "with bias" : "without bias") {
      Generator gen(31);
      nn::Linear<double> fc({.in_features = 5, .out_features = 3, .bias = bias}, gen);
      auto x = Tensor<double>::normal({4, 5}, 0, 1, gen);
      const auto r = testing::check_gradients(fc, x);
      INFO(r.summary());
      CHECK(r.ok());
    }
  }
}

TEST_CASE("Linear matches PyTorch (golden)", "[linear][golden]") {
  for (const auto& path : testing::golden_cases("linear")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      const bool bias = testing::meta_bool(f, "bias");
      nn::Linear<float> fc({.in_features = testing::meta_int(f, "in_features"),
                            .out_features = testing::meta_int(f, "out_features"),
                            .bias = bias});
      fc.weight.value.copy_(f.tensor<float>("weight"));
      if (bias) fc.bias.value.copy_(f.tensor<float>("bias"));
      CHECK_THAT(fc.forward(f.tensor<float>("input")), IsClose(f.tensor<float>("output"), 1e-4));
      fc.zero_grad();
      CHECK_THAT(fc.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 1e-4));
      CHECK_THAT(fc.weight.grad, IsClose(f.tensor<float>("grad_weight"), 1e-4));
      if (bias) CHECK_THAT(fc.bias.grad, IsClose(f.tensor<float>("grad_bias"), 1e-4));
    }
  }
}

TEST_CASE("Linear rejects invalid options and inputs", "[linear][errors]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(nn::Linear<float>(0, 3), Contains("in_features must be positive"));
  CHECK_THROWS_WITH(nn::Linear<float>(3, -1), Contains("out_features must be positive"));
  nn::Linear<float> fc(4, 2);
  CHECK_THROWS_WITH(fc.forward(Tensor<float>::zeros({3, 5})),
                    Contains("has 5 features, but the weight (2, 4) expects in_features=4"));
  CHECK_THROWS_AS(fc.forward(Tensor<float>::zeros({3, 5})), ShapeError);
  CHECK_THROWS_WITH(fc.forward(Tensor<float>::zeros({3, 4, 1, 1})),
                    Contains("expected input of shape (N, in_features)"));
}

TEST_CASE("Linear accumulates parameter gradients until zero_grad", "[linear]") {
  Generator gen(3);
  nn::Linear<double> fc({.in_features = 5, .out_features = 4}, gen);
  const auto x = Tensor<double>::normal({3, 5}, 0, 1, gen);
  const auto dy = Tensor<double>::normal({3, 4}, 0, 1, gen);
  fc.zero_grad();
  fc.forward(x);
  fc.backward(dy);
  const auto w_once = fc.weight.grad.to_vector(), b_once = fc.bias.grad.to_vector();
  fc.forward(x);
  fc.backward(dy);
  for (index_t i = 0; i < fc.weight.grad.numel(); ++i)
    CHECK(fc.weight.grad[i] == Approx(2 * w_once[static_cast<std::size_t>(i)]).epsilon(1e-12));
  for (index_t i = 0; i < fc.bias.grad.numel(); ++i)
    CHECK(fc.bias.grad[i] == Approx(2 * b_once[static_cast<std::size_t>(i)]).epsilon(1e-12));
  fc.zero_grad();
  CHECK(fc.weight.grad.to_vector() == std::vector<double>(20, 0.0));
  CHECK(fc.bias.grad.to_vector() == std::vector<double>(4, 0.0));
}
