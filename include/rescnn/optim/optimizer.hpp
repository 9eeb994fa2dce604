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
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::optim {

template <class T, class D = Cpu>
class Optimizer {
 public:
  using TensorT = Tensor<T, D>;
  using ParameterT = nn::Parameter<T, D>;
  using NamedParameters = std::vector<std::pair<std::string, ParameterT*>>;
  using NamedState = std::vector<std::pair<std::string, TensorT*>>;

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

  const NamedParameters& named_parameters() const { return params_; }

  // Per-parameter state named "<parameter name>.<PyTorch state name>", e.g.
  // "layer1.0.conv1.weight.momentum_buffer", "fc.bias.exp_avg_sq"; in
  // parameter order. Checkpoints save and restore exactly these tensors.
  NamedState named_state() {
    NamedState out;
    for (auto& [name, tensor] : state_) out.emplace_back(name, &tensor);
    return out;
  }

 protected:
  Optimizer(NamedParameters params, double lr, const char* type) : params_(std::move(params)) {
    check<ValueError>(!params_.empty(), type, ": optimizer got an empty parameter list");
    for (auto& [name, p] : params_)
      check<ValueError>(p != nullptr && p->defined(), type, ": parameter '", name, "' is null or undefined");
    check<ValueError>(std::isfinite(lr) && lr >= 0, type, ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
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
