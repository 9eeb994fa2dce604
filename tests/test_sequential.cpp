// Sequential and the Module machinery: dotted names, counts, modes, grad
// mode, and the gradient of a whole small network in training mode.
#include <catch2/catch.hpp>

#include "rescnn/nn/nn.hpp"
#include "support/gradcheck.hpp"

using namespace rescnn;
using Catch::Matchers::Contains;

namespace {
template <class T>
std::shared_ptr<nn::Sequential<T>> small_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential<T>>();
  net->push_back(std::make_shared<nn::Conv2d<T>>(
      nn::Conv2dOptions{.in_channels = 2, .out_channels = 4, .kernel_size = 3, .stride = 2, .padding = 1}, gen));
  net->push_back(std::make_shared<nn::BatchNorm2d<T>>(4));
  net->push_back(std::make_shared<nn::ReLU<T>>());
  net->push_back(std::make_shared<nn::MaxPool2d<T>>(nn::MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1}));
  net->push_back(std::make_shared<nn::AdaptiveAvgPool2d<T>>());
  net->push_back(std::make_shared<nn::Flatten<T>>());
  net->push_back(std::make_shared<nn::Linear<T>>(nn::LinearOptions{.in_features = 4, .out_features = 3}, gen));
  return net;
}
}  // namespace

TEST_CASE("Sequential names parameters and buffers as PyTorch and counts them", "[sequential]") {
  Generator gen(1);
  auto net = small_net<float>(gen);
  std::vector<std::string> names;
  for (auto& [name, p] : net->named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "6.weight", "6.bias"});
  std::vector<std::string> buffers;
  for (auto& [name, b] : net->named_buffers()) buffers.push_back(name);
  CHECK(buffers == std::vector<std::string>{"1.running_mean", "1.running_var"});
  // 4*2*3*3 + 4 + 4 + 4 + 3*4 + 3, as sum(p.numel()) in PyTorch
  CHECK(net->num_parameters() == 72 + 4 + 4 + 4 + 12 + 3);
  CHECK(net->num_buffer_elements() == 8);

  nn::Sequential<float> outer;
  outer.push_back("features", net);
  outer.push_back("head", std::make_shared<nn::Linear<float>>(3, 2));
  CHECK(outer.named_parameters().front().first == "features.0.weight");
  CHECK(outer.named_parameters().back().first == "head.bias");
  CHECK_THROWS_WITH(outer.push_back("head", std::make_shared<nn::ReLU<float>>()),
                    Contains("a child named 'head' already exists"));
}

TEST_CASE("Sequential prints like PyTorch", "[sequential]") {
  nn::Sequential<float> net(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions{
                                .in_channels = 1, .out_channels = 8, .kernel_size = 3, .padding = 1, .bias = false}),
                            std::make_shared<nn::ReLU<float>>());
  CHECK(net.to_string() ==
        "Sequential(\n"
        "  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): ReLU()\n"
        ")");
}

TEST_CASE("A whole network's gradients match finite differences, in train and eval mode", "[sequential][gradcheck]") {
  for (bool training : {true, false}) {
    SECTION(training ? "train" : "eval") {
      Generator gen(77);
      auto net = small_net<double>(gen);
      net->train(training);
      auto x = Tensor<double>::normal({3, 2, 7, 6}, 0, 1, gen);
      const auto r = testing::check_gradients(*net, x);
      INFO(r.summary());
      CHECK(r.ok());
    }
  }
}

TEST_CASE("output_shape predicts forward without computing", "[sequential]") {
  Generator gen(2);
  auto net = small_net<float>(gen);
  CHECK(net->output_shape({5, 2, 28, 28}) == Shape{5, 3});
  CHECK(net->forward(Tensor<float>::zeros({5, 2, 28, 28})).shape() == Shape{5, 3});
  CHECK_THROWS_AS(net->output_shape({5, 3, 28, 28}), ShapeError);
}

TEST_CASE("train and eval propagate and NoGradGuard records nothing", "[sequential]") {
  Generator gen(3);
  auto net = small_net<float>(gen);
  net->eval();
  for (auto& [name, child] : net->named_children()) CHECK_FALSE(child->is_training());
  net->train();
  for (auto& [name, child] : net->named_children()) CHECK(child->is_training());

  auto x = Tensor<float>::normal({2, 2, 8, 8}, 0, 1, gen);
  {
    nn::NoGradGuard no_grad;
    CHECK_FALSE(nn::is_grad_enabled());
    net->forward(x);
  }
  CHECK(nn::is_grad_enabled());
  CHECK_THROWS_WITH(net->backward(Tensor<float>::zeros({2, 3})), Contains("no forward pass was recorded"));
  CHECK_THROWS_WITH(nn::Sequential<float>().forward(x), Contains("empty Sequential"));
}
