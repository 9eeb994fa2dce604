// BatchNorm folding (nn/fuse.hpp): a folded model computes what the
// unfolded one computes in eval mode, to 1e-5 relative, for every block of
// the family; the folded BatchNorms leave the state dict and refuse to
// train; what cannot be folded is left alone.
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "support/compare.hpp"
#include "support/random_batchnorm.hpp"

namespace rn = rescnn;
using rn::testing::IsClose;

namespace {

// The eval-mode outputs of `model` before and after folding; the number folded.
std::size_t check_folding(rn::nn::Module<float>& model, const rn::Shape& input, std::uint64_t seed,
                          double min_log10_var = -1) {
  rn::Generator gen(seed);
  rn::testing::randomise_batchnorms(model, gen, min_log10_var);
  const auto x = rn::Tensor<float>::uniform(input, -2, 2, gen);
  model.eval();
  rn::nn::NoGradGuard no_grad;
  const auto expected = model.forward(x);
  const std::size_t folded = rn::nn::fuse_conv_bn(model);
  const auto actual = model.forward(x);
  REQUIRE_THAT(actual, IsClose(expected, 1e-5));
  return folded;
}

std::size_t count_batchnorms(rn::nn::Module<float>& model) {
  std::size_t n = 0;
  for (auto& [name, b] : model.named_buffers()) n += name.ends_with("running_mean");
  return n;
}

}  // namespace

TEST_CASE("Folding every BatchNorm of resnet18, resnet50 and resnext50_32x4d keeps their outputs") {
  for (const std::string name : {"resnet18", "resnet50", "resnext50_32x4d"}) {
    INFO(name);
    auto model = rn::models::create<float>(name, {.num_classes = 10});
    const std::size_t batchnorms = count_batchnorms(*model);
    CHECK(check_folding(*model, {2, 3, 64, 64}, 7) == batchnorms);  // every BN follows a conv
    CHECK(count_batchnorms(*model) == 0);
    CHECK(rn::nn::fuse_conv_bn(*model) == 0);  // nothing left to fold
  }
}

TEST_CASE("Folding the d2l models and blocks keeps their outputs") {
  auto d2l = rn::models::d2l_resnet18<float>(10, 1);
  CHECK(check_folding(*d2l, {3, 1, 28, 28}, 3) == 17);
  rn::nn::Sequential<float> resnext(
      std::make_shared<rn::nn::ResNeXtBlock<float>>(rn::nn::ResNeXtBlockOptions{
          .in_channels = 8, .num_channels = 16, .groups = 4, .bot_mul = 1, .use_1x1conv = true, .strides = 2}),
      std::make_shared<rn::nn::ResNeXtBlock<float>>(16, 4, 0.5));
  CHECK(check_folding(resnext, {2, 8, 9, 9}, 4, /*min_log10_var=*/-4) == 7);
}

TEST_CASE("The fold uses the BatchNorm's eps, mean and affine parameters") {
  // Variances down to 1e-5 beside eps = 1e-3, where leaving eps out changes
  // the scale up to tenfold; the other terms get random values.
  rn::nn::Sequential<float> seq;
  seq.push_back(std::make_shared<rn::nn::Conv2d<float>>(
      rn::nn::Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1}));
  seq.push_back(
      std::make_shared<rn::nn::BatchNorm2d<float>>(rn::nn::BatchNorm2dOptions{.num_features = 4, .eps = 1e-3}));
  seq.push_back(std::make_shared<rn::nn::Conv2d<float>>(
      rn::nn::Conv2dOptions{.in_channels = 4, .out_channels = 2, .kernel_size = 1, .bias = false}));
  seq.push_back(
      std::make_shared<rn::nn::BatchNorm2d<float>>(rn::nn::BatchNorm2dOptions{.num_features = 2, .affine = false}));
  CHECK(check_folding(seq, {2, 3, 6, 6}, 9, /*min_log10_var=*/-5) == 2);
}

TEST_CASE("Folding works in double precision too") {
  auto model = rn::models::resnet18<double>({.num_classes = 4});
  rn::Generator gen(11);
  rn::testing::randomise_batchnorms(*model, gen, -3);
  const auto x = rn::Tensor<double>::uniform({2, 3, 32, 32}, -2, 2, gen);
  model->eval();
  rn::nn::NoGradGuard no_grad;
  const auto expected = model->forward(x);
  CHECK(rn::nn::fuse_conv_bn(*model) == 20);
  // Folding in double loses nothing a double model can see.
  REQUIRE_THAT(model->forward(x), IsClose(expected, 1e-12));
}

TEST_CASE("A pre-activation block keeps the BatchNorm no convolution precedes") {
  // bn1 runs first (on the block's input); bn2 follows conv1 and folds.
  rn::nn::PreActBlock<float> block({.in_channels = 4, .out_channels = 8, .stride = 2});
  CHECK(check_folding(block, {2, 4, 8, 8}, 5) == 1);
  CHECK(block.bn1->type_name() == "BatchNorm2d");
  CHECK(block.bn2->type_name() == "Identity");
}

TEST_CASE("A folded model's state dict has conv biases and no BatchNorm entries") {
  auto model = rn::models::resnet18<float>({.num_classes = 10});
  const auto before = rn::io::state_dict(*model);
  const rn::index_t params_before = model->num_parameters();
  rn::index_t bn_channels = 0;
  for (auto& [name, b] : model->named_buffers()) bn_channels += name.ends_with("running_mean") ? b->numel() : 0;
  CHECK(before.contains("bn1.running_var"));
  CHECK_FALSE(before.contains("conv1.bias"));
  rn::nn::fuse_conv_bn(*model);
  const auto after = rn::io::state_dict(*model);
  CHECK(after.contains("conv1.bias"));
  CHECK(after.contains("layer2.0.downsample.0.bias"));
  CHECK_FALSE(after.contains("bn1.weight"));
  CHECK_FALSE(after.contains("bn1.num_batches_tracked"));
  CHECK_FALSE(after.contains("layer1.0.bn2.running_mean"));
  // Each BatchNorm's gamma and beta (2 per channel) became one conv bias.
  CHECK(model->num_parameters() == params_before - bn_channels);
}

TEST_CASE("A folded model refuses to train and keeps BatchNorms without running statistics") {
  auto model = rn::models::resnet18<float>({.num_classes = 10});
  rn::nn::fuse_conv_bn(*model);
  model->train();
  const auto x = rn::Tensor<float>::zeros({1, 3, 32, 32});
  CHECK_THROWS_WITH(model->forward(x),
                    Catch::Contains("was folded into the Conv2d before it") && Catch::Contains("inference only"));

  rn::nn::Sequential<float> seq;
  seq.push_back(std::make_shared<rn::nn::Conv2d<float>>(rn::nn::Conv2dOptions{.in_channels = 2, .out_channels = 3}));
  seq.push_back(std::make_shared<rn::nn::BatchNorm2d<float>>(
      rn::nn::BatchNorm2dOptions{.num_features = 3, .track_running_stats = false}));
  CHECK(rn::nn::fuse_conv_bn(seq) == 0);
  CHECK(seq[1].type_name() == "BatchNorm2d");
}

TEST_CASE("optimize_for_inference returns the folded eval-mode model") {
  auto model = rn::nn::optimize_for_inference(rn::models::resnet18<float>({.num_classes = 4}));
  CHECK_FALSE(model->is_training());
  CHECK(count_batchnorms(*model) == 0);
  CHECK_THROWS_WITH(rn::nn::optimize_for_inference(std::shared_ptr<rn::nn::Module<float>>()),
                    Catch::Contains("the model is null"));
}
