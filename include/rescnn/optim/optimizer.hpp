// rescnn/optim/optimizer.hpp — the interface every optimizer implements.
//
// An optimizer holds pointers to a model's parameters (with their dotted
// names, so its state can be saved under names a user can read) and updates
// them from their `.grad` in `step()`, as torch.optim does.
//
// State is allocated when the optimizer is built, not on the first step as in
// PyTorch, so a checkpoint can be loaded into a fresh optimizer before any
// step. Whether the state has been written yet is `steps() > 0`: PyTorch's
// "buffer is None" on the first step is our "steps() == 0".
//
// The learning rate (and, for one-cycle schedules, the momentum) is a
// property of the optimizer that schedules change between steps.
//
// Parameter groups (torch.optim's param_groups) give some parameters their
// own learning rate and weight decay, e.g. a pretrained backbone at a tenth
// of the new head's rate:
//
//   rn::optim::SGD<float> sgd({{.name = "backbone", .params = backbone, .lr_scale = 0.1},
//                              {.name = "head", .params = head}},
//                             {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
//
// A group's learning rate is `lr_scale` times the optimizer's lr(), at every
// step, so a schedule moves all groups together (timm's "lr_scale"). A
// PyTorch group written {'params': backbone, 'lr': 1e-3} beside lr=1e-2 is
// lr_scale 0.1 here; the two agree for every schedule that multiplies the
// base rate. They differ for CosineAnnealingLR with eta_min > 0 (a group
// ends at lr_scale * eta_min here, at eta_min in PyTorch) and for PyTorch's
// OneCycleLR given one max_lr for all groups (which erases the groups).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::optim {

// Some of an optimizer's parameters, with their own learning-rate factor and
// weight decay (see the top of this file).
template <class T, class D = Cpu>
struct ParamGroup {
  // Every member has a default, so designated initializers may leave any
  // out without -Wmissing-field-initializers.
  std::string name{};  // for messages and to_string(); may be empty
  std::vector<std::pair<std::string, nn::Parameter<T, D>*>> params{};
  double lr_scale = 1;                   // this group's lr is lr_scale * the optimizer's lr()
  std::optional<double> weight_decay{};  // nullopt: the optimizer's weight decay
};

template <class T, class D = Cpu>
class Optimizer {
 public:
  using TensorT = Tensor<T, D>;
  using ParameterT = nn::Parameter<T, D>;
  using NamedParameters = std::vector<std::pair<std::string, ParameterT*>>;
  using NamedState = std::vector<std::pair<std::string, TensorT*>>;
  using Group = ParamGroup<T, D>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter from its gradient, then counts the step; frozen
  // parameters (requires_grad false) are skipped, as PyTorch skips those
  // without a gradient. Every parameter is checked first, so a failed step
  // leaves parameters and state as they were.
  void step() {
    check_ready();
    update();
    ++steps_;
  }

  void zero_grad() {
    for (auto& [name, p] : params_) p->grad.zero_();
  }

  double lr() const { return lr_; }
  void set_lr(double lr) {
    check<ValueError>(std::isfinite(lr) && lr >= 0, type_name(), ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
  }

  // The momentum a one-cycle schedule cycles: SGD's momentum, Adam's beta1.
  // nullopt for an optimizer without one (SGD with momentum 0).
  virtual std::optional<double> momentum() const { return std::nullopt; }
  virtual void set_momentum(double /*value*/) {
    throw ValueError(type_name() + ": this optimizer has no momentum to set");
  }

  // How many times step() has run (restored from checkpoints).
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t n) {
    check<ValueError>(n >= 0, type_name(), ": step count must be >= 0, got ", n);
    steps_ = n;
  }

  // "SGD", "Adam", "AdamW": PyTorch's class names.
  virtual std::string type_name() const = 0;
  // The hyperparameters, as PyTorch prints them: "SGD(lr=0.01, momentum=0.9, ...)".
  virtual std::string to_string() const = 0;

  // Every parameter, group after group.
  const NamedParameters& named_parameters() const { return params_; }

  // The groups' settings, in the order given (one unnamed group with
  // lr_scale 1 when the optimizer was built from a plain parameter list).
  struct GroupSettings {
    std::string name;
    std::size_t begin, end;  // its parameters are named_parameters()[begin, end)
    double lr_scale;
    std::optional<double> weight_decay;
  };
  const std::vector<GroupSettings>& param_groups() const { return groups_; }
  // The learning rate group g's next update uses.
  double group_lr(std::size_t g) const { return lr_ * groups_.at(g).lr_scale; }

  // Per-parameter state named "<parameter name>.<PyTorch state name>", e.g.
  // "layer1.0.conv1.weight.momentum_buffer", "fc.bias.exp_avg_sq"; in
  // parameter order. Checkpoints save and restore exactly these tensors.
  NamedState named_state() {
    NamedState out;
    for (auto& [name, tensor] : state_) out.emplace_back(name, &tensor);
    return out;
  }

