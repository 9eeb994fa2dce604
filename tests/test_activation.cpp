// ReLU, Flatten and Identity: gradients, golden values, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "rescnn/nn/activation.hpp"
#include "rescnn/nn/reshape.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace rescnn;
using rescnn::testing::IsClose;

TEST_CASE("ReLU, Flatten and Identity gradients match finite differences", "[activation][gradcheck]") {
  Generator gen(41);
  auto x = testing::away_from_zero({2, 3, 4, 5}, gen);
  nn::ReLU<double> relu;
  nn::Flatten<double> flatten;
  nn::Identity<double> identity;
  for (nn::Module<double>* m : {static_cast<nn::Module<double>*>(&relu), static_cast<nn::Module<double>*>(&flatten),
                                static_cast<nn::Module<double>*>(&identity)}) {
    const auto r = testing::check_gradients(*m, x);
    INFO(m->type_name() << ": " << r.summary());
    CHECK(r.ok());
  }
}

TEST_CASE("ReLU zeroes negatives and passes gradients only where positive", "[activation]") {
  nn::ReLU<float> relu;
  auto y = relu.forward(Tensor<float>::from_vector({4}, {-2.f, -0.f, 0.5f, 3.f}));
  CHECK(y.to_vector() == std::vector<float>{0.f, 0.f, 0.5f, 3.f});
  auto dx = relu.backward(Tensor<float>::from_vector({4}, {1.f, 1.f, 1.f, 1.f}));
  CHECK(dx.to_vector() == std::vector<float>{0.f, 0.f, 1.f, 1.f});
}

TEST_CASE("ReLU matches PyTorch (golden)", "[activation][golden]") {
  for (const auto& path : testing::golden_cases("relu")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      nn::ReLU<float> relu;
      CHECK_THAT(relu.forward(f.tensor<float>("input")), IsClose(f.tensor<float>("output"), 0.0));
      CHECK_THAT(relu.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 0.0));
    }
  }
}

TEST_CASE("Flatten matches PyTorch and is a view (golden)", "[activation][golden]") {
  for (const auto& path : testing::golden_cases("flatten")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      nn::Flatten<float> flatten;
      const auto x = f.tensor<float>("input");
      const auto y = flatten.forward(x);
      CHECK(y.shares_storage_with(x));
      CHECK_THAT(y, IsClose(f.tensor<float>("output"), 0.0));
      CHECK_THAT(flatten.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 0.0));
    }
  }
}

TEST_CASE("ReLU and Flatten reject backward without forward and mismatched gradients", "[activation][errors]") {
  using Catch::Matchers::Contains;
  nn::ReLU<float> relu;
  CHECK_THROWS_WITH(relu.backward(Tensor<float>::zeros({2})), Contains("ReLU.backward: no forward pass was recorded"));
  relu.forward(Tensor<float>::zeros({2, 3}));
  CHECK_THROWS_AS(relu.backward(Tensor<float>::zeros({3, 2})), ShapeError);
  nn::Flatten<float> flatten;
  CHECK_THROWS_WITH(flatten.backward(Tensor<float>::zeros({2})), Contains("no forward pass was recorded"));
}

TEST_CASE("ReLU propagates NaN forward and passes its gradient, as PyTorch does", "[activation]") {
  // A NaN turned into 0 here would hide a diverged run from the trainer.
  nn::ReLU<float> relu;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto y = relu.forward(Tensor<float>::from_vector({3}, {nan, -1.0f, 2.0f}));
  REQUIRE(std::isnan(y.to_vector()[0]));
  REQUIRE(y.to_vector()[1] == 0.0f);
  REQUIRE(y.to_vector()[2] == 2.0f);
  const auto dx = relu.backward(Tensor<float>::from_vector({3}, {5.0f, 6.0f, 7.0f})).to_vector();
  REQUIRE(dx == std::vector<float>{5.0f, 0.0f, 7.0f});  // torch: threshold_backward passes where y > 0 or NaN
}
