// Every layer, op and residual block computes on the GPU what it computes on
// the CPU: forward output, input gradient, every parameter gradient and the
// running statistics, in float (rtol 1e-4 of the tensor's scale) and double
// (1e-10), from the same inputs and weights. See cuda_support.hpp for how
// results are compared and why these bounds.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "rescnn/ops/elementwise.hpp"
#include "rescnn/ops/loss.hpp"
#include "rescnn/ops/pooling.hpp"

using namespace rescnn;
namespace ct = rescnn::cuda_testing;

namespace {

// The same module built on both devices; the GPU gets the CPU's weights and
// statistics (copied, so the check does not rely on initialisation drawing
// the same numbers on both).
template <template <class, class> class M, class T, class... Args>
std::pair<std::shared_ptr<M<T, Cpu>>, std::shared_ptr<M<T, Cuda>>> make_both(bool randomise, const Args&... args) {
  manual_seed(3);
  auto cpu = std::make_shared<M<T, Cpu>>(args...);
  auto gpu = std::make_shared<M<T, Cuda>>(args...);
  if (randomise) {
    Generator gen(17);
    ct::randomise_statistics<T>(*cpu, gen);
  }
  ct::copy_state<T>(*cpu, *gpu);
  return {cpu, gpu};
}

// Builds M<T, *>(args...) on both devices, sets the mode, and compares two
// forward/backward passes on input x.
template <template <class, class> class M, class T, class... Args>
void check_layer(const std::string& what, const Tensor<T, Cpu>& x, bool training, bool randomise, const Args&... args) {
  auto [cpu, gpu] = make_both<M, T>(randomise, args...);
  cpu->train(training);
  gpu->train(training);
  ct::check_forward_backward<T>(what + (training ? " [train]" : " [eval]"), *cpu, *gpu, x, ct::kRtol<T>);
}

template <class T>
Tensor<T, Cpu> normal_input(const Shape& s, std::uint64_t seed = 5, double mean = 0, double stddev = 1) {
  Generator gen(seed);
  return Tensor<T, Cpu>::normal(s, mean, stddev, gen);
}

}  // namespace

// ---- Conv2d ------------------------------------------------------------------

TEMPLATE_TEST_CASE("Conv2d agrees with the CPU: all geometries, with and without bias", "[cuda][conv2d]", float,
                   double) {
  using T = TestType;
  struct Case {
    const char* name;
    nn::Conv2dOptions options;
    Shape input;
  };
  const auto opts = [](index_t in, index_t out, Size2 k, Size2 s, Size2 p, Size2 d = 1, index_t groups = 1) {
    return nn::Conv2dOptions{.in_channels = in,
                             .out_channels = out,
                             .kernel_size = k,
                             .stride = s,
                             .padding = p,
                             .dilation = d,
                             .groups = groups};
  };
  const std::vector<Case> cases{
      {"3x3 pad 1", opts(8, 16, 3, 1, 1), {4, 8, 12, 12}},
      {"3x3 stride 2 pad 1, odd input", opts(8, 16, 3, 2, 1), {4, 8, 13, 11}},
      {"1x1", opts(16, 8, 1, 1, 0), {4, 16, 9, 9}},
      {"1x1 stride 2 (projection shortcut)", opts(8, 16, 1, 2, 0), {4, 8, 10, 9}},
      {"7x7 stride 2 pad 3 (stem, 3 channels)", opts(3, 16, 7, 2, 3), {2, 3, 32, 32}},
      {"7x7 stride 2 pad 3 (stem, 1 channel)", opts(1, 64, 7, 2, 3), {2, 1, 28, 28}},
      {"grouped, groups=4", opts(16, 32, 3, 1, 1, 1, 4), {2, 16, 10, 10}},
      {"grouped, groups=4, stride 2", opts(16, 16, 3, 2, 1, 1, 4), {2, 16, 11, 11}},
      {"depthwise (groups = channels)", opts(16, 16, 3, 1, 1, 1, 16), {2, 16, 10, 10}},
      {"depthwise, channel multiplier 2", opts(8, 16, 3, 2, 1, 1, 8), {2, 8, 9, 10}},
      {"dilation 2", opts(8, 8, 3, 1, 2, 2), {2, 8, 12, 12}},
      {"dilation 2, stride 2, no padding", opts(4, 8, 3, 2, 0, 2), {2, 4, 13, 13}},
      {"asymmetric 3x5 kernel, stride (2, 1), padding (1, 2)", opts(4, 6, {3, 5}, {2, 1}, {1, 2}), {2, 4, 9, 11}},
      {"5x5 unpadded", opts(4, 8, 5, 1, 0), {3, 4, 9, 8}},
      {"batch of one", opts(8, 8, 3, 1, 1), {1, 8, 7, 7}},
      {"wide: 64 -> 128 channels", opts(64, 128, 3, 1, 1), {2, 64, 8, 8}},
  };
  for (const auto& c : cases) {
    for (bool bias : {true, false}) {
      auto o = c.options;
      o.bias = bias;
      const std::string what = std::string("Conv2d ") + c.name + (bias ? ", bias" : ", no bias");
      check_layer<nn::Conv2d, T>(what, normal_input<T>(c.input), true, false, o);
    }
  }
}

