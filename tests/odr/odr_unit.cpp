// tests/odr/odr_unit.cpp — one translation unit of the ODR test, compiled
// three times with different -march flags (tests/CMakeLists.txt), each copy
// exporting its entry point under its own name (RESCNN_ODR_UNIT).
//
// It runs convolutions that take every float path (Winograd, implicit GEMM
// strided and 1x1, the Linear layer's GEMM) forward and backward, and returns
// every value it computed.
#include <vector>

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "rescnn/ops/linear.hpp"

namespace rescnn::odr {

// Runs at `level` (capped by what this unit compiled) and reports the level
// it ran. Each unit sets the level itself: with hidden visibility it has its
// own copy of the library, the level setting included.
std::vector<float> RESCNN_ODR_UNIT(cpu::Isa level, cpu::Isa* level_used) {
  const cpu::Isa saved = cpu::set_max_isa(level);
  *level_used = cpu::float_kernel_level();
  Generator gen(11);
  std::vector<float> out;
  const auto append = [&](const Tensor<float>& t) {
    const auto v = t.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  };
  struct Case {
    Shape input, weight;
    ops::Conv2dParams params;
  };
  for (const Case& c : {Case{{2, 16, 12, 12}, {16, 16, 3, 3}, {1, 1, 1, 1}},   // Winograd, row-wise on avx512
                        Case{{3, 16, 4, 4}, {16, 16, 3, 3}, {1, 1, 1, 1}},     // Winograd, gathered tiles
                        Case{{2, 8, 13, 11}, {12, 8, 3, 3}, {2, 1, 1, 1}},     // strided implicit GEMM
                        Case{{2, 16, 9, 9}, {32, 16, 1, 1}, {2, 0, 1, 1}}}) {  // 1x1 projection
    const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
    const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
    const auto b = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
    const auto y = ops::conv2d_forward(x, w, &b, c.params);
    const auto dy = Tensor<float>::normal(y.shape(), 0, 1, gen);
    auto dw = Tensor<float>::zeros(c.weight), db = Tensor<float>::zeros({c.weight[0]});
    append(y);
    append(ops::conv2d_backward(x, w, dy, c.params, dw, &db));
    append(dw);
    append(db);
  }
  const auto x = Tensor<float>::normal({5, 64}, 0, 1, gen);
  const auto w = Tensor<float>::normal({10, 64}, 0, 1, gen);
  const auto b = Tensor<float>::normal({10}, 0, 1, gen);
  append(ops::linear_forward(x, w, &b));
  cpu::set_max_isa(saved);
  return out;
}

}  // namespace rescnn::odr
