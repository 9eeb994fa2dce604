// bf16 and fp16 autocast on the GPU (backend/cuda/autocast.cuh): the same
// tests as the CPU's bf16 engines (test_bf16), adapted to what cuDNN and
// cuBLAS return.
//
// Kernels. As on the CPU, the operands are rounded to the 16-bit type first
// and the reference is computed from them in double, which separates the
// intended input rounding from kernel bugs. Two kinds of result:
//   - Linear (cublasGemmEx) returns float sums: they must match the
//     reference to float accumulation error, 1e-5 of the tensor's scale
//     (as test_bf16's 1e-5, here relative to the scale because cuBLAS's
//     summation order is its own; see cuda_support.hpp).
//   - A convolution's tensors are all 16-bit in cuDNN (its PSEUDO_BFLOAT16
//     and PSEUDO_HALF configurations: float accumulation, 16-bit output), so
//     its result is the exact sum rounded once to 16 bits. Every element
//     must lie within one 16-bit spacing of the exact value (plus 1e-5 of
//     the scale for the float accumulation), and at most 2% of the elements
//     may differ from the exact value rounded to nearest: a correct kernel
//     differs only where the exact value lies within accumulation error of
//     a rounding midpoint (well under 1%). A wrong or dropped tap moves an
//     element by ~1/sqrt(taps) of its size, several 16-bit spacings, and
//     changes the rounding of most elements.
//
// Whole models: resnet18 and resnet50 within the bounds of test_bf16's model
// test (fp16 rounds 8x finer than bf16, so its errors are smaller still).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "rescnn/backend/cuda/conv2d.hpp"
#include "rescnn/core/half.hpp"
#include "rescnn/core/precision.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "rescnn/ops/linear.hpp"
#include "rescnn/optim/optim.hpp"
#include "support/autocast_errors.hpp"
#include "support/compare.hpp"
#include "support/conv_cases.hpp"
#include "support/half_rounding.hpp"

using namespace rescnn;
namespace ct = rescnn::cuda_testing;

namespace {

const std::vector<Precision> kPrecisions{Precision::bf16, Precision::fp16};

Tensor<double> as_double(const Shape& s, const std::vector<float>& v) {
  return Tensor<double>::from_vector(s, std::vector<double>(v.begin(), v.end()));
}

Tensor<double> rounded_double(Precision p, const Tensor<float>& t) {
  return as_double(t.shape(), testing::rounded(p, t.to_vector()));
}

std::vector<double> values(const Tensor<double>& t) { return t.to_vector(); }

template <class T>
std::vector<float> as_floats(const Tensor<T>& t) {
  const auto v = t.to_vector();
  return std::vector<float>(v.begin(), v.end());
}

// The bias added to every element of an NCHW output.
std::vector<float> broadcast_bias(const Shape& y, const std::vector<float>& bias) {
  std::vector<float> out(static_cast<std::size_t>(y.numel()));
  const index_t plane = y[2] * y[3];
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = bias[(static_cast<index_t>(i) / plane) % y[1]];
  return out;
}

template <class T>
constexpr Tensor<T, Cuda>* kNoBiasGpu = nullptr;
template <class T>
constexpr Tensor<T>* kNoBias = nullptr;

}  // namespace

