// rescnn/nn/fuse.hpp — BatchNorm folding for inference.
//
//   model->eval();
//   rescnn::nn::fuse_conv_bn(*model);        // in place; returns how many were folded
//   // or: auto fast = rescnn::nn::optimize_for_inference(model);
//
// In eval mode a BatchNorm is a fixed affine map per channel,
// y = x * gamma / sqrt(running_var + eps) + (beta - running_mean * ...),
// so when it directly follows a convolution it can live in the
// convolution's weights and bias instead (torch.ao.quantization's
// fuse_conv_bn_eval, torch.fx's fuse): one pass over the activations less.
// Every Conv2d -> BatchNorm2d pair on a computation path is folded: the
// consecutive layers of a Sequential, and the pre-stage, branch and shortcut
// of every residual block. A BatchNorm with no convolution right before it
// (the pre-activation block's first one), or one that normalises with batch
// statistics in eval mode (track_running_stats=False), is left as it is.
//
// The folded model is for inference only: the folded BatchNorms become
// identities with no parameters (their type_name() is "Identity", as in
// PyTorch's fused models), the convolutions gain biases, and a train()
// mode forward is an error saying the model was folded. Its state dict has
// the folded names (conv1.bias, no bn1.*), so keep and load the unfolded
// weights, and fold after loading.
//
// The pass reads the computation from the containers (Sequential,
// ResidualBlock), as export_onnx does: a Sequential subclass whose forward
// does something else than chain its layers, or one Conv2d instance used at
// two places of a model, is not something it can fold correctly (the
// family has neither).
#pragma once

#include <cstddef>
#include <memory>

#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/conv2d.hpp"
#include "rescnn/nn/residual.hpp"
#include "rescnn/nn/sequential.hpp"

namespace rescnn::nn {

namespace detail {

template <class T, class D>
bool foldable(const Conv2d<T, D>& conv, const BatchNorm2d<T, D>& bn) {
  return !bn.folded() && bn.options().track_running_stats && bn.options().num_features == conv.options().out_channels;
}

template <class T, class D>
std::size_t fuse_path(Module<T, D>& m) {
  std::size_t folded = 0;
  if (auto* block = dynamic_cast<ResidualBlock<T, D>*>(&m)) {
    // A block's layers are its children, but the computation order lives
    // in its paths (residual.hpp).
    folded += fuse_path(block->pre());
    folded += fuse_path(block->branch());
    if (block->shortcut()) folded += fuse_path(*block->shortcut());
    return folded;
  }
  if (auto* seq = dynamic_cast<Sequential<T, D>*>(&m)) {
    const auto& layers = seq->layers();
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
      auto* conv = dynamic_cast<Conv2d<T, D>*>(layers[i].get());
      auto* bn = dynamic_cast<BatchNorm2d<T, D>*>(layers[i + 1].get());
      if (!conv || !bn || !foldable(*conv, *bn)) continue;
      const auto [scale, shift] = bn->eval_scale_shift();
      conv->fold_output_affine(scale, shift);
      bn->mark_folded();
      ++folded;
    }
    for (const auto& layer : layers) folded += fuse_path(*layer);
    return folded;
  }
  for (const auto& [name, child] : m.named_children()) folded += fuse_path(*child);
  return folded;
}

}  // namespace detail

// Puts `model` in eval mode and folds every BatchNorm2d that directly
// follows a Conv2d into it, in place. Returns the number folded (20 for
// resnet18: every BatchNorm; 0 when called again).
template <class T, class D>
std::size_t fuse_conv_bn(Module<T, D>& model) {
  model.eval();
  return detail::fuse_path(model);
}

// The model, in eval mode with its BatchNorms folded (fuse_conv_bn): the
// same object, changed in place, for call chains such as
// `auto net = optimize_for_inference(models::create<float>("resnet50"));`.
template <class M>
std::shared_ptr<M> optimize_for_inference(std::shared_ptr<M> model) {
  check(model != nullptr, "optimize_for_inference: the model is null");
  fuse_conv_bn(*model);
  return model;
}

}  // namespace rescnn::nn
