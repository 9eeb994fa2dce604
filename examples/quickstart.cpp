// Quick start: a small residual-style CNN for 28x28 grey images, one training
// step by hand (forward, loss, backward), printing shapes and the loss.
//   ./build/examples/quickstart
#include <iostream>
#include <memory>

#include <rescnn/rescnn.hpp>

namespace rn = rescnn;
using rn::nn::Sequential;

int main() {
  rn::manual_seed(0);
  Sequential<float> net;
  net.emplace<rn::nn::Conv2d<float>>(
      rn::nn::Conv2dOptions{.in_channels = 1, .out_channels = 16, .kernel_size = 3, .padding = 1, .bias = false});
  net.emplace<rn::nn::BatchNorm2d<float>>(16);
  net.emplace<rn::nn::ReLU<float>>();
  net.emplace<rn::nn::MaxPool2d<float>>(rn::nn::MaxPool2dOptions{.kernel_size = 2});
  net.emplace<rn::nn::Conv2d<float>>(rn::nn::Conv2dOptions{
      .in_channels = 16, .out_channels = 32, .kernel_size = 3, .stride = 2, .padding = 1, .groups = 2});
  net.emplace<rn::nn::BatchNorm2d<float>>(32);
  net.emplace<rn::nn::ReLU<float>>();
  net.emplace<rn::nn::AdaptiveAvgPool2d<float>>();
  net.emplace<rn::nn::Flatten<float>>();
  net.emplace<rn::nn::Linear<float>>(32, 10);
  std::cout << net << "\nparameters: " << net.num_parameters() << "\n";

  auto images = rn::Tensor<float>::normal({8, 1, 28, 28}, 0.0, 1.0);
  auto labels = rn::Tensor<std::int64_t>::from_vector({8}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto logits = net.forward(images);
  rn::nn::CrossEntropyLoss<float> criterion;
  const float loss = criterion(logits, labels);
  net.zero_grad();
  auto grad_images = net.backward(criterion.backward());
  std::cout << "input " << images.shape() << " -> logits " << logits.shape() << ", loss " << loss << ", input gradient "
            << grad_images.shape() << "\n";
  return 0;
}