TEMPLATE_TEST_CASE("conv2d backward without the input gradient (a network's first layer)", "[cuda][conv2d]", float,
                   double) {
  using T = TestType;
  Generator gen(9);
  const auto x = Tensor<T>::normal({2, 3, 16, 16}, 0, 1, gen);
  const auto w = Tensor<T>::normal({8, 3, 7, 7}, 0, 0.1, gen);
  const auto b = Tensor<T>::normal({8}, 0, 0.1, gen);
  const ops::Conv2dParams p{.stride = 2, .padding = 3};
  const auto x_gpu = x.template to<Cuda>();
  const auto w_gpu = w.template to<Cuda>();
  const auto b_gpu = b.template to<Cuda>();
  const auto y_cpu = ops::conv2d_forward(x, w, &b, p);
  const auto y_gpu = ops::conv2d_forward(x_gpu, w_gpu, &b_gpu, p);
  CHECK_AGREE("forward", y_cpu, y_gpu, ct::kRtol<T>);
  const auto dy = Tensor<T>::normal(y_cpu.shape(), 0, 1, gen);
  for (bool with_bias : {true, false}) {
    INFO((with_bias ? "with" : "without") << " a bias gradient");
    // Accumulated into, so start from non-zero gradients.
    auto dw_cpu = Tensor<T>::normal(w.shape(), 0, 1, gen);
    auto db_cpu = Tensor<T>::normal(b.shape(), 0, 1, gen);
    auto dw_gpu = dw_cpu.template to<Cuda>();
    auto db_gpu = db_cpu.template to<Cuda>();
    auto dw_gpu_full = dw_cpu.template to<Cuda>().clone();
    auto db_gpu_full = db_cpu.template to<Cuda>().clone();
    const auto dx_cpu = ops::conv2d_backward(x, w, dy, p, dw_cpu, with_bias ? &db_cpu : nullptr, false);
    const auto dy_gpu = dy.template to<Cuda>();
    const auto dx_gpu = ops::conv2d_backward(x_gpu, w_gpu, dy_gpu, p, dw_gpu, with_bias ? &db_gpu : nullptr, false);
    CHECK_FALSE(dx_cpu.defined());
    CHECK_FALSE(dx_gpu.defined());
    CHECK_AGREE("dw (need_dx false)", dw_cpu, dw_gpu, ct::kRtol<T>);
    CHECK_AGREE("db (need_dx false)", db_cpu, db_gpu, ct::kRtol<T>);
    // The same weight gradients as with the input gradient.
    const auto dx_full =
        ops::conv2d_backward(x_gpu, w_gpu, dy_gpu, p, dw_gpu_full, with_bias ? &db_gpu_full : nullptr, true);
    CHECK(dx_full.defined());
    CHECK_AGREE("dw (need_dx true)", dw_cpu, dw_gpu_full, ct::kRtol<T>);
    CHECK_AGREE("db (need_dx true)", db_cpu, db_gpu_full, ct::kRtol<T>);
  }
}

