// The convolution settings and the paths the default tests do not take:
//  - TF32 on (the production default; cuda_main.cu turns it off for the
//    other tests), compared with the CPU at a tolerance TF32 justifies;
//  - workspace limit 0, and what happens when nothing fits;
//  - deterministic mode: deterministic algorithms only, and the same bits
//    when the algorithms are chosen afresh (as in a new process);
//  - the math type of each pass does not depend on which pass ran first;
//  - element-wise kernels on views that start at an unaligned address.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "rescnn/backend/cuda/conv2d.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "rescnn/ops/elementwise.hpp"

using namespace rescnn;
namespace ct = rescnn::cuda_testing;

namespace {

// TF32 rounds both operands of every product to 10 explicit mantissa bits
// (unit roundoff 2^-11 = 4.9e-4, so a product carries up to ~1e-3 relative
// error) and accumulates in fp32. Over a sum of K terms of random sign the
// error grows like sqrt(K) times one term's, as does the sum's scale, so the
// error relative to the tensor's largest value stays near 1e-3 in the
// worst element; 5e-3 leaves a margin of 5, and a wrong index or a lost term
// is an error of order 1.
constexpr double kTf32Rtol = 5e-3;

// Restores the global settings a test changes.
struct SettingsGuard {
  cuda::MathSettings math = cuda::math_settings();
  bool deterministic = cuda::deterministic();
  std::size_t workspace = cuda::conv_workspace_limit();
  ~SettingsGuard() {
    cuda::set_math_settings(math);
    cuda::set_deterministic(deterministic);
    cuda::set_conv_workspace_limit(workspace);
  }
};

template <class T>
Tensor<T, Cpu> normal(const Shape& s, std::uint64_t seed, double stddev = 1) {
  Generator gen(seed);
  return Tensor<T, Cpu>::normal(s, 0, stddev, gen);
}

struct ConvCase {
  const char* name;
  Shape x, w;
  ops::Conv2dParams p;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases{
      {"3x3 pad 1, 64 channels", {8, 64, 14, 14}, {64, 64, 3, 3}, {.stride = 1, .padding = 1}},
      {"3x3 stride 2", {4, 32, 15, 15}, {64, 32, 3, 3}, {.stride = 2, .padding = 1}},
      {"1x1 projection stride 2", {4, 64, 14, 14}, {128, 64, 1, 1}, {.stride = 2, .padding = 0}},
      {"7x7 stem", {4, 1, 32, 32}, {64, 1, 7, 7}, {.stride = 2, .padding = 3}},
      {"grouped 3x3 (groups 8)", {4, 64, 12, 12}, {64, 8, 3, 3}, {.stride = 1, .padding = 1, .groups = 8}},
  };
  return cases;
}

// Forward, input gradient and weight/bias gradients of one convolution on
// both devices, compared at rtol.
template <class T>
void check_conv(const ConvCase& c, double rtol, std::uint64_t seed = 1) {
  INFO(c.name);
  const auto x = normal<T>(c.x, seed);
  const auto w = normal<T>(c.w, seed + 1, 0.1);
  const auto b = normal<T>({c.w[0]}, seed + 2, 0.1);
  const auto y = ops::conv2d_forward(x, w, &b, c.p);
  const auto x_g = x.template to<Cuda>(), w_g = w.template to<Cuda>(), b_g = b.template to<Cuda>();
  const auto y_g = ops::conv2d_forward(x_g, w_g, &b_g, c.p);
  CHECK_AGREE("forward", y, y_g, rtol);
  const auto dy = normal<T>(y.shape(), seed + 3);
  auto dw = Tensor<T, Cpu>::zeros(w.shape()), db = Tensor<T, Cpu>::zeros(b.shape());
  auto dw_g = dw.template to<Cuda>(), db_g = db.template to<Cuda>();
  const auto dx = ops::conv2d_backward(x, w, dy, c.p, dw, &db, true);
  const auto dx_g = ops::conv2d_backward(x_g, w_g, dy.template to<Cuda>(), c.p, dw_g, &db_g, true);
  CHECK_AGREE("input gradient", dx, dx_g, rtol);
  CHECK_AGREE("weight gradient", dw, dw_g, rtol);
  CHECK_AGREE("bias gradient", db, db_g, rtol);
}

template <class T>
cuda::detail::ConvPlan& plan_of(const ConvCase& c) {
  return cuda::detail::ConvPlanCache::instance().plan<T>(ops::conv2d_geometry(c.x, c.w, c.p));
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("With TF32 on, convolutions agree with the CPU within TF32's precision", "[cuda][conv2d][tf32]") {
  SettingsGuard guard;
  cuda::set_allow_tf32(true);
  for (const auto& c : conv_cases()) check_conv<float>(c, kTf32Rtol);
  // And TF32 is really what runs: a full-fp32 tolerance would not hold for
  // every case if tensor cores were used; but cuDNN may choose FMA
  // algorithms, so only the plan's constraints are asserted here.
  for (const auto& c : conv_cases()) {
    const auto& plan = plan_of<float>(c);
    CHECK(plan.constraints.allow_tensor_ops);
    CHECK(plan.searched_math == CUDNN_DEFAULT_MATH);
  }
}

TEST_CASE("A whole d2l residual block trains with TF32 on as on the CPU, within TF32's precision",
          "[cuda][blocks][tf32]") {
  SettingsGuard guard;
  cuda::set_allow_tf32(true);
  manual_seed(3);
  nn::Residual<float, Cpu> cpu(nn::ResidualOptions{16, 32, true, 2});
  nn::Residual<float, Cuda> gpu(nn::ResidualOptions{16, 32, true, 2});
  ct::copy_state<float>(cpu, gpu);
  cpu.train(true);
  gpu.train(true);
  ct::check_forward_backward<float>("Residual, TF32", cpu, gpu, normal<float>({8, 16, 12, 12}, 4), kTf32Rtol);
}

TEMPLATE_TEST_CASE("With workspace limit 0, convolutions run algorithms that need none", "[cuda][conv2d][workspace]",
                   float, double) {
  using T = TestType;
  SettingsGuard guard;
  cuda::set_conv_workspace_limit(0);
  for (const auto& c : conv_cases()) {
    check_conv<T>(c, ct::kRtol<T>, 11);
    const auto& plan = plan_of<T>(c);
    CHECK(plan.forward.workspace == 0);
    CHECK(plan.backward_data.workspace == 0);
    CHECK(plan.backward_filter.workspace == 0);
  }
}

TEST_CASE("Every pass runs under the math type it was searched under, whatever ran before it", "[cuda][conv2d][math]") {
  SettingsGuard guard;
  cuda::set_deterministic(true);  // heuristic choice: no timing noise between the two orders
  for (bool tf32 : {false, true}) {
    cuda::set_allow_tf32(tf32);
    const auto& c = conv_cases()[0];
    INFO("TF32 " << (tf32 ? "on" : "off"));
    const auto x = normal<float>(c.x, 1).to<Cuda>();
    const auto w = normal<float>(c.w, 2, 0.1).to<Cuda>();
    const auto dy = normal<float>(ops::conv2d_geometry(c.x, c.w, c.p).output_shape(), 3).to<Cuda>();
    auto dw = Tensor<float, Cuda>::zeros(c.w);
    const Tensor<float, Cuda>* no_bias = nullptr;
    Tensor<float, Cuda>* no_db = nullptr;
    // Backward first, on a fresh cache.
    cuda::detail::ConvPlanCache::instance().clear();
    (void)ops::conv2d_backward(x, w, dy, c.p, dw, no_db, true);
    const auto bd_first = plan_of<float>(c).backward_data;
    const auto bf_first = plan_of<float>(c).backward_filter;
    // Forward first, then backward.
    cuda::detail::ConvPlanCache::instance().clear();
    (void)ops::conv2d_forward(x, w, no_bias, c.p);
    (void)ops::conv2d_backward(x, w, dy, c.p, dw, no_db, true);
    const auto& plan = plan_of<float>(c);
    CHECK(plan.backward_data.algo == bd_first.algo);
    CHECK(plan.backward_data.math == bd_first.math);
    CHECK(plan.backward_filter.algo == bf_first.algo);
    CHECK(plan.backward_filter.math == bf_first.math);
    for (const auto math : {plan.forward.math, plan.backward_data.math, plan.backward_filter.math}) {
      if (!tf32) CHECK(math == CUDNN_FMA_MATH);
      CHECK(math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
    }
    CHECK(plan.searched_math == (tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  // double: searched under DEFAULT and never run under FMA.
  const auto& c = conv_cases()[1];
  check_conv<double>(c, ct::kRtol<double>);
  const auto& plan = plan_of<double>(c);
  for (const auto& math : {plan.forward.math, plan.backward_data.math, plan.backward_filter.math})
    CHECK(math != CUDNN_FMA_MATH);
}

TEST_CASE("Deterministic mode: deterministic algorithms only, and the same bits when chosen afresh",
          "[cuda][conv2d][deterministic]") {
  SettingsGuard guard;
  cuda::set_deterministic(true);
  for (bool tf32 : {false, true}) {
    cuda::set_allow_tf32(tf32);
    INFO("TF32 " << (tf32 ? "on" : "off"));
    // A small network, trained for two SGD steps from the same weights;
    // the cache is cleared between the runs, as in a new process.
    const auto run = [&] {
      cuda::detail::ConvPlanCache::instance().clear();
      manual_seed(5);
      nn::Sequential<float, Cuda> net;
      net.push_back(std::make_shared<nn::Conv2d<float, Cuda>>(
          nn::Conv2dOptions{.in_channels = 8, .out_channels = 32, .kernel_size = 3, .stride = 1, .padding = 1}));
      net.push_back(std::make_shared<nn::BatchNorm2d<float, Cuda>>(32));
      net.push_back(std::make_shared<nn::ReLU<float, Cuda>>());
      net.push_back(std::make_shared<nn::Conv2d<float, Cuda>>(
          nn::Conv2dOptions{.in_channels = 32, .out_channels = 16, .kernel_size = 3, .stride = 2, .padding = 1}));
      net.train(true);
      const auto x = normal<float>({16, 8, 20, 20}, 7).to<Cuda>();
      std::vector<float> out;
      for (int step = 0; step < 2; ++step) {
        for (auto& [name, p] : net.named_parameters()) p->grad.zero_();
        const auto y = net.forward(x);
        const auto dy = normal<float>(y.shape(), 8 + step).to<Cuda>();
        const auto dx = net.backward(dy);
        const auto yv = y.to_vector(), dxv = dx.to_vector();
        out.insert(out.end(), yv.begin(), yv.end());
        out.insert(out.end(), dxv.begin(), dxv.end());
        for (auto& [name, p] : net.named_parameters()) {
          const auto g = p->grad.to_vector();
          out.insert(out.end(), g.begin(), g.end());
        }
      }
      return out;
    };
    const auto first = run();
    const auto second = run();
    CHECK(bitwise_equal(first, second));
    // Every pass of every geometry chose a deterministic algorithm.
    for (const auto& c : conv_cases()) {
      check_conv<float>(c, tf32 ? kTf32Rtol : ct::kRtol<float>);
      const auto& plan = plan_of<float>(c);
      CHECK(plan.constraints.deterministic);
      CHECK(plan.forward.determinism == CUDNN_DETERMINISTIC);
      CHECK(plan.backward_data.determinism == CUDNN_DETERMINISTIC);
      CHECK(plan.backward_filter.determinism == CUDNN_DETERMINISTIC);
    }
  }
}

TEMPLATE_TEST_CASE("Element-wise kernels on views that start at an unaligned address agree with the CPU",
                   "[cuda][activation][unaligned]", float, double) {
  using T = TestType;
  // A view one element into its allocation: 4 or 8 bytes off the 16-byte
  // alignment the packed path needs, so the element-by-element path runs.
  const index_t n = 1000 + 3;
  const auto a_full = normal<T>({n + 1, 1}, 21), b_full = normal<T>({n + 2, 1}, 22);
  const auto a = a_full.slice(1, n + 1), b = b_full.slice(2, n + 2);  // offsets 1 and 2 elements
  const auto a_g = a_full.template to<Cuda>().slice(1, n + 1);
  const auto b_g = b_full.template to<Cuda>().slice(2, n + 2);
  REQUIRE(reinterpret_cast<std::uintptr_t>(a_g.data()) % 16 != 0);
  CHECK_AGREE("relu", ops::relu_forward(a), ops::relu_forward(a_g), 0.0);
  CHECK_AGREE("add", ops::add(a, b), ops::add(a_g, b_g), 0.0);
  auto s = a.clone();
  auto s_g_full = a_full.template to<Cuda>();
  auto s_g = s_g_full.slice(1, n + 1);
  ops::add_relu_(s, b);
  ops::add_relu_(s_g, b_g);
  CHECK_AGREE("add_relu_ into a view", s, s_g, 0.0);
  // The element before the view is untouched.
  CHECK(s_g_full.slice(0, 1).to_vector() == a_full.slice(0, 1).to_vector());
  const auto dy = normal<T>({n, 1}, 23);
  CHECK_AGREE("relu backward", ops::relu_backward(a, dy), ops::relu_backward(a_g, dy.template to<Cuda>()), 0.0);
}
