// Tensor: factories, views, copies, element access, printing, errors.
#include <catch2/catch.hpp>
#include <cstdint>

#include "rescnn/core/tensor.hpp"

using namespace rescnn;
using Catch::Matchers::Contains;

TEST_CASE("Factories fill as asked", "[tensor]") {
  CHECK(Tensor<float>::zeros({2, 3}).to_vector() == std::vector<float>(6, 0.f));
  CHECK(Tensor<float>::ones({4}).to_vector() == std::vector<float>(4, 1.f));
  CHECK(Tensor<double>::full({1, 2, 1, 2}, 2.5).to_vector() == std::vector<double>(4, 2.5));
  auto t = Tensor<float>::from_vector({2, 2}, {1, 2, 3, 4});
  CHECK(t(1, 0) == 3.f);
  CHECK(t.shape() == Shape{2, 2});
  CHECK(Tensor<float>::zeros({}).numel() == 1);
}

TEST_CASE("Storage is 64-byte aligned", "[tensor]") {
  for (index_t n : {1, 3, 17, 1000}) {
    auto t = Tensor<float>::empty({n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  }
}

TEST_CASE("Random factories are reproducible from a seed and have the asked moments", "[tensor][rng]") {
  Generator a(42), b(42), c(43);
  auto x = Tensor<double>::normal({100000}, 1.0, 2.0, a);
  auto y = Tensor<double>::normal({100000}, 1.0, 2.0, b);
  auto z = Tensor<double>::normal({100000}, 1.0, 2.0, c);
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  double mean = 0, var = 0;
  for (index_t i = 0; i < x.numel(); ++i) mean += x[i];
  mean /= static_cast<double>(x.numel());
  for (index_t i = 0; i < x.numel(); ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(x.numel());
  CHECK(mean == Approx(1.0).margin(0.03));  // 5 sigma of the sample mean is 0.032
  CHECK(var == Approx(4.0).epsilon(0.03));
  auto u = Tensor<float>::uniform({10000}, -3, 5, a);
  for (index_t i = 0; i < u.numel(); ++i) {
    REQUIRE(u[i] >= -3.f);
    REQUIRE(u[i] < 5.f);
  }
}

TEST_CASE("Moves are cheap and leave the source undefined", "[tensor]") {
  auto a = Tensor<float>::ones({3, 3});
  const float* p = a.data();
  Tensor<float> b = std::move(a);
  CHECK(b.data() == p);
  CHECK_FALSE(a.defined());  // NOLINT(bugprone-use-after-move): documented state
}

TEST_CASE("Views share storage and clone copies", "[tensor]") {
  auto a = Tensor<float>::from_vector({2, 3}, {0, 1, 2, 3, 4, 5});
  auto v = a.reshape({3, -1});
  CHECK(v.shape() == Shape{3, 2});
  CHECK(v.shares_storage_with(a));
  v(0, 1) = 10;
  CHECK(a(0, 1) == 10.f);
  auto c = a.clone();
  c(0, 0) = -1;
  CHECK(a(0, 0) == 0.f);
  CHECK_FALSE(c.shares_storage_with(a));
  auto s = a.slice(1, 2);
  CHECK(s.shape() == Shape{1, 3});
  CHECK(s(0, 2) == 5.f);
  CHECK(s.shares_storage_with(a));
}

TEST_CASE("Checked element access and reshapes name what was wrong", "[tensor][errors]") {
  auto a = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_WITH(a.at(2, 0), Contains("index 2 out of range for axis 0 of shape (2, 3)"));
  CHECK_THROWS_WITH(a.at(0), Contains("1 indices given for a tensor of rank 2"));
  CHECK_THROWS_WITH(a.reshape({4, 2}), Contains("cannot view shape (2, 3) (6 elements) as (4, 2) (8 elements)"));
  CHECK_THROWS_AS(a.reshape({-1, -1}), ShapeError);
  CHECK_THROWS_WITH(a.reshape({4, -1}), Contains("cannot infer"));
  CHECK_THROWS_WITH(a.slice(1, 3), Contains("range [1, 3) is outside the first axis"));
  CHECK_THROWS_WITH(Tensor<float>::from_vector({2, 2}, {1, 2, 3}),
                    Contains("3 values given for shape (2, 2) which holds 4"));
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5}), ShapeError);
  CHECK_THROWS_WITH((Shape{2, -1}), Contains("negative extent -1"));
  CHECK_THROWS_WITH(a.item(), Contains("has 6 elements, not one"));
  Tensor<float> undefined;
  CHECK_THROWS_WITH(undefined.clone(), Contains("undefined"));
  auto b = Tensor<float>::zeros({3, 2});
  CHECK_THROWS_WITH(a.copy_(b), Contains("source shape (3, 2) differs from destination shape (2, 3)"));
}

TEST_CASE("Printing shows shape, dtype, device and values", "[tensor]") {
  auto a = Tensor<float>::from_vector({2, 2}, {1, 2, 3, 4.5});
  CHECK(a.to_string() == "Tensor(shape=(2, 2), dtype=float32, device=cpu)\n[[1, 2],\n [3, 4.5]]");
  auto big = Tensor<std::int64_t>::zeros({10});
  CHECK(big.to_string() == "Tensor(shape=(10), dtype=int64, device=cpu)\n[0, 0, 0, ..., 0, 0, 0]");
}
