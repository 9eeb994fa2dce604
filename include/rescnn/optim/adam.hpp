// rescnn/optim/adam.hpp — Adam and AdamW, exactly torch.optim.Adam / AdamW
// (PyTorch 1.13, `_single_tensor_adam` / `_single_tensor_adamw`). With
// t = steps() + 1 (the update being made):
//
//   Adam:  g = grad + weight_decay * p          (L2 penalty in the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)      (decoupled decay, before the moments)
//   m = beta1 * m + (1 - beta1) * g                       "exp_avg"
//   v = beta2 * v + (1 - beta2) * g * g                   "exp_avg_sq"
//   amsgrad: v_max = max(v_max, v), used instead of v     "max_exp_avg_sq"
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
//
// The two differ only in where weight decay enters, so one implementation
// (detail::AdamCore) serves both. The per-step scalars are computed in double
// and rounded to T, as PyTorch passes Python floats to its float kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/ops/tensor_groups.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};  // decay of the first and second moments
  double eps = 1e-8;                            // added to the denominator
  double weight_decay = 0;                      // L2 penalty, added to the gradient
  bool amsgrad = false;                         // normalise by the largest second moment so far
};

// AdamW's options: the same fields, but weight_decay is decoupled (it
// shrinks the parameters directly) and defaults to 1e-2, as in PyTorch.
struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // p *= 1 - lr * weight_decay each step
  bool amsgrad = false;
};

namespace detail {

// PyTorch's checks; `type` names the optimizer in the message.
inline void validate_adam(const AdamOptions& o, const char* type) {
  check(std::isfinite(o.lr) && o.lr >= 0, type, ": lr must be finite and >= 0, got ", o.lr);
  check(std::isfinite(o.eps) && o.eps >= 0, type, ": eps must be finite and >= 0, got ", o.eps);
  check(o.betas.first >= 0 && o.betas.first < 1, type, ": betas[0] must lie in [0, 1), got ", o.betas.first);
  check(o.betas.second >= 0 && o.betas.second < 1, type, ": betas[1] must lie in [0, 1), got ", o.betas.second);
  check(std::isfinite(o.weight_decay) && o.weight_decay >= 0, type, ": weight_decay must be finite and >= 0, got ",
        o.weight_decay);
}

inline AdamOptions as_adam_options(const AdamWOptions& o) {
  return {.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay, .amsgrad = o.amsgrad};
}

// The per-step scalars of an Adam update, already rounded to T; the same for
// every element, so a GPU kernel receives this struct by value.
template <class T>
struct AdamStep {
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T weight_decay;  // Adam: g += weight_decay * p
  T decay_factor;  // AdamW: p *= 1 - lr * weight_decay
  T bc2_sqrt;      // sqrt(1 - beta2^t)
  T eps;
  T neg_step_size;  // -lr / (1 - beta1^t)
  bool l2, decoupled, amsgrad;
};

// std::sqrt on the host, CUDA's overloads on the device.
template <class T>
RESCNN_HOST_DEVICE inline T sqrt_any_device(T v) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(v);
#else
  return std::sqrt(v);
#endif
}

// One element's update, in PyTorch's operation order (results agree to
// rounding). `v_max` is unused without amsgrad.
template <class T>
RESCNN_HOST_DEVICE inline void adam_element(T& p, T g, T& m, T& v, T& v_max, const AdamStep<T>& s) {
  if (s.decoupled)
    p = p * s.decay_factor;
  else if (s.l2)
    g = g + s.weight_decay * p;
  m = m * s.beta1 + s.one_minus_beta1 * g;
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  if (s.amsgrad) v_max = v_max < v ? v : v_max;  // std::max(v_max, v)
  const T denom = sqrt_any_device(s.amsgrad ? v_max : v) / s.bc2_sqrt + s.eps;
  p = p + s.neg_step_size * m / denom;
}

// The update of element i of one parameter's group (parameter, gradient,
// exp_avg, exp_avg_sq, max_exp_avg_sq or null), on either device.
template <class T>
struct AdamUpdate {
  AdamStep<T> s;
  RESCNN_HOST_DEVICE void operator()(T* const* group, index_t i) const {
    T unused{};
    adam_element(group[0][i], group[1][i], group[2][i], group[3][i], group[4] ? group[4][i] : unused, s);
  }
};

// The implementation shared by Adam and AdamW (`decoupled` says which).
template <class T, class D>
class AdamCore : public Optimizer<T, D> {
 public:
  using Base = Optimizer<T, D>;
  using typename Base::NamedParameters;

  // beta1, the momentum a one-cycle schedule cycles.
  std::optional<double> momentum() const override { return options_.betas.first; }
  void set_momentum(double value) override {
    check(value >= 0 && value < 1, type_, ": betas[0] (the momentum) must lie in [0, 1), got ", value);
    options_.betas.first = value;
  }

  std::string type_name() const override { return type_; }
  std::string to_string() const override {
    return rescnn::detail::concat(type_, "(lr=", this->lr(), ", betas=(", options_.betas.first, ", ",
                                  options_.betas.second, "), eps=", options_.eps,
                                  ", weight_decay=", options_.weight_decay,
                                  ", amsgrad=", options_.amsgrad ? "true" : "false", this->groups_description(), ")");
  }

