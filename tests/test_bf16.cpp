// bf16 autocast on the CPU (core/precision.hpp, the avx512_bf16 level's
// Bf16Kernels in backend/cpu/kernels/level_body.inc).
//
// The kernels: the inputs are rounded to bf16 first and the reference is
// computed from the rounded values in double, so the intended rounding
// drops out and what remains is float accumulation error (1e-5 relative,
// as test_gemm's float kernels): a wrong tap, a dropped depth block or a
// misplaced pair is off by far more. Every GEMM edge and every convolution
// path of test_gemm (support/conv_cases.hpp) runs, all three passes.
//
// The models: resnet18 and resnet50, bf16 against fp32, forward and every
// gradient, with a bound derived from bf16's 8-bit significand (below).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "rescnn/backend/cpu/bf16_kernels.hpp"
#include "rescnn/backend/cpu/conv2d.hpp"
#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/backend/precision_support.hpp"
#include "rescnn/core/half.hpp"
#include "rescnn/core/precision.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "support/autocast_errors.hpp"
#include "support/compare.hpp"
#include "support/conv_cases.hpp"
#include "support/fill.hpp"
#include "support/half_rounding.hpp"
#include "support/skip.hpp"
#include "support/threads.hpp"

using namespace rescnn;
using rescnn::testing::IsCloseToReference;

namespace {

// The bf16 engines this CPU can run (bf16_kernels.hpp): each test runs on
// every one, also where autocast would not choose it by default
// (avx512_bf16 on an Intel CPU). None: the test skips (and the fallback
// cases below check what runs instead).
std::vector<cpu::Bf16Engine> bf16_engines() {
  std::vector<cpu::Bf16Engine> out;
  if (cpu::isa() < cpu::Isa::avx512_bf16) return out;
  out.push_back(cpu::Bf16Engine::avx512_bf16);
  if (cpu::amx_usable()) out.push_back(cpu::Bf16Engine::amx);
  return out;
}

class ScopedBf16Engine {
 public:
  explicit ScopedBf16Engine(cpu::Bf16Engine e) : before_(cpu::set_bf16_engine(e)) { REQUIRE(cpu::bf16_engine() == e); }
  ~ScopedBf16Engine() { cpu::set_bf16_engine(before_); }
  ScopedBf16Engine(const ScopedBf16Engine&) = delete;
  ScopedBf16Engine& operator=(const ScopedBf16Engine&) = delete;

 private:
  cpu::Bf16Engine before_;
};

#define FOR_EACH_BF16_ENGINE(engine)                                                                               \
  if (bf16_engines().empty())                                                                                      \
    RESCNN_SKIP("this CPU (or RESCNN_MAX_CPU_ISA) has no avx512_bf16 level: level " << cpu::isa_name(cpu::isa())); \
  for (const cpu::Bf16Engine engine : bf16_engines())

std::vector<float> rounded(std::vector<float> v) {
  for (auto& x : v) x = round_to_bf16(x);
  return v;
}

Tensor<double> rounded_double(const Tensor<float>& t) {
  const auto v = rounded(t.to_vector());
  return Tensor<double>::from_vector(t.shape(), std::vector<double>(v.begin(), v.end()));
}

Tensor<double> to_double(const Tensor<float>& t) {
  const auto v = t.to_vector();
  return Tensor<double>::from_vector(t.shape(), std::vector<double>(v.begin(), v.end()));
}

template <class T>
constexpr Tensor<T>* kNone = nullptr;  // no bias, no bias gradient

}  // namespace

