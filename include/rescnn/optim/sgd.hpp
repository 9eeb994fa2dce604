// rescnn/optim/sgd.hpp — stochastic gradient descent with momentum, exactly
// torch.optim.SGD (PyTorch 1.13, `_single_tensor_sgd`):
//
//   d = grad + weight_decay * p
//   if momentum != 0:
//     buf = d                                        on the first step
//     buf = momentum * buf + (1 - dampening) * d     afterwards
//     d   = nesterov ? d + momentum * buf : buf
//   p -= lr * d
//
// The arithmetic is done in T with the coefficients rounded to T, as
// PyTorch's float kernels do with Python-float scalars.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/ops/tensor_groups.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;      // 0: plain SGD, no momentum buffer
  double dampening = 0;     // buf = momentum * buf + (1 - dampening) * d
  double weight_decay = 0;  // L2 penalty, added to the gradient
  bool nesterov = false;    // needs momentum > 0 and dampening == 0
};

// PyTorch's checks, with messages that name the option and its value.
inline void validate(const SGDOptions& o) {
  check(std::isfinite(o.lr) && o.lr >= 0, "SGD: lr must be finite and >= 0, got ", o.lr);
  check(std::isfinite(o.momentum) && o.momentum >= 0, "SGD: momentum must be finite and >= 0, got ", o.momentum);
  check(std::isfinite(o.dampening), "SGD: dampening must be finite, got ", o.dampening);
  check(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "SGD: weight_decay must be finite and >= 0, got ",
        o.weight_decay);
  check(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
        "SGD: nesterov=true requires momentum > 0 and dampening == 0, got momentum=", o.momentum,
        ", dampening=", o.dampening);
}

namespace detail {

// The per-step scalars of an SGD update, already rounded to T. The same for
// every element, so a GPU kernel receives this struct by value.
template <class T>
struct SgdStep {
  T weight_decay, momentum, one_minus_dampening, neg_lr;
  bool decay, use_momentum, nesterov, first;  // first: buf = d (PyTorch's "buffer is None")
};

// One element's update; `buf` is its momentum buffer (unused without
// momentum). Operation order is PyTorch's, so results agree to rounding.
template <class T>
RESCNN_HOST_DEVICE inline void sgd_element(T& p, T g, T& buf, const SgdStep<T>& s) {
  T d = s.decay ? g + s.weight_decay * p : g;
  if (s.use_momentum) {
    buf = s.first ? d : buf * s.momentum + s.one_minus_dampening * d;
    d = s.nesterov ? d + s.momentum * buf : buf;
  }
  p = p + s.neg_lr * d;
}

// The update of element i of one parameter's group (parameter, gradient,
// momentum buffer or null), on either device.
template <class T>
struct SgdUpdate {
  SgdStep<T> s;
  RESCNN_HOST_DEVICE void operator()(T* const* group, index_t i) const {
    T unused{};
    sgd_element(group[0][i], group[1][i], group[2] ? group[2][i] : unused, s);
  }
};

}  // namespace detail

template <class T, class D = Cpu>
class SGD : public Optimizer<T, D> {
 public:
  using Base = Optimizer<T, D>;
  using typename Base::NamedParameters;
  using typename Base::ParameterT;

  // With momentum, one "momentum_buffer" per parameter, named
  // "<parameter>.momentum_buffer".
  explicit SGD(NamedParameters params, const SGDOptions& options = {})
      : SGD(std::vector<typename Base::Group>{{.params = std::move(params)}}, options) {}
  // Parameter groups with their own lr_scale and weight decay
  // (optim/optimizer.hpp); `options` holds the rest, for every group.
  explicit SGD(std::vector<typename Base::Group> groups, const SGDOptions& options = {})
      : Base(std::move(groups), validated(options).lr, "SGD"), options_(options) {
    if (options_.momentum != 0)
      for (std::size_t i = 0; i < this->params_.size(); ++i) buffers_.push_back(this->add_state(i, "momentum_buffer"));
  }
  // Unnamed parameters (`module.parameters()`): state is named "0.momentum_buffer", ...
  explicit SGD(const std::vector<ParameterT*>& params, const SGDOptions& options = {})
      : SGD(name_by_position(params), options) {}

  // The options with the current lr and momentum (schedules change them).
  SGDOptions options() const {
    SGDOptions o = options_;
    o.lr = this->lr();
    return o;
  }

  // nullopt when built without momentum (there is no buffer to drive).
  std::optional<double> momentum() const override {
    if (buffers_.empty()) return std::nullopt;
    return options_.momentum;
  }
  // For momentum schedules (one-cycle). Momentum 0 skips the momentum
  // branch, as in PyTorch, and leaves the buffer as it is.
  void set_momentum(double value) override {
    check(!buffers_.empty(), "SGD: cannot set momentum to ", value,
          ": this SGD was built with momentum=0 and has no momentum buffer; build it with momentum > 0");
    check(std::isfinite(value) && value >= 0, "SGD: momentum must be finite and >= 0, got ", value);
    check(!options_.nesterov || value > 0, "SGD: nesterov=true requires momentum > 0, got ", value);
    options_.momentum = value;
  }

  std::string type_name() const override { return "SGD"; }
  std::string to_string() const override {
    return rescnn::detail::concat("SGD(lr=", this->lr(), ", momentum=", options_.momentum,
                                  ", dampening=", options_.dampening, ", weight_decay=", options_.weight_decay,
                                  ", nesterov=", options_.nesterov ? "true" : "false", this->groups_description(), ")");
  }

 protected:
  void update() override {
    const auto& group_settings = this->param_groups();
    for (std::size_t g = 0; g < group_settings.size(); ++g) {
      const double weight_decay = this->group_weight_decay(g, options_.weight_decay);
      const detail::SgdStep<T> s{
          .weight_decay = static_cast<T>(weight_decay),
          .momentum = static_cast<T>(options_.momentum),
          .one_minus_dampening = static_cast<T>(1 - options_.dampening),
          .neg_lr = static_cast<T>(-this->group_lr(g)),
          .decay = weight_decay != 0,
          .use_momentum = options_.momentum != 0,
          .nesterov = options_.nesterov,
          .first = this->steps() == 0,
      };
      std::vector<TensorGroup<T, 3>> tensors;
      tensors.reserve(group_settings[g].end - group_settings[g].begin);
      for (std::size_t i = group_settings[g].begin; i < group_settings[g].end; ++i) {
        auto* p = this->params_[i].second;
        if (!p->requires_grad) continue;  // frozen: value and momentum untouched
        T* buf = buffers_.empty() ? nullptr : this->state(buffers_[i]).data();
        tensors.push_back({{p->value.data(), p->grad.data(), buf}, p->value.numel()});
      }
      ops::for_each_element<D>(tensors, detail::SgdUpdate<T>{s});
    }
  }

 private:
  static const SGDOptions& validated(const SGDOptions& o) {
    validate(o);
    return o;
  }

  SGDOptions options_;                // lr lives in the base (set_lr); momentum here
  std::vector<std::size_t> buffers_;  // state slot of each parameter's momentum buffer
};

}  // namespace rescnn::optim
