// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d: gradients, golden values, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "rescnn/nn/pooling.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace rescnn;
using rescnn::testing::IsClose;

TEST_CASE("Pooling gradients match finite differences", "[pooling][gradcheck]") {
  Generator gen(23);
  SECTION("max 3x3 stride 2 pad 1 (ResNet stem) on 7x5") {
    nn::MaxPool2d<double> pool({.kernel_size = 3, .stride = 2, .padding = 1});
    auto x = testing::distinct_values({2, 2, 7, 5}, gen);
    const auto r = testing::check_gradients(pool, x);
    INFO(r.summary());
    CHECK(r.ok());
  }
  SECTION("max 2x2, default stride, and (3,2) with dilation") {
    nn::MaxPool2d<double> a({.kernel_size = 2});
    auto x = testing::distinct_values({2, 3, 6, 4}, gen);
    auto r = testing::check_gradients(a, x);
    INFO(r.summary());
    CHECK(r.ok());
    nn::MaxPool2d<double> b({.kernel_size = {3, 2}, .stride = 1, .dilation = 2});
    auto x2 = testing::distinct_values({1, 2, 7, 6}, gen);
    r = testing::check_gradients(b, x2);
    INFO(r.summary());
    CHECK(r.ok());
  }
  SECTION("avg 3x3 stride 2 pad 1, with and without count_include_pad") {
    for (bool include : {true, false}) {
      nn::AvgPool2d<double> pool({.kernel_size = 3, .stride = 2, .padding = 1, .count_include_pad = include});
      auto x = Tensor<double>::normal({2, 2, 7, 5}, 0, 1, gen);
      const auto r = testing::check_gradients(pool, x);
      INFO(r.summary());
      CHECK(r.ok());
    }
  }
  SECTION("adaptive avg to 1x1 and to 2x3 (uneven bins)") {
    for (Size2 out : {Size2(1), Size2(2, 3)}) {
      nn::AdaptiveAvgPool2d<double> pool(out);
      auto x = Tensor<double>::normal({2, 3, 7, 5}, 0, 1, gen);
      const auto r = testing::check_gradients(pool, x);
      INFO(r.summary());
      CHECK(r.ok());
    }
  }
}

TEST_CASE("Global average pooling averages each plane", "[pooling]") {
  auto x = Tensor<float>::from_vector({1, 2, 2, 2}, {1, 2, 3, 4, -1, -1, -1, 5});
  nn::AdaptiveAvgPool2d<float> gap;
  auto y = gap.forward(x);
  REQUIRE(y.shape() == Shape{1, 2, 1, 1});
  CHECK(y[0] == 2.5f);
  CHECK(y[1] == 0.5f);
}

TEST_CASE("MaxPool2d matches PyTorch (golden)", "[pooling][golden]") {
  for (const auto& path : testing::golden_cases("maxpool2d")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      nn::MaxPool2d<float> pool({.kernel_size = testing::meta_pair(f, "kernel_size"),
                                 .stride = testing::meta_pair(f, "stride"),
                                 .padding = testing::meta_pair(f, "padding"),
                                 .dilation = testing::meta_pair(f, "dilation")});
      CHECK_THAT(pool.forward(f.tensor<float>("input")), IsClose(f.tensor<float>("output"), 1e-6));
      CHECK_THAT(pool.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 1e-6));
    }
  }
}

TEST_CASE("AvgPool2d matches PyTorch (golden)", "[pooling][golden]") {
  for (const auto& path : testing::golden_cases("avgpool2d")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      nn::AvgPool2d<float> pool({.kernel_size = testing::meta_pair(f, "kernel_size"),
                                 .stride = testing::meta_pair(f, "stride"),
                                 .padding = testing::meta_pair(f, "padding"),
                                 .count_include_pad = testing::meta_bool(f, "count_include_pad")});
      CHECK_THAT(pool.forward(f.tensor<float>("input")), IsClose(f.tensor<float>("output"), 1e-4));
      CHECK_THAT(pool.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 1e-4));
    }
  }
}

TEST_CASE("AdaptiveAvgPool2d matches PyTorch (golden)", "[pooling][golden]") {
  for (const auto& path : testing::golden_cases("adaptive_avgpool2d")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      nn::AdaptiveAvgPool2d<float> pool(testing::meta_pair(f, "output_size"));
      CHECK_THAT(pool.forward(f.tensor<float>("input")), IsClose(f.tensor<float>("output"), 1e-4));
      CHECK_THAT(pool.backward(f.tensor<float>("grad_output")), IsClose(f.tensor<float>("grad_input"), 1e-4));
    }
  }
}

TEST_CASE("Pooling layers reject invalid options and inputs", "[pooling][errors]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(nn::MaxPool2d<float>({.kernel_size = 0}), Contains("MaxPool2d: kernel_size must be positive"));
  CHECK_THROWS_WITH(nn::MaxPool2d<float>({.kernel_size = 3, .stride = 0}),
                    Contains("MaxPool2d: stride must be positive"));
  CHECK_THROWS_WITH(nn::MaxPool2d<float>({.kernel_size = 3, .padding = 2}), Contains("at most half the kernel_size"));
  CHECK_THROWS_WITH(nn::AvgPool2d<float>({.kernel_size = -2}), Contains("AvgPool2d: kernel_size must be positive"));
  CHECK_THROWS_WITH(nn::AdaptiveAvgPool2d<float>(Size2(0, 1)), Contains("output_size must be positive"));
  nn::MaxPool2d<float> pool({.kernel_size = 3, .stride = 2});
  CHECK_THROWS_WITH(pool.forward(Tensor<float>::zeros({1, 1, 2, 5})), Contains("smaller than the kernel"));
  CHECK_THROWS_AS(pool.forward(Tensor<float>::zeros({1, 1, 2, 5})), ShapeError);
  CHECK_THROWS_WITH(pool.forward(Tensor<float>::zeros({1, 5, 5})), Contains("expected input of shape (N, C, H, W)"));
  CHECK_THROWS_WITH(pool.backward(Tensor<float>::zeros({1, 1, 2, 2})), Contains("no forward pass was recorded"));
}

TEST_CASE("MaxPool2d propagates a NaN anywhere in its window, as PyTorch does", "[pooling]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  nn::MaxPool2d<float> pool({.kernel_size = 2});
  // The NaN comes first in one window, last in another, and larger values
  // follow it: the result is NaN either way (torch.max_pool2d gives the same).
  const auto y = pool.forward(Tensor<float>::from_vector({1, 1, 2, 4}, {nan, 1, 3, 4,  //
                                                                        5, 6, 7, nan}))
                     .to_vector();
  REQUIRE(std::isnan(y[0]));
  REQUIRE(std::isnan(y[1]));
}