TEST_CASE("Autocast convolutions on the GPU: the exact result of the rounded operands, rounded once",
          "[cuda][autocast][conv2d]") {
  for (const Precision p : kPrecisions) {
    for (const auto& c : testing::kernel_conv_cases()) {
      DYNAMIC_SECTION(precision_name(p) << ": " << c.name) {
        const auto g = ops::conv2d_geometry(c.input, c.weight, c.params);
        Generator gen(7);
        const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
        const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
        const auto b = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
        const auto dy = Tensor<float>::normal(g.output_shape(), 0, 1, gen);
        const auto dw0 = Tensor<float>::normal(c.weight, 0, 1, gen);  // gradients accumulate
        const auto db0 = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);

        // The reference: double, from the rounded operands (the bias and its
        // gradient stay float, from the unrounded dy).
        const auto xr = rounded_double(p, x), wr = rounded_double(p, w), dyr = rounded_double(p, dy);
        const auto y_exact = ops::conv2d_forward(xr, wr, kNoBias<double>, c.params);
        auto dw_exact = Tensor<double>::zeros(c.weight);
        const auto dx_exact = ops::conv2d_backward(xr, wr, dyr, c.params, dw_exact, kNoBias<double>);
        auto db_exact = as_double(db0.shape(), db0.to_vector());
        auto unused = Tensor<double>::zeros(c.weight);
        ops::conv2d_backward(as_double(x.shape(), x.to_vector()), as_double(w.shape(), w.to_vector()),
                             as_double(dy.shape(), dy.to_vector()), c.params, unused, &db_exact);

        const auto xg = x.to<Cuda>(), wg = w.to<Cuda>(), bg = b.to<Cuda>(), dyg = dy.to<Cuda>();
        auto dwg = dw0.to<Cuda>(), dbg = db0.to<Cuda>();
        Tensor<float, Cuda> y, dx;
        {
          const Autocast autocast(p);
          y = ops::conv2d_forward(xg, wg, &bg, c.params);
          dx = ops::conv2d_backward(xg, wg, dyg, c.params, dwg, &dbg);
        }
        const auto y_check =
            testing::rounded_once(p, y.to_vector(), values(y_exact), broadcast_bias(g.output_shape(), b.to_vector()));
        INFO("forward: " << y_check.message);
        CHECK(y_check.ok);
        const auto dx_check = testing::rounded_once(p, dx.to_vector(), values(dx_exact),
                                                    std::vector<float>(dx_exact.to_vector().size(), 0.f));
        INFO("input gradient: " << dx_check.message);
        CHECK(dx_check.ok);
        const auto dw_check = testing::rounded_once(p, dwg.to_vector(), values(dw_exact), dw0.to_vector());
        INFO("weight gradient: " << dw_check.message);
        CHECK(dw_check.ok);
        const auto db_check = ct::agree(as_floats(db_exact), dbg.to_vector(), ct::kRtol<float>);
        INFO("bias gradient (float): " << db_check.message);
        CHECK(db_check.ok);
      }
    }
  }
}

TEST_CASE("fp32, bf16 and fp16 plans of one geometry live side by side; double never autocasts",
          "[cuda][autocast][conv2d]") {
  Generator gen(11);
  const ops::Conv2dParams params{1, 1, 1, 1};
  const auto x = Tensor<float>::normal({4, 16, 10, 10}, 0, 1, gen).to<Cuda>();
  const auto w = Tensor<float>::normal({24, 16, 3, 3}, 0, 1, gen).to<Cuda>();
  auto& cache = cuda::detail::ConvPlanCache::instance();
  cache.clear();
  const auto fp32 = ops::conv2d_forward(x, w, kNoBiasGpu<float>, params).to_vector();
  CHECK(cache.size() == 1);
  std::vector<float> bf16, fp16;
  {
    const Autocast autocast(Precision::bf16);
    bf16 = ops::conv2d_forward(x, w, kNoBiasGpu<float>, params).to_vector();
  }
  {
    const Autocast autocast(Precision::fp16);
    fp16 = ops::conv2d_forward(x, w, kNoBiasGpu<float>, params).to_vector();
  }
  CHECK(cache.size() == 3);
  // Each is its own precision: bf16 values have 8 significant bits, fp16 11.
  for (float v : bf16) REQUIRE(v == round_to_bf16(v));
  for (float v : fp16) REQUIRE(v == half_bits_to_float(float_to_half_bits(v)));
  CHECK(testing::count_differences(bf16, fp32) > 0);
  // The fp32 plan is untouched by the others.
  CHECK(testing::count_differences(ops::conv2d_forward(x, w, kNoBiasGpu<float>, params).to_vector(), fp32) == 0);

  const auto xd = Tensor<double>::normal({2, 8, 6, 6}, 0, 1, gen).to<Cuda>();
  const auto wd = Tensor<double>::normal({8, 8, 3, 3}, 0, 1, gen).to<Cuda>();
  const auto plain = ops::conv2d_forward(xd, wd, kNoBiasGpu<double>, params).to_vector();
  const Autocast autocast(Precision::bf16);
  CHECK(ops::conv2d_forward(xd, wd, kNoBiasGpu<double>, params).to_vector() == plain);
}

