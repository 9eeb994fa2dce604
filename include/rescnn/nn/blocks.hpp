// rescnn/nn/blocks.hpp — the residual blocks: d2l's Residual and
// ResNeXtBlock, torchvision's BasicBlock and Bottleneck, and the
// pre-activation block. Each registers its layers under the names its
// reference implementation uses, in the same order, so parameter names and
// state dicts match PyTorch's.
#pragma once

#include <cmath>
#include <memory>

#include "rescnn/nn/activation.hpp"
#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/conv2d.hpp"
#include "rescnn/nn/residual.hpp"

namespace rescnn::nn {

namespace detail {
template <class T, class D>
std::shared_ptr<Conv2d<T, D>> conv(index_t in, index_t out, Size2 kernel, index_t stride, index_t padding, bool bias,
                                   index_t groups = 1) {
  return std::make_shared<Conv2d<T, D>>(Conv2dOptions{.in_channels = in,
                                                      .out_channels = out,
                                                      .kernel_size = kernel,
                                                      .stride = stride,
                                                      .padding = padding,
                                                      .groups = groups,
                                                      .bias = bias});
}
template <class T, class D>
std::shared_ptr<BatchNorm2d<T, D>> bn(index_t channels) {
  return std::make_shared<BatchNorm2d<T, D>>(channels);
}
template <class T, class D>
// A fresh ReLU for each use (each keeps its own output for backward); blocks
// register them as children (relu1, relu2) like every layer on their paths.
std::shared_ptr<ReLU<T, D>> relu() {
  return std::make_shared<ReLU<T, D>>();
}
}  // namespace detail

// d2l.ai's Residual: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the
// input (or a 1x1 conv of it when use_1x1conv), then ReLU. Convs have biases
// (d2l's LazyConv2d default). Registered as conv1, conv2, conv3, bn1, bn2.
struct ResidualOptions {
  index_t in_channels = 0;
  index_t num_channels = 0;
  bool use_1x1conv = false;
  index_t strides = 1;
};

template <class T, class D = Cpu>
class Residual : public ResidualBlock<T, D> {
 public:
  std::shared_ptr<Conv2d<T, D>> conv1, conv2, conv3;  // conv3 null without use_1x1conv
  std::shared_ptr<BatchNorm2d<T, D>> bn1, bn2;

  explicit Residual(const ResidualOptions& o) {
    check(o.in_channels >= 1 && o.num_channels >= 1,
          "Residual: channels must be positive, got in_channels=", o.in_channels, ", num_channels=", o.num_channels);
    check(o.strides >= 1, "Residual: strides must be positive, got ", o.strides);
    using namespace detail;
    conv1 = this->register_module("conv1", conv<T, D>(o.in_channels, o.num_channels, 3, o.strides, 1, true));
    conv2 = this->register_module("conv2", conv<T, D>(o.num_channels, o.num_channels, 3, 1, 1, true));
    if (o.use_1x1conv)
      conv3 = this->register_module("conv3", conv<T, D>(o.in_channels, o.num_channels, 1, o.strides, 0, true));
    bn1 = this->register_module("bn1", bn<T, D>(o.num_channels));
    bn2 = this->register_module("bn2", bn<T, D>(o.num_channels));
    this->set_branch({conv1, bn1, this->register_module("relu1", relu<T, D>()), conv2, bn2});
    this->set_shortcut(conv3);
  }
  // d2l's spelling: Residual(num_channels) keeps the channel count.
  explicit Residual(index_t num_channels, bool use_1x1conv = false, index_t strides = 1)
      : Residual(ResidualOptions{num_channels, num_channels, use_1x1conv, strides}) {}

