// rescnn/models/resnet.hpp — torchvision's ResNet family (ResNet, ResNeXt,
// Wide ResNet), with torchvision's module names, parameter counts and
// initialisation.
//
//   auto model = rescnn::models::resnet50<float>({.num_classes = 10});
//   // parameter names: conv1.weight, layer1.0.downsample.0.weight, fc.bias, ...
//
// The network is a Sequential with named children conv1, bn1, relu,
// maxpool, layer1..layer4, avgpool, flatten, fc (flatten has no parameters,
// so state dicts are exactly torchvision's).
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

enum class BlockKind { Basic, Bottleneck };

// Any member of the family by configuration: resnet18 is
// {Basic, {2, 2, 2, 2}}, resnext50_32x4d is {Bottleneck, {3, 4, 6, 3}, 32, 4}.
struct ResNetConfig {
  BlockKind block = BlockKind::Basic;
  std::vector<index_t> layers{2, 2, 2, 2};  // blocks per stage, four stages
  index_t groups = 1;
  index_t width_per_group = 64;
  index_t num_classes = 1000;
  index_t in_channels = 3;
  bool zero_init_residual = false;  // zero each block's last BN weight (Goyal et al.)
};

// Options a user sets on a named model.
struct ModelOptions {
  index_t num_classes = 1000;
  index_t in_channels = 3;
  bool zero_init_residual = false;
};

inline void validate(const ResNetConfig& c) {
  check(c.layers.size() == 4, "ResNet: layers must list four stages, got ", c.layers.size());
  for (index_t n : c.layers) check(n >= 1, "ResNet: each stage needs at least one block, got ", n);
  check(c.groups >= 1, "ResNet: groups must be positive, got ", c.groups);
  check(c.width_per_group >= 1, "ResNet: width_per_group must be positive, got ", c.width_per_group);
  check(c.num_classes >= 1, "ResNet: num_classes must be positive, got ", c.num_classes);
  check(c.in_channels >= 1, "ResNet: in_channels must be positive, got ", c.in_channels);
  check(c.block == BlockKind::Bottleneck || (c.groups == 1 && c.width_per_group == 64),
        "ResNet: BasicBlock only supports groups=1 and width_per_group=64");
}

template <class T, class D = Cpu>
class ResNet : public nn::Sequential<T, D> {
 public:
  explicit ResNet(const ResNetConfig& config, Generator& gen = default_generator()) : config_(config) {
    validate(config_);
    const index_t expansion = config_.block == BlockKind::Basic ? 1 : 4;
    this->push_back("conv1", std::make_shared<nn::Conv2d<T, D>>(nn::Conv2dOptions{.in_channels = config_.in_channels,
                                                                                  .out_channels = 64,
                                                                                  .kernel_size = 7,
                                                                                  .stride = 2,
                                                                                  .padding = 3,
                                                                                  .bias = false}));
    this->push_back("bn1", std::make_shared<nn::BatchNorm2d<T, D>>(64));
    this->push_back("relu", std::make_shared<nn::ReLU<T, D>>());
    this->push_back("maxpool", std::make_shared<nn::MaxPool2d<T, D>>(
                                   nn::MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1}));
    index_t inplanes = 64;
    const index_t planes[4] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; ++stage) {
      auto layer = std::make_shared<nn::Sequential<T, D>>();
      for (index_t b = 0; b < config_.layers[static_cast<std::size_t>(stage)]; ++b) {
        const index_t stride = (b == 0 && stage > 0) ? 2 : 1;
        const bool downsample = b == 0 && (stride != 1 || inplanes != planes[stage] * expansion);
        if (config_.block == BlockKind::Basic)
          layer->push_back(std::make_shared<nn::BasicBlock<T, D>>(
              nn::BasicBlockOptions{inplanes, planes[stage], stride, downsample}));
        else
          layer->push_back(std::make_shared<nn::Bottleneck<T, D>>(nn::BottleneckOptions{
              inplanes, planes[stage], stride, downsample, config_.groups, config_.width_per_group}));
        inplanes = planes[stage] * expansion;
      }
      std::string name = "layer";  // appended, not "layer" + ...: GCC 12 -Wrestrict false positive (PR 105329)
      name += std::to_string(stage + 1);
      this->push_back(std::move(name), layer);
    }
    this->push_back("avgpool", std::make_shared<nn::AdaptiveAvgPool2d<T, D>>(Size2(1)));
    this->push_back("flatten", std::make_shared<nn::Flatten<T, D>>());
    this->push_back("fc",
                    std::make_shared<nn::Linear<T, D>>(
                        nn::LinearOptions{.in_features = 512 * expansion, .out_features = config_.num_classes}, gen));
    initialise(gen);
  }

  const ResNetConfig& config() const { return config_; }
  std::string type_name() const override { return "ResNet"; }

 private:
  // torchvision: Kaiming normal (fan_out, ReLU) for every conv, BN weight 1
  // and bias 0 (already so), Linear left at PyTorch's default.
  void initialise(Generator& gen) {
    for (auto& [name, p] : this->named_parameters()) {
      if (p->value.rank() == 4) nn::init::kaiming_normal_(p->value, nn::init::FanMode::FanOut, gen);
    }
    if (!config_.zero_init_residual) return;
    for (auto& [stage_name, stage] : this->named_children()) {
      auto* layer = dynamic_cast<nn::Sequential<T, D>*>(stage.get());
      if (!layer || stage_name.rfind("layer", 0) != 0) continue;
      for (auto& [i, block] : layer->named_children()) {
        if (auto* basic = dynamic_cast<nn::BasicBlock<T, D>*>(block.get())) basic->last_bn().weight.value.zero_();
        if (auto* bottle = dynamic_cast<nn::Bottleneck<T, D>*>(block.get())) bottle->last_bn().weight.value.zero_();
      }
    }
  }

  ResNetConfig config_;
};

