// Conv2d: finite-difference gradients, PyTorch golden values, equivalences
// (naive reference, groups as separate convolutions) and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/nn/conv2d.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_conv.hpp"

using namespace rescnn;
using rescnn::testing::IsClose;

namespace {

struct ConvCase {
  const char* name;
  nn::Conv2dOptions options;
  Shape input;
};

// The spread the issue asks for: stride 2, padding, dilation, groups 1/2/C,
// bias on/off, odd sizes, non-square kernels and strides.
const ConvCase kCases[] = {
    {"3x3 pad 1", {.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1}, {2, 3, 5, 5}},
    {"3x3 stride 2 pad 1 on 7x5",
     {.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = 2, .padding = 1},
     {2, 2, 7, 5}},
    {"1x1 no bias", {.in_channels = 4, .out_channels = 3, .kernel_size = 1, .bias = false}, {2, 4, 3, 3}},
    {"1x1 stride 2", {.in_channels = 3, .out_channels = 2, .kernel_size = 1, .stride = 2, .bias = false}, {2, 3, 5, 5}},
    {"dilation 2", {.in_channels = 2, .out_channels = 2, .kernel_size = 3, .padding = 2, .dilation = 2}, {1, 2, 6, 5}},
    {"groups 2", {.in_channels = 4, .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 2}, {2, 4, 4, 5}},
    {"depthwise groups=C",
     {.in_channels = 3, .out_channels = 3, .kernel_size = 3, .stride = 2, .padding = 1, .groups = 3, .bias = false},
     {2, 3, 7, 5}},
    {"7x7 stride 2 pad 3 stem",
     {.in_channels = 1, .out_channels = 2, .kernel_size = 7, .stride = 2, .padding = 3, .bias = false},
     {1, 1, 9, 8}},
    {"kernel (3,1) pad (1,0) stride (2,1)",
     {.in_channels = 2, .out_channels = 3, .kernel_size = {3, 1}, .stride = {2, 1}, .padding = {1, 0}},
     {2, 2, 5, 4}},
    {"kernel larger than stride, no padding",
     {.in_channels = 2, .out_channels = 2, .kernel_size = {2, 3}, .stride = 3},
     {2, 2, 7, 8}},
};

}  // namespace

TEST_CASE("Conv2d gradients match finite differences", "[conv2d][gradcheck]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      Generator gen(7);
      nn::Conv2d<double> conv(c.options, gen);
      auto x = Tensor<double>::normal(c.input, 0, 1, gen);
      const auto report = testing::check_gradients(conv, x);
      INFO(report.summary());
      CHECK(report.ok());
    }
  }
}

TEST_CASE("Conv2d forward equals the naive reference convolution", "[conv2d]") {
  for (const auto& c : kCases) {
    SECTION(c.name) {
      Generator gen(11);
      nn::Conv2d<double> conv(c.options, gen);
      auto x = Tensor<double>::normal(c.input, 0, 1, gen);
      const ops::Conv2dParams p{c.options.stride, c.options.padding, c.options.dilation, c.options.groups};
      const auto expected =
          testing::reference_conv2d(x, conv.weight.value, c.options.bias ? &conv.bias.value : nullptr, p);
      CHECK_THAT(conv.forward(x), IsClose(expected, 1e-12));
    }
  }
}

TEST_CASE("Conv2d forward is correct when the batch spans several column chunks", "[conv2d]") {
  // 16 MiB of columns per chunk: 64 channels * 9 * 32*32 * 8 bytes = 4.7 MiB a
  // sample, so a batch of 7 runs in three chunks, the last one partial.
  Generator gen(3);
  nn::Conv2d<double> conv({.in_channels = 64, .out_channels = 8, .kernel_size = 3, .padding = 1}, gen);
  auto x = Tensor<double>::normal({7, 64, 32, 32}, 0, 1, gen);
  const auto expected = testing::reference_conv2d(x, conv.weight.value, &conv.bias.value, {1, 1, 1, 1});
  CHECK_THAT(conv.forward(x), IsClose(expected, 1e-12));
}