// ---- BatchNorm2d -------------------------------------------------------------

TEMPLATE_TEST_CASE("BatchNorm2d agrees with the CPU: train and eval, running statistics, affine or not",
                   "[cuda][batchnorm]", float, double) {
  using T = TestType;
  const Shape s{4, 6, 5, 7};
  const auto x = normal_input<T>(s);
  for (bool training : {true, false}) {
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d affine", x, training, true, nn::BatchNorm2dOptions{.num_features = 6});
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d affine=false", x, training, true,
                                    nn::BatchNorm2dOptions{.num_features = 6, .affine = false});
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d track_running_stats=false (batch statistics in eval too)", x, training,
                                    true, nn::BatchNorm2dOptions{.num_features = 6, .track_running_stats = false});
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d eps 1e-3, momentum 0.3", x, training, true,
                                    nn::BatchNorm2dOptions{.num_features = 6, .eps = 1e-3, .momentum = 0.3});
    // Far from zero: a one-pass E[x^2] - E[x]^2 variance in float loses the
    // digits that the CPU's two-pass double statistics keep.
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d, input of mean 4 and std 0.5", normal_input<T>(s, 6, 4.0, 0.5),
                                    training, true, nn::BatchNorm2dOptions{.num_features = 6});
    // 1x1 planes (the last stage of a small-input ResNet): statistics over
    // the batch only.
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d on 1x1 planes", normal_input<T>({8, 5, 1, 1}), training, true,
                                    nn::BatchNorm2dOptions{.num_features = 5});
    // Many values per channel: the reduction spans many thread blocks.
    check_layer<nn::BatchNorm2d, T>("BatchNorm2d over 2x64x64 values per channel",
                                    normal_input<T>({2, 3, 64, 64}, 7, 0.5, 2.0), training, true,
                                    nn::BatchNorm2dOptions{.num_features = 3});
  }
}

// ---- ReLU and element-wise ops ----------------------------------------------

TEMPLATE_TEST_CASE("ReLU agrees with the CPU, zeros included", "[cuda][activation]", float, double) {
  using T = TestType;
  auto x = normal_input<T>({3, 5, 7, 11});
  for (index_t i = 0; i < x.numel(); i += 7) x[i] = T(0);  // the kink: gradient 0 as on the CPU
  check_layer<nn::ReLU, T>("ReLU", x, true, false);
}

TEMPLATE_TEST_CASE("NaN and infinities propagate through ReLU, add and max-pooling as on the CPU",
                   "[cuda][activation][pooling]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  auto x = normal_input<T>({1, 2, 4, 4});
  x[0] = nan;
  x[5] = inf;
  x[6] = -inf;
  x[17] = nan;
  x[18] = T(0);
  const auto x_gpu = x.template to<Cuda>();
  const auto y_cpu = ops::relu_forward(x);
  const auto y_gpu = ops::relu_forward(x_gpu);
  CHECK_AGREE("relu forward", y_cpu, y_gpu, 0.0);
  const auto dy = normal_input<T>(x.shape(), 8);
  CHECK_AGREE("relu backward", ops::relu_backward(y_cpu, dy), ops::relu_backward(y_gpu, dy.template to<Cuda>()), 0.0);
  auto acc_cpu = normal_input<T>(x.shape(), 9);
  auto acc_gpu = acc_cpu.template to<Cuda>();
  ops::add_relu_(acc_cpu, x);
  ops::add_relu_(acc_gpu, x_gpu);
  CHECK_AGREE("add_relu_", acc_cpu, acc_gpu, 0.0);
  Tensor<std::int32_t, Cpu> arg_cpu;
  Tensor<std::int32_t, Cuda> arg_gpu;
  const ops::Pool2dParams p{.kernel = 2, .stride = 2};
  CHECK_AGREE("max_pool2d forward", ops::maxpool2d_forward(x, p, arg_cpu), ops::maxpool2d_forward(x_gpu, p, arg_gpu),
              0.0);
  CHECK(arg_gpu.to_vector() == arg_cpu.to_vector());
}

