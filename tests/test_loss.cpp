// Softmax cross-entropy and accuracy: golden values, stability, gradients,
// bad labels.
#include <catch2/catch.hpp>
#include <cmath>

#include "rescnn/nn/loss.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"

using namespace rescnn;
using rescnn::testing::IsClose;

TEST_CASE("Cross-entropy matches PyTorch (golden)", "[loss][golden]") {
  for (const auto& path : testing::golden_cases("cross_entropy")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      // The smoothing cases record torch's label_smoothing.
      const auto smoothing = f.metadata().find("label_smoothing");
      const double e = smoothing == f.metadata().end() ? 0.0 : std::stod(smoothing->second);
      nn::CrossEntropyLoss<float> ce({.label_smoothing = e});
      const float loss = ce(f.tensor<float>("logits"), f.tensor<std::int64_t>("labels"));
      const float expected = f.tensor<float>("loss").item();
      CHECK(std::isfinite(loss));
      CHECK(loss == Approx(expected).epsilon(1e-4));
      CHECK_THAT(ce.backward(), IsClose(f.tensor<float>("grad_logits"), 1e-4));
    }
  }
}

TEST_CASE("Cross-entropy with label smoothing is among the goldens", "[loss][golden]") {
  int smoothed = 0;
  for (const auto& path : testing::golden_cases("cross_entropy"))
    smoothed += io::SafeTensors::load(path).metadata().count("label_smoothing") ? 1 : 0;
  REQUIRE(smoothed == 3);
}

TEST_CASE("Cross-entropy gradient matches finite differences", "[loss][gradcheck]") {
  const double smoothing = GENERATE(0.0, 0.25);
  Generator gen(5);
  auto logits = Tensor<double>::normal({4, 6}, 0, 3, gen);
  auto labels = Tensor<std::int64_t>::from_vector({4}, {0, 5, 2, 2});
  nn::CrossEntropyLoss<double> ce({.label_smoothing = smoothing});
  ce(logits, labels);
  const auto analytic = ce.backward(2.0);  // upstream gradient 2 scales it
  const double h = 1e-6;
  for (index_t i = 0; i < logits.numel(); ++i) {
    const double saved = logits[i];
    logits[i] = saved + h;
    const double plus = ce(logits, labels);
    logits[i] = saved - h;
    const double minus = ce(logits, labels);
    logits[i] = saved;
    CHECK(analytic[i] == Approx(2.0 * (plus - minus) / (2 * h)).margin(1e-8));
  }
}

TEST_CASE("Cross-entropy is finite for huge logits", "[loss]") {
  auto logits = Tensor<float>::from_vector({2, 3}, {1e30f, -1e30f, 0.f, 5000.f, 5001.f, -5000.f});
  auto labels = Tensor<std::int64_t>::from_vector({2}, {0, 0});
  nn::CrossEntropyLoss<float> ce;
  const float loss = ce(logits, labels);
  // Row 0: the label holds the largest logit, loss 0; row 1: log(1 + e) ~ 1.3133.
  CHECK(loss == Approx((0.0 + std::log1p(std::exp(1.0))) / 2).epsilon(1e-5));
}

TEST_CASE("Accuracy counts arg-max hits", "[loss]") {
  auto logits = Tensor<float>::from_vector({3, 2}, {0.1f, 0.9f, 2.f, 1.f, 0.f, 3.f});
  CHECK(nn::accuracy(logits, Tensor<std::int64_t>::from_vector({3}, {1, 0, 0})) == Approx(2.0 / 3.0));
}

TEST_CASE("Cross-entropy rejects bad labels and shapes", "[loss][errors]") {
  using Catch::Matchers::Contains;
  nn::CrossEntropyLoss<float> ce;
  auto logits = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_WITH(ce(logits, Tensor<std::int64_t>::from_vector({2}, {0, 3})),
                    Contains("label 3 at position 1 is out of range for 3 classes"));
  CHECK_THROWS_AS(ce(logits, Tensor<std::int64_t>::from_vector({2}, {-1, 0})), ValueError);
  CHECK_THROWS_WITH(ce(logits, Tensor<std::int64_t>::from_vector({3}, {0, 0, 0})),
                    Contains("do not match logits (2, 3)"));
  CHECK_THROWS_WITH(ce(Tensor<float>::zeros({2, 3, 1}), Tensor<std::int64_t>::from_vector({2}, {0, 0})),
                    Contains("expected logits of shape (N, classes)"));
  CHECK_THROWS_WITH(nn::CrossEntropyLoss<float>().backward(), Contains("no forward pass was recorded"));
  CHECK_THROWS_WITH(nn::CrossEntropyLoss<float>({.label_smoothing = 1.5}),
                    Contains("label_smoothing 1.5 is outside [0, 1]"));
  CHECK_THROWS_AS(nn::CrossEntropyLoss<float>({.label_smoothing = -0.1}), ValueError);
  CHECK_THROWS_AS(nn::CrossEntropyLoss<float>({.label_smoothing = NAN}), ValueError);
}