TEST_CASE("bf16 conversions round to nearest even and keep NaN and infinities", "[bf16]") {
  CHECK(float_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(float_to_bf16_bits(float_from_bits(0x3F808000u)) == 0x3F80);  // tie, even stays
  CHECK(float_to_bf16_bits(float_from_bits(0x3F818000u)) == 0x3F82);  // tie, odd rounds up
  CHECK(float_to_bf16_bits(float_from_bits(0x3F808001u)) == 0x3F81);  // above the tie
  CHECK(float_to_bf16_bits(-INFINITY) == 0xFF80);
  CHECK(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  CHECK(std::isnan(bf16_bits_to_float(float_to_bf16_bits(float_from_bits(0x7F800001u)))));  // not rounded to inf
  CHECK(float_to_half_bits(1.0f) == 0x3C00);
  CHECK(float_to_half_bits(65504.0f) == 0x7BFF);
  CHECK(float_to_half_bits(65520.0f) == 0x7C00);  // rounds beyond the largest half: inf
  CHECK(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half_bits(std::ldexp(1.0f, -25)) == 0x0000);  // tie to even
  CHECK(float_to_half_bits(std::ldexp(3.0f, -25)) == 0x0002);  // tie to even, upwards
  CHECK(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(float_to_half_bits(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_bits_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    INFO("half " << h);
    REQUIRE(float_to_half_bits(f) == h);  // every half value round-trips
  }
}

TEST_CASE("Autocast sets the precision for its scope and parses names", "[bf16]") {
  CHECK(autocast_precision() == Precision::fp32);
  {
    const Autocast outer(Precision::bf16);
    CHECK(autocast_precision() == Precision::bf16);
    {
      const Autocast inner(Precision::fp32);
      CHECK(autocast_precision() == Precision::fp32);
    }
    CHECK(autocast_precision() == Precision::bf16);
  }
  CHECK(autocast_precision() == Precision::fp32);
  CHECK(parse_precision("BF16") == Precision::bf16);
  CHECK_THROWS_WITH(parse_precision("bf8", "--precision"),
                    Catch::Contains("--precision") && Catch::Contains("'bf8'") && Catch::Contains("fp32, bf16, fp16"));
}

TEST_CASE("bf16 GEMM equals the double product of the rounded operands", "[bf16][gemm]") {
  FOR_EACH_BF16_ENGINE(engine) DYNAMIC_SECTION(cpu::bf16_engine_name(engine)) {
    const ScopedBf16Engine use(engine);
    struct Size {
      index_t m, n, k;
    };
    // The tiles (8 x 48), odd depths (a pair with one value), the depth block
    // (256), the row and column blocks (128, 1536).
    const std::vector<Size> sizes{{1, 1, 1},     {8, 48, 16},     {7, 47, 5},   {9, 49, 257},  {17, 97, 300},
                                  {129, 50, 64}, {130, 1600, 41}, {3, 2000, 1}, {300, 5, 513}, {97, 17, 258}};
    Generator gen(11);
    for (const auto& s : sizes)
      for (int trans = 0; trans < 4; ++trans)
        for (bool accumulate : {false, true}) {
          const bool ta = trans & 1, tb = trans & 2;
          INFO("M=" << s.m << " N=" << s.n << " K=" << s.k << " trans_a=" << ta << " trans_b=" << tb
                    << " accumulate=" << accumulate);
          const index_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 5, ldc = s.n + 7;
          std::vector<float> a(static_cast<std::size_t>((ta ? s.k : s.m) * lda)),
              b(static_cast<std::size_t>((tb ? s.n : s.k) * ldb)), c(static_cast<std::size_t>(s.m * ldc));
          for (auto* v : {&a, &b, &c})
            for (auto& x : *v) x = static_cast<float>(gen.normal(0, 1));
          for (index_t i = 0; i < s.m; ++i)
            for (index_t j = s.n; j < ldc; ++j) c[static_cast<std::size_t>(i * ldc + j)] = 12345.0f;
          const auto ar = rounded(a), br = rounded(b);
          std::vector<double> expected(static_cast<std::size_t>(s.m * s.n));
          for (index_t i = 0; i < s.m; ++i)
            for (index_t j = 0; j < s.n; ++j) {
              double sum = accumulate ? c[static_cast<std::size_t>(i * ldc + j)] : 0.0;
              for (index_t k = 0; k < s.k; ++k)
                sum += static_cast<double>(ar[static_cast<std::size_t>(ta ? k * lda + i : i * lda + k)]) *
                       br[static_cast<std::size_t>(tb ? j * ldb + k : k * ldb + j)];
              expected[static_cast<std::size_t>(i * s.n + j)] = sum;
            }
          {
            const Autocast bf16(Precision::bf16);
            cpu::layer_gemm(s.m, s.n, s.k, a.data(), lda, ta, b.data(), ldb, tb, c.data(), ldc, accumulate);
          }
          std::vector<float> actual(static_cast<std::size_t>(s.m * s.n));
          bool sentinel_intact = true;
          for (index_t i = 0; i < s.m; ++i) {
            for (index_t j = 0; j < s.n; ++j)
              actual[static_cast<std::size_t>(i * s.n + j)] = c[static_cast<std::size_t>(i * ldc + j)];
            for (index_t j = s.n; j < ldc; ++j) sentinel_intact &= c[static_cast<std::size_t>(i * ldc + j)] == 12345.0f;
          }
          CHECK(sentinel_intact);
          const auto cl = testing::closeness(actual, expected);
          INFO("worst relative error " << cl.max_rel_error << " at " << cl.worst);
          CHECK(cl.max_rel_error <= 1e-5);
        }
  }
}

TEST_CASE("bf16 convolutions equal the double convolution of the rounded operands, all three passes",
          "[bf16][conv2d]") {
  FOR_EACH_BF16_ENGINE(engine) DYNAMIC_SECTION(cpu::bf16_engine_name(engine)) {
    const ScopedBf16Engine use(engine);
    for (const auto& c : testing::kernel_conv_cases()) {
      DYNAMIC_SECTION(c.name) {
        const auto g = ops::conv2d_geometry(c.input, c.weight, c.params);
        Generator gen(7);
        const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
        const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
        const auto b = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
        const auto dy = Tensor<float>::normal(g.output_shape(), 0, 1, gen);
        const auto xr = rounded_double(x), wr = rounded_double(w), dyr = rounded_double(dy), bd = to_double(b);
        auto dw = Tensor<float>::normal(c.weight, 0, 1, gen);  // gradients accumulate
        auto db = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
        auto dwd = to_double(dw), dbd = to_double(db);
        Tensor<float> y, dx;
        {
          const Autocast bf16(Precision::bf16);
          CHECK_FALSE(cpu::uses_winograd<float>(g));
          y = ops::conv2d_forward(x, w, &b, c.params);
          dx = ops::conv2d_backward(x, w, dy, c.params, dw, &db);
        }
        CHECK_THAT(y, IsCloseToReference<float>(ops::conv2d_forward(xr, wr, &bd, c.params), 1e-5));
        const auto dxd = ops::conv2d_backward(xr, wr, dyr, c.params, dwd, kNone<double>);
        CHECK_THAT(dx, IsCloseToReference<float>(dxd, 1e-5));
        CHECK_THAT(dw, IsCloseToReference<float>(dwd, 1e-5));
        // The bias gradient is a float sum of dy, not a product: unrounded.
        auto unused = to_double(dw);
        ops::conv2d_backward(to_double(x), to_double(w), to_double(dy), c.params, unused, &dbd);
        CHECK_THAT(db, IsCloseToReference<float>(dbd, 1e-5));
      }
    }
  }
}

// tests/cuda/test_cuda_autocast checks cuDNN's 16-bit convolutions, whose
// results are rounded to bf16 once, with testing::rounded_once. The CPU's
// bf16 convolutions rounded to bf16 are such results (float accumulation,
// one rounding), so the criterion is checked here, on every CI run: it must
// accept them and reject the same convolution with one tap of the kernel
// dropped.
TEST_CASE("The GPU's rounded-once criterion accepts bf16 convolutions and rejects a dropped tap", "[bf16][conv2d]") {
  FOR_EACH_BF16_ENGINE(engine) DYNAMIC_SECTION(cpu::bf16_engine_name(engine)) {
    const ScopedBf16Engine use(engine);
    for (const auto& c : testing::kernel_conv_cases()) {
      DYNAMIC_SECTION(c.name) {
        Generator gen(7);
        const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
        auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
        const auto exact = ops::conv2d_forward(rounded_double(x), rounded_double(w), kNone<double>, c.params);
        const auto rounded_result = [&](const Tensor<float>& weight) {
          const Autocast bf16(Precision::bf16);
          return testing::rounded(Precision::bf16, ops::conv2d_forward(x, weight, kNone<float>, c.params).to_vector());
        };
        const std::vector<float> no_offset(static_cast<std::size_t>(exact.numel()), 0.f);
        const auto good = testing::rounded_once(Precision::bf16, rounded_result(w), exact.to_vector(), no_offset);
        INFO(good.message);
        CHECK(good.ok);
        CHECK(good.mismatches <=
              static_cast<std::size_t>(exact.numel() / 100));  // a correct kernel: well under the 2% allowed

        // The centre tap of every filter's last input channel dropped (the
        // centre: never all padding): the criterion must reject it.
        auto taps = w.to_vector();
        const index_t kh = w.dim(2), kw = w.dim(3), per_filter = w.numel() / w.dim(0);
        for (index_t o = 0; o < w.dim(0); ++o)
          taps[static_cast<std::size_t>((o + 1) * per_filter - kh * kw + (kh / 2) * kw + kw / 2)] = 0;
        const auto bad = testing::rounded_once(
            Precision::bf16, rounded_result(Tensor<float>::from_vector(w.shape(), taps)), exact.to_vector(), no_offset);
        INFO(bad.message);
        CHECK_FALSE(bad.ok);
      }
    }
  }
}

TEST_CASE("bf16 convolutions give the same bits on 1 and 2 threads", "[bf16][conv2d][threads]") {
  FOR_EACH_BF16_ENGINE(engine) DYNAMIC_SECTION(cpu::bf16_engine_name(engine)) {
    const ScopedBf16Engine use(engine);
    for (const auto& c : testing::kernel_conv_cases()) {
      DYNAMIC_SECTION(c.name) {
        const auto run = [&](int threads) {
          const testing::ScopedNumThreads scoped(threads);
          const Autocast bf16(Precision::bf16);
          Generator gen(3);
          const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
          const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
          const auto dy =
              Tensor<float>::normal(ops::conv2d_geometry(c.input, c.weight, c.params).output_shape(), 0, 1, gen);
          auto out = ops::conv2d_forward(x, w, kNone<float>, c.params).to_vector();
          auto dw = Tensor<float>::zeros(c.weight);
          const auto dx = ops::conv2d_backward(x, w, dy, c.params, dw, kNone<float>).to_vector();
          const auto dwv = dw.to_vector();
          out.insert(out.end(), dx.begin(), dx.end());
          out.insert(out.end(), dwv.begin(), dwv.end());
          return out;
        };
        const std::size_t differ = testing::count_differences(run(1), run(2));
        INFO(differ << " values differ between 1 and 2 threads");
        CHECK(differ == 0);
      }
    }
  }
}

TEST_CASE("With the bf16 engine off, bf16 autocast computes exactly fp32", "[bf16]") {
  const cpu::Bf16Engine before = cpu::set_bf16_engine(cpu::Bf16Engine::off);
  CHECK_FALSE(cpu::bf16_compute_available());
  CHECK_THAT(cpu::bf16_fallback_reason(), Catch::Contains("off"));
  Generator gen(5);
  const auto x = Tensor<float>::normal({2, 8, 6, 6}, 0, 1, gen);
  const auto w = Tensor<float>::normal({8, 8, 3, 3}, 0, 1, gen);
  const ops::Conv2dParams params{1, 1, 1, 1};
  const auto fp32 = ops::conv2d_forward(x, w, kNone<float>, params).to_vector();
  std::vector<float> bf16;
  {
    const Autocast autocast(Precision::bf16);
    bf16 = ops::conv2d_forward(x, w, kNone<float>, params).to_vector();
  }
  CHECK(testing::count_differences(bf16, fp32) == 0);
  cpu::set_bf16_engine(before);
  CHECK(cpu::parse_bf16_engine("AMX") == cpu::Bf16Engine::amx);
  CHECK_THROWS_WITH(cpu::parse_bf16_engine("amx2", "RESCNN_CPU_BF16"),
                    Catch::Contains("RESCNN_CPU_BF16") && Catch::Contains("auto, amx, avx512_bf16, off"));
}

TEST_CASE("Without the bf16 level, bf16 autocast computes exactly fp32; fp16 on the CPU is an error", "[bf16]") {
  const cpu::Isa saved = cpu::set_max_isa(cpu::Isa::avx512);
  CHECK_THAT(cpu::bf16_fallback_reason(), Catch::Contains("level is avx512"));
  const ops::Conv2dParams params{1, 1, 1, 1};
  Generator gen(5);
  const auto x = Tensor<float>::normal({2, 8, 6, 6}, 0, 1, gen);
  const auto w = Tensor<float>::normal({8, 8, 3, 3}, 0, 1, gen);
  const auto fp32 = ops::conv2d_forward(x, w, kNone<float>, params).to_vector();
  std::vector<float> bf16;
  {
    const Autocast autocast(Precision::bf16);
    CHECK_FALSE(cpu::bf16_compute_available());
    bf16 = ops::conv2d_forward(x, w, kNone<float>, params).to_vector();
  }
  CHECK(testing::count_differences(bf16, fp32) == 0);
  {
    const Autocast autocast(Precision::fp16);
    CHECK_THROWS_WITH(ops::conv2d_forward(x, w, kNone<float>, params),
                      Catch::Contains("fp16 autocast runs on CUDA only") && Catch::Contains("bf16"));
  }
  cpu::set_max_isa(saved);
}

TEST_CASE("Programs asking for a precision the device lacks get an error naming the option and the device",
          "[bf16][errors]") {
  CHECK_THROWS_WITH(check_precision_supported<Cpu>(Precision::fp16, "--precision"),
                    Catch::Contains("--precision fp16 runs on CUDA only; on the CPU use bf16"));
  check_precision_supported<Cpu>(Precision::bf16, "--precision");  // fp32 where no engine: said on stderr
  // The CUDA rule, as the device query feeds it: no bf16 before Ampere.
  const auto v100 = detail::cuda_precision_problem(Precision::bf16, 7, 0, "Tesla V100-SXM2-16GB");
  REQUIRE(v100.has_value());
  CHECK(*v100 ==
        "bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; Tesla V100-SXM2-16GB is 7.0: use "
        "fp16 or fp32");
  CHECK_FALSE(detail::cuda_precision_problem(Precision::bf16, 8, 0, "A100").has_value());
  CHECK_FALSE(detail::cuda_precision_problem(Precision::bf16, 9, 0, "H100").has_value());
  CHECK_FALSE(detail::cuda_precision_problem(Precision::fp16, 7, 0, "V100").has_value());
}

// The whole model. bf16 keeps 8 significant bits: each rounding of an
// operand errs by at most 2^-9 (0.2%) relative, and the independent errors
// of a sum's terms largely cancel, so one layer's output errs by about 0.2%
// (norm). Through the 20-50 layers of a ResNet the errors add up roughly in
// quadrature, to about 1%.
//
// Forward, in eval mode: measured 0.6% (resnet18) and 0.9% (resnet50), as
// PyTorch's bf16 autocast against its fp32 (0.5%, 0.6%, same shapes); the
// bound is 1.5%. One convolution wrong by one tap of its 147 (tests/mutation
// 30: the stem loses its last tap) gives 2.9% and 1.8%.
//
// Gradients: two forward passes that differ in rounding flip some ReLUs
// whose input is near zero, and the gradient of a random network under a
// random upstream gradient is a small remainder of large cancelling sums,
// so whole-pass gradients differ by 20-130% in PyTorch too (autocast bf16 vs
// fp32, train mode) and say nothing about the kernels. So the backward runs
// from the same bf16 forward pass in train mode (BatchNorm's batch
// statistics included), in fp32 and in bf16: same activations, same ReLU
// masks, and what differs is the rounding of the backward products alone.
// Measured, per gradient tensor: median 0.6% / 1.0% (resnet18 / resnet50),
// worst 1.0% / 4.0% (the stem's BatchNorm bias: a sum over every position of
// the gradient that all 17 or 53 layers' rounding reached, mostly
// cancelling). The bounds: median 2%, worst 8%.
//
// Every convolution wrong by a tap in every pair (tests/mutation 29) breaks
// every bound many times over (50-190%).
TEST_CASE("resnet18 and resnet50 in bf16 agree with fp32 within bf16's rounding", "[bf16][models]") {
  FOR_EACH_BF16_ENGINE(engine) DYNAMIC_SECTION(cpu::bf16_engine_name(engine)) {
    const ScopedBf16Engine use(engine);
    for (const std::string name : {"resnet18", "resnet50"}) {
      DYNAMIC_SECTION(name) {
        auto model = models::create<float>(name, models::ModelOptions{.num_classes = 10});
        Generator gen(9);
        const auto x = Tensor<float>::normal({4, 3, 64, 64}, 0, 1, gen);
        const auto dy = Tensor<float>::normal({4, 10}, 0, 1, gen);

        const auto e = testing::autocast_errors<Cpu>(*model, x, dy, Precision::bf16);
        INFO(name << " eval output: relative error " << e.output);
        CHECK(e.output > 1e-4);  // bf16 really ran
        CHECK(e.output <= 1.5e-2);
        INFO(name << " gradients: median relative error " << e.grad_median << ", worst " << e.grad_worst << " ("
                  << e.worst_name << ")");
        CHECK(e.grad_median > 1e-4);
        CHECK(e.grad_median <= 2e-2);
        CHECK(e.grad_worst <= 8e-2);
      }
    }
  }
}