 protected:
  // State per parameter, in this order: "exp_avg", "exp_avg_sq" and, with
  // amsgrad, "max_exp_avg_sq".
  AdamCore(std::vector<typename Base::Group> groups, const AdamOptions& options, bool decoupled, const char* type)
      : Base(std::move(groups), validated(options, type).lr, type),
        options_(options),
        decoupled_(decoupled),
        type_(type) {
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      Slots s{this->add_state(i, "exp_avg"), this->add_state(i, "exp_avg_sq"), 0};
      if (options_.amsgrad) s.max_exp_avg_sq = this->add_state(i, "max_exp_avg_sq");
      slots_.push_back(s);
    }
  }

  // The options with the current lr and beta1 (schedules change them).
  AdamOptions current_options() const {
    AdamOptions o = options_;
    o.lr = this->lr();
    return o;
  }

  void update() override {
    const auto [beta1, beta2] = options_.betas;
    const double t = static_cast<double>(this->steps() + 1);
    const double bias_correction1 = 1 - std::pow(beta1, t);
    const double bias_correction2 = 1 - std::pow(beta2, t);
    const auto& group_settings = this->param_groups();
    for (std::size_t g = 0; g < group_settings.size(); ++g) {
      const double lr = this->group_lr(g), wd = this->group_weight_decay(g, options_.weight_decay);
      const AdamStep<T> s{
          .beta1 = static_cast<T>(beta1),
          .one_minus_beta1 = static_cast<T>(1 - beta1),
          .beta2 = static_cast<T>(beta2),
          .one_minus_beta2 = static_cast<T>(1 - beta2),
          .weight_decay = static_cast<T>(wd),
          .decay_factor = static_cast<T>(1 - lr * wd),
          .bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2)),
          .eps = static_cast<T>(options_.eps),
          .neg_step_size = static_cast<T>(-(lr / bias_correction1)),
          .l2 = !decoupled_ && wd != 0,
          .decoupled = decoupled_,
          .amsgrad = options_.amsgrad,
      };
      std::vector<TensorGroup<T, 5>> tensors;
      tensors.reserve(group_settings[g].end - group_settings[g].begin);
      for (std::size_t i = group_settings[g].begin; i < group_settings[g].end; ++i) {
        auto* p = this->params_[i].second;
        if (!p->requires_grad) continue;  // frozen: value and state untouched
        T* v_max = options_.amsgrad ? this->state(slots_[i].max_exp_avg_sq).data() : nullptr;
        tensors.push_back({{p->value.data(), p->grad.data(), this->state(slots_[i].exp_avg).data(),
                            this->state(slots_[i].exp_avg_sq).data(), v_max},
                           p->value.numel()});
      }
      ops::for_each_element<D>(tensors, AdamUpdate<T>{s});
    }
  }

 private:
  struct Slots {
    std::size_t exp_avg, exp_avg_sq, max_exp_avg_sq;
  };

  static const AdamOptions& validated(const AdamOptions& o, const char* type) {
    validate_adam(o, type);
    return o;
  }

  AdamOptions options_;  // lr lives in the base (set_lr); beta1 here
  bool decoupled_;
  const char* type_;
  std::vector<Slots> slots_;
};

}  // namespace detail

inline void validate(const AdamOptions& o) { detail::validate_adam(o, "Adam"); }
inline void validate(const AdamWOptions& o) { detail::validate_adam(detail::as_adam_options(o), "AdamW"); }

// Adam with L2 weight decay (added to the gradient).
template <class T, class D = Cpu>
class Adam : public detail::AdamCore<T, D> {
 public:
  using typename detail::AdamCore<T, D>::NamedParameters;
  using ParameterT = nn::Parameter<T, D>;

  using Group = ParamGroup<T, D>;

  explicit Adam(NamedParameters params, const AdamOptions& options = {})
      : Adam(std::vector<Group>{{.params = std::move(params)}}, options) {}
  // Parameter groups with their own lr_scale and weight decay (optim/optimizer.hpp).
  explicit Adam(std::vector<Group> groups, const AdamOptions& options = {})
      : detail::AdamCore<T, D>(std::move(groups), options, /*decoupled=*/false, "Adam") {}
  // Unnamed parameters (`module.parameters()`): state is named "0.exp_avg", ...
  explicit Adam(const std::vector<ParameterT*>& params, const AdamOptions& options = {})
      : Adam(name_by_position(params), options) {}

  // The options with the current lr and beta1.
  AdamOptions options() const { return this->current_options(); }
};

// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's AdamW.
template <class T, class D = Cpu>
class AdamW : public detail::AdamCore<T, D> {
 public:
  using typename detail::AdamCore<T, D>::NamedParameters;
  using ParameterT = nn::Parameter<T, D>;

  using Group = ParamGroup<T, D>;

  explicit AdamW(NamedParameters params, const AdamWOptions& options = {})
      : AdamW(std::vector<Group>{{.params = std::move(params)}}, options) {}
  // Parameter groups with their own lr_scale and weight decay (optim/optimizer.hpp).
  explicit AdamW(std::vector<Group> groups, const AdamWOptions& options = {})
      : detail::AdamCore<T, D>(std::move(groups), detail::as_adam_options(options), /*decoupled=*/true, "AdamW") {}
  explicit AdamW(const std::vector<ParameterT*>& params, const AdamWOptions& options = {})
      : AdamW(name_by_position(params), options) {}

  // The options with the current lr and beta1.
  AdamWOptions options() const {
    const AdamOptions o = this->current_options();
    return {.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay, .amsgrad = o.amsgrad};
  }
};

}  // namespace rescnn::optim