  std::string type_name() const override { return "Residual"; }
};

// torchvision's BasicBlock (expansion 1): conv3x3(stride) -> BN -> ReLU ->
// conv3x3 -> BN, plus the input or `downsample` (1x1 conv + BN), then ReLU.
struct BasicBlockOptions {
  index_t inplanes = 0;
  index_t planes = 0;
  index_t stride = 1;
  bool downsample = false;  // a 1x1 conv + BN projection shortcut
  index_t groups = 1;
  index_t base_width = 64;
};

template <class T, class D = Cpu>
class BasicBlock : public ResidualBlock<T, D> {
 public:
  static constexpr index_t expansion = 1;
  std::shared_ptr<Conv2d<T, D>> conv1, conv2;
  std::shared_ptr<BatchNorm2d<T, D>> bn1, bn2;
  std::shared_ptr<Sequential<T, D>> downsample;  // null for the identity shortcut

  explicit BasicBlock(const BasicBlockOptions& o) {
    check(o.groups == 1 && o.base_width == 64,
          "BasicBlock: only supports groups=1 and base_width=64, got groups=", o.groups, ", base_width=", o.base_width);
    check(o.inplanes >= 1 && o.planes >= 1, "BasicBlock: channels must be positive, got inplanes=", o.inplanes,
          ", planes=", o.planes);
    check(o.stride >= 1, "BasicBlock: stride must be positive, got ", o.stride);
    check(o.downsample || (o.stride == 1 && o.inplanes == o.planes), "BasicBlock: stride ", o.stride, " or inplanes ",
          o.inplanes, " != planes ", o.planes, " needs a downsample shortcut");
    using namespace detail;
    conv1 = this->register_module("conv1", conv<T, D>(o.inplanes, o.planes, 3, o.stride, 1, false));
    bn1 = this->register_module("bn1", bn<T, D>(o.planes));
    conv2 = this->register_module("conv2", conv<T, D>(o.planes, o.planes, 3, 1, 1, false));
    bn2 = this->register_module("bn2", bn<T, D>(o.planes));
    if (o.downsample)
      downsample = this->register_module(
          "downsample", std::make_shared<Sequential<T, D>>(conv<T, D>(o.inplanes, o.planes, 1, o.stride, 0, false),
                                                           bn<T, D>(o.planes)));
    this->set_branch({conv1, bn1, this->register_module("relu1", relu<T, D>()), conv2, bn2});
    this->set_shortcut(downsample);
  }

  // The BN whose weight zero_init_residual zeroes.
  BatchNorm2d<T, D>& last_bn() { return *bn2; }
  std::string type_name() const override { return "BasicBlock"; }
};

// torchvision's Bottleneck (expansion 4, "ResNet V1.5": stride on the 3x3):
// conv1x1 -> BN -> ReLU -> conv3x3(stride, groups) -> BN -> ReLU -> conv1x1
// -> BN, plus the input or `downsample`, then ReLU. The 3x3 width is
// planes * base_width / 64 * groups, which gives ResNeXt and Wide ResNet.
struct BottleneckOptions {
  index_t inplanes = 0;
  index_t planes = 0;
  index_t stride = 1;
  bool downsample = false;
  index_t groups = 1;
  index_t base_width = 64;
};

template <class T, class D = Cpu>
class Bottleneck : public ResidualBlock<T, D> {
 public:
  static constexpr index_t expansion = 4;
  std::shared_ptr<Conv2d<T, D>> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d<T, D>> bn1, bn2, bn3;
  std::shared_ptr<Sequential<T, D>> downsample;

  static index_t width(const BottleneckOptions& o) {
    return static_cast<index_t>(static_cast<double>(o.planes) * (static_cast<double>(o.base_width) / 64.0)) * o.groups;
  }

