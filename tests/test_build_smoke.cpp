// Checks that a test program builds against the rescnn target (include path,
// C++20, Eigen/OpenMP/zlib usage requirements) and that a Tensor works.
#include <catch2/catch.hpp>

#include <rescnn/core/tensor.hpp>

TEST_CASE("build smoke: a Tensor can be created", "[build]") {
  CHECK(rescnn::Tensor<float>::zeros({2, 3}).numel() == 6);
}