TEMPLATE_TEST_CASE("add, add_ and add_relu_ agree with the CPU", "[cuda][activation]", float, double) {
  using T = TestType;
  const auto a = normal_input<T>({2, 3, 17, 19}, 1);
  const auto b = normal_input<T>({2, 3, 17, 19}, 2);
  const auto a_gpu = a.template to<Cuda>();
  const auto b_gpu = b.template to<Cuda>();
  CHECK_AGREE("add", ops::add(a, b), ops::add(a_gpu, b_gpu), ct::kRtol<T>);
  auto s_cpu = a.clone();
  auto s_gpu = a_gpu.clone();
  ops::add_(s_cpu, b);
  ops::add_(s_gpu, b_gpu);
  CHECK_AGREE("add_", s_cpu, s_gpu, ct::kRtol<T>);
  ops::add_relu_(s_cpu, b);
  ops::add_relu_(s_gpu, b_gpu);
  CHECK_AGREE("add_relu_", s_cpu, s_gpu, ct::kRtol<T>);
}

// ---- pooling -----------------------------------------------------------------

TEMPLATE_TEST_CASE("MaxPool2d agrees with the CPU: argmax, padding as -inf, ties", "[cuda][pooling]", float, double) {
  using T = TestType;
  struct Case {
    const char* name;
    nn::MaxPool2dOptions options;
    Shape input;
  };
  const std::vector<Case> cases{
      {"3x3 stride 2 pad 1 (ResNet stem), odd input",
       {.kernel_size = 3, .stride = Size2(2), .padding = 1},
       {2, 4, 13, 13}},
      {"3x3 stride 2 pad 1, even input", {.kernel_size = 3, .stride = Size2(2), .padding = 1}, {2, 4, 16, 16}},
      {"2x2 stride 2", {.kernel_size = 2}, {2, 3, 9, 8}},
      {"3x3 stride 1 pad 1 (overlapping)", {.kernel_size = 3, .stride = Size2(1), .padding = 1}, {2, 3, 7, 9}},
      {"3x3 stride 2 dilation 2", {.kernel_size = 3, .stride = Size2(2), .padding = 1, .dilation = 2}, {2, 3, 11, 11}},
      {"asymmetric 2x3 stride (1, 2)",
       {.kernel_size = Size2(2, 3), .stride = Size2(1, 2), .padding = Size2(1, 1)},
       {1, 2, 6, 9}},
  };
  for (const auto& c : cases) {
    const auto x = normal_input<T>(c.input);
    check_layer<nn::MaxPool2d, T>(std::string("MaxPool2d ") + c.name, x, true, false, c.options);
    // All negative: a padded position taken as 0 instead of -inf would win.
    auto negative = normal_input<T>(c.input, 12);
    for (index_t i = 0; i < negative.numel(); ++i) negative[i] = -std::abs(negative[i]) - T(1);
    check_layer<nn::MaxPool2d, T>(std::string("MaxPool2d, all negative input, ") + c.name, negative, true, false,
                                  c.options);
    // Ties (values on a coarse grid, as after a ReLU): the first maximum in
    // window order wins on both devices, so the gradient goes to the same place.
    auto ties = normal_input<T>(c.input, 13);
    for (index_t i = 0; i < ties.numel(); ++i) ties[i] = std::max(T(0), std::round(ties[i] * T(2)) / T(2));
    check_layer<nn::MaxPool2d, T>(std::string("MaxPool2d, tied values, ") + c.name, ties, true, false, c.options);
    // The recorded argmax itself.
    const ops::Pool2dParams p{c.options.kernel_size, c.options.stride.value_or(c.options.kernel_size),
                              c.options.padding, c.options.dilation};
    Tensor<std::int32_t, Cpu> arg_cpu;
    Tensor<std::int32_t, Cuda> arg_gpu;
    ops::maxpool2d_forward(ties, p, arg_cpu);
    ops::maxpool2d_forward(ties.template to<Cuda>(), p, arg_gpu);
    INFO(c.name);
    CHECK(arg_gpu.to_vector() == arg_cpu.to_vector());
  }
}