  explicit Bottleneck(const BottleneckOptions& o) {
    check(o.inplanes >= 1 && o.planes >= 1, "Bottleneck: channels must be positive, got inplanes=", o.inplanes,
          ", planes=", o.planes);
    check(o.stride >= 1, "Bottleneck: stride must be positive, got ", o.stride);
    check(o.groups >= 1 && o.base_width >= 1,
          "Bottleneck: groups and base_width must be positive, got groups=", o.groups, ", base_width=", o.base_width);
    const index_t w = width(o), out = o.planes * expansion;
    check(w >= 1, "Bottleneck: width planes*base_width/64*groups is zero for planes=", o.planes,
          ", base_width=", o.base_width);
    check(o.downsample || (o.stride == 1 && o.inplanes == out), "Bottleneck: stride ", o.stride, " or inplanes ",
          o.inplanes, " != planes*4 = ", out, " needs a downsample shortcut");
    using namespace detail;
    conv1 = this->register_module("conv1", conv<T, D>(o.inplanes, w, 1, 1, 0, false));
    bn1 = this->register_module("bn1", bn<T, D>(w));
    conv2 = this->register_module("conv2", conv<T, D>(w, w, 3, o.stride, 1, false, o.groups));
    bn2 = this->register_module("bn2", bn<T, D>(w));
    conv3 = this->register_module("conv3", conv<T, D>(w, out, 1, 1, 0, false));
    bn3 = this->register_module("bn3", bn<T, D>(out));
    if (o.downsample)
      downsample = this->register_module(
          "downsample",
          std::make_shared<Sequential<T, D>>(conv<T, D>(o.inplanes, out, 1, o.stride, 0, false), bn<T, D>(out)));
    auto relu1 = this->register_module("relu1", relu<T, D>());
    auto relu2 = this->register_module("relu2", relu<T, D>());
    this->set_branch({conv1, bn1, relu1, conv2, bn2, relu2, conv3, bn3});
    this->set_shortcut(downsample);
  }

  BatchNorm2d<T, D>& last_bn() { return *bn3; }
  std::string type_name() const override { return "Bottleneck"; }
};

// d2l.ai's ResNeXtBlock: conv1x1 -> BN -> ReLU -> grouped conv3x3(strides)
// -> BN -> ReLU -> conv1x1 -> BN, plus the input or conv4 (1x1) + bn4, then
// ReLU. The bottleneck has round(num_channels * bot_mul) channels.
//
// `groups` is the NUMBER of groups, as in torch.nn.Conv2d. (d2l's editions
// disagree: one passes channels per group. Here ResNeXtBlock(32, 16, 1) means
// 16 groups of 2 channels.)
struct ResNeXtBlockOptions {
  index_t in_channels = 0;
  index_t num_channels = 0;
  index_t groups = 1;
  double bot_mul = 1.0;
  bool use_1x1conv = false;
  index_t strides = 1;
};

template <class T, class D = Cpu>
class ResNeXtBlock : public ResidualBlock<T, D> {
 public:
  std::shared_ptr<Conv2d<T, D>> conv1, conv2, conv3, conv4;
  std::shared_ptr<BatchNorm2d<T, D>> bn1, bn2, bn3, bn4;