namespace detail {
inline ResNetConfig config(BlockKind block, std::vector<index_t> layers, index_t groups, index_t width,
                           const ModelOptions& o) {
  return {block, std::move(layers), groups, width, o.num_classes, o.in_channels, o.zero_init_residual};
}
}  // namespace detail

// torchvision's named members, listed once: the builders below and
// models::registry() (registry.hpp) are both generated from this list.
// X(name, block, blocks per stage..., groups, width per group)
#define RESCNN_TORCHVISION_RESNETS(X)                 \
  X(resnet18, Basic, 2, 2, 2, 2, 1, 64)               \
  X(resnet34, Basic, 3, 4, 6, 3, 1, 64)               \
  X(resnet50, Bottleneck, 3, 4, 6, 3, 1, 64)          \
  X(resnet101, Bottleneck, 3, 4, 23, 3, 1, 64)        \
  X(resnet152, Bottleneck, 3, 8, 36, 3, 1, 64)        \
  X(resnext50_32x4d, Bottleneck, 3, 4, 6, 3, 32, 4)   \
  X(resnext101_32x8d, Bottleneck, 3, 4, 23, 3, 32, 8) \
  X(resnext101_64x4d, Bottleneck, 3, 4, 23, 3, 64, 4) \
  X(wide_resnet50_2, Bottleneck, 3, 4, 6, 3, 1, 128)  \
  X(wide_resnet101_2, Bottleneck, 3, 4, 23, 3, 1, 128)

// Each returns a shared_ptr since modules are not movable; the network is
// built and initialised from the generator.
#define RESCNN_RESNET_BUILDER(NAME, BLOCK, L1, L2, L3, L4, GROUPS, WIDTH)                                             \
  template <class T, class D = Cpu>                                                                                   \
  std::shared_ptr<ResNet<T, D>> NAME(const ModelOptions& options = {}, Generator & gen = default_generator()) {       \
    return std::make_shared<ResNet<T, D>>(detail::config(BlockKind::BLOCK, {L1, L2, L3, L4}, GROUPS, WIDTH, options), \
                                          gen);                                                                       \
  }
RESCNN_TORCHVISION_RESNETS(RESCNN_RESNET_BUILDER)
#undef RESCNN_RESNET_BUILDER

}  // namespace rescnn::models
