// rescnn/models/d2l_resnet.hpp — the ResNet of d2l.ai's chapter "Residual
// Networks (ResNet) and ResNeXt": a 7x7/2 stem with BN and ReLU, a 3x3/2
// max-pool, stages of d2l Residual blocks from `arch`, global average pooling
// and a Linear layer. Children are named as in d2l's code ("0" for the stem,
// "b2".."b5" for the stages, "last" for the head), so parameter names read
// "b2.0.conv1.weight"; weights are Xavier-uniform as d2l's init_cnn.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/nn/blocks.hpp"
#include "rescnn/nn/init.hpp"
#include "rescnn/nn/linear.hpp"
#include "rescnn/nn/pooling.hpp"
#include "rescnn/nn/reshape.hpp"
#include "rescnn/nn/sequential.hpp"

namespace rescnn::models {

// One stage: (number of Residual blocks, channels).
using Arch = std::vector<std::pair<index_t, index_t>>;

template <class T, class D = Cpu>
class D2lResNet : public nn::Sequential<T, D> {
 public:
  D2lResNet(const Arch& arch, index_t num_classes = 10, index_t in_channels = 1, Generator& gen = default_generator()) {
    check(!arch.empty(), "ResNet: arch must list at least one stage");
    check(num_classes >= 1, "ResNet: num_classes must be positive, got ", num_classes);
    check(in_channels >= 1, "ResNet: in_channels must be positive, got ", in_channels);
    auto b1 = std::make_shared<nn::Sequential<T, D>>();
    b1->push_back(std::make_shared<nn::Conv2d<T, D>>(nn::Conv2dOptions{
        .in_channels = in_channels, .out_channels = 64, .kernel_size = 7, .stride = 2, .padding = 3}));
    b1->push_back(std::make_shared<nn::BatchNorm2d<T, D>>(64));
    b1->push_back(std::make_shared<nn::ReLU<T, D>>());
    b1->push_back(
        std::make_shared<nn::MaxPool2d<T, D>>(nn::MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1}));
    this->push_back("0", b1);
    index_t channels = 64;
    for (std::size_t i = 0; i < arch.size(); ++i) {
      const auto [num_residuals, num_channels] = arch[i];
      check(num_residuals >= 1 && num_channels >= 1, "ResNet: stage ", i, " needs positive (blocks, channels), got (",
            num_residuals, ", ", num_channels, ")");
      auto stage = std::make_shared<nn::Sequential<T, D>>();
      for (index_t b = 0; b < num_residuals; ++b) {
        // d2l: the first block of every stage but the first halves the
        // resolution with a 1x1-conv shortcut.
        const bool downsample = b == 0 && i > 0;
        stage->push_back(std::make_shared<nn::Residual<T, D>>(
            nn::ResidualOptions{channels, num_channels, downsample || channels != num_channels, downsample ? 2 : 1}));
        channels = num_channels;
      }
      std::string name = "b";  // appended, not "b" + ...: GCC 12 -Wrestrict false positive (PR 105329)
      name += std::to_string(i + 2);
      this->push_back(std::move(name), stage);
    }
    auto last = std::make_shared<nn::Sequential<T, D>>();
    last->push_back(std::make_shared<nn::AdaptiveAvgPool2d<T, D>>(Size2(1)));
    last->push_back(std::make_shared<nn::Flatten<T, D>>());
    last->push_back(std::make_shared<nn::Linear<T, D>>(channels, num_classes));
    this->push_back("last", last);
    // d2l's init_cnn: Xavier uniform for conv and linear weights; biases keep
    // PyTorch's default.
    for (auto& [name, p] : this->named_parameters())
      if (p->value.rank() >= 2) nn::init::xavier_uniform_(p->value, gen);
  }

  std::string type_name() const override { return "ResNet"; }
};

// d2l's ResNet18: arch ((2, 64), (2, 128), (2, 256), (2, 512)).
template <class T, class D = Cpu>
std::shared_ptr<D2lResNet<T, D>> d2l_resnet18(index_t num_classes = 10, index_t in_channels = 1,
                                              Generator& gen = default_generator()) {
  return std::make_shared<D2lResNet<T, D>>(Arch{{2, 64}, {2, 128}, {2, 256}, {2, 512}}, num_classes, in_channels, gen);
}

}  // namespace rescnn::models