TEMPLATE_TEST_CASE("AvgPool2d agrees with the CPU, count_include_pad both ways", "[cuda][pooling]", float, double) {
  using T = TestType;
  struct Case {
    const char* name;
    Size2 kernel, stride, padding;
    Shape input;
  };
  const std::vector<Case> cases{
      {"3x3 stride 2 pad 1", 3, 2, 1, {2, 4, 13, 13}},
      {"3x3 stride 1 pad 1", 3, 1, 1, {2, 3, 7, 8}},
      {"2x2 stride 2", 2, 2, 0, {2, 3, 9, 8}},
      {"5x5 stride 3 pad 2 (windows clipped at the far edge)", 5, 3, 2, {2, 2, 11, 10}},
      {"asymmetric 3x2 stride (2, 1) pad (1, 0)", {3, 2}, {2, 1}, {1, 0}, {1, 3, 8, 7}},
  };
  for (const auto& c : cases) {
    for (bool include_pad : {true, false}) {
      const nn::AvgPool2dOptions o{
          .kernel_size = c.kernel, .stride = c.stride, .padding = c.padding, .count_include_pad = include_pad};
      check_layer<nn::AvgPool2d, T>(
          std::string("AvgPool2d ") + c.name + (include_pad ? ", count_include_pad" : ", count_include_pad=False"),
          normal_input<T>(c.input), true, false, o);
    }
  }
}

TEMPLATE_TEST_CASE("AdaptiveAvgPool2d agrees with the CPU: global, divisor and non-divisor sizes", "[cuda][pooling]",
                   float, double) {
  using T = TestType;
  struct Case {
    const char* name;
    Size2 output;
    Shape input;
  };
  const std::vector<Case> cases{
      {"7x7 -> 1x1 (global)", 1, {4, 16, 7, 7}}, {"2x2 -> 1x1", 1, {4, 8, 2, 2}},
      {"8x8 -> 2x2 (divisor)", 2, {2, 4, 8, 8}}, {"7x7 -> 3x3 (non-divisor: overlapping bins)", 3, {2, 4, 7, 7}},
      {"11x8 -> 5x3", {5, 3}, {2, 3, 11, 8}},    {"3x3 -> 4x4 (more bins than inputs)", 4, {2, 3, 3, 3}},
  };
  for (const auto& c : cases)
    check_layer<nn::AdaptiveAvgPool2d, T>(std::string("AdaptiveAvgPool2d ") + c.name, normal_input<T>(c.input), true,
                                          false, c.output);
}

// ---- Linear and Flatten ------------------------------------------------------

