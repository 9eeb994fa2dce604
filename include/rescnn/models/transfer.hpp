// rescnn/models/transfer.hpp — transfer learning: load a pretrained backbone
// into a model with a new head, and freeze what should not train.
//
//   auto model = rn::models::create<float>("resnet18", {.num_classes = 2});
//   std::cout << rn::models::load_backbone(*model, "resnet18.safetensors").summary() << "\n";
//   //   loaded 100 tensors from 'resnet18.safetensors'; skipped 2 (excluded): 'fc.bias', 'fc.weight'
//   rn::models::freeze_backbone(*model);   // only fc trains
//   // or train it all, the pretrained backbone at a tenth of the head's rate:
//   rn::optim::SGD<float> sgd(rn::models::backbone_and_head_groups(*model, 0.1), {.lr = 0.01});
//
// The head is the classifier, the layer the model's last parameter belongs
// to: "fc." in torchvision's models, "last.2." in d2l's; the backbone is
// everything else. A frozen backbone costs no
// backward work at all: the Trainer does not ask for the input gradient,
// so backward stops at the first trainable layer (nn/module.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::models {

// The name prefix of the model's classifier ("fc." or "last.2.").
template <class T, class D>
std::string head_prefix(nn::Module<T, D>& model) {
  const auto named = model.named_parameters();
  check<ValueError>(!named.empty(), "head_prefix: ", model.type_name(), " has no parameters");
  const std::string& last = named.back().first;
  const auto dot = last.rfind('.');
  check<ValueError>(dot != std::string::npos, "head_prefix: the last parameter '", last, "' belongs to no layer");
  return last.substr(0, dot + 1);
}

// Freezes every parameter whose name starts with none of `trainable`
// (prefixes such as "layer4." or "fc."), unfreezes the others; returns how
// many parameters are frozen. A prefix that matches no parameter is a
// ValueError (a typo would otherwise freeze everything).
template <class T, class D>
std::size_t freeze_except(nn::Module<T, D>& model, const std::vector<std::string>& trainable) {
  const auto named = model.named_parameters();
  for (const auto& prefix : trainable) {
    bool found = false;
    for (const auto& [name, p] : named) found = found || name.rfind(prefix, 0) == 0;
    check<ValueError>(found, "freeze_except: no parameter of ", model.type_name(), " starts with '", prefix, "'");
  }
  std::size_t frozen = 0;
  for (auto& [name, p] : named) {
    bool keep = false;
    for (const auto& prefix : trainable) keep = keep || name.rfind(prefix, 0) == 0;
    p->requires_grad = keep;
    frozen += keep ? 0 : 1;
  }
  return frozen;
}

// Only the classifier (head_prefix) trains.
template <class T, class D>
std::size_t freeze_backbone(nn::Module<T, D>& model) {
  return freeze_except(model, {head_prefix(model)});
}

// Two parameter groups (optim/optimizer.hpp) for fine-tuning: "backbone"
// at backbone_lr_scale times the optimizer's learning rate, "head" (the
// classifier, head_prefix) at the full rate. Pretrained weights usually
// want a smaller step than a new, randomly initialised head.
template <class T, class D>
std::vector<optim::ParamGroup<T, D>> backbone_and_head_groups(nn::Module<T, D>& model, double backbone_lr_scale) {
  const std::string head = head_prefix(model);
  optim::ParamGroup<T, D> backbone{.name = "backbone", .lr_scale = backbone_lr_scale}, classifier{.name = "head"};
  for (auto& entry : model.named_parameters())
    (entry.first.rfind(head, 0) == 0 ? classifier : backbone).params.push_back(entry);
  return {std::move(backbone), std::move(classifier)};
}

// Loads everything but the classifier from a state dict (a torchvision
// safetensors file, a rescnn checkpoint): the model may have another number
// of classes. The rest must match exactly, as load_state_dict's strict mode.
template <class T, class D>
io::LoadReport load_backbone(nn::Module<T, D>& model, const std::filesystem::path& file) {
  return io::load(model, file, {.strict = true, .exclude = {head_prefix(model)}});
}

}  // namespace rescnn::models