  explicit ResNeXtBlock(const ResNeXtBlockOptions& o) {
    check(o.in_channels >= 1 && o.num_channels >= 1,
          "ResNeXtBlock: channels must be positive, got in_channels=", o.in_channels,
          ", num_channels=", o.num_channels);
    check(o.bot_mul > 0 && std::isfinite(o.bot_mul), "ResNeXtBlock: bot_mul must be positive, got ", o.bot_mul);
    check(o.groups >= 1, "ResNeXtBlock: groups must be positive, got ", o.groups);
    check(o.strides >= 1, "ResNeXtBlock: strides must be positive, got ", o.strides);
    // nearbyint rounds halves to even, as Python's round() in d2l's int(round(...)).
    const auto bot = static_cast<index_t>(std::nearbyint(static_cast<double>(o.num_channels) * o.bot_mul));
    check(bot >= 1 && bot % o.groups == 0, "ResNeXtBlock: bottleneck channels round(num_channels * bot_mul) = ", bot,
          " must be a positive multiple of groups=", o.groups);
    check(o.use_1x1conv || (o.strides == 1 && o.in_channels == o.num_channels), "ResNeXtBlock: strides ", o.strides,
          " or in_channels ", o.in_channels, " != num_channels ", o.num_channels, " needs use_1x1conv");
    using namespace detail;
    conv1 = this->register_module("conv1", conv<T, D>(o.in_channels, bot, 1, 1, 0, true));
    conv2 = this->register_module("conv2", conv<T, D>(bot, bot, 3, o.strides, 1, true, o.groups));
    conv3 = this->register_module("conv3", conv<T, D>(bot, o.num_channels, 1, 1, 0, true));
    bn1 = this->register_module("bn1", bn<T, D>(bot));
    bn2 = this->register_module("bn2", bn<T, D>(bot));
    bn3 = this->register_module("bn3", bn<T, D>(o.num_channels));
    std::shared_ptr<Sequential<T, D>> projection;
    if (o.use_1x1conv) {
      conv4 = this->register_module("conv4", conv<T, D>(o.in_channels, o.num_channels, 1, o.strides, 0, true));
      bn4 = this->register_module("bn4", bn<T, D>(o.num_channels));
      projection = std::make_shared<Sequential<T, D>>(conv4, bn4);
    }
    auto relu1 = this->register_module("relu1", relu<T, D>());
    auto relu2 = this->register_module("relu2", relu<T, D>());
    this->set_branch({conv1, bn1, relu1, conv2, bn2, relu2, conv3, bn3});
    this->set_shortcut(projection);
  }
  // d2l's spelling: ResNeXtBlock(num_channels, groups, bot_mul, use_1x1conv, strides),
  // input channels equal to num_channels unless use_1x1conv.
  ResNeXtBlock(index_t num_channels, index_t groups, double bot_mul, bool use_1x1conv = false, index_t strides = 1)
      : ResNeXtBlock(ResNeXtBlockOptions{num_channels, num_channels, groups, bot_mul, use_1x1conv, strides}) {}

  std::string type_name() const override { return "ResNeXtBlock"; }
};

// Pre-activation block (He et al. 2016, "Identity Mappings in Deep Residual
// Networks"): BN -> ReLU run first and feed both paths; the branch is
// conv3x3(stride) -> BN -> ReLU -> conv3x3; the shortcut is the raw input, or
// a 1x1 conv of the pre-activated input when stride or channels change. No
// activation after the sum: the identity path stays clean end to end.
struct PreActBlockOptions {
  index_t in_channels = 0;
  index_t out_channels = 0;
  index_t stride = 1;
};

template <class T, class D = Cpu>
class PreActBlock : public ResidualBlock<T, D> {
 public:
  std::shared_ptr<BatchNorm2d<T, D>> bn1, bn2;
  std::shared_ptr<Conv2d<T, D>> conv1, conv2, shortcut;  // shortcut null when identity

  explicit PreActBlock(const PreActBlockOptions& o) {
    check(o.in_channels >= 1 && o.out_channels >= 1,
          "PreActBlock: channels must be positive, got in_channels=", o.in_channels, ", out_channels=", o.out_channels);
    check(o.stride >= 1, "PreActBlock: stride must be positive, got ", o.stride);
    using namespace detail;
    bn1 = this->register_module("bn1", bn<T, D>(o.in_channels));
    conv1 = this->register_module("conv1", conv<T, D>(o.in_channels, o.out_channels, 3, o.stride, 1, false));
    bn2 = this->register_module("bn2", bn<T, D>(o.out_channels));
    conv2 = this->register_module("conv2", conv<T, D>(o.out_channels, o.out_channels, 3, 1, 1, false));
    if (o.stride != 1 || o.in_channels != o.out_channels)
      shortcut = this->register_module("shortcut", conv<T, D>(o.in_channels, o.out_channels, 1, o.stride, 0, false));
    this->set_pre({bn1, this->register_module("relu1", relu<T, D>())});
    this->set_branch({conv1, bn2, this->register_module("relu2", relu<T, D>()), conv2});
    this->set_shortcut(shortcut, /*takes_pre_output=*/true);
    this->set_post_relu(false);
  }

  std::string type_name() const override { return "PreActBlock"; }
};

}  // namespace rescnn::nn