TEST_CASE("A conv with g groups equals g separate convolutions", "[conv2d][groups]") {
  for (index_t groups : {1, 2, 4}) {
    SECTION("groups=" + std::to_string(groups)) {
      Generator gen(5);
      const index_t in = 8, out = 12;
      nn::Conv2d<double> grouped(
          {.in_channels = in, .out_channels = out, .kernel_size = 3, .stride = 2, .padding = 1, .groups = groups}, gen);
      auto x = Tensor<double>::normal({2, in, 7, 6}, 0, 1, gen);
      auto y = grouped.forward(x);
      auto dy = Tensor<double>::normal(y.shape(), 0, 1, gen);
      grouped.zero_grad();
      auto dx = grouped.backward(dy);

      const index_t ci = in / groups, co = out / groups;
      for (index_t g = 0; g < groups; ++g) {
        nn::Conv2d<double> single({.in_channels = ci, .out_channels = co, .kernel_size = 3, .stride = 2, .padding = 1},
                                  gen);
        // Weights and bias of group g, input channels of group g.
        for (index_t o = 0; o < co; ++o) {
          single.bias.value(o) = grouped.bias.value(g * co + o);
          for (index_t c = 0; c < ci; ++c)
            for (index_t i = 0; i < 3; ++i)
              for (index_t j = 0; j < 3; ++j)
                single.weight.value(o, c, i, j) = grouped.weight.value(g * co + o, c, i, j);
        }
        auto xg = Tensor<double>::empty({2, ci, 7, 6});
        for (index_t n = 0; n < 2; ++n)
          for (index_t c = 0; c < ci; ++c)
            for (index_t h = 0; h < 7; ++h)
              for (index_t w = 0; w < 6; ++w) xg(n, c, h, w) = x(n, g * ci + c, h, w);
        auto yg = single.forward(xg);
        auto dyg = Tensor<double>::empty(yg.shape());
        for (index_t n = 0; n < 2; ++n)
          for (index_t o = 0; o < co; ++o)
            for (index_t p = 0; p < yg.dim(2) * yg.dim(3); ++p) {
              const index_t h = p / yg.dim(3), w = p % yg.dim(3);
              CHECK(yg(n, o, h, w) == Approx(y(n, g * co + o, h, w)).epsilon(1e-12));
              dyg(n, o, h, w) = dy(n, g * co + o, h, w);
            }
        single.zero_grad();
        auto dxg = single.backward(dyg);
        for (index_t n = 0; n < 2; ++n)
          for (index_t c = 0; c < ci; ++c)
            for (index_t h = 0; h < 7; ++h)
              for (index_t w = 0; w < 6; ++w) CHECK(dxg(n, c, h, w) == Approx(dx(n, g * ci + c, h, w)).epsilon(1e-12));
        for (index_t o = 0; o < co; ++o) {
          CHECK(single.bias.grad(o) == Approx(grouped.bias.grad(g * co + o)).epsilon(1e-12));
          for (index_t c = 0; c < ci; ++c)
            for (index_t i = 0; i < 3; ++i)
              for (index_t j = 0; j < 3; ++j) {
                INFO("weight gradient (" << g * co + o << ", " << c << ", " << i << ", " << j << ")");
                CHECK(single.weight.grad(o, c, i, j) ==
                      Approx(grouped.weight.grad(g * co + o, c, i, j)).epsilon(1e-12));
              }
        }
      }
    }
  }
}

TEST_CASE("Conv2d matches PyTorch (golden fixtures)", "[conv2d][golden]") {
  for (const auto& path : testing::golden_cases("conv2d")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      const bool bias = testing::meta_bool(f, "bias");
      nn::Conv2d<float> conv({.in_channels = testing::meta_int(f, "in_channels"),
                              .out_channels = testing::meta_int(f, "out_channels"),
                              .kernel_size = testing::meta_pair(f, "kernel_size"),
                              .stride = testing::meta_pair(f, "stride"),
                              .padding = testing::meta_pair(f, "padding"),
                              .dilation = testing::meta_pair(f, "dilation"),
                              .groups = testing::meta_int(f, "groups"),
                              .bias = bias});
      conv.weight.value.copy_(f.tensor<float>("weight"));
      if (bias) conv.bias.value.copy_(f.tensor<float>("bias"));
      const auto y = conv.forward(f.tensor<float>("input"));
      CHECK_THAT(y, IsClose(f.tensor<float>("output"), 1e-4));
      conv.zero_grad();
      const auto dx = conv.backward(f.tensor<float>("grad_output"));
      CHECK_THAT(dx, IsClose(f.tensor<float>("grad_input"), 1e-4));
      CHECK_THAT(conv.weight.grad, IsClose(f.tensor<float>("grad_weight"), 1e-4));
      if (bias) CHECK_THAT(conv.bias.grad, IsClose(f.tensor<float>("grad_bias"), 1e-4));
    }
  }
}

