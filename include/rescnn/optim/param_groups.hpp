// rescnn/optim/param_groups.hpp — the usual split of a model's parameters
// for weight decay: none on BatchNorm's weights and biases, nor on any bias.
//
//   rn::optim::SGD<float> sgd(rn::optim::no_decay_on_norm_and_bias(*model),
//                             {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
//
// timm's param_groups_weight_decay rule: a parameter of one dimension or
// fewer (a bias, BatchNorm's weight and bias) goes to the "no_decay" group
// with weight_decay 0; every other one (convolution and Linear weights) to
// "decay", which takes the optimizer's weight decay. Decaying a BatchNorm
// scale only fights the following layers' normalisation, and a bias has no
// scale to regularise.
#pragma once

#include <vector>

#include "rescnn/nn/module.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::optim {

template <class T, class D>
std::vector<ParamGroup<T, D>> no_decay_on_norm_and_bias(nn::Module<T, D>& model) {
  ParamGroup<T, D> decay{.name = "decay"}, no_decay{.name = "no_decay", .weight_decay = 0.0};
  for (const auto& named : model.named_parameters())
    (named.second->value.rank() <= 1 ? no_decay : decay).params.push_back(named);
  std::vector<ParamGroup<T, D>> groups;
  // An empty group is an error for the optimizers: leave it out.
  for (auto* g : {&decay, &no_decay})
    if (!g->params.empty()) groups.push_back(std::move(*g));
  return groups;
}

}  // namespace rescnn::optim