TEMPLATE_TEST_CASE("Linear agrees with the CPU, with and without bias", "[cuda][linear]", float, double) {
  using T = TestType;
  for (bool bias : {true, false}) {
    const std::string b = bias ? ", bias" : ", no bias";
    check_layer<nn::Linear, T>("Linear 40 -> 10" + b, normal_input<T>({16, 40}), true, false,
                               nn::LinearOptions{40, 10, bias});
    check_layer<nn::Linear, T>("Linear 512 -> 1000" + b, normal_input<T>({3, 512}), true, false,
                               nn::LinearOptions{512, 1000, bias});
    check_layer<nn::Linear, T>("Linear, batch of one" + b, normal_input<T>({1, 7}), true, false,
                               nn::LinearOptions{7, 5, bias});
    check_layer<nn::Linear, T>("Linear 1 -> 1" + b, normal_input<T>({4, 1}), true, false,
                               nn::LinearOptions{1, 1, bias});
  }
}

TEMPLATE_TEST_CASE("Flatten and a classifier head agree with the CPU", "[cuda][linear]", float, double) {
  using T = TestType;
  check_layer<nn::Flatten, T>("Flatten", normal_input<T>({4, 8, 3, 3}), true, false);
  manual_seed(4);
  nn::Sequential<T, Cpu> cpu(std::make_shared<nn::AdaptiveAvgPool2d<T, Cpu>>(Size2(1)),
                             std::make_shared<nn::Flatten<T, Cpu>>(), std::make_shared<nn::Linear<T, Cpu>>(16, 10));
  nn::Sequential<T, Cuda> gpu(std::make_shared<nn::AdaptiveAvgPool2d<T, Cuda>>(Size2(1)),
                              std::make_shared<nn::Flatten<T, Cuda>>(), std::make_shared<nn::Linear<T, Cuda>>(16, 10));
  ct::copy_state<T>(cpu, gpu);
  ct::check_forward_backward<T>("pool-flatten-linear head", cpu, gpu, normal_input<T>({4, 16, 3, 3}), ct::kRtol<T>);
}

// ---- loss and accuracy -------------------------------------------------------

TEMPLATE_TEST_CASE("CrossEntropyLoss agrees with the CPU: value and gradient", "[cuda][loss]", float, double) {
  using T = TestType;
  struct Case {
    const char* name;
    index_t batch, classes;
    double logit_scale;
  };
  const std::vector<Case> cases{
      {"16 x 10", 16, 10, 3.0}, {"7 x 1000 classes", 7, 1000, 5.0}, {"large logits (log-sum-exp)", 5, 3, 200.0},
      {"one row", 1, 10, 1.0},  {"300 rows", 300, 10, 2.0},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Generator gen(21);
    const auto logits = Tensor<T>::normal({c.batch, c.classes}, 0, c.logit_scale, gen);
    std::vector<std::int64_t> label_values(static_cast<std::size_t>(c.batch));
    for (auto& l : label_values) l = static_cast<std::int64_t>(gen.uniform_int(static_cast<std::uint64_t>(c.classes)));
    const auto labels = Tensor<std::int64_t>::from_vector({c.batch}, label_values);
    nn::CrossEntropyLoss<T, Cpu> cpu;
    nn::CrossEntropyLoss<T, Cuda> gpu;
    const T loss_cpu = cpu(logits, labels);
    const T loss_gpu = gpu(logits.template to<Cuda>(), labels.template to<Cuda>());
    CHECK_SCALAR_AGREE("loss", loss_cpu, loss_gpu, ct::kRtol<T>);
    CHECK(std::isfinite(static_cast<double>(loss_gpu)));
    CHECK_AGREE("d loss / d logits", cpu.backward(), gpu.backward(), ct::kRtol<T>);
    CHECK_AGREE("d loss / d logits, scale 0.25", cpu.backward(T(0.25)), gpu.backward(T(0.25)), ct::kRtol<T>);
  }
}