TEST_CASE("Conv2d accumulates parameter gradients until zero_grad", "[conv2d]") {
  Generator gen(2);
  nn::Conv2d<double> conv({.in_channels = 2, .out_channels = 2, .kernel_size = 3, .padding = 1}, gen);
  auto x = Tensor<double>::normal({1, 2, 4, 4}, 0, 1, gen);
  auto dy = Tensor<double>::normal({1, 2, 4, 4}, 0, 1, gen);
  conv.zero_grad();
  conv.forward(x);
  conv.backward(dy);
  const auto once = conv.weight.grad.to_vector();
  conv.forward(x);
  conv.backward(dy);
  for (index_t i = 0; i < conv.weight.grad.numel(); ++i)
    CHECK(conv.weight.grad[i] == Approx(2 * once[static_cast<std::size_t>(i)]));
  conv.zero_grad();
  for (index_t i = 0; i < conv.weight.grad.numel(); ++i) CHECK(conv.weight.grad[i] == 0.0);
}

TEST_CASE("Conv2d rejects invalid options and inputs with clear messages", "[conv2d][errors]") {
  using Catch::Matchers::Contains;
  using O = nn::Conv2dOptions;
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 6, .out_channels = 4, .kernel_size = 3, .groups = 4}),
                    Contains("in_channels=6 is not divisible by groups=4"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 4, .out_channels = 6, .kernel_size = 3, .groups = 4}),
                    Contains("out_channels=6 is not divisible by groups=4"));
  CHECK_THROWS_AS(nn::Conv2d<float>(O{.in_channels = 0, .out_channels = 4}), ValueError);
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = -1}),
                    Contains("out_channels must be positive"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = 4, .kernel_size = 0}),
                    Contains("kernel_size must be positive"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .stride = 0}),
                    Contains("stride must be positive"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = -1}),
                    Contains("padding must be non-negative"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .dilation = 0}),
                    Contains("dilation must be positive"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(O{.in_channels = 3, .out_channels = 4, .groups = 0}),
                    Contains("groups must be positive"));

  nn::Conv2d<float> conv(O{.in_channels = 3, .out_channels = 4, .kernel_size = 5});
  CHECK_THROWS_WITH(conv.forward(Tensor<float>::zeros({2, 2, 8, 8})),
                    Contains("input (2, 2, 8, 8) has 2 channels, expected in_channels=3"));
  CHECK_THROWS_AS(conv.forward(Tensor<float>::zeros({2, 2, 8, 8})), ShapeError);
  CHECK_THROWS_WITH(conv.forward(Tensor<float>::zeros({2, 3, 4, 8})), Contains("smaller than the kernel"));
  CHECK_THROWS_WITH(conv.forward(Tensor<float>::zeros({3, 8, 8})), Contains("expected input of shape (N, C, H, W)"));
  CHECK_THROWS_WITH(conv.backward(Tensor<float>::zeros({2, 4, 4, 4})), Contains("no forward pass was recorded"));
  conv.forward(Tensor<float>::zeros({2, 3, 8, 8}));
  CHECK_THROWS_WITH(conv.backward(Tensor<float>::zeros({2, 4, 5, 4})),
                    Contains("does not match the output shape (2, 4, 4, 4)"));
}

TEST_CASE("The CPU level in use is the one RESCNN_MAX_CPU_ISA asks for", "[conv2d][isa]") {
  // ctest runs this file again as test_conv2d@generic and test_conv2d@avx2
  // (tests/CMakeLists.txt): those runs must really test those levels.
  const char* cap = std::getenv("RESCNN_MAX_CPU_ISA");
  const cpu::Isa wanted = std::min(cap ? cpu::parse_isa(cap) : cpu::Isa::avx512_bf16, cpu::cpu_supported_isa());
  INFO("RESCNN_MAX_CPU_ISA=" << (cap ? cap : "(unset)") << ", CPU supports "
                             << cpu::isa_name(cpu::cpu_supported_isa()));
  CHECK(cpu::isa() == wanted);
  CHECK(cpu::float_kernel_level() == std::min(wanted, cpu::Isa::avx512));
}
