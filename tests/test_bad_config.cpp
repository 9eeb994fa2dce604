// Every invalid configuration we can name, over the public constructors and
// the trainer's options, in one table: each must throw a rescnn::Error whose
// message names what was wrong (the option and, where there is one, the
// value). Nothing may crash, be clamped or be silently accepted.
//
// The table is the place to add a case when a new option or rule appears;
// the test prints how many cases it checked.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "rescnn/rescnn.hpp"
#include "support/temp_dir.hpp"

using namespace rescnn;
using Catch::Matchers::Contains;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct BadCase {
  std::string what;              // the mistake, as a user would describe it
  std::function<void()> action;  // makes the mistake
  std::string message;           // a fragment the exception's message must contain
};

// Two tiny images for the data-loader cases.
std::shared_ptr<const data::ImageSet> tiny_images() {
  auto set = std::make_shared<data::ImageSet>();
  set->height = 2;
  set->width = 2;
  set->pixels = std::vector<std::uint8_t>(8, 7);
  set->labels = {0, 1};
  return set;
}

// A trainer run of one batch, to reach the options checked in fit().
struct TinyData {
  data::DataLoader train_loader{tiny_images(), data::LoaderOptions{.batch_size = 2}};
  data::DataLoader test_loader{tiny_images(), data::LoaderOptions{.batch_size = 2}};
  data::DataLoader& train() { return train_loader; }
  data::DataLoader& test() { return test_loader; }
};

void fit_with(const train::TrainerOptions& options) {
  auto model = std::make_shared<nn::Sequential<float>>(std::make_shared<nn::Flatten<float>>(),
                                                       std::make_shared<nn::Linear<float>>(4, 2));
  optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1});
  TinyData data;
  train::TrainerOptions o = options;
  o.progress = train::ProgressMode::Silent;
  o.log = nullptr;
  train::Trainer(o).fit(*model, sgd, data);
}

template <class Opt>
void sgd_with(const Opt& o) {
  nn::Linear<float> layer(2, 2);
  optim::SGD<float> opt(layer.named_parameters(), o);
}