TEST_CASE("Autocast Linear on the GPU: float sums of the rounded operands", "[cuda][autocast][linear]") {
  struct Case {
    index_t batch, in, out;
  };
  for (const Precision p : kPrecisions) {
    for (const Case c : {Case{33, 512, 10}, Case{5, 37, 129}, Case{64, 300, 1000}, Case{1, 1, 1}}) {
      DYNAMIC_SECTION(precision_name(p) << ": " << c.batch << "x" << c.in << " -> " << c.out) {
        Generator gen(13);
        const auto x = Tensor<float>::normal({c.batch, c.in}, 0, 1, gen);
        const auto w = Tensor<float>::normal({c.out, c.in}, 0, 1, gen);
        const auto b = Tensor<float>::normal({c.out}, 0, 1, gen);
        const auto dy = Tensor<float>::normal({c.batch, c.out}, 0, 1, gen);
        const auto dw0 = Tensor<float>::normal({c.out, c.in}, 0, 1, gen);
        const auto db0 = Tensor<float>::normal({c.out}, 0, 1, gen);

        const auto xr = rounded_double(p, x), wr = rounded_double(p, w), dyr = rounded_double(p, dy);
        const auto bd = as_double(b.shape(), b.to_vector());
        const auto y_exact = ops::linear_forward(xr, wr, &bd);
        auto dw_exact = as_double(dw0.shape(), dw0.to_vector());
        auto db_exact = as_double(db0.shape(), db0.to_vector());
        const auto dx_exact = ops::linear_backward(xr, wr, dyr, dw_exact, kNoBias<double>);
        auto unused = Tensor<double>::zeros({c.out, c.in});
        ops::linear_backward(as_double(x.shape(), x.to_vector()), wr, as_double(dy.shape(), dy.to_vector()), unused,
                             &db_exact);

        const auto xg = x.to<Cuda>(), wg = w.to<Cuda>(), bg = b.to<Cuda>(), dyg = dy.to<Cuda>();
        auto dwg = dw0.to<Cuda>(), dbg = db0.to<Cuda>();
        Tensor<float, Cuda> y, dx;
        {
          const Autocast autocast(p);
          y = ops::linear_forward(xg, wg, &bg);
          dx = ops::linear_backward(xg, wg, dyg, dwg, &dbg);
        }
        const double rtol = 1e-5;
        for (const auto& [what, a] :
             {std::pair{"forward", ct::agree(as_floats(y_exact), y.to_vector(), rtol)},
              std::pair{"input gradient", ct::agree(as_floats(dx_exact), dx.to_vector(), rtol)},
              std::pair{"weight gradient", ct::agree(as_floats(dw_exact), dwg.to_vector(), rtol)},
              std::pair{"bias gradient", ct::agree(as_floats(db_exact), dbg.to_vector(), rtol)}}) {
          INFO(what << ": " << a.message);
          CHECK(a.ok);
        }
      }
    }
  }
}