 protected:
  Optimizer(std::vector<Group> groups, double lr, const char* type) {
    check<ValueError>(!groups.empty(), type, ": optimizer got no parameter groups");
    for (std::size_t g = 0; g < groups.size(); ++g) {
      Group& group = groups[g];
      const std::string label = group.name.empty() ? "group " + std::to_string(g) : "group '" + group.name + "'";
      check<ValueError>(
          !group.params.empty(), type, ": ",
          groups.size() == 1 ? std::string("optimizer got an empty parameter list") : label + " has no parameters");
      check<ValueError>(std::isfinite(group.lr_scale) && group.lr_scale >= 0, type, ": ", label,
                        ": lr_scale must be finite and >= 0, got ", group.lr_scale);
      check<ValueError>(!group.weight_decay || (std::isfinite(*group.weight_decay) && *group.weight_decay >= 0), type,
                        ": ", label, ": weight_decay must be finite and >= 0, got ", group.weight_decay.value_or(0));
      groups_.push_back(
          {group.name, params_.size(), params_.size() + group.params.size(), group.lr_scale, group.weight_decay});
      for (auto& entry : group.params) params_.push_back(std::move(entry));
    }
    // A parameter in two places would be updated twice per step. PyTorch
    // refuses it across groups; within one list its named_parameters()
    // has already dropped repeats (shared layers), which rescnn's
    // Module::named_parameters() does not, so here both are an error.
    std::map<const ParameterT*, std::size_t> first_index;  // where each parameter was first given
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& [name, p] = params_[i];
      check<ValueError>(p != nullptr && p->defined(), type, ": parameter '", name, "' is null or undefined");
      const auto [it, first] = first_index.emplace(p, i);
      if (first) continue;
      const std::string& earlier = params_[it->second].first;
      fail<ValueError>(type, ": parameter '", earlier,
                       earlier == name ? "' is given twice" : "' is also given as '" + name + "'",
                       "; each parameter may appear only once (in one group)");
    }
    check<ValueError>(std::isfinite(lr) && lr >= 0, type, ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
  }

  // The weight decay group g uses, given the optimizer's own.
  double group_weight_decay(std::size_t g, double optimizer_weight_decay) const {
    return groups_[g].weight_decay.value_or(optimizer_weight_decay);
  }

  // ", groups=[backbone(lr_scale=0.1), head]" for to_string(); empty for
  // the one default group.
  std::string groups_description() const {
    if (groups_.size() == 1 && groups_[0].lr_scale == 1 && !groups_[0].weight_decay) return "";
    std::string out = ", groups=[";
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      const GroupSettings& s = groups_[g];
      if (g) out += ", ";
      out += s.name.empty() ? std::to_string(g) : s.name;
      std::string settings;
      if (s.lr_scale != 1) settings = rescnn::detail::concat("lr_scale=", s.lr_scale);
      if (s.weight_decay)
        settings += rescnn::detail::concat(settings.empty() ? "" : ", ", "weight_decay=", *s.weight_decay);
      if (!settings.empty()) out += "(" + settings + ")";
    }
    return out + "]";
  }

  // Applies one update; `steps()` is the number of earlier updates. step()
  // has checked every gradient and state shape before calling it.
  virtual void update() = 0;

  // Allocates a zero state tensor shaped like parameter `index` and returns
  // its position in named_state() (stable for the optimizer's lifetime).
  std::size_t add_state(std::size_t index, const std::string& state_name) {
    const auto& [name, p] = params_.at(index);
    state_.emplace_back(name + "." + state_name, TensorT::zeros(p->value.shape()));
    state_owner_.push_back(index);
    return state_.size() - 1;
  }
  TensorT& state(std::size_t slot) { return state_[slot].second; }

  NamedParameters params_;

 private:
  // Each gradient exists and fits its parameter, and no parameter was
  // replaced by one of another shape since its state was allocated.
  void check_ready() const {
    for (const auto& [name, p] : params_) {
      if (!p->grad.defined())
        fail<ValueError>(type_name(), ": parameter '", name, "' has no gradient (grad is undefined)");
      if (p->grad.shape() != p->value.shape())
        fail<ShapeError>(type_name(), ": parameter '", name, "' of shape ", p->value.shape(),
                         " has a gradient of shape ", p->grad.shape());
    }
    for (std::size_t i = 0; i < state_.size(); ++i) {
      const auto& [name, p] = params_[state_owner_[i]];
      const TensorT& s = state_[i].second;
      if (s.shape() != p->value.shape())
        fail<ShapeError>(type_name(), ": parameter '", name, "' changed shape from ", s.shape(), " to ",
                         p->value.shape(), " after the optimizer was built");
    }
  }

  double lr_ = 0;
  std::int64_t steps_ = 0;
  std::vector<GroupSettings> groups_;
  std::vector<std::pair<std::string, TensorT>> state_;
  std::vector<std::size_t> state_owner_;  // the parameter each state tensor belongs to
};

// Names unnamed parameters "0", "1", ... (for optimizers built from
// `module.parameters()`); checkpoints then name state by position.
template <class T, class D>
std::vector<std::pair<std::string, nn::Parameter<T, D>*>> name_by_position(
    const std::vector<nn::Parameter<T, D>*>& params) {
  std::vector<std::pair<std::string, nn::Parameter<T, D>*>> out;
  out.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) out.emplace_back(std::to_string(i), params[i]);
  return out;
}

}  // namespace rescnn::optim