std::vector<BadCase> bad_cases(const std::filesystem::path& tmp) {
  using nn::Conv2dOptions;
  std::vector<BadCase> c;
  // ---- layers
  c.push_back({"Conv2d in_channels 0", [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 0, .out_channels = 4}); },
               "in_channels must be positive, got 0"});
  c.push_back({"Conv2d out_channels -3", [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 3, .out_channels = -3}); },
               "out_channels must be positive, got -3"});
  c.push_back({"Conv2d kernel_size 0",
               [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = 0}); },
               "kernel_size must be positive"});
  c.push_back(
      {"Conv2d stride 0",
       [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .stride = 0}); },
       "stride must be positive"});
  c.push_back(
      {"Conv2d padding -1",
       [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = -1}); },
       "padding must be non-negative"});
  c.push_back(
      {"Conv2d dilation 0",
       [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .dilation = 0}); },
       "dilation must be positive"});
  c.push_back({"Conv2d groups 0",
               [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 4, .out_channels = 4, .groups = 0}); },
               "groups must be positive"});
  c.push_back({"Conv2d groups not dividing in_channels",
               [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 6, .out_channels = 4, .groups = 4}); },
               "in_channels=6 is not divisible by groups=4"});
  c.push_back({"Conv2d groups not dividing out_channels",
               [] { nn::Conv2d<float>(Conv2dOptions{.in_channels = 4, .out_channels = 6, .groups = 4}); },
               "out_channels=6 is not divisible by groups=4"});
  c.push_back(
      {"BatchNorm2d num_features 0", [] { nn::BatchNorm2d<float>(0); }, "num_features must be positive, got 0"});
  c.push_back({"BatchNorm2d eps 0", [] { nn::BatchNorm2d<float>({.num_features = 4, .eps = 0}); },
               "eps must be positive and finite, got 0"});
  c.push_back({"BatchNorm2d eps NaN", [] { nn::BatchNorm2d<float>({.num_features = 4, .eps = kNaN}); },
               "eps must be positive and finite, got nan"});
  c.push_back({"BatchNorm2d eps infinite", [] { nn::BatchNorm2d<float>({.num_features = 4, .eps = kInf}); },
               "eps must be positive and finite, got inf"});
  c.push_back({"BatchNorm2d momentum 1.5", [] { nn::BatchNorm2d<float>({.num_features = 4, .momentum = 1.5}); },
               "momentum must lie in [0, 1], got 1.5"});
  c.push_back({"BatchNorm2d momentum NaN", [] { nn::BatchNorm2d<float>({.num_features = 4, .momentum = kNaN}); },
               "momentum must lie in [0, 1], got nan"});
  c.push_back({"Linear in_features 0", [] { nn::Linear<float>(0, 4); }, "in_features must be positive, got 0"});
  c.push_back({"Linear out_features -1", [] { nn::Linear<float>(4, -1); }, "out_features must be positive, got -1"});
  c.push_back({"MaxPool2d kernel 0", [] { nn::MaxPool2d<float>(nn::MaxPool2dOptions{.kernel_size = 0}); },
               "kernel_size must be positive"});
  c.push_back({"MaxPool2d stride 0",
               [] { nn::MaxPool2d<float>(nn::MaxPool2dOptions{.kernel_size = 3, .stride = Size2(0)}); },
               "stride must be positive"});
  c.push_back({"MaxPool2d padding over half the kernel",
               [] { nn::MaxPool2d<float>(nn::MaxPool2dOptions{.kernel_size = 3, .padding = 2}); },
               "at most half the kernel"});
  c.push_back({"MaxPool2d dilation 0",
               [] { nn::MaxPool2d<float>(nn::MaxPool2dOptions{.kernel_size = 3, .dilation = 0}); },
               "dilation must be positive"});
  c.push_back({"AvgPool2d negative padding",
               [] { nn::AvgPool2d<float>(nn::AvgPool2dOptions{.kernel_size = 3, .padding = -1}); },
               "must be non-negative"});
  c.push_back(
      {"AdaptiveAvgPool2d output 0", [] { nn::AdaptiveAvgPool2d<float>(Size2(0)); }, "output_size must be positive"});
  // ---- blocks and models
  c.push_back({"Residual with 0 channels",
               [] {
                 nn::Residual<float>(nn::ResidualOptions{0, 8});
               },
               "Residual: channels must be positive"});
  c.push_back({"Residual stride 0",
               [] {
                 nn::Residual<float>(nn::ResidualOptions{8, 8, true, 0});
               },
               "Residual: strides must be positive, got 0"});
  c.push_back({"BasicBlock stride 2 without a projection",
               [] {
                 nn::BasicBlock<float>(nn::BasicBlockOptions{8, 8, 2, false});
               },
               "BasicBlock: stride 2"});
  c.push_back({"BasicBlock with groups",
               [] {
                 nn::BasicBlock<float>(nn::BasicBlockOptions{8, 8, 1, false, 2});
               },
               "only supports groups=1"});
  c.push_back({"Bottleneck groups 0",
               [] {
                 nn::Bottleneck<float>(nn::BottleneckOptions{32, 8, 1, false, 0});
               },
               "groups and base_width must be positive"});
  c.push_back({"ResNeXtBlock groups not dividing the bottleneck",
               [] {
                 nn::ResNeXtBlock<float>(nn::ResNeXtBlockOptions{16, 16, 3, 1.0, false, 1});
               },
               "ResNeXtBlock: bottleneck channels"});
  c.push_back({"ResNeXtBlock bot_mul NaN",
               [] {
                 nn::ResNeXtBlock<float>(nn::ResNeXtBlockOptions{16, 16, 4, kNaN, false, 1});
               },
               "bot_mul must be positive, got nan"});
  c.push_back({"PreActBlock stride 0",
               [] {
                 nn::PreActBlock<float>(nn::PreActBlockOptions{8, 8, 0});
               },
               "PreActBlock: stride must be positive, got 0"});
  c.push_back({"unknown model name", [] { models::create<float>("resnet19", {}); }, "resnet19"});
  c.push_back({"model with 0 classes", [] { models::create<float>("resnet18", {.num_classes = 0}); },
               "num_classes must be positive, got 0"});
  c.push_back({"model with 0 input channels", [] { models::create<float>("d2l_resnet18", {.in_channels = 0}); },
               "in_channels must be positive, got 0"});
  // ---- the CPU level (RESCNN_MAX_CPU_ISA)
  c.push_back({"an unknown CPU level", [] { cpu::parse_isa("avx3", "RESCNN_MAX_CPU_ISA"); },
               "RESCNN_MAX_CPU_ISA: unknown value 'avx3'; expected one of generic, avx2, avx512, avx512_bf16"});
  c.push_back({"RESCNN_MAX_CPU_ISA set to an unknown value",
               [] {
                 ::setenv("RESCNN_MAX_CPU_ISA", "sse9", 1);
                 const auto restore = [] { ::unsetenv("RESCNN_MAX_CPU_ISA"); };
                 try {
                   cpu::isa_detail::isa_cap_from_environment();
                 } catch (...) {
                   restore();
                   throw;
                 }
                 restore();
               },
               "RESCNN_MAX_CPU_ISA: unknown value 'sse9'"});
  // ---- optimizers and schedules
  c.push_back({"SGD learning rate NaN", [] { sgd_with(optim::SGDOptions{.lr = kNaN}); },
               "lr must be finite and >= 0, got nan"});
  c.push_back(
      {"SGD learning rate -1", [] { sgd_with(optim::SGDOptions{.lr = -1}); }, "lr must be finite and >= 0, got -1"});
  c.push_back({"SGD learning rate infinite", [] { sgd_with(optim::SGDOptions{.lr = kInf}); },
               "lr must be finite and >= 0, got inf"});
  c.push_back({"SGD momentum -0.5", [] { sgd_with(optim::SGDOptions{.momentum = -0.5}); },
               "momentum must be finite and >= 0, got -0.5"});
  c.push_back({"SGD weight decay NaN", [] { sgd_with(optim::SGDOptions{.weight_decay = kNaN}); },
               "weight_decay must be finite and >= 0, got nan"});
  c.push_back({"SGD nesterov without momentum", [] { sgd_with(optim::SGDOptions{.nesterov = true}); },
               "nesterov=true requires momentum > 0"});
  c.push_back({"set_lr NaN on a built optimizer",
               [] {
                 nn::Linear<float> layer(2, 2);
                 optim::SGD<float> opt(layer.named_parameters());
                 opt.set_lr(kNaN);
               },
               "learning rate must be finite and >= 0, got nan"});
  c.push_back({"Adam beta1 = 1",
               [] {
                 nn::Linear<float> layer(2, 2);
                 optim::Adam<float>(layer.named_parameters(), {.betas = {1.0, 0.999}});
               },
               "betas[0] must lie in [0, 1), got 1"});
  c.push_back({"AdamW eps -1",
               [] {
                 nn::Linear<float> layer(2, 2);
                 optim::AdamW<float>(layer.named_parameters(), {.eps = -1});
               },
               "eps must be finite and >= 0, got -1"});
  c.push_back({"optimizer over no parameters", [] { optim::SGD<float>(optim::Optimizer<float>::NamedParameters{}); },
               "empty parameter list"});
  c.push_back({"StepLR step_size 0", [] { optim::StepLR(0.1, 0); }, "step_size must be >= 1, got 0"});
  c.push_back({"CosineAnnealingLR t_max 0", [] { optim::CosineAnnealingLR(0.1, 0); }, "t_max must be >= 1, got 0"});
  c.push_back({"LinearWarmup start_factor 0", [] { optim::LinearWarmup(0.1, 0.0, 1.0, 10); },
               "start_factor must lie in (0, 1], got 0"});
  c.push_back({"OneCycleLR with 0 steps", [] { optim::OneCycleLR(0.1, 0); }, "total_steps"});
  // ---- data
  c.push_back({"DataLoader batch size 0", [] { data::DataLoader(tiny_images(), {.batch_size = 0}); },
               "batch_size 0 must be at least 1"});
  c.push_back({"DataLoader batch size -4", [] { data::DataLoader(tiny_images(), {.batch_size = -4}); },
               "batch_size -4 must be at least 1"});
  c.push_back(
      {"DataLoader negative resize", [] { data::DataLoader(tiny_images(), {.resize = -1}); }, "resize -1 is negative"});
  c.push_back({"DataLoader normalize std 0",
               [] {
                 data::DataLoader(tiny_images(), {.normalize = std::pair<float, float>{0.5f, 0.0f}});
               },
               "normalize std 0 must be positive and finite"});
  c.push_back({"DataLoader without images", [] { data::DataLoader(nullptr, {}); }, "the image set is null"});
  c.push_back({"FashionMNIST from a missing directory",
               [] { data::FashionMNIST({.root = "/nonexistent/fashion-mnist"}); }, "/nonexistent/fashion-mnist"});
  c.push_back({"FashionMNIST negative limit", [] { data::FashionMNIST({.limit = -5}); }, "limit"});
  // ---- the trainer
  c.push_back({"Trainer max_epochs 0", [] { train::Trainer({.max_epochs = 0}); }, "max_epochs must be >= 1, got 0"});
  c.push_back({"Trainer resume without a checkpoint", [] { train::Trainer({.resume = true}); },
               "resume needs a checkpoint path"});
  c.push_back({"Trainer checkpoint in a missing directory",
               [] { fit_with({.max_epochs = 1, .checkpoint = "/nonexistent/dir/ckpt.safetensors"}); },
               "/nonexistent/dir"});
  c.push_back({"Trainer checkpoint path is a directory", [tmp] { fit_with({.max_epochs = 1, .checkpoint = tmp}); },
               tmp.string()});
  c.push_back({"Trainer metrics CSV in a missing directory",
               [] { fit_with({.max_epochs = 1, .metrics_csv = "/nonexistent/m.csv"}); }, "/nonexistent"});
  // ---- tensors and threads
  c.push_back({"Tensor::uniform with lo > hi", [] { Tensor<float>::uniform({2}, 1.0, 0.0); },
               "lower bound 1 exceeds upper bound 0"});
  c.push_back({"Tensor::normal with negative std", [] { Tensor<float>::normal({2}, 0.0, -1.0); },
               "standard deviation -1 is negative"});
  c.push_back({"Tensor::from_vector with too few values",
               [] {
                 Tensor<float>::from_vector({2, 2}, {1.0f, 2.0f});
               },
               "2 values given for shape (2, 2)"});
  c.push_back({"reshape to another element count",
               [] {
                 Tensor<float>::zeros({2, 3}).reshape({4, 2});
               },
               "cannot view shape (2, 3)"});
  c.push_back({"set_num_threads(0)", [] { set_num_threads(0); }, "thread count must be at least 1, got 0"});
  return c;
}

}  // namespace

TEST_CASE("Invalid configurations throw clear exceptions (table of cases)", "[errors][config]") {
  testing::TempDir tmp("rescnn_bad_config");
  const auto cases = bad_cases(tmp.path);
  for (const auto& c : cases) {
    INFO("case: " << c.what);
    bool threw = false;
    try {
      c.action();
    } catch (const Error& e) {
      threw = true;
      INFO("message: " << e.what());
      CHECK_THAT(std::string(e.what()), Contains(c.message));
    }
    CHECK(threw);
  }
  std::printf("bad-configuration cases checked: %zu\n", cases.size());
  CHECK(cases.size() >= 60);
}