TEMPLATE_TEST_CASE("count_correct and accuracy agree with the CPU, ties included", "[cuda][loss]", float, double) {
  using T = TestType;
  // A hand-checked case: rows 0 and 2 are right; row 3 ties between 0 and 2
  // and the first maximum (0) is the prediction, as torch.argmax.
  const auto logits = Tensor<T>::from_vector({4, 3}, {1, 5, 2, 0, 0, 1, 3, 1, 2, 7, 1, 7});
  const auto labels = Tensor<std::int64_t>::from_vector({4}, {1, 0, 0, 0});
  CHECK(ops::count_correct(logits, labels) == 3);
  CHECK(ops::count_correct(logits.template to<Cuda>(), labels.template to<Cuda>()) == 3);
  // Random logits on a coarse grid (many ties), many rows.
  Generator gen(4);
  auto many = Tensor<T>::normal({1000, 10}, 0, 1, gen);
  for (index_t i = 0; i < many.numel(); ++i) many[i] = std::round(many[i]);
  std::vector<std::int64_t> label_values(1000);
  for (auto& l : label_values) l = static_cast<std::int64_t>(gen.uniform_int(10));
  const auto many_labels = Tensor<std::int64_t>::from_vector({1000}, label_values);
  const index_t expected = ops::count_correct(many, many_labels);
  CHECK(ops::count_correct(many.template to<Cuda>(), many_labels.template to<Cuda>()) == expected);
  CHECK(nn::accuracy(many.template to<Cuda>(), many_labels.template to<Cuda>()) == nn::accuracy(many, many_labels));
}

// ---- residual blocks ---------------------------------------------------------

TEMPLATE_TEST_CASE("Residual blocks agree with the CPU: identity and projection shortcuts, train and eval",
                   "[cuda][blocks]", float, double) {
  using T = TestType;
  for (bool training : {true, false}) {
    check_layer<nn::Residual, T>("Residual (d2l) identity", normal_input<T>({4, 8, 8, 8}), training, true,
                                 nn::ResidualOptions{8, 8, false, 1});
    check_layer<nn::Residual, T>("Residual (d2l) 1x1conv stride 2", normal_input<T>({4, 8, 9, 9}), training, true,
                                 nn::ResidualOptions{8, 16, true, 2});
    check_layer<nn::BasicBlock, T>("BasicBlock identity", normal_input<T>({4, 8, 8, 8}), training, true,
                                   nn::BasicBlockOptions{8, 8});
    check_layer<nn::BasicBlock, T>("BasicBlock downsample stride 2", normal_input<T>({4, 8, 9, 9}), training, true,
                                   nn::BasicBlockOptions{8, 16, 2, true});
    check_layer<nn::Bottleneck, T>("Bottleneck identity", normal_input<T>({2, 32, 6, 6}), training, true,
                                   nn::BottleneckOptions{32, 8});
    check_layer<nn::Bottleneck, T>("Bottleneck downsample stride 2", normal_input<T>({2, 16, 9, 9}), training, true,
                                   nn::BottleneckOptions{16, 8, 2, true});
    check_layer<nn::Bottleneck, T>("Bottleneck grouped (groups 2) downsample stride 2", normal_input<T>({2, 16, 9, 9}),
                                   training, true, nn::BottleneckOptions{16, 8, 2, true, 2, 64});
    check_layer<nn::ResNeXtBlock, T>("ResNeXtBlock identity (4 groups)", normal_input<T>({2, 16, 8, 8}), training, true,
                                     nn::ResNeXtBlockOptions{16, 16, 4, 1.0, false, 1});
    check_layer<nn::ResNeXtBlock, T>("ResNeXtBlock 1x1conv stride 2", normal_input<T>({2, 8, 9, 9}), training, true,
                                     nn::ResNeXtBlockOptions{8, 16, 4, 0.5, true, 2});
    check_layer<nn::PreActBlock, T>("PreActBlock identity", normal_input<T>({4, 8, 8, 8}), training, true,
                                    nn::PreActBlockOptions{8, 8, 1});
    check_layer<nn::PreActBlock, T>("PreActBlock projection stride 2", normal_input<T>({4, 8, 9, 9}), training, true,
                                    nn::PreActBlockOptions{8, 16, 2});
  }
}