TEST_CASE("resnet18 and resnet50 under GPU autocast agree with fp32 within the CPU's bf16 bounds",
          "[cuda][autocast][models]") {
  for (const Precision p : kPrecisions) {
    for (const std::string name : {"resnet18", "resnet50"}) {
      DYNAMIC_SECTION(precision_name(p) << ": " << name) {
        auto model = models::create<float, Cuda>(name, models::ModelOptions{.num_classes = 10});
        Generator gen(9);
        const auto x = Tensor<float>::normal({4, 3, 64, 64}, 0, 1, gen).to<Cuda>();
        const auto dy = Tensor<float>::normal({4, 10}, 0, 1, gen).to<Cuda>();
        const auto e = testing::autocast_errors<Cuda>(*model, x, dy, p);
        INFO(name << " eval output: relative error " << e.output);
        CHECK(e.output > 1e-5);  // the 16-bit path really ran
        CHECK(e.output <= 1.5e-2);
        INFO(name << " gradients: median relative error " << e.grad_median << ", worst " << e.grad_worst << " ("
                  << e.worst_name << ")");
        CHECK(e.grad_median > 1e-5);
        CHECK(e.grad_median <= 2e-2);
        CHECK(e.grad_worst <= 8e-2);
      }
    }
  }
}

TEST_CASE("GradScaler on the GPU: unscales exactly, skips the step on inf or NaN, backs off and grows",
          "[cuda][autocast][grad_scaler]") {
  manual_seed(5);
  nn::Linear<float, Cpu> cpu_layer(nn::LinearOptions{.in_features = 6, .out_features = 4});
  nn::Linear<float, Cuda> gpu_layer(nn::LinearOptions{.in_features = 6, .out_features = 4});
  ct::copy_state<float>(cpu_layer, gpu_layer);
  optim::SGD<float, Cpu> cpu_opt(cpu_layer.named_parameters(), {.lr = 0.1});
  optim::SGD<float, Cuda> gpu_opt(gpu_layer.named_parameters(), {.lr = 0.1});
  optim::GradScaler<float, Cpu> cpu_scaler({.init_scale = 1024, .growth_interval = 2});
  optim::GradScaler<float, Cuda> gpu_scaler({.init_scale = 1024, .growth_interval = 2});
  Generator gen(3);
  const auto x = Tensor<float>::normal({8, 6}, 0, 1, gen);
  const auto dy = Tensor<float>::normal({8, 4}, 0, 1, gen);
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
    cpu_layer.forward(x);
    gpu_layer.forward(x.to<Cuda>());
    cpu_layer.backward(cpu_scaler.scale(dy));
    gpu_layer.backward(gpu_scaler.scale(dy.to<Cuda>()));
    if (step == 1) {  // a gradient overflowed
      auto& grad = gpu_layer.named_parameters()[0].second->grad;
      auto v = grad.to_vector();
      v[3] = INFINITY;
      grad.copy_(Tensor<float>::from_vector(grad.shape(), v).to<Cuda>());
      CHECK_FALSE(gpu_scaler.step(gpu_opt));
      CHECK(gpu_scaler.found_inf());
      gpu_scaler.update();
      CHECK(gpu_scaler.scale_value() == 512);
      continue;
    }
    REQUIRE(cpu_scaler.step(cpu_opt));
    REQUIRE(gpu_scaler.step(gpu_opt));
    cpu_scaler.update();
    gpu_scaler.update();
    // Scaling by a power of two and back is exact on both devices.
    for (std::size_t i = 0; i < cpu_layer.named_parameters().size(); ++i) {
      const auto& [name, cp] = cpu_layer.named_parameters()[i];
      const auto a = ct::agree(cp->grad, gpu_layer.named_parameters()[i].second->grad, ct::kRtol<float>);
      INFO(name << " gradient: " << a.message);
      CHECK(a.ok);
    }
  }
  // The overflowed step changed nothing: both devices took the same two steps.
  CHECK(cpu_opt.steps() == 2);
  CHECK(gpu_opt.steps() == 2);
  CHECK(gpu_scaler.scale_value() == 512);
  CHECK(cpu_scaler.scale_value() == 2048);  // two good steps in a row: grown
  for (std::size_t i = 0; i < cpu_layer.named_parameters().size(); ++i) {
    const auto& [name, cp] = cpu_layer.named_parameters()[i];
    const auto a = ct::agree(cp->value, gpu_layer.named_parameters()[i].second->value, ct::kRtol<float>);
    INFO(name << ": " << a.message);
    CHECK(a.ok);
  }
}
